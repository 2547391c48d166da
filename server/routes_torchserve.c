/*
 * routes_torchserve.c — TorchServe's inference API, as its image_classifier
 * handler answers it:
 *
 *   GET  /ping                          {"status": "Healthy"} (503 "Unhealthy"
 *                                       while loading or draining)
 *   POST /predictions/{m}[/{version}]   raw image body, or multipart/form-data
 *   PUT  (same; `curl -T img.jpg` PUTs) whose first file part (TorchServe's
 *                                       field "data") is the image
 *     -> {"tabby": 0.41, "tiger_cat": 0.12, ...}: the top 5 labels (class
 *        indices without labels.txt) with softmax probabilities, most probable
 *        first; the same numbers /v1 gives.
 *
 * Errors are TorchServe's {"code": 404, "type": "ModelNotFoundException",
 * "message": "..."}. The image goes through the model's queue like /v1's.
 */
#include "json_proto.h"
#include "predict.h"
#include "proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_CT "application/json"
#define TS_TOP_K 5

static const char *error_type(int status) {
    switch (status) {
    case 404:
        return "ModelNotFoundException";
    case 405:
        return "MethodNotAllowedException";
    case 413:
        return "RequestEntityTooLargeException";
    case 503:
        return "ServiceUnavailableException";
    case 504:
        return "RequestTimeoutException";
    case 500:
        return "InternalServerException";
    default:
        return "BadRequestException";
    }
}

static void ts_error(proto_req *p, int status, const char *msg) {
    size_t len = 0;
    char *body = jp_ts_error(status, error_type(status), msg, &len);
    proto_respond(p, body ? status : 500, JSON_CT, body, len, NULL);
}

static void predictions_finish(proto_req *p) {
    const char *why;
    int status = proto_result(p, &why);
    if (status != 200) {
        ts_error(p, status, why);
        return;
    }
    const app_model *m = p->b.mv;
    predict_entry top[TS_TOP_K];
    int k = predict_top_k(proto_outputs(p), m->info.num_classes, TS_TOP_K, top);
    char bufs[TS_TOP_K][16];
    const char *labels[TS_TOP_K];
    double probs[TS_TOP_K];
    for (int i = 0; i < k; i++) {
        labels[i] = model_config_label(&m->mc, top[i].index, bufs[i]);
        probs[i] = top[i].probability;
    }
    size_t len = 0;
    char *body = jp_ts_predictions(labels, probs, k, &len);
    if (!body)
        ts_error(p, 500, "out of memory");
    else
        proto_respond(p, 200, JSON_CT, body, len, NULL);
}

static void predictions_body(proto_req *p) {
    const char *bcode, *bmsg;
    int bst = reqbase_body_ok(&p->b, &bcode, &bmsg);
    if (bst) {
        ts_error(p, bst, bmsg);
        return;
    }
    const void *data;
    size_t len;
    if (http_is_multipart(p->b.r)) {
        if (http_multipart_error(p->b.r)) {
            ts_error(p, 400, http_multipart_error(p->b.r));
            return;
        }
        if (http_num_parts(p->b.r) < 1) {
            ts_error(p, 400, "multipart body has no file part (send the image as field \"data\")");
            return;
        }
        data = http_part_data(p->b.r, 0, &len);
    } else {
        data = http_body(p->b.r, &len);
    }
    if (reqbase_deadline(&p->b, 0, &p->b.deadline_ns)) {
        ts_error(p, 400, "X-Request-Timeout-Ms must be a non-negative integer");
        return;
    }
    if (reqbase_images(&p->b, 1)) {
        ts_error(p, p->b.err_status, p->b.err_msg);
        return;
    }
    p->b.imgs[0].data = data ? data : ""; /* decoded on the decode pool */
    p->b.imgs[0].len = len;
    proto_submit(p, NULL, predictions_finish);
}

void routes_ts_on_headers(proto_req *p) {
    const char *path = http_path(p->b.r);
    if (!strcmp(path, "/ping")) {
        if (atomic_load(&p->b.a->ready) && !atomic_load(&p->b.a->draining)) {
            proto_respond(p, 200, JSON_CT, strdup("{\"status\":\"Healthy\"}"), 20, NULL);
        } else {
            proto_respond(p, 503, JSON_CT, strdup("{\"status\":\"Unhealthy\"}"), 22, NULL);
        }
        return;
    }
    /* /predictions/{m}[/{version}] */
    const char *name = path + 13, *slash = strchr(name, '/');
    size_t nlen = slash ? (size_t)(slash - name) : strlen(name);
    char msg[300];
    if (proto_bind(&p->b, name, nlen, -1) < 0) {
        snprintf(msg, sizeof msg, "Model not found: %.*s", (int)(nlen < 200 ? nlen : 200), name);
        ts_error(p, 404, msg);
        return;
    }
    if (slash) { /* /predictions/{m}/{v} with v "N" or "N.0" */
        const char *v = slash + 1;
        size_t k = strspn(v, "0123456789");
        int okv = k && k < 16 && (!v[k] || !strcmp(v + k, ".0"));
        if (!okv || proto_bind(&p->b, name, nlen, atol(v)) < 0) {
            snprintf(msg, sizeof msg, "Model version not found: %.40s", v);
            ts_error(p, 404, msg);
            return;
        }
    }
    const char *why;
    int st = proto_gate(p, &why);
    if (st)
        ts_error(p, st, why);
    else
        p->on_body = predictions_body;
}
