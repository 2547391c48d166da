/*
 * fuzz_onnx.c — libFuzzer target over engine_model_load_memory (protobuf
 * parse, graph IR, fusion passes, oneDNN plan building) with external data
 * forbidden. A model that loads must have an input and an output with
 * elements, and an image (4-D) input must report its shape; it is then freed.
 * fuzz_replay.c runs the same function over saved inputs in normal builds.
 */
#include "engine.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    engine_load_params p = engine_load_default_params();
    p.max_batch = 2;
    engine_model *m = NULL;
    char err[256];
    err[0] = 0;
    engine_status st =
        engine_model_load_memory(size ? data : NULL, size, NULL, &p, &m, err, sizeof err);
    if (memchr(err, '\0', sizeof err) == NULL)
        abort();
    if (st == ENGINE_OK) {
        engine_model_info info;
        engine_model_get_info(m, &info);
        /* the loader refuses graphs without a runtime input or output */
        if (engine_model_num_inputs(m) < 1 || engine_model_num_outputs(m) < 1 ||
            info.num_classes < 1)
            abort();
        engine_tensor_desc in;
        engine_model_input_desc(m, 0, &in);
        if (in.ndim == 4 && (info.channels < 1 || info.height < 1 || info.width < 1))
            abort(); /* an image model must report its image shape */
        engine_model_free(m);
    } else if (m != NULL) {
        abort(); /* a failed load hands nothing back */
    }
    return 0;
}
