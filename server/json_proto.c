/* json_proto.c — jansson for the v2 / Triton and TorchServe bodies. */
#include "json_proto.h"
#include "json.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DUMP6 (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6))
#define DUMP9 (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9))

static char *dump(json_t *o, size_t flags, size_t *len) {
    char *s = o ? json_dumps(o, flags) : NULL;
    json_decref(o);
    if (s && len)
        *len = strlen(s);
    return s;
}

static int fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t err_len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return -1;
}

/* Counts the leaves of nested arrays; -1 when a leaf is not of the wanted
 * kind (want_number: numbers, else strings). */
static long long count_leaves(const json_t *v, int want_number) {
    if (json_is_array(v)) {
        long long n = 0;
        for (size_t i = 0; i < json_array_size(v); i++) {
            long long k = count_leaves(json_array_get(v, i), want_number);
            if (k < 0)
                return -1;
            n += k;
        }
        return n;
    }
    if (want_number ? json_is_number(v) : json_is_string(v))
        return 1;
    return -1;
}

/* Copies the leaves in row-major order; returns 0, -1 when out of memory,
 * or -2 for a number outside the float range (it would become +-inf). */
static int fill_leaves(const json_t *v, jp_v2_input *in, size_t *k) {
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            int rc = fill_leaves(json_array_get(v, i), in, k);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (in->f32) {
        double d = json_number_value(v);
        if (!(fabs(d) <= FLT_MAX))
            return -2;
        in->f32[(*k)++] = (float)d;
        return 0;
    }
    size_t n = json_string_length(v);
    char *s = malloc(n + 1);
    if (!s)
        return -1;
    memcpy(s, json_string_value(v), n + 1);
    in->bytes[*k] = s;
    in->bytes_len[(*k)++] = n;
    return 0;
}

static int parse_data(const json_t *data, jp_v2_input *in, char *err, size_t err_len) {
    int fp32 = !strcmp(in->datatype, "FP32"), bytes = !strcmp(in->datatype, "BYTES");
    in->has_data = 1;
    if (!fp32 && !bytes)
        return 0; /* the route rejects the datatype */
    long long n = count_leaves(data, fp32);
    if (n < 0)
        return fail(err, err_len, "input '%s': every element of \"data\" must be a %s", in->name,
                    fp32 ? "number (datatype FP32)" : "string (datatype BYTES: base64)");
    in->count = (size_t)n;
    if (fp32)
        in->f32 = malloc((size_t)(n ? n : 1) * sizeof(float));
    else {
        in->bytes = calloc((size_t)(n ? n : 1), sizeof(char *));
        in->bytes_len = calloc((size_t)(n ? n : 1), sizeof(size_t));
    }
    size_t k = 0;
    int rc = (fp32 && !in->f32) || (bytes && (!in->bytes || !in->bytes_len))
                 ? -1
                 : fill_leaves(data, in, &k);
    if (rc == -2)
        return fail(err, err_len,
                    "input '%s': element %zu of \"data\" is outside the FP32 range (|x| <= %g)",
                    in->name, k, (double)FLT_MAX);
    if (rc)
        return fail(err, err_len, "out of memory");
    return 0;
}

static int parse_input(const json_t *o, jp_v2_input *in, char *err, size_t err_len) {
    in->binary_size = -1;
    const json_t *name = json_object_get(o, "name"), *dt = json_object_get(o, "datatype"),
                 *shape = json_object_get(o, "shape"), *params = json_object_get(o, "parameters");
    if (!json_is_object(o) || !json_is_string(name) || !json_is_string(dt) || !json_is_array(shape))
        return fail(err, err_len,
                    "each input needs \"name\" (string), \"datatype\" (string) and \"shape\" "
                    "(array)");
    snprintf(in->name, sizeof in->name, "%s", json_string_value(name));
    snprintf(in->datatype, sizeof in->datatype, "%s", json_string_value(dt));
    size_t nd = json_array_size(shape);
    if (nd > JP_MAX_DIMS)
        return fail(err, err_len, "input '%s': shape has %zu dimensions (at most %d)", in->name, nd,
                    JP_MAX_DIMS);
    in->ndim = (int)nd;
    for (size_t i = 0; i < nd; i++) {
        const json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return fail(err, err_len, "input '%s': shape must hold non-negative integers",
                        in->name);
        in->shape[i] = json_integer_value(d);
    }
    if (params) {
        const json_t *bs = json_object_get(params, "binary_data_size");
        if (!json_is_object(params) || (bs && (!json_is_integer(bs) || json_integer_value(bs) < 0)))
            return fail(err, err_len,
                        "input '%s': parameters.binary_data_size must be a non-negative integer",
                        in->name);
        if (bs)
            in->binary_size = json_integer_value(bs);
    }
    const json_t *data = json_object_get(o, "data");
    if (data && in->binary_size >= 0)
        return fail(err, err_len, "input '%s' has both \"data\" and binary_data_size", in->name);
    return data ? parse_data(data, in, err, err_len) : 0;
}

static int parse_output(const json_t *o, jp_v2_output *out, char *err, size_t err_len) {
    const json_t *name = json_object_get(o, "name"), *params = json_object_get(o, "parameters");
    out->binary = -1;
    if (!json_is_object(o) || !json_is_string(name))
        return fail(err, err_len, "each requested output needs a \"name\" (string)");
    snprintf(out->name, sizeof out->name, "%s", json_string_value(name));
    if (!params)
        return 0;
    const json_t *bin = json_object_get(params, "binary_data"),
                 *cls = json_object_get(params, "classification");
    if (!json_is_object(params) || (bin && !json_is_boolean(bin)))
        return fail(err, err_len, "output '%s': parameters.binary_data must be a boolean",
                    out->name);
    if (cls &&
        (!json_is_integer(cls) || json_integer_value(cls) < 0 || json_integer_value(cls) > 1000000))
        return fail(err, err_len,
                    "output '%s': parameters.classification must be a non-negative integer",
                    out->name);
    if (bin)
        out->binary = json_is_true(bin);
    if (cls)
        out->classification = (int)json_integer_value(cls);
    return 0;
}

static int parse_params(const json_t *params, jp_v2_request *r, char *err, size_t err_len) {
    if (!params)
        return 0;
    const json_t *bo = json_object_get(params, "binary_data_output"),
                 *to = json_object_get(params, "timeout");
    if (!json_is_object(params) || (bo && !json_is_boolean(bo)))
        return fail(err, err_len, "parameters.binary_data_output must be a boolean");
    if (to && (!json_is_integer(to) || json_integer_value(to) < 0))
        return fail(err, err_len, "parameters.timeout must be a non-negative integer (us)");
    r->binary_output = bo && json_is_true(bo);
    r->timeout_us = to ? json_integer_value(to) : 0;
    return 0;
}

void jp_parse_cost(const char *json, size_t len, jp_cost *c) {
    uint64_t commas = 0, arrays = 0, objects = 0, colons = 0, strings = 0;
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = json[i];
        if (in_str) {
            if (ch == '\\')
                i++; /* the escaped character cannot end the string */
            else if (ch == '"')
                in_str = 0;
            continue;
        }
        commas += ch == ',';
        arrays += ch == '[';
        objects += ch == '{';
        colons += ch == ':';
        if (ch == '"') {
            strings++;
            in_str = 1;
        }
    }
    c->values = commas + arrays + objects + 1;
    c->bytes = 64 * (commas + 1) + 160 * arrays + 320 * objects + 192 * colons + 96 * strings +
               (uint64_t)len;
}

int jp_v2_parse_request(const char *json, size_t len, jp_v2_request *r, char *err, size_t err_len) {
    memset(r, 0, sizeof(*r));
    json_error_t je;
    json_t *o = json_loadb(json, len, 0, &je);
    if (!o)
        return fail(err, err_len, "invalid JSON at byte %d: %s", je.position, je.text);
    int rc = -1;
    const json_t *id = json_object_get(o, "id"), *inputs = json_object_get(o, "inputs"),
                 *outputs = json_object_get(o, "outputs");
    if (!json_is_object(o)) {
        fail(err, err_len, "the request must be a JSON object");
    } else if (id && !json_is_string(id)) {
        fail(err, err_len, "\"id\" must be a string");
    } else if (!json_is_array(inputs) || json_array_size(inputs) == 0) {
        fail(err, err_len, "\"inputs\" must be a non-empty array");
    } else if (outputs && !json_is_array(outputs)) {
        fail(err, err_len, "\"outputs\" must be an array");
    } else if (outputs && json_array_size(outputs) > JP_MAX_OUTPUTS) {
        fail(err, err_len, "\"outputs\" has %zu entries (at most %d)", json_array_size(outputs),
             JP_MAX_OUTPUTS);
    } else if (id && json_string_length(id) >= sizeof r->id) {
        fail(err, err_len, "\"id\" is %zu bytes long (at most %zu)", json_string_length(id),
             sizeof r->id - 1);
    } else if (!parse_params(json_object_get(o, "parameters"), r, err, err_len)) {
        if (id) {
            r->has_id = 1;
            snprintf(r->id, sizeof r->id, "%s", json_string_value(id));
        }
        size_t ni = json_array_size(inputs), no = outputs ? json_array_size(outputs) : 0;
        r->inputs = calloc(ni, sizeof(*r->inputs));
        r->outputs = calloc(no ? no : 1, sizeof(*r->outputs));
        r->has_outputs = outputs != NULL;
        if (!r->inputs || !r->outputs) {
            fail(err, err_len, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < ni; i++, r->ninputs++)
            if (parse_input(json_array_get(inputs, i), &r->inputs[i], err, err_len)) {
                r->ninputs++;
                goto out;
            }
        for (size_t i = 0; i < no; i++, r->noutputs++)
            if (parse_output(json_array_get(outputs, i), &r->outputs[i], err, err_len))
                goto out;
        rc = 0;
    }
out:
    json_decref(o);
    return rc;
}

void jp_v2_request_free(jp_v2_request *r) {
    for (int i = 0; i < r->ninputs; i++) {
        jp_v2_input *in = &r->inputs[i];
        free(in->f32);
        for (size_t k = 0; in->bytes && k < in->count; k++)
            free(in->bytes[k]);
        free(in->bytes);
        free(in->bytes_len);
    }
    free(r->inputs);
    free(r->outputs);
    memset(r, 0, sizeof(*r));
}

static json_t *shape_array(const int64_t *shape, int ndim) {
    json_t *a = json_array();
    for (int i = 0; a && i < ndim; i++)
        if (json_array_append_new(a, json_integer(shape[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *output_obj(const jp_v2_output_data *o) {
    json_t *e = json_pack("{s:s,s:s,s:o}", "name", o->name, "datatype", o->datatype, "shape",
                          shape_array(o->shape, o->ndim));
    if (!e)
        return NULL;
    if (o->binary_size >= 0) {
        if (json_object_set_new(e, "parameters",
                                json_pack("{s:I}", "binary_data_size", (json_int_t)o->binary_size)))
            goto fail;
        return e;
    }
    json_t *d = json_array();
    if (json_object_set_new(e, "data", d))
        goto fail;
    for (size_t i = 0; i < o->count; i++) {
        json_t *v;
        if (o->f32)
            v = isfinite(o->f32[i]) ? json_real((double)o->f32[i]) : json_null();
        else
            v = json_string(o->strs[i]);
        if (json_array_append_new(d, v))
            goto fail;
    }
    return e;
fail:
    json_decref(e);
    return NULL;
}

char *jp_v2_response(const char *model, const char *version, const char *id,
                     const jp_v2_output_data *o, int n, size_t *len) {
    json_t *r = json_pack("{s:s,s:s}", "model_name", model, "model_version", version);
    if (r && id && json_object_set_new(r, "id", json_string(id)))
        goto fail;
    json_t *outs = json_array();
    if (!r || json_object_set_new(r, "outputs", outs))
        goto fail;
    for (int i = 0; i < n; i++)
        if (json_array_append_new(outs, output_obj(&o[i])))
            goto fail;
    return dump(r, DUMP9, len);
fail:
    json_decref(r);
    return NULL;
}

char *jp_v2_error(const char *msg, size_t *len) {
    return dump(json_pack("{s:o}", "error", json_client_string(msg)), DUMP6, len);
}

static json_t *string_array(const char *const *s, int n) {
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(s[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

char *jp_v2_server_metadata(const char *name, const char *version, const char *const *ext, int next,
                            size_t *len) {
    return dump(json_pack("{s:s,s:s,s:o}", "name", name, "version", version, "extensions",
                          string_array(ext, next)),
                DUMP6, len);
}

static json_t *tensor_metas(const jp_v2_tensor_meta *t, int n) {
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_pack("{s:s,s:s,s:o}", "name", t[i].name, "datatype",
                                               t[i].datatype, "shape",
                                               shape_array(t[i].shape, t[i].ndim)))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

char *jp_v2_model_metadata(const char *name, const char *version, const char *platform,
                           const jp_v2_tensor_meta *in, int nin, const jp_v2_tensor_meta *out,
                           int nout, size_t *len) {
    return dump(json_pack("{s:s,s:[s],s:s,s:o,s:o}", "name", name, "versions", version, "platform",
                          platform, "inputs", tensor_metas(in, nin), "outputs",
                          tensor_metas(out, nout)),
                DUMP6, len);
}

char *jp_v2_model_metadata_taps(const char *name, const char *version, const char *platform,
                                const jp_v2_tensor_meta *in, int nin, const jp_v2_tensor_meta *out,
                                int nout, const jp_v2_tensor_meta *taps, int ntaps,
                                const char *embedding, size_t *len) {
    json_t *o = json_pack("{s:s,s:[s],s:s,s:o,s:o,s:o}", "name", name, "versions", version,
                          "platform", platform, "inputs", tensor_metas(in, nin), "outputs",
                          tensor_metas(out, nout), "tensors", tensor_metas(taps, ntaps));
    if (o && embedding && json_object_set_new(o, "embedding", json_string(embedding))) {
        json_decref(o);
        o = NULL;
    }
    return dump(o, DUMP6, len);
}

char *jp_v2_model_config(const char *name, const char *platform, int max_batch, const char *in_name,
                         const int64_t chw[3], const char *out_name, int64_t classes,
                         const char *label_file, size_t *len) {
    json_t *output = json_pack("{s:s,s:s,s:[I]}", "name", out_name, "data_type", "TYPE_FP32",
                               "dims", (json_int_t)classes);
    if (output && label_file &&
        json_object_set_new(output, "label_filename", json_string(label_file))) {
        json_decref(output);
        output = NULL;
    }
    return dump(json_pack("{s:s,s:s,s:s,s:i,s:[{s:s,s:s,s:s,s:[I,I,I]}],s:[o]}", "name", name,
                          "platform", platform, "backend", "onnxruntime", "max_batch_size",
                          max_batch, "input", "name", in_name, "data_type", "TYPE_FP32", "format",
                          "FORMAT_NCHW", "dims", (json_int_t)chw[0], (json_int_t)chw[1],
                          (json_int_t)chw[2], "output", output),
                DUMP6, len);
}

char *jp_v2_repository_index(const char *const *names, int n, const char *version,
                             const char *state, size_t *len) {
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_pack("{s:s,s:s,s:s}", "name", names[i], "version",
                                               version, "state", state))) {
            json_decref(a);
            return NULL;
        }
    return dump(a, DUMP6, len);
}

char *jp_ts_predictions(const char *const *labels, const double *probs, int n, size_t *len) {
    json_t *o = json_object();
    for (int i = 0; o && i < n; i++)
        if (json_object_set_new(o, labels[i], json_real(isfinite(probs[i]) ? probs[i] : 0.0))) {
            json_decref(o);
            return NULL;
        }
    return dump(o, DUMP6, len);
}

char *jp_ts_error(int code, const char *type, const char *msg, size_t *len) {
    return dump(
        json_pack("{s:i,s:s,s:o}", "code", code, "type", type, "message", json_client_string(msg)),
        DUMP6, len);
}
