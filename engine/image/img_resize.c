/*
 * img_resize.c — torchvision's Resize(resize) + CenterCrop + ToTensor +
 * Normalize on an 8-bit raster, bit-exact with Pillow 9.x's ImagingResample
 * for BILINEAR (what torchvision's PIL backend calls, with no reducing_gap).
 *
 * The algorithm (Pillow's, re-derived; no Pillow code is copied):
 *   - output size: shorter side = resize, longer = int(resize * long / short);
 *   - per axis, output i samples around centre (i + 0.5) * scale with a
 *     triangle filter of support max(scale, 1); the taps are the input indices
 *     [int(centre - support + 0.5), int(centre + support + 0.5)) clamped to the
 *     image, weights tri((x - centre + 0.5) / max(scale, 1)), normalised to sum
 *     1, then rounded to signed fixed point with 22 fractional bits;
 *   - horizontal pass first, vertical pass on its 8-bit output; each pass adds
 *     1 << 21 for rounding, shifts right by 22 and clips to 0..255.
 * Every output pixel depends only on its own coordinates, so only the pixels
 * inside the centre crop are computed (PIL computes the whole image and then
 * crops; the numbers are the same).
 */
#include "img_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS 22
/* The two passes are the hot loops: on x86-64 also build an AVX2 clone
   (32-bit multiplies vectorise there) picked at load time. */
/* Not under sanitizers: an ifunc resolver runs before their runtimes start. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__) &&                  \
    !defined(__SANITIZE_THREAD__) && !defined(__clang__)
#define RESIZE_HOT __attribute__((target_clones("avx2", "default")))
#else
#define RESIZE_HOT
#endif
/* Longest virtual resized side accepted (1:250000 aspect ratios are not photos). */
#define MAX_RESIZED_SIDE (1 << 26)

/* Fixed-point taps for outputs [o0, o1) of an axis in_size -> out_size. */
typedef struct {
    int ksize;
    int *start; /* first input index, per output */
    int *count; /* number of taps, per output */
    int *k;     /* ksize weights per output */
} axis_coeffs;

static void coeffs_free(axis_coeffs *a) {
    free(a->start);
    free(a->count);
    free(a->k);
}

static double tri(double x) {
    if (x < 0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

static int coeffs_init(axis_coeffs *a, int in_size, int out_size, int o0, int o1) {
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filterscale; /* bilinear support is 1 */
    int n = o1 - o0;
    a->ksize = (int)ceil(support) * 2 + 1;
    a->start = malloc(sizeof(int) * (size_t)n);
    a->count = malloc(sizeof(int) * (size_t)n);
    a->k = malloc(sizeof(int) * (size_t)n * (size_t)a->ksize);
    double *w = malloc(sizeof(double) * (size_t)a->ksize);
    if (!a->start || !a->count || !a->k || !w) {
        free(w);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        double center = (o0 + i + 0.5) * scale;
        double ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            w[x] = tri((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int *k = a->k + (size_t)i * a->ksize;
        for (int x = 0; x < a->ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? w[x] / ww : w[x]) : 0.0;
            k[x] = v < 0 ? (int)(-0.5 + v * (1 << PRECISION_BITS))
                         : (int)(0.5 + v * (1 << PRECISION_BITS));
        }
        a->start[i] = xmin;
        a->count[i] = xmax;
        /* Pad to exactly ksize taps (zero weights add nothing) so the hot
           loop has a fixed trip count; slide the window left at the far edge. */
        if (in_size >= a->ksize) {
            int shift = xmin + a->ksize > in_size ? xmin + a->ksize - in_size : 0;
            if (shift) {
                memmove(k + shift, k, sizeof(int) * (size_t)(a->ksize - shift));
                memset(k, 0, sizeof(int) * (size_t)shift);
                a->start[i] = xmin - shift;
            }
            a->count[i] = a->ksize;
        }
    }
    free(w);
    return 0;
}

static inline uint8_t clip8(int v) {
    if (v >= (256 << PRECISION_BITS))
        return 255;
    if (v <= 0)
        return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* Horizontal pass, fixed tap count T (all windows padded to T taps). */
#define HPASS_FIXED(T)                                                                             \
    RESIZE_HOT static void hpass_rgb_##T(const uint8_t *src, uint8_t *dst, int n,                  \
                                         const axis_coeffs *a) {                                   \
        const int half = 1 << (PRECISION_BITS - 1);                                                \
        for (int i = 0; i < n; i++) {                                                              \
            const int *k = a->k + (size_t)i * T;                                                   \
            const uint8_t *s = src + (size_t)a->start[i] * 3;                                      \
            int s0 = half, s1 = half, s2 = half;                                                   \
            for (int x = 0; x < T; x++) {                                                          \
                s0 += s[3 * x] * k[x];                                                             \
                s1 += s[3 * x + 1] * k[x];                                                         \
                s2 += s[3 * x + 2] * k[x];                                                         \
            }                                                                                      \
            dst[3 * i] = clip8(s0);                                                                \
            dst[3 * i + 1] = clip8(s1);                                                            \
            dst[3 * i + 2] = clip8(s2);                                                            \
        }                                                                                          \
    }
HPASS_FIXED(3)
HPASS_FIXED(5)
HPASS_FIXED(7)

/* Horizontal pass over one row: src (ch-interleaved) -> dst (n outputs). */
RESIZE_HOT static void hpass_row(const uint8_t *src, uint8_t *dst, int n, int ch,
                                 const axis_coeffs *a) {
    const int half = 1 << (PRECISION_BITS - 1);
    if (ch == 3 && n > 0 && a->count[0] == a->ksize) { /* padded windows */
        if (a->ksize == 3)
            return hpass_rgb_3(src, dst, n, a);
        if (a->ksize == 5)
            return hpass_rgb_5(src, dst, n, a);
        if (a->ksize == 7)
            return hpass_rgb_7(src, dst, n, a);
    }
    for (int i = 0; i < n; i++) {
        const int *k = a->k + (size_t)i * a->ksize;
        const uint8_t *s = src + (size_t)a->start[i] * ch;
        int cnt = a->count[i];
        if (ch == 1) {
            int s0 = half;
            for (int x = 0; x < cnt; x++)
                s0 += s[x] * k[x];
            dst[i] = clip8(s0);
        } else {
            int s0 = half, s1 = half, s2 = half;
            for (int x = 0; x < cnt; x++) {
                s0 += s[3 * x] * k[x];
                s1 += s[3 * x + 1] * k[x];
                s2 += s[3 * x + 2] * k[x];
            }
            dst[3 * i] = clip8(s0);
            dst[3 * i + 1] = clip8(s1);
            dst[3 * i + 2] = clip8(s2);
        }
    }
}

/* Eight rows at once. The window's bytes are transposed (8x8 byte blocks,
 * SWAR) so that word b holds byte b of all eight rows; each tap is then one
 * widening load and one vector multiply-add for eight outputs, and the
 * results are transposed back into the eight destination rows. Needs padded
 * windows (count == ksize everywhere). tb holds ncols*ch + 8 words, ob
 * n*ch + 8 words. Little-endian byte order is assumed (checked by the caller). */
typedef int32_t v8si __attribute__((vector_size(32)));
typedef int16_t v8hi __attribute__((vector_size(16)));
typedef uint8_t v8qu __attribute__((vector_size(8)));

/* Transposes an 8x8 byte matrix held as 8 little-endian words. */
static inline void transpose8x8(uint64_t m[8]) {
    for (int i = 0; i < 4; i++) {
        uint64_t t = ((m[i] >> 32) ^ m[i + 4]) & 0x00000000FFFFFFFFull;
        m[i] ^= t << 32, m[i + 4] ^= t;
    }
    static const int pair2[4] = {0, 1, 4, 5};
    for (int p = 0; p < 4; p++) {
        int i = pair2[p];
        uint64_t t = ((m[i] >> 16) ^ m[i + 2]) & 0x0000FFFF0000FFFFull;
        m[i] ^= t << 16, m[i + 2] ^= t;
    }
    for (int i = 0; i < 8; i += 2) {
        uint64_t t = ((m[i] >> 8) ^ m[i + 1]) & 0x00FF00FF00FF00FFull;
        m[i] ^= t << 8, m[i + 1] ^= t;
    }
}

/* The taps of eight rows: K is a constant in each inlined copy below. */
static inline __attribute__((always_inline)) void
hpass8_outputs(const uint64_t *tb, uint64_t *ob, int n, int ch, const axis_coeffs *a, const int K) {
    const v8si zero = {0, 0, 0, 0, 0, 0, 0, 0};
    const v8si max8 = zero + 255, half = zero + (1 << (PRECISION_BITS - 1));
    const int cx0 = a->start[0];
    for (int i = 0; i < n; i++) {
        const int *k = a->k + (size_t)i * K;
        const uint64_t *t0 = tb + (size_t)(a->start[i] - cx0) * ch;
        for (int c = 0; c < ch; c++) {
            v8si acc = half;
            for (int j = 0; j < K; j++) {
                /* this element-wise form compiles to one widening load */
                const uint8_t *b = (const uint8_t *)&t0[(size_t)j * ch + c];
                v8si w = {b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]};
                acc += w * k[j];
            }
            acc >>= PRECISION_BITS; /* clip8: <= 0 -> 0, >= 256 << 22 -> 255 */
            v8si hi = acc > max8;
            acc = (acc & ~hi) | (max8 & hi);
            acc &= ~(acc < zero);
            v8qu o = __builtin_convertvector(__builtin_convertvector(acc, v8hi), v8qu);
            memcpy(&ob[(size_t)i * ch + c], &o, sizeof(o));
        }
    }
}

RESIZE_HOT static void hpass_block8(const uint8_t *const *src, uint8_t *const *dst, int n, int ch,
                                    const axis_coeffs *a, uint64_t *tb, uint64_t *ob) {
    const int K = a->ksize, cx0 = a->start[0];
    const size_t nb = (size_t)(a->start[n - 1] + K - cx0) * ch, no = (size_t)n * ch;
    for (size_t q = 0; q < nb; q += 8) { /* rows -> byte columns */
        uint64_t m[8];
        for (int r = 0; r < 8; r++) {
            const uint8_t *p = src[r] + (size_t)cx0 * ch + q;
            if (nb - q >= 8) {
                memcpy(&m[r], p, 8);
            } else {
                m[r] = 0;
                memcpy(&m[r], p, nb - q);
            }
        }
        transpose8x8(m);
        memcpy(tb + q, m, sizeof(m));
    }
    switch (K) {
    case 3:
        hpass8_outputs(tb, ob, n, ch, a, 3);
        break;
    case 5:
        hpass8_outputs(tb, ob, n, ch, a, 5);
        break;
    case 7:
        hpass8_outputs(tb, ob, n, ch, a, 7);
        break;
    default:
        hpass8_outputs(tb, ob, n, ch, a, K);
        break;
    }
    for (size_t q = 0; q < no; q += 8) { /* byte columns -> rows */
        uint64_t m[8];
        size_t len = no - q < 8 ? no - q : 8;
        for (size_t j = 0; j < 8; j++)
            m[j] = j < len ? ob[q + j] : 0;
        transpose8x8(m);
        for (int r = 0; r < 8; r++) {
            if (len == 8)
                memcpy(dst[r] + q, &m[r], 8);
            else
                memcpy(dst[r] + q, &m[r], len);
        }
    }
}

/* Vertical pass for one output row: n bytes from cnt source rows; eight
 * columns at a time with the sums kept in registers. */
RESIZE_HOT static void vpass_row(const uint8_t *s, size_t stride, const int *k, int cnt, int n,
                                 uint8_t *row) {
    const v8si zero = {0, 0, 0, 0, 0, 0, 0, 0};
    const v8si max8 = zero + 255, half = zero + (1 << (PRECISION_BITS - 1));
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        v8si acc = half;
        const uint8_t *p = s + j;
        for (int t = 0; t < cnt; t++, p += stride) {
            v8si w = {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]};
            acc += w * k[t];
        }
        acc >>= PRECISION_BITS;
        v8si hi = acc > max8;
        acc = (acc & ~hi) | (max8 & hi);
        acc &= ~(acc < zero);
        v8qu o = __builtin_convertvector(__builtin_convertvector(acc, v8hi), v8qu);
        memcpy(row + j, &o, sizeof(o));
    }
    for (; j < n; j++) {
        int acc = 1 << (PRECISION_BITS - 1);
        for (int t = 0; t < cnt; t++)
            acc += s[(size_t)t * stride + j] * k[t];
        row[j] = clip8(acc);
    }
}

static int little_endian(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Python's round() on d / 2 (half to even), for d >= 0. */
static int half_round_even(int d) {
    int q = d / 2;
    if ((d & 1) && (q & 1))
        q++;
    return q;
}

/* Crop placement along one axis of virtual length len, crop c: the resized
 * index of crop position 0 is *off (may be negative: zero padding), as
 * torchvision's center_crop (pad (c-len)//2 first, then round((len-c)/2)). */
static int crop_offset(int len, int c) {
    if (c > len)
        return -((c - len) / 2);
    return half_round_even(len - c);
}

img_status img_resize_normalize(const img_raster *r, const img_params *p, float *out, char *err,
                                size_t err_len) {
    const int W = r->w, H = r->h, ch = r->ch;
    const int CH = p->crop_h, CW = p->crop_w, K = img_channels(p);
    /* torchvision's _compute_resized_output_size */
    int64_t sh = W <= H ? W : H, lo = W <= H ? H : W;
    double nl = (double)((int64_t)p->resize * lo) / (double)sh;
    if (nl > MAX_RESIZED_SIDE) {
        snprintf(err, err_len, "image %dx%d: aspect ratio too extreme to resize", W, H);
        return IMG_ERR_BAD_DIMENSIONS;
    }
    int new_long = (int)nl;
    int RW = W <= H ? p->resize : new_long, RH = W <= H ? new_long : p->resize;

    /* Resized-coordinate window [x0, x1) x [y0, y1) covered by the crop. */
    int offx = crop_offset(RW, CW), offy = crop_offset(RH, CH);
    int x0 = offx < 0 ? 0 : offx, x1 = offx + CW > RW ? RW : offx + CW;
    int y0 = offy < 0 ? 0 : offy, y1 = offy + CH > RH ? RH : offy + CH;
    int nx = x1 - x0, ny = y1 - y0;
    int need_h = RW != W, need_v = RH != H;

    float lut[3][256];
    for (int c = 0; c < K; c++)
        for (int v = 0; v < 256; v++)
            lut[c][v] = ((float)v / p->scale - p->mean[c]) / p->std[c];
    int srcch[3] = {0, 0, 0}; /* raster channel feeding each output plane */
    if (ch == 3)
        for (int c = 0; c < 3; c++)
            srcch[c] = p->color == IMG_COLOR_BGR ? 2 - c : c;
    size_t plane = (size_t)CH * CW;

    axis_coeffs ah = {0}, av = {0};
    uint8_t *tmp = NULL, *row = NULL;
    img_status st = IMG_OK;
    if ((need_h && coeffs_init(&ah, W, RW, x0, x1) < 0) ||
        (need_v && coeffs_init(&av, H, RH, y0, y1) < 0))
        goto nomem;

    /* Source rows the vertical pass reads: [sy0, sy1). */
    int sy0 = need_v ? av.start[0] : y0;
    int sy1 = need_v ? av.start[ny - 1] + av.count[ny - 1] : y1;
    /* The horizontal pass's output: rows sy0..sy1 of width nx (or the source). */
    const uint8_t *hbase;
    size_t hstride;
    if (need_h) {
        size_t bytes = (size_t)(sy1 - sy0) * nx * ch;
        if (bytes > (size_t)3 * ((size_t)p->max_pixels + plane)) {
            snprintf(err, err_len, "image %dx%d: resize to %dx%d needs too much memory", W, H, RW,
                     RH);
            st = IMG_ERR_BAD_DIMENSIONS;
            goto done;
        }
        tmp = malloc(bytes ? bytes : 1);
        if (!tmp)
            goto nomem;
        if (ah.count[0] == ah.ksize && little_endian()) { /* eight rows at a time */
            size_t nb = (size_t)(ah.start[nx - 1] + ah.ksize - ah.start[0]) * ch;
            uint64_t *tb = malloc(sizeof(uint64_t) * (nb + 8));
            uint64_t *ob = malloc(sizeof(uint64_t) * ((size_t)nx * ch + 8));
            uint8_t *spare = malloc((size_t)nx * ch);
            if (!tb || !ob || !spare) {
                free(tb);
                free(ob);
                free(spare);
                goto nomem;
            }
            for (int y = sy0; y < sy1; y += 8) {
                const uint8_t *srows[8];
                uint8_t *drows[8];
                for (int j = 0; j < 8; j++) {
                    int yy = y + j < sy1 ? y + j : sy1 - 1; /* past the end: recompute, discard */
                    srows[j] = r->px + (size_t)yy * W * ch;
                    drows[j] = y + j < sy1 ? tmp + (size_t)(y + j - sy0) * nx * ch : spare;
                }
                hpass_block8(srows, drows, nx, ch, &ah, tb, ob);
            }
            free(tb);
            free(ob);
            free(spare);
        } else {
            for (int y = sy0; y < sy1; y++)
                hpass_row(r->px + (size_t)y * W * ch, tmp + (size_t)(y - sy0) * nx * ch, nx, ch,
                          &ah);
        }
        hbase = tmp;
        hstride = (size_t)nx * ch;
    } else {
        hbase = r->px + (size_t)sy0 * W * ch + (size_t)x0 * ch;
        hstride = (size_t)W * ch;
    }
    row = malloc((size_t)(nx > 0 ? nx : 1) * ch);
    if (!row)
        goto nomem;

    for (int oy = 0; oy < CH; oy++) {
        int ry = offy + oy;
        size_t o = (size_t)oy * CW;
        if (ry < 0 || ry >= RH || nx <= 0) { /* a padding row */
            for (int c = 0; c < K; c++)
                for (int ox = 0; ox < CW; ox++)
                    out[c * plane + o + ox] = lut[c][0];
            continue;
        }
        const uint8_t *src;
        if (need_v) {
            int i = ry - y0;
            vpass_row(hbase + (size_t)(av.start[i] - sy0) * hstride, hstride,
                      av.k + (size_t)i * av.ksize, av.count[i], nx * ch, row);
            src = row;
        } else {
            src = hbase + (size_t)(ry - sy0) * hstride;
        }
        for (int c = 0; c < K; c++) {
            float *dst = out + c * plane + o;
            const float *l = lut[c];
            int ox = 0;
            for (; ox < CW && offx + ox < 0; ox++)
                dst[ox] = l[0];
            const uint8_t *s = src + srcch[c];
            for (int i = 0; i < nx; i++, ox++)
                dst[ox] = l[s[(size_t)i * ch]];
            for (; ox < CW; ox++)
                dst[ox] = l[0];
        }
    }
    goto done;
nomem:
    snprintf(err, err_len, "out of memory resizing a %dx%d image", W, H);
    st = IMG_ERR_NOMEM;
done:
    coeffs_free(&ah);
    coeffs_free(&av);
    free(tmp);
    free(row);
    return st;
}

/* Mirrors img_resize_normalize's allocations: the two coefficient tables
 * (start, count and ksize taps per output), the horizontal pass's output
 * (source rows x crop width), the eight-row transpose buffers and a row. */
uint64_t img_resize_peak(int W, int H, int ch, const img_params *p) {
    if (W <= 0 || H <= 0)
        return 0;
    int64_t sh = W <= H ? W : H, lo = W <= H ? H : W;
    double nl = (double)((int64_t)p->resize * lo) / (double)sh;
    if (nl > MAX_RESIZED_SIDE)
        return 0;
    uint64_t RW = W <= H ? (uint64_t)p->resize : (uint64_t)nl;
    uint64_t RH = W <= H ? (uint64_t)nl : (uint64_t)p->resize;
    uint64_t nx = RW < (uint64_t)p->crop_w ? RW : (uint64_t)p->crop_w;
    uint64_t ny = RH < (uint64_t)p->crop_h ? RH : (uint64_t)p->crop_h;
    uint64_t kh = 2 * (uint64_t)ceil((double)W / (double)(RW ? RW : 1)) + 3;
    uint64_t kv = 2 * (uint64_t)ceil((double)H / (double)(RH ? RH : 1)) + 3;
    /* source rows/columns the crop's taps reach: the crop's share of the
       axis plus one filter support on each side */
    uint64_t srows = (ny * (uint64_t)H + RH - 1) / RH + kv + 2;
    uint64_t scols = (nx * (uint64_t)W + RW - 1) / RW + kh + 2;
    if (srows > (uint64_t)H)
        srows = (uint64_t)H;
    if (scols > (uint64_t)W)
        scols = (uint64_t)W;
    uint64_t b = sizeof(int) * (nx * (2 + kh) + ny * (2 + kv)) + sizeof(double) * (kh + kv);
    b += srows * nx * ch;                                /* tmp */
    b += sizeof(uint64_t) * ((scols + kh) * ch + 16);    /* tb */
    b += sizeof(uint64_t) * (nx * ch + 8) + 2 * nx * ch; /* ob, spare, row */
    return b + 16 * 1024;                                /* malloc headers, rounding */
}
