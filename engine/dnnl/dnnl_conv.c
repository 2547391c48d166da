/* dnnl_conv.c — Conv (with fused post-ops and in-place residual sum) and
 * BatchNormalization. The load-time reorder of Conv weights: dnnl_model.c. */
#include "dnnl_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dnnl_primitive_attr_t conv_attr(const graph_node *n) {
    dnnl_primitive_attr_t attr = pb_attr();
    dnnl_post_ops_t po;
    if (!attr || !n->npost || dnnl_post_ops_create(&po) != dnnl_success)
        return attr;
    for (int i = 0; i < n->npost; i++) {
        const graph_post *q = &n->post[i];
        if (q->kind == POST_SUM)
            dnnl_post_ops_append_sum(po, 1.0f);
        else if (q->kind == POST_RELU)
            dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.f, 0.f);
        else
            dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, q->alpha, q->beta);
    }
    dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
    return attr;
}

/* Fills a conv desc for node n; src/weights/dst mds given by the caller. */
engine_status dnnl_conv_desc(plan_builder *b, const graph_node *n, const graph_shape *x,
                             const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *wmd,
                             const dnnl_memory_desc_t *bmd, const dnnl_memory_desc_t *dst, int wino,
                             dnnl_convolution_desc_t *cd) {
    const graph_shape *w = &b->p->shapes[n->in[1]];
    int nsp = x->ndim - 2;
    int64_t kern[3] = {1, 1, 1};
    if (nsp < 1 || nsp > 3)
        return pb_fail(b, ENGINE_ERR_UNSUPPORTED, "input rank %d", x->ndim);
    for (int i = 0; i < nsp; i++)
        kern[i] = w->dims[2 + i];
    graph_geom gm;
    engine_status st = graph_window_geom(n, x->dims + 2, nsp, kern, &gm, b->err, b->err_len);
    if (st)
        return st;
    dnnl_dims_t s, d, pl, pr;
    for (int i = 0; i < nsp; i++) {
        s[i] = gm.s[i];
        d[i] = gm.d[i] - 1;
        pl[i] = gm.pl[i];
        pr[i] = gm.pr[i];
    }
    dnnl_alg_kind_t alg = wino ? dnnl_convolution_winograd : dnnl_convolution_direct;
    if (dnnl_dilated_convolution_forward_desc_init(cd, dnnl_forward_inference, alg, src, wmd, bmd,
                                                   dst, s, d, pl, pr) != dnnl_success)
        return pb_fail(b, ENGINE_ERR_UNSUPPORTED, "oneDNN rejects this convolution geometry");
    return ENGINE_OK;
}

static const char *impl_of(const_dnnl_primitive_desc_t pd) {
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    return impl ? impl : "";
}

static int is_ref(const_dnnl_primitive_desc_t pd) {
    return strncmp(impl_of(pd), "ref", 3) == 0;
}

static int is_wino(const_dnnl_primitive_desc_t pd) {
    return strstr(impl_of(pd), "wino") != NULL;
}

/* Winograd (oneDNN's F(2x2, 3x3) kernel at batch 1, F(4x4, 3x3) at larger
 * batches) fits 3x3, stride 1, no dilation, no groups. It is used on maps of
 * 14x14 and larger: per-layer profiles (bench/layer_profile.py, ResNet-50 on
 * AVX-512) show the 14x14 layers 30-35% faster than direct at batch 1 and 8
 * (the 28x28 and 56x56 ones 20-30%), while at 7x7 the tiles are too few and
 * direct is as fast. The cost is memory: the transformed weights are 16/9
 * (2x3) or 36/9 (4x3) of the direct ones, +9 MB (batch 1) to +35 MB (batch
 * 8) of RSS on ResNet-50, the 7x7 layers (most of the weights) staying
 * direct. */
static int wino_fits(const dnnl_model *m, const graph_node *n, const graph_shape *w,
                     const graph_shape *y, int want) {
    int64_t v[3];
    if (want == ENGINE_CONV_DIRECT || want == ENGINE_CONV_CHANNELS_LAST)
        return 0;
    if (!m->winograd || w->ndim != 4 || w->dims[2] != 3 || w->dims[3] != 3 ||
        graph_attr_int(n, "group", 1) != 1 || y->ndim != 4 ||
        (want != ENGINE_CONV_WINOGRAD && y->dims[2] * y->dims[3] < 14 * 14))
        return 0;
    for (int k = graph_attr_ints(n, "strides", v, 3) - 1; k >= 0; k--)
        if (v[k] != 1)
            return 0;
    for (int k = graph_attr_ints(n, "dilations", v, 3) - 1; k >= 0; k--)
        if (v[k] != 1)
            return 0;
    return 1;
}

/* Creates a pd; with impl set, only that implementation (weights prepared for
 * one Winograd kernel are laid out for that kernel alone). */
static dnnl_status_t pd_create(dnnl_primitive_desc_t *pd, const void *cd,
                               const_dnnl_primitive_attr_t attr, dnnl_engine_t eng,
                               const char *impl) {
    if (!impl || !*impl)
        return dnnl_primitive_desc_create(pd, cd, attr, eng, NULL);
    dnnl_primitive_desc_iterator_t it;
    if (dnnl_primitive_desc_iterator_create(&it, cd, attr, eng, NULL) != dnnl_success)
        return dnnl_unimplemented;
    dnnl_status_t st = dnnl_unimplemented;
    do {
        dnnl_primitive_desc_t cur = dnnl_primitive_desc_iterator_fetch(it);
        const char *name = NULL;
        if (!cur)
            break;
        dnnl_primitive_desc_query(cur, dnnl_query_impl_info_str, 0, &name);
        if (name && strcmp(name, impl) == 0) {
            *pd = cur;
            st = dnnl_success;
            break;
        }
        dnnl_primitive_desc_destroy(cur);
    } while (dnnl_primitive_desc_iterator_next(it) == dnnl_success);
    dnnl_primitive_desc_iterator_destroy(it);
    return st;
}

static void any_md(dnnl_memory_desc_t *md, const int64_t *dims, int nd) {
    dnnl_dims_t d;
    for (int i = 0; i < nd; i++)
        d[i] = dims[i];
    dnnl_memory_desc_init_by_tag(md, nd, d, dnnl_f32, dnnl_format_tag_any);
}

/* One Conv being built: its shapes, the memory descs of its operands and the
 * weights prepared at load for it (dnnl_model.c), if any. */
typedef struct {
    const graph_node *n;
    const graph_shape *x, *w, *y;
    int has_bias, wconst;
    dnnl_dims_t wd; /* weights dims as oneDNN sees them (groups split out) */
    int wnd;
    dnnl_memory_desc_t src, wmd, wplain, bmd, dst;
    const dnnl_prepared *pr;
    dnnl_primitive_attr_t attr; /* scratchpad mode and fused post-ops */
    int src_t;                  /* tensor the step reads: the input, or a reordered copy */
    int want;                   /* ENGINE_CONV_*: the node's override (AUTO: the static rules) */
} conv_job;

/* Operand layouts: the producer's for the input, the prepared (or any, or
 * plain for runtime weights) for the weights, the residual's for the output
 * of an in-place sum (else any). */
static engine_status conv_mds(plan_builder *b, const graph_node *n, conv_job *j) {
    plan *p = b->p;
    j->n = n;
    j->x = &p->shapes[n->in[0]];
    j->w = &p->shapes[n->in[1]];
    j->y = &p->shapes[n->out[0]];
    j->has_bias = n->nin > 2 && n->in[2] >= 0;
    j->src_t = n->in[0];
    engine_status st = pb_in_md(b, n->in[0], &j->src);
    if (st)
        return st;
    md_conv_weight_dims(j->w, graph_attr_int(n, "group", 1), j->wd, &j->wnd);
    md_plain(&j->wplain, j->wd, j->wnd);
    j->pr = &b->m->prep[b->node];
    j->wconst = j->w->is_const;
    if (j->pr->has)
        j->wmd = j->pr->md;
    else if (j->wconst)
        any_md(&j->wmd, j->wd, j->wnd);
    else
        j->wmd = j->wplain;
    if (j->has_bias && (st = pb_in_md(b, n->in[2], &j->bmd)))
        return st;
    if (n->sum_in >= 0)
        return pb_in_md(b, n->sum_in, &j->dst);
    any_md(&j->dst, j->y->dims, j->y->ndim);
    return ENGINE_OK;
}

/* A convolution pd on j's current mds (direct or Winograd); 0 on success.
 * impl: only that implementation (NULL: oneDNN's first choice). */
static dnnl_status_t conv_pd(plan_builder *b, conv_job *j, const dnnl_memory_desc_t *src,
                             const dnnl_memory_desc_t *wmd, const dnnl_memory_desc_t *dst, int wino,
                             const char *impl, dnnl_primitive_desc_t *pd, engine_status *st) {
    dnnl_convolution_desc_t cd;
    *st = dnnl_conv_desc(b, j->n, j->x, src, wmd, j->has_bias ? &j->bmd : NULL, dst, wino, &cd);
    if (*st)
        return dnnl_unimplemented;
    return wino ? pd_create(pd, &cd, j->attr, b->m->eng, impl)
                : dnnl_primitive_desc_create(pd, &cd, j->attr, b->m->eng, NULL);
}

/* The kernel choice: Winograd where it fits (the prepared kernel, if the
 * weights were laid out for one), else direct on the prepared layout, else
 * direct with the layout left to oneDNN. A reference kernel is refused while
 * a prepared layout may be the reason. Returns oneDNN's status for *pd;
 * *st != ENGINE_OK when a desc could not be made at all.
 * Per-node overrides (j->want, from engine_load_params.conv_choices or
 * conv_force via dnnl_model.conv_algo; the probe of dnnl_model_prepare sees
 * them too, so the weights are laid out for the kernel chosen): Winograd
 * forced drops the 14x14 size rule, direct or channels-last forced skips
 * Winograd; a forced algorithm not available for the node (geometry, ISA,
 * the model's winograd / channels_last switches) leaves the static rules. */
static dnnl_status_t conv_choose(plan_builder *b, conv_job *j, dnnl_primitive_desc_t *pd,
                                 engine_status *st) {
    static const dnnl_prepared no_prep;
    dnnl_status_t ds = dnnl_unimplemented;
    int pr_wino = j->pr->has && j->pr->md.format_kind == dnnl_format_kind_wino;
    engine_status ignored;
    *st = ENGINE_OK;
    /* every batch runs the Winograd kernel the weights were prepared for (the
     * largest batch's, or on small maps the one-image kernel run image by
     * image: conv_one_image): an image's answer is then bit-identical
     * whatever batch it lands in (protocols_grpc_concurrency and
     * engine_batch_exact_* compare bytes) */
    if (wino_fits(b->m, j->n, j->w, j->y, j->want) && (!j->pr->has || pr_wino))
        ds =
            conv_pd(b, j, &j->src, &j->wmd, &j->dst, 1, pr_wino ? j->pr->impl : NULL, pd, &ignored);
    if (ds == dnnl_success && is_ref(*pd)) {
        dnnl_primitive_desc_destroy(*pd);
        ds = dnnl_unimplemented;
    }
    if (ds != dnnl_success && j->want == ENGINE_CONV_WINOGRAD)
        j->want = ENGINE_CONV_AUTO;      /* no Winograd here: the static rules */
    if (ds != dnnl_success && pr_wino) { /* that kernel is not available here: direct */
        j->pr = &no_prep;
        any_md(&j->wmd, j->wd, j->wnd);
    }
    if (ds != dnnl_success) {
        ds = conv_pd(b, j, &j->src, &j->wmd, &j->dst, 0, NULL, pd, st);
        if (*st)
            return ds;
    }
    if (ds == dnnl_success && j->pr->has && is_ref(*pd)) {
        dnnl_primitive_desc_destroy(*pd);
        ds = dnnl_unimplemented;
    }
    if (ds != dnnl_success && j->pr->has) { /* prepared layout not accepted: let oneDNN choose */
        any_md(&j->wmd, j->wd, j->wnd);
        ds = conv_pd(b, j, &j->src, &j->wmd, &j->dst, 0, NULL, pd, st);
    }
    return ds;
}

/* Winograd on maps smaller than 28x28 runs image by image when the plan's
 * batch is larger than 1: the primitive is made for one image and runs once
 * per image (plan_step.images), its weights laid out for that one-image
 * kernel at load. An image's answer must not depend on the batch it lands in
 * (the server batches concurrent requests; protocols_grpc_concurrency
 * compares the bytes of concurrent answers with lone ones), so all batches
 * of a model share one kernel per layer; oneDNN's batch-1 kernel on these
 * maps, F(2x2, 3x3), is much faster at batch 1 than its batch-8 one,
 * F(4x4, 3x3) (AVX-512 Zen 5, 2 threads, ResNet-50's 14x14 layers: 0.41 vs
 * 0.64 ms), and costs only a little at batch 8 run 8 times (3.2 vs 2.5 ms).
 * On 28x28 and larger maps oneDNN's two kernels are as fast at batch 1
 * (it picks F(4x4, 3x3) at batch 1 there too) and the batch kernel wins at
 * batch 8, so those run whole batches. */
#define PER_IMAGE_MAX_MAP (28 * 28)

/* 1 with *pd the one-image Winograd pd and j's src and dst descs narrowed
 * to one image when j runs per image (above); 0 with j unchanged otherwise
 * (no Winograd there, e.g. AVX2: the caller's conv_choose decides). */
static int conv_one_image(plan_builder *b, conv_job *j, dnnl_primitive_desc_t *pd) {
    int pr_wino = j->pr->has && j->pr->md.format_kind == dnnl_format_kind_wino;
    dnnl_memory_desc_t s1, d1;
    engine_status ignored;
    if (b->p->batch <= 1 || j->y->ndim != 4 || j->y->dims[2] * j->y->dims[3] >= PER_IMAGE_MAX_MAP ||
        !wino_fits(b->m, j->n, j->w, j->y, j->want) || (j->pr->has && !pr_wino) ||
        !md_with_images(&j->src, 1, &s1))
        return 0;
    if (j->n->sum_in >= 0) {
        if (!md_with_images(&j->dst, 1, &d1))
            return 0;
    } else {
        int64_t yd[4] = {1, j->y->dims[1], j->y->dims[2], j->y->dims[3]};
        any_md(&d1, yd, 4);
    }
    if (conv_pd(b, j, &s1, &j->wmd, &d1, 1, pr_wino ? j->pr->impl : NULL, pd, &ignored) !=
        dnnl_success)
        return 0;
    if (!is_wino(*pd)) {
        dnnl_primitive_desc_destroy(*pd);
        return 0;
    }
    j->src = s1;
    j->dst = d1;
    return 1;
}

/* No fast kernel for the producer's layout (e.g. 4 channels per group in a
 * blocked layout): a jit kernel on a reordered input beats ref. Replaces *pd
 * when one exists and adds the input's reorder (j->src_t: the copy). */
static engine_status conv_avoid_ref(plan_builder *b, conv_job *j, dnnl_primitive_desc_t *pd) {
    dnnl_memory_desc_t sany, wany, dany = j->dst;
    dnnl_primitive_desc_t pd2;
    engine_status st = ENGINE_OK;
    any_md(&sany, j->x->dims, j->x->ndim);
    any_md(&wany, j->wd, j->wnd);
    if (j->n->sum_in < 0)
        any_md(&dany, j->y->dims, j->y->ndim);
    if (conv_pd(b, j, &sany, &wany, &dany, 0, NULL, &pd2, &st) != dnnl_success)
        return ENGINE_OK;
    if (is_ref(pd2)) {
        dnnl_primitive_desc_destroy(pd2);
        return ENGINE_OK;
    }
    dnnl_primitive_desc_destroy(*pd);
    *pd = pd2;
    const dnnl_memory_desc_t *need = dnnl_primitive_desc_query_md(*pd, dnnl_query_src_md, 0);
    if (dnnl_memory_desc_equal(need, &j->src))
        return ENGINE_OK;
    dnnl_memory_desc_t needc = *need;
    j->src_t = pb_temp(b, j->x->dims, j->x->ndim);
    if (j->src_t < 0 || (st = pb_reorder(b, j->n->in[0], &j->src, j->src_t, &needc)))
        return st ? st : ENGINE_ERR_NOMEM;
    return ENGINE_OK;
}

/* Direct KxK convolutions (K > 1) run faster in oneDNN 2.6's brgemm kernel
 * (brgconv:avx512_core), which takes channels-last (nhwc) tensors, than in
 * the direct kernel on the blocked layout the rest of the network uses:
 * 15-30% on ResNet-50's 3x3 layers in isolation at batch 1 on an AVX-512
 * Zen 5, 2 threads (docs/latency.md). Such a conv reads its input reordered
 * to nhwc and writes an nhwc temporary that is reordered back into the
 * blocked layout the direct kernel would have written, so its consumers see
 * what they saw before. The reorders cost more than the gain on large maps
 * (ResNet-50's stem, 124 MACs per element moved: 0.72 vs 0.60 ms), so only
 * convs doing at least CHANNELS_LAST_MACS_PER_ELEMENT take this path
 * (ResNet-50: the stride-2 3x3 convs, 230-920, and the 7x7 stage's 3x3
 * convs, 2300; per-node timing by `bench --tune` with the reorders counted,
 * 2 threads: 0.57 vs 0.61, 0.56 vs 0.68, 0.78 vs 1.01, 0.67-0.69 vs
 * 0.89-0.92 ms). Only for fp32 2-D convs without groups or an in-place residual sum,
 * and only when oneDNN offers the brgemm kernel (AVX-512): elsewhere (AVX2)
 * nothing changes. A node whose override is channels-last takes this path
 * whatever its MACs per element (1x1 convs included); one whose override is
 * direct never does. On success *pd is the brgemm pd, j->src_t the input copy
 * (if the input was not nhwc) and *out the temporary the conv writes; *back
 * is the layout to reorder it into. */
#define CHANNELS_LAST_MACS_PER_ELEMENT 200

/* The brgemm pd of j on nhwc input (*snhwc) and output (*tmp) with the
 * weights layout left to it (*wany), where the rules (or j's override) and
 * oneDNN allow it: 1 with *pd2 the caller's, else 0. */
static int cl_probe(plan_builder *b, conv_job *j, dnnl_primitive_desc_t *pd2,
                    dnnl_memory_desc_t *snhwc, dnnl_memory_desc_t *tmp, dnnl_memory_desc_t *wany) {
    const graph_node *n = j->n;
    int forced = j->want == ENGINE_CONV_CHANNELS_LAST;
    if (!b->m->channels_last || j->want == ENGINE_CONV_DIRECT || j->x->ndim != 4 ||
        j->w->ndim != 4 || (!forced && j->w->dims[2] * j->w->dims[3] <= 1) ||
        graph_attr_int(n, "group", 1) != 1 || n->sum_in >= 0 || j->src.data_type != dnnl_f32)
        return 0;
    /* the reorders move the input and the output once more: worth it only
     * where the conv does many multiply-adds per element moved (unless the
     * node's override asks for it: measured, bench --tune) */
    double macs = (double)j->y->dims[1] * j->y->dims[2] * j->y->dims[3] * j->w->dims[1] *
                  j->w->dims[2] * j->w->dims[3];
    double moved = (double)j->x->dims[1] * j->x->dims[2] * j->x->dims[3] +
                   (double)j->y->dims[1] * j->y->dims[2] * j->y->dims[3];
    if (!forced && macs < CHANNELS_LAST_MACS_PER_ELEMENT * moved)
        return 0;
    dnnl_dims_t xd, yd;
    for (int i = 0; i < 4; i++) {
        xd[i] = j->x->dims[i];
        yd[i] = j->y->dims[i];
    }
    dnnl_memory_desc_init_by_tag(snhwc, 4, xd, dnnl_f32, dnnl_nhwc);
    dnnl_memory_desc_init_by_tag(tmp, 4, yd, dnnl_f32, dnnl_nhwc);
    any_md(wany, j->wd, j->wnd);
    engine_status st = ENGINE_OK;
    if (conv_pd(b, j, snhwc, wany, tmp, 0, NULL, pd2, &st) != dnnl_success)
        return 0;
    if (strncmp(impl_of(*pd2), "brgconv", 7) != 0) {
        dnnl_primitive_desc_destroy(*pd2);
        return 0;
    }
    return 1;
}

/* 1 when j's channels-last override can be honoured (else the static rules apply). */
static int cl_available(plan_builder *b, conv_job *j) {
    dnnl_primitive_desc_t pd2;
    dnnl_memory_desc_t snhwc, tmp, wany;
    if (!cl_probe(b, j, &pd2, &snhwc, &tmp, &wany))
        return 0;
    dnnl_primitive_desc_destroy(pd2);
    return 1;
}

static engine_status conv_channels_last(plan_builder *b, conv_job *j, dnnl_primitive_desc_t *pd,
                                        int *out, dnnl_memory_desc_t *back,
                                        dnnl_memory_desc_t *tmp) {
    const graph_node *n = j->n;
    dnnl_memory_desc_t snhwc, wany;
    engine_status st = ENGINE_OK;
    dnnl_primitive_desc_t pd2;
    if (!cl_probe(b, j, &pd2, &snhwc, tmp, &wany))
        return ENGINE_OK;
    *back = *dnnl_primitive_desc_query_md(*pd, dnnl_query_dst_md, 0);
    if (!dnnl_memory_desc_equal(&snhwc, &j->src)) {
        int t = pb_temp(b, j->x->dims, j->x->ndim);
        if (t < 0 || (st = pb_reorder(b, n->in[0], &j->src, t, &snhwc))) {
            dnnl_primitive_desc_destroy(pd2);
            return st ? st : ENGINE_ERR_NOMEM;
        }
        j->src_t = t;
    }
    if ((*out = pb_temp(b, j->y->dims, j->y->ndim)) < 0) {
        dnnl_primitive_desc_destroy(pd2);
        return ENGINE_ERR_NOMEM;
    }
    j->wmd = wany;
    dnnl_primitive_desc_destroy(*pd);
    *pd = pd2;
    return ENGINE_OK;
}

/* The weights argument of step s in the layout pd wants: noted for
 * dnnl_model_prepare while probing, the prepared copy, the runtime tensor,
 * or constant weights reordered now into a buffer the plan owns. */
static engine_status conv_weights_arg(plan_builder *b, conv_job *j, plan_step *s,
                                      dnnl_primitive_desc_t pd) {
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_prepared *pr = j->pr;
    if (b->m->probing && j->wconst) { /* dnnl_model_prepare: note the layout, reorder later */
        dnnl_prepared *wp = (dnnl_prepared *)&b->m->prep[b->node];
        const char *impl = NULL;
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        wp->md = *want;
        wp->has = 2;
        snprintf(wp->impl, sizeof wp->impl, "%s", impl ? impl : "");
        return pb_arg_mem(b, s, DNNL_ARG_WEIGHTS, want, NULL);
    }
    if (pr->has && dnnl_memory_desc_equal(want, &pr->md))
        return pb_arg_mem(b, s, DNNL_ARG_WEIGHTS, &pr->md, pr->data);
    if (!j->wconst) {
        pb_arg_view(s, DNNL_ARG_WEIGHTS, j->n->in[1], &j->wplain);
        return ENGINE_OK;
    }
    const dnnl_memory_desc_t *from = j->w->f || !pr->has ? &j->wplain : &pr->md;
    void *fromdata = j->w->f || !pr->has ? (void *)j->w->f : pr->data;
    void *buf = pb_own(b, dnnl_memory_desc_get_size(want));
    dnnl_memory_desc_t wantc = *want;
    if (!buf || !fromdata)
        return pb_fail(b, ENGINE_ERR_NOMEM, "cannot reorder weights");
    dnnl_stream_t strm;
    dnnl_stream_create(&strm, b->m->eng, dnnl_stream_default_flags);
    dnnl_status_t ds = md_reorder_now(b->m->eng, strm, from, fromdata, &wantc, buf, NULL);
    dnnl_stream_destroy(strm);
    if (ds != dnnl_success)
        return pb_fail(b, ENGINE_ERR_BACKEND, "cannot reorder weights to the kernel's layout");
    return pb_arg_mem(b, s, DNNL_ARG_WEIGHTS, &wantc, buf);
}

engine_status dnnl_build_conv(plan_builder *b, const graph_node *n) {
    conv_job j;
    engine_status st = conv_mds(b, n, &j);
    if (st)
        return st;
    j.attr = conv_attr(n);
    j.want = b->m->conv_algo ? b->m->conv_algo[b->node] : ENGINE_CONV_AUTO;
    if (j.want == ENGINE_CONV_CHANNELS_LAST && !cl_available(b, &j))
        j.want = ENGINE_CONV_AUTO;
    dnnl_primitive_desc_t pd;
    int images = conv_one_image(b, &j, &pd);
    dnnl_status_t ds = images ? dnnl_success : conv_choose(b, &j, &pd, &st);
    if (st) {
        dnnl_primitive_attr_destroy(j.attr);
        return st;
    }
    if (ds == dnnl_success && is_ref(pd) && (st = conv_avoid_ref(b, &j, &pd))) {
        dnnl_primitive_desc_destroy(pd);
        dnnl_primitive_attr_destroy(j.attr);
        return st;
    }
    int out = n->out[0];
    dnnl_memory_desc_t back, tmp;
    if (ds == dnnl_success && !is_ref(pd) && !is_wino(pd) &&
        (st = conv_channels_last(b, &j, &pd, &out, &back, &tmp))) {
        dnnl_primitive_desc_destroy(pd);
        dnnl_primitive_attr_destroy(j.attr);
        return st;
    }
    dnnl_primitive_attr_destroy(j.attr);
    if (ds != dnnl_success)
        return pb_fail(b, ENGINE_ERR_UNSUPPORTED, "oneDNN has no convolution for this case (%d)",
                       ds);
    plan_step *s = pb_step(b);
    if (!s) {
        dnnl_primitive_desc_destroy(pd);
        return ENGINE_ERR_NOMEM;
    }
    s->algo = is_wino(pd)        ? ENGINE_CONV_WINOGRAD
              : out != n->out[0] ? ENGINE_CONV_CHANNELS_LAST
                                 : ENGINE_CONV_DIRECT;
    if (images) {
        s->images = b->p->batch;
        pb_arg_view(s, DNNL_ARG_SRC, j.src_t, &j.src);
        s->args[s->nargs - 1].img_bytes = md_image_bytes(&j.src);
    } else {
        pb_arg(s, DNNL_ARG_SRC, j.src_t);
    }
    st = conv_weights_arg(b, &j, s, pd);
    if (j.has_bias)
        pb_arg(s, DNNL_ARG_BIAS, n->in[2]);
    if (images) {
        const dnnl_memory_desc_t *d1 = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
        pb_arg_view(s, DNNL_ARG_DST, out, d1);
        s->args[s->nargs - 1].img_bytes = md_image_bytes(d1);
    } else {
        pb_arg(s, DNNL_ARG_DST, out);
    }
    if (st) {
        dnnl_primitive_desc_destroy(pd);
        return st;
    }
    if (n->sum_in >= 0) { /* in place: the output is the residual's buffer */
        const dnnl_memory_desc_t *got = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
        if (!dnnl_memory_desc_equal(got, &j.dst)) {
            dnnl_primitive_desc_destroy(pd);
            return pb_fail(b, ENGINE_ERR_BACKEND, "residual sum layout mismatch");
        }
        b->p->alias[n->out[0]] = n->sum_in;
    }
    if ((st = pb_prim_from_pd(b, s, pd, out)))
        return st;
    if (images && !md_with_images(&b->p->md[out], b->p->batch, &b->p->md[out]))
        return pb_fail(b, ENGINE_ERR_BACKEND, "per-image convolution output layout");
    if (out == n->out[0])
        return st;
    return pb_reorder(b, out, &tmp, n->out[0], &back);
}

engine_status dnnl_build_batchnorm(plan_builder *b, const graph_node *n) {
    dnnl_memory_desc_t src;
    engine_status st = pb_in_md(b, n->in[0], &src);
    if (st)
        return st;
    const graph_shape *x = &b->p->shapes[n->in[0]];
    for (int j = 1; j < 5; j++) {
        const graph_shape *v = &b->p->shapes[n->in[j]];
        if (v->ndim != 1 || x->ndim < 2 || v->dims[0] != x->dims[1])
            return pb_fail(b, ENGINE_ERR_INVALID, "scale/bias/mean/var must have C elements");
        dnnl_memory_desc_t m;
        if ((st = pb_in_md(b, n->in[j], &m)))
            return st;
    }
    unsigned flags = dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift;
    if (n->npost && n->post[0].kind == POST_RELU)
        flags |= dnnl_fuse_norm_relu;
    dnnl_batch_normalization_desc_t d;
    if (dnnl_batch_normalization_forward_desc_init(&d, dnnl_forward_inference, &src,
                                                   graph_attr_float(n, "epsilon", 1e-5f),
                                                   flags) != dnnl_success)
        return pb_fail(b, ENGINE_ERR_UNSUPPORTED, "oneDNN rejects this batch normalization");
    plan_step *s = pb_step(b);
    if (!s)
        return ENGINE_ERR_NOMEM;
    dnnl_primitive_attr_t attr = pb_attr();
    pb_arg(s, DNNL_ARG_SRC, n->in[0]);
    pb_arg(s, DNNL_ARG_SCALE, n->in[1]);
    pb_arg(s, DNNL_ARG_SHIFT, n->in[2]);
    pb_arg(s, DNNL_ARG_MEAN, n->in[3]);
    pb_arg(s, DNNL_ARG_VARIANCE, n->in[4]);
    pb_arg(s, DNNL_ARG_DST, n->out[0]);
    st = pb_prim(b, s, &d, attr, n->out[0]);
    dnnl_primitive_attr_destroy(attr);
    return st;
}
