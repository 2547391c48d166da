/*
 * img.c — the public entry point: sniff the format, decode, apply EXIF
 * orientation, convert to L for gray models, then resize/crop/normalise
 * (img_resize.c). Decoders live in img_jpeg.c, img_png.c, img_webp.c; the
 * helpers they share in img_common.c.
 *
 * Order of operations matches the torchvision reference:
 *   PIL open → [ImageOps.exif_transpose] → convert("RGB" | "L") → Resize →
 *   CenterCrop → ToTensor → Normalize.
 */
#include "img_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *img_status_str(img_status s) {
    switch (s) {
    case IMG_OK:
        return "ok";
    case IMG_ERR_EMPTY:
        return "empty_image";
    case IMG_ERR_UNKNOWN_FORMAT:
        return "unsupported_image";
    case IMG_ERR_TRUNCATED:
        return "truncated_image";
    case IMG_ERR_CORRUPT:
        return "corrupt_image";
    case IMG_ERR_TOO_LARGE:
        return "image_too_large";
    case IMG_ERR_BAD_DIMENSIONS:
        return "bad_image_dimensions";
    case IMG_ERR_NOMEM:
        return "out_of_memory";
    case IMG_ERR_ARG:
        return "bad_argument";
    case IMG_ERR_TOO_COMPLEX:
        return "image_too_complex";
    }
    return "unknown_error";
}

img_params img_default_params(void) {
    img_params p = {.color = IMG_COLOR_RGB,
                    .resize = 256,
                    .crop_h = 224,
                    .crop_w = 224,
                    .scale = 255.0f,
                    .mean = {0.485f, 0.456f, 0.406f},
                    .std = {0.229f, 0.224f, 0.225f},
                    .max_pixels = 40000000,
                    .exif_orientation = 1,
                    .fast_path = 1};
    return p;
}

typedef enum { FMT_NONE, FMT_JPEG, FMT_PNG, FMT_WEBP } img_format;

/* Sniffs the container from its magic bytes. *partial is set when the data is
 * a strict prefix of some magic (so it is truncated rather than unknown). */
static img_format sniff(const uint8_t *d, size_t n, int *partial) {
    static const uint8_t jpg[3] = {0xFF, 0xD8, 0xFF};
    static const uint8_t png[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    *partial = 0;
    if (n >= 3 && memcmp(d, jpg, 3) == 0)
        return FMT_JPEG;
    if (n >= 8 && memcmp(d, png, 8) == 0)
        return FMT_PNG;
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
        return FMT_WEBP;
    if ((n < 3 && memcmp(d, jpg, n) == 0) || (n < 8 && memcmp(d, png, n) == 0) ||
        (n < 4 && memcmp(d, "RIFF", n) == 0) ||
        (n >= 4 && n < 12 && memcmp(d, "RIFF", 4) == 0 &&
         (n <= 8 || memcmp(d + 8, "WEBP", n - 8) == 0)))
        *partial = 1;
    return FMT_NONE;
}

/* Applies EXIF orientation 2..8 as PIL's ImageOps.exif_transpose (one uint8 copy). */
static img_status orient(img_raster *r, int o, char *err, size_t err_len) {
    if (o < 2 || o > 8)
        return IMG_OK;
    int w = r->w, h = r->h, ch = r->ch;
    int swap = o >= 5;
    int ow = swap ? h : w, oh = swap ? w : h;
    uint8_t *dst = malloc((size_t)w * h * ch);
    if (!dst) {
        snprintf(err, err_len, "out of memory rotating a %dx%d image", w, h);
        return IMG_ERR_NOMEM;
    }
    for (int oy = 0; oy < oh; oy++) {
        uint8_t *drow = dst + (size_t)oy * ow * ch;
        for (int ox = 0; ox < ow; ox++) {
            int sx, sy;
            switch (o) {
            case 2: /* mirror horizontally */
                sx = w - 1 - ox, sy = oy;
                break;
            case 3: /* rotate 180 */
                sx = w - 1 - ox, sy = h - 1 - oy;
                break;
            case 4: /* mirror vertically */
                sx = ox, sy = h - 1 - oy;
                break;
            case 5: /* transpose */
                sx = oy, sy = ox;
                break;
            case 6: /* rotate 90 clockwise */
                sx = oy, sy = h - 1 - ox;
                break;
            case 7: /* transverse */
                sx = w - 1 - oy, sy = h - 1 - ox;
                break;
            default: /* 8: rotate 90 counter-clockwise */
                sx = w - 1 - oy, sy = ox;
                break;
            }
            memcpy(drow + (size_t)ox * ch, r->px + ((size_t)sy * w + sx) * ch, (size_t)ch);
        }
    }
    free(r->px);
    r->px = dst;
    r->w = ow;
    r->h = oh;
    return IMG_OK;
}

/* RGB → L in place (PNG and WebP; JPEG converts while decoding). */
static void to_gray(img_raster *r) {
    img_rgb_to_l(r->px, r->px, (size_t)r->w * r->h);
    r->ch = 1;
}

static int params_ok(const img_params *p, char *err, size_t err_len) {
    const char *bad = NULL;
    if (p->color != IMG_COLOR_RGB && p->color != IMG_COLOR_BGR && p->color != IMG_COLOR_GRAY)
        bad = "color";
    else if (p->resize <= 0 || p->resize > 65536)
        bad = "resize";
    else if (p->crop_h <= 0 || p->crop_w <= 0 || p->crop_h > 65536 || p->crop_w > 65536)
        bad = "crop";
    else if (!(p->scale > 0))
        bad = "scale";
    else if (p->max_pixels <= 0)
        bad = "max_pixels";
    for (int c = 0; !bad && c < img_channels(p); c++)
        if (!(p->std[c] != 0))
            bad = "std";
    if (bad)
        snprintf(err, err_len, "bad image parameter '%s'", bad);
    return bad == NULL;
}

static img_decode_opts decode_opts(const img_params *p) {
    img_decode_opts o = {.max_pixels = p->max_pixels,
                         .want_orientation = p->exif_orientation,
                         /* shorter side kept >= 2*resize: DCT scaling stays well above the
                            final size, so the antialiased resize still does the filtering */
                         .scale_min_short = p->fast_path ? 2 * p->resize : 0,
                         .gray = p->color == IMG_COLOR_GRAY};
    return o;
}

/* Common argument checks and format sniffing; IMG_OK with *fmt set, or the
 * error img_preprocess/img_probe return. */
static img_status start(const void *data, size_t len, const img_params *p, int need_out,
                        const void *out, img_format *fmt, char *err, size_t err_len) {
    err[0] = '\0';
    if (!p || (need_out && !out) || (!data && len > 0)) {
        snprintf(err, err_len, "img_preprocess: NULL argument");
        return IMG_ERR_ARG;
    }
    if (!params_ok(p, err, err_len))
        return IMG_ERR_ARG;
    if (len == 0) {
        snprintf(err, err_len, "empty image (0 bytes)");
        return IMG_ERR_EMPTY;
    }
    const uint8_t *d = data;
    int partial = 0;
    *fmt = sniff(d, len, &partial);
    if (*fmt != FMT_NONE)
        return IMG_OK;
    if (partial) {
        snprintf(err, err_len, "image data ends after %zu bytes, inside the signature", len);
        return IMG_ERR_TRUNCATED;
    }
    snprintf(err, err_len, "not a JPEG, PNG or WebP image (first bytes %02x %02x %02x %02x)", d[0],
             len > 1 ? d[1] : 0, len > 2 ? d[2] : 0, len > 3 ? d[3] : 0);
    return IMG_ERR_UNKNOWN_FORMAT;
}

img_status img_preprocess(const void *data, size_t len, const img_params *p, float *out, char *err,
                          size_t err_len) {
    char dummy[1];
    if (!err || err_len == 0)
        err = dummy, err_len = sizeof(dummy);
    img_format fmt;
    img_status st = start(data, len, p, 1, out, &fmt, err, err_len);
    if (st != IMG_OK)
        return st;
    const uint8_t *d = data;
    img_decode_opts o = decode_opts(p);
    img_raster r = {0};
    int orientation = 1;
    if (fmt == FMT_JPEG)
        st = img_decode_jpeg(d, len, &o, &r, &orientation, err, err_len);
    else if (fmt == FMT_PNG)
        st = img_decode_png(d, len, &o, &r, &orientation, err, err_len);
    else
        st = img_decode_webp(d, len, &o, &r, &orientation, err, err_len);
    if (st == IMG_OK && p->exif_orientation)
        st = orient(&r, orientation, err, err_len);
    if (st == IMG_OK) {
        if (p->color == IMG_COLOR_GRAY && r.ch == 3)
            to_gray(&r);
        st = img_resize_normalize(&r, p, out, err, err_len);
    }
    img_raster_free(&r);
    return st;
}

/* The cost model (engine/image/README.md): the peak of img_preprocess is the
 * largest of its three phases, each bounded from the decoder's header:
 *   decode:  raster + the library's own allocations (decoder_bytes);
 *   orient:  raster + its rotated copy (EXIF orientation 2..8 only);
 *   resize:  raster + img_resize_peak of the (oriented) raster. */
img_status img_probe(const void *data, size_t len, const img_params *p, img_cost *cost, char *err,
                     size_t err_len) {
    char dummy[1];
    if (!err || err_len == 0)
        err = dummy, err_len = sizeof(dummy);
    if (!cost) {
        snprintf(err, err_len, "img_probe: NULL argument");
        return IMG_ERR_ARG;
    }
    memset(cost, 0, sizeof(*cost));
    img_format fmt;
    img_status st = start(data, len, p, 0, NULL, &fmt, err, err_len);
    if (st != IMG_OK)
        return st;
    const uint8_t *d = data;
    img_decode_opts o = decode_opts(p);
    img_header h;
    if (fmt == FMT_JPEG)
        st = img_probe_jpeg(d, len, &o, &h, err, err_len);
    else if (fmt == FMT_PNG)
        st = img_probe_png(d, len, &o, &h, err, err_len);
    else
        st = img_probe_webp(d, len, &o, &h, err, err_len);
    if (st != IMG_OK)
        return st;
    uint64_t raster = (uint64_t)h.out_w * h.out_h * h.out_bpp;
    int rw = h.out_w, rh = h.out_h;
    uint64_t peak = raster + h.decoder_bytes;
    if (p->exif_orientation && h.orientation >= 2 && h.orientation <= 8) {
        uint64_t copy = (uint64_t)h.out_w * h.out_h * h.out_ch;
        if (raster + copy > peak)
            peak = raster + copy;
        if (h.orientation >= 5)
            rw = h.out_h, rh = h.out_w;
        raster = copy; /* the rotated copy replaces the raster */
    }
    int ch = p->color == IMG_COLOR_GRAY ? 1 : h.out_ch;
    uint64_t rs = img_resize_peak(rw, rh, ch, p);
    if (raster + rs > peak)
        peak = raster + rs;
    cost->width = h.w;
    cost->height = h.h;
    /* + the decoder contexts, malloc headers and rounding */
    cost->peak_bytes = peak + 256 * 1024;
    cost->work = h.work + (uint64_t)p->crop_h * p->crop_w * img_channels(p) * 16;
    return IMG_OK;
}
