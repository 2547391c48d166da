/*
 * dnnl_conv_int8.c — Conv in int8 (models loaded with a quant.tsv).
 *
 * DESIGN. A quantized tensor t holds q = round(x * qscale[t]) as u8 (x >= 0:
 * the output of a fused ReLU, qscale = 255 / range) or s8 (qscale = 127 /
 * range), range being the calibrated clipping bound of |x|. A conv runs
 * u8/s8 activations x s8 weights (per output channel o: qw[o] = 127 /
 * max|w[o]|) into an s32 accumulator acc, and oneDNN 2.6 computes
 *     dst = oscale[o] * (acc + bias[o]) (+ sum_scale * dst_before) -> post-ops
 * so bias is passed pre-multiplied by qx * qw[o] and oscale[o] = qy / (qx *
 * qw[o]) (qy = 1 for an f32 dst). The residual sum stays in place: the dst
 * has the shortcut's layout, sum_v2 reads the shortcut with its own data type
 * and sum_scale = qy / qscale[shortcut]. Activations stay int8 from conv to
 * conv (and through a MaxPool that keeps its input's range: it pools the
 * integers, dnnl_pool.c); a quantizing reorder is added only where an f32
 * tensor (the model's input, an f32 pooling's output) feeds an int8 conv, and
 * a dequantizing one where an int8 tensor feeds anything else (plan.c
 * build_node, pb_f32 in dnnl_build.c).
 * Quantized weights are made once, while probing at load, and kept in the
 * model (prep[i].qdata); a plan whose kernel wants another layout makes its own.
 */
#include "dnnl_build.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int relu_last(const graph_node *n) {
    if (!n->npost)
        return 0;
    const graph_post *q = &n->post[n->npost - 1];
    return q->kind == POST_RELU || (q->kind == POST_CLIP && q->alpha >= 0.f);
}

int dnnl_conv_int8_fits(const plan_builder *b, const graph_node *n) {
    const dnnl_model *m = b->m;
    const plan *p = b->p;
    int x = n->in[0], y = n->out[0];
    if (!m->qrange || n->op != OP_CONV || x < 0 || y < 0 || n->nin < 2)
        return 0;
    const graph_shape *w = &p->shapes[n->in[1]];
    if (!w->is_const || !w->f || w->ndim != 4 || graph_attr_int(n, "group", 1) != 1)
        return 0;
    if (n->nin > 2 && n->in[2] >= 0 && !(p->shapes[n->in[2]].is_const && p->shapes[n->in[2]].f))
        return 0;
    if (!(m->qrange[y] > 0.f))
        return 0;
    if (p->has_md[x] && p->md[x].data_type != dnnl_f32)
        return 1;
    return m->qrange[x] > 0.f; /* an f32 input with a range is quantized to u8 */
}

/* The u8 grid an f32 input is quantized to; returns the multiplier (1 /
 * step). A never-negative input has zero point 0 and spans [0, range]; a
 * signed one (the stem's normalised image) spans its calibrated [min, max]
 * within +-range, with zero point *zp, which the conv subtracts (a source
 * zero point): 256 levels over the pixels' own span, so no image detail is
 * lost to the grid. */
static float input_grid(const dnnl_model *m, int x, int *zp) {
    float r = m->qrange[x], lo = fmaxf(m->qmin[x], -r), hi = fminf(fmaxf(m->qmax[x], 0.f), r);
    *zp = 0;
    if (lo >= 0.f)
        return 255.f / r;
    if (!(hi > lo))
        hi = r;
    float step = (hi - lo) / 255.f;
    long z = lrintf(-lo / step);
    *zp = z < 0 ? 0 : z > 255 ? 255 : (int)z;
    return 1.f / step;
}

static void md_any(dnnl_memory_desc_t *md, const int64_t *dims, int nd, dnnl_data_type_t dt) {
    dnnl_dims_t d;
    for (int i = 0; i < nd; i++)
        d[i] = dims[i];
    dnnl_memory_desc_init_by_tag(md, nd, d, dt, dnnl_format_tag_any);
}

static int is_jit(const_dnnl_primitive_desc_t pd) {
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    return impl && strncmp(impl, "ref", 3) != 0 && strncmp(impl, "gemm", 4) != 0;
}

/* Reorders f32 weights (plain OIHW) into want as s8 with per-channel scales. */
static engine_status quantize_weights(plan_builder *b, const graph_shape *w, const float *qw,
                                      const dnnl_memory_desc_t *want, void *buf) {
    dnnl_memory_desc_t from, to = *want;
    md_plain(&from, w->dims, w->ndim);
    dnnl_primitive_attr_t attr = NULL;
    dnnl_stream_t strm = NULL;
    engine_status st = ENGINE_ERR_BACKEND;
    if (dnnl_primitive_attr_create(&attr) == dnnl_success &&
        dnnl_primitive_attr_set_output_scales(attr, w->dims[0], 1, qw) == dnnl_success &&
        dnnl_stream_create(&strm, b->m->eng, dnnl_stream_default_flags) == dnnl_success &&
        md_reorder_now(b->m->eng, strm, &from, (void *)w->f, &to, buf, attr) == dnnl_success)
        st = ENGINE_OK;
    if (strm)
        dnnl_stream_destroy(strm);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return st ? pb_fail(b, st, "cannot quantize the weights") : ENGINE_OK;
}

typedef struct {
    float qx, qy, sum_scale;
    int zp; /* u8 source zero point (a signed f32 input), else 0 */
    dnnl_data_type_t sum_dt;
    int sum_t; /* shortcut tensor read by the sum post-op (maybe a dequantized copy) */
    float *qw, *oscale;
} conv_q;

static dnnl_primitive_attr_t int8_attr(const graph_node *n, const conv_q *q, int oc) {
    dnnl_primitive_attr_t attr = pb_attr();
    dnnl_post_ops_t po = NULL;
    if (!attr)
        return NULL;
    if (dnnl_primitive_attr_set_output_scales(attr, oc, 1 << 1, q->oscale) != dnnl_success ||
        (q->zp &&
         dnnl_primitive_attr_set_zero_points(attr, DNNL_ARG_SRC, 1, 0, &q->zp) != dnnl_success) ||
        (n->npost && dnnl_post_ops_create(&po) != dnnl_success)) {
        dnnl_primitive_attr_destroy(attr);
        return NULL;
    }
    for (int i = 0; i < n->npost; i++) {
        const graph_post *pp = &n->post[i];
        if (pp->kind == POST_SUM)
            dnnl_post_ops_append_sum_v2(po, q->sum_scale, q->sum_dt);
        else if (pp->kind == POST_RELU)
            dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.f, 0.f);
        else /* clip bounds in the dst's quantized units */
            dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, pp->alpha * q->qy,
                                         pp->beta * q->qy);
    }
    if (po) {
        dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
    }
    return attr;
}

/* Creates the pd; src_md NULL lets the kernel choose the input layout. */
static engine_status int8_pd(plan_builder *b, const graph_node *n, const dnnl_memory_desc_t *src_md,
                             dnnl_data_type_t src_dt, const dnnl_memory_desc_t *dst,
                             const conv_q *q, dnnl_primitive_desc_t *pd) {
    const graph_shape *x = &b->p->shapes[n->in[0]], *w = &b->p->shapes[n->in[1]];
    dnnl_memory_desc_t src, wmd, bmd;
    if (src_md)
        src = *src_md;
    else
        md_any(&src, x->dims, x->ndim, src_dt);
    md_any(&wmd, w->dims, w->ndim, dnnl_s8);
    md_plain(&bmd, w->dims, 1);
    dnnl_convolution_desc_t cd;
    engine_status st = dnnl_conv_desc(b, n, x, &src, &wmd, &bmd, dst, 0, &cd);
    if (st)
        return st;
    dnnl_primitive_attr_t attr = int8_attr(n, q, (int)w->dims[0]);
    if (!attr)
        return pb_fail(b, ENGINE_ERR_NOMEM, "out of memory");
    dnnl_status_t ds = dnnl_primitive_desc_create(pd, &cd, attr, b->m->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (ds != dnnl_success)
        return ENGINE_ERR_UNSUPPORTED;
    if (!is_jit(*pd)) {
        dnnl_primitive_desc_destroy(*pd);
        return ENGINE_ERR_UNSUPPORTED;
    }
    return ENGINE_OK;
}

/* Scales and output decision (no plan changes except a dequantized shortcut). */
static engine_status int8_scales(plan_builder *b, const graph_node *n, conv_q *q,
                                 dnnl_memory_desc_t *dst) {
    plan *p = b->p;
    const dnnl_model *m = b->m;
    const graph_shape *w = &p->shapes[n->in[1]], *y = &p->shapes[n->out[0]];
    int x = n->in[0], yt = n->out[0], oc = (int)w->dims[0];
    int64_t per = graph_numel(w->dims + 1, w->ndim - 1);
    int x_q = p->has_md[x] && p->md[x].data_type != dnnl_f32;
    q->zp = 0;
    q->qx = x_q ? p->qscale[x] : input_grid(m, x, &q->zp);
    int to_f32 = m->g->t[yt].is_output;
    dnnl_data_type_t ydt = to_f32 ? dnnl_f32 : relu_last(n) ? dnnl_u8 : dnnl_s8;
    q->sum_t = n->sum_in;
    q->sum_dt = dnnl_f32;
    q->sum_scale = 1.f;
    if (n->sum_in >= 0) {
        dnnl_memory_desc_t smd;
        engine_status st = pb_in_md(b, n->sum_in, &smd);
        if (st)
            return st;
        if (to_f32 && smd.data_type != dnnl_f32) { /* the graph output stays f32 */
            if ((q->sum_t = pb_f32(b, n->sum_in)) < 0)
                return ENGINE_ERR_BACKEND;
            smd = p->md[q->sum_t];
        } else if (!to_f32 && smd.data_type == dnnl_f32 && p->quq[n->sum_in] >= 0 &&
                   m->qmin[n->sum_in] >= 0.f) {
            /* an f32 shortcut (a basic block's input after the fp32 stem)
             * that an earlier int8 conv already quantized: add into that
             * copy in place, so the block's output is int8 and the next
             * blocks never go back to f32. The copy is overwritten, so later
             * readers quantize afresh. */
            q->sum_t = p->quq[n->sum_in];
            smd = p->md[q->sum_t];
            p->quq[n->sum_in] = -1;
        }
        q->sum_dt = smd.data_type;
        if (q->sum_dt == dnnl_f32)
            ydt = dnnl_f32;
        *dst = smd;
        dst->data_type = ydt;
    } else {
        md_any(dst, y->dims, y->ndim, ydt);
    }
    q->qy = ydt == dnnl_f32 ? 1.f : (ydt == dnnl_u8 ? 255.f : 127.f) / m->qrange[yt];
    if (n->sum_in >= 0 && q->sum_dt != dnnl_f32)
        q->sum_scale = q->qy / p->qscale[q->sum_t];
    q->qw = pb_own(b, (size_t)oc * sizeof(float));
    q->oscale = pb_own(b, (size_t)oc * sizeof(float));
    if (!q->qw || !q->oscale)
        return pb_fail(b, ENGINE_ERR_NOMEM, "out of memory");
    const graph_tensor *wt = &m->g->t[n->in[1]];
    int stored = wt->wq && wt->wq_n == oc; /* QDQ: requantize to the stored integers */
    for (int o = 0; o < oc; o++) {
        float mx = 0.f;
        for (int64_t k = 0; !stored && k < per; k++)
            mx = fmaxf(mx, fabsf(w->f[o * per + k]));
        q->qw[o] = stored ? wt->wq[o] : mx > 0.f ? 127.f / mx : 1.f;
        q->oscale[o] = q->qy / (q->qx * q->qw[o]);
    }
    return ENGINE_OK;
}

engine_status dnnl_build_conv_int8(plan_builder *b, const graph_node *n) {
    plan *p = b->p;
    const graph_shape *w = &p->shapes[n->in[1]];
    int x = n->in[0], yt = n->out[0], oc = (int)w->dims[0];
    conv_q q;
    dnnl_memory_desc_t dst, xmd;
    engine_status st = pb_in_md(b, x, &xmd);
    if (st || (st = int8_scales(b, n, &q, &dst)))
        return st;
    int x_q = xmd.data_type != dnnl_f32;
    dnnl_primitive_desc_t pd;
    /* a quantized input keeps its layout when the kernel takes it */
    st = int8_pd(b, n, x_q ? &xmd : NULL, x_q ? xmd.data_type : dnnl_u8, &dst, &q, &pd);
    if (st == ENGINE_ERR_UNSUPPORTED && x_q)
        st = int8_pd(b, n, NULL, xmd.data_type, &dst, &q, &pd);
    if (st)
        return st;
    const dnnl_memory_desc_t *need = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    int src_t = x;
    if (!x_q || !dnnl_memory_desc_equal(need, &xmd)) {
        int cached = x_q ? -1 : p->quq[x];
        if (cached >= 0 && dnnl_memory_desc_equal(need, &p->md[cached])) {
            src_t = cached;
        } else {
            dnnl_memory_desc_t needc = *need;
            const graph_shape *xs = &p->shapes[x];
            src_t = pb_temp(b, xs->dims, xs->ndim);
            float sc = x_q ? 1.f : q.qx;
            if (src_t < 0 || (st = pb_reorder_zp(b, x, &xmd, src_t, &needc, sc, x_q ? 0 : q.zp))) {
                dnnl_primitive_desc_destroy(pd);
                return st ? st : ENGINE_ERR_NOMEM;
            }
            p->qscale[src_t] = q.qx;
            if (!x_q)
                p->quq[x] = src_t;
        }
    }
    /* weights: the model's copy when the layout matches, else quantize now */
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_prepared *pr = (dnnl_prepared *)&b->m->prep[b->node];
    void *wbuf = pr->qdata && dnnl_memory_desc_equal(want, &pr->qmd) ? pr->qdata : NULL;
    if (!wbuf) {
        size_t sz = dnnl_memory_desc_get_size(want);
        wbuf = b->m->probing && !pr->qdata ? aligned_alloc(64, (sz + 63) / 64 * 64) : pb_own(b, sz);
        if (!wbuf || (st = quantize_weights(b, w, q.qw, want, wbuf))) {
            if (b->m->probing && wbuf && wbuf != pr->qdata)
                free(wbuf);
            dnnl_primitive_desc_destroy(pd);
            return st ? st : pb_fail(b, ENGINE_ERR_NOMEM, "out of memory");
        }
        if (b->m->probing && !pr->qdata) { /* kept by the model (load time only) */
            pr->qdata = wbuf;
            pr->qmd = *want;
        }
    }
    float *bias = pb_own(b, (size_t)oc * sizeof(float));
    if (!bias) {
        dnnl_primitive_desc_destroy(pd);
        return pb_fail(b, ENGINE_ERR_NOMEM, "out of memory");
    }
    const float *bf = n->nin > 2 && n->in[2] >= 0 ? p->shapes[n->in[2]].f : NULL;
    for (int o = 0; o < oc; o++)
        bias[o] = (bf ? bf[o] : 0.f) * q.qx * q.qw[o];
    plan_step *s = pb_step(b);
    if (!s) {
        dnnl_primitive_desc_destroy(pd);
        return ENGINE_ERR_NOMEM;
    }
    dnnl_memory_desc_t bmd, wantc = *want;
    md_plain(&bmd, w->dims, 1);
    pb_arg(s, DNNL_ARG_SRC, src_t);
    if ((st = pb_arg_mem(b, s, DNNL_ARG_WEIGHTS, &wantc, wbuf)) ||
        (st = pb_arg_mem(b, s, DNNL_ARG_BIAS, &bmd, bias))) {
        dnnl_primitive_desc_destroy(pd);
        return st;
    }
    pb_arg(s, DNNL_ARG_DST, yt);
    if (n->sum_in >= 0) {
        const dnnl_memory_desc_t *got = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
        if (!dnnl_memory_desc_equal(got, &dst)) {
            dnnl_primitive_desc_destroy(pd);
            return pb_fail(b, ENGINE_ERR_BACKEND, "int8 residual sum layout mismatch");
        }
        p->alias[yt] = q.sum_t;
    }
    st = pb_prim_from_pd(b, s, pd, yt);
    p->qscale[yt] = q.qy;
    return st;
}
