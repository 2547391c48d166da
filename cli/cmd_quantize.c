/*
 * cmd_quantize.c — `resnetd quantize --model M --calibration DIR --out OUT`:
 * post-training static int8 quantization.
 *
 * The calibration images (every regular file in DIR, sorted by name, at most
 * --max-images) are decoded and preprocessed exactly as the server does
 * (the model's config.json), run through the fp32 model, and the range of
 * every activation is recorded (engine/quant). OUT becomes a model directory
 * that resnetd serves like any other: model.onnx (and the source directory's
 * other files) copied, labels.txt, config.json with "precision": "int8", and
 * the ranges in quant.tsv. The int8 model is loaded once at the end to check it.
 *
 * Range: the 99.99th percentile of |x| by default (--percentile 100 = the
 * maximum). A handful of extreme activations in a few calibration images
 * would otherwise stretch the 8-bit grid; clipping 0.01% of values costs less
 * accuracy than the coarser grid over everything else.
 *
 * Exit codes: 0 done; 1 a calibration image cannot be read or decoded, or
 * the model / OUT cannot be loaded / written; 2 bad usage, an unreadable
 * model config, a missing or empty calibration directory.
 */
#include "commands.h"

#include "engine.h"
#include "file.h"
#include "model_config.h"
#include "quant/quant.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define Q_BATCH 8

static void q_usage(FILE *f) {
    fprintf(f,
            "usage: resnetd quantize --model M --calibration DIR --out OUT\n"
            "                        [--percentile P (99.99; 100 = max)] [--max-images N (256)]\n");
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Regular files of dir (not dot files), sorted; at most max. -1 when dir cannot be read. */
static int list_images(const char *dir, int max, char ***out, char *err, size_t err_len) {
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, err_len, "%s: %s", dir, strerror(errno));
        return -1;
    }
    char **v = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(len);
        struct stat st;
        if (!path)
            break;
        snprintf(path, len, "%s/%s", dir, e->d_name);
        if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) { /* sub-directories etc. */
            free(path);
            continue;
        } /* an entry that cannot even be stat'ed is kept: reading it reports why */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                free(path);
                break;
            }
            v = nv;
        }
        v[n++] = path;
    }
    closedir(d);
    if (n)
        qsort(v, (size_t)n, sizeof *v, name_cmp);
    for (int i = max; i < n; i++)
        free(v[i]);
    *out = v;
    return n < max ? n : max;
}

/* Reads a whole file (errno set when it cannot); 0 or -1. */
static int read_file(const char *path, void **data, size_t *len) {
    char err[300];
    return file_read_all(path, 0, data, len, err, sizeof err);
}

static int copy_file(const char *from, const char *to) {
    void *data = NULL;
    size_t len = 0;
    if (read_file(from, &data, &len))
        return -1;
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(data, 1, len, f) == len;
    if (f && fclose(f) != 0)
        ok = 0;
    free(data);
    return ok ? 0 : -1;
}

static void join(char *buf, size_t n, const char *a, const char *b) {
    snprintf(buf, n, "%s/%s", a, b);
}

/* model.onnx, and for a model directory its other files (labels, external data). */
static int copy_model(const model_config *mc, const char *model_arg, const char *out, char *err,
                      size_t err_len) {
    char to[4096], from[4096];
    join(to, sizeof to, out, "model.onnx");
    if (copy_file(mc->onnx_path, to)) {
        snprintf(err, err_len, "cannot copy %.400s to %.400s", mc->onnx_path, to);
        return -1;
    }
    struct stat st;
    if (stat(model_arg, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    DIR *d = opendir(mc->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "config.json") ||
            !strcmp(e->d_name, ENGINE_QUANT_FILE) || !strcmp(e->d_name, "model.onnx"))
            continue;
        join(from, sizeof from, mc->dir, e->d_name);
        join(to, sizeof to, out, e->d_name);
        if (stat(from, &st) == 0 && S_ISREG(st.st_mode) && copy_file(from, to)) {
            closedir(d);
            snprintf(err, err_len, "cannot copy %.400s to %.400s", from, to);
            return -1;
        }
    }
    if (d)
        closedir(d);
    return 0;
}

static int write_config(const model_config *mc, const char *out, char *err, size_t err_len) {
    char path[4096];
    join(path, sizeof path, out, "config.json");
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, err_len, "%.400s: %s", path, strerror(errno));
        return -1;
    }
    const img_params *p = &mc->input;
    const char *color = p->color == IMG_COLOR_GRAY  ? "gray"
                        : p->color == IMG_COLOR_BGR ? "bgr"
                                                    : "rgb";
    fprintf(f,
            "{\n  \"precision\": \"int8\",\n  \"max_batch\": %d,\n  \"input\": {\n"
            "    \"color\": \"%s\", \"resize\": %d, \"crop\": %d, \"scale\": %.9g,\n"
            "    \"mean\": [%.9g, %.9g, %.9g], \"std\": [%.9g, %.9g, %.9g],\n"
            "    \"exif_orientation\": %s, \"fast_path\": %s\n  }\n}\n",
            mc->max_batch, color, p->resize, p->crop_h, p->scale, p->mean[0], p->mean[1],
            p->mean[2], p->std[0], p->std[1], p->std[2], p->exif_orientation ? "true" : "false",
            p->fast_path ? "true" : "false");
    if (fclose(f) != 0) {
        snprintf(err, err_len, "%.400s: write failed", path);
        return -1;
    }
    return 0;
}

typedef struct {
    const char *model, *calib, *out;
    double pct;
    int max_images;
} q_args;

static int parse_args(int argc, char **argv, q_args *a) {
    *a = (q_args){.pct = 99.99, .max_images = 256};
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "--help") || !strcmp(k, "-h")) {
            q_usage(stdout);
            return 1;
        }
        if (!v) {
            fprintf(stderr, "resnetd quantize: option '%s' needs a value\n", k);
            return 2;
        }
        char *end = NULL;
        if (!strcmp(k, "--model"))
            a->model = v;
        else if (!strcmp(k, "--calibration"))
            a->calib = v;
        else if (!strcmp(k, "--out"))
            a->out = v;
        else if (!strcmp(k, "--percentile")) {
            a->pct = strtod(v, &end);
            if (*end || !(a->pct >= 50.0 && a->pct <= 100.0)) {
                fprintf(stderr, "resnetd quantize: --percentile '%s' is not in 50..100\n", v);
                return 2;
            }
        } else if (!strcmp(k, "--max-images")) {
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 100000) {
                fprintf(stderr, "resnetd quantize: --max-images '%s' is not in 1..100000\n", v);
                return 2;
            }
            a->max_images = (int)n;
        } else {
            fprintf(stderr, "resnetd quantize: unknown option '%s'\n", k);
            q_usage(stderr);
            return 2;
        }
    }
    if (!a->model || !a->calib || !a->out) {
        fprintf(stderr, "resnetd quantize: --model, --calibration and --out are required\n");
        q_usage(stderr);
        return 2;
    }
    return 0;
}

/* Calibrates on the images; returns the exit code. */
static int calibrate(const model_config *mc, char **files, int nfiles, quant_stats *qs,
                     engine_ctx *c, const engine_model_info *info) {
    int per = info->channels * info->height * info->width;
    int batch = info->fixed_batch ? info->fixed_batch : Q_BATCH;
    float *in = malloc((size_t)batch * (size_t)per * sizeof *in);
    char err[1024] = "";
    if (!in) {
        fprintf(stderr, "resnetd quantize: out of memory\n");
        return 1;
    }
    int rc = 0, fill = 0;
    for (int i = 0; rc == 0 && i < nfiles; i++) {
        void *data = NULL;
        size_t len = 0;
        if (read_file(files[i], &data, &len)) {
            fprintf(stderr, "resnetd quantize: %s: cannot read calibration image: %s\n", files[i],
                    strerror(errno));
            rc = 1;
            break;
        }
        img_status is =
            img_preprocess(data, len, &mc->input, in + (size_t)fill * per, err, sizeof err);
        free(data);
        if (is != IMG_OK) {
            fprintf(stderr, "resnetd quantize: %s: not a usable calibration image (%s): %s\n",
                    files[i], img_status_str(is), err);
            rc = 1;
            break;
        }
        fill++;
        int last = i == nfiles - 1;
        if (fill < batch && !last)
            continue;
        int n = fill;
        if (info->fixed_batch) /* a fixed batch is padded with the batch's first image */
            for (; n < batch; n++)
                memcpy(in + (size_t)n * per, in, (size_t)per * sizeof *in);
        if (quant_stats_observe(qs, c, in, n, err, sizeof err) != ENGINE_OK) {
            fprintf(stderr, "resnetd quantize: calibration run failed: %s\n", err);
            rc = 1;
        }
        fill = 0;
        fprintf(stderr, "quantize: %d/%d images\n", i + 1, nfiles);
    }
    free(in);
    return rc;
}

int cmd_quantize(int argc, char **argv) {
    q_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    char err[1024] = "";
    model_config mc;
    if (model_config_load(a.model, &mc, err, sizeof err)) {
        fprintf(stderr, "resnetd quantize: %s\n", err);
        return 2;
    }
    char **files = NULL;
    int nfiles = list_images(a.calib, a.max_images, &files, err, sizeof err);
    if (nfiles <= 0) {
        if (nfiles < 0)
            fprintf(stderr, "resnetd quantize: calibration directory %s\n", err);
        else
            fprintf(stderr, "resnetd quantize: calibration directory %s holds no image files\n",
                    a.calib);
        free(files);
        model_config_free(&mc);
        return 2;
    }
    engine_load_params lp = engine_load_default_params();
    lp.max_batch = Q_BATCH;
    engine_model *m = NULL;
    engine_ctx *c = NULL;
    quant_stats *qs = NULL;
    engine_model_info info;
    rc = 1;
    if (engine_model_load(mc.onnx_path, &lp, &m, err, sizeof err) != ENGINE_OK ||
        engine_ctx_create(m, NULL, &c, err, sizeof err) != ENGINE_OK) {
        fprintf(stderr, "resnetd quantize: %s\n", err);
        goto out;
    }
    engine_model_get_info(m, &info);
    if (!(qs = quant_stats_create(m))) {
        fprintf(stderr, "resnetd quantize: out of memory\n");
        goto out;
    }
    if (calibrate(&mc, files, nfiles, qs, c, &info))
        goto out;
    char qpath[4096];
    join(qpath, sizeof qpath, a.out, ENGINE_QUANT_FILE);
    if (mkdir(a.out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "resnetd quantize: %s: %s\n", a.out, strerror(errno));
        goto out;
    }
    if (copy_model(&mc, a.model, a.out, err, sizeof err) ||
        write_config(&mc, a.out, err, sizeof err) ||
        quant_stats_write(qs, qpath, a.pct, err, sizeof err) != ENGINE_OK) {
        fprintf(stderr, "resnetd quantize: %s\n", err);
        goto out;
    }
    /* the result must load as int8 */
    char mpath[4096];
    engine_model *m8 = NULL;
    join(mpath, sizeof mpath, a.out, "model.onnx");
    lp.quant_path = qpath;
    if (engine_model_load(mpath, &lp, &m8, err, sizeof err) != ENGINE_OK) {
        fprintf(stderr, "resnetd quantize: the int8 model does not load: %s\n", err);
        goto out;
    }
    engine_model_free(m8);
    printf("{\"out\": \"%s\", \"images\": %d, \"tensors\": %d, \"percentile\": %.6g}\n", a.out,
           nfiles, quant_stats_count(qs), a.pct);
    rc = 0;
out:
    quant_stats_free(qs);
    engine_ctx_free(c);
    engine_model_free(m);
    for (int i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    model_config_free(&mc);
    return rc;
}
