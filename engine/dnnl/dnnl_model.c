/* dnnl_model.c — the load-time side of the backend (see plan.h): Conv weights
 * reordered once into the layout their kernels chose, and the model's release.
 * The top of engine/dnnl/: it builds a probe plan with plan_build. */
#include "dnnl_build.h"

#include <stdio.h>
#include <stdlib.h>

/* Reorders node i's constant weights (plain, in sh) into the layout the probe
 * noted (pr->has == 2); pr->has becomes 1 when done, 0 when not possible.
 * ENGINE_ERR_NOMEM only when the buffer cannot be allocated. */
static engine_status prepare_node(dnnl_model *m, int i, const graph_shape *sh, dnnl_stream_t strm) {
    dnnl_prepared *pr = &m->prep[i];
    const graph_node *n = &m->g->n[i];
    if (pr->has != 2 || !sh[n->in[1]].f) {
        pr->has = 0;
        return ENGINE_OK;
    }
    pr->has = 0;
    const graph_shape *w = &sh[n->in[1]];
    dnnl_dims_t wd;
    int wnd;
    md_conv_weight_dims(w, graph_attr_int(n, "group", 1), wd, &wnd);
    dnnl_memory_desc_t wplain;
    md_plain(&wplain, wd, wnd);
    size_t sz = dnnl_memory_desc_get_size(&pr->md);
    pr->data = aligned_alloc(64, (sz + 63) / 64 * 64);
    if (!pr->data)
        return ENGINE_ERR_NOMEM;
    if (md_reorder_now(m->eng, strm, &wplain, (void *)w->f, &pr->md, pr->data, NULL) ==
        dnnl_success)
        pr->has = 1;
    return ENGINE_OK;
}

/* Plain copies read only by prepared (non-Winograd) Convs are dead weight
 * from here on: frees them. */
static void drop_plain_weights(dnnl_model *m) {
    graph *g = m->g;
    for (int t = 0; t < g->nt; t++) {
        if (!g->t[t].is_const || !g->t[t].f || g->t[t].is_output)
            continue;
        int only_prepared = 1, used = 0;
        for (int i = 0; i < g->nn && only_prepared; i++)
            for (int j = 0; j < g->n[i].nin; j++)
                if (g->n[i].in[j] == t) {
                    used = 1;
                    if (g->n[i].op != OP_CONV || j != 1 || m->prep[i].has != 1 ||
                        m->prep[i].md.format_kind == dnnl_format_kind_wino)
                        only_prepared = 0;
                }
        if (used && only_prepared) {
            free(g->t[t].f);
            g->t[t].f = NULL;
        }
    }
}

/* Load time: build a throw-away plan with every Conv free to choose its
 * weights layout (given the real layouts of its inputs), then reorder each
 * constant weight tensor once into the layout chosen. */
engine_status dnnl_model_prepare(dnnl_model *m, int batch, char *err, size_t err_len) {
    graph *g = m->g;
    m->prep = calloc((size_t)g->nn + 1, sizeof *m->prep);
    if (!m->prep) {
        snprintf(err, err_len, "out of memory preparing weights");
        return ENGINE_ERR_NOMEM;
    }
    m->probing = 1;
    plan *probe = NULL;
    engine_status st = plan_build(m, batch, &probe, err, err_len);
    m->probing = 0;
    plan_free(probe);
    if (st != ENGINE_OK)
        return st;
    graph_shape *sh = calloc((size_t)g->nt + 1, sizeof *sh);
    dnnl_stream_t strm = NULL;
    if (!sh || dnnl_stream_create(&strm, m->eng, dnnl_stream_default_flags))
        st = ENGINE_ERR_NOMEM;
    else
        st = graph_infer(g, batch, sh, err, err_len);
    for (int i = 0; st == ENGINE_OK && i < g->nn; i++)
        st = prepare_node(m, i, sh, strm);
    if (st == ENGINE_OK)
        drop_plain_weights(m);
    if (strm)
        dnnl_stream_destroy(strm);
    graph_shapes_release(sh, g->nt);
    free(sh);
    if (st == ENGINE_ERR_NOMEM)
        snprintf(err, err_len, "out of memory preparing weights");
    return st;
}

void dnnl_model_release(dnnl_model *m) {
    if (m->prep && m->g)
        for (int i = 0; i < m->g->nn; i++) {
            free(m->prep[i].data);
            free(m->prep[i].qdata);
        }
    free(m->qmin);
    free(m->qmax);
    free(m->qrange);
    m->qmin = m->qmax = m->qrange = NULL;
    free(m->prep);
    m->prep = NULL;
    free(m->conv_algo);
    m->conv_algo = NULL;
    if (m->eng)
        dnnl_engine_destroy(m->eng);
    m->eng = NULL;
}
