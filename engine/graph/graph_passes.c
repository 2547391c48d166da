/*
 * graph_passes.c — rewrites that make the plan tight. Each pass keeps the
 * graph valid and topologically ordered:
 *   1. Identity/Dropout are bypassed (their consumers read the input);
 *   2. BatchNormalization after a Conv is folded into its weights and bias;
 *   3. Relu/Clip after a Conv (or Relu after an unfolded BN) become post-ops;
 *   4. Add(conv(x), shortcut) becomes a sum post-op of that conv writing in
 *      place into the shortcut's buffer, and a Relu after it a post-op again;
 *   5. nodes nobody reads are removed and unused constants freed.
 */
#include "graph.h"
#include "graph_shape.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int consumers(const graph *g, int t, int *first) {
    int c = 0;
    for (int i = 0; i < g->nn; i++) {
        if (g->n[i].dead)
            continue;
        for (int j = 0; j < g->n[i].nin; j++)
            if (g->n[i].in[j] == t) {
                if (!c && first)
                    *first = i;
                c++;
            }
        if (g->n[i].sum_in == t) {
            if (!c && first)
                *first = i;
            c++;
        }
    }
    return c;
}

static int last_consumer(const graph *g, int t) {
    int last = -1;
    for (int i = 0; i < g->nn; i++) {
        if (g->n[i].dead)
            continue;
        for (int j = 0; j < g->n[i].nin; j++)
            if (g->n[i].in[j] == t)
                last = i;
        if (g->n[i].sum_in == t)
            last = i;
    }
    return last;
}

static void replace_uses(graph *g, int from, int to) {
    for (int i = 0; i < g->nn; i++) {
        for (int j = 0; j < g->n[i].nin; j++)
            if (g->n[i].in[j] == from)
                g->n[i].in[j] = to;
        if (g->n[i].sum_in == from)
            g->n[i].sum_in = to;
    }
}

static int is_const_f32(const graph *g, int t) {
    return t >= 0 && g->t[t].is_const && g->t[t].dtype == GRAPH_F32;
}

static engine_status drop_identity(graph *g, char *err, size_t err_len) {
    for (int i = 0; i < g->nn; i++) {
        graph_node *n = &g->n[i];
        if (n->dead || (n->op != OP_IDENTITY && n->op != OP_DROPOUT))
            continue;
        if (n->op == OP_DROPOUT && n->nout > 1 && n->out[1] >= 0 &&
            (consumers(g, n->out[1], NULL) || g->t[n->out[1]].is_output)) {
            snprintf(err, err_len, "node '%s' (Dropout): output 'mask' is not supported", n->name);
            return ENGINE_ERR_UNSUPPORTED;
        }
        if (n->op == OP_DROPOUT && n->nin > 2 && n->in[2] >= 0) {
            const graph_tensor *tm = &g->t[n->in[2]];
            if (!tm->is_const || (tm->i && tm->i[0]) || (tm->f && tm->f[0])) {
                snprintf(err, err_len, "node '%s' (Dropout): input 'training_mode' must be false",
                         n->name);
                return ENGINE_ERR_UNSUPPORTED;
            }
        }
        if (g->t[n->out[0]].is_output || g->t[n->in[0]].is_const)
            continue; /* kept: runs as a copy */
        replace_uses(g, n->out[0], n->in[0]);
        n->dead = 1;
    }
    return ENGINE_OK;
}

static engine_status fold_bn(graph *g) {
    for (int i = 0; i < g->nn; i++) {
        graph_node *bn = &g->n[i];
        if (bn->dead || bn->op != OP_BATCHNORM || bn->nin != 5 || g->t[bn->in[0]].producer < 0)
            continue;
        graph_node *cv = &g->n[g->t[bn->in[0]].producer];
        if (cv->op != OP_CONV || cv->npost || g->t[cv->out[0]].is_output ||
            consumers(g, cv->out[0], NULL) != 1 || !is_const_f32(g, cv->in[1]) ||
            (cv->nin > 2 && cv->in[2] >= 0 && !is_const_f32(g, cv->in[2])))
            continue;
        int ok = 1;
        for (int j = 1; j < 5; j++)
            ok &= is_const_f32(g, bn->in[j]);
        const graph_tensor *w = &g->t[cv->in[1]];
        int64_t M = w->dims[0];
        for (int j = 1; j < 5 && ok; j++)
            ok &= g->t[bn->in[j]].count == M;
        if (!ok)
            continue;
        const float *sc = g->t[bn->in[1]].f, *sh = g->t[bn->in[2]].f, *mu = g->t[bn->in[3]].f,
                    *var = g->t[bn->in[4]].f;
        float eps = graph_attr_float(bn, "epsilon", 1e-5f);
        char name[300];
        snprintf(name, sizeof name, "%s/folded_w", cv->name);
        int wi = graph_tensor_get(g, name);
        snprintf(name, sizeof name, "%s/folded_b", cv->name);
        int bi = graph_tensor_get(g, name);
        if (wi < 0 || bi < 0)
            return ENGINE_ERR_NOMEM;
        w = &g->t[cv->in[1]]; /* g->t may have moved */
        graph_tensor *nw = &g->t[wi], *nb = &g->t[bi];
        const float *ob = cv->nin > 2 && cv->in[2] >= 0 ? g->t[cv->in[2]].f : NULL;
        int64_t per = w->count / M;
        nw->f = malloc((size_t)w->count * sizeof(float));
        nb->f = malloc((size_t)M * sizeof(float));
        if (!nw->f || !nb->f)
            return ENGINE_ERR_NOMEM;
        nw->is_const = nb->is_const = 1;
        nw->ndim = w->ndim;
        memcpy(nw->dims, w->dims, sizeof w->dims);
        nw->count = w->count;
        nb->ndim = 1;
        nb->dims[0] = nb->count = M;
        for (int64_t m = 0; m < M; m++) {
            float s = sc[m] / sqrtf(var[m] + eps);
            for (int64_t k = 0; k < per; k++)
                nw->f[m * per + k] = w->f[m * per + k] * s;
            nb->f[m] = ((ob ? ob[m] : 0.f) - mu[m]) * s + sh[m];
        }
        if (cv->nin < 3) {
            int *in = realloc(cv->in, 3 * sizeof(int));
            if (!in)
                return ENGINE_ERR_NOMEM;
            cv->in = in;
            cv->nin = 3;
        }
        cv->in[1] = wi;
        cv->in[2] = bi;
        cv->out[0] = bn->out[0];
        g->t[bn->out[0]].producer = (int)(cv - g->n);
        bn->dead = 1;
    }
    return ENGINE_OK;
}

/* Fuses Relu/Clip consumers into their Conv (any post-op list) or BN (Relu only). */
static int fuse_eltwise(graph *g) {
    int changed = 0;
    for (int i = 0; i < g->nn; i++) {
        graph_node *e = &g->n[i];
        if (e->dead || (e->op != OP_RELU && e->op != OP_CLIP) || g->t[e->in[0]].producer < 0)
            continue;
        int pi = g->t[e->in[0]].producer;
        graph_node *p = &g->n[pi];
        if (p->dead || g->t[e->in[0]].is_output || consumers(g, e->in[0], NULL) != 1)
            continue;
        int conv = p->op == OP_CONV && p->npost < GRAPH_MAX_POST;
        int bn = p->op == OP_BATCHNORM && p->npost == 0 && e->op == OP_RELU;
        if (!conv && !bn)
            continue;
        graph_post post = {.kind = POST_RELU};
        if (e->op == OP_CLIP) {
            post.kind = POST_CLIP;
            post.alpha = graph_attr_float(e, "min", -FLT_MAX);
            post.beta = graph_attr_float(e, "max", FLT_MAX);
            if (g->opset >= 11) {
                int ok = 1;
                for (int j = 1; j < e->nin && j < 3; j++) {
                    if (e->in[j] < 0)
                        continue;
                    if (!is_const_f32(g, e->in[j]) || g->t[e->in[j]].count != 1) {
                        ok = 0;
                        continue;
                    }
                    *(j == 1 ? &post.alpha : &post.beta) = g->t[e->in[j]].f[0];
                }
                if (!ok)
                    continue;
            }
        }
        p->post_in[p->npost] = p->out[0];
        p->post[p->npost++] = post;
        p->out[0] = e->out[0];
        g->t[e->out[0]].producer = pi;
        e->dead = 1;
        changed = 1;
    }
    return changed;
}

static int same_shape(const graph_shape *a, const graph_shape *b) {
    return a->ndim == b->ndim && memcmp(a->dims, b->dims, (size_t)a->ndim * sizeof a->dims[0]) == 0;
}

static int fuse_add(graph *g, const graph_shape *s) {
    int changed = 0;
    for (int i = 0; i < g->nn; i++) {
        graph_node *a = &g->n[i];
        if (a->dead || (a->op != OP_ADD && a->op != OP_SUM) || a->nin != 2 || a->in[0] < 0 ||
            a->in[1] < 0 || a->in[0] == a->in[1] || g->t[a->out[0]].is_output)
            continue;
        int best = -1, sc = -1;
        for (int j = 0; j < 2; j++) {
            int t = a->in[j], o = a->in[1 - j], pi = g->t[t].producer;
            if (pi < 0 || g->n[pi].op != OP_CONV || g->n[pi].sum_in >= 0 ||
                g->n[pi].npost >= GRAPH_MAX_POST || g->t[t].is_output || consumers(g, t, NULL) != 1)
                continue;
            const graph_tensor *ot = &g->t[o];
            /* the shortcut's buffer is overwritten: it must not be a view of
             * another tensor (reshape-like producers alias their input) */
            graph_op sop = ot->producer >= 0 ? g->n[ot->producer].op : OP_IDENTITY;
            if (sop == OP_FLATTEN || sop == OP_RESHAPE || sop == OP_IDENTITY || sop == OP_DROPOUT ||
                sop == OP_SQUEEZE || sop == OP_UNSQUEEZE || sop == OP_CAST ||
                (sop == OP_SUM && g->n[ot->producer].nin == 1))
                continue;
            if (!same_shape(&s[t], &s[o]) || ot->is_const || ot->is_input || ot->is_output ||
                ot->producer < 0 || ot->producer >= pi || last_consumer(g, o) != i)
                continue;
            /* nothing between the conv and the add may read the shortcut */
            int safe = 1;
            for (int k = pi; k < i && safe; k++)
                for (int q = 0; q < g->n[k].nin; q++)
                    if (!g->n[k].dead && g->n[k].in[q] == o)
                        safe = 0;
            if (safe && pi > best) {
                best = pi;
                sc = o;
            }
        }
        if (best < 0)
            continue;
        graph_node *cv = &g->n[best];
        cv->post_in[cv->npost] = cv->out[0];
        cv->post[cv->npost++] = (graph_post){.kind = POST_SUM};
        cv->sum_in = sc;
        cv->out[0] = a->out[0];
        g->t[a->out[0]].producer = best;
        a->dead = 1;
        changed = 1;
    }
    return changed;
}

static engine_status remove_dead(graph *g) {
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = g->nn - 1; i >= 0; i--) {
            graph_node *n = &g->n[i];
            if (n->dead)
                continue;
            int used = 0;
            for (int j = 0; j < n->nout && !used; j++)
                used =
                    n->out[j] >= 0 && (g->t[n->out[j]].is_output || consumers(g, n->out[j], NULL));
            if (!used) {
                n->dead = 1;
                changed = 1;
            }
        }
    }
    graph_drop_dead_nodes(g);
    for (int t = 0; t < g->nt; t++) {
        if (g->t[t].is_const && !g->t[t].is_output && !consumers(g, t, NULL)) {
            free(g->t[t].f);
            free(g->t[t].i);
            g->t[t].f = NULL;
            g->t[t].i = NULL;
        }
    }
    return ENGINE_OK;
}

engine_status graph_optimize(graph *g, char *err, size_t err_len) {
    engine_status st = drop_identity(g, err, err_len);
    if (st == ENGINE_OK)
        st = fold_bn(g);
    if (st != ENGINE_OK)
        return st;
    fuse_eltwise(g);
    graph_shape *s = calloc((size_t)g->nt + 1, sizeof *s);
    if (!s)
        return ENGINE_ERR_NOMEM;
    st = graph_infer(g, 1, s, err, err_len);
    if (st == ENGINE_OK)
        while (fuse_add(g, s))
            fuse_eltwise(g);
    graph_shapes_release(s, g->nt);
    free(s);
    return st != ENGINE_OK ? st : remove_dead(g);
}
