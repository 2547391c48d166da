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

/* "[1,2,3]" into buf. */
static const char *shape_str(const jp_v2_input *in, char *buf, size_t len) {
    size_t k = 0;
    buf[k++] = '[';
    for (int i = 0; i < in->ndim && k + 24 < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%lld", i ? "," : "", (long long)in->shape[i]);
    snprintf(buf + k, len - k, "]");
    return buf;
}

/* Base64 (standard or URL-safe alphabet, padding optional, an optional
 * "data:...;base64," prefix) into a malloc'd buffer. Returns it, or NULL
 * when malformed (*bad = 1) or out of memory (*bad = 0). */
static unsigned char *b64_decode(const char *s, size_t n, size_t *out_len, int *bad) {
    const char *comma = memchr(s, ',', n);
    if (n > 5 && !strncmp(s, "data:", 5) && comma) {
        n -= (size_t)(comma + 1 - s);
        s = comma + 1;
    }
    while (n && s[n - 1] == '=')
        n--;
    *bad = 1;
    if (n % 4 == 1)
        return NULL;
    unsigned char *out = malloc(n / 4 * 3 + 3);
    if (!out) {
        *bad = 0;
        return NULL;
    }
    size_t k = 0;
    unsigned acc = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '+' || c == '-' ? 62
                : c == '/' || c == '_' ? 63
                                       : -1;
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = acc << 6 | (unsigned)v;
        if (i % 4 == 3) {
            out[k++] = (unsigned char)(acc >> 16);
            out[k++] = (unsigned char)(acc >> 8);
            out[k++] = (unsigned char)acc;
            acc = 0;
        }
    }
    if (n % 4 == 2) {
        out[k++] = (unsigned char)(acc >> 4);
    } else if (n % 4 == 3) {
        out[k++] = (unsigned char)(acc >> 10);
        out[k++] = (unsigned char)(acc >> 2);
    }
    *out_len = k;
    return out;
}

/* A request batch of N images must fit the queue; 1 (msg set) when not. */
static int over_capacity(const proto_req *p, const jp_v2_input *in, char *msg, size_t ml) {
    if (in->shape[0] <= p->b.a->cfg->queue_capacity)
        return 0;
    snprintf(msg, ml, "batch of %lld is over the server's queue_capacity (%lld)",
             (long long)in->shape[0], (long long)p->b.a->cfg->queue_capacity);
    return 1;
}

/* The FP32 tensor input: checks name, shape and size, copies the data.
 * Returns 0 or an HTTP status with msg set. */
static int take_fp32(proto_req *p, const jp_v2_input *in, const unsigned char *bin, char *msg,
                     size_t ml) {
    const app_model *m = &p->b.a->models[p->b.model];
    engine_tensor_desc d;
    engine_model_input_desc(m->em, 0, &d);
    char sh[200];
    if (strcmp(in->name, d.name) != 0) {
        snprintf(msg, ml, "unexpected inference input '%s' for model '%s' (its input is '%s')",
                 in->name, m->mc.name, d.name);
        return 400;
    }
    if (in->ndim != 4 || in->shape[0] < 1 || in->shape[1] != m->info.channels ||
        in->shape[2] != m->info.height || in->shape[3] != m->info.width) {
        snprintf(msg, ml,
                 "unexpected shape for input '%s' for model '%s': expected [-1,%d,%d,%d], got %s",
                 in->name, m->mc.name, m->info.channels, m->info.height, m->info.width,
                 shape_str(in, sh, sizeof sh));
        return 400;
    }
    if (over_capacity(p, in, msg, ml))
        return 400;
    int n = (int)in->shape[0];
    size_t count = (size_t)n * m->in_floats;
    if (bin && (uint64_t)in->binary_size != count * sizeof(float)) {
        snprintf(msg, ml, "input '%s': binary_data_size is %lld but shape %s of FP32 is %zu bytes",
                 in->name, (long long)in->binary_size, shape_str(in, sh, sizeof sh),
                 count * sizeof(float));
        return 400;
    }
    if (!bin && in->count != count) {
        snprintf(msg, ml, "input '%s': \"data\" holds %zu values but shape %s needs %zu", in->name,
                 in->count, shape_str(in, sh, sizeof sh), count);
        return 400;
    }
    int st = reqbase_images(&p->b, n); /* data NULL: the tensors are given */
    if (st) {
        snprintf(msg, ml, "%s", p->b.err_msg);
        return st;
    }
    memcpy(p->b.in, bin ? (const void *)bin : (const void *)in->f32, count * sizeof(float));
    return 0;
}

/* The BYTES input: N encoded images, base64 strings in JSON or
 * length-prefixed in binary. Returns 0 or an HTTP status with msg set. */
static int take_bytes(proto_req *p, const jp_v2_input *in, const unsigned char *bin, char *msg,
                      size_t ml) {
    char sh[200];
    if (!(in->ndim == 1 || (in->ndim == 2 && in->shape[1] == 1)) || in->shape[0] < 1) {
        snprintf(msg, ml, "input '%s' (BYTES): shape must be [N] or [N,1] images, got %s", in->name,
                 shape_str(in, sh, sizeof sh));
        return 400;
    }
    if (over_capacity(p, in, msg, ml))
        return 400;
    int n = (int)in->shape[0];
    if (!bin && in->count != (size_t)n) {
        snprintf(msg, ml, "input '%s': \"data\" holds %zu strings but shape %s needs %d", in->name,
                 in->count, shape_str(in, sh, sizeof sh), n);
        return 400;
    }
    if (bin && (uint64_t)in->binary_size < 4 * (uint64_t)n) { /* before allocating n tensors */
        snprintf(msg, ml, "input '%s': binary_data_size %lld cannot hold %d elements (truncated)",
                 in->name, (long long)in->binary_size, n);
        return 400;
    }
    int st = reqbase_images(&p->b, n);
    if (st) {
        snprintf(msg, ml, "%s", p->b.err_msg);
        return st;
    }
    v2_state *vs = p->state;
    if (!bin && !(vs->b64 = calloc((size_t)n, sizeof(*vs->b64)))) {
        snprintf(msg, ml, "out of memory");
        return 500;
    }
    /* the images are only located here; the pool decodes them next */
    size_t off = 0, size = bin ? (size_t)in->binary_size : 0;
    for (int i = 0; i < n; i++) {
        reqbase_img *im = &p->b.imgs[i];
        if (bin) {
            if (size - off < 4) {
                snprintf(msg, ml, "input '%s': binary data ends before element %d's length",
                         in->name, i);
                return 400;
            }
            uint32_t len = (uint32_t)bin[off] | (uint32_t)bin[off + 1] << 8 |
                           (uint32_t)bin[off + 2] << 16 | (uint32_t)bin[off + 3] << 24;
            off += 4;
            if (len > size - off) {
                snprintf(
                    msg, ml,
                    "input '%s': element %d declares %u bytes but only %zu are left (truncated)",
                    in->name, i, len, size - off);
                return 400;
            }
            im->data = bin + off;
            im->len = len;
            off += len;
        } else {
            int bad;
            unsigned char *img = b64_decode(in->bytes[i], in->bytes_len[i], &im->len, &bad);
            if (!img) {
                snprintf(msg, ml, bad ? "input '%s' element %d: invalid base64" : "out of memory",
                         in->name, i);
                return bad ? 400 : 500;
            }
            vs->b64[vs->nb64++] = img;
            im->data = img;
        }
    }
    if (bin && off != size) {
        snprintf(msg, ml, "input '%s': %zu bytes of binary data after its %d elements", in->name,
                 size - off, n);
        return 400;
    }
    return 0;
}

/* Checks the request against the model and fills the inputs and state. */
static int prepare(proto_req *p, jp_v2_request *rq, const unsigned char *bin, size_t blen,
                   char *msg, size_t ml) {
    const app_model *m = &p->b.a->models[p->b.model];
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
        return take_fp32(p, in, data, msg, ml);
    if (!strcmp(in->datatype, "BYTES"))
        return take_bytes(p, in, data, msg, ml);
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
    const app_model *m = &p->b.a->models[p->b.model];
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
    const app_model *m = &p->b.a->models[p->b.model];
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
    const app_model *m = &a->models[p->b.model];
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

/* The k highest values of row into idx, highest first (ties: lower index
 * first): Triton's classification order. Returns min(k, classes). */
static int top_raw(const float *row, int classes, int k, int *idx) {
    int n = 0;
    for (int i = 0; i < classes; i++) {
        float v = row[i];
        if (n == k && !(v > row[idx[k - 1]]))
            continue;
        int j = n < k ? n++ : k - 1;
        while (j > 0 && row[idx[j - 1]] < v) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    return n;
}

static void free_strs(char **s, size_t n) {
    for (size_t i = 0; s && i < n; i++)
        free(s[i]);
    free(s);
}

/* n rows of k "value:index[:label]" strings (Triton's format: the raw
 * output value with %f, the label when the model has labels.txt). Returns a
 * malloc'd array of n * k malloc'd strings, or NULL when out of memory. */
static char **classify_strings(const app_model *m, const float *out, int n, int k) {
    int classes = m->info.num_classes;
    char **s = calloc((size_t)n * (size_t)k, sizeof(char *));
    int *idx = malloc((size_t)k * sizeof(int));
    for (int r = 0; s && idx && r < n; r++) {
        const float *row = out + (size_t)r * (size_t)classes;
        top_raw(row, classes, k, idx);
        for (int j = 0; j < k; j++) {
            char buf[16], *e = NULL;
            const char *label = m->mc.labels ? model_config_label(&m->mc, idx[j], buf) : NULL;
            int w = label ? asprintf(&e, "%f:%d:%s", (double)row[idx[j]], idx[j], label)
                          : asprintf(&e, "%f:%d", (double)row[idx[j]], idx[j]);
            if (w < 0) {
                free_strs(s, (size_t)n * (size_t)k);
                free(idx);
                return NULL;
            }
            s[(size_t)r * (size_t)k + (size_t)j] = e;
        }
    }
    free(idx);
    return s;
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
    const app_model *m = &p->b.a->models[p->b.model];
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
            ok = (strs[o] = classify_strings(m, proto_outputs(p), n, k)) != NULL;
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
        free_strs(strs[o], od[o].count);
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
