/* graph_shape_ops.c — one shape function per operator (graph_shape_<name>, named
 * by the operator table, graph_ops.h). Values of folded ops: graph_fold.c. */
#include "graph_shape.h"

#include <stdio.h>
#include <string.h>

#define CFAIL(st, ...) GRAPH_FAIL_TO(c->err, c->err_len, st, __VA_ARGS__)

static int bcast(const graph_shape *a_in, const graph_shape *b_in, graph_shape *o) {
    graph_shape ca = *a_in, cb = *b_in; /* o may alias either */
    const graph_shape *a = &ca, *b = &cb;
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    o->ndim = nd;
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return -1;
        o->dims[i] = da == 1 ? db : da;
    }
    return 0;
}

/* The shape functions: c->o starts as a copy of c->x's shape with dtype f32.
 * They set o's dims and dtype, and c->fp when fold() needs parameters. */

engine_status graph_shape_unsupported(graph_shape_call *c) {
    CFAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (%s): unsupported operator", c->n->name,
          c->n->op_type);
}

/* Elementwise ops with one data input (BatchNormalization, Relu, Clip, ...). */
engine_status graph_shape_same(graph_shape_call *c) {
    c->o->dtype = c->x->dtype;
    return ENGINE_OK;
}

/* Conv, MaxPool, AveragePool: output dims from the window geometry. */
static engine_status window_out(graph_shape_call *c, const int64_t *kern, int64_t M) {
    graph_geom gm;
    int nsp = c->x->ndim - 2;
    engine_status st = graph_window_geom(c->n, c->x->dims + 2, nsp, kern, &gm, c->err, c->err_len);
    if (st)
        return st;
    if (M)
        c->o->dims[1] = M;
    for (int i = 0; i < nsp; i++)
        c->o->dims[2 + i] = gm.out[i];
    return ENGINE_OK;
}

static engine_status window_rank(graph_shape_call *c) {
    if (c->x->ndim < 3 || c->x->ndim > 5)
        CFAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (%s): input rank %d", c->n->name, c->n->op_type,
              c->x->ndim);
    return ENGINE_OK;
}

engine_status graph_shape_conv(graph_shape_call *c) {
    const graph_node *n = c->n;
    const graph_shape *x = c->x, *w = &c->s[n->in[1]];
    int64_t kern[3] = {1, 1, 1};
    engine_status st = window_rank(c);
    if (st)
        return st;
    int64_t grp = graph_attr_int(n, "group", 1);
    if (w->ndim != x->ndim || grp < 1 || x->dims[1] != w->dims[1] * grp || w->dims[0] % grp)
        CFAIL(ENGINE_ERR_INVALID, "node '%s' (Conv): weight shape does not match input", n->name);
    for (int i = 0; i < x->ndim - 2; i++)
        kern[i] = w->dims[2 + i];
    return window_out(c, kern, w->dims[0]);
}

/* MaxPool, AveragePool. */
engine_status graph_shape_pool(graph_shape_call *c) {
    int64_t kern[3] = {1, 1, 1};
    engine_status st = window_rank(c);
    if (st)
        return st;
    int nsp = c->x->ndim - 2;
    if (graph_attr_ints(c->n, "kernel_shape", kern, 3) != nsp)
        CFAIL(ENGINE_ERR_INVALID, "node '%s' (%s): attribute 'kernel_shape' needs %d values",
              c->n->name, c->n->op_type, nsp);
    return window_out(c, kern, 0);
}

engine_status graph_shape_global_pool(graph_shape_call *c) {
    for (int i = 2; i < c->x->ndim; i++)
        c->o->dims[i] = 1;
    return ENGINE_OK;
}

/* Add, Mul, Sum: every input broadcast together. */
engine_status graph_shape_broadcast(graph_shape_call *c) {
    const graph_node *n = c->n;
    for (int j = 1; j < n->nin; j++)
        if (bcast(c->o, &c->s[n->in[j]], c->o))
            CFAIL(ENGINE_ERR_INVALID, "node '%s' (%s): shapes do not broadcast", n->name,
                  n->op_type);
    c->o->dtype = c->x->dtype;
    return ENGINE_OK;
}

/* Sub, Div: the two inputs broadcast together. */
engine_status graph_shape_broadcast2(graph_shape_call *c) {
    const graph_node *n = c->n;
    if (bcast(c->o, &c->s[n->in[1]], c->o))
        CFAIL(ENGINE_ERR_INVALID, "node '%s' (%s): shapes do not broadcast", n->name, n->op_type);
    c->o->dtype = c->x->dtype;
    return ENGINE_OK;
}

engine_status graph_shape_flatten(graph_shape_call *c) {
    const graph_shape *x = c->x;
    int ax = (int)graph_attr_int(c->n, "axis", 1);
    if (ax < 0)
        ax += x->ndim;
    if (ax < 0 || ax > x->ndim)
        CFAIL(ENGINE_ERR_INVALID, "node '%s' (Flatten): attribute 'axis' out of range", c->n->name);
    c->o->ndim = 2;
    c->o->dims[0] = graph_numel(x->dims, ax);
    c->o->dims[1] = graph_numel(x->dims + ax, x->ndim - ax);
    c->o->dtype = x->dtype;
    return ENGINE_OK;
}

engine_status graph_shape_reshape(graph_shape_call *c) {
    const graph_node *n = c->n;
    const graph_shape *x = c->x;
    graph_shape *o = c->o;
    int64_t sh[GRAPH_MAX_DIMS];
    int k = n->nin > 1 ? graph_const_ints(&c->s[n->in[1]], sh, GRAPH_MAX_DIMS) : -1;
    if (k < 0)
        CFAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (Reshape): target shape must be constant",
              n->name);
    int64_t total = graph_numel(x->dims, x->ndim), known = 1;
    int neg = -1, allowzero = (int)graph_attr_int(n, "allowzero", 0);
    o->ndim = k;
    for (int i = 0; i < k; i++) {
        if (sh[i] == 0 && !allowzero && i < x->ndim)
            sh[i] = x->dims[i];
        if (sh[i] == -1 && neg < 0)
            neg = i;
        else if (sh[i] < 0)
            CFAIL(ENGINE_ERR_INVALID, "node '%s' (Reshape): bad target dim", n->name);
        else if (__builtin_mul_overflow(known, sh[i], &known))
            CFAIL(ENGINE_ERR_INVALID, "node '%s' (Reshape): target shape overflows", n->name);
        o->dims[i] = sh[i];
    }
    if (neg >= 0)
        o->dims[neg] = known ? total / known : 0;
    if (graph_numel(o->dims, o->ndim) != total)
        CFAIL(ENGINE_ERR_INVALID, "node '%s' (Reshape): %lld elements cannot take the shape",
              n->name, (long long)total);
    o->dtype = x->dtype;
    return ENGINE_OK;
}

engine_status graph_shape_gemm(graph_shape_call *c) {
    const graph_node *n = c->n;
    const graph_shape *x = c->x, *b = &c->s[n->in[1]];
    if (x->ndim != 2 || b->ndim != 2)
        CFAIL(ENGINE_ERR_INVALID, "node '%s' (Gemm): A and B must be 2-D", n->name);
    int ta = (int)graph_attr_int(n, "transA", 0), tb = (int)graph_attr_int(n, "transB", 0);
    if (x->dims[ta ? 0 : 1] != b->dims[tb ? 1 : 0])
        CFAIL(ENGINE_ERR_INVALID, "node '%s' (Gemm): inner dims differ", n->name);
    c->o->dims[0] = x->dims[ta ? 1 : 0];
    c->o->dims[1] = b->dims[tb ? 0 : 1];
    return ENGINE_OK;
}

/* MatMul: numpy semantics (1-D operands promoted, batch dims broadcast). */
engine_status graph_shape_matmul(graph_shape_call *c) {
    const graph_node *n = c->n;
    graph_shape *o = c->o;
    graph_shape a = *c->x, b = c->s[n->in[1]];
    a.owned = b.owned = NULL;
    if (a.ndim < 1 || b.ndim < 1)
        CFAIL(ENGINE_ERR_INVALID, "node '%s' (MatMul): scalar operand", n->name);
    int a1 = a.ndim == 1, b1 = b.ndim == 1;
    if (a1) {
        a.dims[1] = a.dims[0];
        a.dims[0] = 1;
        a.ndim = 2;
    }
    if (b1) {
        b.dims[1] = 1;
        b.ndim = 2;
    }
    if (a.dims[a.ndim - 1] != b.dims[b.ndim - 2])
        CFAIL(ENGINE_ERR_INVALID, "node '%s' (MatMul): inner dims differ", n->name);
    graph_shape ba = a, bb = b;
    ba.ndim -= 2;
    bb.ndim -= 2;
    if (bcast(&ba, &bb, o))
        CFAIL(ENGINE_ERR_INVALID, "node '%s' (MatMul): batch dims do not broadcast", n->name);
    if (!a1)
        o->dims[o->ndim++] = a.dims[a.ndim - 2];
    if (!b1)
        o->dims[o->ndim++] = b.dims[b.ndim - 1];
    return ENGINE_OK;
}

engine_status graph_shape_concat(graph_shape_call *c) {
    const graph_node *n = c->n;
    const graph_shape *x = c->x;
    int ax = graph_axis(graph_attr_int(n, "axis", 0), x->ndim);
    if (ax < 0)
        CFAIL(ENGINE_ERR_INVALID, "node '%s' (Concat): attribute 'axis' out of range", n->name);
    for (int j = 1; j < n->nin; j++) {
        const graph_shape *y = &c->s[n->in[j]];
        if (y->ndim != x->ndim)
            CFAIL(ENGINE_ERR_INVALID, "node '%s' (Concat): ranks differ", n->name);
        for (int d = 0; d < x->ndim; d++)
            if (d != ax && y->dims[d] != x->dims[d])
                CFAIL(ENGINE_ERR_INVALID, "node '%s' (Concat): dims differ", n->name);
        c->o->dims[ax] += y->dims[ax];
    }
    c->o->dtype = x->dtype;
    return ENGINE_OK;
}

engine_status graph_shape_pad(graph_shape_call *c) {
    const graph_node *n = c->n;
    const graph_shape *x = c->x;
    int64_t pads[2 * GRAPH_MAX_DIMS];
    float v;
    engine_status st = graph_pad_params(c->g, n, c->s, pads, &v, c->err, c->err_len);
    if (st)
        return st;
    for (int d = 0; d < x->ndim; d++) {
        if (pads[d] < 0 || pads[d + x->ndim] < 0)
            CFAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (Pad): negative pads", n->name);
        if (pads[d] > (1 << 24) || pads[d + x->ndim] > (1 << 24))
            CFAIL(ENGINE_ERR_INVALID, "node '%s' (Pad): pads too large", n->name);
        c->o->dims[d] = x->dims[d] + pads[d] + pads[d + x->ndim];
    }
    return ENGINE_OK;
}

engine_status graph_shape_slice(graph_shape_call *c) {
    int64_t start[GRAPH_MAX_DIMS], step[GRAPH_MAX_DIMS], len[GRAPH_MAX_DIMS];
    engine_status st = graph_slice_params(c->g, c->n, c->s, start, step, len, c->err, c->err_len);
    if (st)
        return st;
    memcpy(c->o->dims, len, sizeof len);
    memcpy(c->fp, start, sizeof start);
    memcpy(c->fp + GRAPH_MAX_DIMS, step, sizeof step);
    c->o->dtype = c->x->dtype;
    return ENGINE_OK;
}

/* Shape: its value is the input's dims, known here whatever the input. */
engine_status graph_shape_shape(graph_shape_call *c) {
    const graph_shape *x = c->x;
    graph_shape *o = c->o;
    int64_t b = graph_attr_int(c->n, "start", 0), e = graph_attr_int(c->n, "end", x->ndim);
    b = b < 0 ? b + x->ndim : b;
    e = e < 0 ? e + x->ndim : e;
    b = b < 0 ? 0 : (b > x->ndim ? x->ndim : b);
    e = e < b ? b : (e > x->ndim ? x->ndim : e);
    o->ndim = 1;
    o->dims[0] = e - b;
    if (!graph_value_alloc(o, GRAPH_I64))
        return ENGINE_ERR_NOMEM;
    for (int64_t d = b; d < e; d++)
        ((int64_t *)o->owned)[d - b] = x->dims[d];
    c->done = 1;
    return ENGINE_OK;
}

engine_status graph_shape_gather(graph_shape_call *c) {
    const graph_node *n = c->n;
    const graph_shape *x = c->x, *ix = &c->s[n->in[1]];
    graph_shape *o = c->o;
    int ax = graph_axis(graph_attr_int(n, "axis", 0), x->ndim);
    if (ax < 0 || x->ndim - 1 + ix->ndim > GRAPH_MAX_DIMS)
        CFAIL(ENGINE_ERR_INVALID, "node '%s' (Gather): bad axis", n->name);
    o->ndim = 0;
    for (int d = 0; d < ax; d++)
        o->dims[o->ndim++] = x->dims[d];
    for (int d = 0; d < ix->ndim; d++)
        o->dims[o->ndim++] = ix->dims[d];
    for (int d = ax + 1; d < x->ndim; d++)
        o->dims[o->ndim++] = x->dims[d];
    o->dtype = x->dtype;
    return ENGINE_OK;
}

/* Squeeze/Unsqueeze: reads the axes (*na of them) and marks them in mark,
 * normalised for the output's rank (Unsqueeze) or the input's (Squeeze, which
 * may only drop dims of size 1). */
static engine_status mark_axes(graph_shape_call *c, char *mark, int *na) {
    int64_t axes[GRAPH_MAX_DIMS];
    int unsq = c->n->op == OP_UNSQUEEZE;
    engine_status st = graph_axes_param(c->g, c->n, c->s, axes, na, c->err, c->err_len);
    if (st)
        return st;
    int rank = unsq ? c->x->ndim + *na : c->x->ndim;
    if (rank > GRAPH_MAX_DIMS)
        CFAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (Unsqueeze): too many dims", c->n->name);
    for (int k = 0; k < *na; k++) {
        int a = graph_axis(axes[k], rank);
        if (a < 0 || (!unsq && c->x->dims[a] != 1))
            CFAIL(ENGINE_ERR_INVALID, "node '%s' (%s): bad axis", c->n->name, c->n->op_type);
        mark[a] = 1;
    }
    return ENGINE_OK;
}

engine_status graph_shape_unsqueeze(graph_shape_call *c) {
    char mark[GRAPH_MAX_DIMS * 2] = {0};
    int na;
    engine_status st = mark_axes(c, mark, &na);
    if (st)
        return st;
    c->o->ndim = c->x->ndim + na;
    for (int d = 0, j = 0; d < c->o->ndim; d++)
        c->o->dims[d] = mark[d] ? 1 : c->x->dims[j++];
    c->o->dtype = c->x->dtype;
    return ENGINE_OK;
}

engine_status graph_shape_squeeze(graph_shape_call *c) {
    const graph_shape *x = c->x;
    char mark[GRAPH_MAX_DIMS * 2] = {0};
    int na;
    engine_status st = mark_axes(c, mark, &na);
    if (st)
        return st;
    c->o->ndim = 0;
    for (int d = 0; d < x->ndim; d++)
        if (!(na ? mark[d] : x->dims[d] == 1))
            c->o->dims[c->o->ndim++] = x->dims[d];
    c->o->dtype = x->dtype;
    return ENGINE_OK;
}

/* Cast: same shape; the target type is applied when the value folds. */
engine_status graph_shape_cast(graph_shape_call *c) {
    return ENGINE_OK;
}

engine_status graph_shape_constantofshape(graph_shape_call *c) {
    int64_t sh[GRAPH_MAX_DIMS];
    int k = graph_const_ints(c->x, sh, GRAPH_MAX_DIMS);
    if (k < 0)
        CFAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (ConstantOfShape): shape must be constant",
              c->n->name);
    c->o->ndim = k;
    memcpy(c->o->dims, sh, (size_t)k * sizeof sh[0]);
    c->done = 1;
    return graph_fold(c);
}

engine_status graph_shape_transpose(graph_shape_call *c) {
    const graph_shape *x = c->x;
    int64_t *fp = c->fp;
    int np = graph_attr_ints(c->n, "perm", fp, GRAPH_MAX_DIMS);
    if (!np)
        for (int d = 0; d < x->ndim; d++)
            fp[np++] = x->ndim - 1 - d;
    if (np != x->ndim)
        CFAIL(ENGINE_ERR_INVALID, "node '%s' (Transpose): perm has %d values", c->n->name, np);
    for (int d = 0; d < np; d++) {
        int dup = 0;
        for (int e = 0; e < d; e++)
            dup |= fp[e] == fp[d];
        if (fp[d] < 0 || fp[d] >= x->ndim || dup)
            CFAIL(ENGINE_ERR_INVALID, "node '%s' (Transpose): bad perm", c->n->name);
        c->o->dims[d] = x->dims[fp[d]];
    }
    c->o->dtype = x->dtype;
    return ENGINE_OK;
}
