/* reqbase.c — the request life cycle every route family shares (reqbase.h). */
#include "reqbase.h"

#include "registry.h"

#include "json.h"
#include "log.h"
#include "status.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stddef.h>
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

/* Queues the answer exactly with headers hdr and counts it (reqbase_respond
 * is the only caller: every answer carries the standard headers). */
static void send_answer(req_base *b, int status, const char *content_type, char *body, size_t len,
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
    /* An inference answer is counted in the budget until the request is
     * done. Past it the answer is dropped for a short 503 (errors and the
     * control plane are small and never refused). */
    if (status == 200 && b->model >= 0 && len) {
        if (budget_reserve(&b->a->mem, len) == 0) {
            b->reserved += len;
        } else {
            free(body);
            metrics_rejected(b->a->metrics, METRICS_REJECT_OVER_BUDGET);
            b->images_ok = 0; /* not answered with predictions after all */
            status = 503;
            content_type = "application/json";
            len = 0;
            body = json_error_body("over_budget",
                                   "the answer does not fit the server's max_inflight_bytes now; "
                                   "retry later",
                                   &len);
        }
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
    if (b->draining || status == 499) {
        hdr[h++] = "Connection";
        hdr[h++] = "close";
    }
    for (int i = 0; extra && extra[i] && h < 2 * 12; i += 2) {
        hdr[h++] = extra[i];
        hdr[h++] = extra[i + 1];
    }
    hdr[h] = NULL;
    send_answer(b, status, content_type, body, len, hdr);
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

int reqbase_accept(req_base *b, const char **code, const char **msg) {
    int st = reqbase_gate(b, code, msg);
    if (st)
        return st;
    if (http_body_too_large(b->r)) {
        metrics_rejected(b->a->metrics, METRICS_REJECT_BODY_TOO_LARGE);
        *code = "body_too_large";
        *msg = "Content-Length is over max_body_bytes";
        return 413;
    }
    reqbase_expect(b, 1); /* its images are on their way */
    return 0;
}

int reqbase_body_ok(req_base *b, const char **code, const char **msg) {
    if (reqbase_over_budget(b, code, msg)) /* refused while it was received */
        return 503;
    if (http_body_too_large(b->r)) {
        metrics_rejected(b->a->metrics, METRICS_REJECT_BODY_TOO_LARGE);
        *code = "body_too_large";
        *msg = "body is over max_body_bytes";
        return 413;
    }
    return 0;
}

int reqbase_over_budget(req_base *b, const char **code, const char **msg) {
    if (!b->r || http_body_refused(b->r) != HTTP_BODY_OVER_BUDGET)
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

/* 1 when some of the request's work was dropped because its client went
 * away (every image is back: its request was resumed or never suspended). */
static int cancelled(req_base *b) {
    if (atomic_load_explicit(&b->gone, memory_order_acquire))
        return 1;
    for (int i = 0; i < b->nimgs; i++)
        if (b->imgs[i].pushed && b->imgs[i].qi.status == QUEUE_ITEM_CANCELLED)
            return 1;
    return 0;
}

void reqbase_done(req_base *b, int status) {
    int images = b->nimgs;
    app *a = b->a;
    (void)atomic_load_explicit(&b->remaining, memory_order_acquire); /* the workers' writes */
    int dropped = cancelled(b);
    if (dropped || (!b->counted && http_client_aborted(b->r))) {
        /* nginx's "client closed request": the client left before its answer */
        status = 499;
        if (b->model >= 0 && (dropped || !b->job.run)) /* work dropped, or the upload cut */
            metrics_cancelled(a->metrics, b->model,
                              !dropped ? METRICS_CANCEL_UPLOAD_ABORTED
                              : b->r   ? METRICS_CANCEL_CLIENT_CLOSED
                                       : METRICS_CANCEL_STREAM_RESET);
    }
    if (!b->counted) /* no response was queued (the client went away) */
        metrics_request_proto(a->metrics, b->model, status, b->protocol);
    if (b->r && log_enabled(LOG_INFO)) { /* the access log (other transports write their own) */
        double ms = (double)(queue_now_ns() - b->t0_ns) / 1e6;
        const char *model = b->mv ? b->mv->mc.name : metrics_model_name(a->metrics, b->model);
        log_access(b->id, http_method(b->r), http_path(b->r), status, http_bytes(b->r), ms, model,
                   images);
    }
    if (b->work)
        atomic_fetch_sub(&a->work, 1);
    b->work = 0;
    reqbase_expect(b, 0);
    free(b->imgs);
    free(b->in);
    free(b->out);
    free(b->tap_out);
    b->imgs = NULL;
    b->in = b->out = b->tap_out = NULL;
    budget_release(&a->mem, b->reserved);
    b->reserved = 0;
    registry_release(b->mv); /* the version may now be freed (registry.h) */
    b->mv = NULL;
}

void reqbase_end(app *a, int had_state, int status) {
    if (!had_state)
        metrics_request(a->metrics, -1, status);
    metrics_inflight_add(a->metrics, -1);
    atomic_fetch_sub(&a->inflight, 1);
}

void reqbase_expect(req_base *b, int on) {
    if (!b->mv || b->expected == on)
        return;
    b->expected = on;
    queue_expect(b->mv->q, on ? 1 : -1);
}

void reqbase_fail(req_base *b, int status, const char *code, const char *msg) {
    b->err_status = status;
    b->err_code = code;
    snprintf(b->err_msg, sizeof b->err_msg, "%s", msg);
}

int reqbase_images(req_base *b, int n) {
    app *a = b->a;
    const app_model *m = b->mv;
    if (n > a->cfg->queue_capacity) { /* checked before anything is decoded */
        char msg[160];
        snprintf(msg, sizeof msg, "%d images is more than queue_capacity (%lld)", n,
                 (long long)a->cfg->queue_capacity);
        reqbase_fail(b, 413, "too_many_images", msg);
        return 413;
    }
    size_t classes = (size_t)m->info.num_classes;
    uint64_t bytes = (uint64_t)n * ((m->in_floats + classes) * sizeof(float) + sizeof(reqbase_img));
    if (budget_reserve(&a->mem, bytes)) {
        metrics_rejected(a->metrics, METRICS_REJECT_OVER_BUDGET);
        reqbase_fail(b, 503, "over_budget",
                     "the request's tensors do not fit the server's max_inflight_bytes now; "
                     "retry later");
        return 503;
    }
    b->reserved += bytes;
    b->imgs = calloc((size_t)n, sizeof(reqbase_img));
    b->in = malloc((size_t)n * m->in_floats * sizeof(float));
    b->out = malloc((size_t)n * classes * sizeof(float));
    if (!b->imgs || !b->in || !b->out) {
        reqbase_fail(b, 500, "internal", "out of memory");
        return 500;
    }
    b->nimgs = n;
    return 0;
}

int reqbase_tap(req_base *b, int tap) {
    app *a = b->a;
    const app_model *m = b->mv;
    if (tap < 0 || tap >= engine_model_num_taps(m->em) || b->tap_out || !b->imgs) {
        reqbase_fail(b, 400, "bad_request", "no such tensor");
        return 400;
    }
    engine_tensor_desc d;
    engine_model_tap_desc(m->em, tap, &d);
    size_t per = 1;
    for (int i = 1; i < d.ndim; i++)
        per *= (size_t)d.dims[i];
    uint64_t bytes = (uint64_t)b->nimgs * per * sizeof(float);
    if (budget_reserve(&a->mem, bytes)) {
        metrics_rejected(a->metrics, METRICS_REJECT_OVER_BUDGET);
        reqbase_fail(b, 503, "over_budget",
                     "the requested tensors do not fit the server's max_inflight_bytes now; "
                     "retry later");
        return 503;
    }
    b->reserved += bytes;
    if (!(b->tap_out = malloc((size_t)bytes + 1))) {
        reqbase_fail(b, 500, "internal", "out of memory");
        return 500;
    }
    b->tap_floats = per;
    for (int i = 0; i < b->nimgs; i++) {
        b->imgs[i].qi.tap = tap;
        b->imgs[i].qi.tap_out = b->tap_out + (size_t)i * per;
    }
    return 0;
}

/* Decodes image i into its input slot (on a pool thread): probes its cost,
 * reserves it, decodes, returns it. Returns 0, -1 over budget (nothing
 * decoded), or 1 when the image is bad (its error recorded). */
static int decode_one(req_base *b, int i) {
    app *a = b->a;
    const app_model *m = b->mv;
    reqbase_img *im = &b->imgs[i];
    img_params p = m->mc.input;
    p.max_pixels = a->cfg->max_image_pixels;
    img_cost cost;
    img_status st = img_probe(im->data, im->len, &p, &cost, im->err_msg, sizeof im->err_msg);
    if (st == IMG_OK && cost.peak_bytes > a->mem.limit) {
        /* more than the whole budget: no retry can help, so the image is refused */
        snprintf(im->err_msg, sizeof im->err_msg,
                 "decoding this %dx%d image needs %llu bytes, more than the server's "
                 "max_inflight_bytes (%llu)",
                 cost.width, cost.height, (unsigned long long)cost.peak_bytes,
                 (unsigned long long)a->mem.limit);
        st = IMG_ERR_TOO_COMPLEX;
    } else if (st == IMG_OK) {
        if (budget_reserve(&a->mem, cost.peak_bytes))
            return -1;
        int64_t t0 = queue_now_ns();
        st = img_preprocess(im->data, im->len, &p, b->in + (size_t)i * m->in_floats, im->err_msg,
                            sizeof im->err_msg);
        metrics_observe(a->metrics, METRICS_H_PREPROCESS, b->model,
                        (double)(queue_now_ns() - t0) / 1e9);
        budget_release(&a->mem, cost.peak_bytes);
    }
    if (st == IMG_OK)
        return 0;
    const status_info *si = status_of_img(st);
    im->err_status = si->http;
    im->err_code = si->code;
    if (!im->err_msg[0]) /* a decoder error without a message still says what */
        snprintf(im->err_msg, sizeof im->err_msg, "%s", img_status_str(st));
    return 1;
}

/* The images are back (or the request failed): its transport takes over. */
static void wake(req_base *b) {
    if (b->wake)
        b->wake(b);
    else
        http_resume(b->r);
}

/* Whether the request's client is still there; once gone, stays gone. */
static int client_here(req_base *b) {
    if (atomic_load_explicit(&b->gone, memory_order_relaxed))
        return 0;
    if (!b->r || !http_client_gone(b->r)) /* other transports set gone themselves */
        return 1;
    atomic_store_explicit(&b->gone, 1, memory_order_release);
    return 0;
}

/* The queue item's alive hook (queue.h): called by a worker (or a full
 * queue_push) while the request is suspended. */
static int item_alive(queue_item *it) {
    return client_here(it->owner);
}

static void item_done(queue_item *it) {
    req_base *b = it->owner;
    /* acq_rel: the resuming HTTP thread sees every worker's output */
    if (atomic_fetch_sub_explicit(&b->remaining, 1, memory_order_acq_rel) == 1)
        wake(b);
}

/* Ends the job without a push: the HTTP thread answers with the error. */
static void resume_now(req_base *b) {
    reqbase_expect(b, 0);
    atomic_store_explicit(&b->remaining, 0, memory_order_release);
    wake(b);
}

/* The decode job: prepare, decode, push (or record why not and resume). */
static void run_job(decode_job *j, int aborted) {
    req_base *b = (req_base *)((char *)j - offsetof(req_base, job));
    app *a = b->a;
    if (aborted) { /* the decode pool was closed by the drain: as a closed queue */
        const status_info *si = status_of_push(QUEUE_CLOSED);
        metrics_rejected(a->metrics, (metrics_reason)si->reject);
        reqbase_fail(b, si->http, si->code, si->msg);
        resume_now(b);
        return;
    }
    if (!client_here(b) || (b->prepare && b->prepare(b))) {
        resume_now(b); /* gone: answered 499 by resumed */
        return;
    }
    int k = 0;
    for (int i = 0; i < b->nimgs; i++) {
        reqbase_img *im = &b->imgs[i];
        if (im->data && !client_here(b)) { /* no more decoding for a client that left */
            resume_now(b);
            return;
        }
        int st = im->data ? decode_one(b, i) : 0;
        if (st < 0) {
            metrics_rejected(a->metrics, METRICS_REJECT_OVER_BUDGET);
            reqbase_fail(b, 503, "over_budget",
                         "decoding the image does not fit the server's max_inflight_bytes now; "
                         "retry later");
            resume_now(b);
            return;
        }
        if (st && !b->each) {
            b->err_image = i;
            reqbase_fail(b, im->err_status, im->err_code, im->err_msg);
            resume_now(b);
            return;
        }
        k += st == 0;
    }
    queue_item **push = k ? calloc((size_t)k, sizeof(*push)) : NULL;
    if (k && !push) {
        reqbase_fail(b, 500, "internal", "out of memory");
        resume_now(b);
        return;
    }
    const app_model *m = b->mv;
    size_t classes = (size_t)m->info.num_classes;
    int n = 0;
    for (int i = 0; i < b->nimgs; i++) {
        reqbase_img *im = &b->imgs[i];
        if (im->err_status)
            continue;
        im->qi.input = b->in + (size_t)i * m->in_floats;
        im->qi.output = b->out + (size_t)i * classes;
        im->qi.deadline_ns = b->deadline_ns;
        im->qi.done = item_done;
        im->qi.alive = item_alive;
        im->qi.owner = b;
        im->pushed = 1;
        push[n++] = &im->qi;
    }
    if (k == 0) { /* /v1 multipart where every part failed to decode */
        resume_now(b);
        return;
    }
    /* The push withdraws the announcement in the same locked step (a former
     * waiting for company must not see these images queued while their own
     * announcement still stands). After a successful push the request may be
     * answered and freed at any moment (the last worker resumes it): local
     * copies only from here. */
    int was_expected = b->expected;
    b->expected = 0;
    queue *q = m->q;
    atomic_store(&b->remaining, k);
    queue_status qs = queue_push_announced(q, push, k, was_expected ? 1 : 0);
    free(push);
    if (qs != QUEUE_OK) {
        const status_info *si = status_of_push(qs);
        for (int i = 0; i < b->nimgs; i++)
            b->imgs[i].pushed = 0;
        if (si->reject >= 0) /* too many is the client's error, not a rejection */
            metrics_rejected(a->metrics, (metrics_reason)si->reject);
        reqbase_fail(b, si->http, si->code, si->msg);
        resume_now(b);
    }
}

static void resumed(http_req *r, void *cls) {
    req_base *b = http_user(r);
    (void)cls;
    reqbase_collect(b);
    b->finish(b);
}

void reqbase_collect(req_base *b) {
    (void)atomic_load_explicit(&b->remaining, memory_order_acquire);
    if (cancelled(b)) { /* the client is gone (a half-closed one may still read this):
                         * 499 in the family's own error shape */
        reqbase_fail(b, 499, "client_closed_request",
                     "the client closed the connection before its answer");
        b->err_image = -1;
        b->images_ok = 0;
        return;
    }
    /* resnetd_images_total counts images answered with an output: every
     * pushed image that ran, unless one failure fails the whole request */
    int ok = 0, all = !b->err_status;
    for (int i = 0; i < b->nimgs; i++) {
        const reqbase_img *im = &b->imgs[i];
        if (im->pushed && im->qi.status == QUEUE_ITEM_OK)
            ok++;
        else
            all = all && b->each;
    }
    b->images_ok = all ? ok : 0;
}

void reqbase_submit(req_base *b, int (*prepare)(req_base *b), void (*finish)(req_base *b)) {
    b->prepare = prepare;
    b->finish = finish;
    b->err_image = -1;
    b->job.run = run_job;
    http_suspend(b->r, resumed);
    if (decode_submit(b->a->decode, &b->job)) {
        metrics_rejected(b->a->metrics, METRICS_REJECT_QUEUE_FULL);
        reqbase_fail(b, 503, "queue_full", "the decode queue is full; retry later");
        resume_now(b);
    }
}

void reqbase_submit_async(req_base *b, int (*prepare)(req_base *b), void (*finish)(req_base *b)) {
    b->prepare = prepare;
    b->finish = finish;
    b->err_image = -1;
    b->job.run = run_job;
    if (decode_submit(b->a->decode, &b->job)) {
        metrics_rejected(b->a->metrics, METRICS_REJECT_QUEUE_FULL);
        reqbase_fail(b, 503, "queue_full", "the decode queue is full; retry later");
        resume_now(b);
    }
}

int reqbase_result(const req_base *b, const char **code, const char **msg) {
    if (b->err_status) {
        *code = b->err_code;
        *msg = b->err_msg;
        return b->err_status;
    }
    for (int i = 0; i < b->nimgs; i++) {
        const reqbase_img *im = &b->imgs[i];
        if (im->err_status) {
            *code = im->err_code;
            *msg = im->err_msg;
            return im->err_status;
        }
        if (im->qi.status != QUEUE_ITEM_OK) {
            const status_info *si = status_of_item(im->qi.status);
            *code = si->code;
            *msg = si->msg;
            return si->http;
        }
    }
    return 200;
}

int reqbase_all_expired(const req_base *b) {
    int pushed = 0, expired = 0;
    for (int i = 0; i < b->nimgs; i++) {
        pushed += b->imgs[i].pushed;
        expired += b->imgs[i].pushed && b->imgs[i].qi.status == QUEUE_ITEM_EXPIRED;
    }
    return pushed && expired == pushed;
}

int reqbase_bind(req_base *b, const char *name, size_t len, long version) {
    registry_release(b->mv);
    b->mv = registry_acquire(b->a, name, len, version);
    b->model = b->mv ? b->mv->index : -1; /* its metrics slot */
    return b->mv ? 0 : -1;
}
