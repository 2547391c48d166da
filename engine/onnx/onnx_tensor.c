/* onnx_tensor.c — ONNX TensorProto to a graph constant: float32 or int64
 * values from raw_data, the typed fields or an external data file, with every
 * size the file claims checked against the dims before use. */
#include "onnx_load.h"
#include "onnx_tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONST_ELEMS ((int64_t)1 << 31)

enum {
    DT_FLOAT = 1,
    DT_UINT8 = 2,
    DT_INT8 = 3,
    DT_UINT16 = 4,
    DT_INT16 = 5,
    DT_INT32 = 6,
    DT_INT64 = 7,
    DT_BOOL = 9,
    DT_DOUBLE = 11,
    DT_UINT32 = 12,
    DT_UINT64 = 13,
};

static int dt_size(int dt) {
    switch (dt) {
    case DT_FLOAT:
    case DT_INT32:
    case DT_UINT32:
        return 4;
    case DT_UINT8:
    case DT_INT8:
    case DT_BOOL:
        return 1;
    case DT_UINT16:
    case DT_INT16:
        return 2;
    case DT_INT64:
    case DT_DOUBLE:
    case DT_UINT64:
        return 8;
    default:
        return 0;
    }
}

/* Converts element k of a little-endian buffer of type dt. */
static double raw_elem(const uint8_t *p, int dt, int64_t k) {
    switch (dt) {
    case DT_FLOAT: {
        float v;
        memcpy(&v, p + k * 4, 4);
        return v;
    }
    case DT_DOUBLE: {
        double v;
        memcpy(&v, p + k * 8, 8);
        return v;
    }
    case DT_UINT8:
    case DT_BOOL:
        return p[k];
    case DT_INT8:
        return (int8_t)p[k];
    case DT_UINT16: {
        uint16_t v;
        memcpy(&v, p + k * 2, 2);
        return v;
    }
    case DT_INT16: {
        int16_t v;
        memcpy(&v, p + k * 2, 2);
        return v;
    }
    case DT_INT32: {
        int32_t v;
        memcpy(&v, p + k * 4, 4);
        return v;
    }
    case DT_UINT32: {
        uint32_t v;
        memcpy(&v, p + k * 4, 4);
        return v;
    }
    default:
        return 0;
    }
}

static int64_t raw_elem_i64(const uint8_t *p, int dt, int64_t k) {
    if (dt == DT_INT64 || dt == DT_UINT64) {
        int64_t v;
        memcpy(&v, p + k * 8, 8);
        return v;
    }
    return (int64_t)raw_elem(p, dt, k);
}

/* Reads [offset, offset+length) of base_dir/location into a new buffer. */
static engine_status read_external(const Onnx__TensorProto *tp, const char *base_dir, int64_t need,
                                   uint8_t **buf, char *err, size_t err_len) {
    const char *loc = NULL;
    int64_t off = 0, len = -1;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const char *k = tp->external_data[i]->key, *v = tp->external_data[i]->value;
        if (!k || !v)
            continue;
        if (strcmp(k, "location") == 0)
            loc = v;
        else if (strcmp(k, "offset") == 0)
            off = strtoll(v, NULL, 10);
        else if (strcmp(k, "length") == 0)
            len = strtoll(v, NULL, 10);
    }
    const char *nm = tp->name ? tp->name : "";
    if (!base_dir) {
        snprintf(err, err_len, "initializer '%s': external data is not allowed here", nm);
        return ENGINE_ERR_INVALID;
    }
    if (!loc || !*loc || loc[0] == '/' || strstr(loc, "..")) {
        snprintf(err, err_len, "initializer '%s': bad external data location '%s'", nm,
                 loc ? loc : "");
        return ENGINE_ERR_INVALID;
    }
    if (off < 0 || (len >= 0 && len != need)) {
        snprintf(err, err_len,
                 "initializer '%s': external data offset %lld length %lld, expected %lld bytes", nm,
                 (long long)off, (long long)len, (long long)need);
        return ENGINE_ERR_INVALID;
    }
    size_t pl = strlen(base_dir) + strlen(loc) + 2;
    char *path = malloc(pl);
    if (!path)
        return ENGINE_ERR_NOMEM;
    snprintf(path, pl, "%s/%s", base_dir, loc);
    FILE *f = fopen(path, "rb");
    engine_status st = ENGINE_OK;
    if (!f) {
        snprintf(err, err_len, "initializer '%s': cannot open external data '%s'", nm, path);
        free(path);
        return ENGINE_ERR_IO;
    }
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (size < 0 || off > size || need > size - off) {
        snprintf(err, err_len,
                 "initializer '%s': external data '%s' has %ld bytes, need %lld at offset %lld", nm,
                 path, size, (long long)need, (long long)off);
        st = ENGINE_ERR_INVALID;
    } else if (!(*buf = malloc((size_t)need + 1))) {
        st = ENGINE_ERR_NOMEM;
    } else if (fseek(f, (long)off, SEEK_SET) != 0 ||
               fread(*buf, 1, (size_t)need, f) != (size_t)need) {
        snprintf(err, err_len, "initializer '%s': cannot read external data '%s'", nm, path);
        free(*buf);
        *buf = NULL;
        st = ENGINE_ERR_IO;
    }
    fclose(f);
    free(path);
    return st;
}

/* Fills constant tensor t from a TensorProto (initializer or Constant value). */
engine_status onnx_tensor_convert(const Onnx__TensorProto *tp, const char *base_dir,
                                  graph_tensor *t, char *err, size_t err_len) {
    const char *nm = tp->name && *tp->name ? tp->name : t->name;
    int dt = tp->has_data_type ? tp->data_type : 0;
    int es = dt_size(dt);
    if (!es) {
        snprintf(err, err_len, "tensor '%s': unsupported data type %d", nm, dt);
        return ENGINE_ERR_UNSUPPORTED;
    }
    if (tp->n_dims > GRAPH_MAX_DIMS) {
        snprintf(err, err_len, "tensor '%s': %zu dims (max %d)", nm, tp->n_dims, GRAPH_MAX_DIMS);
        return ENGINE_ERR_UNSUPPORTED;
    }
    t->ndim = (int)tp->n_dims;
    for (size_t i = 0; i < tp->n_dims; i++)
        t->dims[i] = tp->dims[i];
    int64_t count = graph_numel(t->dims, t->ndim);
    if (count < 0 || count > MAX_CONST_ELEMS) {
        snprintf(err, err_len, "tensor '%s': invalid dims (negative or too large)", nm);
        return ENGINE_ERR_INVALID;
    }
    t->count = count;
    t->is_const = 1;
    t->src_dtype = dt;
    int is_float = dt == DT_FLOAT || dt == DT_DOUBLE;
    t->dtype = is_float ? GRAPH_F32 : GRAPH_I64;

    /* The data must be there, in the size the dims say, before the tensor is
     * allocated: the dims alone (a few bytes of the file) could ask for
     * MAX_CONST_ELEMS x 8 bytes. After this check the allocation is at most
     * 8 bytes per element of data actually present. */
    const uint8_t *raw = NULL;
    uint8_t *ext = NULL;
    int64_t nbytes = count * es;
    size_t have = 0;
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        engine_status st = read_external(tp, base_dir, nbytes, &ext, err, err_len);
        if (st != ENGINE_OK)
            return st;
        raw = ext;
    } else if (tp->has_raw_data) {
        if ((int64_t)tp->raw_data.len != nbytes) {
            snprintf(err, err_len, "tensor '%s': raw_data has %zu bytes, dims need %lld", nm,
                     tp->raw_data.len, (long long)nbytes);
            return ENGINE_ERR_INVALID;
        }
        raw = tp->raw_data.data;
    } else {
        switch (dt) {
        case DT_FLOAT:
            have = tp->n_float_data;
            break;
        case DT_DOUBLE:
            have = tp->n_double_data;
            break;
        case DT_INT64:
            have = tp->n_int64_data;
            break;
        case DT_UINT32:
        case DT_UINT64:
            have = tp->n_uint64_data;
            break;
        default:
            have = tp->n_int32_data;
            break;
        }
        if ((int64_t)have != count) {
            snprintf(err, err_len, "tensor '%s': has %zu values, dims need %lld", nm, have,
                     (long long)count);
            return ENGINE_ERR_INVALID;
        }
    }
    if (is_float)
        t->f = malloc((size_t)(count ? count : 1) * sizeof(float));
    else
        t->i = malloc((size_t)(count ? count : 1) * sizeof(int64_t));
    if (!t->f && !t->i) {
        free(ext);
        return ENGINE_ERR_NOMEM;
    }
    if (raw) {
        for (int64_t k = 0; k < count; k++) {
            if (is_float)
                t->f[k] = (float)raw_elem(raw, dt, k);
            else
                t->i[k] = raw_elem_i64(raw, dt, k);
        }
        free(ext);
        return ENGINE_OK;
    }
    for (int64_t k = 0; k < count; k++) {
        switch (dt) {
        case DT_FLOAT:
            t->f[k] = tp->float_data[k];
            break;
        case DT_DOUBLE:
            t->f[k] = (float)tp->double_data[k];
            break;
        case DT_INT64:
            t->i[k] = tp->int64_data[k];
            break;
        case DT_UINT32:
        case DT_UINT64:
            t->i[k] = (int64_t)tp->uint64_data[k];
            break;
        default:
            t->i[k] = tp->int32_data[k];
            break;
        }
    }
    return ENGINE_OK;
}

engine_status onnx_load_tensor(const void *data, size_t len, char *name, size_t name_len, int *ndim,
                               int64_t *dims, float **out, char *err, size_t err_len) {
    *out = NULL;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, data);
    if (!tp) {
        snprintf(err, err_len, "not a valid TensorProto");
        return ENGINE_ERR_PARSE;
    }
    graph_tensor t = {.name = tp->name ? tp->name : ""};
    engine_status st = onnx_tensor_convert(tp, NULL, &t, err, err_len);
    if (st == ENGINE_OK && t.dtype != GRAPH_F32) {
        snprintf(err, err_len, "tensor '%s': not float", t.name);
        st = ENGINE_ERR_UNSUPPORTED;
    }
    if (st == ENGINE_OK) {
        snprintf(name, name_len, "%s", t.name);
        *ndim = t.ndim;
        memcpy(dims, t.dims, sizeof t.dims);
        *out = t.f;
        t.f = NULL;
    }
    free(t.f);
    free(t.i);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return st;
}
