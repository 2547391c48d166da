/*
 * routes_v2_infer.c — POST /v2/models/{m}/infer once its body is in: the
 * JSON header (all of the body, or its first Inference-Header-Content-Length
 * bytes followed by binary tensor data), the one input as FP32 [N,C,H,W] or
 * BYTES images, then the requested outputs as JSON or binary, raw or as
 * Triton classification strings. Routing and metadata are in routes_v2.c.
 */
#include "embed.h"
#include "json_proto.h"
#include "proto.h"
#include "v2_infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define V2_VERSION "1"
#define JSON_CT "application/json"

/* The request between its body (HTTP thread), its preparation (decode
 * pool) and its answer (HTTP thread). */
typedef struct {
    const char *body;      /* the request body (owned by the http_req) */
    size_t len, jlen;      /* its size, and the JSON header's */
    jp_v2_output *outputs; /* requested outputs (the default when none is named) */
    int noutputs;
    int binary_output;   /* parameters.binary_data_output */
    int tap;             /* the internal tensor (engine.h tap) requested, or -1 */
    int tap_binary;      /* ...answered as binary data */
    char *id;            /* the request's "id", or NULL */
    char input[128];     /* the input's name, for image errors */
    unsigned char **b64; /* base64-decoded images (JSON BYTES), nb64 of them */
    int nb64;
} v2_state;

static void v2_state_free(void *s) {
    v2_state *st = s;
    if (!st)
        return;
    for (int i = 0; i < st->nb64; i++)
        free(st->b64[i]);
    free(st->b64);
    free(st->outputs);
    free(st->id);
    free(st);
}

static void v2_error(proto_req *p, int status, const char *msg) {
    size_t len = 0;
    char *body = jp_v2_error(msg, &len);
    proto_respond(p, body ? status : 500, JSON_CT, body, len, NULL);
}

/* Checks the request against the model and fills the inputs and state. */
static int prepare(proto_req *p, jp_v2_request *rq, const unsigned char *bin, size_t blen,
                   char *msg, size_t ml) {
    const app_model *m = p->b.mv;
    if (rq->ninputs != 1) {
        snprintf(msg, ml, "expected 1 input but got %d inputs for model '%s'", rq->ninputs,
                 m->mc.name);
        return 400;
    }
    const jp_v2_input *in = &rq->inputs[0];
    if (in->binary_size >= 0 && (uint64_t)in->binary_size > blen) {
        snprintf(msg, ml,
                 "input '%s': binary_data_size is %lld but only %zu bytes follow the JSON "
                 "(truncated binary data)",
                 in->name, (long long)in->binary_size, blen);
        return 400;
    }
    size_t used = in->binary_size >= 0 ? (size_t)in->binary_size : 0;
    if (blen > used) {
        snprintf(msg, ml,
                 "%zu bytes after the JSON that no input claims (check "
                 "Inference-Header-Content-Length and binary_data_size)",
                 blen - used);
        return 400;
    }
    if (!in->has_data && in->binary_size < 0) {
        snprintf(msg, ml, "input '%s' has neither \"data\" nor binary_data_size", in->name);
        return 400;
    }
    const unsigned char *data = in->binary_size >= 0 ? bin : NULL;
    if (!strcmp(in->datatype, "FP32"))
        return v2_take_fp32(&p->b, in, data, msg, ml);
    if (!strcmp(in->datatype, "BYTES"))
        return v2_take_bytes(&p->b, in, data, V2_BYTES_BASE64, &((v2_state *)p->state)->b64,
                             &((v2_state *)p->state)->nb64, msg, ml);
    snprintf(msg, ml,
             "input '%s' has datatype %s; model '%s' takes FP32 [N,%d,%d,%d] or BYTES (encoded "
             "images)",
             in->name, in->datatype, m->mc.name, m->info.channels, m->info.height, m->info.width);
    return 400;
}

/* The requested outputs: each a distinct name of the model's output or of
 * one of its internal tensors (engine.h taps, listed by GET /v2/models/{m}
 * under "tensors"; at most one per request, FP32 only), so the answer holds
 * each output once whatever the request says; none named, or "outputs": [],
 * means the default (the one output, as Triton answers). classification is
 * clamped to the model's classes. */
static int take_outputs(proto_req *p, jp_v2_request *rq, v2_state *st, char *msg, size_t ml) {
    const app_model *m = p->b.mv;
    engine_tensor_desc d;
    engine_model_output_desc(m->em, 0, &d);
    int n = rq->noutputs > 0 ? rq->noutputs : 1;
    st->binary_output = rq->binary_output;
    st->tap = -1;
    for (int i = 0; i < rq->noutputs; i++) {
        const jp_v2_output *o = &rq->outputs[i];
        int tap = strcmp(o->name, d.name) ? engine_model_find_tap(m->em, o->name) : -1;
        if (tap < 0 && strcmp(o->name, d.name) != 0) {
            snprintf(msg, ml,
                     "unexpected inference output '%.120s' (entry %d of \"outputs\") for model "
                     "'%.100s' (its output is '%.120s'; its metadata lists the internal tensors "
                     "under \"tensors\")",
                     o->name, i, m->mc.name, d.name);
            return 400;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(rq->outputs[j].name, o->name)) {
                snprintf(msg, ml,
                         "output '%s' is requested twice (entries %d and %d of \"outputs\"); "
                         "each output may be named once",
                         o->name, j, i);
                return 400;
            }
        if (tap < 0)
            continue;
        if (st->tap >= 0) {
            snprintf(msg, ml,
                     "output '%s' (entry %d of \"outputs\") is a second internal tensor; a "
                     "request may name at most one",
                     o->name, i);
            return 400;
        }
        if (o->classification > 0) {
            snprintf(msg, ml, "output '%s' is an internal tensor: classification does not apply",
                     o->name);
            return 400;
        }
        st->tap = tap;
        st->tap_binary = o->binary > 0 || (o->binary < 0 && rq->binary_output);
    }
    if (!(st->outputs = calloc((size_t)n, sizeof(*st->outputs)))) {
        snprintf(msg, ml, "out of memory");
        return 500;
    }
    st->noutputs = n;
    if (rq->noutputs == 0) {
        snprintf(st->outputs[0].name, sizeof st->outputs[0].name, "%s", d.name);
        st->outputs[0].binary = -1;
        return 0;
    }
    for (int i = 0; i < n; i++) {
        st->outputs[i] = rq->outputs[i];
        if (st->outputs[i].classification > m->info.num_classes)
            st->outputs[i].classification = m->info.num_classes;
    }
    return 0;
}

/* After the images exist: the requested internal tensor's rows, within the
 * answer bound (embed.h) and reserved in the budget. */
static int take_tap(proto_req *p, v2_state *st, char *msg, size_t ml) {
    const app_model *m = p->b.mv;
    engine_tensor_desc d;
    engine_model_tap_desc(m->em, st->tap, &d);
    uint64_t per = 1;
    for (int i = 1; i < d.ndim; i++)
        per *= (uint64_t)d.dims[i];
    uint64_t most = st->tap_binary ? EMBED_MAX_ANSWER_FLOATS : EMBED_MAX_JSON_FLOATS;
    if (per * (uint64_t)p->b.nimgs > most) {
        snprintf(msg, ml,
                 "output '%s' holds %llu floats per image: %d image(s) is more than the %llu "
                 "floats one answer may hold%s",
                 d.name, (unsigned long long)per, p->b.nimgs, (unsigned long long)most,
                 st->tap_binary ? "" : " as JSON (binary data allows more)");
        return 413;
    }
    if (reqbase_tap(&p->b, st->tap)) {
        snprintf(msg, ml, "%s", p->b.err_msg);
        return p->b.err_status;
    }
    return 0;
}

static void infer_finish(proto_req *p);

/* On a decode thread: the JSON header, the outputs, the input (FP32 copied,
 * BYTES images located for the decode that follows). */
static int infer_prepare(proto_req *p) {
    v2_state *st = p->state;
    app *a = p->b.a;
    const app_model *m = p->b.mv;
    char msg[512];
    jp_v2_request rq;
    int status = 400;
    /* Before jansson builds its tree: a request for this model holds at
     * most queue_capacity tensors (nested as deep as the client likes: 2x),
     * and the tree must fit the bytes budget while it exists. */
    jp_cost cost;
    jp_parse_cost(st->body ? st->body : "", st->jlen, &cost);
    uint64_t most = 2 * (uint64_t)a->cfg->queue_capacity * m->in_floats + 4096;
    if (cost.values > most) {
        snprintf(msg, sizeof msg,
                 "the JSON holds up to %llu values; a request for model '%s' holds at most %llu "
                 "(queue_capacity tensors of %zu values)",
                 (unsigned long long)cost.values, m->mc.name, (unsigned long long)most,
                 m->in_floats);
        reqbase_fail(&p->b, 400, NULL, msg);
        return 400;
    }
    if (cost.bytes > a->mem.limit || budget_reserve(&a->mem, cost.bytes)) {
        int never = cost.bytes > a->mem.limit; /* a retry cannot help */
        if (!never)
            metrics_rejected(a->metrics, METRICS_REJECT_OVER_BUDGET);
        snprintf(msg, sizeof msg,
                 "parsing the %zu-byte JSON needs up to %llu bytes, more than %s; %s", st->jlen,
                 (unsigned long long)cost.bytes,
                 never ? "the server's max_inflight_bytes"
                       : "the server's max_inflight_bytes has "
                         "free now",
                 never ? "send the tensor as binary data" : "retry later");
        reqbase_fail(&p->b, never ? 413 : 503, NULL, msg);
        return never ? 413 : 503;
    }
    /* held until the parsed values are freed below (the tree itself is
     * freed inside the parse; this is conservative) */
    int parsed = jp_v2_parse_request(st->body ? st->body : "", st->jlen, &rq, msg, sizeof msg);
    if (!parsed && !(status = take_outputs(p, &rq, st, msg, sizeof msg))) {
        snprintf(st->input, sizeof st->input, "%s", rq.inputs[0].name);
        status = prepare(p, &rq, (const unsigned char *)st->body + st->jlen, st->len - st->jlen,
                         msg, sizeof msg);
        if (!status && st->tap >= 0)
            status = take_tap(p, st, msg, sizeof msg);
    }
    if (!status && rq.has_id && !(st->id = strdup(rq.id))) {
        snprintf(msg, sizeof msg, "out of memory");
        status = 500;
    }
    /* parameters.timeout shortens the deadline the headers gave */
    if (!status && rq.timeout_us > 0 && rq.timeout_us < INT64_MAX / 1000 &&
        p->b.t0_ns + rq.timeout_us * 1000 < p->b.deadline_ns)
        p->b.deadline_ns = p->b.t0_ns + rq.timeout_us * 1000;
    jp_v2_request_free(&rq);
    budget_release(&a->mem, cost.bytes);
    if (status)
        reqbase_fail(&p->b, status, NULL, msg);
    return status;
}

void routes_v2_infer_body(proto_req *p) {
    char msg[512];
    const char *bcode, *bmsg; /* the body was refused while it was received */
    if (reqbase_over_budget(&p->b, &bcode, &bmsg)) {
        v2_error(p, 503, bmsg);
        return;
    }
    if (http_body_too_large(p->b.r)) {
        metrics_rejected(p->b.a->metrics, METRICS_REJECT_BODY_TOO_LARGE);
        v2_error(p, 413, "body is over max_body_bytes");
        return;
    }
    if (http_is_multipart(p->b.r)) {
        v2_error(p, 400,
                 "send the inference request as JSON (optionally followed by binary data), "
                 "not multipart/form-data");
        return;
    }
    size_t len;
    const char *body = http_body(p->b.r, &len);
    size_t jlen = len;
    const char *hl = http_header(p->b.r, "Inference-Header-Content-Length");
    if (hl) {
        long long v = reqbase_parse_nonneg(hl);
        if (v < 0 || (unsigned long long)v > len) {
            snprintf(msg, sizeof msg,
                     "Inference-Header-Content-Length is '%.40s' but the body has %zu bytes", hl,
                     len);
            v2_error(p, 400, msg);
            return;
        }
        jlen = (size_t)v;
    }
    if (reqbase_deadline(&p->b, 0, &p->b.deadline_ns)) {
        v2_error(p, 400, "X-Request-Timeout-Ms must be a non-negative integer");
        return;
    }
    v2_state *st = calloc(1, sizeof(*st));
    if (!st) {
        v2_error(p, 500, "out of memory");
        return;
    }
    p->state = st;
    p->state_free = v2_state_free;
    st->body = body;
    st->len = len;
    st->jlen = jlen;
    /* parsing a large JSON body is not cheap: it runs on the decode pool */
    proto_submit(p, infer_prepare, infer_finish);
}

/* Appends output o's binary form to dst; returns the bytes written. */
static size_t put_binary(unsigned char *dst, const jp_v2_output_data *o) {
    if (o->f32) {
        memcpy(dst, o->f32, o->count * sizeof(float));
        return o->count * sizeof(float);
    }
    size_t k = 0;
    for (size_t i = 0; i < o->count; i++) {
        uint32_t len = (uint32_t)strlen(o->strs[i]);
        unsigned char le[4] = {(unsigned char)len, (unsigned char)(len >> 8),
                               (unsigned char)(len >> 16), (unsigned char)(len >> 24)};
        memcpy(dst + k, le, 4);
        memcpy(dst + k + 4, o->strs[i], len);
        k += 4 + len;
    }
    return k;
}

/* Runs on an HTTP thread once every image is back: the response. */
static void infer_finish(proto_req *p) {
    v2_state *st = p->state;
    const char *why;
    int status = proto_result(p, &why);
    if (status != 200 && p->b.err_image >= 0) { /* an image that did not decode */
        char msg[512];
        snprintf(msg, sizeof msg, "input '%s' element %d: %s", st->input, p->b.err_image, why);
        v2_error(p, status, msg);
        return;
    }
    if (status != 200) {
        v2_error(p, status, why);
        return;
    }
    const app_model *m = p->b.mv;
    int n = p->b.nimgs, classes = m->info.num_classes, no = st->noutputs;
    jp_v2_output_data *od = calloc((size_t)no, sizeof(*od));
    char ***strs = calloc((size_t)no, sizeof(char **));
    size_t bin_total = 0;
    int ok = od && strs;
    for (int o = 0; ok && o < no; o++) {
        const jp_v2_output *want = &st->outputs[o];
        jp_v2_output_data *d = &od[o];
        int k = want->classification;
        d->name = want->name;
        d->ndim = 2;
        d->shape[0] = n;
        size_t size = 0;
        int tap = st->tap >= 0 ? engine_model_find_tap(m->em, want->name) : -1;
        if (tap >= 0 && tap == st->tap) { /* the internal tensor, [n, dims...] */
            engine_tensor_desc td;
            engine_model_tap_desc(m->em, tap, &td);
            d->datatype = "FP32";
            d->ndim = td.ndim;
            for (int i = 1; i < td.ndim; i++)
                d->shape[i] = td.dims[i];
            d->count = (size_t)n * p->b.tap_floats;
            d->f32 = p->b.tap_out;
            size = d->count * sizeof(float);
        } else if (k > 0) {
            d->datatype = "BYTES";
            d->shape[1] = k;
            d->count = (size_t)n * (size_t)k;
            ok = (strs[o] = v2_classify_strings(m, proto_outputs(p), n, k)) != NULL;
            d->strs = (const char *const *)strs[o];
            for (size_t i = 0; ok && i < d->count; i++)
                size += 4 + strlen(d->strs[i]);
        } else {
            d->datatype = "FP32";
            d->shape[1] = classes;
            d->count = (size_t)n * (size_t)classes;
            d->f32 = proto_outputs(p);
            size = d->count * sizeof(float);
        }
        d->binary_size = -1;
        if (want->binary > 0 || (want->binary < 0 && st->binary_output)) {
            d->binary_size = (int64_t)size;
            bin_total += size;
        }
    }
    size_t hlen = 0;
    char *body = ok ? jp_v2_response(m->mc.name, V2_VERSION, st->id, od, no, &hlen) : NULL;
    if (body && bin_total) {
        char *b = realloc(body, hlen + bin_total);
        if (b) {
            size_t k = hlen;
            for (int o = 0; o < no; o++)
                if (od[o].binary_size >= 0)
                    k += put_binary((unsigned char *)b + k, &od[o]);
        } else {
            free(body);
        }
        body = b;
    }
    for (int o = 0; strs && o < no; o++)
        v2_free_strs(strs[o], od[o].count);
    free(strs);
    free(od);
    if (!body) {
        v2_error(p, 500, "out of memory");
    } else if (!bin_total) {
        proto_respond(p, 200, JSON_CT, body, hlen, NULL);
    } else {
        char hl[32];
        snprintf(hl, sizeof hl, "%zu", hlen);
        const char *hdr[] = {"Inference-Header-Content-Length", hl, NULL};
        proto_respond(p, 200, "application/octet-stream", body, hlen + bin_total, hdr);
    }
}
