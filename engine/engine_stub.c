/* engine_stub.c — placeholder so the tree links before the engine lands.
 * Deleted by the engine's first real commit. */
#include "engine.h"

#include <stdio.h>

const char *engine_status_str(engine_status s) {
    return s == ENGINE_OK ? "ok" : "unsupported";
}
engine_load_params engine_load_default_params(void) {
    return (engine_load_params){.max_batch = 8};
}
engine_status engine_model_load(const char *path, const engine_load_params *p, engine_model **out,
                                char *err, size_t err_len) {
    (void)p;
    *out = NULL;
    if (err)
        snprintf(err, err_len, "%s: engine not built yet", path);
    return ENGINE_ERR_UNSUPPORTED;
}
void engine_model_free(engine_model *m) {
    (void)m;
}
