/*
 * img_common.c — the bottom of engine/image/: helpers every decoder and the
 * entry point share (raster, dimension check, channel count, the EXIF
 * orientation tag that JPEG APP1, PNG eXIf and WebP EXIF all carry). It
 * calls nothing else in the folder, so the folder is layered:
 * img_common <- img_vp8l <- decoders, img_resize <- img.c.
 */
#include "img_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int img_channels(const img_params *p) {
    return p->color == IMG_COLOR_GRAY ? 1 : 3;
}

void img_raster_free(img_raster *r) {
    if (!r)
        return;
    free(r->px);
    r->px = NULL;
}

void img_rgb_to_l(const uint8_t *src, uint8_t *dst, size_t npix) {
    for (size_t i = 0; i < npix; i++) {
        const uint8_t *s = src + i * 3;
        dst[i] = (uint8_t)((s[0] * 19595u + s[1] * 38470u + s[2] * 7471u + 0x8000u) >> 16);
    }
}

img_status img_check_dims(const char *fmt, int64_t w, int64_t h, int64_t max_pixels, char *err,
                          size_t err_len) {
    if (w <= 0 || h <= 0 || w > IMG_MAX_SIDE || h > IMG_MAX_SIDE) {
        snprintf(err, err_len, "%s header declares %lldx%lld pixels", fmt, (long long)w,
                 (long long)h);
        return IMG_ERR_BAD_DIMENSIONS;
    }
    if (w * h > max_pixels) {
        snprintf(err, err_len, "%s is %lldx%lld = %lld pixels, over the limit of %lld", fmt,
                 (long long)w, (long long)h, (long long)(w * h), (long long)max_pixels);
        return IMG_ERR_TOO_LARGE;
    }
    return IMG_OK;
}

static unsigned rd16(const uint8_t *p, int le) {
    return le ? (unsigned)p[1] << 8 | p[0] : (unsigned)p[0] << 8 | p[1];
}

static uint32_t rd32(const uint8_t *p, int le) {
    return le ? (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0]
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int img_exif_orientation(const uint8_t *p, size_t n) {
    size_t skip = n >= 6 && memcmp(p, "Exif\0\0", 6) == 0 ? 6 : 0;
    const uint8_t *t = p + skip; /* TIFF header */
    size_t tn = n - skip;
    if (tn < 8)
        return 1;
    int le;
    if (t[0] == 'I' && t[1] == 'I')
        le = 1;
    else if (t[0] == 'M' && t[1] == 'M')
        le = 0;
    else
        return 1;
    if (rd16(t + 2, le) != 42)
        return 1;
    uint32_t ifd = rd32(t + 4, le);
    if (ifd > tn || tn - ifd < 2)
        return 1;
    unsigned count = rd16(t + ifd, le);
    for (unsigned i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > tn)
            return 1;
        if (rd16(t + e, le) != 0x0112)
            continue;
        unsigned type = rd16(t + e + 2, le);
        uint32_t v = type == 3 ? rd16(t + e + 8, le) : type == 4 ? rd32(t + e + 8, le) : 0;
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}
