/* json.c — the JSON documents of /v1 and `resnetd classify` (json.h). The
 * protocol families' documents are in json_proto.c, log lines in common/log.c,
 * client strings in common/json_client.c. */
#include "json.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Six significant digits, readable. (Not always equal across batch sizes:
 * oneDNN may pick other kernels for another batch, which can move the sixth
 * digit; see docs/cli.md, "classify".) */
#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6))

static char *dump(json_t *o, size_t *len) {
    char *s = o ? json_dumps(o, DUMP_FLAGS) : NULL;
    json_decref(o);
    if (s && len)
        *len = strlen(s);
    return s;
}

char *json_error_body(const char *code, const char *message, size_t *len) {
    return dump(
        json_pack("{s:{s:s,s:o}}", "error", "code", code, "message", json_client_string(message)),
        len);
}

static json_t *error_obj(const json_result *r) {
    return json_pack("{s:s,s:o}", "code", r->err_code, "message",
                     json_client_string(r->err_message));
}

static json_t *preds_array(const model_config *mc, const json_result *r) {
    json_t *a = json_array();
    char buf[16];
    for (int i = 0; a && i < r->npreds; i++) {
        const predict_entry *p = &r->preds[i];
        json_t *e = json_pack("{s:i,s:s,s:f}", "index", p->index, "label",
                              model_config_label(mc, p->index, buf), "probability",
                              isfinite(p->probability) ? p->probability : 0.0);
        if (!e || json_array_append_new(a, e)) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* Adds "predictions" or "error" to o; returns 0 or -1. */
static int add_outcome(json_t *o, const model_config *mc, const json_result *r) {
    if (r->err_code)
        return json_object_set_new(o, "error", error_obj(r));
    return json_object_set_new(o, "predictions", preds_array(mc, r));
}

char *json_classify_body(const char *model, const model_config *mc, const json_result *r, int n,
                         int multipart, size_t *len) {
    json_t *o = json_pack("{s:s}", "model", model);
    if (!o)
        return NULL;
    if (!multipart) {
        if (n < 1 || add_outcome(o, mc, &r[0])) {
            json_decref(o);
            return NULL;
        }
        return dump(o, len);
    }
    json_t *a = json_array();
    if (json_object_set_new(o, "results", a)) {
        json_decref(o);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        json_t *e = json_pack("{s:o}", "filename", json_client_string(r[i].filename));
        if (!e || add_outcome(e, mc, &r[i]) || json_array_append_new(a, e)) {
            json_decref(o);
            return NULL;
        }
    }
    return dump(o, len);
}

char *json_classify_line(const model_config *mc, const json_result *r) {
    json_t *o = json_pack("{s:o}", "file", json_client_string(r->filename));
    if (!o || add_outcome(o, mc, r)) {
        json_decref(o);
        return NULL;
    }
    return dump(o, NULL);
}

static json_t *input_obj(const img_params *p) {
    static const char *colors[] = {"rgb", "bgr", "gray"};
    return json_pack("{s:s,s:i,s:i,s:f,s:[f,f,f],s:[f,f,f]}", "color",
                     colors[p->color <= IMG_COLOR_GRAY ? p->color : 0], "resize", p->resize, "crop",
                     p->crop_h, "scale", (double)p->scale, "mean", (double)p->mean[0],
                     (double)p->mean[1], (double)p->mean[2], "std", (double)p->std[0],
                     (double)p->std[1], (double)p->std[2]);
}

/* false, or {"file", "goal", "applied": [...]}: the tuned.json values in effect. */
static json_t *tuned_obj(const json_model_info *m) {
    if (!m->tuned || !m->tuned_file)
        return json_false();
    static const char *names[3] = {"workers", "threads_per_worker", "max_batch"};
    json_t *applied = json_array();
    for (unsigned i = 0; applied && i < 3; i++)
        if (m->tuned & (1u << i))
            json_array_append_new(applied, json_string(names[i]));
    return applied ? json_pack("{s:s,s:s,s:o}", "file", m->tuned_file, "goal",
                               m->tuned_goal ? m->tuned_goal : "", "applied", applied)
                   : NULL;
}

/* The model's taps: [{"name", "shape": [dims past the batch]}, ...]. */
static json_t *taps_array(const engine_model *em) {
    json_t *a = json_array();
    int n = engine_model_num_taps(em);
    for (int i = 0; a && i < n; i++) {
        engine_tensor_desc d;
        engine_model_tap_desc(em, i, &d);
        json_t *sh = json_array();
        for (int k = 1; sh && k < d.ndim; k++)
            json_array_append_new(sh, json_integer((json_int_t)d.dims[k]));
        if (json_array_append_new(a, json_pack("{s:s,s:o}", "name", d.name, "shape", sh))) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* Adds "embedding" and "tensors" to model entry e; 0 or -1. */
static int add_taps(json_t *e, const engine_model *em) {
    if (!em)
        return 0;
    int def = engine_model_default_embedding(em);
    engine_tensor_desc d;
    if (def >= 0)
        engine_model_tap_desc(em, def, &d);
    return json_object_set_new(e, "embedding", def >= 0 ? json_string(d.name) : json_null()) ||
           json_object_set_new(e, "tensors", taps_array(em));
}

char *json_models_body(const json_model_info *m, int n, size_t *len) {
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) {
        json_t *e = json_pack("{s:s,s:[i,i,i],s:i,s:i,s:i,s:b,s:b,s:{s:o,s:i,s:i,s:i,s:o}}", "name",
                              m[i].mc->name, "input_shape", m[i].channels, m[i].height, m[i].width,
                              "classes", m[i].num_classes, "max_batch", m[i].max_batch, "workers",
                              m[i].workers, "ready", m[i].ready, "labels", m[i].mc->labels != NULL,
                              "config", "input", input_obj(&m[i].mc->input), "max_batch",
                              m[i].max_batch, "workers", m[i].workers, "threads_per_worker",
                              m[i].threads, "tuned", tuned_obj(&m[i]));
        if (!e || add_taps(e, m[i].em) || json_array_append_new(a, e)) {
            json_decref(a);
            return NULL;
        }
    }
    return dump(a ? json_pack("{s:o}", "models", a) : NULL, len);
}
