/*
 * fuzz_image.c — libFuzzer target over img_probe + img_preprocess (sniff,
 * decode, orientation, resize, crop, normalise). The input's last byte picks
 * one of four parameter sets so every path (gray, bgr, padding crop, fast
 * path, upscaling) is reached; max_pixels is kept small so a run stays fast.
 * fuzz_replay.c runs the same function over saved inputs in normal builds.
 *
 * Cost, not just crashes: under ASan every allocation is counted (the
 * sanitizer's malloc/free hooks), and the target aborts when img_preprocess
 * allocates more than img_probe's peak_bytes, when that bound is not
 * proportional to the image (COST_PER_PIXEL bytes per pixel + a constant),
 * when img_probe itself allocates more than 4 MiB + 4 bytes per 4x4 tile
 * (the VP8L pre-parse's sub-image), when img_preprocess accepts what
 * img_probe refused with a header error,
 * or when a call takes more than CPU_LIMIT seconds of CPU (libFuzzer's
 * -timeout is the backstop for hangs).
 */
#include "img.h"
#include "img_vp8l.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_COUNT_ALLOCS 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(FUZZ_COUNT_ALLOCS)
#define FUZZ_COUNT_ALLOCS 1
#endif

/* Raster (<= 4 B/px), orientation copy (3), coefficient buffer (<= 4 B/px
   for 4:4:4:4), lossless WebP ARGB (4) and alpha (1), libpng rows: <= 24. */
#define COST_PER_PIXEL 24
/* Fixed allowances: libjpeg/libpng/libwebp state, resize coefficient tables. */
#define COST_CONSTANT (64ull << 20)
/* Lossless WebP: libwebp's Huffman tables, up to 21 KB per group; the
   pre-parsed group count (or, for a stream that does not pre-parse, the
   worst case: one per 4x4 tile, at least 1000, at most 65536; see
   img_webp.c) for the image and for a lossless alpha plane. */
#define WEBP_GROUP_BYTES (21ull << 10)
/* ASan+UBSan make decoding ~3-5x slower; an honest 4 MP image takes well
   under a second even so. */
#define CPU_LIMIT 3.0

#ifdef FUZZ_COUNT_ALLOCS
/* From the sanitizer runtime (sanitizer/allocator_interface.h, which GCC
   does not install): both exported by libasan and clang's ASan. */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
size_t __sanitizer_get_allocated_size(const volatile void *p);

static int64_t cur_bytes, peak_bytes;
static int counting;
#define MAX_SIZES 65536
static size_t sizes[MAX_SIZES]; /* allocation sizes while counting */
static int nsizes;

static void on_malloc(const volatile void *p, size_t n) {
    (void)p;
    if (counting) {
        if (nsizes < MAX_SIZES)
            sizes[nsizes++] = n;
        cur_bytes += (int64_t)n;
        if (cur_bytes > peak_bytes)
            peak_bytes = cur_bytes;
    }
}

static void on_free(const volatile void *p) {
    if (counting && p)
        cur_bytes -= (int64_t)__sanitizer_get_allocated_size(p);
}

/* A lossless WebP that pre-parses: libwebp must allocate Huffman tables
 * for exactly the pre-parsed group count, never for more (an
 * under-count would under-bound), and for exactly that many when the
 * image decoded. */
static void check_vp8l_groups(const uint8_t *d, size_t n, const img_cost *c, img_status st) {
    if (n < 20 || memcmp(d, "RIFF", 4) != 0 || memcmp(d + 12, "VP8L", 4) != 0)
        return;
    size_t len = (size_t)d[16] | (size_t)d[17] << 8 | (size_t)d[18] << 16 | (size_t)d[19] << 24;
    img_vp8l_info vi;
    if (len > n - 20 || !img_vp8l_preparse(d + 20, len, c->width, c->height, 1, &vi))
        return;
    size_t unit = (size_t)img_vp8l_table_entries(vi.cache_bits) * 4;
    int found = 0, more = 0;
    for (int i = 0; i < nsizes; i++) {
        found |= sizes[i] == (size_t)vi.groups * unit;
        more |= sizes[i] % unit == 0 && sizes[i] / unit > (size_t)vi.groups;
    }
    if (more || (st == IMG_OK && !found)) {
        fprintf(stderr, "VP8L pre-parse: %d groups, libwebp allocated %s\n", vi.groups,
                more ? "more" : "other");
        abort();
    }
}
#endif

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
#ifdef FUZZ_COUNT_ALLOCS
    static int hooked;
    if (!hooked)
        hooked = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free) != 0 ? 1 : -1;
#endif
    img_params p = img_default_params();
    p.max_pixels = 4000000;
    switch (size ? data[size - 1] & 3 : 0) {
    case 1:
        p.color = IMG_COLOR_GRAY, p.resize = 28, p.crop_h = p.crop_w = 28, p.fast_path = 0;
        break;
    case 2:
        p.color = IMG_COLOR_BGR, p.resize = 40, p.crop_h = 64, p.crop_w = 48;
        p.exif_orientation = 0;
        break;
    case 3:
        p.resize = 7, p.crop_h = p.crop_w = 5;
        break;
    default:
        break;
    }
    size_t n = (size_t)img_channels(&p) * p.crop_h * p.crop_w;
    float *out = malloc(n * sizeof(float));
    if (!out)
        return 0;
    char err[256], perr[256];
    img_cost cost;
    double t0 = cpu_seconds();
#ifdef FUZZ_COUNT_ALLOCS
    cur_bytes = peak_bytes = 0;
    counting = 1;
#endif
    img_status ps = img_probe(size ? data : NULL, size, &p, &cost, perr, sizeof(perr));
#ifdef FUZZ_COUNT_ALLOCS
    counting = 0;
    uint64_t probe_limit =
        (4u << 20) + 4 * (uint64_t)((cost.width + 3) / 4) * (uint64_t)((cost.height + 3) / 4);
    if (ps == IMG_OK && peak_bytes > (int64_t)probe_limit) {
        fprintf(stderr, "img_probe allocated %lld bytes (> %llu)\n", (long long)peak_bytes,
                (unsigned long long)probe_limit);
        abort();
    }
#endif
    uint64_t px = (uint64_t)cost.width * (uint64_t)cost.height, allowed = px * COST_PER_PIXEL;
    if (size >= 12 && memcmp(data + 8, "WEBP", 4) == 0) { /* image and alpha plane */
        uint64_t tiles = (uint64_t)((cost.width + 3) / 4) * (uint64_t)((cost.height + 3) / 4);
        uint64_t groups = tiles > 1000 ? tiles : 1000;
        allowed += 2 * WEBP_GROUP_BYTES * (groups < 65536 ? groups : 65536);
    }
    if (ps == IMG_OK && cost.peak_bytes > allowed + COST_CONSTANT) {
        fprintf(stderr, "img_probe bound %llu for %dx%d is not proportional to the image\n",
                (unsigned long long)cost.peak_bytes, cost.width, cost.height);
        abort();
    }
#ifdef FUZZ_COUNT_ALLOCS
    cur_bytes = peak_bytes = 0;
    counting = 1;
    nsizes = 0;
#endif
    img_status st = img_preprocess(size ? data : NULL, size, &p, out, err, sizeof(err));
#ifdef FUZZ_COUNT_ALLOCS
    counting = 0;
    if (ps == IMG_OK)
        check_vp8l_groups(data, size, &cost, st);
    if (ps == IMG_OK && peak_bytes > (int64_t)cost.peak_bytes) {
        fprintf(stderr, "img_preprocess allocated %lld bytes, over img_probe's bound %llu (%s)\n",
                (long long)peak_bytes, (unsigned long long)cost.peak_bytes, err);
        abort();
    }
#endif
    double cpu = cpu_seconds() - t0;
    if (cpu > CPU_LIMIT) {
        fprintf(stderr, "probe + preprocess took %.2f s of CPU (%s)\n", cpu, img_status_str(st));
        abort();
    }
    /* What the header decides, the probe decides the same way. */
    if (ps != IMG_OK && st == IMG_OK) {
        fprintf(stderr, "img_probe refused (%s: %s) what img_preprocess accepted\n",
                img_status_str(ps), perr);
        abort();
    }
    if (!img_status_str(st) || memchr(err, '\0', sizeof(err)) == NULL)
        abort();
    if (st == IMG_OK) /* every output element must have been written */
        for (size_t i = 0; i < n; i++)
            if (out[i] != out[i] || out[i] < -1e6f || out[i] > 1e6f)
                abort();
    free(out);
    return 0;
}
