/* plan_exec.c — memory planning by liveness, memory objects, execution, teardown. */
#include "dnnl_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ALIGN 64
#define SCRATCH_OFF ((size_t)-1)
#define NO_OFF ((size_t)-2)

static int root_of(const plan *p, int t) {
    while (p->alias[t] >= 0)
        t = p->alias[t];
    return t;
}

typedef struct {
    size_t off, size;
    int root;
} block;

/* First-fit placement of [size] among live blocks sorted by offset. */
static size_t place(block *live, int nlive, size_t size) {
    size_t at = 0;
    for (int i = 0; i < nlive; i++) {
        if (live[i].off >= at + size)
            break;
        if (live[i].off + live[i].size > at)
            at = live[i].off + live[i].size;
    }
    return at;
}

static engine_status plan_memory(plan *p) {
    for (int t = 0; t < p->nt; t++)
        p->first[t] = p->last[t] = -1;
    for (int k = 0; k < p->nsteps; k++)
        for (int a = 0; a < p->steps[k].nargs; a++) {
            int t = p->steps[k].args[a].tensor;
            if (t < 0)
                continue;
            int r = root_of(p, t);
            if (p->first[r] < 0)
                p->first[r] = k;
            p->last[r] = k;
        }
    block *live = malloc(((size_t)p->nt + 1) * sizeof *live);
    if (!live)
        return ENGINE_ERR_NOMEM;
    int nlive = 0;
    size_t top = 0;
    for (int k = 0; k < p->nsteps; k++) {
        for (int r = 0; r < p->nt; r++) {
            if (p->first[r] != k || p->alias[r] >= 0 || p->bind[r] != BIND_ARENA || !p->has_md[r])
                continue;
            size_t sz = (dnnl_memory_desc_get_size(&p->md[r]) + ALIGN - 1) / ALIGN * ALIGN;
            size_t at = place(live, nlive, sz);
            int pos = 0;
            while (pos < nlive && live[pos].off < at)
                pos++;
            memmove(live + pos + 1, live + pos, (size_t)(nlive - pos) * sizeof *live);
            live[pos] = (block){at, sz, r};
            nlive++;
            p->off[r] = at;
            if (at + sz > top)
                top = at + sz;
        }
        for (int i = 0; i < nlive;) {
            if (p->last[live[i].root] == k) {
                memmove(live + i, live + i + 1, (size_t)(nlive - i - 1) * sizeof *live);
                nlive--;
            } else {
                i++;
            }
        }
    }
    free(live);
    p->arena_size = top;
    return ENGINE_OK;
}

engine_status plan_finalize(plan_builder *b) {
    plan *p = b->p;
    engine_status st = plan_memory(p);
    if (st)
        return st;
    int nargs = 0;
    for (int k = 0; k < p->nsteps; k++)
        nargs += p->steps[k].nargs;
    p->dyn = malloc(((size_t)nargs + 1) * sizeof *p->dyn);
    p->dyn_root = malloc(((size_t)nargs + 1) * sizeof(int));
    p->amem = malloc(((size_t)nargs + 1) * sizeof *p->amem);
    p->aoff = malloc(((size_t)nargs + 1) * sizeof *p->aoff);
    if (!p->dyn || !p->dyn_root || !p->amem || !p->aoff)
        return pb_fail(b, ENGINE_ERR_NOMEM, "out of memory planning %d steps", p->nsteps);
    for (int k = 0; k < p->nsteps; k++) {
        plan_step *s = &p->steps[k];
        for (int a = 0; a < s->nargs; a++) {
            plan_arg *pa = &s->args[a];
            if (pa->tensor == -1)
                continue; /* fixed memory created by the builder */
            const dnnl_memory_desc_t *md = &pa->md;
            int r = -1;
            size_t aoff = SCRATCH_OFF;
            void *h = NULL;
            if (pa->tensor >= 0) {
                r = root_of(p, pa->tensor);
                if (!pa->view)
                    md = &p->md[pa->tensor];
                aoff = p->bind[r] == BIND_ARENA ? p->off[r] : NO_OFF;
                h = p->bind[r] == BIND_CONST ? p->cdata[r] : NULL;
            }
            if (dnnl_memory_create(&pa->mem, md, b->m->eng, h) != dnnl_success)
                return pb_fail(b, ENGINE_ERR_BACKEND, "cannot create a memory object");
            if (aoff != NO_OFF) { /* bound to the context's arena/scratchpad by plan_bind */
                p->amem[p->namem] = pa->mem;
                p->aoff[p->namem++] = aoff;
            }
            if (r >= 0 && (p->bind[r] == BIND_INPUT || p->bind[r] == BIND_OUTPUT)) {
                p->dyn[p->ndyn] = pa->mem;
                p->dyn_root[p->ndyn++] = r;
            }
        }
        for (int a = 0; a < s->nargs; a++)
            s->exec[a] = (dnnl_exec_arg_t){s->args[a].arg, s->args[a].mem};
    }
    return ENGINE_OK;
}

void plan_bind(plan *p, void *arena, void *scratch) {
    p->arena_base = arena;
    for (int i = 0; i < p->namem; i++)
        dnnl_memory_set_data_handle(
            p->amem[i], p->aoff[i] == SCRATCH_OFF ? scratch : (char *)arena + p->aoff[i]);
}

engine_status plan_run(plan *p, dnnl_stream_t strm, const float *const *inputs,
                       float *const *outputs, char *err, size_t err_len) {
    return plan_run_observe(p, NULL, strm, inputs, outputs, NULL, NULL, err, err_len);
}

/* After step k (the last of its node): hands the node's first output to fn. */
static void observe(const plan *p, const graph *g, int k, plan_observe_fn fn, void *ud) {
    const plan_step *s = &p->steps[k];
    if (s->node < 0 || (k + 1 < p->nsteps && p->steps[k + 1].node == s->node))
        return;
    int t = g->n[s->node].nout > 0 ? g->n[s->node].out[0] : -1;
    for (int a = 0; t >= 0 && a < s->nargs; a++) {
        if (s->args[a].tensor != t || !s->args[a].mem)
            continue;
        const dnnl_memory_desc_t *md =
            s->args[a].view && s->images <= 1 ? &s->args[a].md : &p->md[t];
        void *h = NULL;
        if (md->data_type != dnnl_f32 ||
            dnnl_memory_get_data_handle(s->args[a].mem, &h) != dnnl_success || !h)
            return;
        fn(ud, t, h, dnnl_memory_desc_get_size(md) / sizeof(float));
        return;
    }
}

/* The data of tensor t (its buffer's root) as bound for this run. */
static void *tensor_data(const plan *p, int t, const float *const *inputs, float *const *outputs) {
    int r = root_of(p, t);
    switch (p->bind[r]) {
    case BIND_ARENA:
        return p->first[r] >= 0 && p->arena_base ? (char *)p->arena_base + p->off[r] : NULL;
    case BIND_INPUT:
        return (void *)inputs[p->bind_idx[r]];
    case BIND_OUTPUT:
        return outputs[p->bind_idx[r]];
    default:
        return p->cdata[r];
    }
}

/* Copies out the fetches whose tap is complete after step k. */
static engine_status fetch_after(plan *p, dnnl_stream_t strm, int k, const float *const *inputs,
                                 float *const *outputs, const plan_fetch *f, int nf, char *err,
                                 size_t err_len) {
    for (int i = 0; i < nf; i++) {
        const plan_tap *pt = f[i].tap;
        if (pt->after != k)
            continue;
        char *base = tensor_data(p, pt->tensor, inputs, outputs);
        if (!base) {
            snprintf(err, err_len, "tap tensor %d has no data", pt->tensor);
            return ENGINE_ERR_BACKEND;
        }
        dnnl_memory_set_data_handle(pt->src, base + (size_t)f[i].image * pt->img_stride);
        dnnl_memory_set_data_handle(pt->dst, f[i].dst);
        dnnl_exec_arg_t ea[2] = {{DNNL_ARG_FROM, pt->src}, {DNNL_ARG_TO, pt->dst}};
        if (dnnl_primitive_execute(pt->prim, strm, 2, ea) != dnnl_success) {
            snprintf(err, err_len, "oneDNN failed copying out tap tensor %d", pt->tensor);
            return ENGINE_ERR_BACKEND;
        }
    }
    return ENGINE_OK;
}

static double mono_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* A step made for one image, run on each image of the batch in turn (its
 * per-image args moved, then put back for plan_bind's next run). */
static dnnl_status_t execute_per_image(plan_step *s, dnnl_stream_t strm) {
    void *base[PLAN_MAX_ARGS] = {0};
    dnnl_status_t st = dnnl_success;
    for (int a = 0; a < s->nargs; a++)
        if (s->args[a].img_bytes)
            dnnl_memory_get_data_handle(s->args[a].mem, &base[a]);
    for (int i = 0; i < s->images && st == dnnl_success; i++) {
        for (int a = 0; a < s->nargs; a++)
            if (s->args[a].img_bytes)
                dnnl_memory_set_data_handle(s->args[a].mem,
                                            (char *)base[a] + (size_t)i * s->args[a].img_bytes);
        st = dnnl_primitive_execute(s->prim, strm, s->nargs, s->exec);
    }
    for (int a = 0; a < s->nargs; a++)
        if (s->args[a].img_bytes)
            dnnl_memory_set_data_handle(s->args[a].mem, base[a]);
    return st;
}

static engine_status run_steps(plan *p, const graph *g, dnnl_stream_t strm,
                               const float *const *inputs, float *const *outputs,
                               plan_observe_fn fn, void *ud, const plan_fetch *f, int nf,
                               double *times, char *err, size_t err_len) {
    for (int i = 0; i < p->ndyn; i++) {
        int r = p->dyn_root[i];
        void *h = p->bind[r] == BIND_INPUT ? (void *)inputs[p->bind_idx[r]]
                                           : (void *)outputs[p->bind_idx[r]];
        dnnl_memory_set_data_handle(p->dyn[i], h);
    }
    engine_status est = ENGINE_OK;
    if (nf && (est = fetch_after(p, strm, -1, inputs, outputs, f, nf, err, err_len)) != ENGINE_OK)
        return est;
    double t0 = times ? mono_now() : 0;
    for (int k = 0; k < p->nsteps; k++) {
        plan_step *s = &p->steps[k];
        if (s->custom != CUSTOM_NONE) {
            void *bufs[PLAN_MAX_ARGS] = {0};
            dnnl_stream_wait(strm);
            for (int a = 0; a < s->nargs; a++)
                dnnl_memory_get_data_handle(s->args[a].mem, &bufs[a]);
            dnnl_run_custom(s, bufs);
            if (fn)
                observe(p, g, k, fn, ud);
        } else {
            dnnl_status_t st = s->images > 1
                                   ? execute_per_image(s, strm)
                                   : dnnl_primitive_execute(s->prim, strm, s->nargs, s->exec);
            if (st != dnnl_success) {
                snprintf(err, err_len, "oneDNN failed executing step %d (%d)", k, st);
                return ENGINE_ERR_BACKEND;
            }
            if (fn) {
                dnnl_stream_wait(strm);
                observe(p, g, k, fn, ud);
            }
        }
        if (nf &&
            (est = fetch_after(p, strm, k, inputs, outputs, f, nf, err, err_len)) != ENGINE_OK)
            return est;
        if (times) {
            dnnl_stream_wait(strm);
            double t1 = mono_now();
            times[k] = t1 - t0;
            t0 = t1;
        }
    }
    if (dnnl_stream_wait(strm) != dnnl_success) {
        snprintf(err, err_len, "oneDNN stream failed");
        return ENGINE_ERR_BACKEND;
    }
    return ENGINE_OK;
}

engine_status plan_run_observe(plan *p, const graph *g, dnnl_stream_t strm,
                               const float *const *inputs, float *const *outputs,
                               plan_observe_fn fn, void *ud, char *err, size_t err_len) {
    return run_steps(p, g, strm, inputs, outputs, fn, ud, NULL, 0, NULL, err, err_len);
}

engine_status plan_run_timed(plan *p, dnnl_stream_t strm, const float *const *inputs,
                             float *const *outputs, double *step_sec, char *err, size_t err_len) {
    return run_steps(p, NULL, strm, inputs, outputs, NULL, NULL, NULL, 0, step_sec, err, err_len);
}

engine_status plan_run_fetch(plan *p, dnnl_stream_t strm, const float *const *inputs,
                             float *const *outputs, const plan_fetch *f, int nf, char *err,
                             size_t err_len) {
    return run_steps(p, NULL, strm, inputs, outputs, NULL, NULL, f, nf, NULL, err, err_len);
}

/* The step after which graph tensor t holds its value: the last step of the
 * node that produces it, or, for a node without steps (a reshape aliasing
 * its source), that of its source; for a tensor no node produces (a
 * temporary, a fused-away tensor a plan variant computes) the last step that
 * writes it. -1: before the first step (an input);
 * -2: not computed by this plan. */
static int ready_step(const plan *p, const graph *g, int t) {
    for (int depth = 0; depth < 64 && t >= 0; depth++) {
        if (t < g->nt && g->t[t].is_input)
            return -1;
        int node = t < g->nt ? g->t[t].producer : -1;
        for (int k = p->nsteps - 1; node >= 0 && k >= 0; k--)
            if (p->steps[k].node == node)
                return k;
        if (node < 0) { /* a temporary, or a post_in tensor of an unfused node:
                           the last step that writes it */
            for (int k = p->nsteps - 1; k >= 0; k--)
                for (int a = 0; a < p->steps[k].nargs; a++)
                    if (p->steps[k].args[a].tensor == t && p->steps[k].args[a].arg == DNNL_ARG_DST)
                        return k;
        }
        t = p->alias[t];
    }
    return -2;
}

engine_status plan_tap_init(const dnnl_model *m, const plan *p, int t, plan_tap *out, char *err,
                            size_t err_len) {
    memset(out, 0, sizeof *out);
    out->tensor = t;
    const graph *g = m->g;
    if (t < 0 || t >= g->nt || !p->has_md[t] || p->shapes[t].is_const || p->shapes[t].ndim < 1 ||
        p->shapes[t].dims[0] != p->batch) {
        snprintf(err, err_len, "tensor '%s' is not computed per image by the plan",
                 t >= 0 && t < g->nt ? g->t[t].name : "?");
        return ENGINE_ERR_UNSUPPORTED;
    }
    if ((out->after = ready_step(p, g, t)) < -1) {
        snprintf(err, err_len, "tensor '%s' is not written by the plan", g->t[t].name);
        return ENGINE_ERR_UNSUPPORTED;
    }
    const dnnl_memory_desc_t *md = &p->md[t];
    int blocked_batch = 0;
    if (md->format_kind == dnnl_blocked)
        for (int i = 0; i < md->format_desc.blocking.inner_nblks; i++)
            blocked_batch |= md->format_desc.blocking.inner_idxs[i] == 0;
    dnnl_dims_t one, zero = {0};
    memcpy(one, md->dims, sizeof one);
    one[0] = 1;
    dnnl_memory_desc_t src, dst;
    if (md->format_kind != dnnl_blocked || blocked_batch || md->offset0 != 0 ||
        dnnl_memory_desc_init_submemory(&src, md, one, zero) != dnnl_success) {
        snprintf(err, err_len, "tensor '%s' has a layout that cannot be split per image",
                 g->t[t].name);
        return ENGINE_ERR_UNSUPPORTED;
    }
    out->img_stride = md_image_bytes(md);
    int64_t d1[GRAPH_MAX_DIMS];
    memcpy(d1, p->shapes[t].dims, sizeof d1);
    d1[0] = 1;
    md_plain(&dst, d1, p->shapes[t].ndim);
    int64_t per = graph_numel(d1, p->shapes[t].ndim);
    out->per = per > 0 ? (size_t)per : 0;
    float scale = md->data_type == dnnl_u8 || md->data_type == dnnl_s8
                      ? (p->qscale[t] > 0 ? 1.0f / p->qscale[t] : 1.0f)
                      : 1.0f;
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) {
        snprintf(err, err_len, "out of memory");
        return ENGINE_ERR_NOMEM;
    }
    if (scale != 1.0f)
        dnnl_primitive_attr_set_output_scales(attr, 1, 0, &scale);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, &src, m->eng, &dst, m->eng, attr);
    dnnl_primitive_attr_destroy(attr);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&out->prim, pd);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (st == dnnl_success)
        st = dnnl_memory_create(&out->src, &src, m->eng, DNNL_MEMORY_NONE);
    if (st == dnnl_success)
        st = dnnl_memory_create(&out->dst, &dst, m->eng, DNNL_MEMORY_NONE);
    if (st != dnnl_success) {
        plan_tap_release(out);
        snprintf(err, err_len, "oneDNN cannot copy out tensor '%s' (%d)", g->t[t].name, st);
        return ENGINE_ERR_BACKEND;
    }
    return ENGINE_OK;
}

void plan_tap_release(plan_tap *pt) {
    if (pt->prim)
        dnnl_primitive_destroy(pt->prim);
    if (pt->src)
        dnnl_memory_destroy(pt->src);
    if (pt->dst)
        dnnl_memory_destroy(pt->dst);
    pt->prim = NULL;
    pt->src = pt->dst = NULL;
}

void plan_free(plan *p) {
    if (!p)
        return;
    for (int k = 0; k < p->nsteps; k++) {
        plan_step *s = &p->steps[k];
        for (int a = 0; a < s->nargs; a++)
            if (s->args[a].mem)
                dnnl_memory_destroy(s->args[a].mem);
        if (s->prim)
            dnnl_primitive_destroy(s->prim);
    }
    if (p->shapes)
        graph_shapes_release(p->shapes, p->capt);
    for (int i = 0; i < p->nowned; i++)
        free(p->owned[i]);
    free(p->owned);
    free(p->steps);
    free(p->shapes);
    free(p->md);
    free(p->has_md);
    free(p->alias);
    free(p->bind);
    free(p->bind_idx);
    free(p->last);
    free(p->first);
    free(p->off);
    free(p->cdata);
    free(p->qscale);
    free(p->deq);
    free(p->quq);
    free(p->amem);
    free(p->aoff);
    free(p->dyn);
    free(p->dyn_root);
    free(p);
}
