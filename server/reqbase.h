/*
 * reqbase.h — what every HTTP request shares, whichever route family answers
 * it (/v1 in routes.c; /v2, TorchServe and the demo page through proto.c):
 * its start, its X-Request-Id, how its answer goes out and is counted, the
 * drain/readiness gate for inference, its images (tensors reserved in the
 * bytes budget, decoded on the decode pool, pushed into the model's queue:
 * reqbase_images, reqbase_submit) and its end (access log, counters, memory).
 *
 * A family's request struct has a req_base as its FIRST member, so the
 * pointer reqbase_new returns is the family's struct.
 */
#ifndef RESNETD_REQBASE_H
#define RESNETD_REQBASE_H

#include "app.h"
#include "decode.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* One image of a request: its encoded bytes (data NULL: its tensor is
 * already in place, e.g. a v2 FP32 input), its queue item and, when it could
 * not be decoded, why. */
typedef struct {
    queue_item qi;
    const void *data; /* owned by the request (its body) or by the family */
    size_t len;
    const char *filename; /* /v1 multipart: the part's file name */
    int err_status;       /* 0, or the HTTP status of its decode error */
    const char *err_code; /* its JSON error code (static) */
    char err_msg[200];
    int pushed; /* handed to the model's queue (qi.status is then its fate) */
} reqbase_img;

typedef struct req_base req_base;

struct req_base {
    app *a;
    http_req *r;
    int64_t t0_ns;
    char id[72];   /* X-Request-Id: the client's when short printable ASCII */
    int model;     /* the model's metrics index, or -1 */
    app_model *mv; /* its version: a handle (registry_acquire) held until reqbase_done */
    int draining;  /* the server was draining when the request came in */
    /* its family's hooks, from the route table (routes.c): the body is in
     * (NULL: no body wanted), and the family's own state to free (NULL: none) */
    void (*on_body)(req_base *b);
    void (*on_free)(req_base *b);
    int work;      /* counted in a->work (inference accepted; the drain waits for it) */
    int counted;   /* metrics_request done */
    int images_ok; /* images that got predictions */
    int expected;  /* announced to the model's queue (queue_expect) */
    /* images (reqbase_images / reqbase_submit) */
    reqbase_img *imgs;
    int nimgs;
    float *in, *out; /* nimgs tensors in, nimgs rows of num_classes out */
    float *tap_out;  /* reqbase_tap: nimgs rows of tap_floats, or NULL */
    size_t tap_floats;
    uint64_t reserved; /* bytes held in a->mem until reqbase_done */
    int each;          /* 1: an image that fails to decode is skipped (/v1
                          multipart), 0: it fails the request */
    int64_t deadline_ns;
    _Atomic int remaining;
    int err_status; /* whole-request error: 0 or an HTTP status... */
    const char *err_code;
    char err_msg[512];
    int err_image; /* ...caused by this image when >= 0 */
    int (*prepare)(req_base *b);
    void (*finish)(req_base *b);
    decode_job job;
    /* Another transport than http.c (the gRPC server, server/grpc/): r is
     * NULL, and wake(b) is called (from any thread, once per submit) where
     * http_resume(r) would be; the transport then calls reqbase_collect and
     * b->finish itself. protocol is the metrics label (METRICS_PROTO_*). */
    void (*wake)(req_base *b);
    int protocol;
    /* 1 once its client was seen gone while its images waited (decode pool
     * or model queue): the rest of its work is dropped, and it ends as 499 */
    _Atomic int gone;
};

/* Counts a new request in flight and allocates `size` zeroed bytes whose
 * first member is a req_base, filled for r and attached to it
 * (http_set_user). On OOM answers 500 and returns NULL (the request still
 * ends through reqbase_end with NULL). */
void *reqbase_new(app *a, http_req *r, size_t size);

/* The one way an answer goes out. Queues it with X-Request-Id, Server-Timing, Retry-After on a 503
 * and Connection: close while draining or on a 499, then `extra` (NULL-terminated
 * name/value pairs, at most 8 pairs); counts the request, its latency and
 * its images (counted when the answer is queued, so a client that has its
 * answer also sees it in /metrics). Takes body (malloc'd; NULL with len > 0 means the caller's
 * allocation failed: answered 500 without a body). */
void reqbase_respond(req_base *b, int status, const char *content_type, char *body, size_t len,
                     const char *const *extra);

/* The gate before inference: counts the request in a->work, then returns 0,
 * or 503 with *code and *msg set (draining: the work count is dropped again;
 * not ready), counting the rejection. */
int reqbase_gate(req_base *b, const char **code, const char **msg);

/* An inference request's first step, from its headers: reqbase_gate, then
 * 413 body_too_large from a Content-Length over max_body_bytes (counted),
 * then the request is announced to its model's queue (reqbase_expect).
 * Returns 0 or the HTTP status with *code and *msg set. */
int reqbase_accept(req_base *b, const char **code, const char **msg);

/* Its body is in: 503 over_budget when it was refused while received, 413
 * body_too_large (counted) when it grew past max_body_bytes (chunked), else 0. */
int reqbase_body_ok(req_base *b, const char **code, const char **msg);

/* 503 with *code ("over_budget") and *msg set, the rejection counted, when
 * the request's body did not fit the server-wide budget (http_body_refused);
 * else 0. reqbase_gate checks it; on_body hooks check it for bodies refused
 * while they were being received (chunked, multipart parts). */
int reqbase_over_budget(req_base *b, const char **code, const char **msg);

/* Parses a non-negative decimal integer (header or query value); -1 when
 * malformed. */
long long reqbase_parse_nonneg(const char *s);

/* The request's deadline: its start plus the smaller of request_timeout_ms,
 * the client's X-Request-Timeout-Ms header and timeout_us (0: none). -1 when
 * the header is not a non-negative integer. */
int reqbase_deadline(const req_base *b, int64_t timeout_us, int64_t *deadline_ns);

/* When the request is complete, before its owner frees it: counts it if no
 * answer was queued (the client went away), writes the access-log line
 * (its images), drops its work count and announcement, frees its images and
 * returns its budget. A request whose client went away before its answer
 * (a queued or decoding request dropped, an upload cut off mid-body) is
 * logged and counted as 499 and in resnetd_cancelled_total. */
void reqbase_done(req_base *b, int status);

/* Announces (on 1) or withdraws (on 0) the request to its model's queue:
 * batches wait to fill only while some request is on its way (queue_expect).
 * Withdrawn at the latest by the push or reqbase_done. */
void reqbase_expect(req_base *b, int on);

/* Binds the request to model name[0..len), version `version` (< 0: its
 * highest serving version): b->mv holds a handle, b->model the version's
 * metrics slot (-1 without one). Returns 0, or -1 when there is no such
 * model or version (the routing result; b->model is not it). */
int reqbase_bind(req_base *b, const char *name, size_t len, long version);

/* Records the request's error (msg is copied; code static). */
void reqbase_fail(req_base *b, int status, const char *code, const char *msg);

/* Allocates n images of b->model with their input and output tensors,
 * reserving their bytes in the server's budget until reqbase_done. Returns
 * 0, or the HTTP status of the failure recorded with reqbase_fail (500 out
 * of memory, 413 too_many_images when n is over queue_capacity, 503
 * over_budget). Once per request. */
int reqbase_images(req_base *b, int n);

/* After reqbase_images: every image also asks for tap `tap` of the model
 * (engine.h taps; the worker copies it out with engine_run_fetch) into its
 * row of b->tap_out (tap_floats floats: the tap's per-image size), reserved
 * in the server's budget until reqbase_done. Returns 0, or the HTTP status
 * recorded with reqbase_fail (400 no such tap, 503 over_budget, 500). */
int reqbase_tap(req_base *b, int tap);

/* Runs the request's images: suspends it and hands a job to the decode
 * pool, which calls prepare(b) (may be NULL: on a pool thread, for work that
 * is not cheap, such as parsing a JSON body and filling the images with
 * reqbase_images; returns 0 or the status of its reqbase_fail), decodes and
 * preprocesses every image that has data (its cost probed and reserved in
 * the budget first), then pushes the images into the model's queue with
 * b->deadline_ns, all at once. finish(b) then runs on an HTTP thread once
 * every image is back, or at once on an error, and must respond (look at
 * b->err_status, then each image). A full pool is a 503 queue_full. Call from
 * on_body only, as the last thing it does. While the request waits, its
 * client is watched (http_client_gone): once it has gone, no more image is
 * decoded or run, and finish sees b->err_status 499 (client_closed_request):
 * its answer goes out with Connection: close, if the client still reads. */
void reqbase_submit(req_base *b, int (*prepare)(req_base *b), void (*finish)(req_base *b));

/* reqbase_submit for a request of another transport (b->r NULL, b->wake
 * set): nothing is suspended; wake(b) runs once the images are back or the
 * request failed (a full decode pool included), then the transport calls
 * reqbase_collect(b) and finish(b) on its own thread. */
void reqbase_submit_async(req_base *b, int (*prepare)(req_base *b), void (*finish)(req_base *b));

/* Once every image is back: counts the images answered with an output
 * (b->images_ok), as the HTTP resume does before finish. */
void reqbase_collect(req_base *b);

/* After finish: 200 when the request has no error and every image has its
 * output, else the HTTP status with *code and *msg naming the first error. */
int reqbase_result(const req_base *b, const char **code, const char **msg);

/* 1 when the request pushed images and every one missed its deadline (a
 * multipart request is then 504 as a whole, like a single image). */
int reqbase_all_expired(const req_base *b);

/* Last: a request that got no state (had_state 0: OOM) is counted here;
 * the in-flight counters drop. */
void reqbase_end(app *a, int had_state, int status);

#endif
