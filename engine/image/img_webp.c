/*
 * img_webp.c — WebP decoding with libwebp (the only file that sees its
 * headers): straight into an RGB raster, alpha dropped as PIL's
 * convert("RGB") does. Animated WebP is refused.
 *
 * Cost: WebPGetFeatures (libwebp's own header parse) gives the size, alpha
 * and lossy/lossless before anything is allocated. The decoder writes into
 * our raster; its own memory is row caches (lossy, proportional to the
 * width), plus the alpha plane (w*h, and its lossless decoder) and, for
 * lossless images, a 32-bit ARGB copy of the image (4*w*h) and its Huffman
 * tables (see lossless_bytes: the worst case libwebp can be made to allocate,
 * large for lossless images of a megapixel or more).
 */
#include "img_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>

static img_status from_vp8(VP8StatusCode s) {
    switch (s) {
    case VP8_STATUS_OK:
        return IMG_OK;
    case VP8_STATUS_NOT_ENOUGH_DATA:
        return IMG_ERR_TRUNCATED;
    case VP8_STATUS_OUT_OF_MEMORY:
        return IMG_ERR_NOMEM;
    default:
        return IMG_ERR_CORRUPT;
    }
}

/* The orientation from an extended WebP's EXIF chunk, or 1. */
static int webp_orientation(const uint8_t *d, size_t n) {
    size_t pos = 12; /* after "RIFF" size "WEBP" */
    while (n >= 8 && pos <= n - 8) {
        uint32_t len = (uint32_t)d[pos + 4] | (uint32_t)d[pos + 5] << 8 |
                       (uint32_t)d[pos + 6] << 16 | (uint32_t)d[pos + 7] << 24;
        if (len > n - pos - 8)
            return 1;
        if (memcmp(d + pos, "EXIF", 4) == 0)
            return img_exif_orientation(d + pos + 8, len);
        pos += 8 + (size_t)len + (len & 1);
    }
    return 1;
}

/* libwebp's structs and lossy decoder state besides the row caches. */
#define WEBP_FIXED_BYTES (512u << 10)
/* Lossless (image or alpha plane): libwebp 1.2.4 (ReadHuffmanCodes)
 * allocates one set of Huffman tables per "htree group" before reading them:
 * kTableSize[colour cache bits] (<= 5004) entries of 4 bytes, plus a
 * ~600-byte HTreeGroup. The group count is the largest group index in the
 * entropy image + 1 when that is <= 1000 (and <= the pixel count), else the
 * number of distinct indices, at most one per entropy tile (4x4 pixels at the
 * finest precision) and 65536. libwebp's API cannot report or cap it before
 * allocating, so the bound is this worst case: ~21 MB for a small image,
 * growing by ~1.3 KB per pixel up to 1.35 GB from ~1 megapixel on. */
#define WEBP_GROUP_BYTES (21u << 10)

static uint64_t lossless_bytes(int w, int h) {
    uint64_t tiles = (uint64_t)((w + 3) / 4) * (uint64_t)((h + 3) / 4);
    uint64_t groups = tiles > 1000 ? tiles : 1000;
    if (groups > 65536)
        groups = 65536;
    /* 32-bit ARGB image + cache rows, transforms' sub-images, tables */
    return 4 * ((uint64_t)w * h + 64 * (uint64_t)w) + groups * WEBP_GROUP_BYTES + (1u << 20);
}

static img_status webp_header(const uint8_t *d, size_t n, const img_decode_opts *o,
                              WebPDecoderConfig *cfg, img_header *h, char *err, size_t err_len) {
    if (!WebPInitDecoderConfig(cfg)) {
        snprintf(err, err_len, "libwebp version mismatch");
        return IMG_ERR_CORRUPT;
    }
    VP8StatusCode vs = WebPGetFeatures(d, n, &cfg->input);
    img_status st = from_vp8(vs);
    if (st != IMG_OK) {
        snprintf(err, err_len, "WebP header: %s (libwebp status %d)",
                 st == IMG_ERR_TRUNCATED ? "data ends early" : "invalid", (int)vs);
        return st;
    }
    if (cfg->input.has_animation) {
        snprintf(err, err_len, "animated WebP is not supported");
        return IMG_ERR_UNKNOWN_FORMAT;
    }
    int w = cfg->input.width, hh = cfg->input.height;
    if ((st = img_check_dims("WebP", w, hh, o->max_pixels, err, err_len)) != IMG_OK)
        return st;
    memset(h, 0, sizeof(*h));
    h->w = h->out_w = w;
    h->h = h->out_h = hh;
    h->out_bpp = h->out_ch = 3;
    h->orientation = o->want_orientation ? webp_orientation(d, n) : 1;
    uint64_t px = (uint64_t)w * hh;
    uint64_t b = 256 * ((uint64_t)w + 64) + WEBP_FIXED_BYTES; /* lossy row caches */
    if (cfg->input.has_alpha) /* alpha plane, and its (lossless) decoder */
        b += px + lossless_bytes(w, hh);
    if (cfg->input.format != 1) /* lossless or mixed */
        b += lossless_bytes(w, hh);
    h->decoder_bytes = b;
    h->work = 3 * px;
    return IMG_OK;
}

img_status img_probe_webp(const uint8_t *d, size_t n, const img_decode_opts *o, img_header *h,
                          char *err, size_t err_len) {
    WebPDecoderConfig cfg;
    return webp_header(d, n, o, &cfg, h, err, err_len);
}

img_status img_decode_webp(const uint8_t *d, size_t n, const img_decode_opts *o, img_raster *out,
                           int *orientation, char *err, size_t err_len) {
    *orientation = 1;
    WebPDecoderConfig cfg;
    img_header h;
    img_status st = webp_header(d, n, o, &cfg, &h, err, err_len);
    if (st != IMG_OK)
        return st;
    size_t size = (size_t)h.w * h.h * 3;
    uint8_t *px = malloc(size);
    if (!px) {
        snprintf(err, err_len, "out of memory decoding a %dx%d WebP", h.w, h.h);
        return IMG_ERR_NOMEM;
    }
    cfg.output.colorspace = MODE_RGB;
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = px;
    cfg.output.u.RGBA.stride = h.w * 3;
    cfg.output.u.RGBA.size = size;
    VP8StatusCode vs = WebPDecode(d, n, &cfg);
    WebPFreeDecBuffer(&cfg.output);
    if ((st = from_vp8(vs)) != IMG_OK) {
        free(px);
        snprintf(err, err_len, "WebP decoder: %s (libwebp status %d)",
                 st == IMG_ERR_TRUNCATED ? "data ends early" : "invalid data", (int)vs);
        return st;
    }
    *orientation = h.orientation;
    out->px = px;
    out->w = h.w;
    out->h = h.h;
    out->ch = 3;
    return IMG_OK;
}
