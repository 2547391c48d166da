/*
 * fuzz_npy.c — libFuzzer target over npy_parse (magic, version, header dict,
 * shape, dtype, data length). A parse that succeeds must describe exactly the
 * floats it returns; every one of them is read so ASan sees the buffer.
 */
#include "npy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    npy_array a;
    char err[256];
    memset(&a, 0, sizeof a);
    err[0] = 0;
    if (npy_parse(size ? data : NULL, size, &a, err, sizeof err) == 0) {
        size_t n = 1;
        if (a.ndim < 0 || a.ndim > NPY_MAX_DIMS)
            abort();
        for (int i = 0; i < a.ndim; i++) {
            if (a.dims[i] < 0)
                abort();
            if (__builtin_mul_overflow(n, (size_t)a.dims[i], &n))
                abort(); /* npy_parse must have refused an overflowing shape */
        }
        if (n != a.count || (n && !a.data) || n * sizeof(float) > size)
            abort();
        volatile float sink = 0;
        for (size_t i = 0; i < n; i++)
            sink += a.data[i];
        (void)sink;
    } else if (memchr(err, '\0', sizeof err) == NULL || !err[0]) {
        abort(); /* every failure names its cause */
    }
    npy_free(&a);
    return 0;
}
