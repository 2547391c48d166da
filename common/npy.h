/*
 * npy.h — NumPy .npy files (format 1.0/2.0, little-endian float32 '<f4',
 * C order): the tensor format of `resnetd infer` and `resnetd preprocess`.
 */
#ifndef RESNETD_NPY_H
#define RESNETD_NPY_H

#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_DIMS 8

typedef struct {
    int ndim;
    int64_t dims[NPY_MAX_DIMS];
    float *data; /* malloc'd, count floats; freed by npy_free() */
    size_t count;
} npy_array;

/* Parses a .npy image in memory. Returns 0 on success; else -1 with one line
 * naming the cause (and byte offset) in err. out->data is owned by the caller. */
int npy_parse(const void *buf, size_t len, npy_array *out, char *err, size_t err_len);

/* Reads path with npy_parse(). */
int npy_read(const char *path, npy_array *out, char *err, size_t err_len);

/* Writes a float32 array of the given shape (format 1.0). 0 on success, -1 with err. */
int npy_write(const char *path, int ndim, const int64_t *dims, const float *data, char *err,
              size_t err_len);

/* Frees out->data and zeroes the struct; NULL is a no-op. */
void npy_free(npy_array *a);

#endif
