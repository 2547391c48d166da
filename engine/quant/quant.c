/*
 * quant.c — calibration statistics, written as the scales file (see quant.h).
 *
 * DESIGN. Each tensor keeps min, max and a 2048-bin histogram of |x| over
 * [0, top). When a value reaches top, top doubles and adjacent bins merge, so
 * one pass over the calibration images suffices and the bins stay at most
 * 2x coarser than with a known maximum. The percentile is read as the upper
 * edge of the bin where the cumulative count reaches it, capped at max|x|.
 */
#include "quant.h"

#include "engine_internal.h"
#include "quant_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QBINS 2048

typedef struct {
    double count;
    float min, max, top;
    double *hist; /* QBINS, allocated on first use */
} qtensor;

struct quant_stats {
    const engine_model *m;
    int nt;
    qtensor *t;
    int oom;
};

quant_stats *quant_stats_create(const engine_model *m) {
    quant_stats *qs = calloc(1, sizeof *qs);
    if (!qs)
        return NULL;
    qs->m = m;
    qs->nt = engine_model_num_tensors(m);
    qs->t = calloc((size_t)qs->nt + 1, sizeof *qs->t);
    if (!qs->t) {
        free(qs);
        return NULL;
    }
    return qs;
}

void quant_stats_free(quant_stats *qs) {
    if (!qs)
        return;
    for (int i = 0; i < qs->nt; i++)
        free(qs->t[i].hist);
    free(qs->t);
    free(qs);
}

static void grow(qtensor *q, float v) {
    while (v >= q->top) {
        for (int i = 0; i < QBINS / 2; i++)
            q->hist[i] = q->hist[2 * i] + q->hist[2 * i + 1];
        memset(q->hist + QBINS / 2, 0, QBINS / 2 * sizeof *q->hist);
        q->top *= 2.f;
    }
}

static void on_tensor(void *ud, int t, const float *x, size_t count) {
    quant_stats *qs = ud;
    if (t < 0 || t >= qs->nt || !count)
        return;
    qtensor *q = &qs->t[t];
    if (!q->hist) {
        if (!(q->hist = calloc(QBINS, sizeof *q->hist))) {
            qs->oom = 1;
            return;
        }
        q->min = INFINITY;
        q->max = -INFINITY;
        q->top = 0.f;
    }
    float mn = q->min, mx = q->max, amax = 0.f;
    for (size_t i = 0; i < count; i++) {
        mn = fminf(mn, x[i]);
        mx = fmaxf(mx, x[i]);
        amax = fmaxf(amax, fabsf(x[i]));
    }
    q->min = mn;
    q->max = mx;
    if (q->top <= 0.f) /* first batch fixes the initial bin width */
        q->top = amax > 0.f ? amax * 1.0001f : 1e-6f;
    grow(q, amax);
    float inv = QBINS / q->top;
    for (size_t i = 0; i < count; i++) {
        int k = (int)(fabsf(x[i]) * inv);
        q->hist[k < QBINS ? k : QBINS - 1] += 1.0;
    }
    q->count += (double)count;
}

engine_status quant_stats_observe(quant_stats *qs, engine_ctx *c, const float *input, int n,
                                  char *err, size_t err_len) {
    engine_model_info info;
    engine_model_get_info(qs->m, &info);
    float *out =
        malloc((size_t)n * (size_t)(info.num_classes > 0 ? info.num_classes : 1) * sizeof *out);
    if (!out) {
        snprintf(err, err_len, "out of memory");
        return ENGINE_ERR_NOMEM;
    }
    engine_status st = engine_run_observe(c, input, n, out, on_tensor, qs, err, err_len);
    free(out);
    if (st == ENGINE_OK && qs->oom) {
        snprintf(err, err_len, "out of memory for calibration statistics");
        st = ENGINE_ERR_NOMEM;
    }
    return st;
}

static float percentile_of(const qtensor *q, double pct) {
    float amax = fmaxf(fabsf(q->min), fabsf(q->max));
    if (pct >= 100.0)
        return amax;
    double want = q->count * pct / 100.0, cum = 0.0;
    for (int k = 0; k < QBINS; k++) {
        cum += q->hist[k];
        if (cum >= want) {
            float edge = (float)(k + 1) * q->top / QBINS;
            return edge < amax ? edge : amax;
        }
    }
    return amax;
}

int quant_stats_count(const quant_stats *qs) {
    int k = 0;
    for (int i = 0; i < qs->nt; i++)
        k += qs->t[i].count > 0;
    return k;
}

typedef struct {
    const quant_stats *qs;
    double pct;
} stats_rows;

/* The line of tensor i: only tensors that were observed have one. */
static int stats_row(void *ud, int i, quant_row *r) {
    const stats_rows *sr = ud;
    const qtensor *q = &sr->qs->t[i];
    if (q->count <= 0)
        return 0;
    *r = (quant_row){engine_model_tensor_name(sr->qs->m, i), q->min, q->max,
                     percentile_of(q, sr->pct)};
    return 1;
}

engine_status quant_stats_write(const quant_stats *qs, const char *path, double percentile,
                                char *err, size_t err_len) {
    if (!quant_stats_count(qs)) {
        snprintf(err, err_len, "no activations were observed");
        return ENGINE_ERR_ARG;
    }
    stats_rows sr = {qs, percentile};
    return quant_file_write(path, percentile, qs->nt, stats_row, &sr, err, err_len);
}
