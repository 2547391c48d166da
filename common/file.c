/* file.c — whole-file reads (file.h). */
#include "file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int file_read_all(const char *path, size_t max_bytes, void **data, size_t *len, char *err,
                  size_t err_len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, err_len, "%s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    const char *why = NULL;
    for (;;) {
        if (n + 1 >= cap) { /* room for the spare byte too */
            size_t nc = cap ? cap * 2 : 1 << 16;
            char *nb = max_bytes && n > max_bytes ? NULL : realloc(buf, nc);
            if (!nb) {
                why = max_bytes && n > max_bytes ? "too large" : "out of memory";
                break;
            }
            buf = nb;
            cap = nc;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (!why && ferror(f))
        why = "read error";
    fclose(f);
    if (why) {
        free(buf);
        snprintf(err, err_len, "%s: %s", path, why);
        return -1;
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}
