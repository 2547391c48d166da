/*
 * reqbase.h — what every HTTP request shares, whichever route family answers
 * it (/v1 in routes.c; /v2, TorchServe and the demo page through proto.c):
 * its start, its X-Request-Id, how its answer goes out and is counted, the
 * drain/readiness gate for inference, and its end (access log, counters).
 *
 * A family's request struct has a req_base as its FIRST member, so the
 * pointer reqbase_new returns is the family's struct.
 */
#ifndef RESNETD_REQBASE_H
#define RESNETD_REQBASE_H

#include "app.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    app *a;
    http_req *r;
    int64_t t0_ns;
    char id[72];   /* X-Request-Id: the client's when short printable ASCII */
    int model;     /* index into a->models, or -1 */
    int draining;  /* the server was draining when the request came in */
    int work;      /* counted in a->work (inference accepted; the drain waits for it) */
    int counted;   /* metrics_request done */
    int images_ok; /* images that got predictions */
} req_base;

/* Counts a new request in flight and allocates `size` zeroed bytes whose
 * first member is a req_base, filled for r and attached to it
 * (http_set_user). On OOM answers 500 and returns NULL (the request still
 * ends through reqbase_end with NULL). */
void *reqbase_new(app *a, http_req *r, size_t size);

/* Queues the answer exactly with headers hdr (NULL-terminated name/value
 * pairs) and counts the request, its latency and its images: counted when
 * the answer is queued, so a client that has its answer also sees it in
 * /metrics. Takes body. */
void reqbase_send(req_base *b, int status, const char *content_type, char *body, size_t len,
                  const char *const *hdr);

/* Queues the answer with X-Request-Id, Server-Timing, Retry-After on a 503
 * and Connection: close while draining, then `extra` (NULL-terminated
 * name/value pairs, at most 8 pairs); counts the request, its latency and
 * its images. Takes body (malloc'd; NULL with len > 0 means the caller's
 * allocation failed: answered 500 without a body). */
void reqbase_respond(req_base *b, int status, const char *content_type, char *body, size_t len,
                     const char *const *extra);

/* The gate before inference: counts the request in a->work, then returns 0,
 * or 503 with *code and *msg set (draining: the work count is dropped again;
 * not ready), counting the rejection. */
int reqbase_gate(req_base *b, const char **code, const char **msg);

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
 * (`images` submitted) and drops its work count. */
void reqbase_done(req_base *b, int status, int images);

/* Last: a request that got no state (had_state 0: OOM) is counted here;
 * the in-flight counters drop. */
void reqbase_end(app *a, int had_state, int status);

#endif
