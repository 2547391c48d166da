/*
 * cam.h — class activation maps (Zhou et al. 2016, "Learning Deep Features
 * for Discriminative Localization") and their picture, as pure functions:
 * no server state, no allocation except the PNG's buffer.
 *
 * A CAM of class k is the last convolutional feature maps f[c][y][x] of one
 * image weighted by the final classifier's row for k:
 *   cam[y][x] = sum_c W[k][c] * f[c][y][x]
 * (the bias and the 1/(h*w) of the pooling only shift and scale it, which
 * the min-max scaling to 0..1 removes). The picture is the map upsampled
 * bilinearly to the model's input size, coloured with the jet colour map and
 * blended over the input image as the model saw it (after resize and crop),
 * reconstructed from the input tensor.
 */
#ifndef RESNETD_CAM_H
#define RESNETD_CAM_H

#include "img.h"

#include <stddef.h>
#include <stdint.h>

/* map[y*width+x] = sum_c weight[c] * feat[(c*height+y)*width+x]; feat is one
 * image's [channels, height, width] features, weight one classifier row.
 * Sums in double. Cost: channels*height*width multiply-adds. */
void cam_map(const float *feat, int channels, int height, int width, const float *weight,
             float *map);

/* Scales n values in place to 0..1 by their minimum and maximum. A value
 * that is not finite becomes 0 and is left out of the range; a map without
 * range (constant, or nothing finite) becomes all 0. */
void cam_normalize(float *map, size_t n);

/* The value of the h x w map at pixel (ox, oy) of an out_w x out_h picture:
 * bilinear with half-pixel centres, edges clamped (PyTorch's
 * F.interpolate(mode="bilinear", align_corners=False), OpenCV's resize). */
float cam_sample(const float *map, int h, int w, int out_h, int out_w, int oy, int ox);

/* The jet colour map for v in 0..1 (clamped): dark blue, blue, cyan, yellow,
 * red, dark red. */
void cam_jet(float v, uint8_t rgb[3]);

/* The input image as the model saw it, from its channels x height x width
 * tensor and the preprocessing that made it (pixel = (t * std + mean) *
 * scale, rounded, clamped to 0..255): rgb (height*width*3 bytes) in RGB
 * order whatever the model's channel order; a 1-channel (gray) model is
 * rendered gray. Returns 0, or -1 when channels is neither 1 nor 3. */
int cam_input_rgb(const float *tensor, const img_params *p, int channels, int height, int width,
                  uint8_t *rgb);

/* Blends jet(map upsampled to width x height) over rgb in place:
 * out = (1 - alpha) * rgb + alpha * jet. map is h x w, already in 0..1. */
void cam_overlay(uint8_t *rgb, int height, int width, const float *map, int h, int w, float alpha);

/* Upper bound of cam_png's output size for a width x height RGB picture
 * (what to reserve in the budget before calling it). */
size_t cam_png_bound(int width, int height);

/* Encodes rgb (height rows of width*3 bytes) as an 8-bit RGB PNG, zlib at
 * its fastest level (it runs on an HTTP thread). On success *out is
 * malloc'd (caller frees), at most cam_png_bound bytes, and 0 is returned;
 * else -1 with err set. */
int cam_png(const uint8_t *rgb, int width, int height, unsigned char **out, size_t *len, char *err,
            size_t err_len);

#endif
