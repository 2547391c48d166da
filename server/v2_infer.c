/*
 * v2_infer.c — the protocol-neutral half of a KServe v2 inference request,
 * shared by the REST route (routes_v2_infer.c) and the gRPC service
 * (grpc/grpc_service.c), so both check inputs with the same rules and
 * messages and answer with the same bytes: the FP32 and BYTES input checks
 * that fill a request's images, and Triton's classification strings.
 */
#include "v2_infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
static int over_capacity(const req_base *b, const jp_v2_input *in, char *msg, size_t ml) {
    if (in->shape[0] <= b->a->cfg->queue_capacity)
        return 0;
    snprintf(msg, ml, "batch of %lld is over the server's queue_capacity (%lld)",
             (long long)in->shape[0], (long long)b->a->cfg->queue_capacity);
    return 1;
}

/* The FP32 tensor input: checks name, shape and size, copies the data.
 * Returns 0 or an HTTP status with msg set. */
int v2_take_fp32(req_base *b, const jp_v2_input *in, const unsigned char *bin, char *msg,
                 size_t ml) {
    const app_model *m = b->mv;
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
    if (over_capacity(b, in, msg, ml))
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
    int st = reqbase_images(b, n); /* data NULL: the tensors are given */
    if (st) {
        snprintf(msg, ml, "%s", b->err_msg);
        return st;
    }
    memcpy(b->in, bin ? (const void *)bin : (const void *)in->f32, count * sizeof(float));
    return 0;
}

/* The BYTES input: N encoded images, base64 strings in JSON or
 * length-prefixed in binary. Returns 0 or an HTTP status with msg set. */
int v2_take_bytes(req_base *b, const jp_v2_input *in, const unsigned char *bin, v2_bytes_mode mode,
                  unsigned char ***b64, int *nb64, char *msg, size_t ml) {
    char sh[200];
    if (!(in->ndim == 1 || (in->ndim == 2 && in->shape[1] == 1)) || in->shape[0] < 1) {
        snprintf(msg, ml, "input '%s' (BYTES): shape must be [N] or [N,1] images, got %s", in->name,
                 shape_str(in, sh, sizeof sh));
        return 400;
    }
    if (over_capacity(b, in, msg, ml))
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
    int st = reqbase_images(b, n);
    if (st) {
        snprintf(msg, ml, "%s", b->err_msg);
        return st;
    }
    if (!bin && mode == V2_BYTES_BASE64 && !(*b64 = calloc((size_t)n, sizeof(**b64)))) {
        snprintf(msg, ml, "out of memory");
        return 500;
    }
    /* the images are only located here; the pool decodes them next */
    size_t off = 0, size = bin ? (size_t)in->binary_size : 0;
    for (int i = 0; i < n; i++) {
        reqbase_img *im = &b->imgs[i];
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
        } else if (mode == V2_BYTES_RAW) {
            im->data = in->bytes[i];
            im->len = in->bytes_len[i];
        } else {
            int bad;
            unsigned char *img = b64_decode(in->bytes[i], in->bytes_len[i], &im->len, &bad);
            if (!img) {
                snprintf(msg, ml, bad ? "input '%s' element %d: invalid base64" : "out of memory",
                         in->name, i);
                return bad ? 400 : 500;
            }
            (*b64)[(*nb64)++] = img;
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

void v2_free_strs(char **s, size_t n) {
    for (size_t i = 0; s && i < n; i++)
        free(s[i]);
    free(s);
}

/* n rows of k "value:index[:label]" strings (Triton's format: the raw
 * output value with %f, the label when the model has labels.txt). Returns a
 * malloc'd array of n * k malloc'd strings, or NULL when out of memory. */
char **v2_classify_strings(const app_model *m, const float *out, int n, int k) {
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
                v2_free_strs(s, (size_t)n * (size_t)k);
                free(idx);
                return NULL;
            }
            s[(size_t)r * (size_t)k + (size_t)j] = e;
        }
    }
    free(idx);
    return s;
}
