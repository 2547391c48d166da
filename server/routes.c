/*
 * routes.c — the route table and the /v1 HTTP API (docs/api.md).
 *
 * The table maps a method and a path pattern to a route family: its request
 * struct's size, its hooks and its 405 body. Every request goes the same
 * way: reqbase_new (request id, in-flight count), auth_check (the table's
 * first check: a 401 is answered there, logged and counted like any answer),
 * a 405 with Allow when the path is known but not for that method (answered
 * here; families never check the method), then the family's on_headers,
 * which answers or wants the body; on_body gets the body; at the
 * end reqbase_done logs, counts and frees. Families never call back here.
 *
 * /v1: classify and embed (cheap checks on the HTTP thread, then
 * reqbase_submit: decode pool, queue, answer when the last image is back),
 * health, readiness, models and metrics, JSON errors.
 */
#include "app.h"
#include "auth.h"
#include "embed.h"
#include "json.h"
#include "json_proto.h"
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
    size_t len = 1; /* a failed allocation (NULL body) is answered 500 */
    char *body = json_error_body(code, msg, &len);
    respond_json(q, status, body, len);
}

static void route_metrics(req *q) {
    char *text;
    size_t len;
    if (metrics_render(q->b.a->metrics, &text, &len) || registry_metrics(q->b.a, &text, &len)) {
        respond_error(q, 500, "internal", "out of memory");
        return;
    }
    reqbase_respond(&q->b, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL);
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

/* /v1 from method and path; answers everything but a classify whose body is
 * still to come. */
static void v1_on_headers(req_base *b) {
    app *a = b->a;
    http_req *r = b->r;
    req *q = (req *)b;
    const char *path = http_path(r);
    if (!strcmp(path, "/healthz") || !strcmp(path, "/readyz") || !strcmp(path, "/metrics") ||
        !strcmp(path, "/v1/models")) { /* the route table took only GET and HEAD */
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
        if (proto_bind(&q->b, name, nlen, version) < 0) {
            respond_error(q, 404, "model_not_found", "no model of that name is served");
            return;
        }
    } else {
        respond_error(q, 404, "not_found", "no such path");
        return;
    }
    q->is_classify = 1; /* a POST: the route table answered other methods */
    const char *code, *msg;
    int st = reqbase_accept(&q->b, &code, &msg);
    if (st)
        respond_error(q, st, code, msg);
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
    int status = 200;
    const char *code = NULL, *msg = NULL;
    for (int i = 0; i < b->nimgs; i++) {
        reqbase_img *im = &b->imgs[i];
        res[i].filename = im->filename;
        if (im->err_status) {
            res[i].err_code = im->err_code;
            res[i].err_message = im->err_msg;
            continue;
        }
        if (im->qi.status != QUEUE_ITEM_OK) {
            /* one image's fate, through the shared mapping */
            req_base one = {.nimgs = 1, .imgs = im};
            int st = reqbase_result(&one, &res[i].err_code, &res[i].err_message);
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
    const status_info *exp = status_of_item(QUEUE_ITEM_EXPIRED);
    if (multipart && reqbase_all_expired(b))
        respond_error(q, exp->http, exp->code, exp->msg);
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

static void v1_on_body(req_base *b) {
    app *a = b->a;
    http_req *r = b->r;
    req *q = (req *)b;
    if (!q->is_classify)
        return;
    app_model *m = q->b.mv;
    const char *bcode, *bmsg;
    int bst = reqbase_body_ok(&q->b, &bcode, &bmsg);
    if (bst) {
        respond_error(q, bst, bcode, bmsg);
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

/* The protocol families' entry points take their proto_req (a req_base first). */
static void v2_on_headers(req_base *b) {
    routes_v2_on_headers((proto_req *)b);
}

static void ts_on_headers(req_base *b) {
    routes_ts_on_headers((proto_req *)b);
}

static void demo_on_headers(req_base *b) {
    routes_demo_on_headers((proto_req *)b);
}

/* The 405 bodies, each in its family's error format. */
static char *v1_not_allowed(size_t *len) {
    return json_error_body("method_not_allowed", "method not allowed on this path", len);
}

static char *v2_not_allowed(size_t *len) {
    return jp_v2_error("method not allowed on this path", len);
}

static char *ts_not_allowed(size_t *len) {
    return jp_ts_error(405, "MethodNotAllowedException", "method not allowed on this path", len);
}

/* A route family: its request struct and hooks, and its 405 body. */
typedef struct {
    size_t size; /* the family's request struct (a req_base first); 0: explain's */
    void (*on_headers)(req_base *b);
    void (*on_body)(req_base *b);
    void (*on_free)(req_base *b);
    char *(*not_allowed)(size_t *len);
} family;

static const family V1 = {sizeof(req), v1_on_headers, v1_on_body, NULL, v1_not_allowed};
static const family V2 = {sizeof(proto_req), v2_on_headers, proto_on_body, proto_on_free,
                          v2_not_allowed};
static const family TS = {sizeof(proto_req), ts_on_headers, proto_on_body, proto_on_free,
                          ts_not_allowed};
static const family DEMO = {sizeof(proto_req), demo_on_headers, proto_on_body, proto_on_free,
                            v1_not_allowed};
static const family EXPLAIN = {0, routes_explain_on_headers, routes_explain_on_body, NULL,
                               v1_not_allowed};

typedef struct {
    const char *methods; /* the methods taken, as the Allow header lists them; NULL: any */
    const char *pattern; /* "*": one non-empty segment; a trailing "**": any rest */
    const family *f;
} route;

#define GET "GET, HEAD"
#define POST "POST"

/* A request goes to the first route whose pattern and method match. A path
 * that some routes match but none for its method is answered 405 here, with
 * Allow listing their methods. A route with methods NULL takes what is left
 * under its pattern (its family's 404); the last takes every other path. */
static const route ROUTES[] = {
    {GET, "/healthz", &V1},
    {GET, "/readyz", &V1},
    {GET, "/metrics", &V1},
    {GET, "/v1/models", &V1},
    {POST, "/v1/classify", &V1},
    {POST, "/v1/embed", &V1},
    {POST, "/v1/models/*/classify", &V1},
    {POST, "/v1/models/*/embed", &V1},
    {POST, "/v1/models/*/versions/*/classify", &V1},
    {POST, "/v1/models/*/versions/*/embed", &V1},
    {POST, "/v1/models/*/explain", &EXPLAIN},
    {GET, "/v2", &V2},
    {GET, "/v2/", &V2},
    {GET, "/v2/health/live", &V2},
    {GET, "/v2/health/ready", &V2},
    {"GET, HEAD, POST", "/v2/repository/index", &V2},
    {POST, "/v2/repository/models/*/load", &V2},
    {POST, "/v2/repository/models/*/unload", &V2},
    {GET, "/v2/models/*", &V2},
    {GET, "/v2/models/*/ready", &V2},
    {GET, "/v2/models/*/config", &V2},
    {POST, "/v2/models/*/infer", &V2},
    {GET, "/v2/models/*/versions/*", &V2},
    {GET, "/v2/models/*/versions/*/ready", &V2},
    {GET, "/v2/models/*/versions/*/config", &V2},
    {POST, "/v2/models/*/versions/*/infer", &V2},
    {NULL, "/v2/**", &V2},
    {GET, "/ping", &TS},
    {"POST, PUT", "/predictions/*", &TS},
    {"POST, PUT", "/predictions/*/*", &TS},
    {NULL, "/predictions/**", &TS},
    {GET, "/", &DEMO},
    {GET, "/demo/**", &DEMO},
    {NULL, "**", &V1},
};

#undef GET
#undef POST

static int match(const char *pat, const char *path) {
    while (*pat) {
        if (pat[0] == '*' && pat[1] == '*')
            return 1;
        if (*pat == '*') {
            size_t n = strcspn(path, "/");
            if (!n)
                return 0;
            path += n;
            pat++;
        } else if (*pat++ != *path++) {
            return 0;
        }
    }
    return !*path;
}

/* Is method one of the ", "-separated list? */
static int method_in(const char *list, const char *method) {
    size_t n = strlen(method);
    for (const char *s = list; *s;) {
        size_t k = strcspn(s, ",");
        if (k == n && !strncmp(s, method, n))
            return 1;
        s += k;
        s += strspn(s, ", ");
    }
    return 0;
}

/* Appends a route's methods to allow (no duplicates); allow holds every list. */
static void allow_add(char *allow, size_t cap, const char *list) {
    char m[16];
    for (const char *s = list; *s;) {
        size_t k = strcspn(s, ",");
        if (k < sizeof m) {
            memcpy(m, s, k);
            m[k] = 0;
            if (!method_in(allow, m))
                snprintf(allow + strlen(allow), cap - strlen(allow), "%s%s", *allow ? ", " : "", m);
        }
        s += k;
        s += strspn(s, ", ");
    }
}

void routes_on_headers(http_req *r, void *cls) {
    const char *path = http_path(r), *method = http_method(r);
    const route *rt = NULL;
    char allow[64] = "";
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0] && !rt; i++) {
        if (!match(ROUTES[i].pattern, path))
            continue;
        if (ROUTES[i].methods && !method_in(ROUTES[i].methods, method))
            allow_add(allow, sizeof allow, ROUTES[i].methods);
        else if (!ROUTES[i].methods && *allow)
            break; /* the path is known, the method is not: 405 */
        else
            rt = &ROUTES[i];
    }
    const family *f = rt ? rt->f : NULL;
    if (!f) { /* a 405: answered in the family of the routes the path matched */
        for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0] && !f; i++)
            if (ROUTES[i].methods && match(ROUTES[i].pattern, path))
                f = ROUTES[i].f;
        if (!f)
            f = &V1;
    }
    req_base *b = reqbase_new(cls, r, f->size ? f->size : routes_explain_size());
    if (!b || auth_check(b)) /* answered: 500 (no memory) or 401 */
        return;
    if (!rt) {
        size_t len = 0;
        char *body = f->not_allowed(&len);
        const char *hdr[] = {"Allow", allow, NULL};
        reqbase_respond(b, body ? 405 : 500, JSON_CT, body, body ? len : 0, body ? hdr : NULL);
        return;
    }
    b->on_body = f->on_body;
    b->on_free = f->on_free;
    f->on_headers(b);
}

void routes_on_body(http_req *r, void *cls) {
    req_base *b = http_user(r);
    (void)cls;
    if (b && b->on_body)
        b->on_body(b); /* submits, or answers */
}

void routes_on_complete(http_req *r, void *cls) {
    req_base *b = http_user(r);
    int status = http_status(r);
    if (b) {
        reqbase_done(b, status);
        if (b->on_free)
            b->on_free(b);
        free(b);
    }
    reqbase_end(cls, b != NULL, status);
}
