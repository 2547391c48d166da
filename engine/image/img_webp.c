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
#include "img_vp8l.h"

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
/* The largest side of a VP8L bitstream (VP8's is 16383). */
#define WEBP_MAX_SIDE 16384
/* libwebp 1.2.4's HTreeGroup (5 table pointers, flags, a 64-entry packed
 * table: 568 bytes on 64-bit), rounded up. */
#define WEBP_GROUP_STRUCT_BYTES 640u
/* Lossless (image or alpha plane): libwebp 1.2.4 (ReadHuffmanCodes)
 * allocates one set of Huffman tables per "htree group" before reading
 * them: img_vp8l_table_entries(colour cache bits) 4-byte entries plus the
 * group struct.
 * The group count comes from the entropy image, which img_vp8l_preparse
 * decodes; when it cannot (a malformed stream), the bound is the worst case
 * the format allows: max(1000, one group per 4x4 tile), at most 65536. */
#define WEBP_WORST_GROUP_BYTES (5004u * 4 + WEBP_GROUP_STRUCT_BYTES)
/* Per lossless decoder besides the ARGB image and the groups: a sub-image's
 * own tables while it is decoded (one group), colour caches, code length
 * scratch, libwebp's structs. */
#define WEBP_LOSSLESS_FIXED_BYTES (1u << 20)

/* The 32-bit ARGB image libwebp decodes into, coded_w x h (the coded width:
 * colour indexing packs 2, 4 or 8 pixels into one), + 17 cache rows of the
 * width, rounded up to 64. */
static uint64_t argb_bytes(int coded_w, int w, int h) {
    return 4 * ((uint64_t)coded_w * h + 64 * (uint64_t)w);
}

/* Worst case of a lossless decode of a w x h image whose stream could not be
 * pre-parsed. */
static uint64_t lossless_worst(int w, int h) {
    uint64_t tiles = (uint64_t)((w + 3) / 4) * (uint64_t)((h + 3) / 4);
    uint64_t groups = tiles > 1000 ? tiles : 1000;
    if (groups > 65536)
        groups = 65536;
    /* transforms' and entropy sub-images: at most 3 of one pixel per tile */
    return argb_bytes(w, w, h) + groups * WEBP_WORST_GROUP_BYTES + 4 * (3 * tiles + 512) +
           4 * 65536 + WEBP_LOSSLESS_FIXED_BYTES;
}

/* What libwebp allocates decoding the lossless stream d[0..n) of a w x h
 * image (with_header: a VP8L chunk; else an ALPH chunk's data). */
static uint64_t lossless_bytes(const uint8_t *d, size_t n, int w, int h, int with_header) {
    img_vp8l_info vi;
    if (!img_vp8l_preparse(d, n, w, h, with_header, &vi))
        return lossless_worst(w, h);
    uint64_t tables = (uint64_t)vi.groups * ((uint64_t)img_vp8l_table_entries(vi.cache_bits) * 4 +
                                             WEBP_GROUP_STRUCT_BYTES);
    /* + the renumbering map (4 bytes per index) and the kept sub-images */
    return argb_bytes(vi.xsize, w, h) + tables + 4 * (uint64_t)vi.groups_max + 4 * vi.sub_px +
           WEBP_LOSSLESS_FIXED_BYTES;
}

/* The payloads libwebp decodes losslessly, found by walking the chunks as
 * its parser does: the first image chunk ("VP8 " or "VP8L") and, for a
 * lossy image, the ALPH chunks before it (libwebp uses the last; every one
 * is bounded and the largest taken). Returns the lossless bytes for the
 * image chunk (VP8L) + the largest lossless alpha, or the worst case for
 * what it cannot find. */
static uint64_t webp_lossless_cost(const uint8_t *d, size_t n, int w, int h, int lossless,
                                   int has_alpha) {
    size_t pos = 12;
    uint64_t alpha = 0;
    int alph_seen = 0;
    while (n >= 8 && pos <= n - 8) {
        uint32_t len = (uint32_t)d[pos + 4] | (uint32_t)d[pos + 5] << 8 |
                       (uint32_t)d[pos + 6] << 16 | (uint32_t)d[pos + 7] << 24;
        const uint8_t *p = d + pos + 8;
        int fits = len <= n - pos - 8;
        if (memcmp(d + pos, "VP8L", 4) == 0)
            return fits && lossless ? lossless_bytes(p, len, w, h, 1) : lossless_worst(w, h);
        if (memcmp(d + pos, "VP8 ", 4) == 0) {
            if (lossless) /* cannot happen: WebPGetFeatures said lossless */
                return lossless_worst(w, h);
            if (!has_alpha)
                return 0;
            return alph_seen ? alpha : lossless_worst(w, h);
        }
        if (memcmp(d + pos, "ALPH", 4) == 0) {
            uint64_t a = lossless_worst(w, h);
            /* header byte: compression method in bits 0-1 (0 raw, 1 lossless) */
            if (fits && len >= 1 && (p[0] & 3) == 0)
                a = 0;
            else if (fits && len > 1 && (p[0] & 3) == 1)
                a = lossless_bytes(p + 1, len - 1, w, h, 0);
            alpha = alph_seen && alpha > a ? alpha : a;
            alph_seen = 1;
        }
        if (!fits)
            break;
        pos += 8 + (size_t)len + (len & 1);
    }
    return lossless || has_alpha ? lossless_worst(w, h) : 0;
}

/* Reads the header into *h; with_cost: also the cost (decoder_bytes, work),
 * which pre-parses a lossless stream (img_probe only: the decode itself does
 * not need it). */
static img_status webp_header(const uint8_t *d, size_t n, const img_decode_opts *o,
                              WebPDecoderConfig *cfg, img_header *h, int with_cost, char *err,
                              size_t err_len) {
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
    /* A VP8X canvas has 24-bit sides, but a still image's bitstream (VP8: 14
     * bits, VP8L: 14 bits + 1) must have the canvas's size: a larger canvas
     * cannot decode, and its row caches would be bounded by a width of up to
     * a million for a one-row image. */
    if (w > WEBP_MAX_SIDE || hh > WEBP_MAX_SIDE) {
        snprintf(err, err_len, "WebP canvas %dx%d: a still WebP is at most %d pixels a side", w, hh,
                 WEBP_MAX_SIDE);
        return IMG_ERR_BAD_DIMENSIONS;
    }
    memset(h, 0, sizeof(*h));
    h->w = h->out_w = w;
    h->h = h->out_h = hh;
    h->out_bpp = h->out_ch = 3;
    h->orientation = o->want_orientation ? webp_orientation(d, n) : 1;
    if (!with_cost)
        return IMG_OK;
    uint64_t px = (uint64_t)w * hh;
    uint64_t b = 256 * ((uint64_t)w + 64) + WEBP_FIXED_BYTES; /* lossy row caches */
    if (cfg->input.has_alpha)                                 /* alpha plane */
        b += px;
    /* lossless decoders: the image's (VP8L) or the alpha plane's (ALPH) */
    if (cfg->input.format == 0) /* "mixed": not seen for a still image */
        b += 2 * lossless_worst(w, hh);
    else
        b += webp_lossless_cost(d, n, w, hh, cfg->input.format == 2, cfg->input.has_alpha);
    h->decoder_bytes = b;
    h->work = 3 * px;
    return IMG_OK;
}

img_status img_probe_webp(const uint8_t *d, size_t n, const img_decode_opts *o, img_header *h,
                          char *err, size_t err_len) {
    WebPDecoderConfig cfg;
    return webp_header(d, n, o, &cfg, h, 1, err, err_len);
}

img_status img_decode_webp(const uint8_t *d, size_t n, const img_decode_opts *o, img_raster *out,
                           int *orientation, char *err, size_t err_len) {
    *orientation = 1;
    WebPDecoderConfig cfg;
    img_header h;
    img_status st = webp_header(d, n, o, &cfg, &h, 0, err, err_len);
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
