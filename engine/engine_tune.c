/*
 * engine_tune.c — engine_tune_convs (engine.h): each Conv's algorithm chosen
 * by timing. Only the public API and engine_internal.h's hooks.
 *
 * DESIGN. One model per variant: the static rules (what a load without
 * choices runs) and every Conv forced to direct, channels-last, Winograd
 * (engine_load_params.conv_force; a Conv where the forced algorithm is not
 * available runs its static choice). Each variant is its own load, so its
 * weights are prepared for its kernels as a load with those choices would
 * prepare them. The variants' runs are interleaved (one run of each per
 * round) so a change of the machine's load touches them alike. A run waits
 * after every step; a node's time is the sum of its steps (the reorders a
 * channels-last conv adds included). Per Conv node, every run of every
 * variant is a sample of the algorithm that node ran in it; the medians are
 * compared, the static choice kept unless another is TUNE_MARGIN faster.
 */
#include "engine.h"
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TUNE_VARIANTS ENGINE_CONV_NALGO /* index = conv_force (0: the static rules) */
#define TUNE_WARMUP 2
/* A node keeps its static choice unless another algorithm's median is this
 * much lower: differences within run-to-run noise (1x1 convs measure within
 * 1-3 % direct vs channels-last on a busy machine) are not worth a switch. */
#define TUNE_MARGIN 0.03

typedef struct {
    engine_model *m;
    engine_ctx *c;
    double *sec;  /* runs x nn: node seconds per run */
    int *algo;    /* nn: the algorithm each node ran */
    double *tmp;  /* nn */
    int *tmpalgo; /* nn */
} tune_variant;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void tune_free(tune_variant *v) {
    for (int i = 0; i < TUNE_VARIANTS; i++) {
        engine_ctx_free(v[i].c);
        engine_model_free(v[i].m);
        free(v[i].sec);
        free(v[i].algo);
        free(v[i].tmp);
        free(v[i].tmpalgo);
    }
}

/* Nodes whose names are empty or not unique cannot be keyed: 0 for them. */
static int name_usable(const engine_model *m, int i) {
    const char *s = engine_model_node_name(m, i);
    if (!s[0] || strlen(s) >= sizeof(((engine_conv_choice *)0)->node))
        return 0;
    for (int k = 0; k < engine_model_num_nodes(m); k++)
        if (k != i && strcmp(s, engine_model_node_name(m, k)) == 0)
            return 0;
    return 1;
}

/* The choices from the samples (v[0].m's nodes; the loads give the same
 * graph, checked by name). */
static engine_status tune_pick(tune_variant *v, int nn, int runs, engine_conv_timing **out,
                               int *nout, char *err, size_t err_len) {
    engine_conv_timing *res = calloc((size_t)nn + 1, sizeof *res);
    double *buf = malloc(sizeof(double) * (size_t)(runs * TUNE_VARIANTS + 1));
    int n = 0;
    if (!res || !buf) {
        free(res);
        free(buf);
        snprintf(err, err_len, "out of memory");
        return ENGINE_ERR_NOMEM;
    }
    for (int i = 0; i < nn; i++) {
        if (!v[0].algo[i] || !name_usable(v[0].m, i))
            continue;
        engine_conv_timing *t = &res[n];
        int avail = 0;
        for (int a = 0; a < ENGINE_CONV_NALGO; a++) {
            int cnt = 0;
            t->ms[a] = -1;
            for (int k = 0; a > 0 && k < TUNE_VARIANTS; k++)
                if (v[k].algo[i] == a && strcmp(engine_model_node_name(v[k].m, i),
                                                engine_model_node_name(v[0].m, i)) == 0)
                    for (int r = 0; r < runs; r++)
                        buf[cnt++] = v[k].sec[(size_t)r * (size_t)nn + (size_t)i];
            if (!cnt)
                continue;
            qsort(buf, (size_t)cnt, sizeof *buf, cmp_double);
            t->ms[a] = 1e3 * (cnt % 2 ? buf[cnt / 2] : 0.5 * (buf[cnt / 2 - 1] + buf[cnt / 2]));
            if (!avail++ || t->ms[a] < t->ms[t->algo])
                t->algo = a;
        }
        if (avail < 2)
            continue;
        snprintf(t->node, sizeof t->node, "%s", engine_model_node_name(v[0].m, i));
        t->default_algo = v[0].algo[i];
        if (t->ms[t->default_algo] >= 0 &&
            t->ms[t->algo] > (1 - TUNE_MARGIN) * t->ms[t->default_algo])
            t->algo = t->default_algo;
        n++;
    }
    free(buf);
    *out = res;
    *nout = n;
    return ENGINE_OK;
}

engine_status engine_tune_convs(const char *path, const engine_load_params *p, int batch,
                                int threads, int runs, engine_conv_timing **out, int *nout,
                                char *err, size_t err_len) {
    tune_variant v[TUNE_VARIANTS];
    memset(v, 0, sizeof v);
    *out = NULL;
    *nout = 0;
    if (runs < 1)
        runs = 1;
    engine_load_params lp = p ? *p : engine_load_default_params();
    lp.conv_choices = NULL;
    lp.nconv_choices = 0;
    if (batch > lp.max_batch)
        lp.max_batch = batch;
    engine_ctx_params cp = engine_ctx_default_params();
    cp.threads = threads;
    engine_status st = ENGINE_OK;
    int nn = 0;
    size_t in_len = 0, out_len = 0;
    float *input = NULL, *output = NULL;
    for (int k = 0; st == ENGINE_OK && k < TUNE_VARIANTS; k++) {
        lp.conv_force = k;
        st = engine_model_load(path, &lp, &v[k].m, err, err_len);
        if (st == ENGINE_OK)
            st = engine_ctx_create(v[k].m, &cp, &v[k].c, err, err_len);
        if (st != ENGINE_OK)
            break;
        engine_model_info info;
        engine_model_get_info(v[k].m, &info);
        if (k == 0) {
            nn = engine_model_num_nodes(v[k].m);
            in_len =
                (size_t)batch * (size_t)info.channels * (size_t)info.height * (size_t)info.width;
            out_len = (size_t)batch * (size_t)info.num_classes;
            input = malloc(sizeof(float) * (in_len + 1));
            output = malloc(sizeof(float) * (out_len + 1));
            for (size_t i = 0; input && i < in_len; i++) /* any values: only time counts */
                input[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
        }
        if (engine_model_num_nodes(v[k].m) != nn) {
            snprintf(err, err_len, "the variants' graphs differ");
            st = ENGINE_ERR_INVALID;
            break;
        }
        v[k].sec = malloc(sizeof(double) * (size_t)runs * (size_t)nn + 1);
        v[k].algo = calloc((size_t)nn + 1, sizeof(int));
        v[k].tmp = calloc((size_t)nn + 1, sizeof(double));
        v[k].tmpalgo = calloc((size_t)nn + 1, sizeof(int));
        if (!input || !output || !v[k].sec || !v[k].algo || !v[k].tmp || !v[k].tmpalgo) {
            snprintf(err, err_len, "out of memory");
            st = ENGINE_ERR_NOMEM;
        }
        for (int r = 0; st == ENGINE_OK && r < TUNE_WARMUP; r++) /* builds the plan too */
            st = engine_run_node_times(v[k].c, input, batch, output, v[k].tmp, v[k].algo, err,
                                       err_len);
    }
    for (int r = 0; st == ENGINE_OK && r < runs; r++)
        for (int k = 0; st == ENGINE_OK && k < TUNE_VARIANTS; k++)
            st = engine_run_node_times(v[k].c, input, batch, output,
                                       v[k].sec + (size_t)r * (size_t)nn, v[k].tmpalgo, err,
                                       err_len);
    if (st == ENGINE_OK)
        st = tune_pick(v, nn, runs, out, nout, err, err_len);
    free(input);
    free(output);
    tune_free(v);
    return st;
}
