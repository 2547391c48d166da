/* cam.c — class activation maps and their picture (cam.h). */
#include "cam.h"

#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cam_map(const float *feat, int channels, int height, int width, const float *weight,
             float *map) {
    size_t hw = (size_t)height * (size_t)width;
    for (size_t i = 0; i < hw; i++) {
        double s = 0;
        for (int c = 0; c < channels; c++)
            s += (double)weight[c] * (double)feat[(size_t)c * hw + i];
        map[i] = (float)s;
    }
}

void cam_normalize(float *map, size_t n) {
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(map[i]))
            continue;
        lo = map[i] < lo ? map[i] : lo;
        hi = map[i] > hi ? map[i] : hi;
    }
    /* hi - lo in double: float's range cannot overflow it */
    double range = (double)hi - (double)lo;
    if (!(range > 0) || !isfinite(range)) {
        memset(map, 0, n * sizeof *map);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float v = isfinite(map[i]) ? (float)(((double)map[i] - (double)lo) / range) : 0;
        map[i] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
}

/* PyTorch's source index for align_corners=False (scale = in / out, as
 * its area_pixel_compute_scale): half-pixel centres, and nothing left of
 * the first pixel. */
static void src_index(int o, int in, float scale, int *i0, int *i1, float *t) {
    float s = ((float)o + 0.5f) * scale - 0.5f;
    if (s < 0)
        s = 0;
    int i = (int)s;
    if (i > in - 1)
        i = in - 1;
    *i0 = i;
    *i1 = i + 1 < in ? i + 1 : in - 1;
    *t = s - (float)i;
}

float cam_sample(const float *map, int h, int w, int out_h, int out_w, int oy, int ox) {
    int y0, y1, x0, x1;
    float ty, tx;
    src_index(oy, h, (float)h / (float)out_h, &y0, &y1, &ty);
    src_index(ox, w, (float)w / (float)out_w, &x0, &x1, &tx);
    float top = map[y0 * w + x0] * (1 - tx) + map[y0 * w + x1] * tx;
    float bottom = map[y1 * w + x0] * (1 - tx) + map[y1 * w + x1] * tx;
    return top * (1 - ty) + bottom * ty;
}

static float clamp01(float v) {
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

void cam_jet(float v, uint8_t rgb[3]) {
    v = clamp01(isfinite(v) ? v : 0);
    /* the classic piecewise-linear jet: each channel a tent of width 1.5
     * centred at 0.75 (red), 0.5 (green), 0.25 (blue) */
    float r = clamp01(1.5f - fabsf(4 * v - 3));
    float g = clamp01(1.5f - fabsf(4 * v - 2));
    float b = clamp01(1.5f - fabsf(4 * v - 1));
    rgb[0] = (uint8_t)lrintf(r * 255);
    rgb[1] = (uint8_t)lrintf(g * 255);
    rgb[2] = (uint8_t)lrintf(b * 255);
}

static uint8_t to_pixel(float t, float mean, float std, float scale) {
    float v = (t * std + mean) * scale;
    if (!(v > 0)) /* NaN too */
        return 0;
    if (v >= 255)
        return 255;
    return (uint8_t)lrintf(v);
}

int cam_input_rgb(const float *tensor, const img_params *p, int channels, int height, int width,
                  uint8_t *rgb) {
    if (channels != 1 && channels != 3)
        return -1;
    size_t hw = (size_t)height * (size_t)width;
    for (size_t i = 0; i < hw; i++) {
        for (int c = 0; c < 3; c++) {
            /* tensor channel for output colour c: gray repeats its one
             * channel, BGR models hold blue first */
            int tc = channels == 1 ? 0 : p->color == IMG_COLOR_BGR ? 2 - c : c;
            rgb[i * 3 + (size_t)c] =
                to_pixel(tensor[(size_t)tc * hw + i], p->mean[tc], p->std[tc], p->scale);
        }
    }
    return 0;
}

void cam_overlay(uint8_t *rgb, int height, int width, const float *map, int h, int w, float alpha) {
    float sy = (float)h / (float)height, sx = (float)w / (float)width;
    for (int y = 0; y < height; y++) {
        /* cam_sample, with the row's source index found once */
        int y0, y1, x0, x1;
        float ty, tx;
        src_index(y, h, sy, &y0, &y1, &ty);
        const float *r0 = map + (size_t)y0 * (size_t)w, *r1 = map + (size_t)y1 * (size_t)w;
        uint8_t *px = rgb + (size_t)y * (size_t)width * 3;
        for (int x = 0; x < width; x++, px += 3) {
            src_index(x, w, sx, &x0, &x1, &tx);
            float top = r0[x0] * (1 - tx) + r0[x1] * tx;
            float bottom = r1[x0] * (1 - tx) + r1[x1] * tx;
            uint8_t jet[3];
            cam_jet(top * (1 - ty) + bottom * ty, jet);
            for (int c = 0; c < 3; c++)
                px[c] = (uint8_t)lrintf((1 - alpha) * (float)px[c] + alpha * (float)jet[c]);
        }
    }
}

size_t cam_png_bound(int width, int height) {
    /* filter byte + RGB per row; zlib adds at most 5 bytes per 16 KiB stored
     * block plus its header and checksum; libpng cuts the stream into IDAT
     * chunks of 8 KiB (12 bytes each); signature, IHDR, IEND; then slack. */
    size_t raw = ((size_t)width * 3 + 1) * (size_t)height;
    size_t z = raw + raw / 256 + 64;
    return z + (z / 8192 + 1) * 12 + 8 + 25 + 12 + 256;
}

typedef struct {
    unsigned char *buf;
    size_t len, cap;
    char msg[160];
} png_out;

static void on_write(png_structp png, png_bytep data, size_t n) {
    png_out *o = png_get_io_ptr(png);
    if (n > o->cap - o->len) /* cannot happen within cam_png_bound */
        png_error(png, "PNG larger than its bound");
    memcpy(o->buf + o->len, data, n);
    o->len += n;
}

static void on_flush(png_structp png) {
    (void)png;
}

static void on_error(png_structp png, png_const_charp msg) {
    png_out *o = png_get_error_ptr(png);
    snprintf(o->msg, sizeof o->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

int cam_png(const uint8_t *rgb, int width, int height, unsigned char **out, size_t *len, char *err,
            size_t err_len) {
    *out = NULL;
    *len = 0;
    if (width <= 0 || height <= 0) {
        snprintf(err, err_len, "PNG: bad size %dx%d", width, height);
        return -1;
    }
    png_out o = {.cap = cam_png_bound(width, height)};
    o.buf = malloc(o.cap);
    if (!o.buf) {
        snprintf(err, err_len, "PNG: out of memory");
        return -1;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &o, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        free(o.buf);
        snprintf(err, err_len, "PNG: out of memory");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(o.buf);
        snprintf(err, err_len, "PNG: %s", o.msg);
        return -1;
    }
    png_set_write_fn(png, &o, on_write, on_flush);
    /* fastest: it runs on an HTTP thread. One filter (Sub) instead of
     * libpng's adaptive choice among five per row: a fifth of the filtering
     * work, and on these pictures about the same size. */
    png_set_compression_level(png, 1);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_SUB);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++)
        png_write_row(png, rgb + (size_t)y * (size_t)width * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *out = o.buf;
    *len = o.len;
    return 0;
}
