/* embed.c — /v1/embed: the query, the pooling and the answer (embed.h). */
#include "embed.h"

#include "json.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int embed_parse(const app_model *m, http_req *r, int nimgs, embed_opts *o, const char **code,
                char *msg, size_t len) {
    memset(o, 0, sizeof *o);
    const char *name = http_query(r, "tensor"), *pool = http_query(r, "pool"),
               *norm = http_query(r, "normalize");
    if (name) { /* (no engine model: the request fuzzer's fake has no tensors) */
        o->tap = m->em ? engine_model_find_tap(m->em, name) : -1;
        if (o->tap < 0) {
            *code = "unknown_tensor";
            snprintf(msg, len,
                     "model '%s' has no tensor '%.200s' that can be asked for; GET /v1/models "
                     "lists them (\"tensors\")",
                     m->mc.name, name);
            return 400;
        }
    } else if ((o->tap = m->em ? engine_model_default_embedding(m->em) : -1) < 0) {
        *code = "no_default_embedding";
        snprintf(msg, len,
                 "model '%s' has no classifier input to use as its embedding; name a tensor with "
                 "?tensor= (GET /v1/models lists them)",
                 m->mc.name);
        return 400;
    }
    if (!pool || !strcmp(pool, "avg"))
        o->pool = EMBED_POOL_AVG;
    else if (!strcmp(pool, "max"))
        o->pool = EMBED_POOL_MAX;
    else if (!strcmp(pool, "none"))
        o->pool = EMBED_POOL_NONE;
    else {
        *code = "invalid_pool";
        snprintf(msg, len, "pool must be avg, max or none");
        return 400;
    }
    if (norm && strcmp(norm, "l2") && strcmp(norm, "none")) {
        *code = "invalid_normalize";
        snprintf(msg, len, "normalize must be l2 or none");
        return 400;
    }
    o->l2 = norm && !strcmp(norm, "l2");
    engine_tensor_desc d;
    engine_model_tap_desc(m->em, o->tap, &d);
    /* per image: dims[1..]; pooling keeps dims[1] (the channels) */
    if (o->pool == EMBED_POOL_NONE || d.ndim <= 2) {
        o->ndim = d.ndim - 1;
        memcpy(o->shape, d.dims + 1, (size_t)o->ndim * sizeof(int64_t));
    } else {
        o->ndim = 1;
        o->shape[0] = d.dims[1];
    }
    o->dim = 1;
    for (int i = 0; i < o->ndim; i++)
        o->dim *= (size_t)o->shape[i];
    if ((uint64_t)o->dim * (uint64_t)(nimgs > 0 ? nimgs : 1) > EMBED_MAX_ANSWER_FLOATS) {
        *code = "answer_too_large";
        snprintf(msg, len,
                 "%d image(s) of %zu floats each is more than the %u floats one answer may "
                 "hold; pool the tensor (pool=avg or max) or send fewer images",
                 nimgs, o->dim, EMBED_MAX_ANSWER_FLOATS);
        return 413;
    }
    return 0;
}

void embed_reduce(const embed_opts *o, const float *tap, size_t tap_floats, float *out) {
    if (o->dim == tap_floats) {
        memcpy(out, tap, tap_floats * sizeof(float));
    } else { /* pooled: o->dim channels of tap_floats / dim values each */
        size_t sp = tap_floats / o->dim;
        for (size_t c = 0; c < o->dim; c++) {
            const float *x = tap + c * sp;
            double acc = o->pool == EMBED_POOL_MAX ? -INFINITY : 0.0;
            for (size_t k = 0; k < sp; k++)
                acc = o->pool == EMBED_POOL_MAX ? fmax(acc, (double)x[k]) : acc + (double)x[k];
            out[c] = (float)(o->pool == EMBED_POOL_MAX ? acc : acc / (double)sp);
        }
    }
    if (o->l2) {
        double ss = 0;
        for (size_t c = 0; c < o->dim; c++)
            ss += (double)out[c] * out[c];
        if (ss > 0) {
            double inv = 1.0 / sqrt(ss);
            for (size_t c = 0; c < o->dim; c++)
                out[c] = (float)(out[c] * inv);
        }
    }
}

/* A growing string; oom sticks. */
typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *t = realloc(b->s, cap);
        if (!t) {
            b->oom = 1;
            return;
        }
        b->s = t;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) {
    sb_put(b, s, strlen(s));
}

/* o as compact JSON without its closing brace (members follow); takes o. */
static void sb_open(sbuf *b, json_t *o) {
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!s || strlen(s) < 2) {
        b->oom = 1;
        free(s);
        return;
    }
    sb_put(b, s, strlen(s) - 1);
    free(s);
}

/* [v, ...] with 9 significant digits (a float round-trips); null for NaN/inf. */
static void sb_floats(sbuf *b, const float *v, size_t n) {
    char tmp[32];
    sb_put(b, "[", 1);
    for (size_t i = 0; i < n && !b->oom; i++) {
        int w = isfinite(v[i]) ? snprintf(tmp, sizeof tmp, "%s%.9g", i ? "," : "", (double)v[i])
                               : snprintf(tmp, sizeof tmp, "%snull", i ? "," : "");
        sb_put(b, tmp, (size_t)w);
    }
    sb_put(b, "]", 1);
}

static json_t *shape_json(const embed_opts *o) {
    json_t *a = json_array();
    for (int i = 0; a && i < o->ndim; i++)
        json_array_append_new(a, json_integer((json_int_t)o->shape[i]));
    return a;
}

char *embed_answer(const req_base *b, const embed_opts *o, int *status, size_t *len) {
    const app_model *m = b->mv;
    const char *code = NULL, *msg = NULL;
    *status = 200;
    if (b->err_status) {
        *status = b->err_status;
        return json_error_body(b->err_code ? b->err_code : "error", b->err_msg, len);
    }
    int multipart = b->each;
    if (!multipart) {
        int st = reqbase_result(b, &code, &msg);
        if (st != 200) {
            *status = st;
            return json_error_body(code ? code : "error", msg, len);
        }
    } else {
        int pushed = 0, expired = 0;
        for (int i = 0; i < b->nimgs; i++) {
            pushed += b->imgs[i].pushed;
            expired += b->imgs[i].pushed && b->imgs[i].qi.status == QUEUE_ITEM_EXPIRED;
        }
        if (pushed && expired == pushed) {
            *status = 504;
            return json_error_body("deadline_exceeded", "deadline passed before inference", len);
        }
    }
    engine_tensor_desc d;
    engine_model_tap_desc(m->em, o->tap, &d);
    float *row = malloc((o->dim + 1) * sizeof(float));
    sbuf s = {0};
    if (!row) {
        *status = 500;
        return json_error_body("internal", "out of memory", len);
    }
    sb_open(&s, json_pack("{s:s,s:s,s:s,s:I,s:o}", "model", m->mc.name, "version", "1", "tensor",
                          d.name, "dim", (json_int_t)o->dim, "shape", shape_json(o)));
    sb_str(&s, multipart ? ",\"results\":[" : ",\"embedding\":");
    for (int i = 0; i < b->nimgs && !s.oom; i++) {
        const reqbase_img *im = &b->imgs[i];
        int ok = !im->err_status && im->qi.status == QUEUE_ITEM_OK;
        if (multipart) {
            json_t *e = json_pack("{s:o}", "filename", json_client_string(im->filename));
            if (!ok) {
                req_base one = {.nimgs = 1, .imgs = (reqbase_img *)im};
                if (!im->err_status)
                    reqbase_result(&one, &code, &msg);
                else
                    code = im->err_code, msg = im->err_msg;
                json_object_set_new(e, "error",
                                    json_pack("{s:s,s:o}", "code", code ? code : "error", "message",
                                              json_client_string(msg)));
            }
            if (i)
                sb_put(&s, ",", 1);
            sb_open(&s, e);
            if (ok)
                sb_str(&s, ",\"embedding\":");
        }
        if (ok) {
            embed_reduce(o, b->tap_out + (size_t)i * b->tap_floats, b->tap_floats, row);
            sb_floats(&s, row, o->dim);
        }
        if (multipart)
            sb_put(&s, "}", 1);
    }
    sb_str(&s, multipart ? "]}" : "}");
    free(row);
    if (s.oom) {
        free(s.s);
        *status = 500;
        return json_error_body("internal", "out of memory", len);
    }
    *len = s.n;
    return s.s;
}
