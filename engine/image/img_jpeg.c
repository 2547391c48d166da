/*
 * img_jpeg.c — JPEG decoding with the TurboJPEG API (the only file that sees
 * turbojpeg.h), plus a bounds-checked marker walk that finds the frame
 * header, the Adobe marker and the EXIF orientation before any pixel buffer
 * is allocated.
 *
 * Matches PIL (which uses the same libjpeg-turbo): ISLOW DCT, fancy
 * upsampling, CMYK/YCCK taken as Adobe-inverted CMYK and converted with PIL's
 * cmyk2rgb; libjpeg warnings are tolerated as PIL does, except a missing end
 * of image, which PIL reports as "image file is truncated".
 */
#include "img_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

/* A progressive file with this many scans is a decode-time bomb, not a photo. */
#define MAX_SCANS 1000

typedef struct {
    int w, h, ncomp, progressive;
    size_t sos; /* offset of the first scan's entropy-coded data */
    int orientation;
} jpeg_info;

static unsigned be16(const uint8_t *p) {
    return (unsigned)p[0] << 8 | p[1];
}

static unsigned rd16(const uint8_t *p, int le) {
    return le ? (unsigned)p[1] << 8 | p[0] : be16(p);
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

/* Walks markers from SOI to the first SOS. */
static img_status walk_markers(const uint8_t *d, size_t n, jpeg_info *ji, char *err,
                               size_t err_len) {
    size_t pos = 2;
    int have_sof = 0;
    ji->orientation = 1;
    for (;;) {
        while (pos < n && d[pos] != 0xFF) /* libjpeg skips stray bytes too */
            pos++;
        while (pos < n && d[pos] == 0xFF)
            pos++;
        if (pos >= n) {
            snprintf(err, err_len, "JPEG ends at byte %zu before the image data", n);
            return IMG_ERR_TRUNCATED;
        }
        unsigned m = d[pos++];
        if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7))
            continue;
        if (m == 0xD9) {
            snprintf(err, err_len, "JPEG end-of-image marker at byte %zu before any image data",
                     pos - 2);
            return IMG_ERR_CORRUPT;
        }
        if (n - pos < 2) {
            snprintf(err, err_len, "JPEG ends inside the marker at byte %zu", pos - 2);
            return IMG_ERR_TRUNCATED;
        }
        size_t len = be16(d + pos);
        if (len < 2) {
            snprintf(err, err_len, "JPEG marker 0x%02X at byte %zu has bad length %zu", m, pos - 2,
                     len);
            return IMG_ERR_CORRUPT;
        }
        if (len > n - pos) {
            snprintf(err, err_len, "JPEG ends inside the 0x%02X segment at byte %zu", m, pos - 2);
            return IMG_ERR_TRUNCATED;
        }
        const uint8_t *s = d + pos + 2;
        size_t sl = len - 2;
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
            if (sl < 6) {
                snprintf(err, err_len, "JPEG frame header at byte %zu too short", pos - 2);
                return IMG_ERR_CORRUPT;
            }
            if (!have_sof) {
                ji->h = (int)be16(s + 1);
                ji->w = (int)be16(s + 3);
                ji->ncomp = s[5];
                ji->progressive = m == 0xC2 || m == 0xC6 || m == 0xCA || m == 0xCE;
                have_sof = 1;
            }
        } else if (m == 0xE1 && ji->orientation == 1 && sl >= 6 && memcmp(s, "Exif\0\0", 6) == 0) {
            ji->orientation = img_exif_orientation(s, sl);
        } else if (m == 0xDA) {
            if (!have_sof) {
                snprintf(err, err_len, "JPEG scan at byte %zu before any frame header", pos - 2);
                return IMG_ERR_CORRUPT;
            }
            ji->sos = pos + len;
            return IMG_OK;
        }
        pos += len;
    }
}

/* 1 when an end-of-image marker follows the first scan. */
static int has_eoi(const uint8_t *d, size_t n, size_t from) {
    for (size_t i = from; i + 1 < n; i++)
        if (d[i] == 0xFF && d[i + 1] == 0xD9)
            return 1;
    return 0;
}

static size_t count_scans(const uint8_t *d, size_t n, size_t from) {
    size_t c = 1;
    for (size_t i = from; i + 1 < n; i++)
        if (d[i] == 0xFF && d[i + 1] == 0xDA)
            c++;
    return c;
}

/* PIL's "CMYK;I" unpack + cmyk2rgb, in place (4 bytes -> 3 bytes per pixel). */
static void cmyk_to_rgb(uint8_t *px, size_t npix) {
    for (size_t i = 0; i < npix; i++) {
        const uint8_t *s = px + 4 * i;
        int nk = s[3]; /* 255 - (255 - stored K) */
        uint8_t o[3];
        for (int c = 0; c < 3; c++) {
            int tmp = (255 - s[c]) * nk + 128;
            int v = nk - (((tmp >> 8) + tmp) >> 8);
            o[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        memcpy(px + 3 * i, o, 3);
    }
}

img_status img_decode_jpeg(const uint8_t *d, size_t n, const img_decode_opts *o, img_raster *out,
                           int *orientation, char *err, size_t err_len) {
    jpeg_info ji = {0};
    img_status st = walk_markers(d, n, &ji, err, err_len);
    if (st != IMG_OK)
        return st;
    *orientation = o->want_orientation ? ji.orientation : 1;
    if ((st = img_check_dims("JPEG", ji.w, ji.h, o->max_pixels, err, err_len)) != IMG_OK)
        return st;
    if (ji.ncomp != 1 && ji.ncomp != 3 && ji.ncomp != 4) {
        snprintf(err, err_len, "JPEG with %d colour components is not supported", ji.ncomp);
        return IMG_ERR_CORRUPT;
    }
    if (ji.progressive && count_scans(d, n, ji.sos) > MAX_SCANS) {
        snprintf(err, err_len, "progressive JPEG with more than %d scans", MAX_SCANS);
        return IMG_ERR_CORRUPT;
    }
    /* Fast path: the smallest DCT scale keeping the shorter side >= scale_min_short.
       Only scales that divide both sides: otherwise the last, partial block
       becomes a whole pixel and stretches the geometry by up to a pixel of the
       scaled image (a 600x450 JPEG at 1/8 gives 75x57 for 75x56.25), which
       shifts edges enough to flip a real model's top-1. */
    int w = ji.w, h = ji.h;
    if (o->scale_min_short > 0) {
        for (int denom = 8; denom >= 2; denom /= 2) {
            if (ji.w % denom != 0 || ji.h % denom != 0)
                continue;
            int sw = ji.w / denom, sh = ji.h / denom;
            if ((sw < sh ? sw : sh) >= o->scale_min_short) {
                w = sw, h = sh;
                break;
            }
        }
    }
    int pf = ji.ncomp == 1 ? TJPF_GRAY : ji.ncomp == 3 ? TJPF_RGB : TJPF_CMYK;
    int bpp = ji.ncomp == 1 ? 1 : ji.ncomp == 3 ? 3 : 4;
    uint8_t *px = malloc((size_t)w * h * bpp);
    if (!px) {
        snprintf(err, err_len, "out of memory decoding a %dx%d JPEG", w, h);
        return IMG_ERR_NOMEM;
    }
    tjhandle tj = tjInitDecompress();
    if (!tj) {
        free(px);
        snprintf(err, err_len, "cannot create a TurboJPEG decompressor");
        return IMG_ERR_NOMEM;
    }
    if (n > (unsigned long)-1) /* TurboJPEG takes unsigned long sizes */
        n = (unsigned long)-1;
    /* libjpeg must see the frame our marker walk saw (the buffer is sized from
       it). Its header parse may fail on exotic subsampling, which tjDecompress2
       still handles, so only a disagreement is an error. */
    int hw, hh, hsub, hcs;
    if (tjDecompressHeader3(tj, d, (unsigned long)n, &hw, &hh, &hsub, &hcs) == 0 &&
        (hw != ji.w || hh != ji.h)) {
        tjDestroy(tj);
        free(px);
        snprintf(err, err_len, "JPEG frame header disagrees with the decoder (%dx%d vs %dx%d)",
                 ji.w, ji.h, hw, hh);
        return IMG_ERR_CORRUPT;
    }
    int rc = tjDecompress2(tj, d, (unsigned long)n, px, w, 0, h, pf, 0);
    if (rc != 0) {
        /* libjpeg warns (and pads with gray) when data runs out: that is a
           truncation; other warnings are tolerated as PIL does. */
        if (!has_eoi(d, n, ji.sos)) {
            st = IMG_ERR_TRUNCATED;
            snprintf(err, err_len, "JPEG data ends early (%zu bytes, no end-of-image marker)", n);
        } else if (tjGetErrorCode(tj) == TJERR_FATAL) {
            st = IMG_ERR_CORRUPT;
            snprintf(err, err_len, "JPEG decoder: %s", tjGetErrorStr2(tj));
        }
    }
    tjDestroy(tj);
    if (st != IMG_OK) {
        free(px);
        return st;
    }
    if (pf == TJPF_CMYK)
        cmyk_to_rgb(px, (size_t)w * h);
    out->px = px;
    out->w = w;
    out->h = h;
    out->ch = ji.ncomp == 1 ? 1 : 3;
    return IMG_OK;
}
