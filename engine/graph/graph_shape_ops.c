/* graph_shape_ops.c — per-operator shape rules and constant folding. */
#include "graph_shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(st, ...)                                                                              \
    do {                                                                                           \
        snprintf(err, err_len, __VA_ARGS__);                                                       \
        return st;                                                                                 \
    } while (0)

/* double -> int64, saturating: an out-of-range (or NaN) cast is undefined. */
static int64_t sat_i64(double v) {
    return !(v == v) ? 0 : v >= 0x1p63 ? INT64_MAX : v < -0x1p63 ? INT64_MIN : (int64_t)v;
}

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

static int64_t bidx(const graph_shape *a, const graph_shape *o, int64_t k) {
    int64_t idx = 0, mul = 1;
    for (int i = o->ndim - 1; i >= 0; i--) {
        int64_t c = k % o->dims[i];
        k /= o->dims[i];
        int ia = i - (o->ndim - a->ndim);
        if (ia < 0)
            continue;
        if (a->dims[ia] != 1)
            idx += c * mul;
        mul *= a->dims[ia];
    }
    return idx;
}

int graph_const_ints(const graph_shape *s, int64_t *out, int cap) {
    if (!s->is_const || s->dtype != GRAPH_I64 || graph_numel(s->dims, s->ndim) > cap)
        return -1;
    int k = (int)graph_numel(s->dims, s->ndim);
    memcpy(out, s->i, (size_t)k * sizeof *out);
    return k;
}

static void *alloc_value(graph_shape *o, graph_dtype dt) {
    int64_t cnt = graph_numel(o->dims, o->ndim);
    o->owned = malloc((size_t)(cnt > 0 ? cnt : 1) * 8);
    if (!o->owned)
        return NULL;
    o->is_const = 1;
    o->dtype = dt;
    if (dt == GRAPH_F32)
        o->f = o->owned;
    else
        o->i = o->owned;
    return o->owned;
}

static double val(const graph_shape *s, int64_t k) {
    return s->dtype == GRAPH_F32 ? (double)s->f[k] : (double)s->i[k];
}

/* Value of a folded op whose inputs are all constant; layout = element order. */
static engine_status fold(const graph_node *n, graph_shape *s, graph_shape *o, const int64_t *fp,
                          char *err, size_t err_len) {
    const graph_shape *x = &s[n->in[0]];
    int64_t cnt = graph_numel(o->dims, o->ndim);
    if (cnt > (1 << 20))
        return ENGINE_OK; /* too big to fold: run it */
    graph_dtype dt = x->dtype;
    if (n->op == OP_CONSTANTOFSHAPE) {
        const graph_attr *va = graph_attr_find(n, "value");
        dt = va && va->n == GRAPH_I64 ? GRAPH_I64 : GRAPH_F32;
    }
    if (n->op == OP_CAST)
        dt = graph_attr_int(n, "to", 1) == 1 || graph_attr_int(n, "to", 1) == 11 ? GRAPH_F32
                                                                                 : GRAPH_I64;
    if (!alloc_value(o, dt))
        return ENGINE_ERR_NOMEM;
    for (int64_t k = 0; k < cnt; k++) {
        double v = 0;
        switch (n->op) {
        case OP_ADD:
        case OP_MUL:
        case OP_SUB:
        case OP_DIV: {
            const graph_shape *y = &s[n->in[1]];
            double a = val(x, bidx(x, o, k)), b = val(y, bidx(y, o, k));
            v = n->op == OP_ADD ? a + b : n->op == OP_MUL ? a * b : n->op == OP_SUB ? a - b : a / b;
            if (n->op == OP_DIV && dt == GRAPH_I64 && b == 0)
                FAIL(ENGINE_ERR_INVALID, "node '%s' (Div): integer division by zero", n->name);
            break;
        }
        case OP_CONSTANTOFSHAPE: {
            const graph_attr *va = graph_attr_find(n, "value");
            v = va ? (va->n == GRAPH_I64 ? (double)va->i : (double)va->f) : 0.0;
            break;
        }
        case OP_TRANSPOSE:
        case OP_SLICE: {
            int64_t r = k, src = 0, is = 1;
            int64_t idx[GRAPH_MAX_DIMS];
            for (int d = o->ndim - 1; d >= 0; d--) {
                idx[d] = r % o->dims[d];
                r /= o->dims[d];
            }
            for (int d = x->ndim - 1; d >= 0; d--) {
                int64_t c = n->op == OP_SLICE ? fp[d] + idx[d] * fp[GRAPH_MAX_DIMS + d] : 0;
                if (n->op == OP_TRANSPOSE)
                    for (int j = 0; j < o->ndim; j++)
                        if (fp[j] == d)
                            c = idx[j];
                src += c * is;
                is *= x->dims[d];
            }
            v = val(x, src);
            break;
        }
        case OP_GATHER: {
            const graph_shape *ix = &s[n->in[1]];
            int ax = graph_axis(graph_attr_int(n, "axis", 0), x->ndim);
            int64_t inner = graph_numel(x->dims + ax + 1, x->ndim - ax - 1);
            int64_t nidx = graph_numel(ix->dims, ix->ndim);
            int64_t in_ = k % inner, rest = k / inner;
            int64_t j = rest % nidx, outer = rest / nidx;
            int64_t id = ix->dtype == GRAPH_I64 ? ix->i[j] : sat_i64(ix->f[j]);
            if (id < 0)
                id += x->dims[ax];
            if (id < 0 || id >= x->dims[ax])
                FAIL(ENGINE_ERR_INVALID, "node '%s' (Gather): index %lld out of range", n->name,
                     (long long)id);
            v = val(x, (outer * x->dims[ax] + id) * inner + in_);
            break;
        }
        case OP_CONCAT: {
            int ax = graph_axis(graph_attr_int(n, "axis", 0), o->ndim);
            int64_t inner = graph_numel(o->dims + ax + 1, o->ndim - ax - 1);
            int64_t c = (k / inner) % o->dims[ax], outer = k / inner / o->dims[ax];
            for (int j = 0; j < n->nin; j++) {
                const graph_shape *y = &s[n->in[j]];
                if (c < y->dims[ax]) {
                    v = val(y, (outer * y->dims[ax] + c) * inner + k % inner);
                    break;
                }
                c -= y->dims[ax];
            }
            break;
        }
        default: /* pure reshapes: element order unchanged */
            v = val(x, k);
            break;
        }
        if (dt == GRAPH_F32)
            ((float *)o->owned)[k] = (float)v;
        else
            ((int64_t *)o->owned)[k] = sat_i64(v);
    }
    return ENGINE_OK;
}

static int all_const(const graph_node *n, const graph_shape *s) {
    for (int j = 0; j < n->nin; j++)
        if (n->in[j] >= 0 && !s[n->in[j]].is_const)
            return 0;
    return 1;
}

/* How many leading inputs of n must be present (an empty ONNX input name is
   stored as -1); the rest are optional and read only when present. */
static int required_inputs(const graph_node *n) {
    int k;
    switch (n->op) {
    case OP_CLIP:
    case OP_DROPOUT:
    case OP_SQUEEZE:
        k = 1;
        break;
    case OP_CONV:
    case OP_GEMM:
    case OP_PAD:
        k = 2;
        break;
    case OP_SLICE:
        k = 3;
        break;
    default:
        k = n->nin;
        break;
    }
    return k < n->nin ? k : n->nin;
}

engine_status graph_infer_node(const graph *g, const graph_node *n, graph_shape *s, char *err,
                               size_t err_len) {
    if (n->nin < 1)
        FAIL(ENGINE_ERR_INVALID, "node '%s': no input", n->name);
    for (int j = 0, req = required_inputs(n); j < req; j++)
        if (n->in[j] < 0)
            FAIL(ENGINE_ERR_INVALID, "node '%s': required input %d is empty", n->name, j);
    const graph_shape *x = &s[n->in[0]];
    graph_shape *o = &s[n->out[0]];
    int foldable = 0;
    int64_t fp[2 * GRAPH_MAX_DIMS] = {0}; /* fold parameters: perm, or slice start/step */
    o->ndim = x->ndim;
    memcpy(o->dims, x->dims, sizeof o->dims);
    o->dtype = GRAPH_F32;
    switch (n->op) {
    case OP_BATCHNORM:
    case OP_RELU:
    case OP_CLIP:
    case OP_SOFTMAX:
    case OP_IDENTITY:
    case OP_DROPOUT:
        foldable = n->op == OP_IDENTITY || n->op == OP_DROPOUT;
        o->dtype = x->dtype;
        break;
    case OP_CONV:
    case OP_MAXPOOL:
    case OP_AVGPOOL: {
        int64_t kern[3] = {1, 1, 1};
        if (x->ndim < 3 || x->ndim > 5)
            FAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (%s): input rank %d", n->name, n->op_type,
                 x->ndim);
        int nsp = x->ndim - 2;
        int64_t M = 0;
        if (n->op == OP_CONV) {
            const graph_shape *w = &s[n->in[1]];
            int64_t grp = graph_attr_int(n, "group", 1);
            if (w->ndim != x->ndim || grp < 1 || x->dims[1] != w->dims[1] * grp || w->dims[0] % grp)
                FAIL(ENGINE_ERR_INVALID, "node '%s' (Conv): weight shape does not match input",
                     n->name);
            for (int i = 0; i < nsp; i++)
                kern[i] = w->dims[2 + i];
            M = w->dims[0];
        } else if (graph_attr_ints(n, "kernel_shape", kern, 3) != nsp) {
            FAIL(ENGINE_ERR_INVALID, "node '%s' (%s): attribute 'kernel_shape' needs %d values",
                 n->name, n->op_type, nsp);
        }
        graph_geom gm;
        engine_status st = graph_window_geom(n, x->dims + 2, nsp, kern, &gm, err, err_len);
        if (st)
            return st;
        if (M)
            o->dims[1] = M;
        for (int i = 0; i < nsp; i++)
            o->dims[2 + i] = gm.out[i];
        break;
    }
    case OP_GLOBALAVGPOOL:
        for (int i = 2; i < x->ndim; i++)
            o->dims[i] = 1;
        break;
    case OP_ADD:
    case OP_MUL:
    case OP_SUM:
        for (int j = 1; j < n->nin; j++)
            if (bcast(o, &s[n->in[j]], o))
                FAIL(ENGINE_ERR_INVALID, "node '%s' (%s): shapes do not broadcast", n->name,
                     n->op_type);
        o->dtype = x->dtype;
        foldable = n->op != OP_SUM;
        break;
    case OP_FLATTEN: {
        int ax = (int)graph_attr_int(n, "axis", 1);
        if (ax < 0)
            ax += x->ndim;
        if (ax < 0 || ax > x->ndim)
            FAIL(ENGINE_ERR_INVALID, "node '%s' (Flatten): attribute 'axis' out of range", n->name);
        o->ndim = 2;
        o->dims[0] = graph_numel(x->dims, ax);
        o->dims[1] = graph_numel(x->dims + ax, x->ndim - ax);
        o->dtype = x->dtype;
        foldable = 1;
        break;
    }
    case OP_RESHAPE: {
        int64_t sh[GRAPH_MAX_DIMS];
        int k = n->nin > 1 ? graph_const_ints(&s[n->in[1]], sh, GRAPH_MAX_DIMS) : -1;
        if (k < 0)
            FAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (Reshape): target shape must be constant",
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
                FAIL(ENGINE_ERR_INVALID, "node '%s' (Reshape): bad target dim", n->name);
            else if (__builtin_mul_overflow(known, sh[i], &known))
                FAIL(ENGINE_ERR_INVALID, "node '%s' (Reshape): target shape overflows", n->name);
            o->dims[i] = sh[i];
        }
        if (neg >= 0)
            o->dims[neg] = known ? total / known : 0;
        if (graph_numel(o->dims, o->ndim) != total)
            FAIL(ENGINE_ERR_INVALID, "node '%s' (Reshape): %lld elements cannot take the shape",
                 n->name, (long long)total);
        o->dtype = x->dtype;
        foldable = 1;
        break;
    }
    case OP_GEMM: {
        const graph_shape *b = &s[n->in[1]];
        if (x->ndim != 2 || b->ndim != 2)
            FAIL(ENGINE_ERR_INVALID, "node '%s' (Gemm): A and B must be 2-D", n->name);
        int ta = (int)graph_attr_int(n, "transA", 0), tb = (int)graph_attr_int(n, "transB", 0);
        if (x->dims[ta ? 0 : 1] != b->dims[tb ? 1 : 0])
            FAIL(ENGINE_ERR_INVALID, "node '%s' (Gemm): inner dims differ", n->name);
        o->dims[0] = x->dims[ta ? 1 : 0];
        o->dims[1] = b->dims[tb ? 0 : 1];
        break;
    }
    case OP_MATMUL: {
        graph_shape a = *x, b = s[n->in[1]];
        a.owned = b.owned = NULL;
        if (a.ndim < 1 || b.ndim < 1)
            FAIL(ENGINE_ERR_INVALID, "node '%s' (MatMul): scalar operand", n->name);
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
            FAIL(ENGINE_ERR_INVALID, "node '%s' (MatMul): inner dims differ", n->name);
        graph_shape ba = a, bb = b;
        ba.ndim -= 2;
        bb.ndim -= 2;
        if (bcast(&ba, &bb, o))
            FAIL(ENGINE_ERR_INVALID, "node '%s' (MatMul): batch dims do not broadcast", n->name);
        if (!a1)
            o->dims[o->ndim++] = a.dims[a.ndim - 2];
        if (!b1)
            o->dims[o->ndim++] = b.dims[b.ndim - 1];
        break;
    }
    case OP_CONCAT: {
        int ax = graph_axis(graph_attr_int(n, "axis", 0), x->ndim);
        if (ax < 0)
            FAIL(ENGINE_ERR_INVALID, "node '%s' (Concat): attribute 'axis' out of range", n->name);
        for (int j = 1; j < n->nin; j++) {
            const graph_shape *y = &s[n->in[j]];
            if (y->ndim != x->ndim)
                FAIL(ENGINE_ERR_INVALID, "node '%s' (Concat): ranks differ", n->name);
            for (int d = 0; d < x->ndim; d++)
                if (d != ax && y->dims[d] != x->dims[d])
                    FAIL(ENGINE_ERR_INVALID, "node '%s' (Concat): dims differ", n->name);
            o->dims[ax] += y->dims[ax];
        }
        o->dtype = x->dtype;
        foldable = 1;
        break;
    }
    case OP_PAD: {
        int64_t pads[2 * GRAPH_MAX_DIMS];
        float v;
        engine_status st = graph_pad_params(g, n, s, pads, &v, err, err_len);
        if (st)
            return st;
        for (int d = 0; d < x->ndim; d++) {
            if (pads[d] < 0 || pads[d + x->ndim] < 0)
                FAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (Pad): negative pads", n->name);
            if (pads[d] > (1 << 24) || pads[d + x->ndim] > (1 << 24))
                FAIL(ENGINE_ERR_INVALID, "node '%s' (Pad): pads too large", n->name);
            o->dims[d] = x->dims[d] + pads[d] + pads[d + x->ndim];
        }
        break;
    }
    case OP_SLICE: {
        int64_t start[GRAPH_MAX_DIMS], step[GRAPH_MAX_DIMS], len[GRAPH_MAX_DIMS];
        engine_status st = graph_slice_params(g, n, s, start, step, len, err, err_len);
        if (st)
            return st;
        memcpy(o->dims, len, sizeof len);
        memcpy(fp, start, sizeof start);
        memcpy(fp + GRAPH_MAX_DIMS, step, sizeof step);
        o->dtype = x->dtype;
        foldable = 1;
        break;
    }
    case OP_SHAPE: {
        int64_t b = graph_attr_int(n, "start", 0), e = graph_attr_int(n, "end", x->ndim);
        b = b < 0 ? b + x->ndim : b;
        e = e < 0 ? e + x->ndim : e;
        b = b < 0 ? 0 : (b > x->ndim ? x->ndim : b);
        e = e < b ? b : (e > x->ndim ? x->ndim : e);
        o->ndim = 1;
        o->dims[0] = e - b;
        if (!alloc_value(o, GRAPH_I64))
            return ENGINE_ERR_NOMEM;
        for (int64_t d = b; d < e; d++)
            ((int64_t *)o->owned)[d - b] = x->dims[d];
        return ENGINE_OK;
    }
    case OP_GATHER: {
        const graph_shape *ix = &s[n->in[1]];
        int ax = graph_axis(graph_attr_int(n, "axis", 0), x->ndim);
        if (ax < 0 || x->ndim - 1 + ix->ndim > GRAPH_MAX_DIMS)
            FAIL(ENGINE_ERR_INVALID, "node '%s' (Gather): bad axis", n->name);
        o->ndim = 0;
        for (int d = 0; d < ax; d++)
            o->dims[o->ndim++] = x->dims[d];
        for (int d = 0; d < ix->ndim; d++)
            o->dims[o->ndim++] = ix->dims[d];
        for (int d = ax + 1; d < x->ndim; d++)
            o->dims[o->ndim++] = x->dims[d];
        o->dtype = x->dtype;
        foldable = 1;
        break;
    }
    case OP_UNSQUEEZE:
    case OP_SQUEEZE: {
        int64_t axes[GRAPH_MAX_DIMS];
        int na;
        engine_status st = graph_axes_param(g, n, s, axes, &na, err, err_len);
        if (st)
            return st;
        char mark[GRAPH_MAX_DIMS * 2] = {0};
        if (n->op == OP_UNSQUEEZE) {
            o->ndim = x->ndim + na;
            if (o->ndim > GRAPH_MAX_DIMS)
                FAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (Unsqueeze): too many dims", n->name);
            for (int k = 0; k < na; k++) {
                int a = graph_axis(axes[k], o->ndim);
                if (a < 0)
                    FAIL(ENGINE_ERR_INVALID, "node '%s' (Unsqueeze): bad axis", n->name);
                mark[a] = 1;
            }
            for (int d = 0, j = 0; d < o->ndim; d++)
                o->dims[d] = mark[d] ? 1 : x->dims[j++];
        } else {
            for (int k = 0; k < na; k++) {
                int a = graph_axis(axes[k], x->ndim);
                if (a < 0 || x->dims[a] != 1)
                    FAIL(ENGINE_ERR_INVALID, "node '%s' (Squeeze): bad axis", n->name);
                mark[a] = 1;
            }
            o->ndim = 0;
            for (int d = 0; d < x->ndim; d++)
                if (!(na ? mark[d] : x->dims[d] == 1))
                    o->dims[o->ndim++] = x->dims[d];
        }
        o->dtype = x->dtype;
        foldable = 1;
        break;
    }
    case OP_CAST:
        foldable = 1;
        break;
    case OP_CONSTANTOFSHAPE: {
        int64_t sh[GRAPH_MAX_DIMS];
        int k = graph_const_ints(x, sh, GRAPH_MAX_DIMS);
        if (k < 0)
            FAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (ConstantOfShape): shape must be constant",
                 n->name);
        o->ndim = k;
        memcpy(o->dims, sh, (size_t)k * sizeof sh[0]);
        return fold(n, s, o, fp, err, err_len);
    }
    case OP_SUB:
    case OP_DIV:
        if (bcast(o, &s[n->in[1]], o))
            FAIL(ENGINE_ERR_INVALID, "node '%s' (%s): shapes do not broadcast", n->name,
                 n->op_type);
        o->dtype = x->dtype;
        foldable = 1;
        break;
    case OP_TRANSPOSE: {
        int np = graph_attr_ints(n, "perm", fp, GRAPH_MAX_DIMS);
        if (!np)
            for (int d = 0; d < x->ndim; d++)
                fp[np++] = x->ndim - 1 - d;
        if (np != x->ndim)
            FAIL(ENGINE_ERR_INVALID, "node '%s' (Transpose): perm has %d values", n->name, np);
        for (int d = 0; d < np; d++) {
            int dup = 0;
            for (int e = 0; e < d; e++)
                dup |= fp[e] == fp[d];
            if (fp[d] < 0 || fp[d] >= x->ndim || dup)
                FAIL(ENGINE_ERR_INVALID, "node '%s' (Transpose): bad perm", n->name);
            o->dims[d] = x->dims[fp[d]];
        }
        o->dtype = x->dtype;
        foldable = 1;
        break;
    }
    default:
        FAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (%s): unsupported operator", n->name, n->op_type);
    }
    for (int j = 1; j < n->nout; j++)
        if (n->out[j] >= 0) {
            s[n->out[j]].ndim = o->ndim;
            memcpy(s[n->out[j]].dims, o->dims, sizeof o->dims);
        }
    if (foldable && all_const(n, s))
        return fold(n, s, o, fp, err, err_len);
    if (n->op >= OP_SHAPE || (o->dtype == GRAPH_I64))
        FAIL(ENGINE_ERR_UNSUPPORTED,
             "node '%s' (%s): integer or shape computation on runtime tensors", n->name,
             n->op_type);
    return ENGINE_OK;
}
