/*
 * batch_exact_test.c — an image's output does not depend on the batch it
 * runs in.
 *
 *   batch_exact_test MODEL.onnx [MAX_BATCH] [THREADS] [WINOGRAD_FORCE]
 *
 * The server batches concurrent requests, so one image may run alone or
 * with up to MAX_BATCH - 1 others; its answer must be the same bytes either
 * way. The model is loaded for MAX_BATCH (weights laid out once for that
 * load; on AVX-512, Winograd layers on small maps then run one image at a
 * time, engine/dnnl/dnnl_conv.c). MAX_BATCH distinct images run as one
 * batch; each must equal, bit for bit, the same image run alone (batch 1),
 * and the first three run as a batch of 3. Numerics against ONNX Runtime at
 * batches 1, 3 and 8: engine_model_*. WINOGRAD_FORCE=1 forces Winograd on
 * every conv where oneDNN has it (7x7 maps included), as `bench --tune` may
 * choose it.
 */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fill(float *x, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (float)((seed >> 9) & 0xffff) / 32768.0f - 1.0f;
    }
}

typedef struct {
    engine_model *m;
    engine_ctx *ctx;
} loaded;

static int load(const char *path, int max_batch, int threads, int force, loaded *l, char *err,
                size_t len) {
    engine_load_params lp = engine_load_default_params();
    lp.max_batch = max_batch;
    if (force)
        lp.conv_force = ENGINE_CONV_WINOGRAD;
    engine_ctx_params cp = engine_ctx_default_params();
    cp.threads = threads;
    if (engine_model_load(path, &lp, &l->m, err, len) != ENGINE_OK)
        return -1;
    return engine_ctx_create(l->m, &cp, &l->ctx, err, len) == ENGINE_OK ? 0 : -1;
}

/* Runs images [first, first + n) of in as one batch into out. */
static int run(loaded *l, const float *in, size_t per_in, int first, int n, float *out, char *err,
               size_t len) {
    return engine_run(l->ctx, in + (size_t)first * per_in, n, out, err, len) == ENGINE_OK ? 0 : -1;
}

static int same(const float *a, const float *b, size_t n, const char *what, int image) {
    if (memcmp(a, b, n * sizeof(float)) == 0)
        return 1;
    size_t k = 0;
    while (k < n && a[k] == b[k])
        k++;
    fprintf(stderr, "FAIL: image %d, %s: output %zu is %.9g, alone %.9g\n", image, what, k,
            (double)a[k], (double)b[k]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: batch_exact_test MODEL.onnx [MAX_BATCH] [THREADS] [FORCE]\n");
        return 2;
    }
    int maxb = argc > 2 ? atoi(argv[2]) : 8;
    int threads = argc > 3 ? atoi(argv[3]) : 2;
    int force = argc > 4 ? atoi(argv[4]) : 0;
    if (maxb < 3 || maxb > 64 || threads < 1) {
        fprintf(stderr, "batch_exact_test: MAX_BATCH 3..64, THREADS >= 1\n");
        return 2;
    }
    char err[1024];
    loaded big = {0};
    float *in = NULL, *whole = NULL, *three = NULL, *alone = NULL;
    int rc = 1, checked = 0;
    if (load(argv[1], maxb, threads, force, &big, err, sizeof err)) {
        fprintf(stderr, "FAIL: load: %s\n", err);
        goto done;
    }
    engine_model_info info;
    engine_model_get_info(big.m, &info);
    size_t per_in = (size_t)info.channels * (size_t)info.height * (size_t)info.width;
    size_t per_out = (size_t)info.num_classes;
    in = malloc((size_t)maxb * per_in * sizeof(float));
    whole = malloc((size_t)maxb * per_out * sizeof(float));
    three = malloc(3 * per_out * sizeof(float));
    alone = malloc(per_out * sizeof(float));
    if (!in || !whole || !three || !alone) {
        fprintf(stderr, "FAIL: out of memory\n");
        goto done;
    }
    fill(in, (size_t)maxb * per_in, 7);
    if (run(&big, in, per_in, 0, maxb, whole, err, sizeof err) ||
        run(&big, in, per_in, 0, 3, three, err, sizeof err)) {
        fprintf(stderr, "FAIL: run: %s\n", err);
        goto done;
    }
    rc = 0;
    for (int i = 0; i < maxb; i++) {
        if (run(&big, in, per_in, i, 1, alone, err, sizeof err)) {
            fprintf(stderr, "FAIL: run: %s\n", err);
            rc = 1;
            break;
        }
        if (!same(whole + (size_t)i * per_out, alone, per_out, "batch vs alone", i) ||
            (i < 3 && !same(three + (size_t)i * per_out, alone, per_out, "batch 3 vs alone", i)))
            rc = 1;
        checked++;
    }
    if (rc == 0)
        printf("ok: %d images x %zu outputs bit-identical at batch %d, 3 and 1, %d threads%s\n",
               checked, per_out, maxb, threads, force ? ", Winograd forced" : "");
done:
    engine_ctx_free(big.ctx);
    engine_model_free(big.m);
    free(in);
    free(whole);
    free(three);
    free(alone);
    return rc;
}
