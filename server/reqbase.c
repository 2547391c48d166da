/* reqbase.c — the request life cycle every route family shares (reqbase.h). */
#include "reqbase.h"

#include "json.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* X-Request-Id: echoed when it is short printable ASCII, else generated. */
static void set_request_id(req_base *b) {
    const char *h = http_header(b->r, "X-Request-Id");
    int ok = h && *h && strlen(h) < sizeof b->id;
    for (const char *c = h; ok && *c; c++)
        if (!isgraph((unsigned char)*c) || *c == '"' || *c == '\\')
            ok = 0;
    if (ok)
        snprintf(b->id, sizeof b->id, "%s", h);
    else
        snprintf(b->id, sizeof b->id, "%016llx%08llx", (unsigned long long)b->a->id_seed,
                 (unsigned long long)atomic_fetch_add(&b->a->next_id, 1));
}

void *reqbase_new(app *a, http_req *r, size_t size) {
    atomic_fetch_add(&a->inflight, 1);
    metrics_inflight_add(a->metrics, 1);
    req_base *b = calloc(1, size);
    if (!b) {
        http_respond(r, 500, NULL, NULL, 0, NULL);
        return NULL;
    }
    b->a = a;
    b->r = r;
    b->model = -1;
    b->t0_ns = queue_now_ns();
    b->draining = atomic_load(&a->draining);
    http_set_user(r, b);
    set_request_id(b);
    return b;
}

void reqbase_send(req_base *b, int status, const char *content_type, char *body, size_t len,
                  const char *const *hdr) {
    metrics_request(b->a->metrics, b->model, status);
    if (b->model >= 0)
        metrics_observe(b->a->metrics, METRICS_H_REQUEST, b->model,
                        (double)(queue_now_ns() - b->t0_ns) / 1e9);
    if (b->images_ok)
        metrics_images(b->a->metrics, b->model, b->images_ok);
    b->counted = 1;
    http_respond(b->r, status, content_type, body, len, hdr);
}

void reqbase_respond(req_base *b, int status, const char *content_type, char *body, size_t len,
                     const char *const *extra) {
    if (!body && len) { /* the caller's allocation failed */
        status = 500;
        len = 0;
    }
    double secs = (double)(queue_now_ns() - b->t0_ns) / 1e9;
    char timing[48]; /* server-side time, e.g. for the demo page */
    snprintf(timing, sizeof timing, "total;dur=%.3f", secs * 1e3);
    const char *hdr[2 * 12 + 1];
    int h = 0;
    hdr[h++] = "X-Request-Id";
    hdr[h++] = b->id;
    hdr[h++] = "Server-Timing";
    hdr[h++] = timing;
    if (status == 503) {
        hdr[h++] = "Retry-After";
        hdr[h++] = "1";
    }
    if (b->draining) {
        hdr[h++] = "Connection";
        hdr[h++] = "close";
    }
    for (int i = 0; extra && extra[i] && h < 2 * 12; i += 2) {
        hdr[h++] = extra[i];
        hdr[h++] = extra[i + 1];
    }
    hdr[h] = NULL;
    reqbase_send(b, status, content_type, body, len, hdr);
}

int reqbase_gate(req_base *b, const char **code, const char **msg) {
    app *a = b->a;
    /* Count first, then look at the flag: the drain sets the flag, then
     * waits for the count, so no accepted request slips past it. */
    atomic_fetch_add(&a->work, 1);
    b->work = 1;
    if (atomic_load(&a->draining)) {
        atomic_fetch_sub(&a->work, 1);
        b->work = 0;
        b->draining = 1;
        metrics_rejected(a->metrics, METRICS_REJECT_DRAINING);
        *code = "draining";
        *msg = "the server is shutting down";
        return 503;
    }
    if (!atomic_load(&a->ready)) {
        metrics_rejected(a->metrics, METRICS_REJECT_NOT_READY);
        *code = "not_ready";
        *msg = "models are loading or warming up";
        return 503;
    }
    if (reqbase_over_budget(b, code, msg)) {
        atomic_fetch_sub(&a->work, 1);
        b->work = 0;
        return 503;
    }
    return 0;
}

int reqbase_over_budget(req_base *b, const char **code, const char **msg) {
    if (http_body_refused(b->r) != HTTP_BODY_OVER_BUDGET)
        return 0;
    metrics_rejected(b->a->metrics, METRICS_REJECT_OVER_BUDGET);
    *code = "over_budget";
    *msg = "the server holds as many request bytes as max_inflight_bytes allows; retry";
    return 503;
}

long long reqbase_parse_nonneg(const char *s) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0)
        return -1;
    return v;
}

int reqbase_deadline(const req_base *b, int64_t timeout_us, int64_t *deadline_ns) {
    int64_t ns = (int64_t)b->a->cfg->request_timeout_ms * 1000000;
    const char *th = http_header(b->r, "X-Request-Timeout-Ms");
    if (th) {
        long long v = reqbase_parse_nonneg(th);
        if (v < 0)
            return -1;
        if (v < ns / 1000000)
            ns = (int64_t)v * 1000000;
    }
    if (timeout_us > 0 && timeout_us < ns / 1000)
        ns = timeout_us * 1000;
    *deadline_ns = b->t0_ns + ns;
    return 0;
}

void reqbase_done(req_base *b, int status, int images) {
    app *a = b->a;
    if (!b->counted) /* no response was queued (the client went away) */
        metrics_request(a->metrics, b->model, status);
    if (a->cfg->log_level >= CFG_LOG_INFO) {
        double ms = (double)(queue_now_ns() - b->t0_ns) / 1e6;
        const char *model = b->model >= 0 ? a->models[b->model].mc.name : "";
        char *line = json_access_log(b->id, http_method(b->r), http_path(b->r), status,
                                     http_bytes(b->r), ms, model, images);
        if (line) {
            fprintf(stderr, "%s\n", line);
            free(line);
        }
    }
    if (b->work)
        atomic_fetch_sub(&a->work, 1);
    b->work = 0;
}

void reqbase_end(app *a, int had_state, int status) {
    if (!had_state)
        metrics_request(a->metrics, -1, status);
    metrics_inflight_add(a->metrics, -1);
    atomic_fetch_sub(&a->inflight, 1);
}
