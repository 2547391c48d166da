/* graph.c — construction, lookup and ordering of the graph IR (see graph.h). */
#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

graph *graph_new(void) {
    return calloc(1, sizeof(graph));
}

void graph_node_clear_attrs(graph_node *n) {
    for (int a = 0; a < n->nattr; a++) {
        free(n->attr[a].name);
        free(n->attr[a].s);
        free(n->attr[a].floats);
        free(n->attr[a].ints);
    }
    n->nattr = 0;
}

static void node_release(graph_node *n) {
    free(n->name);
    free(n->op_type);
    free(n->in);
    free(n->out);
    graph_node_clear_attrs(n);
    free(n->attr);
}

void graph_free(graph *g) {
    if (!g)
        return;
    for (int i = 0; i < g->nt; i++) {
        free(g->t[i].name);
        free(g->t[i].f);
        free(g->t[i].wq);
        free(g->t[i].i);
    }
    for (int i = 0; i < g->nn; i++)
        node_release(&g->n[i]);
    free(g->t);
    free(g->n);
    free(g->inputs);
    free(g->outputs);
    free(g);
}

int graph_tensor_find(const graph *g, const char *name) {
    for (int i = 0; i < g->nt; i++)
        if (strcmp(g->t[i].name, name) == 0)
            return i;
    return -1;
}

int graph_tensor_get(graph *g, const char *name) {
    int i = graph_tensor_find(g, name);
    if (i >= 0)
        return i;
    if (g->nt == g->capt) {
        int cap = g->capt ? g->capt * 2 : 64;
        graph_tensor *t = realloc(g->t, (size_t)cap * sizeof *t);
        if (!t)
            return -1;
        g->t = t;
        g->capt = cap;
    }
    graph_tensor *t = &g->t[g->nt];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name)
        return -1;
    t->ndim = -1;
    t->dtype = GRAPH_F32;
    t->producer = -1;
    return g->nt++;
}

int graph_node_add(graph *g, const char *name, const char *op_type, int nin, int nout) {
    if (g->nn == g->capn) {
        int cap = g->capn ? g->capn * 2 : 64;
        graph_node *n = realloc(g->n, (size_t)cap * sizeof *n);
        if (!n)
            return -1;
        g->n = n;
        g->capn = cap;
    }
    graph_node *n = &g->n[g->nn];
    memset(n, 0, sizeof *n);
    n->sum_in = -1;
    n->name = strdup(name ? name : "");
    n->op_type = strdup(op_type ? op_type : "");
    n->in = calloc((size_t)(nin > 0 ? nin : 1), sizeof(int));
    n->out = calloc((size_t)(nout > 0 ? nout : 1), sizeof(int));
    g->nn++; /* counted now so graph_free releases partial nodes */
    if (!n->name || !n->op_type || !n->in || !n->out)
        return -1;
    n->nin = nin;
    n->nout = nout;
    for (int i = 0; i < nin; i++)
        n->in[i] = -1;
    for (int i = 0; i < nout; i++)
        n->out[i] = -1;
    return g->nn - 1;
}

const graph_attr *graph_attr_find(const graph_node *n, const char *name) {
    for (int i = 0; i < n->nattr; i++)
        if (strcmp(n->attr[i].name, name) == 0)
            return &n->attr[i];
    return NULL;
}

int64_t graph_attr_int(const graph_node *n, const char *name, int64_t def) {
    const graph_attr *a = graph_attr_find(n, name);
    return a && a->type == ATTR_INT ? a->i : def;
}

float graph_attr_float(const graph_node *n, const char *name, float def) {
    const graph_attr *a = graph_attr_find(n, name);
    return a && a->type == ATTR_FLOAT ? a->f : def;
}

int graph_attr_ints(const graph_node *n, const char *name, int64_t *out, int cap) {
    const graph_attr *a = graph_attr_find(n, name);
    if (!a || a->type != ATTR_INTS)
        return 0;
    int k = a->n < cap ? a->n : cap;
    memcpy(out, a->ints, (size_t)k * sizeof *out);
    return k;
}

int64_t graph_numel(const int64_t *dims, int ndim) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0 || (dims[i] > 0 && n > INT64_MAX / dims[i]))
            return -1;
        n *= dims[i];
    }
    return n;
}

/* Kahn's algorithm over tensor readiness; stable w.r.t. the file's order. */
void graph_drop_dead_nodes(graph *g) {
    int k = 0;
    for (int i = 0; i < g->nn; i++) {
        graph_node *n = &g->n[i];
        if (!n->dead) {
            g->n[k++] = *n;
            continue;
        }
        node_release(n);
    }
    g->nn = k;
    for (int t = 0; t < g->nt; t++)
        g->t[t].producer = -1;
    for (int i = 0; i < g->nn; i++)
        for (int j = 0; j < g->n[i].nout; j++)
            if (g->n[i].out[j] >= 0)
                g->t[g->n[i].out[j]].producer = i;
}

engine_status graph_toposort(graph *g, char *err, size_t err_len) {
    char *ready = calloc((size_t)g->nt + 1, 1);
    char *done = calloc((size_t)g->nn + 1, 1);
    int *order = malloc(((size_t)g->nn + 1) * sizeof(int));
    engine_status st = ENGINE_OK;
    if (!ready || !done || !order) {
        st = ENGINE_ERR_NOMEM;
        goto out;
    }
    for (int i = 0; i < g->nt; i++)
        ready[i] = g->t[i].is_input || g->t[i].is_const;
    int k = 0;
    for (int progress = 1; progress && k < g->nn;) {
        progress = 0;
        for (int i = 0; i < g->nn; i++) {
            if (done[i])
                continue;
            int ok = 1;
            for (int j = 0; j < g->n[i].nin && ok; j++)
                ok = g->n[i].in[j] < 0 || ready[g->n[i].in[j]];
            if (!ok)
                continue;
            done[i] = 1;
            order[k++] = i;
            progress = 1;
            for (int j = 0; j < g->n[i].nout; j++)
                if (g->n[i].out[j] >= 0)
                    ready[g->n[i].out[j]] = 1;
        }
    }
    if (k < g->nn) {
        for (int i = 0; i < g->nn; i++) {
            if (done[i])
                continue;
            const char *missing = "?";
            for (int j = 0; j < g->n[i].nin; j++)
                if (g->n[i].in[j] >= 0 && !ready[g->n[i].in[j]]) {
                    missing = g->t[g->n[i].in[j]].name;
                    break;
                }
            int produced = 0;
            for (int a = 0; a < g->nn; a++)
                for (int b = 0; b < g->n[a].nout; b++)
                    if (g->n[a].out[b] >= 0 && strcmp(g->t[g->n[a].out[b]].name, missing) == 0)
                        produced = 1;
            snprintf(err, err_len,
                     produced ? "node '%s' (%s): input '%s' is part of a cycle"
                              : "node '%s' (%s): input '%s' is not produced by any node, "
                                "initializer or graph input",
                     g->n[i].name, g->n[i].op_type, missing);
            break;
        }
        st = ENGINE_ERR_INVALID;
        goto out;
    }
    graph_node *nn = malloc(((size_t)g->nn + 1) * sizeof *nn);
    if (!nn) {
        st = ENGINE_ERR_NOMEM;
        goto out;
    }
    for (int i = 0; i < g->nn; i++)
        nn[i] = g->n[order[i]];
    if (g->nn)
        memcpy(g->n, nn, (size_t)g->nn * sizeof *nn);
    free(nn);
    for (int i = 0; i < g->nt; i++)
        g->t[i].producer = -1;
    for (int i = 0; i < g->nn; i++)
        for (int j = 0; j < g->n[i].nout; j++)
            if (g->n[i].out[j] >= 0)
                g->t[g->n[i].out[j]].producer = i;
out:
    free(ready);
    free(done);
    free(order);
    return st;
}
