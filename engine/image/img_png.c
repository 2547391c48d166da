/*
 * img_png.c — PNG decoding with libpng (the only file that sees png.h).
 *
 * Matches PIL's open + convert("RGB"/"L"): palette expanded (tRNS ignored),
 * 1/2/4-bit gray scaled to 8 bits, alpha dropped without compositing, 16-bit
 * colour and gray+alpha reduced to their high byte, and 16-bit gray (PIL
 * mode "I") clipped to 255 as PIL's I→RGB/L conversion does. No gamma.
 * libpng errors longjmp back here; every allocation made after setjmp lives
 * in the png_ctx so the error path frees it.
 */
#include "img_internal.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *d;
    size_t n, pos;
    int truncated;
    char msg[160];
    uint8_t *px;
    png_bytep *rows;
} png_ctx;

static void on_read(png_structp png, png_bytep buf, size_t len) {
    png_ctx *c = png_get_io_ptr(png);
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

img_status img_decode_png(const uint8_t *d, size_t n, const img_decode_opts *o, img_raster *out,
                          int *orientation, char *err, size_t err_len) {
    *orientation = 1;
    /* Read IHDR ourselves first: dimension errors stay distinct from libpng's. */
    if (n < 33) {
        snprintf(err, err_len, "PNG ends at byte %zu inside its header", n);
        return IMG_ERR_TRUNCATED;
    }
    if (be32(d + 8) != 13 || memcmp(d + 12, "IHDR", 4) != 0) {
        snprintf(err, err_len, "PNG does not start with an IHDR chunk");
        return IMG_ERR_CORRUPT;
    }
    img_status st = img_check_dims("PNG", be32(d + 16), be32(d + 20), o->max_pixels, err, err_len);
    if (st != IMG_OK)
        return st;

    png_ctx c = {.d = d, .n = n};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(err, err_len, "out of memory creating a PNG decoder");
        return IMG_ERR_NOMEM;
    }
    if (setjmp(png_jmpbuf(png))) {
        st = c.truncated ? IMG_ERR_TRUNCATED : IMG_ERR_CORRUPT;
        if (c.truncated)
            snprintf(err, err_len, "PNG data ends early (%zu bytes)", n);
        else
            snprintf(err, err_len, "PNG decoder at byte %zu: %s", c.pos, c.msg);
        goto done;
    }
    png_set_read_fn(png, &c, on_read);
    png_set_user_limits(png, IMG_MAX_SIDE, IMG_MAX_SIDE);
    png_set_chunk_cache_max(png, 1000);
    png_set_chunk_malloc_max(png, 8u << 20);
    png_read_info(png, info);

#ifdef PNG_eXIf_SUPPORTED
    png_bytep exif = NULL;
    png_uint_32 exif_len = 0;
    if (o->want_orientation && png_get_eXIf_1(png, info, &exif_len, &exif) && exif)
        *orientation = img_exif_orientation(exif, exif_len); /* eXIf before IDAT only */
#endif
    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    int gray16 = depth == 16 && ctype == PNG_COLOR_TYPE_GRAY;
    if (ctype == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16 && !gray16)
        png_set_strip_16(png); /* high byte, as PIL's ";16B" raw modes */
    if (ctype & PNG_COLOR_MASK_ALPHA || ctype == PNG_COLOR_TYPE_PALETTE)
        png_set_strip_alpha(png);
    if (interlace != PNG_INTERLACE_NONE)
        png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int ch = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((ch != 1 && ch != 3) || rowbytes != (size_t)w * ch * (gray16 ? 2 : 1)) {
        snprintf(err, err_len, "PNG colour type %d depth %d is not supported", ctype, depth);
        st = IMG_ERR_CORRUPT;
        goto done;
    }
    c.px = malloc(rowbytes * h);
    c.rows = malloc(sizeof(png_bytep) * h);
    if (!c.px || !c.rows) {
        snprintf(err, err_len, "out of memory decoding a %ux%u PNG", (unsigned)w, (unsigned)h);
        st = IMG_ERR_NOMEM;
        goto done;
    }
    for (png_uint_32 y = 0; y < h; y++)
        c.rows[y] = c.px + rowbytes * y;
    png_read_image(png, c.rows);
    if (gray16) { /* PIL's mode "I" → L/RGB clips values above 255 */
        size_t npix = (size_t)w * h;
        for (size_t i = 0; i < npix; i++) {
            unsigned v = (unsigned)c.px[2 * i] << 8 | c.px[2 * i + 1];
            c.px[i] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
    out->px = c.px;
    c.px = NULL;
    out->w = (int)w;
    out->h = (int)h;
    out->ch = ch;
done:
    png_destroy_read_struct(&png, &info, NULL);
    free(c.px);
    free(c.rows);
    return st;
}
