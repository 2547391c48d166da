/* dnnl_layout.c — ops that move data without arithmetic: Flatten/Reshape/Squeeze/
 * Unsqueeze/Identity (aliases of a plain buffer, a reorder only when the
 * source is blocked), Pad and Slice (small C kernels on plain tensors). */
#include "dnnl_build.h"

#include <math.h>
#include <string.h>

engine_status dnnl_build_reshape(plan_builder *b, const graph_node *n) {
    plan *p = b->p;
    int in = n->in[0], out = n->out[0];
    dnnl_memory_desc_t md;
    engine_status st = pb_in_md(b, in, &md);
    if (st)
        return st;
    if (n->op == OP_IDENTITY || n->op == OP_DROPOUT || n->op == OP_CAST) {
        p->md[out] = md;
    } else {
        if (!md_is_plain(&md) && (in = pb_plain(b, in)) < 0)
            return ENGINE_ERR_BACKEND;
        md_plain(&p->md[out], p->shapes[out].dims, p->shapes[out].ndim);
    }
    p->has_md[out] = 1;
    p->alias[out] = in;
    return ENGINE_OK;
}

/* Pad and Slice run as C steps on plain tensors: the source made plain (*in),
 * the step with both shapes; dnnl_run_custom does the work. */
static engine_status custom_begin(plan_builder *b, const graph_node *n, plan_custom kind,
                                  plan_step **s, int *in) {
    plan *p = b->p;
    if ((*in = pb_plain(b, n->in[0])) < 0)
        return ENGINE_ERR_BACKEND;
    const graph_shape *x = &p->shapes[n->in[0]], *y = &p->shapes[n->out[0]];
    if (!(*s = pb_step(b)))
        return ENGINE_ERR_NOMEM;
    (*s)->custom = kind;
    (*s)->ndim = x->ndim;
    memcpy((*s)->idims, x->dims, sizeof(*s)->idims);
    memcpy((*s)->odims, y->dims, sizeof(*s)->odims);
    return ENGINE_OK;
}

static engine_status custom_end(plan_builder *b, const graph_node *n, plan_step *s, int in) {
    plan *p = b->p;
    int out = n->out[0];
    pb_arg(s, DNNL_ARG_SRC, in);
    pb_arg(s, DNNL_ARG_DST, out);
    md_plain(&p->md[out], p->shapes[out].dims, p->shapes[out].ndim);
    p->has_md[out] = 1;
    return ENGINE_OK;
}

engine_status dnnl_build_pad(plan_builder *b, const graph_node *n) {
    plan_step *s;
    int in;
    int64_t pads[2 * GRAPH_MAX_DIMS];
    engine_status st = custom_begin(b, n, CUSTOM_PAD, &s, &in);
    if (st ||
        (st = graph_pad_params(b->m->g, n, b->p->shapes, pads, &s->value, b->err, b->err_len)))
        return st;
    memcpy(s->a, pads, (size_t)s->ndim * sizeof(int64_t));
    return custom_end(b, n, s, in);
}

engine_status dnnl_build_slice(plan_builder *b, const graph_node *n) {
    plan_step *s;
    int in;
    int64_t len[GRAPH_MAX_DIMS];
    engine_status st = custom_begin(b, n, CUSTOM_SLICE, &s, &in);
    if (st ||
        (st = graph_slice_params(b->m->g, n, b->p->shapes, s->a, s->b, len, b->err, b->err_len)))
        return st;
    return custom_end(b, n, s, in);
}

/* Clip whose bounds are runtime tensors (constant bounds run as a oneDNN eltwise). */
engine_status dnnl_build_clip_runtime(plan_builder *b, const graph_node *n) {
    plan *p = b->p;
    int in = pb_plain(b, n->in[0]), out = n->out[0];
    if (in < 0)
        return ENGINE_ERR_BACKEND;
    plan_step *s = pb_step(b);
    if (!s)
        return ENGINE_ERR_NOMEM;
    const graph_shape *y = &p->shapes[out];
    s->custom = CUSTOM_CLIP;
    s->ndim = y->ndim;
    memcpy(s->idims, y->dims, sizeof s->idims);
    memcpy(s->odims, y->dims, sizeof s->odims);
    pb_arg(s, DNNL_ARG_SRC, in);
    pb_arg(s, DNNL_ARG_DST, out);
    for (int j = 1; j < 3 && j < n->nin; j++) {
        dnnl_memory_desc_t md;
        if (n->in[j] < 0)
            continue;
        engine_status st = pb_in_md(b, n->in[j], &md);
        if (st)
            return st;
        s->a[j - 1] = 1;
        pb_arg(s, DNNL_ARG_SRC_1 + j, n->in[j]);
    }
    md_plain(&p->md[out], y->dims, y->ndim);
    p->has_md[out] = 1;
    return ENGINE_OK;
}

/* Row-major strides of dims. */
static void strides_of(const int64_t *dims, int nd, int64_t *st) {
    int64_t m = 1;
    for (int i = nd - 1; i >= 0; i--) {
        st[i] = m;
        m *= dims[i];
    }
}

void dnnl_run_custom(const plan_step *s, void *const *bufs) {
    const float *in = bufs[0];
    float *out = bufs[1];
    int nd = s->ndim;
    int64_t is[GRAPH_MAX_DIMS], os[GRAPH_MAX_DIMS], idx[GRAPH_MAX_DIMS] = {0};
    strides_of(s->idims, nd, is);
    strides_of(s->odims, nd, os);
    int64_t total = graph_numel(s->odims, nd);
    if (s->custom == CUSTOM_CLIP) {
        float lo = s->a[0] ? *(const float *)bufs[2] : -INFINITY;
        float hi = s->a[1] ? *(const float *)bufs[2 + s->a[0]] : INFINITY;
        for (int64_t k = 0; k < total; k++)
            out[k] = in[k] < lo ? lo : (in[k] > hi ? hi : in[k]);
        return;
    }
    if (s->custom == CUSTOM_PAD) {
        for (int64_t k = 0; k < total; k++)
            out[k] = s->value;
        int64_t itotal = graph_numel(s->idims, nd);
        int64_t row = nd ? s->idims[nd - 1] : 1;
        for (int64_t k = 0; k < itotal && row > 0; k += row) {
            int64_t r = k, o = 0;
            for (int i = nd - 1; i >= 0; i--) {
                o += (r % s->idims[i] + s->a[i]) * os[i];
                r /= s->idims[i];
            }
            memcpy(out + o, in + k, (size_t)row * sizeof(float));
        }
        return;
    }
    for (int64_t k = 0; k < total; k++) {
        int64_t o = 0;
        for (int i = 0; i < nd; i++)
            o += (s->a[i] + idx[i] * s->b[i]) * is[i];
        out[k] = in[o];
        for (int i = nd - 1; i >= 0; i--) {
            if (++idx[i] < s->odims[i])
                break;
            idx[i] = 0;
        }
    }
}
