/*
 * workers.h — a model's inference worker pool. Each of `workers` threads owns
 * one engine context (created through the ctx_create hook, so unit tests can
 * plug in a fake engine), warms it up with one batch of every size
 * 1..max_batch, then loops: form a batch from the model's queue
 * (queue_take_batch), drop items whose client is gone (their alive hook says
 * 0: QUEUE_ITEM_CANCELLED) or whose deadline passed (QUEUE_ITEM_EXPIRED),
 * copy the rest into its batch buffer, run, hand each item its output.
 * (Batches are formed by queue_take_batch, queue.h; this is the pool that
 * runs them.)
 */
#ifndef RESNETD_WORKERS_H
#define RESNETD_WORKERS_H

#include "engine.h"
#include "metrics.h"
#include "queue.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    queue *q;
    int workers;
    int max_batch;
    int64_t batch_timeout_ns;
    size_t in_floats;  /* per image */
    size_t out_floats; /* per image */
    /* Engine hooks, called from the worker threads. ctx_create returns a
     * context or NULL with err set; run returns 0 or -1 with err set. run
     * also copies out the taps the batch's items asked for (queue_item.tap,
     * tap_out): fetch[0..nfetch) as engine_run_fetch takes them, image being
     * the item's place in the batch (nfetch 0: no item asked). */
    void *(*ctx_create)(void *user, int worker, char *err, size_t err_len);
    int (*run)(void *ctx, const float *in, int n, float *out, const engine_fetch *fetch, int nfetch,
               char *err, size_t err_len);
    void (*ctx_free)(void *ctx);
    void *user;
    metrics *metrics; /* may be NULL */
    int model;        /* metrics label index */
} workers_params;

typedef struct workers_pool workers_pool;

/* Starts the workers (they warm up in the background). Returns NULL with err
 * set when threads or memory are not available. */
workers_pool *workers_start(const workers_params *p, char *err, size_t err_len);

/* 1 once every worker is warmed up, 0 while warming, -1 when a worker failed
 * to create or warm its context (err, if not NULL, receives its message). */
int workers_ready(workers_pool *b, char *err, size_t err_len);

/* From now on, queued items are finished as QUEUE_ITEM_ABORTED instead of
 * run (the drain deadline passed). Thread-safe. */
void workers_abort(workers_pool *b);

/* Waits for every worker to exit; call after queue_close(). Then frees b.
 * NULL is a no-op. */
void workers_join(workers_pool *b);

#endif
