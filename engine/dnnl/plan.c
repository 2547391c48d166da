/* plan.c — plan construction, liveness-based memory planning and execution (see plan.h). */
#include "plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARG_SCRATCH (-2)
#define ALIGN 64

engine_status pb_fail(plan_builder *b, engine_status st, const char *fmt, ...) {
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (b->node >= 0) {
        const graph_node *n = &b->m->g->n[b->node];
        snprintf(b->err, b->err_len, "node '%s' (%s): %s", n->name, n->op_type, msg);
    } else {
        snprintf(b->err, b->err_len, "%s", msg);
    }
    return st;
}

void md_plain(dnnl_memory_desc_t *md, const int64_t *dims, int ndim) {
    dnnl_dims_t d, s;
    int nd = ndim > 0 ? ndim : 1;
    for (int i = 0; i < nd; i++)
        d[i] = ndim > 0 ? dims[i] : 1;
    int64_t st = 1;
    for (int i = nd - 1; i >= 0; i--) {
        s[i] = st;
        st *= d[i] > 0 ? d[i] : 1;
    }
    dnnl_memory_desc_init_by_strides(md, nd, d, dnnl_f32, s);
}

static int64_t md_offset(const dnnl_memory_desc_t *md, const int64_t *idx) {
    const dnnl_blocking_desc_t *bd = &md->format_desc.blocking;
    int64_t blk[DNNL_MAX_NDIMS] = {0}, rem[DNNL_MAX_NDIMS] = {0}, off = md->offset0;
    for (int i = 0; i < md->ndims; i++)
        blk[i] = 1;
    for (int k = 0; k < bd->inner_nblks; k++)
        blk[bd->inner_idxs[k]] *= bd->inner_blks[k];
    for (int i = 0; i < md->ndims; i++) {
        off += (idx[i] / blk[i]) * bd->strides[i];
        rem[i] = idx[i] % blk[i];
    }
    int64_t inner = 0, mul = 1;
    for (int k = bd->inner_nblks - 1; k >= 0; k--) {
        int d = bd->inner_idxs[k];
        inner += (rem[d] % bd->inner_blks[k]) * mul;
        rem[d] /= bd->inner_blks[k];
        mul *= bd->inner_blks[k];
    }
    return off + inner;
}

int md_is_plain(const dnnl_memory_desc_t *md) {
    if (md->format_kind != dnnl_blocked || md->data_type != dnnl_f32)
        return 0;
    int64_t total = 1;
    for (int i = 0; i < md->ndims; i++) {
        if (md->padded_dims[i] != md->dims[i] || md->padded_offsets[i])
            return 0;
        total *= md->dims[i];
    }
    /* compare offsets of every element (small) or a strided sample (large) */
    int64_t step = total > 65536 ? total / 65536 + 1 : 1, idx[DNNL_MAX_NDIMS];
    for (int64_t k = 0; k < total; k += step) {
        int64_t r = k;
        for (int i = md->ndims - 1; i >= 0; i--) {
            idx[i] = r % md->dims[i];
            r /= md->dims[i];
        }
        if (md_offset(md, idx) != k)
            return 0;
    }
    return 1;
}

void *pb_own(plan_builder *b, size_t bytes) {
    plan *p = b->p;
    if (p->nowned == p->capo) {
        int cap = p->capo ? p->capo * 2 : 16;
        void **o = realloc(p->owned, (size_t)cap * sizeof *o);
        if (!o)
            return NULL;
        p->owned = o;
        p->capo = cap;
    }
    void *q = aligned_alloc(ALIGN, (bytes + ALIGN - 1) / ALIGN * ALIGN + ALIGN);
    if (q)
        p->owned[p->nowned++] = q;
    return q;
}

dnnl_primitive_attr_t pb_attr(void) {
    dnnl_primitive_attr_t a = NULL;
    if (dnnl_primitive_attr_create(&a) != dnnl_success)
        return NULL;
    dnnl_primitive_attr_set_scratchpad_mode(a, dnnl_scratchpad_mode_user);
    return a;
}

engine_status pb_in_md(plan_builder *b, int t, dnnl_memory_desc_t *md) {
    plan *p = b->p;
    if (t < 0)
        return pb_fail(b, ENGINE_ERR_INVALID, "missing input");
    if (!p->has_md[t]) {
        const graph_shape *s = &p->shapes[t];
        if (!s->is_const)
            return pb_fail(b, ENGINE_ERR_INVALID, "input '%s' is not computed", b->m->g->t[t].name);
        if (s->dtype != GRAPH_F32 || !s->f)
            return pb_fail(b, ENGINE_ERR_UNSUPPORTED, "integer tensor '%s' used as data",
                           b->m->g->t[t].name);
        md_plain(&p->md[t], s->dims, s->ndim);
        p->has_md[t] = 1;
        p->bind[t] = BIND_CONST;
        p->cdata[t] = (void *)s->f;
    }
    *md = p->md[t];
    return ENGINE_OK;
}

int pb_temp(plan_builder *b, const int64_t *dims, int ndim) {
    plan *p = b->p;
    if (p->nt == p->capt) {
        pb_fail(b, ENGINE_ERR_NOMEM, "too many temporaries");
        return -1;
    }
    int t = p->nt++;
    p->shapes[t].ndim = ndim;
    memcpy(p->shapes[t].dims, dims, (size_t)ndim * sizeof(int64_t));
    return t;
}

plan_step *pb_step(plan_builder *b) {
    plan *p = b->p;
    if (p->nsteps == p->caps) {
        int cap = p->caps ? p->caps * 2 : 64;
        plan_step *s = realloc(p->steps, (size_t)cap * sizeof *s);
        if (!s)
            return NULL;
        p->steps = s;
        p->caps = cap;
    }
    plan_step *s = &p->steps[p->nsteps++];
    memset(s, 0, sizeof *s);
    s->node = b->node;
    return s;
}

void pb_arg(plan_step *s, int arg, int tensor) {
    s->args[s->nargs++] = (plan_arg){.arg = arg, .tensor = tensor};
}

void pb_arg_view(plan_step *s, int arg, int tensor, const dnnl_memory_desc_t *md) {
    s->args[s->nargs++] = (plan_arg){.arg = arg, .tensor = tensor, .view = 1, .md = *md};
}

engine_status pb_arg_mem(plan_builder *b, plan_step *s, int arg, const dnnl_memory_desc_t *md,
                         void *data) {
    plan_arg *a = &s->args[s->nargs];
    *a = (plan_arg){.arg = arg, .tensor = -1, .md = *md};
    if (dnnl_memory_create(&a->mem, md, b->m->eng, data) != dnnl_success)
        return pb_fail(b, ENGINE_ERR_BACKEND, "cannot create a memory object");
    s->nargs++;
    return ENGINE_OK;
}

engine_status pb_prim_from_pd(plan_builder *b, plan_step *s, dnnl_primitive_desc_t pd, int out) {
    plan *p = b->p;
    if (out >= 0) {
        p->md[out] = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
        p->has_md[out] = 1;
    }
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (sp && sp->ndims > 0) {
        size_t sz = dnnl_memory_desc_get_size(sp);
        if (sz > p->scratch_size)
            p->scratch_size = sz;
        s->args[s->nargs++] =
            (plan_arg){.arg = DNNL_ARG_SCRATCHPAD, .tensor = ARG_SCRATCH, .md = *sp};
    }
    dnnl_status_t st = dnnl_primitive_create(&s->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success)
        return pb_fail(b, ENGINE_ERR_BACKEND, "oneDNN could not create the primitive (%d)", st);
    return ENGINE_OK;
}

engine_status pb_prim(plan_builder *b, plan_step *s, const void *op_desc,
                      dnnl_primitive_attr_t attr, int out) {
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, op_desc, attr, b->m->eng, NULL);
    if (st != dnnl_success)
        return pb_fail(b, st == dnnl_unimplemented ? ENGINE_ERR_UNSUPPORTED : ENGINE_ERR_BACKEND,
                       "oneDNN has no implementation for these shapes/attributes (%d)", st);
    return pb_prim_from_pd(b, s, pd, out);
}

engine_status pb_reorder(plan_builder *b, int src, const dnnl_memory_desc_t *src_md, int dst,
                         const dnnl_memory_desc_t *dst_md) {
    return pb_reorder_scaled(b, src, src_md, dst, dst_md, 1.0f);
}

engine_status pb_reorder_scaled(plan_builder *b, int src, const dnnl_memory_desc_t *src_md, int dst,
                                const dnnl_memory_desc_t *dst_md, float scale) {
    return pb_reorder_zp(b, src, src_md, dst, dst_md, scale, 0);
}

engine_status pb_reorder_zp(plan_builder *b, int src, const dnnl_memory_desc_t *src_md, int dst,
                            const dnnl_memory_desc_t *dst_md, float scale, int zp) {
    dnnl_primitive_attr_t attr = pb_attr();
    if (!attr)
        return pb_fail(b, ENGINE_ERR_NOMEM, "out of memory");
    if (scale != 1.0f)
        dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale);
    if (zp)
        dnnl_primitive_attr_set_zero_points(attr, DNNL_ARG_DST, 1, 0, &zp);
    dnnl_primitive_desc_t pd;
    dnnl_status_t st =
        dnnl_reorder_primitive_desc_create(&pd, src_md, b->m->eng, dst_md, b->m->eng, attr);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return pb_fail(b, ENGINE_ERR_BACKEND, "oneDNN cannot reorder (%d)", st);
    plan_step *s = pb_step(b);
    if (!s) {
        dnnl_primitive_desc_destroy(pd);
        return ENGINE_ERR_NOMEM;
    }
    pb_arg_view(s, DNNL_ARG_FROM, src, src_md);
    pb_arg_view(s, DNNL_ARG_TO, dst, dst_md);
    return pb_prim_from_pd(b, s, pd, dst);
}

int pb_plain(plan_builder *b, int t) {
    dnnl_memory_desc_t md;
    if (pb_in_md(b, t, &md) != ENGINE_OK)
        return -1;
    if (md_is_plain(&md))
        return t;
    const graph_shape *s = &b->p->shapes[t];
    int tt = pb_temp(b, s->dims, s->ndim);
    if (tt < 0)
        return -1;
    dnnl_memory_desc_t pm;
    md_plain(&pm, s->dims, s->ndim);
    return pb_reorder(b, t, &md, tt, &pm) == ENGINE_OK ? tt : -1;
}

int pb_f32(plan_builder *b, int t) {
    plan *p = b->p;
    if (t < 0 || !p->has_md[t] || p->md[t].data_type == dnnl_f32)
        return t;
    if (p->deq[t] >= 0)
        return p->deq[t];
    const graph_shape *s = &p->shapes[t];
    int tt = pb_temp(b, s->dims, s->ndim);
    if (tt < 0)
        return -1;
    dnnl_memory_desc_t from = p->md[t], to = p->md[t];
    to.data_type = dnnl_f32;
    if (pb_reorder_scaled(b, t, &from, tt, &to, 1.0f / p->qscale[t]) != ENGINE_OK)
        return -1;
    p->deq[t] = tt;
    return tt;
}

static engine_status build_node_fp32(plan_builder *b, const graph_node *n);

/* int8 plans: a quantizable Conv runs in int8; every other node reads f32, so
 * its u8/s8 inputs are dequantized first (once per tensor). */
static engine_status build_node(plan_builder *b, const graph_node *n) {
    if (!b->m->qrange)
        return build_node_fp32(b, n);
    if (n->op == OP_CONV && dnnl_conv_int8_fits(b, n)) {
        engine_status st = dnnl_build_conv_int8(b, n);
        if (st != ENGINE_ERR_UNSUPPORTED)
            return st;
    }
    int quantized = n->sum_in >= 0 && pb_f32(b, n->sum_in) != n->sum_in;
    for (int j = 0; j < n->nin && !quantized; j++)
        quantized = pb_f32(b, n->in[j]) != n->in[j];
    if (!quantized)
        return build_node_fp32(b, n);
    graph_node copy = *n;
    int *in = malloc(((size_t)n->nin + 1) * sizeof *in);
    if (!in)
        return pb_fail(b, ENGINE_ERR_NOMEM, "out of memory");
    for (int j = 0; j < n->nin; j++)
        if ((in[j] = pb_f32(b, n->in[j])) < 0 && n->in[j] >= 0) {
            free(in);
            return ENGINE_ERR_BACKEND;
        }
    copy.in = in;
    if (n->sum_in >= 0 && (copy.sum_in = pb_f32(b, n->sum_in)) < 0) {
        free(in);
        return ENGINE_ERR_BACKEND;
    }
    engine_status st = build_node_fp32(b, &copy);
    free(in);
    return st;
}

static engine_status build_node_fp32(plan_builder *b, const graph_node *n) {
    switch (n->op) {
    case OP_CONV:
        return dnnl_build_conv(b, n);
    case OP_BATCHNORM:
        return dnnl_build_batchnorm(b, n);
    case OP_MAXPOOL:
    case OP_AVGPOOL:
    case OP_GLOBALAVGPOOL:
        return dnnl_build_pool(b, n);
    case OP_RELU:
    case OP_CLIP:
        return dnnl_build_eltwise(b, n);
    case OP_ADD:
    case OP_MUL:
    case OP_SUM:
        return dnnl_build_binary(b, n);
    case OP_SOFTMAX:
        return dnnl_build_softmax(b, n);
    case OP_CONCAT:
        return dnnl_build_concat(b, n);
    case OP_GEMM:
    case OP_MATMUL:
        return dnnl_build_matmul(b, n);
    case OP_FLATTEN:
    case OP_RESHAPE:
    case OP_IDENTITY:
    case OP_DROPOUT:
    case OP_SQUEEZE:
    case OP_UNSQUEEZE:
    case OP_CAST:
        return dnnl_build_reshape(b, n);
    case OP_PAD:
    case OP_SLICE:
        return dnnl_build_pad_slice(b, n);
    default:
        return pb_fail(b, ENGINE_ERR_UNSUPPORTED, "operator cannot run on runtime tensors");
    }
}

/* Graph output t must live in the caller's buffer, plain: bind it, or add a copy. */
static engine_status bind_output(plan_builder *b, int t, int oi, int s0) {
    plan *p = b->p;
    dnnl_memory_desc_t pm;
    md_plain(&pm, p->shapes[t].dims, p->shapes[t].ndim);
    if (p->has_md[t] && p->bind[t] == BIND_ARENA && p->alias[t] < 0 &&
        dnnl_memory_desc_equal(&p->md[t], &pm)) {
        p->bind[t] = BIND_OUTPUT;
        p->bind_idx[t] = oi;
        return ENGINE_OK;
    }
    dnnl_memory_desc_t md;
    engine_status st = pb_in_md(b, t, &md);
    if (st)
        return st;
    int tt = pb_temp(b, p->shapes[t].dims, p->shapes[t].ndim);
    if (tt < 0)
        return ENGINE_ERR_NOMEM;
    /* the node's steps write tt instead; t becomes the plain copy */
    p->md[tt] = p->md[t];
    p->has_md[tt] = 1;
    p->alias[tt] = p->alias[t];
    p->bind[tt] = p->bind[t];
    p->bind_idx[tt] = p->bind_idx[t];
    p->cdata[tt] = p->cdata[t];
    for (int k = s0; k < p->nsteps; k++)
        for (int a = 0; a < p->steps[k].nargs; a++)
            if (p->steps[k].args[a].tensor == t)
                p->steps[k].args[a].tensor = tt;
    for (int k = 0; k < p->nt; k++)
        if (p->alias[k] == t)
            p->alias[k] = tt;
    p->alias[t] = -1;
    p->has_md[t] = 0;
    st = pb_reorder(b, tt, &md, t, &pm);
    p->bind[t] = BIND_OUTPUT;
    p->bind_idx[t] = oi;
    return st;
}

static engine_status plan_alloc(plan *p, int nt) {
    p->capt = nt * 3 + 64;
    size_t c = (size_t)p->capt;
    p->shapes = calloc(c, sizeof *p->shapes);
    p->md = calloc(c, sizeof *p->md);
    p->has_md = calloc(c, 1);
    p->alias = malloc(c * sizeof(int));
    p->bind = calloc(c, sizeof(int));
    p->bind_idx = calloc(c, sizeof(int));
    p->last = malloc(c * sizeof(int));
    p->first = malloc(c * sizeof(int));
    p->off = calloc(c, sizeof(size_t));
    p->cdata = calloc(c, sizeof(void *));
    p->qscale = calloc(c, sizeof(float));
    p->deq = malloc(c * sizeof(int));
    p->quq = malloc(c * sizeof(int));
    if (!p->shapes || !p->md || !p->has_md || !p->alias || !p->bind || !p->bind_idx || !p->last ||
        !p->first || !p->off || !p->cdata || !p->qscale || !p->deq || !p->quq)
        return ENGINE_ERR_NOMEM;
    for (size_t i = 0; i < c; i++)
        p->alias[i] = p->deq[i] = p->quq[i] = -1;
    p->nt = nt;
    return ENGINE_OK;
}

engine_status plan_build(const dnnl_model *m, int batch, plan **out, char *err, size_t err_len) {
    const graph *g = m->g;
    plan *p = calloc(1, sizeof *p);
    *out = NULL;
    if (!p || plan_alloc(p, g->nt) != ENGINE_OK) {
        plan_free(p);
        snprintf(err, err_len, "out of memory building the plan");
        return ENGINE_ERR_NOMEM;
    }
    p->batch = batch;
    plan_builder b = {.m = m, .p = p, .node = -1, .err = err, .err_len = err_len};
    engine_status st = graph_infer(g, batch, p->shapes, err, err_len);
    for (int i = 0; st == ENGINE_OK && i < g->nin; i++) {
        int t = g->inputs[i];
        md_plain(&p->md[t], p->shapes[t].dims, p->shapes[t].ndim);
        p->has_md[t] = 1;
        p->bind[t] = BIND_INPUT;
        p->bind_idx[t] = i;
    }
    for (int i = 0; st == ENGINE_OK && i < g->nn; i++) {
        const graph_node *n = &g->n[i];
        int folded = 1;
        for (int j = 0; j < n->nout; j++)
            if (n->out[j] >= 0 && !p->shapes[n->out[j]].is_const)
                folded = 0;
        if (folded)
            continue;
        b.node = i;
        int s0 = p->nsteps;
        st = build_node(&b, n);
        for (int j = 0; st == ENGINE_OK && j < n->nout; j++) {
            int t = n->out[j];
            for (int o = 0; t >= 0 && o < g->nout; o++)
                if (g->outputs[o] == t && st == ENGINE_OK)
                    st = bind_output(&b, t, o, s0);
        }
    }
    b.node = -1;
    for (int o = 0; st == ENGINE_OK && o < g->nout; o++) {
        int t = g->outputs[o];
        if (p->shapes[t].is_const || p->bind[t] == BIND_INPUT)
            st = bind_output(&b, t, o, p->nsteps);
    }
    if (st == ENGINE_OK)
        st = plan_finalize(&b);
    if (st != ENGINE_OK) {
        plan_free(p);
        return st;
    }
    *out = p;
    return ENGINE_OK;
}
