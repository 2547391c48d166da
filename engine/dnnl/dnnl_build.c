/* dnnl_build.c — the helpers every op builder shares (see dnnl_build.h): memory
 * descs, tensors, steps, arguments, primitives and reorders of a plan under
 * construction. The bottom of engine/dnnl/: it calls no other file here. */
#include "dnnl_build.h"

#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

size_t md_image_bytes(const dnnl_memory_desc_t *md) {
    size_t dt = md->data_type == dnnl_f32 || md->data_type == dnnl_s32 ? 4
                : md->data_type == dnnl_u8 || md->data_type == dnnl_s8 ? 1
                                                                       : 2;
    return (size_t)md->format_desc.blocking.strides[0] * dt;
}

int md_with_images(const dnnl_memory_desc_t *md, int64_t n, dnnl_memory_desc_t *out) {
    if (md->format_kind != dnnl_blocked || md->ndims < 1 || md->offset0 != 0 ||
        md->padded_dims[0] != md->dims[0] || md->padded_offsets[0] != 0 || md->extra.flags != 0)
        return 0;
    for (int k = 0; k < md->format_desc.blocking.inner_nblks; k++)
        if (md->format_desc.blocking.inner_idxs[k] == 0)
            return 0;
    /* dim 0 outermost: one image is strides[0] elements, nothing interleaved */
    if (md_image_bytes(md) * (size_t)md->dims[0] != dnnl_memory_desc_get_size(md))
        return 0;
    *out = *md;
    out->dims[0] = out->padded_dims[0] = n;
    return 1;
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

void md_conv_weight_dims(const graph_shape *w, int64_t grp, dnnl_dims_t wd, int *wnd) {
    int k = 0;
    if (grp > 1)
        wd[k++] = grp;
    wd[k++] = w->dims[0] / grp;
    for (int i = 1; i < w->ndim; i++)
        wd[k++] = w->dims[i];
    *wnd = k;
}

/* Load- and build-time oneDNN work (these reorders) runs on the calling
 * thread alone. With more threads it would give that thread (main, a
 * loader) an OpenMP team of its own, idle for the rest of the process, and
 * libgomp, then counting more of its threads than CPUs, cuts every team's
 * spin between parallel regions from 300,000 iterations to 100: a
 * context's threads would sleep and be woken (futex) around each of a
 * ResNet-50's ~56 primitives, ~20% of a batch-1 run on 2 cores
 * (docs/latency.md). The primitive is created single-threaded as well, since
 * some reorders fix their thread count at creation. */
dnnl_status_t md_reorder_now(dnnl_engine_t eng, dnnl_stream_t strm, const dnnl_memory_desc_t *from,
                             void *fromdata, const dnnl_memory_desc_t *to, void *todata,
                             const_dnnl_primitive_attr_t attr) {
    dnnl_primitive_desc_t rpd;
    dnnl_primitive_t r;
    dnnl_memory_t ms, md;
    int nthr = omp_get_max_threads();
    omp_set_num_threads(1);
    dnnl_memory_create(&ms, from, eng, fromdata);
    dnnl_memory_create(&md, to, eng, todata);
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&rpd, from, eng, to, eng, attr);
    if (st == dnnl_success) {
        st = dnnl_primitive_create(&r, rpd);
        if (st == dnnl_success) {
            dnnl_exec_arg_t ea[2] = {{DNNL_ARG_FROM, ms}, {DNNL_ARG_TO, md}};
            st = dnnl_primitive_execute(r, strm, 2, ea);
            if (st == dnnl_success)
                st = dnnl_stream_wait(strm);
            dnnl_primitive_destroy(r);
        }
        dnnl_primitive_desc_destroy(rpd);
    }
    dnnl_memory_destroy(ms);
    dnnl_memory_destroy(md);
    omp_set_num_threads(nthr);
    return st;
}
