/*
 * cmd_infer.c — `resnetd infer --model M IN.npy OUT.npy`: the model's raw
 * output for a float32 NCHW tensor.
 *
 * Any batch N is accepted: the tensor is cut into chunks of the model's
 * max_batch (or exactly its fixed batch, zero-padding the last chunk) and the
 * outputs are concatenated into [N, classes]. Exit codes (docs/cli.md):
 * 0 ok, 1 runtime failure (unreadable file, bad model, shape mismatch),
 * 2 bad usage or a bad model directory / config.json.
 */
#include "commands.h"
#include "engine.h"
#include "model_config.h"
#include "npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void infer_usage(FILE *f) {
    fprintf(f, "usage: resnetd infer --model M [--max-batch B] [--threads T] IN.npy OUT.npy\n"
               "  M is a .onnx file or a model directory holding model.onnx.\n"
               "  IN.npy is float32 [N,C,H,W]; OUT.npy receives float32 [N,classes].\n");
}

/* Parses a positive int option value; returns -1 when it is not one. */
static int infer_parse_int(const char *s, int max) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > max)
        return -1;
    return (int)v;
}

/* Runs every image of in through ctx, chunk images at a time. out holds
 * n * classes floats. Returns 0, or -1 with err set. */
static int infer_run_all(engine_ctx *ctx, const engine_model_info *info, const float *in, int n,
                         float *out, char *err, size_t err_len) {
    size_t img = (size_t)info->channels * (size_t)info->height * (size_t)info->width;
    size_t cls = (size_t)info->num_classes;
    int chunk = info->fixed_batch > 0 ? info->fixed_batch : info->max_batch;
    float *pad_in = NULL, *pad_out = NULL;
    int rc = 0;
    for (int done = 0; done < n && rc == 0; done += chunk) {
        int k = n - done < chunk ? n - done : chunk;
        const float *src = in + (size_t)done * img;
        float *dst = out + (size_t)done * cls;
        int run_n = k;
        if (info->fixed_batch > 0 && k < chunk) {
            /* A fixed-batch model runs only its own batch: pad with zeros. */
            pad_in = calloc((size_t)chunk * img, sizeof(float));
            pad_out = calloc((size_t)chunk * cls, sizeof(float));
            if (!pad_in || !pad_out) {
                snprintf(err, err_len, "out of memory for a padded batch of %d", chunk);
                rc = -1;
                break;
            }
            memcpy(pad_in, src, (size_t)k * img * sizeof(float));
            src = pad_in;
            dst = pad_out;
            run_n = chunk;
        }
        char eerr[512] = "";
        engine_status st = engine_run(ctx, src, run_n, dst, eerr, sizeof(eerr));
        if (st != ENGINE_OK) {
            snprintf(err, err_len, "inference failed on images %d..%d (%s): %s", done, done + k - 1,
                     engine_status_str(st), eerr);
            rc = -1;
        } else if (dst == pad_out) {
            memcpy(out + (size_t)done * cls, pad_out, (size_t)k * cls * sizeof(float));
        }
    }
    free(pad_in);
    free(pad_out);
    return rc;
}

int cmd_infer(int argc, char **argv) {
    const char *model = NULL, *in_path = NULL, *out_path = NULL;
    int max_batch = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            infer_usage(stdout);
            return 0;
        } else if ((strcmp(a, "--model") == 0 || strcmp(a, "--max-batch") == 0 ||
                    strcmp(a, "--threads") == 0)) {
            if (i + 1 >= argc) {
                fprintf(stderr, "resnetd infer: %s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (strcmp(a, "--model") == 0) {
                model = v;
            } else if (strcmp(a, "--max-batch") == 0) {
                if ((max_batch = infer_parse_int(v, 4096)) < 0) {
                    fprintf(stderr, "resnetd infer: --max-batch '%s' is not in 1..4096\n", v);
                    return 2;
                }
            } else if ((threads = infer_parse_int(v, 1024)) < 0) {
                fprintf(stderr, "resnetd infer: --threads '%s' is not in 1..1024\n", v);
                return 2;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "resnetd infer: unknown option '%s'\n", a);
            return 2;
        } else if (!in_path) {
            in_path = a;
        } else if (!out_path) {
            out_path = a;
        } else {
            fprintf(stderr, "resnetd infer: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!model || !in_path || !out_path) {
        fprintf(stderr, "resnetd infer: need --model M, IN.npy and OUT.npy\n");
        infer_usage(stderr);
        return 2;
    }

    char err[1024] = "";
    npy_array in;
    if (npy_read(in_path, &in, err, sizeof(err)) != 0) {
        fprintf(stderr, "resnetd infer: %s\n", err);
        return 1;
    }
    model_config mc;
    if (model_config_resolve(model, &mc, err, sizeof(err)) != 0) {
        npy_free(&in);
        fprintf(stderr, "resnetd infer: %s\n", err);
        return 2;
    }

    int rc = 1;
    engine_model *m = NULL;
    engine_ctx *ctx = NULL;
    float *out = NULL;
    /* --max-batch overrides config.json */
    engine_load_params lp = model_config_engine_params(&mc, max_batch);
    engine_status st = engine_model_load(mc.onnx_path, &lp, &m, err, sizeof(err));
    if (st != ENGINE_OK) {
        fprintf(stderr, "resnetd infer: %s\n", err);
        goto done;
    }
    engine_model_info info;
    engine_model_get_info(m, &info);
    if (in.ndim != 4 || in.dims[1] != info.channels || in.dims[2] != info.height ||
        in.dims[3] != info.width || in.dims[0] < 1 || in.dims[0] > (1 << 30)) {
        char shape[128] = "";
        size_t o = 0;
        for (int i = 0; i < in.ndim && o < sizeof(shape); i++)
            o += (size_t)snprintf(shape + o, sizeof(shape) - o, "%s%lld", i ? "," : "",
                                  (long long)in.dims[i]);
        fprintf(stderr,
                "resnetd infer: %s: shape (%s) does not match the model's input [N,%d,%d,%d]\n",
                in_path, shape, info.channels, info.height, info.width);
        goto done;
    }
    int n = (int)in.dims[0];
    out = malloc((size_t)n * (size_t)info.num_classes * sizeof(float));
    if (!out) {
        fprintf(stderr, "resnetd infer: out of memory for %d outputs\n", n);
        goto done;
    }
    engine_ctx_params cp = engine_ctx_default_params();
    if (threads > 0)
        cp.threads = threads;
    st = engine_ctx_create(m, &cp, &ctx, err, sizeof(err));
    if (st != ENGINE_OK) {
        fprintf(stderr, "resnetd infer: %s\n", err);
        goto done;
    }
    if (infer_run_all(ctx, &info, in.data, n, out, err, sizeof(err)) != 0) {
        fprintf(stderr, "resnetd infer: %s\n", err);
        goto done;
    }
    int64_t dims[2] = {n, info.num_classes};
    if (npy_write(out_path, 2, dims, out, err, sizeof(err)) != 0) {
        fprintf(stderr, "resnetd infer: %s\n", err);
        goto done;
    }
    rc = 0;
done:
    free(out);
    engine_ctx_free(ctx);
    engine_model_free(m);
    model_config_free(&mc);
    npy_free(&in);
    return rc;
}
