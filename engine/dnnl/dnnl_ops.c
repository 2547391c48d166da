/* dnnl_ops.c — standalone Relu/Clip, Add/Mul/Sum (binary with broadcasting),
 * Softmax and Concat. In ResNets most of these are fused away by the passes;
 * they run here for other graphs and for ONNX's operator tests. */
#include "dnnl_build.h"

#include <float.h>
#include <string.h>

static engine_status simple(plan_builder *b, plan_step *s, const void *desc, int out) {
    dnnl_primitive_attr_t attr = pb_attr();
    engine_status st = pb_prim(b, s, desc, attr, out);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

engine_status dnnl_build_eltwise(plan_builder *b, const graph_node *n) {
    dnnl_memory_desc_t src;
    engine_status st = pb_in_md(b, n->in[0], &src);
    if (st)
        return st;
    dnnl_alg_kind_t alg = dnnl_eltwise_relu;
    float lo = 0, hi = 0;
    if (n->op == OP_CLIP) {
        alg = dnnl_eltwise_clip;
        lo = graph_attr_float(n, "min", -FLT_MAX);
        hi = graph_attr_float(n, "max", FLT_MAX);
        for (int j = 1; j < n->nin && j < 3 && b->m->g->opset >= 11; j++) {
            if (n->in[j] < 0)
                continue;
            const graph_shape *v = &b->p->shapes[n->in[j]];
            if (!v->is_const)
                return dnnl_build_clip_runtime(b, n);
            if (v->dtype != GRAPH_F32 || graph_numel(v->dims, v->ndim) != 1)
                return pb_fail(b, ENGINE_ERR_UNSUPPORTED, "min/max must be float scalars");
            *(j == 1 ? &lo : &hi) = v->f[0];
        }
    }
    dnnl_eltwise_desc_t d;
    if (dnnl_eltwise_forward_desc_init(&d, dnnl_forward_inference, alg, &src, lo, hi) !=
        dnnl_success)
        return pb_fail(b, ENGINE_ERR_UNSUPPORTED, "oneDNN rejects this eltwise");
    plan_step *s = pb_step(b);
    if (!s)
        return ENGINE_ERR_NOMEM;
    pb_arg(s, DNNL_ARG_SRC, n->in[0]);
    pb_arg(s, DNNL_ARG_DST, n->out[0]);
    return simple(b, s, &d, n->out[0]);
}

static int same_dims(const graph_shape *a, const graph_shape *o) {
    return a->ndim == o->ndim && !memcmp(a->dims, o->dims, (size_t)a->ndim * sizeof a->dims[0]);
}

/* One binary step out = t0 (op) t1, with t1 broadcast to out's shape. */
static engine_status binary_step(plan_builder *b, dnnl_alg_kind_t alg, int t0, int t1, int out) {
    plan *p = b->p;
    const graph_shape *o = &p->shapes[out];
    if (!same_dims(&p->shapes[t0], o)) {
        int tmp = t0;
        t0 = t1;
        t1 = tmp;
    }
    if (!same_dims(&p->shapes[t0], o))
        return pb_fail(b, ENGINE_ERR_UNSUPPORTED, "broadcasting both operands is not supported");
    dnnl_memory_desc_t m0, m1, m1v, dst;
    engine_status st = pb_in_md(b, t0, &m0);
    if (st || (st = pb_in_md(b, t1, &m1)))
        return st;
    const graph_shape *y = &p->shapes[t1];
    int view = 0;
    if (y->ndim != o->ndim || !same_dims(y, o)) {
        if ((t1 = pb_plain(b, t1)) < 0)
            return ENGINE_ERR_BACKEND;
        int64_t d[GRAPH_MAX_DIMS];
        for (int i = 0; i < o->ndim; i++) {
            int j = i - (o->ndim - y->ndim);
            d[i] = j >= 0 ? y->dims[j] : 1;
        }
        md_plain(&m1v, d, o->ndim);
        m1 = m1v;
        view = 1;
    }
    if (!view && !dnnl_memory_desc_equal(&m0, &m1)) {
        /* same shape, other layout: reorder src1 so a jit kernel applies */
        int tt = pb_temp(b, y->dims, y->ndim);
        if (tt < 0 || (st = pb_reorder(b, t1, &m1, tt, &m0)))
            return st ? st : ENGINE_ERR_NOMEM;
        t1 = tt;
        m1 = m0;
    }
    if (p->has_md[out]) {
        dst = p->md[out];
    } else {
        dnnl_dims_t od;
        for (int i = 0; i < o->ndim; i++)
            od[i] = o->dims[i];
        dnnl_memory_desc_init_by_tag(&dst, o->ndim > 0 ? o->ndim : 1, od, dnnl_f32,
                                     dnnl_format_tag_any);
        if (o->ndim == 0)
            md_plain(&dst, o->dims, 0);
    }
    dnnl_binary_desc_t d;
    if (dnnl_binary_desc_init(&d, alg, &m0, &m1, &dst) != dnnl_success)
        return pb_fail(b, ENGINE_ERR_UNSUPPORTED, "oneDNN rejects this binary op");
    plan_step *s = pb_step(b);
    if (!s)
        return ENGINE_ERR_NOMEM;
    pb_arg(s, DNNL_ARG_SRC_0, t0);
    if (view)
        pb_arg_view(s, DNNL_ARG_SRC_1, t1, &m1);
    else
        pb_arg(s, DNNL_ARG_SRC_1, t1);
    pb_arg(s, DNNL_ARG_DST, out);
    return simple(b, s, &d, out);
}

engine_status dnnl_build_binary(plan_builder *b, const graph_node *n) {
    dnnl_alg_kind_t alg = n->op == OP_MUL ? dnnl_binary_mul : dnnl_binary_add;
    int out = n->out[0];
    if (n->nin == 1) {
        dnnl_memory_desc_t md;
        engine_status st = pb_in_md(b, n->in[0], &md);
        if (st)
            return st;
        b->p->md[out] = md;
        b->p->has_md[out] = 1;
        b->p->alias[out] = n->in[0];
        return ENGINE_OK;
    }
    engine_status st = binary_step(b, alg, n->in[0], n->in[1], out);
    for (int j = 2; st == ENGINE_OK && j < n->nin; j++)
        st = binary_step(b, alg, out, n->in[j], out);
    return st;
}

engine_status dnnl_build_softmax(plan_builder *b, const graph_node *n) {
    plan *p = b->p;
    const graph_shape *x = &p->shapes[n->in[0]];
    int legacy = b->m->g->opset < 13;
    int axis = graph_axis(graph_attr_int(n, "axis", legacy ? 1 : -1), x->ndim);
    if (axis < 0)
        return pb_fail(b, ENGINE_ERR_INVALID, "attribute 'axis' out of range");
    int in = n->in[0], out = n->out[0];
    dnnl_memory_desc_t src;
    engine_status st = pb_in_md(b, in, &src);
    if (st)
        return st;
    if (legacy) { /* softmax over the flattened [axis:] block */
        if ((in = pb_plain(b, in)) < 0)
            return ENGINE_ERR_BACKEND;
        int64_t d2[2] = {graph_numel(x->dims, axis), graph_numel(x->dims + axis, x->ndim - axis)};
        md_plain(&src, d2, 2);
        axis = 1;
    }
    dnnl_softmax_desc_t d;
    if (dnnl_softmax_forward_desc_init(&d, dnnl_forward_inference, &src, axis) != dnnl_success)
        return pb_fail(b, ENGINE_ERR_UNSUPPORTED, "oneDNN rejects this softmax");
    plan_step *s = pb_step(b);
    if (!s)
        return ENGINE_ERR_NOMEM;
    if (legacy) {
        pb_arg_view(s, DNNL_ARG_SRC, in, &src);
        pb_arg_view(s, DNNL_ARG_DST, out, &src);
        st = simple(b, s, &d, -1);
        md_plain(&p->md[out], p->shapes[out].dims, p->shapes[out].ndim);
        p->has_md[out] = 1;
        return st;
    }
    pb_arg(s, DNNL_ARG_SRC, in);
    pb_arg(s, DNNL_ARG_DST, out);
    return simple(b, s, &d, out);
}

engine_status dnnl_build_concat(plan_builder *b, const graph_node *n) {
    plan *p = b->p;
    const graph_shape *y = &p->shapes[n->out[0]];
    int axis = graph_axis(graph_attr_int(n, "axis", 0), y->ndim);
    dnnl_memory_desc_t mds[64], dst;
    int k = 0, ins[64];
    for (int j = 0; j < n->nin && j < 64; j++) {
        if (n->in[j] < 0 || graph_numel(p->shapes[n->in[j]].dims, p->shapes[n->in[j]].ndim) == 0)
            continue;
        engine_status st = pb_in_md(b, n->in[j], &mds[k]);
        if (st)
            return st;
        ins[k++] = n->in[j];
    }
    if (!k || axis < 0 || k > PLAN_MAX_ARGS - 2)
        return pb_fail(b, ENGINE_ERR_UNSUPPORTED, "empty concat or bad axis");
    dnnl_dims_t od;
    for (int i = 0; i < y->ndim; i++)
        od[i] = y->dims[i];
    dnnl_memory_desc_init_by_tag(&dst, y->ndim, od, dnnl_f32, dnnl_format_tag_any);
    dnnl_primitive_attr_t attr = pb_attr();
    dnnl_primitive_desc_t pd;
    dnnl_status_t ds = dnnl_concat_primitive_desc_create(&pd, &dst, k, axis, mds, attr, b->m->eng);
    dnnl_primitive_attr_destroy(attr);
    if (ds != dnnl_success)
        return pb_fail(b, ENGINE_ERR_UNSUPPORTED, "oneDNN rejects this concat (%d)", ds);
    plan_step *s = pb_step(b);
    if (!s) {
        dnnl_primitive_desc_destroy(pd);
        return ENGINE_ERR_NOMEM;
    }
    for (int j = 0; j < k; j++)
        pb_arg(s, DNNL_ARG_MULTIPLE_SRC + j, ins[j]);
    pb_arg(s, DNNL_ARG_DST, n->out[0]);
    return pb_prim_from_pd(b, s, pd, n->out[0]);
}
