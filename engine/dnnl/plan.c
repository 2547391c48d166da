/* plan.c — plan_build: per node, the builder its operator-table row names
 * (int8 Convs first try dnnl_build_conv_int8), then the graph outputs bound to
 * the caller's buffers (see plan.h). Memory planning and execution: plan_exec.c. */
#include "dnnl_build.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

engine_status dnnl_build_none(plan_builder *b, const graph_node *n) {
    return pb_fail(b, ENGINE_ERR_UNSUPPORTED, "operator cannot run on runtime tensors");
}

/* The builder of each op: the build column of the operator table, in enum
 * order (both come from GRAPH_OPS); sized by its initializers, so the count is
 * checked. */
#define DNNL_BUILD_ROW(NAME, onnx, nmin, nopt, attrs, check, shape, flags, build)                  \
    dnnl_build_##build,
static engine_status (*const builders[])(plan_builder *,
                                         const graph_node *) = {GRAPH_OPS(DNNL_BUILD_ROW)};
#undef DNNL_BUILD_ROW
_Static_assert(sizeof builders / sizeof builders[0] == OP_COUNT,
               "builders must have one entry per graph_op");

static engine_status build_node_fp32(plan_builder *b, const graph_node *n) {
    return builders[n->op](b, n);
}

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
    if (n->op == OP_MAXPOOL && dnnl_pool_int8_fits(b, n))
        return build_node_fp32(b, n); /* pools the integers (dnnl_pool.c) */
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

/* Tensor t takes the shape of `like` (a post-op keeps its input's shape). */
static void shape_like(plan *p, int t, int like) {
    p->shapes[t] = p->shapes[like];
    p->shapes[t].is_const = 0;
    p->shapes[t].f = NULL;
    p->shapes[t].i = NULL;
    p->shapes[t].owned = NULL;
}

/* Node n (a Conv or BatchNormalization with post-ops) unfused: the node
 * alone writes post_in[0], then each post-op is a step of its own, post-op
 * k reading post_in[k] and writing post_in[k+1] (the last: n's output). */
static engine_status build_unfused(plan_builder *b, const graph_node *n) {
    plan *p = b->p;
    int out = n->out[0];
    for (int k = 0; k < n->npost; k++)
        if (n->post_in[k] < 0 || n->post_in[k] >= b->m->g->nt)
            return pb_fail(b, ENGINE_ERR_INVALID, "post-op %d has no input tensor", k);
    graph_node c = *n;
    int cur = n->post_in[0], co[1] = {cur};
    c.npost = 0;
    c.sum_in = -1;
    c.out = co;
    c.nout = 1;
    shape_like(p, cur, out);
    engine_status st = build_node_fp32(b, &c);
    for (int k = 0; st == ENGINE_OK && k < n->npost; k++) {
        int next = k + 1 < n->npost ? n->post_in[k + 1] : out, ins[2] = {cur, n->sum_in},
            os[1] = {next};
        if (next != out)
            shape_like(p, next, out);
        const graph_post *q = &n->post[k];
        graph_attr at[2] = {{.name = (char *)"min", .type = ATTR_FLOAT, .f = q->alpha},
                            {.name = (char *)"max", .type = ATTR_FLOAT, .f = q->beta}};
        graph_node e = {
            .name = n->name, .op_type = n->op_type, .in = ins, .out = os, .nout = 1, .sum_in = -1};
        if (q->kind == POST_SUM) {
            e.op = OP_ADD;
            e.nin = 2;
            st = dnnl_build_binary(b, &e);
        } else {
            e.op = q->kind == POST_RELU ? OP_RELU : OP_CLIP;
            e.nin = 1;
            e.attr = at;
            e.nattr = q->kind == POST_CLIP ? 2 : 0;
            st = dnnl_build_eltwise(b, &e);
        }
        cur = next;
    }
    return st;
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
    return plan_build_unfused(m, batch, NULL, out, err, err_len);
}

engine_status plan_build_unfused(const dnnl_model *m, int batch, const char *unfuse, plan **out,
                                 char *err, size_t err_len) {
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
        if (unfuse && unfuse[i] && n->npost > 0 && !m->qrange &&
            (n->op == OP_CONV || n->op == OP_BATCHNORM))
            st = build_unfused(&b, n);
        else if (unfuse && unfuse[i] && m->qrange)
            st = pb_fail(&b, ENGINE_ERR_UNSUPPORTED, "int8 plans keep their fused post-ops");
        else
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
