/* npy.c — see npy.h. The header is a Python dict literal; we accept the
 * subset NumPy writes: descr '<f4', fortran_order False, a shape tuple. */
#include "npy.h"

#include "file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* Finds the value text after 'key': in the header dict, or NULL. */
static const char *npy_dict_value(const char *hdr, const char *key) {
    const char *k = strstr(hdr, key);
    if (!k)
        return NULL;
    k += strlen(key);
    while (*k == ' ' || *k == '\'' || *k == '"')
        k++;
    if (*k != ':')
        return NULL;
    k++;
    while (*k == ' ')
        k++;
    return k;
}

static int npy_parse_shape(const char *v, npy_array *out, char *err, size_t err_len) {
    if (*v != '(') {
        snprintf(err, err_len, "npy: shape is not a tuple");
        return -1;
    }
    v++;
    out->ndim = 0;
    uint64_t count = 1;
    for (;;) {
        while (*v == ' ' || *v == ',')
            v++;
        if (*v == ')')
            break;
        if (*v < '0' || *v > '9') {
            snprintf(err, err_len, "npy: bad character in shape");
            return -1;
        }
        if (out->ndim == NPY_MAX_DIMS) {
            snprintf(err, err_len, "npy: more than %d dimensions", NPY_MAX_DIMS);
            return -1;
        }
        char *end;
        errno = 0;
        unsigned long long d = strtoull(v, &end, 10);
        if (errno || d > (1ull << 40)) {
            snprintf(err, err_len, "npy: dimension out of range");
            return -1;
        }
        out->dims[out->ndim++] = (int64_t)d;
        if (d && count > (UINT64_MAX / d)) {
            snprintf(err, err_len, "npy: element count overflows");
            return -1;
        }
        count *= d;
        v = end;
    }
    out->count = (size_t)count;
    return 0;
}

int npy_parse(const void *buf, size_t len, npy_array *out, char *err, size_t err_len) {
    const unsigned char *b = buf;
    memset(out, 0, sizeof(*out));
    if (len < 10 || memcmp(b, npy_magic, 6) != 0) {
        snprintf(err, err_len, "npy: not a .npy file (bad magic at byte 0)");
        return -1;
    }
    size_t hlen, off;
    if (b[6] == 1) {
        hlen = (size_t)b[8] | ((size_t)b[9] << 8);
        off = 10;
    } else if (b[6] == 2 || b[6] == 3) {
        if (len < 12) {
            snprintf(err, err_len, "npy: truncated header");
            return -1;
        }
        hlen = (size_t)b[8] | ((size_t)b[9] << 8) | ((size_t)b[10] << 16) | ((size_t)b[11] << 24);
        off = 12;
    } else {
        snprintf(err, err_len, "npy: unsupported format version %d at byte 6", b[6]);
        return -1;
    }
    if (hlen > len - off || hlen > 65536) {
        snprintf(err, err_len, "npy: header length %zu exceeds file", hlen);
        return -1;
    }
    char *hdr = malloc(hlen + 1);
    if (!hdr) {
        snprintf(err, err_len, "npy: out of memory");
        return -1;
    }
    memcpy(hdr, b + off, hlen);
    hdr[hlen] = '\0';
    int rc = -1;
    const char *descr = npy_dict_value(hdr, "descr");
    const char *fortran = npy_dict_value(hdr, "fortran_order");
    const char *shape = npy_dict_value(hdr, "shape");
    if (!descr || !fortran || !shape) {
        snprintf(err, err_len, "npy: header lacks descr, fortran_order or shape");
    } else if (strncmp(descr, "'<f4'", 5) != 0 && strncmp(descr, "\"<f4\"", 5) != 0) {
        snprintf(err, err_len, "npy: dtype must be '<f4' (little-endian float32)");
    } else if (strncmp(fortran, "False", 5) != 0) {
        snprintf(err, err_len, "npy: fortran_order arrays are not supported");
    } else if (npy_parse_shape(shape, out, err, err_len) == 0) {
        size_t data_off = off + hlen;
        if (out->count > (len - data_off) / sizeof(float)) {
            snprintf(err, err_len, "npy: data truncated: need %zu floats at byte %zu", out->count,
                     data_off);
        } else {
            out->data = malloc(out->count ? out->count * sizeof(float) : 1);
            if (!out->data) {
                snprintf(err, err_len, "npy: out of memory for %zu floats", out->count);
            } else {
                memcpy(out->data, b + data_off, out->count * sizeof(float));
                rc = 0;
            }
        }
    }
    free(hdr);
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

int npy_read(const char *path, npy_array *out, char *err, size_t err_len) {
    memset(out, 0, sizeof(*out));
    void *buf;
    size_t len;
    if (file_read_all(path, 0, &buf, &len, err, err_len))
        return -1;
    char inner[256];
    int rc = npy_parse(buf, len, out, inner, sizeof(inner));
    free(buf);
    if (rc != 0)
        snprintf(err, err_len, "%s: %s", path, inner);
    return rc;
}

int npy_write(const char *path, int ndim, const int64_t *dims, const float *data, char *err,
              size_t err_len) {
    char hdr[512];
    if (ndim < 0 || ndim > NPY_MAX_DIMS) {
        snprintf(err, err_len, "%s: cannot write %d dimensions", path, ndim);
        return -1;
    }
    for (int i = 0; i < ndim; i++)
        if (dims[i] < 0) {
            snprintf(err, err_len, "%s: negative dimension %lld", path, (long long)dims[i]);
            return -1;
        }
    int n = snprintf(hdr, sizeof(hdr), "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        n += snprintf(hdr + n, sizeof(hdr) - (size_t)n, "%lld,%s", (long long)dims[i],
                      (i + 1 < ndim) ? " " : "");
        count *= (size_t)dims[i];
    }
    if (ndim > 1)
        n--; /* NumPy writes (1, 3) but (5,) */
    n += snprintf(hdr + n, sizeof(hdr) - (size_t)n, "), }");
    /* Pad with spaces so the data starts on a 64-byte boundary; end with '\n'. */
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    memset(hdr + n, ' ', pad);
    hdr[n + (int)pad] = '\n';
    size_t hlen = (size_t)n + pad + 1;

    FILE *f = fopen(path, "wb");
    if (!f) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return -1;
    }
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    pre[8] = (unsigned char)(hlen & 0xff); /* header length, little-endian u16 */
    pre[9] = (unsigned char)(hlen >> 8);
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, hlen, f) == hlen &&
             fwrite(data, sizeof(float), count, f) == count;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok) {
        snprintf(err, err_len, "%s: write failed", path);
        return -1;
    }
    return 0;
}

void npy_free(npy_array *a) {
    if (!a)
        return;
    free(a->data);
    memset(a, 0, sizeof(*a));
}
