/* cmd_classify.c — `resnetd classify --model M [--top-k K] FILE...`: offline
 * classification, one JSON line per file in the HTTP API's prediction schema
 * (server/json.c). A failing file prints its error line; the others still run.
 * Exit 0 when every file was classified, 1 when any failed, 2 on bad usage. */
#include "commands.h"

#include "engine.h"
#include "file.h"
#include "json.h"
#include "model_config.h"
#include "predict.h"
#include "server.h"
#include "status.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    model_config mc;
    engine_model *em;
    engine_ctx *ctx;
    engine_model_info info;
    float *in, *out;
    predict_entry *preds;
    int top_k;
} classifier;

/* Classifies one file and prints its line. Returns 0 or 1 (failed). */
static int classify_file(classifier *c, const char *path) {
    char err[256] = "";
    const char *code = NULL;
    json_result r = {path, NULL, 0, NULL, NULL};
    void *data = NULL;
    size_t len = 0;
    if (file_read_all(path, 0, &data, &len, err, sizeof err)) {
        code = "io_error";
    } else {
        img_status st = img_preprocess(data, len, &c->mc.input, c->in, err, sizeof err);
        if (st != IMG_OK)
            status_img_http(st, &code);
        else if (engine_run(c->ctx, c->in, c->info.fixed_batch ? c->info.fixed_batch : 1, c->out,
                            err, sizeof err) != ENGINE_OK)
            code = "inference_failed";
        else
            r.npreds = predict_top_k(c->out, c->info.num_classes, c->top_k, c->preds);
    }
    free(data);
    if (code) {
        r.err_code = code;
        r.err_message = err;
    } else {
        r.preds = c->preds;
    }
    char *line = json_classify_line(&c->mc, &r);
    if (line) {
        printf("%s\n", line);
        free(line);
    }
    fflush(stdout);
    return code || !line ? 1 : 0;
}

int cmd_classify(int argc, char **argv) {
    const char *model = NULL;
    char def[PATH_MAX];
    long top_k = 5;
    int first = argc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--top-k") && i + 1 < argc) {
            char *end;
            top_k = strtol(argv[++i], &end, 10);
            if (*end || top_k < 1 || top_k > 100000) {
                fprintf(stderr, "resnetd classify: --top-k: '%s' is not an integer >= 1\n",
                        argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--")) {
            first = i + 1;
            break;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "resnetd classify: unknown option '%s'\n", argv[i]);
            return 2;
        } else {
            first = i;
            break;
        }
    }
    if (first >= argc) {
        fprintf(stderr, "usage: resnetd classify --model M [--top-k K] FILE...\n");
        return 2;
    }
    if (!model) {
        if (server_default_model("fashion-mnist", def, sizeof def)) {
            fprintf(stderr, "resnetd classify: --model missing and no bundled model found\n");
            return 2;
        }
        model = def;
    }
    classifier c;
    memset(&c, 0, sizeof c);
    char err[512];
    int rc = 1;
    if (model_config_load(model, &c.mc, err, sizeof err)) {
        fprintf(stderr, "resnetd classify: %s\n", err);
        return 2;
    }
    engine_load_params lp = model_config_engine_params(&c.mc, 1);
    engine_ctx_params cp = engine_ctx_default_params();
    if (engine_model_load(c.mc.onnx_path, &lp, &c.em, err, sizeof err) != ENGINE_OK ||
        engine_ctx_create(c.em, &cp, &c.ctx, err, sizeof err) != ENGINE_OK) {
        fprintf(stderr, "resnetd classify: %s\n", err);
        goto out;
    }
    engine_model_get_info(c.em, &c.info);
    int batch = c.info.fixed_batch ? c.info.fixed_batch : 1;
    size_t in_floats = (size_t)c.info.channels * (size_t)c.info.height * (size_t)c.info.width;
    c.top_k = (int)top_k;
    c.in = calloc((size_t)batch * in_floats, sizeof(float));
    c.out = malloc((size_t)batch * (size_t)c.info.num_classes * sizeof(float));
    c.preds = malloc((size_t)top_k * sizeof(predict_entry));
    if (!c.in || !c.out || !c.preds) {
        fprintf(stderr, "resnetd classify: out of memory\n");
        goto out;
    }
    if ((size_t)img_channels(&c.mc.input) * (size_t)c.mc.input.crop_h * (size_t)c.mc.input.crop_w !=
        in_floats) {
        fprintf(stderr, "resnetd classify: %s: preprocessing does not match the model's input\n",
                model);
        goto out;
    }
    rc = 0;
    for (int i = first; i < argc; i++)
        rc |= classify_file(&c, argv[i]);
out:
    free(c.in);
    free(c.out);
    free(c.preds);
    engine_ctx_free(c.ctx);
    engine_model_free(c.em);
    model_config_free(&c.mc);
    return rc;
}
