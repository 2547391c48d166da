/*
 * fuzz_fake.h — the engine the in-process server fuzzers (fuzz_request.c,
 * fuzz_grpc.c) plug into the worker pool (workers.h hooks): each context is
 * its app_model, and an image's output row is the sum of its input times
 * (class + 1) / 1000, so answers depend on every input float and are cheap.
 */
#ifndef RESNETD_FUZZ_FAKE_H
#define RESNETD_FUZZ_FAKE_H

#include "app.h"

static inline void *fuzz_fake_ctx_create(void *user, int worker, char *err, size_t err_len) {
    (void)worker, (void)err, (void)err_len;
    return user;
}

static inline int fuzz_fake_run(void *ctx, const float *in, int n, float *out,
                                const engine_fetch *fetch, int nfetch, char *err, size_t err_len) {
    (void)err, (void)err_len, (void)fetch, (void)nfetch;
    const app_model *m = ctx;
    size_t in_floats = m->in_floats;
    int nc = m->info.num_classes;
    for (int i = 0; i < n; i++) {
        float s = 0;
        for (size_t k = 0; k < in_floats; k++)
            s += in[(size_t)i * in_floats + k];
        for (int j = 0; j < nc; j++)
            out[i * nc + j] = s * (float)(j + 1) / 1000.0f;
    }
    return 0;
}

static inline void fuzz_fake_ctx_free(void *ctx) {
    (void)ctx;
}

#endif
