/*
 * proto.h — server-internal: the plumbing shared by the ecosystem protocol
 * families (routes_v2.c: KServe v2 / Triton, routes_torchserve.c: TorchServe,
 * routes_demo.c: the browser demo). The route table (routes.c) creates a
 * proto_req for their paths and calls the family's on_headers; from then on
 * the request never meets /v1's state, but it shares everything that matters
 * with /v1: the in-flight count the drain waits for, request ids, the access
 * log, the metrics, and the per-model queues (so batching, deadlines and
 * queue limits are the same). Nothing here calls back into the families
 * except through the pointers they set.
 *
 * Life of a request: the family's on_headers answers at once (GETs, errors)
 * or sets p->on_body (after proto_gate, which also announces the request to
 * its model's queue). proto_on_body() calls it with the whole body. To run images
 * it calls proto_submit() (reqbase_submit: the request is suspended, the
 * family's prepare step and the image decodes run on the decode pool, the
 * images go through the model's queue) and the family's finish callback runs
 * on an HTTP thread once every image is back, where it reads
 * proto_result() and proto_outputs() and answers with proto_respond().
 * The route table logs, counts and frees the request (proto_on_free: the
 * family's state).
 */
#ifndef RESNETD_PROTO_H
#define RESNETD_PROTO_H

#include "app.h"
#include "reqbase.h"

#include <stddef.h>
#include <stdint.h>

typedef struct proto_req proto_req;

struct proto_req {
    req_base b; /* first: the shared request state (a, r, id, model, images...) */
    /* set by on_headers when the body is wanted */
    void (*on_body)(proto_req *p);
    /* family state, freed with state_free (may be NULL) in on_complete */
    void *state;
    void (*state_free)(void *state);
    /* proto_submit's callbacks */
    int (*prepare)(proto_req *p);
    void (*finish)(proto_req *p);
};

/* The route table's body and free hooks for a proto_req (req_base first):
 * the body goes to p->on_body when set; the family's state is freed. */
void proto_on_body(req_base *b);
void proto_on_free(req_base *b);

/* Family entry points, called by the route table with p->b.model == -1. */
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

/* reqbase_bind: a handle on model name[0..len) (version < 0: its highest
 * serving one); 0, or -1 when there is none. */
int proto_bind(req_base *b, const char *name, size_t len, long version);

/* Whether new inference work is accepted (reqbase_accept): 0, or 503 with
 * *msg set (and the rejection counted) while the server is draining or not
 * yet ready, 413 for a Content-Length over max_body_bytes. Call
 * once per inference request, with p->b.model set: it counts the request in
 * a->work (which the SIGTERM drain waits for) until the request is done and
 * announces it to the model's queue. */
int proto_gate(proto_req *p, const char **msg);

/* reqbase_submit for a protocol request (see reqbase.h): prepare (may be
 * NULL) runs on a decode thread, then the images are decoded and queued;
 * finish runs on an HTTP thread and must respond. Call from on_body only, as
 * the last thing it does. */
void proto_submit(proto_req *p, int (*prepare)(proto_req *p), void (*finish)(proto_req *p));

/* After finish: 200 when every image has its output in proto_outputs(), else
 * the HTTP status (400/415 bad image, 413 too many images, 503 queue full /
 * draining / over budget, 504 deadline, 500 engine) with *msg naming it. */
int proto_result(const proto_req *p, const char **msg);

/* The nimgs * num_classes output floats (valid after a 200 proto_result). */
static inline const float *proto_outputs(const proto_req *p) {
    return p->b.out;
}

#endif
