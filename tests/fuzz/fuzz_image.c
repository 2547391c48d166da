/*
 * fuzz_image.c — libFuzzer target over img_preprocess (sniff, decode,
 * orientation, resize, crop, normalise). The input's last byte picks one of
 * four parameter sets so every path (gray, bgr, padding crop, fast path,
 * upscaling) is reached; max_pixels is kept small so a run stays fast.
 * fuzz_replay.c runs the same function over saved inputs in normal builds.
 */
#include "img.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    img_params p = img_default_params();
    p.max_pixels = 4000000;
    switch (size ? data[size - 1] & 3 : 0) {
    case 1:
        p.color = IMG_COLOR_GRAY, p.resize = 28, p.crop_h = p.crop_w = 28, p.fast_path = 0;
        break;
    case 2:
        p.color = IMG_COLOR_BGR, p.resize = 40, p.crop_h = 64, p.crop_w = 48;
        p.exif_orientation = 0;
        break;
    case 3:
        p.resize = 7, p.crop_h = p.crop_w = 5;
        break;
    default:
        break;
    }
    size_t n = (size_t)img_channels(&p) * p.crop_h * p.crop_w;
    float *out = malloc(n * sizeof(float));
    if (!out)
        return 0;
    char err[256];
    img_status st = img_preprocess(size ? data : NULL, size, &p, out, err, sizeof(err));
    if (!img_status_str(st) || memchr(err, '\0', sizeof(err)) == NULL)
        abort();
    if (st == IMG_OK) /* every output element must have been written */
        for (size_t i = 0; i < n; i++)
            if (out[i] != out[i] || out[i] < -1e6f || out[i] > 1e6f)
                abort();
    free(out);
    return 0;
}
