/*
 * proto.h — server-internal: the plumbing shared by the ecosystem protocol
 * families (routes_v2.c: KServe v2 / Triton, routes_torchserve.c: TorchServe,
 * routes_demo.c: the browser demo). routes.c hands a request to them when
 * proto_owns() claims its path; from then on the request never meets /v1's
 * state, but it shares everything that matters with /v1: the in-flight count
 * the drain waits for, request ids, the access log, the metrics, and the
 * per-model queues (so batching, deadlines and queue limits are the same).
 *
 * Life of a request: proto_on_headers() creates a proto_req and calls the
 * family's on_headers, which answers at once (GETs, errors) or sets
 * p->on_body. proto_on_body() calls it with the whole body. To run images it
 * fills proto_inputs() (tensors, or proto_preprocess() for encoded images)
 * and calls proto_submit(): the request is suspended and the family's finish
 * callback runs on an HTTP thread once every image is back, where it reads
 * proto_outputs() or proto_result()'s error and answers with proto_respond().
 * proto_on_complete() logs, counts and frees everything.
 */
#ifndef RESNETD_PROTO_H
#define RESNETD_PROTO_H

#include "app.h"
#include "reqbase.h"

#include <stddef.h>
#include <stdint.h>

typedef struct proto_req proto_req;

struct proto_req {
    req_base b; /* first: the shared request state (a, r, id, model, ...) */
    /* set by on_headers when the body is wanted */
    void (*on_body)(proto_req *p);
    /* family state, freed with state_free (may be NULL) in on_complete */
    void *state;
    void (*state_free)(void *state);
    /* images submitted (proto_inputs / proto_submit) */
    int n;
    float *in, *out;
    queue_item *items;
    _Atomic int remaining;
    int push_status; /* 0, or the HTTP status of a failed push */
    const char *push_msg;
    void (*finish)(proto_req *p);
};

/* 1 when the path belongs to a protocol family: "/", "/demo/...", "/v2",
 * "/v2/...", "/ping", "/predictions/...". */
int proto_owns(const char *path);

/* The http_config hooks for those paths (routes.c forwards to them). */
void proto_on_headers(http_req *r, void *app);
void proto_on_body(http_req *r, void *app);
void proto_on_complete(http_req *r, void *app);

/* Family entry points, called by proto_on_headers with p->model == -1. */
void routes_v2_on_headers(proto_req *p);
void routes_ts_on_headers(proto_req *p);
void routes_demo_on_headers(proto_req *p);

/* POST /v2/models/{m}/infer once its body is in (routes_v2_infer.c). */
void routes_v2_infer_body(proto_req *p);

/* Sends the response: body (malloc'd or NULL) is taken over. Adds
 * X-Request-Id, Server-Timing (total time in ms), Retry-After on 503 and
 * Connection: close while draining to the NULL-terminated extra header
 * pairs (may be NULL; at most 8 pairs). Counts the request in the metrics.
 * A NULL body with len > 0 (a failed allocation) becomes an empty 500. */
void proto_respond(proto_req *p, int status, const char *content_type, char *body, size_t len,
                   const char *const *extra);

/* The index of the model called name[0..len), or -1. */
int proto_find_model(const app *a, const char *name, size_t len);

/* Whether new inference work is accepted: 0, or 503 with *msg set (and the
 * rejection counted) while the server is draining or not yet ready. Call
 * once per inference request: it counts the request in a->work (which the
 * SIGTERM drain waits for) until proto_on_complete. */
int proto_gate(proto_req *p, const char **msg);

/* Allocates room for n images of p->model: returns the input buffer
 * (n * in_floats, owned by p) or NULL when out of memory. Once per request. */
float *proto_inputs(proto_req *p, int n);

/* Decodes and preprocesses one encoded image of p->model into dst (in_floats
 * floats), timing it in the preprocess histogram. Returns 0, or the HTTP
 * status of the error with err naming the cause. */
int proto_preprocess(proto_req *p, const void *data, size_t len, float *dst, char *err,
                     size_t err_len);

/* Queues the p->n images of proto_inputs() with the deadline and suspends
 * the request; finish(p) then runs on an HTTP thread and must respond. Call
 * from on_body only, as the last thing it does. */
void proto_submit(proto_req *p, int64_t deadline_ns, void (*finish)(proto_req *p));

/* After finish: 200 when every image has its output in proto_outputs(), else
 * the HTTP status (503 queue full/draining, 504 deadline, 500 engine) with
 * *msg naming it. */
int proto_result(const proto_req *p, const char **msg);

/* The n * num_classes output floats (valid after a 200 proto_result). */
static inline const float *proto_outputs(const proto_req *p) {
    return p->out;
}

#endif
