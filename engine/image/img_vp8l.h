/*
 * img_vp8l.h — pre-parse of a WebP lossless (VP8L) bitstream, written from
 * the WebP Lossless Bitstream Specification (RFC 9649), to learn what
 * libwebp's lossless decoder will allocate before it allocates it: the
 * number of Huffman "htree groups" named by the entropy image, and the size
 * of the transforms' sub-images. Internal to engine/image.
 */
#ifndef RESNETD_IMG_VP8L_H
#define RESNETD_IMG_VP8L_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int groups;           /* Huffman groups libwebp 1.2.4 allocates tables for */
    int groups_max;       /* largest group index in the entropy image + 1 */
    int cache_bits;       /* the main image's colour cache bits (0..11) */
    uint64_t sub_px;      /* pixels of every sub-image libwebp keeps while decoding */
    int xsize;            /* width of the coded image (colour indexing packs pixels) */
    uint64_t parse_bytes; /* what the pre-parse itself allocated (peak) */
} img_vp8l_info;

/* Pre-parses the VP8L stream d[0..n) of a w x h image: with_header 1 for a
 * "VP8L" chunk (signature, size, version), 0 for the headerless stream of a
 * lossless ALPH chunk. Reads the transforms (decoding their sub-images), the
 * colour cache bits and the entropy image, and stops before the Huffman
 * codes of the groups. Returns 1 and fills *info, or 0 when the stream is
 * malformed, ends early, disagrees with w x h, or would need a sub-image of
 * more than IMG_VP8L_MAX_SUB_PX pixels ("unknown": the caller then assumes
 * the worst case). Cost: memory 4 bytes per pixel of the largest sub-image
 * + ~700 KB of tables; CPU proportional to the sub-images' pixels and the
 * bits read. Thread-safe (no global state). */
int img_vp8l_preparse(const uint8_t *d, size_t n, int w, int h, int with_header,
                      img_vp8l_info *info);

/* Entries (4 bytes each) of the Huffman tables libwebp 1.2.4 allocates per
 * group for a colour cache of cache_bits (0..11): the largest two-level
 * lookup tables its five codes can need, 2954..5004. */
uint32_t img_vp8l_table_entries(int cache_bits);

/* Sub-images above this (4 bytes each) are not pre-parsed: 4 M pixels, i.e.
 * an entropy image at 4x4 tiles of a 64 MP image; real encoders keep them
 * to a few thousand pixels. */
#define IMG_VP8L_MAX_SUB_PX (1u << 22)

#endif
