/*
 * routes.c — the CONTRACT's HTTP API: routing, classify (decode on the HTTP
 * thread, queue, suspend, answer when the last image is back), health,
 * readiness, models and metrics, JSON errors, request ids and the access log.
 */
#include "app.h"
#include "json.h"
#include "predict.h"
#include "proto.h"
#include "reqbase.h"
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_CT "application/json"
#define MAX_TOP_K 1000

typedef struct {
    queue_item qi;
    float *input, *output;
    const char *filename;
    const char *err_code;
    char err_msg[200];
    int enqueued;
} image;

typedef struct {
    req_base b; /* first: the shared request state (a, r, id, model, ...) */
    int is_classify;
    int top_k;
    image *imgs;
    int nimgs;
    int expected; /* announced to the model's queue (queue_expect) */
    _Atomic int remaining;
    int err_status; /* whole-request error found after suspending */
    const char *err_code;
    const char *err_msg;
} req;

static void respond_json(req *q, int status, char *body, size_t len) {
    if (!body) { /* the caller's allocation failed */
        status = 500;
        len = 0;
    }
    reqbase_respond(&q->b, status, JSON_CT, body, len, NULL);
}

static void respond_error(req *q, int status, const char *code, const char *msg) {
    size_t len;
    char *body = json_error_body(code, msg, &len);
    respond_json(q, status, body, len);
}

static int method_is(const req *q, const char *m) {
    return strcmp(http_method(q->b.r), m) == 0;
}

static void route_metrics(req *q) {
    char *text;
    size_t len;
    if (metrics_render(q->b.a->metrics, &text, &len)) {
        respond_error(q, 500, "internal", "out of memory");
        return;
    }
    const char *hdr[] = {"X-Request-Id", q->b.id, NULL};
    reqbase_send(&q->b, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, hdr);
}

static void route_models(req *q) {
    app *a = q->b.a;
    json_model_info info[CFG_MAX_MODELS * 8];
    int n = a->nmodels < (int)(sizeof info / sizeof info[0]) ? a->nmodels
                                                             : (int)(sizeof info / sizeof info[0]);
    for (int i = 0; i < n; i++) {
        const app_model *m = &a->models[i];
        info[i] = (json_model_info){&m->mc,
                                    m->info.channels,
                                    m->info.height,
                                    m->info.width,
                                    m->info.num_classes,
                                    m->max_batch,
                                    m->workers,
                                    atomic_load(&a->ready),
                                    m->threads,
                                    m->tuned ? m->tuned_path : NULL,
                                    m->tuned_goal,
                                    m->tuned};
    }
    size_t len;
    char *body = json_models_body(info, n, &len);
    respond_json(q, 200, body, len);
}

/* Decides the route from method and path; answers everything but a classify
 * whose body is still to come. */
/* A POST to the other protocol families (/v2, /predictions) may carry work
 * for any model: announce it to every queue until its body has been handled,
 * so forming batches wait for it as for a /v1 request (see queue_expect). */
static void announce_all(http_req *r, app *a, int on) {
    if (http_tag(r) == on)
        return;
    http_set_tag(r, on);
    for (int i = 0; i < a->nmodels; i++)
        queue_expect(a->models[i].q, on ? 1 : -1);
}

void routes_on_headers(http_req *r, void *cls) {
    if (proto_owns(http_path(r))) { /* /v2, TorchServe, the demo page */
        if (!strcmp(http_method(r), "POST"))
            announce_all(r, cls, 1);
        proto_on_headers(r, cls);
        return;
    }
    app *a = cls;
    req *q = reqbase_new(a, r, sizeof *q);
    if (!q)
        return;
    const char *path = http_path(r);
    int get = method_is(q, "GET") || method_is(q, "HEAD");
    const char *allow = "GET, HEAD";
    if (!strcmp(path, "/healthz") || !strcmp(path, "/readyz") || !strcmp(path, "/metrics") ||
        !strcmp(path, "/v1/models")) {
        if (!get)
            goto not_allowed;
        if (!strcmp(path, "/healthz")) {
            respond_json(q, 200, strdup("{\"status\":\"ok\"}"), 15);
        } else if (!strcmp(path, "/readyz")) {
            if (q->b.draining)
                respond_error(q, 503, "draining", "the server is shutting down");
            else if (!atomic_load(&a->ready))
                respond_error(q, 503, "not_ready", "models are loading or warming up");
            else
                respond_json(q, 200, strdup("{\"status\":\"ready\"}"), 18);
        } else if (!strcmp(path, "/metrics")) {
            route_metrics(q);
        } else {
            route_models(q);
        }
        return;
    }
    allow = "POST";
    if (!strcmp(path, "/v1/classify")) {
        q->b.model = 0;
    } else if (!strncmp(path, "/v1/models/", 11)) {
        const char *name = path + 11, *slash = strchr(name, '/');
        if (!slash || strcmp(slash, "/classify") != 0) {
            respond_error(q, 404, "not_found", "no such path");
            return;
        }
        q->b.model = proto_find_model(a, name, (size_t)(slash - name));
        if (q->b.model < 0) {
            respond_error(q, 404, "model_not_found", "no model of that name is served");
            return;
        }
    } else {
        respond_error(q, 404, "not_found", "no such path");
        return;
    }
    if (!method_is(q, "POST"))
        goto not_allowed;
    q->is_classify = 1;
    const char *code, *msg;
    if (reqbase_gate(&q->b, &code, &msg)) {
        respond_error(q, 503, code, msg);
    } else if (http_body_too_large(r)) {
        metrics_rejected(a->metrics, METRICS_REJECT_BODY_TOO_LARGE);
        respond_error(q, 413, "body_too_large", "Content-Length is over max_body_bytes");
    } else {
        queue_expect(a->models[q->b.model].q, 1); /* its images are on their way */
        q->expected = 1;
    }
    return;
not_allowed : {
    size_t len;
    char *body = json_error_body("method_not_allowed", "method not allowed on this path", &len);
    const char *hdr[] = {"X-Request-Id", q->b.id, "Allow", allow, NULL};
    reqbase_send(&q->b, 405, JSON_CT, body, len, hdr);
}
}

static void image_done(queue_item *it) {
    req *q = it->owner;
    /* acq_rel: the resuming HTTP thread sees every worker's output */
    if (atomic_fetch_sub_explicit(&q->remaining, 1, memory_order_acq_rel) == 1)
        http_resume(q->b.r);
}

static const char *item_error(const image *im, int *status) {
    switch (im->qi.status) {
    case QUEUE_ITEM_OK:
        return NULL;
    case QUEUE_ITEM_EXPIRED:
        *status = 504;
        return "deadline_exceeded";
    case QUEUE_ITEM_ABORTED:
        *status = 503;
        return "draining";
    default:
        *status = 500;
        return "inference_failed";
    }
}

/* Runs on an HTTP thread once every queued image is back (or the push failed). */
static void classify_finish(http_req *r, void *cls) {
    req *q = http_user(r);
    (void)atomic_load_explicit(&q->remaining, memory_order_acquire);
    if (q->err_status) {
        respond_error(q, q->err_status, q->err_code, q->err_msg);
        return;
    }
    app_model *m = &q->b.a->models[q->b.model];
    int multipart = http_is_multipart(r);
    json_result *res = calloc((size_t)q->nimgs, sizeof(*res));
    predict_entry *preds = calloc((size_t)q->nimgs * (size_t)q->top_k, sizeof(*preds));
    if (!res || !preds) {
        free(res);
        free(preds);
        respond_error(q, 500, "internal", "out of memory");
        return;
    }
    int status = 200, expired = 0, enqueued = 0;
    for (int i = 0; i < q->nimgs; i++) {
        image *im = &q->imgs[i];
        res[i].filename = im->filename;
        if (im->err_code) {
            res[i].err_code = im->err_code;
            res[i].err_message = im->err_msg;
            continue;
        }
        enqueued++;
        int st = 200;
        const char *code = item_error(im, &st);
        if (code) {
            expired += st == 504;
            res[i].err_code = code;
            res[i].err_message = st == 504   ? "deadline passed before inference"
                                 : st == 503 ? "the server is shutting down"
                                             : "inference failed";
            if (!multipart)
                status = st;
            continue;
        }
        q->b.images_ok++;
        res[i].preds = preds + (size_t)i * (size_t)q->top_k;
        res[i].npreds = predict_top_k(im->output, m->info.num_classes, q->top_k,
                                      preds + (size_t)i * (size_t)q->top_k);
    }
    if (multipart && enqueued && expired == enqueued)
        status = 504; /* nothing of the request made its deadline */
    if (status != 200) {
        if (multipart)
            respond_error(q, 504, "deadline_exceeded", "deadline passed before inference");
        else
            respond_error(q, status, res[0].err_code, res[0].err_message);
    } else {
        size_t len;
        char *body = json_classify_body(m->mc.name, &m->mc, res, q->nimgs, multipart, &len);
        respond_json(q, 200, body, len);
    }
    free(res);
    free(preds);
}

/* Decodes and preprocesses image i on this HTTP thread. Returns 0, or the
 * HTTP status of its error (recorded in the image). */
static int prepare(req *q, app_model *m, image *im, const void *data, size_t len) {
    img_params p = m->mc.input;
    p.max_pixels = q->b.a->cfg->max_image_pixels;
    im->input = malloc(m->in_floats * sizeof(float));
    im->output = malloc((size_t)m->info.num_classes * sizeof(float));
    if (!im->input || !im->output) {
        im->err_code = "internal";
        snprintf(im->err_msg, sizeof im->err_msg, "out of memory");
        return 500;
    }
    int64_t t0 = queue_now_ns();
    img_status st = img_preprocess(data, len, &p, im->input, im->err_msg, sizeof im->err_msg);
    metrics_observe(q->b.a->metrics, METRICS_H_PREPROCESS, q->b.model,
                    (double)(queue_now_ns() - t0) / 1e9);
    if (st == IMG_OK)
        return 0;
    return status_img_http(st, &im->err_code);
}

static void unexpect(req *q);

void routes_on_body(http_req *r, void *cls) {
    if (proto_owns(http_path(r))) {
        proto_on_body(r, cls); /* decodes and pushes, or answers */
        announce_all(r, cls, 0);
        return;
    }
    app *a = cls;
    req *q = http_user(r);
    if (!q || !q->is_classify)
        return;
    app_model *m = &a->models[q->b.model];
    const char *bcode, *bmsg; /* the body was refused while it was received */
    if (reqbase_over_budget(&q->b, &bcode, &bmsg)) {
        respond_error(q, 503, bcode, bmsg);
        return;
    }
    if (http_body_too_large(r)) {
        metrics_rejected(a->metrics, METRICS_REJECT_BODY_TOO_LARGE);
        respond_error(q, 413, "body_too_large", "body is over max_body_bytes");
        return;
    }
    q->top_k = (int)a->cfg->top_k;
    const char *tk = http_query(r, "top_k");
    if (tk) {
        long long v = reqbase_parse_nonneg(tk);
        if (v < 1 || v > MAX_TOP_K) {
            respond_error(q, 400, "invalid_top_k", "top_k must be an integer in [1, 1000]");
            return;
        }
        q->top_k = (int)v;
    }
    if (q->top_k > m->info.num_classes)
        q->top_k = m->info.num_classes;
    int64_t deadline;
    if (reqbase_deadline(&q->b, 0, &deadline)) {
        respond_error(q, 400, "invalid_timeout", "X-Request-Timeout-Ms must be an integer");
        return;
    }
    int multipart = http_is_multipart(r);
    if (multipart && http_multipart_error(r)) {
        respond_error(q, 400, "bad_multipart", http_multipart_error(r));
        return;
    }
    q->nimgs = multipart ? http_num_parts(r) : 1;
    if (q->nimgs == 0) {
        respond_error(q, 400, "no_image", "multipart body has no file part");
        return;
    }
    if (!(q->imgs = calloc((size_t)q->nimgs, sizeof(image)))) {
        respond_error(q, 500, "internal", "out of memory");
        return;
    }
    queue_item **push = calloc((size_t)q->nimgs, sizeof(*push));
    if (!push) {
        respond_error(q, 500, "internal", "out of memory");
        return;
    }
    int k = 0;
    for (int i = 0; i < q->nimgs; i++) {
        image *im = &q->imgs[i];
        size_t len;
        const void *data = multipart ? http_part_data(r, i, &len) : http_body(r, &len);
        im->filename = multipart ? http_part_filename(r, i) : NULL;
        int st = prepare(q, m, im, data, len);
        if (st && !multipart) {
            respond_error(q, st, im->err_code, im->err_msg);
            free(push);
            return;
        }
        if (st)
            continue;
        im->qi.input = im->input;
        im->qi.output = im->output;
        im->qi.deadline_ns = deadline;
        im->qi.done = image_done;
        im->qi.owner = q;
        push[k++] = &im->qi;
    }
    if (k == 0) { /* multipart where every part failed to decode */
        free(push);
        classify_finish(r, a);
        return;
    }
    atomic_store(&q->remaining, k);
    http_suspend(r, classify_finish);
    queue_status qs = queue_push(m->q, push, k);
    free(push);
    unexpect(q);
    if (qs != QUEUE_OK) {
        q->err_status = qs == QUEUE_TOO_MANY ? 413 : 503;
        q->err_code = qs == QUEUE_TOO_MANY ? "too_many_images"
                      : qs == QUEUE_FULL   ? "queue_full"
                                           : "draining";
        q->err_msg = qs == QUEUE_TOO_MANY ? "more images than queue_capacity"
                     : qs == QUEUE_FULL   ? "the model's queue is full; retry later"
                                          : "the server is shutting down";
        metrics_rejected(a->metrics,
                         qs == QUEUE_FULL ? METRICS_REJECT_QUEUE_FULL : METRICS_REJECT_DRAINING);
        http_resume(r);
    }
}

/* Withdraws the request's announcement (it pushed, or will never push). */
static void unexpect(req *q) {
    if (q->expected) {
        q->expected = 0;
        queue_expect(q->b.a->models[q->b.model].q, -1);
    }
}

void routes_on_complete(http_req *r, void *cls) {
    if (proto_owns(http_path(r))) {
        announce_all(r, cls, 0);
        proto_on_complete(r, cls);
        return;
    }
    req *q = http_user(r);
    int status = http_status(r), had = q != NULL;
    if (q) {
        unexpect(q);
        reqbase_done(&q->b, status, q->nimgs);
        for (int i = 0; i < q->nimgs; i++) {
            free(q->imgs[i].input);
            free(q->imgs[i].output);
        }
        free(q->imgs);
        free(q);
    }
    reqbase_end(cls, had, status);
}
