/*
 * routes_v2.c — KServe v2 / Open Inference Protocol (REST) with Triton's
 * binary tensor data and classification extensions.
 *
 *   GET  /v2                                   server metadata
 *   GET  /v2/health/live, /v2/health/ready     200, or 400 when not ready
 *   POST /v2/repository/index                  the models, versions and states (GET too)
 *   POST /v2/repository/models/{m}/load|unload explicit model control (registry.h)
 *   GET  /v2/models/{m}[/versions/{v}]           model metadata
 *   GET  /v2/models/{m}[/versions/{v}]/ready     200, or 400 when not ready
 *   GET  /v2/models/{m}[/versions/{v}]/config    Triton's model configuration
 *   POST /v2/models/{m}[/versions/{v}]/infer     inference
 *
 * An inference request has one input, either FP32 [N,C,H,W] (the model's
 * tensor: the answer is its raw output [N,classes], what `resnetd infer`
 * writes) or BYTES [N] / [N,1] of encoded images (JPEG/PNG/WebP: base64
 * strings in JSON, or 4-byte little-endian length + bytes per element in
 * binary), decoded and preprocessed as /v1 does. Each of the N images is a
 * queue item of the model, so v2 shares /v1's batching, deadlines, limits
 * and metrics. Errors are {"error": "..."}: 400 bad request, 404 unknown
 * model or path, 405 method, 413 body too large, 415 not an image format,
 * 503 queue full / not ready / draining, 504 deadline.
 */
#include "json_proto.h"
#include "proto.h"
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the binary tensor extension is little-endian; byte swapping is not implemented"
#endif

#define V2_VERSION "1"
#define V2_PLATFORM "onnxruntime_onnx"
#define JSON_CT "application/json"

static void v2_error(proto_req *p, int status, const char *msg) {
    size_t len = 0;
    char *body = jp_v2_error(msg, &len);
    proto_respond(p, body ? status : 500, JSON_CT, body, len, NULL);
}

/* len is read after body is built (an argument's evaluation order is unspecified). */
static void v2_json(proto_req *p, char *body, const size_t *len) {
    if (!body)
        v2_error(p, 500, "out of memory");
    else
        proto_respond(p, 200, JSON_CT, body, *len, NULL);
}

/* a model's own readiness: it has a serving version (bound) and start-up is over */
static int ready(const proto_req *p) {
    return atomic_load(&p->b.a->ready) && !atomic_load(&p->b.a->draining);
}

static void health(proto_req *p, int ok) {
    proto_respond(p, ok ? 200 : 400, NULL, NULL, 0, NULL);
}

static void server_metadata(proto_req *p) {
    static const char *const ext[] = {"binary_tensor_data", "classification", "model_configuration",
                                      "model_repository"};
    size_t len = 0;
    v2_json(p, jp_v2_server_metadata("resnetd", RESNETD_VERSION, ext, 4, &len), &len);
}

static void repository_index(proto_req *p) {
    json_t *idx = registry_index(p->b.a, NULL, 0);
    char *body = idx ? json_dumps(idx, JSON_COMPACT) : NULL;
    json_decref(idx);
    size_t len = body ? strlen(body) : 0;
    v2_json(p, body, &len);
}

/* POST /v2/repository/models/{m}/load | /unload (explicit mode; blocks this
 * HTTP thread until the loader thread has done it) */
static void repository_control(proto_req *p, const char *s) {
    const char *slash = strrchr(s, '/');
    if (!slash || slash == s || (strcmp(slash, "/load") && strcmp(slash, "/unload")) ||
        memchr(s, '/', (size_t)(slash - s))) {
        v2_error(p, 404, "no such path");
        return;
    }
    char msg[500];
    int st =
        registry_control(p->b.a, s, (size_t)(slash - s), !strcmp(slash, "/load"), msg, sizeof msg);
    if (st == 200) {
        char *body = strdup("{}");
        proto_respond(p, body ? 200 : 500, JSON_CT, body, body ? 2 : 1, NULL);
    } else
        v2_error(p, st, msg);
}

static void model_metadata(proto_req *p) {
    const app_model *m = p->b.mv;
    engine_tensor_desc in, out;
    engine_model_input_desc(m->em, 0, &in);
    engine_model_output_desc(m->em, 0, &out);
    jp_v2_tensor_meta ti = {
        in.name, "FP32", 4, {-1, m->info.channels, m->info.height, m->info.width}};
    jp_v2_tensor_meta to = {out.name, "FP32", 2, {-1, m->info.num_classes}};
    /* the internal tensors an infer request may name as outputs */
    int nt = engine_model_num_taps(m->em), def = engine_model_default_embedding(m->em);
    engine_tensor_desc *td = calloc((size_t)nt + 1, sizeof *td);
    jp_v2_tensor_meta *tm = calloc((size_t)nt + 1, sizeof *tm);
    size_t len = 0;
    char *body = NULL;
    if (td && tm) {
        for (int i = 0; i < nt; i++) {
            engine_model_tap_desc(m->em, i, &td[i]);
            tm[i] = (jp_v2_tensor_meta){td[i].name, "FP32", td[i].ndim, {0}};
            memcpy(tm[i].shape, td[i].dims, sizeof tm[i].shape);
            tm[i].shape[0] = -1;
        }
        char ver[32];
        snprintf(ver, sizeof ver, "%ld", m->version);
        body = jp_v2_model_metadata_taps(m->mc.name, ver, V2_PLATFORM, &ti, 1, &to, 1, tm, nt,
                                         def >= 0 ? td[def].name : NULL, &len);
    }
    free(td);
    free(tm);
    json_t *doc = body ? json_loads(body, 0, NULL) : NULL,
           *idx = registry_index(p->b.a, m->mc.name, 1);
    if (doc && idx) { /* every READY version, not only the one this request bound */
        json_t *vs = json_array(), *e;
        size_t i;
        json_array_foreach(idx, i, e) json_array_append(vs, json_object_get(e, "version"));
        json_object_set_new(doc, "versions", vs);
        free(body);
        body = json_dumps(doc, JSON_COMPACT);
        len = body ? strlen(body) : 0;
    }
    json_decref(doc);
    json_decref(idx);
    v2_json(p, body, &len);
}

static void model_configuration(proto_req *p) {
    const app_model *m = p->b.mv;
    engine_tensor_desc in, out;
    engine_model_input_desc(m->em, 0, &in);
    engine_model_output_desc(m->em, 0, &out);
    int64_t chw[3] = {m->info.channels, m->info.height, m->info.width};
    size_t len = 0;
    v2_json(p,
            jp_v2_model_config(m->mc.name, V2_PLATFORM, m->max_batch, in.name, chw, out.name,
                               m->info.num_classes, m->mc.labels ? "labels.txt" : NULL, &len),
            &len);
}

/* "/v2/models/{m}[/versions/{v}]{rest}": finds the model and the rest. */
static void models_route(proto_req *p, const char *s) {
    const char *slash = strchr(s, '/');
    size_t nlen = slash ? (size_t)(slash - s) : strlen(s);
    int found = proto_bind(&p->b, s, nlen, -1) == 0;
    const char *rest = s + nlen;
    char msg[300];
    if (!found) {
        snprintf(msg, sizeof msg, "Request for unknown model: '%.*s' is not found",
                 (int)(nlen < 200 ? nlen : 200), s);
        v2_error(p, 404, msg);
        return;
    }
    if (!strncmp(rest, "/versions/", 10)) {
        const char *v = rest + 10, *vs = strchr(v, '/');
        size_t vlen = vs ? (size_t)(vs - v) : strlen(v);
        long ver = vlen && vlen < 16 && strspn(v, "0123456789") >= vlen ? atol(v) : -1;
        if (ver < 0 || proto_bind(&p->b, s, nlen, ver) < 0) {
            snprintf(msg, sizeof msg, "Request for unknown model: '%.*s' version %.*s is not found",
                     (int)(nlen < 200 ? nlen : 200), s, (int)(vlen < 40 ? vlen : 40), v);
            v2_error(p, 404, msg);
            return;
        }
        rest = v + vlen;
    }
    if (!strcmp(rest, "") || !strcmp(rest, "/ready") || !strcmp(rest, "/config")) {
        if (!*rest)
            model_metadata(p);
        else if (!strcmp(rest, "/ready"))
            health(p, ready(p));
        else
            model_configuration(p);
        return;
    }
    if (strcmp(rest, "/infer") != 0) {
        v2_error(p, 404, "no such path");
        return;
    }
    const char *why;
    int st = proto_gate(p, &why);
    if (st)
        v2_error(p, st, why);
    else
        p->on_body = routes_v2_infer_body;
}

void routes_v2_on_headers(proto_req *p) {
    const char *path = http_path(p->b.r);
    if (!strcmp(path, "/v2") || !strcmp(path, "/v2/") || !strcmp(path, "/v2/health/live") ||
        !strcmp(path, "/v2/health/ready")) {
        if (!strcmp(path, "/v2/health/live"))
            health(p, 1);
        else if (!strcmp(path, "/v2/health/ready"))
            health(p, registry_server_ready(p->b.a));
        else
            server_metadata(p);
    } else if (!strcmp(path, "/v2/repository/index")) {
        repository_index(p);
    } else if (!strncmp(path, "/v2/repository/models/", 22)) {
        repository_control(p, path + 22);
    } else if (!strncmp(path, "/v2/models/", 11)) {
        models_route(p, path + 11);
    } else {
        v2_error(p, 404, "no such path");
    }
}
