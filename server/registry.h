/*
 * registry.h — the live model registry: models by name, each with versions;
 * a version is a loaded engine model with its queue, worker pool and
 * metrics slot (app_model), handed to requests as a refcounted handle.
 *
 * Requests: registry_acquire at routing, registry_release at completion
 * (reqbase_done). A version taken out of service (swapped for a newer one,
 * unloaded, out of its version_policy) takes no new handle; once its last
 * handle is released the loader thread stops its workers and frees it.
 *
 * One loader thread does every load after start-up, one at a time: engine
 * load, warm-up of every batch size, then the version is published
 * atomically (under the registry lock). A failed load leaves what served
 * serving, and shows as UNAVAILABLE with its reason.
 */
#ifndef RESNETD_REGISTRY_H
#define RESNETD_REGISTRY_H

#include "app.h"

#include <jansson.h>

/* Version states (Triton's repository index). */
enum { REG_READY = 0, REG_LOADING, REG_UNLOADING, REG_UNAVAILABLE };
const char *registry_state_name(int state);

/* Start-up: parses model_control_mode, scans the models (--model, the
 * repository; in explicit mode only --load-model ones) and loads them (engine,
 * queue, workers warming up). Returns 0; 2 on a configuration error; 1 when a
 * model failed and exit_on_error is set (err says which). */
int registry_start(app *a, char *err, size_t len);

/* Start-up, polled by the main thread: 1 once every version loaded at
 * start-up is warm (they are then READY and the loader thread runs), 0 while
 * warming, -1 when one failed and exit_on_error is set. */
int registry_startup_poll(app *a, char *err, size_t len);

/* Publishes a version its caller built and owns (tests, fuzz harnesses):
 * READY at once, never freed by the registry. Returns 0 or -1. */
int registry_adopt(app *a, app_model *m);

/* SIGHUP: asks the loader thread for a rescan (none and poll modes). */
void registry_rescan(app *a);

/* Shutdown: stops the loader thread; then the helpers the drain needs over
 * every version (published and retired). */
void registry_stop_loader(app *a);
void registry_flush(app *a); /* queue_flush */
void registry_abort(app *a); /* workers_abort */
void registry_close(app *a); /* queue_close + workers_join */
void registry_free(app *a);  /* frees everything */

/* A handle on model `name` (len bytes), version `version` (< 0: its highest
 * serving version); NULL when there is none. */
app_model *registry_acquire(app *a, const char *name, size_t len, long version);
void registry_release(app_model *m);

/* A handle on the first model that serves (the first --model, else the
 * repository's first by name): /v1/classify. NULL when none. */
app_model *registry_acquire_first(app *a);

/* Handles on the highest serving version of every model, in the order they were found; at most
 * max. Release each. */
int registry_list(app *a, app_model **out, int max);

/* The models' versions and states: [{"name","version","state","reason"}];
 * name NULL: every model; ready_only: READY ones only. New reference. */
json_t *registry_index(app *a, const char *name, int ready_only);

/* /readyz under strict_readiness: 1 when every model that should serve has
 * a READY version. */
int registry_all_ready(app *a);

/* 1 with the first such model's name in name when a model that should
 * serve has no READY version; else 0. */
int registry_not_ready(app *a, char *name, size_t len);

/* /readyz, /v2/health/ready, ServerReady: start-up over, not draining and,
 * under strict_readiness, registry_all_ready. */
int registry_server_ready(app *a);

/* POST /v2/repository/models/NAME/load (load 1) or /unload (load 0):
 * returns 200, 400 (model control disabled), 404 (unknown model) or 400
 * (the load failed), with msg set. Blocks until the loader has done it. */
int registry_control(app *a, const char *name, size_t len, int load, char *msg, size_t msg_len);

/* registry_control without waiting (the gRPC port's event loop): returns 0
 * when the op is queued, and done(ctx, status, msg) is then called exactly
 * once, on the loader thread, when it has run (or with 503 when the loader
 * stops first; registry_stop_loader returns after every such call). Any
 * other return is the status registry_control would give, with msg set,
 * and done is not called. */
typedef void (*registry_done_fn)(void *ctx, int status, const char *msg);
int registry_control_async(app *a, const char *name, size_t len, int load, registry_done_fn done,
                           void *ctx, char *msg, size_t msg_len);

/* Appends the registry's metrics (resnetd_model_ready, _loads_total,
 * _load_duration_seconds) to *text (realloc'd). Returns 0 or -1 (OOM). */
int registry_metrics(app *a, char **text, size_t *len);

#endif
