/* plan_exec.c — memory planning by liveness, memory objects, execution, teardown. */
#include "dnnl_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        const dnnl_memory_desc_t *md = s->args[a].view ? &s->args[a].md : &p->md[t];
        void *h = NULL;
        if (md->data_type != dnnl_f32 ||
            dnnl_memory_get_data_handle(s->args[a].mem, &h) != dnnl_success || !h)
            return;
        fn(ud, t, h, dnnl_memory_desc_get_size(md) / sizeof(float));
        return;
    }
}

engine_status plan_run_observe(plan *p, const graph *g, dnnl_stream_t strm,
                               const float *const *inputs, float *const *outputs,
                               plan_observe_fn fn, void *ud, char *err, size_t err_len) {
    for (int i = 0; i < p->ndyn; i++) {
        int r = p->dyn_root[i];
        void *h = p->bind[r] == BIND_INPUT ? (void *)inputs[p->bind_idx[r]]
                                           : (void *)outputs[p->bind_idx[r]];
        dnnl_memory_set_data_handle(p->dyn[i], h);
    }
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
            continue;
        }
        dnnl_status_t st = dnnl_primitive_execute(s->prim, strm, s->nargs, s->exec);
        if (st != dnnl_success) {
            snprintf(err, err_len, "oneDNN failed executing step %d (%d)", k, st);
            return ENGINE_ERR_BACKEND;
        }
        if (fn) {
            dnnl_stream_wait(strm);
            observe(p, g, k, fn, ud);
        }
    }
    if (dnnl_stream_wait(strm) != dnnl_success) {
        snprintf(err, err_len, "oneDNN stream failed");
        return ENGINE_ERR_BACKEND;
    }
    return ENGINE_OK;
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
