/* graph_fold.c — the values of folded nodes (OPF_FOLD with constant inputs, and
 * ConstantOfShape): one value rule per family of ops, chosen in
 * fold_rule_of. Below graph_shape_ops.c, which calls it. */
#include "graph_shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFAIL(st, ...)                                                                             \
    do {                                                                                           \
        snprintf(c->err, c->err_len, __VA_ARGS__);                                                 \
        return st;                                                                                 \
    } while (0)

/* double -> int64, saturating: an out-of-range (or NaN) cast is undefined. */
static int64_t sat_i64(double v) {
    return !(v == v) ? 0 : v >= 0x1p63 ? INT64_MAX : v < -0x1p63 ? INT64_MIN : (int64_t)v;
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

void *graph_value_alloc(graph_shape *o, graph_dtype dt) {
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

/* The value rules of folded ops: element k of the output (element order of
 * c->o's dims) into *v. dt is the output's type. */
typedef engine_status (*fold_rule)(const graph_shape_call *c, graph_dtype dt, int64_t k, double *v);

/* Add, Mul, Sub, Div with broadcasting. */
static engine_status fold_arith(const graph_shape_call *c, graph_dtype dt, int64_t k, double *v) {
    const graph_node *n = c->n;
    const graph_shape *x = c->x, *y = &c->s[n->in[1]];
    double a = val(x, bidx(x, c->o, k)), b = val(y, bidx(y, c->o, k));
    *v = n->op == OP_ADD ? a + b : n->op == OP_MUL ? a * b : n->op == OP_SUB ? a - b : a / b;
    if (n->op == OP_DIV && dt == GRAPH_I64 && b == 0)
        CFAIL(ENGINE_ERR_INVALID, "node '%s' (Div): integer division by zero", n->name);
    return ENGINE_OK;
}

/* ConstantOfShape: the value attribute everywhere. */
static engine_status fold_fill(const graph_shape_call *c, graph_dtype dt, int64_t k, double *v) {
    const graph_attr *va = graph_attr_find(c->n, "value");
    *v = va ? (va->n == GRAPH_I64 ? (double)va->i : (double)va->f) : 0.0;
    return ENGINE_OK;
}

/* Transpose (fp: perm) and Slice (fp: start, then step per dim). */
static engine_status fold_remap(const graph_shape_call *c, graph_dtype dt, int64_t k, double *v) {
    const graph_shape *x = c->x, *o = c->o;
    const int64_t *fp = c->fp;
    int slice = c->n->op == OP_SLICE;
    int64_t r = k, src = 0, is = 1;
    int64_t idx[GRAPH_MAX_DIMS];
    for (int d = o->ndim - 1; d >= 0; d--) {
        idx[d] = r % o->dims[d];
        r /= o->dims[d];
    }
    for (int d = x->ndim - 1; d >= 0; d--) {
        int64_t at = slice ? fp[d] + idx[d] * fp[GRAPH_MAX_DIMS + d] : 0;
        if (!slice)
            for (int j = 0; j < o->ndim; j++)
                if (fp[j] == d)
                    at = idx[j];
        src += at * is;
        is *= x->dims[d];
    }
    *v = val(x, src);
    return ENGINE_OK;
}

static engine_status fold_gather(const graph_shape_call *c, graph_dtype dt, int64_t k, double *v) {
    const graph_node *n = c->n;
    const graph_shape *x = c->x, *ix = &c->s[n->in[1]];
    int ax = graph_axis(graph_attr_int(n, "axis", 0), x->ndim);
    int64_t inner = graph_numel(x->dims + ax + 1, x->ndim - ax - 1);
    int64_t nidx = graph_numel(ix->dims, ix->ndim);
    int64_t in_ = k % inner, rest = k / inner;
    int64_t j = rest % nidx, outer = rest / nidx;
    int64_t id = ix->dtype == GRAPH_I64 ? ix->i[j] : sat_i64(ix->f[j]);
    if (id < 0)
        id += x->dims[ax];
    if (id < 0 || id >= x->dims[ax])
        CFAIL(ENGINE_ERR_INVALID, "node '%s' (Gather): index %lld out of range", n->name,
              (long long)id);
    *v = val(x, (outer * x->dims[ax] + id) * inner + in_);
    return ENGINE_OK;
}

static engine_status fold_concat(const graph_shape_call *c, graph_dtype dt, int64_t k, double *v) {
    const graph_shape *o = c->o;
    int ax = graph_axis(graph_attr_int(c->n, "axis", 0), o->ndim);
    int64_t inner = graph_numel(o->dims + ax + 1, o->ndim - ax - 1);
    int64_t at = (k / inner) % o->dims[ax], outer = k / inner / o->dims[ax];
    *v = 0;
    for (int j = 0; j < c->n->nin; j++) {
        const graph_shape *y = &c->s[c->n->in[j]];
        if (at < y->dims[ax]) {
            *v = val(y, (outer * y->dims[ax] + at) * inner + k % inner);
            break;
        }
        at -= y->dims[ax];
    }
    return ENGINE_OK;
}

/* Pure reshapes (Flatten, Reshape, Squeeze, Identity, Cast...): element order
 * unchanged. */
static engine_status fold_copy(const graph_shape_call *c, graph_dtype dt, int64_t k, double *v) {
    *v = val(c->x, k);
    return ENGINE_OK;
}

static fold_rule fold_rule_of(graph_op op) {
    switch (op) {
    case OP_ADD:
    case OP_MUL:
    case OP_SUB:
    case OP_DIV:
        return fold_arith;
    case OP_CONSTANTOFSHAPE:
        return fold_fill;
    case OP_TRANSPOSE:
    case OP_SLICE:
        return fold_remap;
    case OP_GATHER:
        return fold_gather;
    case OP_CONCAT:
        return fold_concat;
    default:
        return fold_copy;
    }
}

engine_status graph_fold(graph_shape_call *c) {
    const graph_node *n = c->n;
    graph_shape *o = c->o;
    int64_t cnt = graph_numel(o->dims, o->ndim);
    if (cnt > (1 << 20))
        return ENGINE_OK; /* too big to fold: run it */
    graph_dtype dt = c->x->dtype;
    if (n->op == OP_CONSTANTOFSHAPE) {
        const graph_attr *va = graph_attr_find(n, "value");
        dt = va && va->n == GRAPH_I64 ? GRAPH_I64 : GRAPH_F32;
    }
    if (n->op == OP_CAST)
        dt = graph_attr_int(n, "to", 1) == 1 || graph_attr_int(n, "to", 1) == 11 ? GRAPH_F32
                                                                                 : GRAPH_I64;
    if (!graph_value_alloc(o, dt))
        return ENGINE_ERR_NOMEM;
    fold_rule rule = fold_rule_of(n->op);
    for (int64_t k = 0; k < cnt; k++) {
        double v;
        engine_status st = rule(c, dt, k, &v);
        if (st != ENGINE_OK)
            return st;
        if (dt == GRAPH_F32)
            ((float *)o->owned)[k] = (float)v;
        else
            ((int64_t *)o->owned)[k] = sat_i64(v);
    }
    return ENGINE_OK;
}
