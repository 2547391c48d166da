/* proto.c — request plumbing for the protocol families (design in proto.h). */
#include "proto.h"

#include "json.h"
#include "status.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int proto_owns(const char *path) {
    return !strcmp(path, "/") || !strncmp(path, "/demo/", 6) || !strcmp(path, "/v2") ||
           !strncmp(path, "/v2/", 4) || !strcmp(path, "/ping") ||
           !strncmp(path, "/predictions/", 13);
}

long long proto_parse_nonneg(const char *s) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0)
        return -1;
    return v;
}

int proto_find_model(const app *a, const char *name, size_t len) {
    for (int i = 0; i < a->nmodels; i++)
        if (strlen(a->models[i].mc.name) == len && strncmp(a->models[i].mc.name, name, len) == 0)
            return i;
    return -1;
}

/* X-Request-Id: echoed when it is short printable ASCII, else generated
 * (the same rule and format as /v1). */
static void set_request_id(proto_req *p) {
    const char *h = http_header(p->r, "X-Request-Id");
    int ok = h && *h && strlen(h) < sizeof p->id;
    for (const char *c = h; ok && *c; c++)
        if (!isgraph((unsigned char)*c) || *c == '"' || *c == '\\')
            ok = 0;
    if (ok)
        snprintf(p->id, sizeof p->id, "%s", h);
    else
        snprintf(p->id, sizeof p->id, "%016llx%08llx", (unsigned long long)p->a->id_seed,
                 (unsigned long long)atomic_fetch_add(&p->a->next_id, 1));
}

void proto_respond(proto_req *p, int status, const char *content_type, char *body, size_t len,
                   const char *const *extra) {
    app *a = p->a;
    if (!body && len) { /* the caller's allocation failed */
        status = 500;
        len = 0;
    }
    double secs = (double)(queue_now_ns() - p->t0_ns) / 1e9;
    char timing[48];
    snprintf(timing, sizeof timing, "total;dur=%.3f", secs * 1e3);
    const char *hdr[2 * 12 + 1];
    int h = 0;
    hdr[h++] = "X-Request-Id";
    hdr[h++] = p->id;
    hdr[h++] = "Server-Timing";
    hdr[h++] = timing;
    if (status == 503) {
        hdr[h++] = "Retry-After";
        hdr[h++] = "1";
    }
    if (p->draining) {
        hdr[h++] = "Connection";
        hdr[h++] = "close";
    }
    for (int i = 0; extra && extra[i] && h < 2 * 12; i += 2) {
        hdr[h++] = extra[i];
        hdr[h++] = extra[i + 1];
    }
    hdr[h] = NULL;
    /* counted when the answer is queued, as /v1 does */
    metrics_request(a->metrics, p->model, status);
    if (p->model >= 0)
        metrics_observe(a->metrics, METRICS_H_REQUEST, p->model, secs);
    if (p->images_ok)
        metrics_images(a->metrics, p->model, p->images_ok);
    p->counted = 1;
    http_respond(p->r, status, content_type, body, len, hdr);
}

void proto_on_headers(http_req *r, void *cls) {
    app *a = cls;
    proto_req *p = calloc(1, sizeof(*p));
    atomic_fetch_add(&a->inflight, 1);
    metrics_inflight_add(a->metrics, 1);
    if (!p) {
        http_respond(r, 500, NULL, NULL, 0, NULL);
        return;
    }
    p->a = a;
    p->r = r;
    p->model = -1;
    p->t0_ns = queue_now_ns();
    p->draining = atomic_load(&a->draining);
    http_set_user(r, p);
    set_request_id(p);
    const char *path = http_path(r);
    if (!strncmp(path, "/v2", 3))
        routes_v2_on_headers(p);
    else if (!strcmp(path, "/ping") || !strncmp(path, "/predictions/", 13))
        routes_ts_on_headers(p);
    else
        routes_demo_on_headers(p);
}

void proto_on_body(http_req *r, void *cls) {
    proto_req *p = http_user(r);
    (void)cls;
    if (p && p->on_body)
        p->on_body(p);
}

void proto_on_complete(http_req *r, void *cls) {
    app *a = cls;
    proto_req *p = http_user(r);
    int status = http_status(r);
    if (p) {
        double ms = (double)(queue_now_ns() - p->t0_ns) / 1e6;
        if (!p->counted) /* no response was queued (the client went away) */
            metrics_request(a->metrics, p->model, status);
        if (a->cfg->log_level >= CFG_LOG_INFO) {
            const char *model = p->model >= 0 ? a->models[p->model].mc.name : "";
            char *line = json_access_log(p->id, http_method(r), http_path(r), status, http_bytes(r),
                                         ms, model, p->n);
            if (line) {
                fprintf(stderr, "%s\n", line);
                free(line);
            }
        }
        if (p->work)
            atomic_fetch_sub(&a->work, 1);
        if (p->state_free)
            p->state_free(p->state);
        free(p->in);
        free(p->out);
        free(p->items);
        free(p);
    } else {
        metrics_request(a->metrics, -1, status);
    }
    metrics_inflight_add(a->metrics, -1);
    atomic_fetch_sub(&a->inflight, 1);
}

int proto_gate(proto_req *p, const char **msg) {
    app *a = p->a;
    /* Count first, then look at the flag, as /v1 does: the drain sets the
     * flag, then waits for the count, so no accepted request slips past it. */
    atomic_fetch_add(&a->work, 1);
    p->work = 1;
    if (atomic_load(&a->draining)) {
        atomic_fetch_sub(&a->work, 1);
        p->work = 0;
        p->draining = 1;
        metrics_rejected(a->metrics, METRICS_REJECT_DRAINING);
        *msg = "the server is shutting down";
        return 503;
    }
    if (!atomic_load(&a->ready)) {
        metrics_rejected(a->metrics, METRICS_REJECT_NOT_READY);
        *msg = "models are loading or warming up";
        return 503;
    }
    return 0;
}

float *proto_inputs(proto_req *p, int n) {
    const app_model *m = &p->a->models[p->model];
    if (p->in || n < 1)
        return NULL;
    p->in = malloc((size_t)n * m->in_floats * sizeof(float));
    p->out = malloc((size_t)n * (size_t)m->info.num_classes * sizeof(float));
    p->items = calloc((size_t)n, sizeof(queue_item));
    if (!p->in || !p->out || !p->items)
        return NULL;
    p->n = n;
    return p->in;
}

int proto_preprocess(proto_req *p, const void *data, size_t len, float *dst, char *err,
                     size_t err_len) {
    const app_model *m = &p->a->models[p->model];
    img_params ip = m->mc.input;
    ip.max_pixels = p->a->cfg->max_image_pixels;
    int64_t t0 = queue_now_ns();
    img_status st = img_preprocess(data, len, &ip, dst, err, err_len);
    metrics_observe(p->a->metrics, METRICS_H_PREPROCESS, p->model,
                    (double)(queue_now_ns() - t0) / 1e9);
    if (st == IMG_OK)
        return 0;
    const char *code;
    return status_img_http(st, &code);
}

int proto_deadline(proto_req *p, int64_t timeout_us, int64_t *deadline_ns) {
    int64_t ns = (int64_t)p->a->cfg->request_timeout_ms * 1000000;
    const char *th = http_header(p->r, "X-Request-Timeout-Ms");
    if (th) {
        long long v = proto_parse_nonneg(th);
        if (v < 0)
            return -1;
        if (v < ns / 1000000)
            ns = (int64_t)v * 1000000;
    }
    if (timeout_us > 0 && timeout_us < ns / 1000)
        ns = timeout_us * 1000;
    *deadline_ns = p->t0_ns + ns;
    return 0;
}

static void item_done(queue_item *it) {
    proto_req *p = it->owner;
    /* acq_rel: the resuming HTTP thread sees every worker's output */
    if (atomic_fetch_sub_explicit(&p->remaining, 1, memory_order_acq_rel) == 1)
        http_resume(p->r);
}

static void resumed(http_req *r, void *cls) {
    proto_req *p = http_user(r);
    (void)cls;
    (void)atomic_load_explicit(&p->remaining, memory_order_acquire);
    const char *msg;
    /* resnetd_images_total counts images answered with an output */
    p->images_ok = proto_result(p, &msg) == 200 ? p->n : 0;
    p->finish(p);
}

void proto_submit(proto_req *p, int64_t deadline_ns, void (*finish)(proto_req *p)) {
    app_model *m = &p->a->models[p->model];
    size_t in = m->in_floats, out = (size_t)m->info.num_classes;
    queue_item **push = calloc((size_t)p->n, sizeof(*push));
    p->finish = finish;
    if (!push) {
        p->push_status = 500;
        p->push_msg = "out of memory";
        finish(p);
        return;
    }
    for (int i = 0; i < p->n; i++) {
        queue_item *it = &p->items[i];
        it->input = p->in + (size_t)i * in;
        it->output = p->out + (size_t)i * out;
        it->deadline_ns = deadline_ns;
        it->done = item_done;
        it->owner = p;
        push[i] = it;
    }
    atomic_store(&p->remaining, p->n);
    http_suspend(p->r, resumed);
    queue_status qs = queue_push(m->q, push, p->n);
    free(push);
    if (qs != QUEUE_OK) {
        p->push_status = qs == QUEUE_TOO_MANY ? 413 : 503;
        p->push_msg = qs == QUEUE_TOO_MANY ? "more images than queue_capacity"
                      : qs == QUEUE_FULL   ? "the model's queue is full; retry later"
                                           : "the server is shutting down";
        if (qs != QUEUE_TOO_MANY)
            metrics_rejected(p->a->metrics, qs == QUEUE_FULL ? METRICS_REJECT_QUEUE_FULL
                                                             : METRICS_REJECT_DRAINING);
        http_resume(p->r);
    }
}

int proto_result(const proto_req *p, const char **msg) {
    if (p->push_status) {
        *msg = p->push_msg;
        return p->push_status;
    }
    for (int i = 0; i < p->n; i++)
        switch (p->items[i].status) {
        case QUEUE_ITEM_OK:
            break;
        case QUEUE_ITEM_EXPIRED:
            *msg = "deadline passed before inference";
            return 504;
        case QUEUE_ITEM_ABORTED:
            *msg = "the server is shutting down";
            return 503;
        default:
            *msg = "inference failed";
            return 500;
        }
    return 200;
}
