/*
 * routes.c — the /v1 HTTP API (docs/api.md): routing, classify (cheap checks on the
 * HTTP thread, then reqbase_submit: decode pool, queue, answer when the last
 * image is back), health, readiness, models and metrics, JSON errors.
 */
#include "app.h"
#include "embed.h"
#include "json.h"
#include "predict.h"
#include "proto.h"
#include "reqbase.h"
#include "registry.h"
#include "routes_explain.h"
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_CT "application/json"
#define MAX_TOP_K 1000

typedef struct {
    req_base b; /* first: the shared request state (a, r, id, model, images...) */
    int is_classify;
    int top_k;
    int is_embed; /* /v1/embed: a classify's path with emb's tensor answered */
    embed_opts emb;
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
    if (metrics_render(q->b.a->metrics, &text, &len) || registry_metrics(q->b.a, &text, &len)) {
        respond_error(q, 500, "internal", "out of memory");
        return;
    }
    const char *hdr[] = {"X-Request-Id", q->b.id, NULL};
    reqbase_send(&q->b, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, hdr);
}

static void route_models(req *q) {
    app *a = q->b.a;
    app_model *ms[512]; /* handles on the served models (at most METRICS_MAX_MODELS names) */
    json_model_info info[512];
    int n = registry_list(a, ms, 512);
    for (int i = 0; i < n; i++) {
        const app_model *m = ms[i];
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
                                    m->tuned,
                                    m->em};
    }
    size_t len;
    char *body = json_models_body(info, n, &len);
    json_t *doc = body ? json_loads(body, 0, NULL) : NULL, *arr = json_object_get(doc, "models");
    for (size_t i = 0; json_is_array(arr) && i < json_array_size(arr) && (int)i < n; i++) {
        json_t *o = json_array_get(arr, i); /* each model: its versions and their states */
        char v[32];
        snprintf(v, sizeof v, "%ld", ms[i]->version);
        json_object_set_new(o, "version", json_string(v));
        json_object_set_new(o, "versions", registry_index(a, ms[i]->mc.name, 0));
    }
    for (int i = 0; i < n; i++)
        registry_release(ms[i]);
    if (doc) {
        free(body);
        body = json_dumps(doc, JSON_COMPACT);
        len = body ? strlen(body) : 0;
        json_decref(doc);
    }
    respond_json(q, 200, body, len);
}

/* Decides the route from method and path; answers everything but a classify
 * whose body is still to come. */
void routes_on_headers(http_req *r, void *cls) {
    if (proto_owns(http_path(r))) { /* /v2, TorchServe, the demo page */
        proto_on_headers(r, cls);
        return;
    }
    if (routes_explain_owns(http_path(r))) { /* /v1/models/{m}/explain */
        routes_explain_on_headers(r, cls);
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
            char nr[128];
            if (q->b.draining)
                respond_error(q, 503, "draining", "the server is shutting down");
            else if (!atomic_load(&a->ready))
                respond_error(q, 503, "not_ready", "models are loading or warming up");
            else if (a->cfg->strict_readiness && registry_not_ready(a, nr, sizeof nr)) {
                char msg[200];
                snprintf(msg, sizeof msg, "model '%.128s' is not ready (strict_readiness)", nr);
                respond_error(q, 503, "not_ready", msg);
            } else
                respond_json(q, 200, strdup("{\"status\":\"ready\"}"), 18);
        } else if (!strcmp(path, "/metrics")) {
            route_metrics(q);
        } else {
            route_models(q);
        }
        return;
    }
    allow = "POST";
    if (!strcmp(path, "/v1/classify") || !strcmp(path, "/v1/embed")) {
        q->b.mv = registry_acquire_first(a); /* the first model */
        q->b.model = q->b.mv ? q->b.mv->index : -1;
        q->is_embed = !strcmp(path, "/v1/embed");
        if (!q->b.mv) {
            respond_error(q, 404, "model_not_found", "no model is served");
            return;
        }
    } else if (!strncmp(path, "/v1/models/", 11)) {
        const char *name = path + 11, *slash = strchr(name, '/');
        long version = -1; /* /v1/models/{m}/versions/{v}/classify */
        size_t nlen = slash ? (size_t)(slash - name) : 0;
        if (slash && !strncmp(slash, "/versions/", 10)) {
            const char *v = slash + 10;
            size_t k = strspn(v, "0123456789");
            if (k && k < 16 && v[k] == '/') {
                version = atol(v);
                slash = v + k;
            } else
                slash = NULL;
        }
        q->is_embed = slash && !strcmp(slash, "/embed");
        if (!slash || (strcmp(slash, "/classify") != 0 && !q->is_embed)) {
            respond_error(q, 404, "not_found", "no such path");
            return;
        }
        q->b.model = proto_bind(&q->b, name, nlen, version);
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
        reqbase_expect(&q->b, 1); /* its images are on their way */
    }
    return;
not_allowed : {
    size_t len;
    char *body = json_error_body("method_not_allowed", "method not allowed on this path", &len);
    const char *hdr[] = {"X-Request-Id", q->b.id, "Allow", allow, NULL};
    reqbase_send(&q->b, 405, JSON_CT, body, len, hdr);
}
}

/* Runs on an HTTP thread once every queued image is back (or the request
 * failed before its push). */
static void classify_finish(req_base *b) {
    req *q = (req *)b;
    if (b->err_status) {
        respond_error(q, b->err_status, b->err_code, b->err_msg);
        return;
    }
    app_model *m = b->mv;
    int multipart = b->each;
    json_result *res = calloc((size_t)b->nimgs, sizeof(*res));
    predict_entry *preds = calloc((size_t)b->nimgs * (size_t)q->top_k, sizeof(*preds));
    if (!res || !preds) {
        free(res);
        free(preds);
        respond_error(q, 500, "internal", "out of memory");
        return;
    }
    int status = 200, expired = 0, pushed = 0;
    const char *code = NULL, *msg = NULL;
    for (int i = 0; i < b->nimgs; i++) {
        reqbase_img *im = &b->imgs[i];
        res[i].filename = im->filename;
        if (im->err_status) {
            res[i].err_code = im->err_code;
            res[i].err_message = im->err_msg;
            continue;
        }
        pushed++;
        if (im->qi.status != QUEUE_ITEM_OK) {
            /* one image's fate, through the shared mapping */
            req_base one = {.nimgs = 1, .imgs = im};
            int st = reqbase_result(&one, &res[i].err_code, &res[i].err_message);
            expired += st == 504;
            if (!multipart) {
                status = st;
                code = res[i].err_code;
                msg = res[i].err_message;
            }
            continue;
        }
        predict_entry *pe = preds + (size_t)i * (size_t)q->top_k;
        res[i].preds = pe;
        res[i].npreds = predict_top_k(b->out + (size_t)i * (size_t)m->info.num_classes,
                                      m->info.num_classes, q->top_k, pe);
    }
    if (multipart && pushed && expired == pushed)
        respond_error(q, 504, "deadline_exceeded", "deadline passed before inference");
    else if (status != 200)
        respond_error(q, status, code, msg);
    else {
        size_t len;
        char *body = json_classify_body(m->mc.name, &m->mc, res, b->nimgs, multipart, &len);
        respond_json(q, 200, body, len);
    }
    free(res);
    free(preds);
}

static void embed_finish(req_base *b) {
    int status;
    size_t len = 0;
    char *body = embed_answer(b, &((req *)b)->emb, &status, &len);
    respond_json((req *)b, status, body, len);
}

void routes_on_body(http_req *r, void *cls) {
    if (proto_owns(http_path(r))) {
        proto_on_body(r, cls); /* submits, or answers */
        return;
    }
    if (routes_explain_owns(http_path(r))) {
        routes_explain_on_body(r, cls);
        return;
    }
    app *a = cls;
    req *q = http_user(r);
    if (!q || !q->is_classify)
        return;
    app_model *m = q->b.mv;
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
    const char *tk = q->is_embed ? NULL : http_query(r, "top_k");
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
    if (reqbase_deadline(&q->b, 0, &q->b.deadline_ns)) {
        respond_error(q, 400, "invalid_timeout", "X-Request-Timeout-Ms must be an integer");
        return;
    }
    int multipart = http_is_multipart(r);
    if (multipart && http_multipart_error(r)) {
        respond_error(q, 400, "bad_multipart", http_multipart_error(r));
        return;
    }
    int n = multipart ? http_num_parts(r) : 1;
    if (n == 0) {
        respond_error(q, 400, "no_image", "multipart body has no file part");
        return;
    }
    char emsg[400];
    const char *ecode;
    int est = q->is_embed ? embed_parse(m, r, n, &q->emb, &ecode, emsg, sizeof emsg) : 0;
    if (est) {
        respond_error(q, est, ecode, emsg);
        return;
    }
    /* the part count against queue_capacity and the budget, before any decode */
    if (reqbase_images(&q->b, n) || (q->is_embed && reqbase_tap(&q->b, q->emb.tap))) {
        respond_error(q, q->b.err_status, q->b.err_code, q->b.err_msg);
        return;
    }
    q->b.each = multipart; /* a bad part is answered in its own result */
    for (int i = 0; i < n; i++) {
        reqbase_img *im = &q->b.imgs[i];
        im->data = multipart ? http_part_data(r, i, &im->len) : http_body(r, &im->len);
        im->filename = multipart ? http_part_filename(r, i) : NULL;
        if (!im->data) /* an empty body: decoded (and refused) as zero bytes */
            im->data = "";
    }
    reqbase_submit(&q->b, NULL, q->is_embed ? embed_finish : classify_finish);
}

void routes_on_complete(http_req *r, void *cls) {
    if (proto_owns(http_path(r))) {
        proto_on_complete(r, cls);
        return;
    }
    if (routes_explain_owns(http_path(r))) {
        routes_explain_on_complete(r, cls);
        return;
    }
    req *q = http_user(r);
    int status = http_status(r), had = q != NULL;
    if (q) {
        reqbase_done(&q->b, status);
        free(q);
    }
    reqbase_end(cls, had, status);
}
