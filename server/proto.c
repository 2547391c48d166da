/* proto.c — request plumbing for the protocol families (design in proto.h). */
#include "proto.h"

#include "json.h"
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int proto_owns(const char *path) {
    return !strcmp(path, "/") || !strncmp(path, "/demo/", 6) || !strcmp(path, "/v2") ||
           !strncmp(path, "/v2/", 4) || !strcmp(path, "/ping") ||
           !strncmp(path, "/predictions/", 13);
}

int proto_find_model(const app *a, const char *name, size_t len) {
    for (int i = 0; i < a->nmodels; i++)
        if (strlen(a->models[i].mc.name) == len && strncmp(a->models[i].mc.name, name, len) == 0)
            return i;
    return -1;
}

void proto_respond(proto_req *p, int status, const char *content_type, char *body, size_t len,
                   const char *const *extra) {
    reqbase_respond(&p->b, status, content_type, body, len, extra);
}

void proto_on_headers(http_req *r, void *cls) {
    proto_req *p = reqbase_new(cls, r, sizeof *p);
    if (!p)
        return;
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
    proto_req *p = http_user(r);
    int status = http_status(r), had = p != NULL;
    if (p) {
        reqbase_done(&p->b, status, p->n);
        if (p->state_free)
            p->state_free(p->state);
        free(p->in);
        free(p->out);
        free(p->items);
        free(p);
    }
    reqbase_end(cls, had, status);
}

int proto_gate(proto_req *p, const char **msg) {
    const char *code;
    return reqbase_gate(&p->b, &code, msg);
}

float *proto_inputs(proto_req *p, int n) {
    const app_model *m = &p->b.a->models[p->b.model];
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
    const app_model *m = &p->b.a->models[p->b.model];
    img_params ip = m->mc.input;
    ip.max_pixels = p->b.a->cfg->max_image_pixels;
    int64_t t0 = queue_now_ns();
    img_status st = img_preprocess(data, len, &ip, dst, err, err_len);
    metrics_observe(p->b.a->metrics, METRICS_H_PREPROCESS, p->b.model,
                    (double)(queue_now_ns() - t0) / 1e9);
    if (st == IMG_OK)
        return 0;
    const char *code;
    return status_img_http(st, &code);
}

static void item_done(queue_item *it) {
    proto_req *p = it->owner;
    /* acq_rel: the resuming HTTP thread sees every worker's output */
    if (atomic_fetch_sub_explicit(&p->remaining, 1, memory_order_acq_rel) == 1)
        http_resume(p->b.r);
}

static void resumed(http_req *r, void *cls) {
    proto_req *p = http_user(r);
    (void)cls;
    (void)atomic_load_explicit(&p->remaining, memory_order_acquire);
    const char *msg;
    /* resnetd_images_total counts images answered with an output */
    p->b.images_ok = proto_result(p, &msg) == 200 ? p->n : 0;
    p->finish(p);
}

void proto_submit(proto_req *p, int64_t deadline_ns, void (*finish)(proto_req *p)) {
    app_model *m = &p->b.a->models[p->b.model];
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
    http_suspend(p->b.r, resumed);
    queue_status qs = queue_push(m->q, push, p->n);
    free(push);
    if (qs != QUEUE_OK) {
        p->push_status = qs == QUEUE_TOO_MANY ? 413 : 503;
        p->push_msg = qs == QUEUE_TOO_MANY ? "more images than queue_capacity"
                      : qs == QUEUE_FULL   ? "the model's queue is full; retry later"
                                           : "the server is shutting down";
        if (qs != QUEUE_TOO_MANY)
            metrics_rejected(p->b.a->metrics, qs == QUEUE_FULL ? METRICS_REJECT_QUEUE_FULL
                                                               : METRICS_REJECT_DRAINING);
        http_resume(p->b.r);
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
