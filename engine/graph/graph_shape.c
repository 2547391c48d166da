/* graph_shape.c — per-batch shape inference and constant folding (see graph_shape.h). */
#include "graph_shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(st, ...)                                                                              \
    do {                                                                                           \
        snprintf(err, err_len, __VA_ARGS__);                                                       \
        return st;                                                                                 \
    } while (0)

int graph_axis(int64_t axis, int ndim) {
    if (axis < 0)
        axis += ndim;
    return axis < 0 || axis >= ndim ? -1 : (int)axis;
}

engine_status graph_window_geom(const graph_node *n, const int64_t *in_sp, int nsp,
                                const int64_t *kernel, graph_geom *g, char *err, size_t err_len) {
    memset(g, 0, sizeof *g);
    if (nsp < 1 || nsp > 3)
        FAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (%s): %d spatial dims (1 to 3 supported)", n->name,
             n->op_type, nsp);
    g->nsp = nsp;
    int64_t pads[6] = {0}, v[3];
    int np = graph_attr_ints(n, "pads", pads, 6);
    if (np && np != 2 * nsp)
        FAIL(ENGINE_ERR_INVALID, "node '%s' (%s): attribute 'pads' has %d values", n->name,
             n->op_type, np);
    for (int i = 0; i < nsp; i++) {
        g->k[i] = kernel[i];
        g->s[i] = g->d[i] = 1;
        g->pl[i] = pads[i];
        g->pr[i] = pads[i + nsp];
    }
    int c = graph_attr_ints(n, "strides", v, 3);
    for (int i = 0; i < c; i++)
        g->s[i] = v[i];
    c = graph_attr_ints(n, "dilations", v, 3);
    for (int i = 0; i < c; i++)
        g->d[i] = v[i];
    const graph_attr *ap = graph_attr_find(n, "auto_pad");
    const char *mode = ap && ap->s ? ap->s : "NOTSET";
    int ceil_mode = (int)graph_attr_int(n, "ceil_mode", 0);
    for (int i = 0; i < nsp; i++) {
        const int64_t lim = (int64_t)1 << 24; /* keeps every sum below in range */
        if (g->k[i] < 1 || g->s[i] < 1 || g->d[i] < 1 || g->pl[i] < 0 || g->pr[i] < 0 ||
            g->k[i] > lim || g->s[i] > lim || g->d[i] > lim || g->pl[i] > lim || g->pr[i] > lim ||
            in_sp[i] > lim)
            FAIL(ENGINE_ERR_INVALID, "node '%s' (%s): bad kernel, stride, dilation or pad", n->name,
                 n->op_type);
        int64_t ext = g->d[i] * (g->k[i] - 1) + 1;
        if (strcmp(mode, "SAME_UPPER") == 0 || strcmp(mode, "SAME_LOWER") == 0) {
            g->out[i] = (in_sp[i] + g->s[i] - 1) / g->s[i];
            int64_t tot = (g->out[i] - 1) * g->s[i] + ext - in_sp[i];
            if (tot < 0)
                tot = 0;
            int upper = strcmp(mode, "SAME_UPPER") == 0;
            g->pl[i] = upper ? tot / 2 : tot - tot / 2;
            g->pr[i] = tot - g->pl[i];
            continue;
        }
        if (strcmp(mode, "VALID") == 0)
            g->pl[i] = g->pr[i] = 0;
        else if (strcmp(mode, "NOTSET") != 0)
            FAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (%s): attribute 'auto_pad' value '%s'", n->name,
                 n->op_type, mode);
        int64_t span = in_sp[i] + g->pl[i] + g->pr[i] - ext;
        if (span < 0)
            FAIL(ENGINE_ERR_INVALID, "node '%s' (%s): kernel larger than padded input", n->name,
                 n->op_type);
        g->out[i] = (ceil_mode ? (span + g->s[i] - 1) / g->s[i] : span / g->s[i]) + 1;
        if (ceil_mode && (g->out[i] - 1) * g->s[i] >= in_sp[i] + g->pl[i])
            g->out[i]--;
        /* explicit right padding reaching the last window (oneDNN needs it exact) */
        int64_t need = (g->out[i] - 1) * g->s[i] + ext - in_sp[i] - g->pl[i];
        if (need > g->pr[i])
            g->pr[i] = need;
    }
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
        engine_status st = graph_infer_node(g, n, s, err, err_len);
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
