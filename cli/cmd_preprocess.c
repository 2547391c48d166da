/*
 * cmd_preprocess.c — `resnetd preprocess --model M IMAGE OUT.npy`: writes the
 * float32 [1,C,H,W] tensor the model sees. Needs no engine: C, H, W come
 * from the model's config.
 *
 * Extra options: --no-fast-path, --no-exif-orientation, --max-image-pixels N,
 * and (hidden, for bench/image_vs_pil.sh and bench/server_latency.sh) --repeat
 * N, which preprocesses the image N times and prints {"seconds_per_image":
 * mean, "seconds_p50": median, "iterations": N} on stdout.
 */
#include "commands.h"
#include "file.h"
#include "model_config.h"
#include "npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_FILE_BYTES (1ll << 30)

static void usage(void) {
    fprintf(stderr, "usage: resnetd preprocess --model M [--no-fast-path] [--no-exif-orientation]"
                    " [--max-image-pixels N] IMAGE OUT.npy\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cmd_preprocess(int argc, char **argv) {
    const char *model = NULL, *pos[2] = {NULL, NULL};
    int npos = 0, fast = 1, exif = 1;
    long long max_pixels = 0, repeat = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char *end;
        if (strcmp(a, "--model") == 0 && i + 1 < argc) {
            model = argv[++i];
        } else if (strcmp(a, "--no-fast-path") == 0) {
            fast = 0;
        } else if (strcmp(a, "--no-exif-orientation") == 0) {
            exif = 0;
        } else if ((strcmp(a, "--max-image-pixels") == 0 || strcmp(a, "--repeat") == 0) &&
                   i + 1 < argc) {
            long long v = strtoll(argv[++i], &end, 10);
            if (*end || v <= 0) {
                fprintf(stderr, "resnetd preprocess: %s: expected a positive integer, got '%s'\n",
                        a, argv[i]);
                return 2;
            }
            *(strcmp(a, "--repeat") == 0 ? &repeat : &max_pixels) = v;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage();
            return 0;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "resnetd preprocess: unknown or incomplete option '%s'\n", a);
            usage();
            return 2;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "resnetd preprocess: unexpected argument '%s'\n", a);
            usage();
            return 2;
        }
    }
    if (!model || npos != 2) {
        usage();
        return 2;
    }
    char err[512];
    model_config mc;
    if (model_config_load(model, &mc, err, sizeof(err)) != 0) {
        fprintf(stderr, "resnetd preprocess: %s\n", err);
        return 2;
    }
    img_params p = mc.input;
    p.fast_path = p.fast_path && fast;
    p.exif_orientation = p.exif_orientation && exif;
    if (max_pixels)
        p.max_pixels = max_pixels;
    int64_t dims[4] = {1, img_channels(&p), p.crop_h, p.crop_w};
    size_t count = (size_t)dims[1] * dims[2] * dims[3];
    void *buf = NULL;
    size_t len = 0;
    float *out = malloc(count * sizeof(float));
    int rc = 0;
    if (!out) {
        snprintf(err, sizeof(err), "out of memory");
        rc = 1;
    } else if (file_read_all(pos[0], MAX_FILE_BYTES, &buf, &len, err, sizeof(err)) != 0) {
        rc = 1;
    } else {
        double t0 = now_s();
        long long iters = repeat > 0 ? repeat : 1;
        double *times = repeat > 0 ? malloc((size_t)iters * sizeof(double)) : NULL;
        for (long long it = 0; it < iters && rc == 0; it++) {
            double ti = now_s();
            img_status st = img_preprocess(buf, len, &p, out, err, sizeof(err));
            if (times)
                times[it] = now_s() - ti;
            if (st != IMG_OK) {
                fprintf(stderr, "resnetd preprocess: %s: %s: %s\n", pos[0], img_status_str(st),
                        err);
                rc = 1;
                err[0] = '\0'; /* already reported */
            }
        }
        if (rc == 0 && repeat > 0) {
            double mean = (now_s() - t0) / iters, p50 = mean;
            if (times) {
                qsort(times, (size_t)iters, sizeof(double), cmp_double);
                p50 = times[iters / 2];
            }
            printf("{\"seconds_per_image\": %.9f, \"seconds_p50\": %.9f, \"iterations\": %lld}\n",
                   mean, p50, iters);
        }
        free(times);
        if (rc == 0 && npy_write(pos[1], 4, dims, out, err, sizeof(err)) != 0)
            rc = 1;
    }
    if (rc && err[0])
        fprintf(stderr, "resnetd preprocess: %s\n", err);
    free(buf);
    free(out);
    model_config_free(&mc);
    return rc;
}
