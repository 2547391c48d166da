/* dnnl_matmul.c — Gemm and MatMul on oneDNN matmul. Transposes are strided
 * views of plain buffers; Gemm's alpha is an output scale, a constant C
 * (times beta) the bias, a runtime C a binary post-op. */
#include "dnnl_build.h"

#include <string.h>

static void md_strided(dnnl_memory_desc_t *md, const int64_t *dims, const int64_t *strides,
                       int nd) {
    dnnl_dims_t d, s;
    for (int i = 0; i < nd; i++) {
        d[i] = dims[i];
        s[i] = strides[i];
    }
    dnnl_memory_desc_init_by_strides(md, nd, d, dnnl_f32, s);
}

/* Plain view of t as a 2-D [r, c] matrix, transposed when tr (t is [c, r]). */
static void view2d(dnnl_memory_desc_t *md, int64_t r, int64_t c, int tr) {
    int64_t d[2] = {r, c}, s[2] = {tr ? 1 : c, tr ? r : 1};
    md_strided(md, d, s, 2);
}

engine_status dnnl_build_gemm(plan_builder *b, const graph_node *n) {
    plan *p = b->p;
    int ta = (int)graph_attr_int(n, "transA", 0), tb = (int)graph_attr_int(n, "transB", 0);
    float alpha = graph_attr_float(n, "alpha", 1.f), beta = graph_attr_float(n, "beta", 1.f);
    const graph_shape *ys = &p->shapes[n->out[0]];
    int64_t M = ys->dims[0], N = ys->dims[1];
    int64_t K = p->shapes[n->in[0]].dims[ta ? 0 : 1];
    int ta_t = pb_plain(b, n->in[0]), tb_t = pb_plain(b, n->in[1]);
    if (ta_t < 0 || tb_t < 0)
        return ENGINE_ERR_BACKEND;
    dnnl_memory_desc_t a, w, bias, dst, cmd;
    view2d(&a, M, K, ta);
    view2d(&w, K, N, tb);
    int64_t od[2] = {M, N};
    md_plain(&dst, od, 2);
    int c = n->nin > 2 && n->in[2] >= 0 && beta != 0.f ? n->in[2] : -1;
    int cconst = 0, crt = 0;
    int64_t cd[2] = {1, 1};
    if (c >= 0) {
        const graph_shape *cs = &p->shapes[c];
        if (cs->ndim > 2)
            return pb_fail(b, ENGINE_ERR_INVALID, "C has rank %d", cs->ndim);
        for (int i = 0; i < cs->ndim; i++)
            cd[2 - cs->ndim + i] = cs->dims[i];
        md_plain(&cmd, cd, 2);
        cconst = cs->is_const && cs->f;
        crt = !cconst;
        if (crt && (c = pb_plain(b, c)) < 0)
            return ENGINE_ERR_BACKEND;
    }
    dnnl_primitive_attr_t attr = pb_attr();
    float oscale = crt && beta != 1.f ? alpha / beta : alpha;
    if (oscale != 1.f)
        dnnl_primitive_attr_set_output_scales(attr, 1, 0, &oscale);
    if (crt) {
        dnnl_post_ops_t po;
        dnnl_post_ops_create(&po);
        dnnl_post_ops_append_binary(po, dnnl_binary_add, &cmd);
        if (beta != 1.f)
            dnnl_post_ops_append_eltwise(po, 1.f, dnnl_eltwise_linear, beta, 0.f);
        dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
    }
    float *bdata = NULL;
    if (cconst) {
        int64_t cnt = cd[0] * cd[1];
        bdata = pb_own(b, (size_t)cnt * sizeof(float));
        if (!bdata) {
            dnnl_primitive_attr_destroy(attr);
            return ENGINE_ERR_NOMEM;
        }
        for (int64_t i = 0; i < cnt; i++)
            bdata[i] = p->shapes[c].f[i] * beta;
        bias = cmd;
    }
    dnnl_matmul_desc_t md;
    dnnl_matmul_desc_init(&md, &a, &w, cconst ? &bias : NULL, &dst);
    plan_step *s = pb_step(b);
    if (!s) {
        dnnl_primitive_attr_destroy(attr);
        return ENGINE_ERR_NOMEM;
    }
    pb_arg_view(s, DNNL_ARG_SRC, ta_t, &a);
    pb_arg_view(s, DNNL_ARG_WEIGHTS, tb_t, &w);
    engine_status st = ENGINE_OK;
    if (cconst)
        st = pb_arg_mem(b, s, DNNL_ARG_BIAS, &bias, bdata);
    if (crt)
        pb_arg_view(s, DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, c, &cmd);
    pb_arg(s, DNNL_ARG_DST, n->out[0]);
    if (st == ENGINE_OK)
        st = pb_prim(b, s, &md, attr, n->out[0]);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

engine_status dnnl_build_matmul(plan_builder *b, const graph_node *n) {
    plan *p = b->p;
    const graph_shape *as = &p->shapes[n->in[0]], *bs = &p->shapes[n->in[1]];
    const graph_shape *ys = &p->shapes[n->out[0]];
    int nd = ys->ndim;
    int64_t ad[GRAPH_MAX_DIMS], bd[GRAPH_MAX_DIMS], od[GRAPH_MAX_DIMS];
    /* promote 1-D operands, then left-pad batch dims with 1 */
    int64_t a2[GRAPH_MAX_DIMS], b2[GRAPH_MAX_DIMS];
    int an = as->ndim, bn = bs->ndim;
    memcpy(a2, as->dims, sizeof a2);
    memcpy(b2, bs->dims, sizeof b2);
    if (an == 1) {
        a2[1] = a2[0];
        a2[0] = 1;
        an = 2;
    }
    if (bn == 1) {
        b2[1] = 1;
        bn = 2;
    }
    int full = an > bn ? an : bn;
    if (full > 6)
        return pb_fail(b, ENGINE_ERR_UNSUPPORTED, "rank %d", full);
    for (int i = 0; i < full; i++) {
        ad[i] = i - (full - an) >= 0 ? a2[i - (full - an)] : 1;
        bd[i] = i - (full - bn) >= 0 ? b2[i - (full - bn)] : 1;
        od[i] = ad[i] > bd[i] ? ad[i] : bd[i];
    }
    od[full - 2] = ad[full - 2];
    od[full - 1] = bd[full - 1];
    (void)nd;
    int ta_t = pb_plain(b, n->in[0]), tb_t = pb_plain(b, n->in[1]);
    if (ta_t < 0 || tb_t < 0)
        return ENGINE_ERR_BACKEND;
    dnnl_memory_desc_t a, w, dst;
    md_plain(&a, ad, full);
    md_plain(&w, bd, full);
    md_plain(&dst, od, full);
    dnnl_matmul_desc_t md;
    dnnl_matmul_desc_init(&md, &a, &w, NULL, &dst);
    plan_step *s = pb_step(b);
    if (!s)
        return ENGINE_ERR_NOMEM;
    pb_arg_view(s, DNNL_ARG_SRC, ta_t, &a);
    pb_arg_view(s, DNNL_ARG_WEIGHTS, tb_t, &w);
    pb_arg_view(s, DNNL_ARG_DST, n->out[0], &dst);
    dnnl_primitive_attr_t attr = pb_attr();
    engine_status st = pb_prim(b, s, &md, attr, -1);
    dnnl_primitive_attr_destroy(attr);
    md_plain(&p->md[n->out[0]], ys->dims, ys->ndim);
    p->has_md[n->out[0]] = 1;
    return st;
}
