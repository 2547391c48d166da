/*
 * img_png.c — PNG decoding with libpng (the only file that sees png.h).
 *
 * Matches PIL's open + convert("RGB"/"L"): palette expanded (tRNS ignored),
 * 1/2/4-bit gray scaled to 8 bits, alpha dropped without compositing, 16-bit
 * colour and gray+alpha reduced to their high byte, and 16-bit gray (PIL
 * mode "I") clipped to 255 as PIL's I→RGB/L conversion does. No gamma.
 * libpng errors longjmp back here; every allocation made after setjmp lives
 * in the png_ctx so the error path frees it.
 *
 * Cost: ancillary chunks are never inflated or stored (text, iCCP, sPLT…
 * are skipped as "unknown, never keep": a zTXt bomb costs its CRC, not its
 * inflated size); eXIf is the only one read, when orientation is wanted, up
 * to CHUNK_MAX bytes. Only the rows of the image are inflated (png_read_end
 * is never called), so an IDAT stream longer than the image is not inflated
 * past the last row. Memory: the raster, a row pointer per row, libpng's two
 * row buffers (sized for the widest input pixel, 8 bytes), zlib's state and
 * window, and one chunk buffer.
 *
 * After the last row libpng would inflate the rest of the zlib stream to
 * check its end (png_read_finish_IDAT, into a scratch buffer): a 1x1 image
 * whose IDAT inflates to gigabytes costs seconds there. A user transform
 * notes when the last row is complete; any read after that stops libpng
 * (the image is whole; trailing IDAT data and the IEND are not looked at,
 * as PIL does not look at them either).
 */
#include "img_internal.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest chunk libpng may buffer (eXIf; PLTE and tRNS are smaller). JPEG's
 * APP1 limits real EXIF blocks to 64 KB. */
#define CHUNK_MAX (256u << 10)
/* libpng's structs, zlib's inflate state and 32 KB window, the IDAT read
 * buffer, palette: generous. */
#define PNG_FIXED_BYTES (256u << 10)

typedef struct {
    const uint8_t *d;
    size_t n, pos;
    int truncated;
    char msg[160];
    uint8_t *px;
    png_bytep *rows;
    int last_pass;          /* last interlace pass with pixels (0 when not interlaced) */
    png_uint_32 last_row;   /* the image row that pass ends on */
    int rows_done, stopped; /* the last row is decoded; a later read stopped libpng */
} png_ctx;

static void on_read(png_structp png, png_bytep buf, size_t len) {
    png_ctx *c = png_get_io_ptr(png);
    if (c->rows_done) { /* only the end of the zlib stream is left: not needed */
        c->stopped = 1;
        png_error(png, "image complete");
    }
    if (len > c->n - c->pos) {
        c->truncated = 1;
        png_error(png, "data ends early");
    }
    memcpy(buf, c->d + c->pos, len);
    c->pos += len;
}

static void on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof(c->msg), "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* benign (e.g. a bad ancillary chunk): PIL ignores these too */
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Runs on every decoded row, after libpng's transforms and before the row is
 * copied out and the next read (the last row included). */
static void on_row(png_structp png, png_row_infop ri, png_bytep data) {
    (void)ri;
    (void)data;
    png_ctx *c = png_get_io_ptr(png);
    /* With libpng's interlace handling the row number is the image row (each
       pass runs over all rows and skips those not in it). */
    if (png_get_current_pass_number(png) == c->last_pass &&
        png_get_current_row_number(png) >= c->last_row)
        c->rows_done = 1;
}

/* Creates the reader, configures the limits and chunk handling, reads up to
 * the image data and fills *h. Must run after setjmp(png_jmpbuf(png)). */
static img_status png_begin(png_structp png, png_infop info, png_ctx *c, const img_decode_opts *o,
                            img_header *h, char *err, size_t err_len) {
    png_set_read_fn(png, c, on_read);
    png_set_user_limits(png, IMG_MAX_SIDE, IMG_MAX_SIDE);
    png_set_chunk_cache_max(png, 1000);
    png_set_chunk_malloc_max(png, CHUNK_MAX);
    /* Every ancillary chunk libpng knows (text, iCCP, sPLT, ...) and every
       unknown one: skipped without inflating or storing; eXIf back to
       libpng's handling only when the orientation is wanted. */
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
#ifdef PNG_eXIf_SUPPORTED
    if (o->want_orientation)
        png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_AS_DEFAULT, (png_const_bytep) "eXIf", 1);
#endif
    png_read_info(png, info);
    memset(h, 0, sizeof(*h));
    h->orientation = 1;
#ifdef PNG_eXIf_SUPPORTED
    png_bytep exif = NULL;
    png_uint_32 exif_len = 0;
    if (o->want_orientation && png_get_eXIf_1(png, info, &exif_len, &exif) && exif)
        h->orientation = img_exif_orientation(exif, exif_len); /* eXIf before IDAT only */
#endif
    png_uint_32 w, hh;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w, &hh, &depth, &ctype, &interlace, NULL, NULL);
    int gray16 = depth == 16 && ctype == PNG_COLOR_TYPE_GRAY;
    if (ctype == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16 && !gray16)
        png_set_strip_16(png); /* high byte, as PIL's ";16B" raw modes */
    if (ctype & PNG_COLOR_MASK_ALPHA || ctype == PNG_COLOR_TYPE_PALETTE)
        png_set_strip_alpha(png);
    c->last_pass = 0;
    c->last_row = hh - 1;
    if (interlace != PNG_INTERLACE_NONE) {
        png_set_interlace_handling(png);
        for (int pass = 0; pass < 7; pass++)
            if (PNG_PASS_ROWS(hh, pass) > 0 && PNG_PASS_COLS(w, pass) > 0)
                c->last_pass = pass,
                c->last_row = PNG_ROW_FROM_PASS_ROW(PNG_PASS_ROWS(hh, pass) - 1, pass);
    }
    png_set_read_user_transform_fn(png, on_row);
    png_read_update_info(png, info);
    int ch = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((ch != 1 && ch != 3) || rowbytes != (size_t)w * ch * (gray16 ? 2 : 1)) {
        snprintf(err, err_len, "PNG colour type %d depth %d is not supported", ctype, depth);
        return IMG_ERR_CORRUPT;
    }
    h->w = h->out_w = (int)w;
    h->h = h->out_h = (int)hh;
    h->out_bpp = ch * (gray16 ? 2 : 1);
    h->out_ch = ch;
    h->decoder_bytes =
        (uint64_t)sizeof(png_bytep) * hh + 2 * ((uint64_t)w * 8 + 64) + CHUNK_MAX + PNG_FIXED_BYTES;
    /* Inflate output is the image's rows (interlaced: 7 passes over the same
       bytes); the input side is bounded by the file size. */
    h->work = (uint64_t)(rowbytes + 1) * hh * (interlace != PNG_INTERLACE_NONE ? 2 : 1);
    return IMG_OK;
}

/* IHDR is read by us first only to keep dimension errors distinct from
 * libpng's (libpng reads the same 13 bytes). */
static img_status png_precheck(const uint8_t *d, size_t n, const img_decode_opts *o, char *err,
                               size_t err_len) {
    if (n < 33) {
        snprintf(err, err_len, "PNG ends at byte %zu inside its header", n);
        return IMG_ERR_TRUNCATED;
    }
    if (be32(d + 8) != 13 || memcmp(d + 12, "IHDR", 4) != 0) {
        snprintf(err, err_len, "PNG does not start with an IHDR chunk");
        return IMG_ERR_CORRUPT;
    }
    return img_check_dims("PNG", be32(d + 16), be32(d + 20), o->max_pixels, err, err_len);
}

static img_status png_fail(const png_ctx *c, size_t n, char *err, size_t err_len) {
    if (c->truncated)
        snprintf(err, err_len, "PNG data ends early (%zu bytes)", n);
    else
        snprintf(err, err_len, "PNG decoder at byte %zu: %s", c->pos, c->msg);
    return c->truncated ? IMG_ERR_TRUNCATED : IMG_ERR_CORRUPT;
}

/* A libpng reader over c with our error and warning hooks; IMG_ERR_NOMEM
 * (nothing to free) when libpng cannot allocate. Free with
 * png_destroy_read_struct(&png, &info, NULL). */
static img_status png_create(png_ctx *c, png_structp *png, png_infop *info, char *err,
                             size_t err_len) {
    *png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, on_error, on_warning);
    *info = *png ? png_create_info_struct(*png) : NULL;
    if (!*info) {
        png_destroy_read_struct(png, NULL, NULL);
        snprintf(err, err_len, "out of memory creating a PNG decoder");
        return IMG_ERR_NOMEM;
    }
    return IMG_OK;
}

img_status img_probe_png(const uint8_t *d, size_t n, const img_decode_opts *o, img_header *h,
                         char *err, size_t err_len) {
    img_status st = png_precheck(d, n, o, err, err_len);
    if (st != IMG_OK)
        return st;
    png_ctx c = {.d = d, .n = n};
    png_structp png;
    png_infop info;
    if (png_create(&c, &png, &info, err, err_len) != IMG_OK)
        return IMG_ERR_NOMEM;
    if (setjmp(png_jmpbuf(png)))
        st = png_fail(&c, n, err, err_len);
    else
        st = png_begin(png, info, &c, o, h, err, err_len);
    png_destroy_read_struct(&png, &info, NULL);
    return st;
}

img_status img_decode_png(const uint8_t *d, size_t n, const img_decode_opts *o, img_raster *out,
                          int *orientation, char *err, size_t err_len) {
    *orientation = 1;
    img_status st = png_precheck(d, n, o, err, err_len);
    if (st != IMG_OK)
        return st;
    png_ctx c = {.d = d, .n = n};
    png_structp png;
    png_infop info;
    if (png_create(&c, &png, &info, err, err_len) != IMG_OK)
        return IMG_ERR_NOMEM;
    img_header h;
    if (setjmp(png_jmpbuf(png))) {
        if (c.stopped && c.px) /* every row is in c.px */
            goto rows_read;
        st = png_fail(&c, n, err, err_len);
        goto done;
    }
    if ((st = png_begin(png, info, &c, o, &h, err, err_len)) != IMG_OK)
        goto done;
    *orientation = h.orientation;
    size_t rowbytes = (size_t)h.out_w * h.out_bpp;
    c.px = malloc(rowbytes * h.out_h);
    c.rows = malloc(sizeof(png_bytep) * h.out_h);
    if (!c.px || !c.rows) {
        snprintf(err, err_len, "out of memory decoding a %dx%d PNG", h.out_w, h.out_h);
        st = IMG_ERR_NOMEM;
        goto done;
    }
    for (int y = 0; y < h.out_h; y++)
        c.rows[y] = c.px + rowbytes * y;
    png_read_image(png, c.rows);
rows_read:
    if (h.out_bpp == 2) { /* 16-bit gray: PIL's mode "I" → L/RGB clips values above 255 */
        size_t npix = (size_t)h.out_w * h.out_h;
        for (size_t i = 0; i < npix; i++) {
            unsigned v = (unsigned)c.px[2 * i] << 8 | c.px[2 * i + 1];
            c.px[i] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
    out->px = c.px;
    c.px = NULL;
    out->w = h.out_w;
    out->h = h.out_h;
    out->ch = h.out_ch;
done:
    png_destroy_read_struct(&png, &info, NULL);
    free(c.px);
    free(c.rows);
    return st;
}
