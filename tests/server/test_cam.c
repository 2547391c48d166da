/* test_cam.c — server/cam.c: the CAM against a direct double-precision sum,
 * min-max scaling (constant and non-finite maps), bilinear sampling against
 * its definition (a linear ramp is reproduced exactly inside, clamped at
 * the edges; the same size is the identity), the jet colour map's anchors,
 * the input image reconstructed from tensors made by the preprocessing
 * formula (RGB, BGR, gray), the overlay, and the PNG read back by libpng. */
#define CHECK_CONTINUE
#include "cam.h"
#include "check.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;

static float frand(void) {
    return (float)rand() / (float)RAND_MAX * 2.0f - 1.0f;
}

static void test_map(void) {
    enum { C = 37, H = 5, W = 7 };
    static float feat[C * H * W], wrow[C], map[H * W];
    for (int i = 0; i < C * H * W; i++)
        feat[i] = frand() * 3;
    for (int c = 0; c < C; c++)
        wrow[c] = frand();
    cam_map(feat, C, H, W, wrow, map);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double s = 0;
            for (int c = 0; c < C; c++)
                s += (double)wrow[c] * feat[(c * H + y) * W + x];
            CHECK(fabs(map[y * W + x] - s) <= 1e-6 * (1 + fabs(s)));
        }
    /* scaling: min -> 0, max -> 1, affine in between */
    float lo = map[0], hi = map[0], orig[H * W];
    memcpy(orig, map, sizeof map);
    for (int i = 0; i < H * W; i++) {
        lo = fminf(lo, map[i]);
        hi = fmaxf(hi, map[i]);
    }
    cam_normalize(map, H * W);
    float mn = 1, mx = 0;
    for (int i = 0; i < H * W; i++) {
        mn = fminf(mn, map[i]);
        mx = fmaxf(mx, map[i]);
        CHECK(fabs(map[i] - (orig[i] - lo) / (hi - lo)) < 1e-6);
    }
    CHECK(mn == 0 && mx == 1);
}

static void test_normalize_edges(void) {
    float flat[6] = {2.5f, 2.5f, 2.5f, 2.5f, 2.5f, 2.5f};
    cam_normalize(flat, 6);
    for (int i = 0; i < 6; i++)
        CHECK(flat[i] == 0);
    float odd[5] = {1, NAN, 3, INFINITY, -1};
    cam_normalize(odd, 5);
    CHECK(odd[0] == 0.5f && odd[1] == 0 && odd[2] == 1 && odd[3] == 0 && odd[4] == 0);
    float none[2] = {NAN, -INFINITY};
    cam_normalize(none, 2);
    CHECK(none[0] == 0 && none[1] == 0);
    float huge[2] = {-3e38f, 3e38f}; /* the range overflows float */
    cam_normalize(huge, 2);
    CHECK(huge[0] == 0 && huge[1] == 1);
}

static void test_sample(void) {
    /* f(y, x) = 3y + 2x on a 7x7 grid, upsampled to 224x224: inside the
     * grid's centres bilinear reproduces f at the source coordinate. */
    enum { h = 7, w = 7, O = 224 };
    float map[h * w];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            map[y * w + x] = 3.0f * y + 2.0f * x;
    for (int oy = 0; oy < O; oy += 5)
        for (int ox = 0; ox < O; ox += 3) {
            double sy = (oy + 0.5) * h / O - 0.5, sx = (ox + 0.5) * w / O - 0.5;
            sy = fmin(fmax(sy, 0), h - 1); /* clamped at the edges */
            sx = fmin(fmax(sx, 0), w - 1);
            float v = cam_sample(map, h, w, O, O, oy, ox);
            CHECK(fabs(v - (3 * sy + 2 * sx)) < 1e-4);
        }
    /* same size: the identity; one pixel: its value everywhere */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            CHECK(cam_sample(map, h, w, h, w, y, x) == map[y * w + x]);
    float one = 0.25f;
    CHECK(cam_sample(&one, 1, 1, 28, 28, 27, 0) == 0.25f);
    /* non-square: 2x4 to 3x5, the corners are the corners */
    float m2[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    CHECK(cam_sample(m2, 2, 4, 3, 5, 0, 0) == 0);
    CHECK(cam_sample(m2, 2, 4, 3, 5, 2, 4) == 7);
}

static void test_jet(void) {
    uint8_t c[3];
    cam_jet(0, c); /* dark blue */
    CHECK(c[0] == 0 && c[1] == 0 && c[2] == 128);
    cam_jet(0.5f, c); /* green */
    CHECK(c[0] == 128 && c[1] == 255 && c[2] == 128);
    cam_jet(1, c); /* dark red */
    CHECK(c[0] == 128 && c[1] == 0 && c[2] == 0);
    cam_jet(0.25f, c); /* blue, some green */
    CHECK(c[0] == 0 && c[1] == 128 && c[2] == 255);
    cam_jet(0.75f, c); /* red, some green */
    CHECK(c[0] == 255 && c[1] == 128 && c[2] == 0);
    uint8_t d[3];
    cam_jet(-3, d); /* clamped */
    cam_jet(0, c);
    CHECK(!memcmp(c, d, 3));
    cam_jet(NAN, d);
    CHECK(!memcmp(c, d, 3));
    /* red grows and blue falls along the map */
    int prev_r = -1, prev_b = 256;
    for (int i = 0; i <= 100; i++) {
        cam_jet(i / 100.0f, c);
        if (i >= 25 && i <= 87)
            CHECK(c[0] >= prev_r);
        if (i >= 37)
            CHECK(c[2] <= prev_b);
        prev_r = c[0];
        prev_b = c[2];
    }
}

/* A tensor made from pixels by the preprocessing formula, in float as
 * engine/image does: (pixel / scale - mean) / std. */
static void make_tensor(const uint8_t *px, int ch, int hw, const img_params *p, float *t) {
    for (int c = 0; c < ch; c++)
        for (int i = 0; i < hw; i++)
            t[c * hw + i] = ((float)px[c * hw + i] / p->scale - p->mean[c]) / p->std[c];
}

static void test_input_rgb(void) {
    enum { H = 9, W = 11, HW = H * W };
    uint8_t px[3 * HW], rgb[3 * HW];
    float t[3 * HW];
    for (int i = 0; i < 3 * HW; i++)
        px[i] = (uint8_t)(i * 37 + 11);
    px[0] = 0;
    px[1] = 255;
    img_params p = img_default_params(); /* ImageNet mean/std, RGB */
    make_tensor(px, 3, HW, &p, t);
    CHECK(cam_input_rgb(t, &p, 3, H, W, rgb) == 0);
    for (int i = 0; i < HW; i++)
        for (int c = 0; c < 3; c++)
            CHECK(rgb[i * 3 + c] == px[c * HW + i]);
    /* BGR: tensor channel 0 is blue; the picture is still RGB */
    p.color = IMG_COLOR_BGR;
    float m0 = p.mean[0], s0 = p.std[0];
    p.mean[0] = p.mean[2];
    p.std[0] = p.std[2];
    p.mean[2] = m0;
    p.std[2] = s0;
    make_tensor(px, 3, HW, &p, t);
    CHECK(cam_input_rgb(t, &p, 3, H, W, rgb) == 0);
    for (int i = 0; i < HW; i++)
        for (int c = 0; c < 3; c++)
            CHECK(rgb[i * 3 + c] == px[(2 - c) * HW + i]);
    /* gray (the bundled model's preprocessing): one channel, shown gray */
    p.color = IMG_COLOR_GRAY;
    p.scale = 255;
    p.mean[0] = 0.286041f;
    p.std[0] = 0.353024f;
    make_tensor(px, 1, HW, &p, t);
    CHECK(cam_input_rgb(t, &p, 1, H, W, rgb) == 0);
    for (int i = 0; i < HW; i++)
        CHECK(rgb[i * 3] == px[i] && rgb[i * 3 + 1] == px[i] && rgb[i * 3 + 2] == px[i]);
    /* out of range and NaN are clamped; other channel counts refused */
    t[0] = 1e6f;
    t[1] = -1e6f;
    t[2] = NAN;
    CHECK(cam_input_rgb(t, &p, 1, H, W, rgb) == 0);
    CHECK(rgb[0] == 255 && rgb[3] == 0 && rgb[6] == 0);
    CHECK(cam_input_rgb(t, &p, 2, H, W, rgb) == -1);
}

static void test_overlay_png(void) {
    enum { H = 28, W = 20, h = 4, w = 3 };
    float map[h * w];
    for (int i = 0; i < h * w; i++)
        map[i] = (float)i / (h * w - 1);
    static uint8_t rgb[H * W * 3], want[H * W * 3];
    for (int i = 0; i < H * W * 3; i++)
        rgb[i] = (uint8_t)(i * 7);
    memcpy(want, rgb, sizeof rgb);
    cam_overlay(rgb, H, W, map, h, w, 0.5f);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t jet[3];
            cam_jet(cam_sample(map, h, w, H, W, y, x), jet);
            for (int c = 0; c < 3; c++) {
                int i = (y * W + x) * 3 + c;
                CHECK(abs((int)rgb[i] - (want[i] + jet[c]) / 2) <= 1);
            }
        }
    /* alpha 0 leaves the picture alone */
    memcpy(want, rgb, sizeof rgb);
    cam_overlay(rgb, H, W, map, h, w, 0);
    CHECK(!memcmp(rgb, want, sizeof rgb));

    unsigned char *buf;
    size_t len;
    char err[200];
    CHECK(cam_png(rgb, W, H, &buf, &len, err, sizeof err) == 0);
    CHECK(len > 8 && len <= cam_png_bound(W, H) && !memcmp(buf, "\x89PNG\r\n\x1a\n", 8));
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    CHECK(png_image_begin_read_from_memory(&im, buf, len));
    CHECK(im.width == W && im.height == H);
    im.format = PNG_FORMAT_RGB;
    static uint8_t back[H * W * 3];
    CHECK(png_image_finish_read(&im, NULL, back, 0, NULL));
    CHECK(!memcmp(back, rgb, sizeof rgb));
    free(buf);
    /* noise does not compress: the bound still holds */
    static uint8_t noise[224 * 224 * 3];
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (uint8_t)rand();
    CHECK(cam_png(noise, 224, 224, &buf, &len, err, sizeof err) == 0);
    CHECK(len <= cam_png_bound(224, 224));
    free(buf);
    CHECK(cam_png(noise, 0, 5, &buf, &len, err, sizeof err) == -1 && !buf && strstr(err, "size"));
}

int main(void) {
    srand(7);
    test_map();
    test_normalize_edges();
    test_sample();
    test_jet();
    test_input_rgb();
    test_overlay_png();
    if (check_failures)
        fprintf(stderr, "%d checks failed\n", check_failures);
    else
        printf("test_cam ok\n");
    return check_failures != 0;
}
