/*
 * img_internal.h — internal to engine/image/: the decoded raster and the
 * per-format decoders. Not a public header; nothing outside engine/image/
 * includes it.
 */
#ifndef RESNETD_IMG_INTERNAL_H
#define RESNETD_IMG_INTERNAL_H

#include "img.h"

#include <stddef.h>
#include <stdint.h>

/* Sides above this are "absurd" (no real upload is a million pixels wide). */
#define IMG_MAX_SIDE 1000000

/* An 8-bit raster, interleaved, row stride w * ch. ch is 1 (L) or 3 (RGB). */
typedef struct {
    uint8_t *px; /* malloc'd; freed by img_raster_free() */
    int w, h, ch;
} img_raster;

/* What the decoders need from the caller. */
typedef struct {
    int64_t max_pixels;
    int want_orientation; /* parse EXIF orientation */
    int scale_min_short;  /* >0: JPEG DCT scaling allowed while shorter side >= this */
    int gray;             /* the caller wants L: a colour JPEG is converted band by band
                             while decoding (no full-size RGB raster) */
} img_decode_opts;

/* What a decoder learns from the header (through the library's own header
 * parse), before any pixel buffer exists: the basis of the cost model. */
typedef struct {
    int w, h;                  /* as stored */
    int out_w, out_h, out_bpp; /* the raster the decoder allocates (DCT-scaled for JPEG),
                                  bytes per pixel while decoding (4 for CMYK) */
    int out_ch;                /* channels of the raster it returns (1 or 3) */
    int orientation;           /* EXIF orientation 1..8 (1 when absent or not wanted) */
    uint64_t decoder_bytes;    /* bound of the library's own allocations during the decode */
    uint64_t work;             /* bound of the decode work (coefficient and pixel visits) */
} img_header;

void img_raster_free(img_raster *r);

/* RGB -> L with PIL's integer ITU-R 601-2 luma (Convert.c's L24), npix
 * pixels; dst may be src (in place: pixel i is read before byte i is written). */
void img_rgb_to_l(const uint8_t *src, uint8_t *dst, size_t npix);

/* Checks header dimensions before any pixel buffer is allocated:
 * IMG_ERR_BAD_DIMENSIONS for zero or absurd sides, IMG_ERR_TOO_LARGE over max_pixels. */
img_status img_check_dims(const char *fmt, int64_t w, int64_t h, int64_t max_pixels, char *err,
                          size_t err_len);

/* Each decoder fills out (ch 1 or 3, alpha dropped as PIL's convert("RGB")).
 * *orientation receives the EXIF orientation 1..8 (1 when absent). On error
 * out is left empty and err names the cause. */
img_status img_decode_jpeg(const uint8_t *d, size_t n, const img_decode_opts *o, img_raster *out,
                           int *orientation, char *err, size_t err_len);
img_status img_decode_png(const uint8_t *d, size_t n, const img_decode_opts *o, img_raster *out,
                          int *orientation, char *err, size_t err_len);
img_status img_decode_webp(const uint8_t *d, size_t n, const img_decode_opts *o, img_raster *out,
                           int *orientation, char *err, size_t err_len);

/* The EXIF Orientation tag (1..8) of a TIFF-format EXIF block, with or
 * without the "Exif\0\0" prefix of JPEG's APP1 (PNG eXIf and WebP EXIF omit
 * it), or 1. Never reads outside p[0..n). */
int img_exif_orientation(const uint8_t *p, size_t n);

/* Header-only probes: fill *h (the decode of the same bytes with the same
 * opts allocates at most h->decoder_bytes besides the raster and refuses
 * inputs that would need more, with IMG_ERR_TOO_COMPLEX). Same statuses as
 * the decoders for everything the header decides. */
img_status img_probe_jpeg(const uint8_t *d, size_t n, const img_decode_opts *o, img_header *h,
                          char *err, size_t err_len);
img_status img_probe_png(const uint8_t *d, size_t n, const img_decode_opts *o, img_header *h,
                         char *err, size_t err_len);
img_status img_probe_webp(const uint8_t *d, size_t n, const img_decode_opts *o, img_header *h,
                          char *err, size_t err_len);

/* Upper bound of the bytes img_resize_normalize allocates for a w x h
 * raster of ch channels with these params (0 when it would refuse). */
uint64_t img_resize_peak(int w, int h, int ch, const img_params *p);

/* Resize the shorter side to p->resize (PIL's antialiased bilinear, exact
 * fixed-point arithmetic), centre-crop (zero padding as torchvision), and
 * normalise into out (CHW). Only the cropped region is ever computed.
 * r->ch must be 1 or 3 (already converted to L for gray configs). */
img_status img_resize_normalize(const img_raster *r, const img_params *p, float *out, char *err,
                                size_t err_len);

#endif
