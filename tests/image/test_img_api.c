/*
 * test_img_api.c — img.h contract checks that need no reference: argument
 * validation, status strings, defaults, and that the output slot is fully
 * written (no reads of uninitialised memory under ASan/MSan).
 */
#define CHECK_CONTINUE /* every check runs; main fails at the end */
#include "check.h"
#include "img.h"
#include "img_internal.h" /* img_exif_orientation: unit-tested here */

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_failures;

/* A 2x1 8-bit RGB PNG (red, blue), uncompressed deflate, valid CRCs. */
static const unsigned char tiny_png[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
    0x52, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x7b,
    0x40, 0xe8, 0xdd, 0x00, 0x00, 0x00, 0x12, 0x49, 0x44, 0x41, 0x54, 0x78, 0x01, 0x01, 0x07,
    0x00, 0xf8, 0xff, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0x07, 0x00, 0x01, 0xff, 0x55,
    0x36, 0xba, 0xc7, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};

int main(void) {
    img_params p = img_default_params();
    CHECK(p.resize == 256 && p.crop_h == 224 && p.crop_w == 224 && p.scale == 255.0f);
    CHECK(p.max_pixels == 40000000 && p.exif_orientation == 1 && p.fast_path == 1);
    CHECK(img_channels(&p) == 3);
    p.color = IMG_COLOR_GRAY;
    CHECK(img_channels(&p) == 1);

    /* Every status has a distinct, non-empty code. */
    for (int a = IMG_OK; a <= IMG_ERR_TOO_COMPLEX; a++) {
        CHECK(img_status_str((img_status)a) && *img_status_str((img_status)a));
        for (int b = a + 1; b <= IMG_ERR_TOO_COMPLEX; b++)
            CHECK(strcmp(img_status_str((img_status)a), img_status_str((img_status)b)) != 0);
    }

    char err[256];
    static float out[3 * 224 * 224];
    p = img_default_params();
    CHECK(img_preprocess(NULL, 10, &p, out, err, sizeof(err)) == IMG_ERR_ARG);
    CHECK(img_preprocess(tiny_png, sizeof(tiny_png), NULL, out, err, sizeof(err)) == IMG_ERR_ARG);
    CHECK(img_preprocess(tiny_png, sizeof(tiny_png), &p, NULL, err, sizeof(err)) == IMG_ERR_ARG);
    img_params bad = p;
    bad.resize = 0;
    CHECK(img_preprocess(tiny_png, sizeof(tiny_png), &bad, out, err, sizeof(err)) == IMG_ERR_ARG);
    CHECK(strstr(err, "resize") != NULL);
    bad = p;
    bad.std[1] = 0;
    CHECK(img_preprocess(tiny_png, sizeof(tiny_png), &bad, out, err, sizeof(err)) == IMG_ERR_ARG);
    CHECK(img_preprocess(tiny_png, 0, &p, out, err, sizeof(err)) == IMG_ERR_EMPTY);
    /* err may be NULL: the status still tells the cause. */
    CHECK(img_preprocess(tiny_png, 5, &p, out, NULL, 0) == IMG_ERR_TRUNCATED);

    /* Decoding works and the whole slot is written: left half red, right half blue. */
    for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++)
        out[i] = NAN;
    CHECK(img_preprocess(tiny_png, sizeof(tiny_png), &p, out, err, sizeof(err)) == IMG_OK);
    int all_finite = 1;
    for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++)
        all_finite &= isfinite(out[i]) != 0;
    CHECK(all_finite);
    /* The 2x1 image is upscaled to 512x256 and centre-cropped: red fades to blue. */
    const float *R = out, *B = out + 2 * 224 * 224;
    CHECK(R[100 * 224 + 0] > R[100 * 224 + 223] && B[100 * 224 + 223] > B[100 * 224 + 0]);
    CHECK(R[0] == R[223 * 224] && B[5] == B[200 * 224 + 5]); /* rows are identical */

    /* Over max_pixels from the header alone. */
    p.max_pixels = 1;
    CHECK(img_preprocess(tiny_png, sizeof(tiny_png), &p, out, err, sizeof(err)) ==
          IMG_ERR_TOO_LARGE);

    /* EXIF orientation parsing: both byte orders, with and without the JPEG
       "Exif\0\0" prefix, and malformed blocks (never read out of bounds). */
    static const unsigned char le6[] = {'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01,
                                        3,   0,   1,  0, 0, 0, 6, 0, 0, 0, 0,    0};
    static const unsigned char be8[] = {'E', 'x', 'i', 'f', 0, 0, 'M',  'M', 0, 42, 0,
                                        0,   0,   8,   0,   1, 1, 0x12, 0,   3, 0,  0,
                                        0,   1,   0,   8,   0, 0, 0,    0,   0, 0};
    CHECK(img_exif_orientation(le6, sizeof(le6)) == 6);
    CHECK(img_exif_orientation(be8, sizeof(be8)) == 8);
    for (size_t n = 0; n < sizeof(le6) - 12; n++) /* cut before the value */
        CHECK(img_exif_orientation(le6, n) == 1);
    unsigned char blk[sizeof(le6)];
    memcpy(blk, le6, sizeof(le6));
    blk[8] = 0xFF, blk[9] = 0xFF, blk[10] = 0x13; /* 65535 entries, none valid */
    CHECK(img_exif_orientation(blk, sizeof(blk)) == 1);
    memcpy(blk, le6, sizeof(le6));
    blk[4] = 0xF0, blk[7] = 0x7F; /* IFD offset far outside */
    CHECK(img_exif_orientation(blk, sizeof(blk)) == 1);
    memcpy(blk, le6, sizeof(le6));
    blk[18] = 9; /* orientation 9 is not a valid value */
    CHECK(img_exif_orientation(blk, sizeof(blk)) == 1);

    printf("%s (%d failures)\n", check_failures ? "FAILED" : "OK", check_failures);
    return check_failures ? 1 : 0;
}
