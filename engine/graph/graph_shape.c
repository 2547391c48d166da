/* graph_shape.c — per-batch shape inference and constant folding (see graph_shape.h):
 * the walk over the nodes; each op's rule is its row of the operator table. */
#include "graph_shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(st, ...) GRAPH_FAIL_TO(err, err_len, st, __VA_ARGS__)

static int all_const(const graph_node *n, const graph_shape *s) {
    for (int j = 0; j < n->nin; j++)
        if (n->in[j] >= 0 && !s[n->in[j]].is_const)
            return 0;
    return 1;
}

/* Shapes (and folded values) of one node's outputs, through its row of the
 * operator table: required inputs, the op's shape function, then the rules
 * every op shares (other outputs, folding, shape arithmetic on constants). */
static engine_status infer_node(const graph *g, const graph_node *n, graph_shape *s, char *err,
                                size_t err_len) {
    const graph_op_def *d = &graph_op_defs[n->op];
    if (n->nin < 1)
        FAIL(ENGINE_ERR_INVALID, "node '%s': no input", n->name);
    for (int j = 0, req = d->nin_opt < n->nin ? d->nin_opt : n->nin; j < req; j++)
        if (n->in[j] < 0)
            FAIL(ENGINE_ERR_INVALID, "node '%s': required input %d is empty", n->name, j);
    graph_shape_call c = {.g = g,
                          .n = n,
                          .s = s,
                          .x = &s[n->in[0]],
                          .o = &s[n->out[0]],
                          .err = err,
                          .err_len = err_len};
    graph_shape *o = c.o;
    o->ndim = c.x->ndim;
    memcpy(o->dims, c.x->dims, sizeof o->dims);
    o->dtype = GRAPH_F32;
    engine_status st = d->shape(&c);
    if (st != ENGINE_OK || c.done)
        return st;
    for (int j = 1; j < n->nout; j++)
        if (n->out[j] >= 0) {
            s[n->out[j]].ndim = o->ndim;
            memcpy(s[n->out[j]].dims, o->dims, sizeof o->dims);
        }
    if ((d->flags & OPF_FOLD) && all_const(n, s))
        return graph_fold(&c);
    if ((d->flags & OPF_CONST) || o->dtype == GRAPH_I64)
        FAIL(ENGINE_ERR_UNSUPPORTED,
             "node '%s' (%s): integer or shape computation on runtime tensors", n->name,
             n->op_type);
    return ENGINE_OK;
}

engine_status graph_infer(const graph *g, int batch, graph_shape *s, char *err, size_t err_len) {
    memset(s, 0, (size_t)g->nt * sizeof *s);
    for (int i = 0; i < g->nt; i++) {
        const graph_tensor *t = &g->t[i];
        s[i].ndim = t->ndim;
        memcpy(s[i].dims, t->dims, sizeof t->dims);
        s[i].dtype = t->dtype;
        if (t->is_const) {
            s[i].is_const = 1;
            s[i].f = t->f;
            s[i].i = t->i;
        } else if (t->is_input && t->ndim > 0 && t->dims[0] < 0) {
            s[i].dims[0] = batch;
        } else if (!t->is_input) {
            s[i].ndim = -1;
        }
    }
    for (int k = 0; k < g->nn; k++) {
        const graph_node *n = &g->n[k];
        if (n->dead)
            continue;
        for (int j = 0; j < n->nin; j++)
            if (n->in[j] >= 0 && s[n->in[j]].ndim < 0)
                FAIL(ENGINE_ERR_INVALID, "node '%s' (%s): input '%s' has no shape", n->name,
                     n->op_type, g->t[n->in[j]].name);
        engine_status st = infer_node(g, n, s, err, err_len);
        if (st != ENGINE_OK)
            return st;
        for (int j = 0; j < n->nout; j++) {
            if (n->out[j] < 0)
                continue;
            graph_shape *o = &s[n->out[j]];
            if (o->ndim < 0)
                o->ndim = 0;
            if (graph_numel(o->dims, o->ndim) < 0 ||
                graph_numel(o->dims, o->ndim) > ((int64_t)1 << 34))
                FAIL(ENGINE_ERR_INVALID, "node '%s' (%s): output '%s' has invalid dims", n->name,
                     n->op_type, g->t[n->out[j]].name);
        }
    }
    return ENGINE_OK;
}

void graph_shapes_release(graph_shape *s, int nt) {
    for (int i = 0; s && i < nt; i++) {
        free(s[i].owned);
        s[i].owned = NULL;
    }
}
