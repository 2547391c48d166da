/*
 * app.h — server-internal: the state shared by the lifecycle (server.c) and
 * the request side (routes*.c, reqbase.c, proto.c, decode.c, auth.c).
 * Everything here is created before the HTTP
 * threads start and is read-only afterwards, except the atomics.
 */
#ifndef RESNETD_APP_H
#define RESNETD_APP_H

#include "workers.h"
#include "budget.h"
#include "cfg.h"
#include "decode.h"
#include "engine.h"
#include "http.h"
#include "metrics.h"
#include "model_config.h"
#include "queue.h"

#include <stdatomic.h>

typedef struct registry registry;
#include <stddef.h>
#include <stdint.h>

/* One loaded version of a model (server/registry.h): requests hold it by
 * handle (refs) from routing to completion. */
typedef struct app_model app_model;
struct app_model {
    model_config mc;
    engine_model *em;
    engine_model_info info;
    int max_batch; /* effective: --max-batch, else config.json's */
    int workers, threads;
    /* tuned.json values in effect (bench --tune): which of APP_TUNED_* came
     * from tuned_path, with which goal; tuned == 0: none */
    unsigned tuned;
    const char *tuned_goal;
    char tuned_path[4200];
    size_t in_floats; /* C*H*W */
    queue *q;
    workers_pool *pool;
    metrics *metrics; /* the app's, for the queue-depth hook */
    int index;        /* the model's metrics slot (stable per name) */
    long version;
    _Atomic long refs; /* handles held (registry_acquire) */
    app_model *next;   /* the registry's retired list */
    int adopted;       /* registry_adopt: owned by its caller */
};

enum { APP_TUNED_WORKERS = 1, APP_TUNED_THREADS = 2, APP_TUNED_MAX_BATCH = 4 };

typedef struct {
    const cfg_t *cfg;
    struct registry *reg; /* the models (registry.h) */
    metrics *metrics;
    _Atomic int ready;     /* start-up over: every model loaded at start-up warmed */
    _Atomic int draining;  /* SIGTERM/SIGINT seen */
    _Atomic long inflight; /* every request between headers and completion */
    _Atomic long work;     /* classify requests accepted before the drain, not yet answered */
    budget mem;            /* bytes in flight, server-wide (max_inflight_bytes) */
    decode_pool *decode;   /* decodes uploads off the HTTP threads (decode.h) */
    _Atomic uint64_t next_id;
    uint64_t id_seed;
} app;

/* The http_config hooks (routes.c). app is the cls. */
void routes_on_headers(http_req *r, void *app);
void routes_on_body(http_req *r, void *app);
void routes_on_complete(http_req *r, void *app);

#endif
