/*
 * img.h — bytes of an uploaded image → the model's input tensor.
 *
 * Decodes JPEG (libjpeg-turbo's libjpeg API), PNG (libpng) and WebP (libwebp), sniffing the
 * format from the bytes, and preprocesses exactly as torchvision does with
 * PIL: Resize(resize) (antialiased bilinear on the shorter side), then
 * CenterCrop(crop_h, crop_w), ToTensor, Normalize(mean, std).
 * Thread-safe: no global state; each call owns its temporary buffers.
 */
#ifndef RESNETD_IMG_H
#define RESNETD_IMG_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    IMG_OK = 0,
    IMG_ERR_EMPTY,          /* zero-length input */
    IMG_ERR_UNKNOWN_FORMAT, /* not JPEG, PNG or WebP (HTTP 415) */
    IMG_ERR_TRUNCATED,      /* data ends early */
    IMG_ERR_CORRUPT,        /* the decoder rejected the data */
    IMG_ERR_TOO_LARGE,      /* width*height over max_pixels (checked from the header) */
    IMG_ERR_BAD_DIMENSIONS, /* zero or absurd width/height */
    IMG_ERR_NOMEM,
    IMG_ERR_ARG,         /* bad parameters from the caller */
    IMG_ERR_TOO_COMPLEX, /* decoding would cost more memory or work than the limits allow */
} img_status;

/* Stable snake_case code for a status (used in JSON error bodies); never NULL. */
const char *img_status_str(img_status s);

typedef enum { IMG_COLOR_RGB = 0, IMG_COLOR_BGR, IMG_COLOR_GRAY } img_color;

typedef struct {
    img_color color;
    int resize;         /* shorter side is resized to this */
    int crop_h, crop_w; /* centre crop: the model's input H and W */
    float scale;        /* tensor = (pixel / scale - mean) / std */
    float mean[3], std[3];
    int64_t max_pixels;   /* default 40,000,000 */
    int exif_orientation; /* apply EXIF orientation (default 1) */
    int fast_path;        /* libjpeg DCT scaling for large JPEGs (default 1) */
} img_params;

/* torchvision's ImageNet defaults: rgb, 256, 224x224, 255, ImageNet mean/std. */
img_params img_default_params(void);

/* 1 for gray, else 3. */
int img_channels(const img_params *p);

/* Decodes data[0..len) and writes img_channels(p) * crop_h * crop_w floats,
 * CHW planar, into out (the caller's slot in a batch buffer). On error out
 * may have been partly written and err holds one line naming the cause. */
img_status img_preprocess(const void *data, size_t len, const img_params *p, float *out, char *err,
                          size_t err_len);

/* What decoding an image will cost, read from its header by the decoder
 * library itself (never by a separate walk that could disagree with it). */
typedef struct {
    int width, height;   /* as stored, before EXIF orientation */
    uint64_t peak_bytes; /* upper bound of the memory img_preprocess allocates for it */
    uint64_t work;       /* upper bound of the decode work, in coefficient/pixel visits */
} img_cost;

/* Reads only the header of data[0..len) and fills *cost, refusing (with the
 * status img_preprocess would give) images over p's limits. Cheap: no pixel
 * is decoded. img_preprocess on the same bytes and params allocates at most
 * cost->peak_bytes. */
img_status img_probe(const void *data, size_t len, const img_params *p, img_cost *cost, char *err,
                     size_t err_len);

#endif
