/*
 * metrics.h — the Prometheus metrics (docs/metrics.md). Writers (HTTP threads,
 * workers) only do relaxed atomic adds: no lock is ever taken on the hot
 * path. The /metrics handler reads the atomics and renders text format 0.0.4.
 *
 * Histogram buckets (upper bounds, cumulative "le" in the exposition):
 *   durations (seconds): 0.0005 * 2^k for k = 0..15, i.e. 0.5 ms .. 16.384 s, then +Inf;
 *   resnetd_batch_size: 1, 2, ..., max_batch (largest of any model, at most 64), then +Inf.
 * Requests that name no model (/healthz, /metrics, 404s...) carry model="".
 */
#ifndef RESNETD_METRICS_H
#define RESNETD_METRICS_H

#include "budget.h"

#include <stddef.h>
#include <stdint.h>

typedef struct metrics metrics;

typedef enum {
    METRICS_REJECT_QUEUE_FULL = 0,
    METRICS_REJECT_DRAINING,
    METRICS_REJECT_NOT_READY,
    METRICS_REJECT_DEADLINE,
    METRICS_REJECT_BODY_TOO_LARGE,
    METRICS_REJECT_OVER_BUDGET, /* the server-wide budget (budget.h) refused bytes */
    METRICS_REJECT_COUNT
} metrics_reason;

/* Why work was dropped because its client went away
 * (resnetd_cancelled_total{model,reason}). */
typedef enum {
    METRICS_CANCEL_CLIENT_CLOSED = 0, /* closed or reset while its images waited */
    METRICS_CANCEL_UPLOAD_ABORTED,    /* closed or reset mid-body */
    METRICS_CANCEL_STREAM_RESET,      /* an HTTP/2 stream reset (gRPC) */
    METRICS_CANCEL_COUNT
} metrics_cancel;

typedef enum {
    METRICS_H_REQUEST = 0, /* resnetd_request_duration_seconds */
    METRICS_H_QUEUE,       /* resnetd_queue_duration_seconds */
    METRICS_H_PREPROCESS,  /* resnetd_preprocess_duration_seconds */
    METRICS_H_INFERENCE,   /* resnetd_inference_duration_seconds */
    METRICS_H_COUNT
} metrics_hist;

/* The protocol a request came in by: the "protocol" label of
 * resnetd_requests_total and resnetd_request_duration_seconds. */
typedef enum { METRICS_PROTO_HTTP = 0, METRICS_PROTO_GRPC, METRICS_PROTO_COUNT } metrics_proto;

/* Creates the registry for n models (names copied). max_batch sizes the
 * batch-size histogram. Returns NULL when out of memory. */
metrics *metrics_create(const char *const *model_names, int n, int max_batch);

/* Per-model series are per (model, version): at most METRICS_MAX_MODELS at
 * once. A slot is given back (metrics_remove_model) when its version is
 * freed, and its series leave /metrics. */
#define METRICS_MAX_MODELS 256

/* A new slot for version `version` of model `name` (a free one reused, its
 * counters zeroed). Returns -1 when METRICS_MAX_MODELS are in use or out of
 * memory. metrics_create names its models' version "1". */
int metrics_add_model(metrics *m, const char *name, const char *version);

/* Gives slot `model` back (its version is freed: nothing writes to it any
 * more); -1 is a no-op. */
void metrics_remove_model(metrics *m, int model);

/* The name of model index `model` ("" for -1); stable until metrics_destroy. */
const char *metrics_model_name(const metrics *m, int model);

/* Frees the registry; NULL is a no-op. */
void metrics_destroy(metrics *m);

/* model is an index in [0, n) or -1 for "no model". Thread-safe, lock-free. */
void metrics_request(metrics *m, int model, int http_status); /* protocol="http" */
/* A request of protocol p; a gRPC answer is counted by the HTTP status its
 * gRPC status stands for (docs/grpc.md), so code=~"5.." means the same. */
void metrics_request_proto(metrics *m, int model, int http_status, int p);
void metrics_images(metrics *m, int model, int n);
void metrics_rejected(metrics *m, metrics_reason r);
void metrics_cancelled(metrics *m, int model, metrics_cancel r);
void metrics_observe(metrics *m, metrics_hist h, int model, double seconds);
/* METRICS_H_REQUEST of protocol p (metrics_observe's is protocol="http"). */
void metrics_observe_request(metrics *m, int model, int p, double seconds);
void metrics_batch_size(metrics *m, int model, int n);
void metrics_queue_depth_add(metrics *m, int model, int delta);
void metrics_inflight_add(metrics *m, int delta);

/* Exports b (read at each render) as resnetd_inflight_bytes{,_limit,_peak}.
 * b must outlive m; NULL: not exported. */
void metrics_set_budget(metrics *m, const budget *b);

/* A model's totals so far (the gRPC ModelStatistics RPC): requests
 * answered 200 and otherwise (every protocol), images answered, and the
 * count and summed nanoseconds of its request, queue, preprocess and
 * inference histograms (inference: one per engine_run call). */
typedef struct {
    uint64_t ok, failed, images;
    uint64_t count[METRICS_H_COUNT], ns[METRICS_H_COUNT];
} metrics_model_totals;
void metrics_totals(const metrics *m, int model, metrics_model_totals *t);

/* Current queue depth gauge of a model (for tests and drain). */
long metrics_queue_depth(const metrics *m, int model);

/* Renders the exposition text; *out is malloc'd (caller frees), *len its size.
 * Returns 0, or -1 when out of memory. */
int metrics_render(const metrics *m, char **out, size_t *len);

#endif
