/* workers.c — a model's inference worker pool (see workers.h and the design note in queue.h). */
#include "workers.h"

#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    workers_pool *b;
    int index;
    pthread_t thread;
    int started;
} worker;

struct workers_pool {
    workers_params p;
    worker *w;
    _Atomic int warmed, failed, aborted;
    pthread_mutex_t err_mu; /* guards err */
    char err[256];
};

static void fail(workers_pool *b, const char *msg) {
    pthread_mutex_lock(&b->err_mu);
    if (!b->err[0])
        snprintf(b->err, sizeof b->err, "%s", msg);
    pthread_mutex_unlock(&b->err_mu);
    atomic_store(&b->failed, 1);
}

static void finish(queue_item *it, queue_item_status st) {
    it->status = st;
    it->done(it);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    workers_pool *b = w->b;
    const workers_params *p = &b->p;
    char err[256] = "";
    float *in = calloc((size_t)p->max_batch * p->in_floats, sizeof(float));
    float *out = malloc((size_t)p->max_batch * p->out_floats * sizeof(float));
    queue_item **items = malloc((size_t)p->max_batch * sizeof(*items));
    engine_fetch *fetch = malloc((size_t)p->max_batch * sizeof(*fetch));
    void *ctx = NULL;
    int ok = in && out && items && fetch;
    if (!ok)
        fail(b, "worker: out of memory");
    else if (!(ctx = p->ctx_create(p->user, w->index, err, sizeof err))) {
        fail(b, err);
        ok = 0;
    }
    /* Warm-up: every batch size once, so no request pays for first-run setup. */
    for (int n = 1; ok && n <= p->max_batch; n++)
        if (p->run(ctx, in, n, out, NULL, 0, err, sizeof err)) {
            fail(b, err);
            ok = 0;
        }
    if (ok)
        atomic_fetch_add(&b->warmed, 1);
    for (;;) {
        int n = queue_take_batch(p->q, items, p->max_batch, p->batch_timeout_ns);
        if (n == 0)
            break;
        int64_t now = queue_now_ns();
        int k = 0;
        for (int i = 0; i < n; i++) {
            queue_item *it = items[i];
            if (!ok || atomic_load(&b->aborted))
                finish(it, QUEUE_ITEM_ABORTED);
            else if (it->alive && !it->alive(it)) /* its client is gone: never run */
                finish(it, QUEUE_ITEM_CANCELLED);
            else if (it->deadline_ns && now > it->deadline_ns) {
                if (p->metrics)
                    metrics_rejected(p->metrics, METRICS_REJECT_DEADLINE);
                finish(it, QUEUE_ITEM_EXPIRED);
            } else {
                if (p->metrics)
                    metrics_observe(p->metrics, METRICS_H_QUEUE, p->model,
                                    (double)(now - it->enqueue_ns) / 1e9);
                memcpy(in + (size_t)k * p->in_floats, it->input, p->in_floats * sizeof(float));
                items[k++] = it;
            }
        }
        if (k == 0)
            continue;
        int nfetch = 0;
        for (int i = 0; i < k; i++)
            if (items[i]->tap_out)
                fetch[nfetch++] = (engine_fetch){i, items[i]->tap, items[i]->tap_out};
        int64_t t0 = queue_now_ns();
        int rc = p->run(ctx, in, k, out, fetch, nfetch, err, sizeof err), tap_failed = 0;
        if (rc && nfetch) { /* a tap that cannot be copied fails its own items only */
            log_msg(LOG_ERROR, "inference with internal tensors failed", err);
            tap_failed = 1;
            rc = p->run(ctx, in, k, out, NULL, 0, err, sizeof err);
        }
        if (p->metrics) {
            metrics_observe(p->metrics, METRICS_H_INFERENCE, p->model,
                            (double)(queue_now_ns() - t0) / 1e9);
            metrics_batch_size(p->metrics, p->model, k);
        }
        if (rc) /* one log line; the items are answered 500 below */
            log_msg(LOG_ERROR, "inference failed", err);
        for (int i = 0; i < k; i++) {
            if (!rc)
                memcpy(items[i]->output, out + (size_t)i * p->out_floats,
                       p->out_floats * sizeof(float));
            finish(items[i],
                   rc || (tap_failed && items[i]->tap_out) ? QUEUE_ITEM_FAILED : QUEUE_ITEM_OK);
        }
    }
    if (ctx)
        p->ctx_free(ctx);
    free(in);
    free(out);
    free(items);
    free(fetch);
    return NULL;
}

workers_pool *workers_start(const workers_params *p, char *err, size_t err_len) {
    workers_pool *b = calloc(1, sizeof(*b));
    if (!b || !(b->w = calloc((size_t)p->workers, sizeof(worker)))) {
        free(b);
        snprintf(err, err_len, "workers: out of memory");
        return NULL;
    }
    b->p = *p;
    pthread_mutex_init(&b->err_mu, NULL);
    for (int i = 0; i < p->workers; i++) {
        b->w[i].b = b;
        b->w[i].index = i;
        if (pthread_create(&b->w[i].thread, NULL, worker_main, &b->w[i])) {
            snprintf(err, err_len, "workers: cannot start worker %d", i);
            queue_close(p->q);
            workers_join(b);
            return NULL;
        }
        b->w[i].started = 1;
    }
    return b;
}

int workers_ready(workers_pool *b, char *err, size_t err_len) {
    if (atomic_load(&b->failed)) {
        if (err) {
            pthread_mutex_lock(&b->err_mu);
            snprintf(err, err_len, "%s", b->err);
            pthread_mutex_unlock(&b->err_mu);
        }
        return -1;
    }
    return atomic_load(&b->warmed) == b->p.workers;
}

void workers_abort(workers_pool *b) {
    atomic_store(&b->aborted, 1);
}

void workers_join(workers_pool *b) {
    if (!b)
        return;
    for (int i = 0; i < b->p.workers; i++)
        if (b->w[i].started)
            pthread_join(b->w[i].thread, NULL);
    pthread_mutex_destroy(&b->err_mu);
    free(b->w);
    free(b);
}
