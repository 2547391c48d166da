/*
 * graph_qdq.c — QDQ models (QuantizeLinear/DequantizeLinear around float
 * operators, as ONNX Runtime's quantizer writes them) lowered onto the int8
 * kernels that quant.tsv models use (see graph.h, graph_lower_qdq).
 *
 * DESIGN. A QDQ model is a float model plus fake-quantization: weights are
 * stored as integers behind a DequantizeLinear, and each activation passes
 * through QuantizeLinear -> DequantizeLinear, which rounds it to an 8-bit
 * grid and clamps it to that grid's span. The int8 planner wants the float
 * graph and one range per activation, so:
 *   - DequantizeLinear of a constant becomes a float constant; int8 weights
 *     with zero point 0 also keep 1/scale per output channel (wq), so the
 *     planner quantizes them back to exactly the stored integers;
 *   - an activation pair Q(x) -> DQ becomes x itself (the DQ turns into an
 *     Identity, which the passes drop) and x records the grid as a range:
 *     u8 with zero point 0 -> range 255 * scale (the u8 grid exactly), s8
 *     with zero point 0 -> 127 * scale (the s8 grid), otherwise the larger
 *     end of [(qmin - zp) * scale, (qmax - zp) * scale] (an asymmetric grid
 *     runs on the symmetric s8 grid of the same span: close, not exact);
 *   - the clamp is semantic when the grid starts at 0 (ONNX Runtime removes a
 *     Relu whose output it quantizes that way), so a Relu is inserted unless
 *     x is already non-negative; it then fuses into the producing conv;
 *   - a tensor known to be non-negative (a Relu's output) records minimum 0
 *     even on a symmetric grid, so the planner may hold it as u8.
 */
#include "graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ONNX TensorProto.DataType values (the graph keeps integers as int64) */
enum { QT_NONE = 0, QT_UINT8 = 2, QT_INT8 = 3, QT_INT32 = 6 };

#define FAIL(...) GRAPH_FAIL_TO(err, err_len, ENGINE_ERR_UNSUPPORTED, __VA_ARGS__)

typedef struct {
    const float *s;   /* scale, n values */
    const int64_t *z; /* zero point, n values, NULL = 0 */
    int n, axis, zt;  /* zt: the zero point's type (QT_UINT8 default) */
} qparams;

static int qmin_of(int zt) {
    return zt == QT_INT8 ? -128 : zt == QT_UINT8 ? 0 : INT32_MIN;
}
static int qmax_of(int zt) {
    return zt == QT_INT8 ? 127 : zt == QT_UINT8 ? 255 : INT32_MAX;
}

/* Reads a Q/DQ node's scale and zero point for input x (rank xnd). */
static engine_status read_params(const graph *g, const graph_node *n, int xnd, qparams *q,
                                 char *err, size_t err_len) {
    if (n->nin < 2 || n->in[0] < 0 || n->in[1] < 0)
        FAIL("node '%s' (%s): needs x and a scale", n->name, n->op_type);
    if (graph_attr_int(n, "block_size", 0) != 0)
        FAIL("node '%s' (%s): blocked quantization (block_size) is not supported", n->name,
             n->op_type);
    const graph_tensor *s = &g->t[n->in[1]];
    const graph_tensor *z = n->nin > 2 && n->in[2] >= 0 ? &g->t[n->in[2]] : NULL;
    if (!s->is_const || s->dtype != GRAPH_F32 || s->count < 1 || s->ndim > 1)
        FAIL("node '%s' (%s): the scale must be a float constant scalar or 1-D tensor", n->name,
             n->op_type);
    q->s = s->f;
    q->n = (int)s->count;
    q->z = NULL;
    q->zt = QT_UINT8;
    if (z) {
        if (!z->is_const || z->dtype != GRAPH_I64 || z->count != s->count)
            FAIL("node '%s' (%s): the zero point must be an integer constant shaped like the "
                 "scale",
                 n->name, n->op_type);
        q->z = z->i;
        q->zt = z->src_dtype;
    }
    for (int k = 0; k < q->n; k++)
        if (!(q->s[k] > 0.f) || !isfinite(q->s[k]))
            FAIL("node '%s' (%s): scale %g is not a positive finite number", n->name, n->op_type,
                 (double)q->s[k]);
    int64_t ax = graph_attr_int(n, "axis", 1);
    if (ax < 0)
        ax += xnd;
    q->axis = (int)ax;
    if (q->n > 1 && (s->ndim != 1 || ax < 0 || ax >= xnd))
        FAIL("node '%s' (%s): per-axis scale with an invalid axis", n->name, n->op_type);
    return ENGINE_OK;
}

/* DequantizeLinear of a constant integer tensor -> float constant. */
static engine_status fold_const(graph *g, int ni, char *err, size_t err_len) {
    graph_node *n = &g->n[ni];
    graph_tensor *x = &g->t[n->in[0]];
    qparams q;
    engine_status st = read_params(g, n, x->ndim, &q, err, err_len);
    if (st)
        return st;
    int xt = x->src_dtype;
    if (x->dtype != GRAPH_I64 || (xt != QT_UINT8 && xt != QT_INT8 && xt != QT_INT32))
        FAIL("node '%s' (%s): '%s' must be an int8, uint8 or int32 constant", n->name, n->op_type,
             x->name);
    if (q.z && q.zt != xt)
        FAIL("node '%s' (%s): the zero point's type differs from the input's", n->name, n->op_type);
    if (q.n > 1 && x->dims[q.axis] != q.n)
        FAIL("node '%s' (%s): %d scales for axis %d of size %lld", n->name, n->op_type, q.n, q.axis,
             (long long)x->dims[q.axis]);
    int64_t inner = 1;
    for (int d = q.axis + 1; d < x->ndim; d++)
        inner *= x->dims[d];
    graph_tensor *y = &g->t[n->out[0]];
    if (y->is_output)
        FAIL("node '%s' (%s): a constant graph output is not supported", n->name, n->op_type);
    float *f = malloc((size_t)(x->count ? x->count : 1) * sizeof *f);
    if (!f)
        return ENGINE_ERR_NOMEM;
    int asym = 0;
    for (int64_t k = 0; k < x->count; k++) {
        int c = q.n > 1 ? (int)((k / inner) % q.n) : 0;
        int64_t zp = q.z ? q.z[c] : 0;
        asym |= zp != 0;
        f[k] = (float)(x->i[k] - zp) * q.s[c];
    }
    float *wq = NULL;
    int wq_n = 0;
    if (xt == QT_INT8 && !asym && x->ndim >= 1 && (q.n == 1 || q.axis == 0)) {
        wq_n = (int)x->dims[0];
        if (!(wq = malloc((size_t)(wq_n ? wq_n : 1) * sizeof *wq))) {
            free(f);
            return ENGINE_ERR_NOMEM;
        }
        for (int o = 0; o < wq_n; o++)
            wq[o] = 1.f / q.s[q.n > 1 ? o : 0];
    }
    y->is_const = 1;
    y->dtype = GRAPH_F32;
    y->ndim = x->ndim;
    memcpy(y->dims, x->dims, sizeof y->dims);
    y->count = x->count;
    y->f = f;
    y->wq = wq;
    y->wq_n = wq_n;
    y->asym = asym;
    y->producer = -1;
    n->dead = 1;
    return ENGINE_OK;
}

/* 1 when t can never be negative (so a clamp at zero changes nothing). */
static int nonneg(const graph *g, int t, int depth) {
    if (t < 0 || depth > 64)
        return 0;
    const graph_tensor *x = &g->t[t];
    if (x->qrange > 0.f)
        return x->qmin >= 0.f;
    if (x->producer < 0)
        return 0;
    const graph_node *p = &g->n[x->producer];
    switch (p->op) {
    case OP_RELU:
        return 1;
    case OP_CLIP: {
        const graph_attr *a = graph_attr_find(p, "min");
        if (a)
            return a->f >= 0.f;
        const graph_tensor *m = p->nin > 1 && p->in[1] >= 0 ? &g->t[p->in[1]] : NULL;
        return m && m->is_const && m->f && m->count == 1 && m->f[0] >= 0.f;
    }
    case OP_MAXPOOL:
    case OP_AVGPOOL:
    case OP_GLOBALAVGPOOL:
    case OP_FLATTEN:
    case OP_RESHAPE:
    case OP_IDENTITY:
    case OP_DROPOUT:
        return nonneg(g, p->in[0], depth + 1);
    default:
        return 0;
    }
}

/* A Relu from x to a new tensor; returns the new tensor or -1 on OOM. */
static int add_relu(graph *g, int x) {
    char name[300];
    snprintf(name, sizeof name, "%.240s/qdq_relu", g->t[x].name);
    for (int k = 0; graph_tensor_find(g, name) >= 0; k++)
        snprintf(name, sizeof name, "%.240s/qdq_relu_%d", g->t[x].name, k);
    int r = graph_tensor_get(g, name);
    int ni = r < 0 ? -1 : graph_node_add(g, name, "Relu", 1, 1);
    if (ni < 0)
        return -1;
    graph_node *n = &g->n[ni];
    n->op = OP_RELU;
    n->in[0] = x;
    n->out[0] = r;
    g->t[r].producer = ni;
    g->t[r].dtype = GRAPH_F32;
    g->t[r].ndim = -1;
    return r;
}

/* Activation pair Q(x) -> DQ(node di): DQ becomes Identity of x (or of a
 * Relu of x) and x records the range. rel caches the Relu per Q node. */
static engine_status lower_pair(graph *g, int di, int *rel, char *err, size_t err_len) {
    graph_node *d = &g->n[di];
    int qi = g->t[d->in[0]].producer;
    graph_node *q = &g->n[qi];
    int x = q->in[0];
    qparams pq, pd;
    engine_status st = read_params(g, q, g->t[x].ndim > 0 ? g->t[x].ndim : 4, &pq, err, err_len);
    if (!st)
        st = read_params(g, d, g->t[x].ndim > 0 ? g->t[x].ndim : 4, &pd, err, err_len);
    if (st)
        return st;
    if (pq.n != 1)
        FAIL("node '%s' (QuantizeLinear): per-channel activation scales are not supported "
             "(the int8 kernels take one scale per activation)",
             q->name);
    if (pq.zt != QT_UINT8 && pq.zt != QT_INT8)
        FAIL("node '%s' (QuantizeLinear): only 8-bit activations (uint8, int8) are supported",
             q->name);
    if (pd.n != 1 || pd.s[0] != pq.s[0] || (pd.z ? pd.z[0] : 0) != (pq.z ? pq.z[0] : 0) ||
        (pd.z && pd.zt != pq.zt))
        FAIL("node '%s' (DequantizeLinear): its scale or zero point differs from those of "
             "'%s' (QuantizeLinear) that feeds it",
             d->name, q->name);
    if (g->t[x].is_const)
        FAIL("node '%s' (QuantizeLinear): quantizing a constant is not supported (store the "
             "integers with a DequantizeLinear)",
             q->name);
    int zp = pq.z ? (int)pq.z[0] : 0, lo_q = qmin_of(pq.zt), hi_q = qmax_of(pq.zt);
    if (zp < lo_q || zp > hi_q)
        FAIL("node '%s' (QuantizeLinear): zero point %d is out of range", q->name, zp);
    float s = pq.s[0], lo = (float)(lo_q - zp) * s, hi = (float)(hi_q - zp) * s;
    int src = x, pos = nonneg(g, x, 0);
    if (pos)
        lo = fmaxf(lo, 0.f); /* e.g. a Relu's output on a symmetric int8 grid */
    if (lo >= 0.f && !pos) {
        if (rel[qi] < 0 && (rel[qi] = add_relu(g, x)) < 0)
            return ENGINE_ERR_NOMEM;
        src = rel[qi];
        d = &g->n[di]; /* add_relu may move the node array */
    }
    graph_tensor *t = &g->t[src];
    if (!(t->qrange > 0.f)) {
        t->qmin = lo;
        t->qmax = hi;
        t->qrange = zp == 0 ? (float)hi_q * s : fmaxf(fabsf(lo), fabsf(hi));
    }
    graph_node_clear_attrs(d);
    d->op = OP_IDENTITY;
    d->nin = 1;
    d->in[0] = src;
    free(d->op_type);
    d->op_type = strdup("Identity");
    return d->op_type ? ENGINE_OK : ENGINE_ERR_NOMEM;
}

/* After lowering: no live node may read an integer tensor, no Conv may take
 * asymmetric weights, no graph output may be integer. */
static engine_status check_left(const graph *g, char *err, size_t err_len) {
    for (int i = 0; i < g->nn; i++) {
        const graph_node *n = &g->n[i];
        if (n->dead)
            continue;
        if (n->op == OP_QUANTIZE) {
            const graph_tensor *y = &g->t[n->out[0]];
            if (y->is_output)
                FAIL("node '%s' (QuantizeLinear): the graph output '%s' is an integer tensor "
                     "(resnetd outputs float)",
                     n->name, y->name);
            continue;
        }
        for (int j = 0; j < n->nin; j++) {
            int t = n->in[j];
            if (t < 0)
                continue;
            int p = g->t[t].producer;
            if (p >= 0 && g->n[p].op == OP_QUANTIZE)
                FAIL("node '%s' (%s) reads '%s', an integer output of QuantizeLinear; only "
                     "QuantizeLinear -> DequantizeLinear pairs are supported",
                     n->name, n->op_type, g->t[t].name);
        }
        if (n->op == OP_CONV && n->nin > 1 && n->in[1] >= 0 && g->t[n->in[1]].asym)
            FAIL("node '%s' (Conv): its weights '%s' have a non-zero zero point; the int8 "
                 "kernels take symmetric int8 weights (ONNX Runtime: weight_type=QInt8)",
                 n->name, g->t[n->in[1]].name);
    }
    return ENGINE_OK;
}

engine_status graph_lower_qdq(graph *g, int *has_qdq, char *err, size_t err_len) {
    *has_qdq = 0;
    int nn0 = g->nn, found = 0;
    for (int i = 0; i < nn0; i++)
        found |= g->n[i].op == OP_QUANTIZE || g->n[i].op == OP_DEQUANTIZE;
    if (!found)
        return ENGINE_OK;
    int *rel = malloc((size_t)nn0 * sizeof *rel);
    if (!rel)
        return ENGINE_ERR_NOMEM;
    for (int i = 0; i < nn0; i++)
        rel[i] = -1;
    engine_status st = ENGINE_OK;
    for (int i = 0; i < nn0 && !st; i++) {
        graph_node *n = &g->n[i];
        if (n->dead || n->op != OP_DEQUANTIZE)
            continue;
        int x = n->nin > 0 ? n->in[0] : -1;
        int p = x >= 0 ? g->t[x].producer : -1;
        if (x >= 0 && g->t[x].is_const) {
            st = fold_const(g, i, err, err_len);
        } else if (p >= 0 && g->n[p].op == OP_QUANTIZE) {
            st = lower_pair(g, i, rel, err, err_len);
            *has_qdq = 1;
        } else {
            snprintf(err, err_len,
                     "node '%s' (DequantizeLinear): '%s' is neither a constant nor the output of "
                     "a QuantizeLinear (integer graph inputs are not supported)",
                     n->name, x >= 0 ? g->t[x].name : "");
            st = ENGINE_ERR_UNSUPPORTED;
        }
    }
    free(rel);
    if (!st)
        st = check_left(g, err, err_len);
    if (st)
        return st;
    int added = g->nn > nn0;
    for (int i = 0; i < nn0; i++)
        if (g->n[i].op == OP_QUANTIZE)
            g->n[i].dead = 1;
    graph_drop_dead_nodes(g);
    return added ? graph_toposort(g, err, err_len) : ENGINE_OK;
}
