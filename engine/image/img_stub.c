/* img_stub.c — placeholder so the tree links before the image pipeline lands. */
#include "img.h"

#include <stdio.h>

img_status img_preprocess(const void *data, size_t len, const img_params *p, float *out, char *err,
                          size_t err_len) {
    (void)data;
    (void)len;
    (void)p;
    (void)out;
    if (err)
        snprintf(err, err_len, "image pipeline not built yet");
    return IMG_ERR_ARG;
}
