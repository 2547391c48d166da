/*
 * routes_explain.c — POST /v1/models/{m}/explain (docs/api.md, "Explain"):
 * a class activation map (Zhou et al. 2016) of one image from the same
 * forward pass that classifies it. The image goes the /v1 way (reqbase:
 * decode pool, the model's queue and batches); its queue item also asks the
 * worker for the features tap that feeds the model's global average pooling
 * (queue_item.tap / tap_out, engine_run_fetch), and the answer is built
 * here on the HTTP thread from that tap, the classifier's row of the class
 * (engine_model_cam_info) and the input tensor: the map as JSON, or a PNG of
 * it blended over the input as the model saw it (cam.h).
 *
 * Cost bounds, all fixed by the model and reserved in the server budget
 * before the image is decoded: the tap (C*h*w floats; ResNet-50: 2048*7*7,
 * 392 KiB), the map (h*w floats) and its JSON (h*w numbers), or for a PNG the
 * picture (crop*crop*3 bytes) and the encoder's output bound. Work on the
 * HTTP thread: C*h*w multiply-adds, and for a PNG a bilinear sample, a
 * colour and a zlib level-1 pass per input pixel.
 */
#include "routes_explain.h"

#include "cam.h"
#include "json.h"
#include "predict.h"
#include "proto.h"
#include "reqbase.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_CT "application/json"
/* What the CAM's colours weigh against the picture in the PNG. */
#define OVERLAY_ALPHA 0.5f
/* jansson's tree and text per number of the map, with room to spare
 * (json_proto.h measures ~40 bytes a number for the tree). */
#define JSON_BYTES_PER_VALUE 64

typedef struct {
    req_base b; /* first: the shared request state */
    int want_body;
    int png;   /* format=png */
    int klass; /* ?class=K, or -1: the top-1 class */
    engine_cam_info ci;
} explain_req;

static void respond_error(explain_req *q, int status, const char *code, const char *msg) {
    size_t len = 0;
    char *body = json_error_body(code, msg, &len);
    reqbase_respond(&q->b, status, JSON_CT, body, body ? len : 1, NULL);
}

void routes_explain_on_headers(req_base *b) {
    explain_req *q = (explain_req *)b;
    http_req *r = b->r;
    const char *name = http_path(r) + 11, *slash = strchr(name, '/');
    if (proto_bind(&q->b, name, (size_t)(slash - name), -1) < 0) {
        respond_error(q, 404, "model_not_found", "no model of that name is served");
        return;
    }
    q->want_body = 1;
    const char *code, *msg;
    int st = reqbase_accept(&q->b, &code, &msg);
    if (st)
        respond_error(q, st, code, msg);
}

/* ?format= and ?class=: 0, or an answered 400. */
static int parse_query(explain_req *q, const app_model *m) {
    const char *f = http_query(q->b.r, "format");
    if (f && strcmp(f, "json") != 0 && strcmp(f, "png") != 0) {
        respond_error(q, 400, "invalid_format", "format must be json or png");
        return -1;
    }
    q->png = f && !strcmp(f, "png");
    char err[256];
    engine_status st = engine_model_cam_info(m->em, &q->ci, err, sizeof err);
    if (st == ENGINE_OK && q->ci.classes != m->info.num_classes) { /* e.g. a head after it */
        snprintf(err, sizeof err, "the classifier has %d rows but the output %d classes",
                 q->ci.classes, m->info.num_classes);
        st = ENGINE_ERR_UNSUPPORTED;
    }
    if (st != ENGINE_OK) {
        char msg[512];
        snprintf(msg, sizeof msg,
                 "model '%s' has no class activation map: it needs conv features -> global "
                 "average pool -> one linear classifier (%s)",
                 m->mc.name, err);
        respond_error(q, 400, "cam_unsupported", msg);
        return -1;
    }
    q->klass = -1;
    const char *k = http_query(q->b.r, "class");
    if (k) {
        /* decimal digits only: no sign, space or exponent */
        long long v = k[0] && strspn(k, "0123456789") == strlen(k) ? reqbase_parse_nonneg(k) : -1;
        if (v < 0 || v >= q->ci.classes) {
            char msg[160];
            snprintf(msg, sizeof msg, "class must be an integer in [0, %d]", q->ci.classes - 1);
            respond_error(q, 400, "invalid_class", msg);
            return -1;
        }
        q->klass = (int)v;
    }
    return 0;
}

/* The bytes this request holds besides reqbase's tensors and tap (see the
 * top). */
static uint64_t extra_bytes(const explain_req *q, const app_model *m) {
    uint64_t hw = (uint64_t)q->ci.height * (uint64_t)q->ci.width;
    uint64_t bytes = hw * sizeof(float);
    if (q->png) {
        int W = m->info.width, H = m->info.height;
        bytes += (uint64_t)W * (uint64_t)H * 3 + cam_png_bound(W, H);
    } else {
        bytes += hw * JSON_BYTES_PER_VALUE + 4096;
    }
    return bytes;
}

static char *json_answer(explain_req *q, const app_model *m, int k, double p, const float *map,
                         size_t *len) {
    int h = q->ci.height, w = q->ci.width;
    char buf[16];
    json_t *values = json_array();
    for (int i = 0; values && i < h * w; i++)
        if (json_array_append_new(values, json_real(map[i]))) {
            json_decref(values);
            values = NULL;
        }
    if (!values)
        return NULL;
    json_t *o = json_pack("{s:s,s:i,s:s,s:f,s:{s:i,s:i,s:o},s:{s:i,s:i}}", "model", m->mc.name,
                          "class", k, "label", model_config_label(&m->mc, k, buf), "probability",
                          isfinite(p) ? p : 0.0, "map", "width", w, "height", h, "values", values,
                          "input", "width", m->info.width, "height", m->info.height);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(o);
    if (s)
        *len = strlen(s);
    return s;
}

/* Runs on an HTTP thread once the image is back. */
static void explain_finish(req_base *b) {
    explain_req *q = (explain_req *)b;
    const char *code, *msg;
    int st = reqbase_result(b, &code, &msg);
    if (st != 200) {
        respond_error(q, st, code, msg);
        return;
    }
    app_model *m = b->mv;
    int classes = m->info.num_classes;
    int k = q->klass;
    if (k < 0) {
        predict_entry top;
        predict_top_k(b->out, classes, 1, &top);
        k = top.index;
    }
    double p = predict_probability(b->out, classes, k);
    int h = q->ci.height, w = q->ci.width;
    float *map = malloc((size_t)h * (size_t)w * sizeof *map);
    if (!map) {
        respond_error(q, 500, "internal", "out of memory");
        return;
    }
    cam_map(b->tap_out, q->ci.channels, h, w, q->ci.weight + (size_t)k * (size_t)q->ci.channels,
            map);
    cam_normalize(map, (size_t)h * (size_t)w);
    char kbuf[16], pbuf[32];
    snprintf(kbuf, sizeof kbuf, "%d", k);
    snprintf(pbuf, sizeof pbuf, "%.6g", isfinite(p) ? p : 0.0);
    const char *hdr[] = {"X-Class", kbuf, "X-Probability", pbuf, NULL};
    if (!q->png) {
        size_t len = 0;
        char *body = json_answer(q, m, k, p, map, &len);
        free(map);
        if (!body)
            respond_error(q, 500, "internal", "out of memory");
        else
            reqbase_respond(b, 200, JSON_CT, body, len, hdr);
        return;
    }
    int W = m->info.width, H = m->info.height;
    uint8_t *rgb = malloc((size_t)W * (size_t)H * 3);
    unsigned char *png = NULL;
    size_t len = 0;
    char err[200];
    int rc = -1;
    if (!rgb)
        snprintf(err, sizeof err, "out of memory");
    else if (cam_input_rgb(b->in, &m->mc.input, m->info.channels, H, W, rgb))
        snprintf(err, sizeof err, "a %d-channel input cannot be drawn", m->info.channels);
    else {
        cam_overlay(rgb, H, W, map, h, w, OVERLAY_ALPHA);
        rc = cam_png(rgb, W, H, &png, &len, err, sizeof err);
    }
    free(rgb);
    free(map);
    if (rc)
        respond_error(q, 500, "internal", err);
    else
        reqbase_respond(b, 200, "image/png", (char *)png, len, hdr);
}

void routes_explain_on_body(req_base *b) {
    explain_req *q = (explain_req *)b;
    app *a = b->a;
    http_req *r = b->r;
    if (!q->want_body)
        return;
    app_model *m = q->b.mv;
    const char *bcode, *bmsg;
    int bst = reqbase_body_ok(&q->b, &bcode, &bmsg);
    if (bst) {
        respond_error(q, bst, bcode, bmsg);
        return;
    }
    if (parse_query(q, m))
        return;
    if (reqbase_deadline(&q->b, 0, &q->b.deadline_ns)) {
        respond_error(q, 400, "invalid_timeout", "X-Request-Timeout-Ms must be an integer");
        return;
    }
    int multipart = http_is_multipart(r);
    if (multipart && http_multipart_error(r)) {
        respond_error(q, 400, "bad_multipart", http_multipart_error(r));
        return;
    }
    if (multipart && http_num_parts(r) != 1) {
        respond_error(q, 400, http_num_parts(r) ? "one_image" : "no_image",
                      "explain takes exactly one image (a raw body or one file part)");
        return;
    }
    /* the image's tensors, and its features tap: the worker copies it out */
    if (reqbase_images(&q->b, 1) || reqbase_tap(&q->b, q->ci.features_tap)) {
        respond_error(q, q->b.err_status, q->b.err_code, q->b.err_msg);
        return;
    }
    uint64_t extra = extra_bytes(q, m);
    if (budget_reserve(&a->mem, extra)) {
        metrics_rejected(a->metrics, METRICS_REJECT_OVER_BUDGET);
        respond_error(q, 503, "over_budget",
                      "the map and its picture do not fit the server's max_inflight_bytes now; "
                      "retry later");
        return;
    }
    q->b.reserved += extra;
    reqbase_img *im = &q->b.imgs[0];
    im->data = multipart ? http_part_data(r, 0, &im->len) : http_body(r, &im->len);
    im->filename = multipart ? http_part_filename(r, 0) : NULL;
    if (!im->data) /* an empty body: decoded (and refused) as zero bytes */
        im->data = "";
    reqbase_submit(&q->b, NULL, explain_finish);
}

size_t routes_explain_size(void) {
    return sizeof(explain_req);
}
