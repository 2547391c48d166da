/* graph_params.c — operator parameters, the bottom of graph/'s shape code
 * (it calls only graph.c): axes, constant int inputs, sliding-window geometry,
 * and the parameters that may come from attributes (old opsets) or constant
 * inputs (new opsets): Slice, Pad, Squeeze/Unsqueeze axes. */
#include "graph_shape.h"

#include <stdio.h>
#include <string.h>

#define FAIL(st, ...) GRAPH_FAIL_TO(err, err_len, st, __VA_ARGS__)

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

int graph_const_ints(const graph_shape *s, int64_t *out, int cap) {
    if (!s->is_const || s->dtype != GRAPH_I64 || graph_numel(s->dims, s->ndim) > cap)
        return -1;
    int k = (int)graph_numel(s->dims, s->ndim);
    memcpy(out, s->i, (size_t)k * sizeof *out);
    return k;
}

/* Reads Slice parameters (attributes before opset 10, inputs after). */
static engine_status slice_params(const graph *g, const graph_node *n, const graph_shape *s,
                                  const graph_shape *x, int64_t *start, int64_t *step, char *err,
                                  size_t err_len) {
    int64_t st[GRAPH_MAX_DIMS], en[GRAPH_MAX_DIMS], ax[GRAPH_MAX_DIMS], sp[GRAPH_MAX_DIMS];
    int ns, ne, na, nsp = -1;
    if (g->opset < 10) {
        ns = graph_attr_ints(n, "starts", st, GRAPH_MAX_DIMS);
        ne = graph_attr_ints(n, "ends", en, GRAPH_MAX_DIMS);
        na = graph_attr_find(n, "axes") ? graph_attr_ints(n, "axes", ax, GRAPH_MAX_DIMS) : -1;
    } else {
        ns = n->nin > 1 && n->in[1] >= 0 ? graph_const_ints(&s[n->in[1]], st, GRAPH_MAX_DIMS) : -1;
        ne = n->nin > 2 && n->in[2] >= 0 ? graph_const_ints(&s[n->in[2]], en, GRAPH_MAX_DIMS) : -1;
        na = n->nin > 3 && n->in[3] >= 0 ? graph_const_ints(&s[n->in[3]], ax, GRAPH_MAX_DIMS) : -1;
        if (n->nin > 4 && n->in[4] >= 0 && (nsp = graph_const_ints(&s[n->in[4]], sp, 8)) < 0)
            ns = -1;
        if ((n->nin > 3 && n->in[3] >= 0 && na < 0))
            ns = -1;
    }
    if (ns < 0 || ne != ns || (na >= 0 && na != ns) || (nsp >= 0 && nsp != ns))
        FAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (Slice): starts/ends/axes/steps must be constant",
             n->name);
    for (int d = 0; d < x->ndim; d++) {
        start[d] = 0;
        step[d] = 1;
    }
    for (int k = 0; k < ns; k++) {
        int d = graph_axis(na >= 0 ? ax[k] : k, x->ndim);
        int64_t stp = nsp >= 0 ? sp[k] : 1, dim = x->dims[d];
        if (d < 0 || stp == 0)
            FAIL(ENGINE_ERR_INVALID, "node '%s' (Slice): bad axis or step", n->name);
        int64_t b = st[k] < 0 ? st[k] + dim : st[k], e = en[k] < 0 ? en[k] + dim : en[k];
        if (stp > 0) {
            b = b < 0 ? 0 : (b > dim ? dim : b);
            e = e < 0 ? 0 : (e > dim ? dim : e);
            start[d] = b;
            step[d] = stp;
            int64_t sc = stp > dim ? (dim > 0 ? dim : 1) : stp; /* same count, no overflow */
            start[GRAPH_MAX_DIMS + d] = e > b ? (e - b + sc - 1) / sc : 0;
        } else {
            b = b < 0 ? -1 : (b >= dim ? dim - 1 : b);
            e = e < -1 ? -1 : (e >= dim ? dim - 1 : e);
            start[d] = b;
            step[d] = stp;
            int64_t sc = stp < -dim ? -(dim > 0 ? dim : 1) : stp;
            start[GRAPH_MAX_DIMS + d] = b > e ? (b - e - sc - 1) / -sc : 0;
        }
    }
    return ENGINE_OK;
}

engine_status graph_slice_params(const graph *g, const graph_node *n, const graph_shape *s,
                                 int64_t *start, int64_t *step, int64_t *len, char *err,
                                 size_t err_len) {
    const graph_shape *x = &s[n->in[0]];
    int64_t tmp[2 * GRAPH_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        tmp[GRAPH_MAX_DIMS + d] = x->dims[d];
    engine_status st = slice_params(g, n, s, x, tmp, step, err, err_len);
    for (int d = 0; d < x->ndim; d++) {
        start[d] = tmp[d];
        len[d] = tmp[GRAPH_MAX_DIMS + d];
    }
    return st;
}

engine_status graph_pad_params(const graph *g, const graph_node *n, const graph_shape *s,
                               int64_t *pads, float *value, char *err, size_t err_len) {
    const graph_shape *x = &s[n->in[0]];
    int np;
    *value = 0;
    if (g->opset < 11) {
        np = graph_attr_ints(n, "pads", pads, 2 * GRAPH_MAX_DIMS);
        *value = graph_attr_float(n, "value", 0);
    } else {
        np = n->nin > 1 && n->in[1] >= 0 ? graph_const_ints(&s[n->in[1]], pads, 2 * GRAPH_MAX_DIMS)
                                         : -1;
        if (n->nin > 2 && n->in[2] >= 0) {
            const graph_shape *v = &s[n->in[2]];
            if (!v->is_const)
                np = -1;
            else
                *value = v->dtype == GRAPH_F32 ? v->f[0] : (float)v->i[0];
        }
        if (n->nin > 3 && n->in[3] >= 0)
            FAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (Pad): input 'axes' is not supported", n->name);
    }
    if (np != 2 * x->ndim)
        FAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (Pad): pads must be constant with %d values",
             n->name, 2 * x->ndim);
    return ENGINE_OK;
}

engine_status graph_axes_param(const graph *g, const graph_node *n, const graph_shape *s,
                               int64_t *axes, int *na, char *err, size_t err_len) {
    if (g->opset >= 13 && n->nin > 1 && n->in[1] >= 0) {
        *na = graph_const_ints(&s[n->in[1]], axes, GRAPH_MAX_DIMS);
        if (*na < 0)
            FAIL(ENGINE_ERR_UNSUPPORTED, "node '%s' (%s): axes must be constant", n->name,
                 n->op_type);
    } else {
        *na = graph_attr_ints(n, "axes", axes, GRAPH_MAX_DIMS);
    }
    return ENGINE_OK;
}
