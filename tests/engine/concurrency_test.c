/*
 * concurrency_test.c — one immutable model, two contexts, two threads.
 *
 *   concurrency_test MODEL.onnx [BATCH] [THREADS_PER_CTX] [ROUNDS]
 *
 * References come from running the inputs one after the other; then each
 * thread drives its own context on its own input, ROUNDS times, with the
 * inputs swapped between contexts every round. Every output must be
 * bit-identical to its reference: contexts share nothing mutable, and a
 * context's result does not depend on which context ran before it.
 */
#include "engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    engine_ctx *ctx;
    const float *in[2];
    const float *ref[2];
    float *out;
    size_t out_n;
    int batch, rounds, index;
    int mismatches;
    char err[512];
    int failed;
} conc_job;

static void *conc_thread(void *arg) {
    conc_job *j = arg;
    for (int r = 0; r < j->rounds && !j->failed; r++) {
        int which = (r + j->index) % 2; /* swap inputs between contexts each round */
        if (engine_run(j->ctx, j->in[which], j->batch, j->out, j->err, sizeof(j->err)) !=
            ENGINE_OK) {
            j->failed = 1;
            break;
        }
        if (memcmp(j->out, j->ref[which], j->out_n * sizeof(float)) != 0)
            j->mismatches++;
    }
    return NULL;
}

static float *conc_input(size_t n, unsigned seed) {
    float *x = malloc(n * sizeof(float));
    if (!x)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (float)((seed >> 9) & 0xffff) / 32768.0f - 1.0f;
    }
    return x;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: concurrency_test MODEL.onnx [BATCH] [THREADS] [ROUNDS]\n");
        return 2;
    }
    int batch = argc > 2 ? atoi(argv[2]) : 2;
    int threads = argc > 3 ? atoi(argv[3]) : 1;
    int rounds = argc > 4 ? atoi(argv[4]) : 6;
    char err[1024];
    engine_load_params lp = engine_load_default_params();
    lp.max_batch = batch;
    engine_model *m = NULL;
    if (engine_model_load(argv[1], &lp, &m, err, sizeof(err)) != ENGINE_OK) {
        fprintf(stderr, "FAIL: load: %s\n", err);
        return 1;
    }
    engine_model_info info;
    engine_model_get_info(m, &info);
    size_t in_n = (size_t)batch * (size_t)info.channels * (size_t)info.height * (size_t)info.width;
    size_t out_n = (size_t)batch * (size_t)info.num_classes;
    int rc = 1;
    engine_ctx *ctx[2] = {NULL, NULL};
    float *in[2] = {conc_input(in_n, 1), conc_input(in_n, 2)};
    float *ref[2] = {malloc(out_n * sizeof(float)), malloc(out_n * sizeof(float))};
    float *out[2] = {malloc(out_n * sizeof(float)), malloc(out_n * sizeof(float))};
    conc_job job[2];
    memset(job, 0, sizeof(job));
    for (int i = 0; i < 2; i++)
        if (!in[i] || !ref[i] || !out[i]) {
            fprintf(stderr, "FAIL: out of memory\n");
            goto done;
        }
    engine_ctx_params cp = engine_ctx_default_params();
    cp.threads = threads;
    for (int i = 0; i < 2; i++)
        if (engine_ctx_create(m, &cp, &ctx[i], err, sizeof(err)) != ENGINE_OK) {
            fprintf(stderr, "FAIL: context %d: %s\n", i, err);
            goto done;
        }
    /* Sequential references: context 0 runs input 0, context 1 input 1. */
    for (int i = 0; i < 2; i++)
        if (engine_run(ctx[i], in[i], batch, ref[i], err, sizeof(err)) != ENGINE_OK) {
            fprintf(stderr, "FAIL: sequential run %d: %s\n", i, err);
            goto done;
        }
    if (memcmp(ref[0], ref[1], out_n * sizeof(float)) == 0) {
        fprintf(stderr, "FAIL: different inputs gave the same output\n");
        goto done;
    }
    pthread_t tid[2];
    for (int i = 0; i < 2; i++) {
        job[i] = (conc_job){.ctx = ctx[i],
                            .in = {in[0], in[1]},
                            .ref = {ref[0], ref[1]},
                            .out = out[i],
                            .out_n = out_n,
                            .batch = batch,
                            .rounds = rounds,
                            .index = i};
        if (pthread_create(&tid[i], NULL, conc_thread, &job[i]) != 0) {
            fprintf(stderr, "FAIL: pthread_create\n");
            if (i == 1)
                pthread_join(tid[0], NULL);
            goto done;
        }
    }
    pthread_join(tid[0], NULL);
    pthread_join(tid[1], NULL);
    rc = 0;
    for (int i = 0; i < 2; i++) {
        if (job[i].failed) {
            fprintf(stderr, "FAIL: thread %d: %s\n", i, job[i].err);
            rc = 1;
        }
        if (job[i].mismatches) {
            fprintf(stderr, "FAIL: thread %d: %d of %d runs differ from the sequential result\n", i,
                    job[i].mismatches, rounds);
            rc = 1;
        }
    }
    if (rc == 0)
        printf("ok: 2 contexts x %d threads, batch %d, %d rounds each: bit-identical\n", threads,
               batch, rounds);
done:
    for (int i = 0; i < 2; i++) {
        engine_ctx_free(ctx[i]);
        free(in[i]);
        free(ref[i]);
        free(out[i]);
    }
    engine_model_free(m);
    return rc;
}
