/* dnnl_pool.c — MaxPool, AveragePool and GlobalAveragePool on oneDNN pooling. */
#include "dnnl_build.h"

/* int8 models: a MaxPool whose input is held as u8/s8 (an int8 conv's
 * output, e.g. ResNet's stem) pools the integers themselves. The maximum
 * commutes with the monotone quantization q = round(x * qscale), so the
 * output is the f32 pooling's quantized to the input's grid, exactly; it is
 * done only when the output's calibrated range is the input's (a QDQ model's
 * MaxPool shares its input's scale; max pooling keeps a map's maximum), so
 * the next conv sees the grid it would have quantized to anyway. Saves
 * dequantizing the input and quantizing the output (two reorders) and pools a
 * quarter of the bytes. */
int dnnl_pool_int8_fits(const plan_builder *b, const graph_node *n) {
    const plan *p = b->p;
    const dnnl_model *m = b->m;
    int x = n->in[0], y = n->out[0];
    if (!m->qrange || n->op != OP_MAXPOOL || x < 0 || y < 0 || !p->has_md[x])
        return 0;
    dnnl_data_type_t dt = p->md[x].data_type;
    if ((dt != dnnl_u8 && dt != dnnl_s8) || !(p->qscale[x] > 0.f))
        return 0;
    if (b->p->bind[y] == BIND_OUTPUT || m->g->t[y].is_output)
        return 0;
    return m->qrange[y] == m->qrange[x] && m->qmin[y] == m->qmin[x];
}

engine_status dnnl_build_pool(plan_builder *b, const graph_node *n) {
    plan *p = b->p;
    const graph_shape *x = &p->shapes[n->in[0]], *y = &p->shapes[n->out[0]];
    int nsp = x->ndim - 2;
    if (nsp < 1 || nsp > 3)
        return pb_fail(b, ENGINE_ERR_UNSUPPORTED, "input rank %d", x->ndim);
    dnnl_memory_desc_t src, dst;
    engine_status st = pb_in_md(b, n->in[0], &src);
    if (st)
        return st;
    dnnl_dims_t k, s, d, pl, pr, od;
    dnnl_alg_kind_t alg = dnnl_pooling_avg_exclude_padding;
    if (n->op == OP_GLOBALAVGPOOL) {
        for (int i = 0; i < nsp; i++) {
            k[i] = x->dims[2 + i];
            s[i] = 1;
            d[i] = pl[i] = pr[i] = 0;
        }
    } else {
        int64_t kern[3];
        if (graph_attr_ints(n, "kernel_shape", kern, 3) != nsp)
            return pb_fail(b, ENGINE_ERR_INVALID, "attribute 'kernel_shape' needs %d values", nsp);
        graph_geom gm;
        if ((st = graph_window_geom(n, x->dims + 2, nsp, kern, &gm, b->err, b->err_len)))
            return st;
        for (int i = 0; i < nsp; i++) {
            k[i] = gm.k[i];
            s[i] = gm.s[i];
            d[i] = gm.d[i] - 1;
            pl[i] = gm.pl[i];
            pr[i] = gm.pr[i];
        }
        if (n->op == OP_MAXPOOL)
            alg = dnnl_pooling_max;
        else if (graph_attr_int(n, "count_include_pad", 0))
            alg = dnnl_pooling_avg_include_padding;
    }
    for (int i = 0; i < y->ndim; i++)
        od[i] = y->dims[i];
    int q8 = dnnl_pool_int8_fits(b, n);
    dnnl_memory_desc_init_by_tag(&dst, y->ndim, od, q8 ? src.data_type : dnnl_f32,
                                 dnnl_format_tag_any);
    dnnl_pooling_v2_desc_t pdsc;
    if (dnnl_pooling_v2_forward_desc_init(&pdsc, dnnl_forward_inference, alg, &src, &dst, s, k, d,
                                          pl, pr) != dnnl_success)
        return pb_fail(b, ENGINE_ERR_UNSUPPORTED, "oneDNN rejects this pooling geometry");
    plan_step *stp = pb_step(b);
    if (!stp)
        return ENGINE_ERR_NOMEM;
    pb_arg(stp, DNNL_ARG_SRC, n->in[0]);
    pb_arg(stp, DNNL_ARG_DST, n->out[0]);
    dnnl_primitive_attr_t attr = pb_attr();
    st = pb_prim(b, stp, &pdsc, attr, n->out[0]);
    dnnl_primitive_attr_destroy(attr);
    if (st == ENGINE_OK && q8)
        p->qscale[n->out[0]] = p->qscale[n->in[0]];
    return st;
}
