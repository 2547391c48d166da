/* engine_timing.c — a developer's stopwatch for the engine (not a test):
 *   [ENGINE_TIMING_WARM=1] [ENGINE_TIMING_DIRECT=1] engine_timing MODEL.onnx BATCH THREADS SECONDS
 * [IN.npy OUT.npy] prints load time, first-run time (plan build) and steady-state img/s; with
 * IN/OUT it also runs IN (any batch up to 64) once and writes the output. */
#include "engine.h"
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL BATCH THREADS SECONDS\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[2]);
    char err[512];
    engine_load_params lp = engine_load_default_params();
    lp.max_batch = n > 8 ? n : 8;
    lp.winograd = !getenv("ENGINE_TIMING_DIRECT");
    double t0 = now();
    engine_model *m;
    if (engine_model_load(argv[1], &lp, &m, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double t1 = now();
    engine_ctx_params cp = engine_ctx_default_params();
    cp.threads = atoi(argv[3]);
    engine_ctx *c;
    if (engine_ctx_create(m, &cp, &c, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    engine_model_info mi;
    engine_model_get_info(m, &mi);
    size_t isz = (size_t)n * mi.channels * mi.height * mi.width;
    float *in = malloc(isz * sizeof(float)), *out = malloc((size_t)n * mi.num_classes * 4);
    for (size_t i = 0; i < isz; i++)
        in[i] = (float)(i % 255) / 255.f;
    double tw = now();
    if (getenv("ENGINE_TIMING_WARM") && engine_ctx_warm(c, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double t2 = now();
    if (getenv("ENGINE_TIMING_WARM"))
        printf("warm %.3fs\n", t2 - tw);
    if (engine_run(c, in, n, out, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double t3 = now();
    int iters = 0;
    double end = t3 + atof(argv[4]);
    while (now() < end) {
        engine_run(c, in, n, out, err, sizeof err);
        iters++;
    }
    double t4 = now();
    if (argc >= 7) {
        npy_array a;
        if (npy_read(argv[5], &a, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        int bn = (int)a.dims[0];
        float *o = malloc((size_t)bn * mi.num_classes * sizeof(float));
        if (!o || engine_run(c, a.data, bn, o, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        int64_t od[2] = {bn, mi.num_classes};
        if (npy_write(argv[6], 2, od, o, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        free(o);
        npy_free(&a);
    }
    printf("load %.3fs first-run %.3fs steady %.2f img/s (%d iters, %.1f ms/batch)\n", t1 - t0,
           t3 - t2, iters ? iters * n / (t4 - t3) : 0.0, iters,
           iters ? (t4 - t3) / iters * 1e3 : 0.0);
    engine_ctx_free(c);
    engine_model_free(m);
    free(in);
    free(out);
    return 0;
}
