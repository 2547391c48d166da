/*
 * onnx_node_runner.c — runs ONNX's backend node tests (Debian's
 * libonnx-testdata: data/node/test_* with model.onnx and test_data_set_N/
 * input_K.pb, output_K.pb) through engine_run_tensors and compares every
 * output with the reference (|ours - ref| <= ATOL + RTOL * |ref|).
 *
 *   engine_onnx_node_runner DATA_DIR SKIP_FILE [SUBSTRING]
 *
 * A case is ours when its name starts with the prefix of an operator the
 * engine supports (table below). Each such case must pass unless SKIP_FILE
 * lists it ("test_name  reason"). A listed case that passes is reported so
 * the list stays honest. Exit 0 when no case failed.
 */
#include "engine.h"
#include "onnx/onnx_load.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ATOL 1e-4
#define RTOL 1e-4
#define MAX_IO 16

/* test-name prefixes of the supported operators */
static const char *const ops[] = {
    "test_conv",     "test_basic_conv",   "test_batchnorm",   "test_relu",
    "test_clip",     "test_maxpool",      "test_averagepool", "test_globalaveragepool",
    "test_add",      "test_sum",          "test_mul",         "test_flatten",
    "test_reshape",  "test_gemm",         "test_matmul",      "test_softmax",
    "test_identity", "test_dropout",      "test_constant",    "test_concat",
    "test_pad",      "test_constant_pad", "test_slice",
};

static int is_ours(const char *name) {
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strncmp(name, ops[i], strlen(ops[i])) == 0)
            return 1;
    return 0;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = 0;
        *len = (size_t)n;
    }
    return b;
}

/* Skip list: one case per line, "name reason..."; '#' starts a comment. */
static char *skips;
static int skipped(const char *name) {
    size_t l = strlen(name);
    for (const char *p = skips; p && (p = strstr(p, name)); p += l)
        if ((p == skips || p[-1] == '\n') && (p[l] == ' ' || p[l] == '\t' || p[l] == '\n'))
            return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct {
    float *data;
    int ndim;
    int64_t dims[ENGINE_MAX_DIMS];
} tensor;

static int load_pb(const char *path, tensor *t, char *err, size_t elen) {
    size_t len;
    char *b = read_file(path, &len), name[128];
    if (!b) {
        snprintf(err, elen, "%.200s: cannot read", path);
        return -1;
    }
    engine_status st =
        onnx_load_tensor(b, len, name, sizeof name, &t->ndim, t->dims, &t->data, err, elen);
    free(b);
    return st == ENGINE_OK ? 0 : -1;
}

static int64_t numel(const int64_t *d, int n) {
    int64_t c = 1;
    for (int i = 0; i < n; i++)
        c *= d[i];
    return c;
}

/* Runs one case directory; returns 0 pass, 1 fail. Prints why on failure. */
static int run_case(const char *dir, const char *name, char *why, size_t wl) {
    char path[1024 + 64], err[512] = "";
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    engine_model *m = NULL;
    engine_load_params lp = engine_load_default_params();
    engine_status st = engine_model_load(path, &lp, &m, err, sizeof err);
    if (st != ENGINE_OK) {
        snprintf(why, wl, "load: %s", err);
        return 1;
    }
    engine_ctx *c = NULL;
    engine_ctx_params cp = engine_ctx_default_params();
    cp.threads = 1;
    int rc = 0;
    if (engine_ctx_create(m, &cp, &c, err, sizeof err) != ENGINE_OK) {
        snprintf(why, wl, "ctx: %s", err);
        engine_model_free(m);
        return 1;
    }
    int ni = engine_model_num_inputs(m), no = engine_model_num_outputs(m);
    for (int set = 0; rc == 0 && ni <= MAX_IO && no <= MAX_IO; set++) {
        tensor in[MAX_IO] = {0}, ref[MAX_IO] = {0};
        float *out[MAX_IO] = {0};
        snprintf(path, sizeof path, "%s/test_data_set_%d/input_0.pb", dir, set);
        FILE *probe = fopen(path, "rb");
        if (!probe)
            break;
        fclose(probe);
        int n = 1;
        for (int i = 0; i < ni && rc == 0; i++) {
            snprintf(path, sizeof path, "%s/test_data_set_%d/input_%d.pb", dir, set, i);
            if (load_pb(path, &in[i], err, sizeof err)) {
                snprintf(why, wl, "set %d input %d: %s", set, i, err);
                rc = 1;
            } else if (i == 0) {
                n = in[0].ndim > 0 ? (int)in[0].dims[0] : 1;
            }
        }
        for (int o = 0; o < no && rc == 0; o++) {
            snprintf(path, sizeof path, "%s/test_data_set_%d/output_%d.pb", dir, set, o);
            if (load_pb(path, &ref[o], err, sizeof err)) {
                snprintf(why, wl, "set %d output %d: %s", set, o, err);
                rc = 1;
            } else {
                out[o] = calloc((size_t)numel(ref[o].dims, ref[o].ndim) + 1, sizeof(float));
            }
        }
        if (rc == 0) {
            const float *ins[MAX_IO];
            for (int i = 0; i < ni; i++)
                ins[i] = in[i].data;
            st = engine_run_tensors(c, n, ins, out, err, sizeof err);
            if (st != ENGINE_OK) {
                snprintf(why, wl, "run: %s", err);
                rc = 1;
            }
        }
        for (int o = 0; o < no && rc == 0; o++) {
            engine_tensor_desc d;
            engine_model_output_desc(m, o, &d);
            int64_t cnt = numel(ref[o].dims, ref[o].ndim);
            if (d.ndim != ref[o].ndim) {
                snprintf(why, wl, "output %d: rank %d, expected %d", o, d.ndim, ref[o].ndim);
                rc = 1;
            }
            for (int64_t k = 0; k < cnt && rc == 0; k++) {
                double a = out[o][k], r = ref[o].data[k];
                if (!(fabs(a - r) <= ATOL + RTOL * fabs(r)) && !(isnan(a) && isnan(r))) {
                    snprintf(why, wl, "set %d output %d[%lld]: got %.7g, expected %.7g", set, o,
                             (long long)k, a, r);
                    rc = 1;
                }
            }
        }
        for (int i = 0; i < MAX_IO; i++) {
            free(in[i].data);
            free(ref[i].data);
            free(out[i]);
        }
    }
    (void)name;
    engine_ctx_free(c);
    engine_model_free(m);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s DATA_DIR SKIP_FILE [SUBSTRING]\n", argv[0]);
        return 2;
    }
    size_t sl;
    skips = read_file(argv[2], &sl);
    if (!skips) {
        fprintf(stderr, "%s: cannot read skip list\n", argv[2]);
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (!d) {
        fprintf(stderr, "%s: cannot open\n", argv[1]);
        return 2;
    }
    char **names = NULL;
    size_t nn = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, "test_", 5) != 0 || !is_ours(e->d_name))
            continue;
        if (argc > 3 && !strstr(e->d_name, argv[3]))
            continue;
        if (nn == cap) {
            cap = cap ? cap * 2 : 256;
            names = realloc(names, cap * sizeof *names);
            if (!names)
                return 2;
        }
        names[nn++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, nn, sizeof *names, cmp_str);
    int pass = 0, fail = 0, skip = 0;
    for (size_t i = 0; i < nn; i++) {
        char dir[600], why[768] = "";
        snprintf(dir, sizeof dir, "%s/%s", argv[1], names[i]);
        int sk = skipped(names[i]);
        int rc = run_case(dir, names[i], why, sizeof why);
        if (sk) {
            skip++;
            if (rc == 0)
                printf("NOTE %s passes but is in the skip list\n", names[i]);
        } else if (rc) {
            fail++;
            printf("FAIL %s: %s\n", names[i], why);
        } else {
            pass++;
            printf("ok   %s\n", names[i]);
        }
        free(names[i]);
    }
    free(names);
    free(skips);
    printf("onnx node tests: %d passed, %d failed, %d skipped (listed in the skip file)\n", pass,
           fail, skip);
    return fail ? 1 : 0;
}
