/*
 * engine.c — the public API (engine.h) over the loader, the graph passes and
 * the oneDNN plans.
 *
 * DESIGN. engine_model_load parses, checks, optimises and prepares weights
 * once; preparing weights builds (and drops) a plan for one batch size, so
 * any unsupported operator or attribute fails the load, not a request.
 * The model is read-only afterwards. Each engine_ctx owns a oneDNN stream, a
 * thread count and one plan per batch size, built on first use (or ahead with
 * engine_ctx_warm) so the steady state allocates nothing. oneDNN here uses
 * OpenMP: the thread count is an OpenMP ICV of the calling thread, so it is
 * set before every build and run on the thread that does it.
 */
#include "engine.h"

#include "dnnl/plan.h"
#include "engine_internal.h"
#include "graph/graph.h"
#include "graph/graph_shape.h"
#include "onnx/onnx_load.h"
#include "quant/quant_file.h"

#include <oneapi/dnnl/dnnl_debug.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct engine_model {
    dnnl_model dm;
    engine_model_info info;
    int64_t (*out_dims)[ENGINE_MAX_DIMS]; /* per output; -1 where the batch goes */
    int *out_ndim;
};

struct engine_ctx {
    const engine_model *m;
    dnnl_stream_t strm;
    int threads;
    plan **plans; /* index: batch size */
    int nplans;
    void *arena, *scratch; /* shared by all plans, sized for the largest */
    size_t arena_cap, scratch_cap;
};

static void set_err(char *err, size_t len, const char *msg) {
    if (err && len)
        snprintf(err, len, "%s", msg);
}

const char *engine_status_str(engine_status s) {
    switch (s) {
    case ENGINE_OK:
        return "ok";
    case ENGINE_ERR_IO:
        return "io";
    case ENGINE_ERR_PARSE:
        return "parse";
    case ENGINE_ERR_UNSUPPORTED:
        return "unsupported";
    case ENGINE_ERR_INVALID:
        return "invalid";
    case ENGINE_ERR_NOMEM:
        return "nomem";
    case ENGINE_ERR_BACKEND:
        return "backend";
    case ENGINE_ERR_ARG:
        return "arg";
    }
    return "unknown";
}

engine_load_params engine_load_default_params(void) {
    return (engine_load_params){.max_batch = 8, .winograd = 1};
}

engine_ctx_params engine_ctx_default_params(void) {
    return (engine_ctx_params){.threads = 0};
}

engine_status engine_model_load(const char *path, const engine_load_params *p, engine_model **out,
                                char *err, size_t err_len) {
    char tmp[512];
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(tmp, sizeof tmp, "%s: cannot open model file", path);
        set_err(err, err_len, tmp);
        return ENGINE_ERR_IO;
    }
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    void *buf = size >= 0 ? malloc((size_t)size + 1) : NULL;
    if (!buf || fseek(f, 0, SEEK_SET) != 0 || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        free(buf);
        snprintf(tmp, sizeof tmp, "%s: cannot read model file", path);
        set_err(err, err_len, tmp);
        return ENGINE_ERR_IO;
    }
    fclose(f);
    char *dir = strdup(path);
    if (!dir) {
        free(buf);
        return ENGINE_ERR_NOMEM;
    }
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        strcpy(dir, ".");
    char e2[400] = "";
    engine_status st = engine_model_load_memory(buf, (size_t)size, dir, p, out, e2, sizeof e2);
    free(buf);
    free(dir);
    if (st != ENGINE_OK) {
        snprintf(tmp, sizeof tmp, "%s: %s", path, e2);
        set_err(err, err_len, tmp);
    }
    return st;
}

/* Output shapes with the batch dim marked: infer at two batch sizes and compare. */
static engine_status output_dims(engine_model *m, char *err, size_t err_len) {
    graph *g = m->dm.g;
    graph_shape *a = calloc((size_t)g->nt + 1, sizeof *a),
                *b = calloc((size_t)g->nt + 1, sizeof *b);
    m->out_dims = calloc((size_t)g->nout, sizeof *m->out_dims);
    m->out_ndim = calloc((size_t)g->nout, sizeof(int));
    engine_status st = ENGINE_ERR_NOMEM;
    if (a && b && m->out_dims && m->out_ndim) {
        int b1 = m->info.fixed_batch ? m->info.fixed_batch : 1;
        st = graph_infer(g, b1, a, err, err_len);
        if (st == ENGINE_OK && !m->info.fixed_batch)
            st = graph_infer(g, 2, b, err, err_len);
        for (int o = 0; st == ENGINE_OK && o < g->nout; o++) {
            const graph_shape *sa = &a[g->outputs[o]], *sb = &b[g->outputs[o]];
            m->out_ndim[o] = sa->ndim;
            for (int d = 0; d < sa->ndim; d++)
                m->out_dims[o][d] =
                    !m->info.fixed_batch && sa->dims[d] != sb->dims[d] ? -1 : sa->dims[d];
        }
        if (st == ENGINE_OK && g->nout >= 1) {
            const graph_shape *s0 = &a[g->outputs[0]];
            int64_t per = graph_numel(s0->dims, s0->ndim);
            per = s0->ndim > 0 && s0->dims[0] ? per / s0->dims[0] : per;
            if (per < 1 || per > INT32_MAX) {
                snprintf(err, err_len, "output '%s' has %s elements per image",
                         g->t[g->outputs[0]].name, per < 1 ? "no" : "too many");
                st = ENGINE_ERR_INVALID;
            }
            m->info.num_classes = (int)per;
        }
    }
    graph_shapes_release(a, g->nt);
    graph_shapes_release(b, g->nt);
    free(a);
    free(b);
    return st;
}

/* A QDQ model's ranges (graph_lower_qdq kept them in the tensors). A scales
 * file next to it would be a second, conflicting set of scales. */
static engine_status qdq_ranges(dnnl_model *dm, const char *quant_path, char *err, size_t err_len) {
    graph *g = dm->g;
    if (quant_path && access(quant_path, F_OK) == 0) {
        snprintf(err, err_len,
                 "%s: the model is already quantized (QuantizeLinear/DequantizeLinear); remove "
                 "this scales file",
                 quant_path);
        return ENGINE_ERR_INVALID;
    }
    dm->qmin = calloc((size_t)g->nt + 1, sizeof(float));
    dm->qmax = calloc((size_t)g->nt + 1, sizeof(float));
    dm->qrange = calloc((size_t)g->nt + 1, sizeof(float));
    if (!dm->qmin || !dm->qmax || !dm->qrange) {
        snprintf(err, err_len, "out of memory");
        return ENGINE_ERR_NOMEM;
    }
    for (int t = 0; t < g->nt; t++) {
        dm->qmin[t] = g->t[t].qmin;
        dm->qmax[t] = g->t[t].qmax;
        dm->qrange[t] = g->t[t].qrange;
    }
    return ENGINE_OK;
}

engine_status engine_model_load_memory(const void *data, size_t len, const char *base_dir,
                                       const engine_load_params *p, engine_model **out, char *err,
                                       size_t err_len) {
    char e[400] = "";
    *out = NULL;
    engine_model *m = calloc(1, sizeof *m);
    if (!m) {
        set_err(err, err_len, "out of memory");
        return ENGINE_ERR_NOMEM;
    }
    engine_status st = onnx_load_graph(data, len, base_dir, &m->dm.g, e, sizeof e);
    if (st == ENGINE_OK)
        st = graph_check_attrs(m->dm.g, e, sizeof e);
    if (st == ENGINE_OK)
        st = graph_toposort(m->dm.g, e, sizeof e);
    int qdq = 0;
    if (st == ENGINE_OK)
        st = graph_lower_qdq(m->dm.g, &qdq, e, sizeof e);
    if (st == ENGINE_OK)
        st = graph_optimize(m->dm.g, e, sizeof e);
    if (st == ENGINE_OK && (m->dm.g->nin == 0 || m->dm.g->nout == 0)) {
        snprintf(e, sizeof e, "the graph has no %s",
                 m->dm.g->nin ? "output"
                              : "runtime input (every graph input is an initializer): "
                                "nothing to feed an image to");
        st = ENGINE_ERR_INVALID;
    }
    if (st == ENGINE_OK) {
        graph *g = m->dm.g;
        const graph_tensor *in = g->nin ? &g->t[g->inputs[0]] : NULL;
        m->info.fixed_batch = in && in->ndim > 0 && in->dims[0] > 0 ? (int)in->dims[0] : 0;
        int mb = p && p->max_batch > 0 ? p->max_batch : 8;
        m->info.max_batch = m->info.fixed_batch ? m->info.fixed_batch : mb;
        if (in && in->ndim == 4) {
            m->info.channels = (int)in->dims[1];
            m->info.height = (int)in->dims[2];
            m->info.width = (int)in->dims[3];
        }
        st = output_dims(m, e, sizeof e);
    }
    m->dm.winograd = p ? p->winograd : 1;
    if (st == ENGINE_OK && qdq)
        st = qdq_ranges(&m->dm, p ? p->quant_path : NULL, e, sizeof e);
    else if (st == ENGINE_OK && p && p->quant_path)
        st = quant_file_read(p->quant_path, m->dm.g, &m->dm.qmin, &m->dm.qmax, &m->dm.qrange, e,
                             sizeof e);
    if (st == ENGINE_OK && dnnl_engine_create(&m->dm.eng, dnnl_cpu, 0) != dnnl_success) {
        snprintf(e, sizeof e, "oneDNN: cannot create the CPU engine");
        st = ENGINE_ERR_BACKEND;
    }
    /* weights are laid out for the kernels chosen at the largest batch, where
     * throughput matters most; smaller batches pick the same kernels */
    if (st == ENGINE_OK)
        st = dnnl_model_prepare(&m->dm, m->info.max_batch, e, sizeof e);
    if (st != ENGINE_OK) {
        set_err(err, err_len, e);
        engine_model_free(m);
        return st;
    }
    *out = m;
    return ENGINE_OK;
}

void engine_model_free(engine_model *m) {
    if (!m)
        return;
    dnnl_model_release(&m->dm);
    graph_free(m->dm.g);
    free(m->out_dims);
    free(m->out_ndim);
    free(m);
}

void engine_model_get_info(const engine_model *m, engine_model_info *info) {
    *info = m->info;
}

int engine_model_num_inputs(const engine_model *m) {
    return m->dm.g->nin;
}

int engine_model_num_outputs(const engine_model *m) {
    return m->dm.g->nout;
}

void engine_model_input_desc(const engine_model *m, int i, engine_tensor_desc *d) {
    const graph_tensor *t = &m->dm.g->t[m->dm.g->inputs[i]];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", t->name);
    d->ndim = t->ndim;
    memcpy(d->dims, t->dims, sizeof d->dims);
}

void engine_model_output_desc(const engine_model *m, int i, engine_tensor_desc *d) {
    const graph_tensor *t = &m->dm.g->t[m->dm.g->outputs[i]];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", t->name);
    d->ndim = m->out_ndim[i];
    memcpy(d->dims, m->out_dims[i], sizeof d->dims);
}

engine_status engine_ctx_create(const engine_model *m, const engine_ctx_params *p, engine_ctx **out,
                                char *err, size_t err_len) {
    *out = NULL;
    engine_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        set_err(err, err_len, "out of memory");
        return ENGINE_ERR_NOMEM;
    }
    c->m = m;
    c->threads = p && p->threads > 0 ? p->threads : omp_get_num_procs();
    c->nplans = m->info.max_batch + 1;
    c->plans = calloc((size_t)c->nplans, sizeof *c->plans);
    if (!c->plans || dnnl_stream_create(&c->strm, m->dm.eng, dnnl_stream_default_flags)) {
        engine_ctx_free(c);
        set_err(err, err_len, "cannot create a oneDNN stream");
        return ENGINE_ERR_BACKEND;
    }
    *out = c;
    return ENGINE_OK;
}

void engine_ctx_free(engine_ctx *c) {
    if (!c)
        return;
    for (int i = 0; c->plans && i < c->nplans; i++)
        plan_free(c->plans[i]);
    free(c->plans);
    free(c->arena);
    free(c->scratch);
    if (c->strm)
        dnnl_stream_destroy(c->strm);
    free(c);
}

/* Grows the shared arena/scratchpad for p when needed (rebinding every plan). */
static engine_status ctx_buffers(engine_ctx *c, plan *p, char *err, size_t err_len) {
    if (p->arena_size > c->arena_cap || p->scratch_size > c->scratch_cap) {
        size_t a = p->arena_size > c->arena_cap ? p->arena_size : c->arena_cap;
        size_t s = p->scratch_size > c->scratch_cap ? p->scratch_size : c->scratch_cap;
        a = (a + 63) / 64 * 64 + 64;
        s = (s + 63) / 64 * 64 + 64;
        void *na = aligned_alloc(64, a), *ns = aligned_alloc(64, s);
        if (!na || !ns) {
            free(na);
            free(ns);
            set_err(err, err_len, "out of memory for activations");
            return ENGINE_ERR_NOMEM;
        }
        free(c->arena);
        free(c->scratch);
        c->arena = na;
        c->scratch = ns;
        c->arena_cap = a;
        c->scratch_cap = s;
        for (int i = 0; i < c->nplans; i++)
            if (c->plans[i] && c->plans[i] != p)
                plan_bind(c->plans[i], c->arena, c->scratch);
    }
    plan_bind(p, c->arena, c->scratch);
    return ENGINE_OK;
}

static engine_status get_plan(engine_ctx *c, int n, plan **out, char *err, size_t err_len) {
    const engine_model_info *mi = &c->m->info;
    if (n < 1 || n > mi->max_batch || (mi->fixed_batch && n != mi->fixed_batch)) {
        char tmp[160];
        snprintf(tmp, sizeof tmp, "batch size %d out of range (1..%d%s)", n, mi->max_batch,
                 mi->fixed_batch ? ", fixed" : "");
        set_err(err, err_len, tmp);
        return ENGINE_ERR_ARG;
    }
    omp_set_num_threads(c->threads);
    if (!c->plans[n]) {
        char e[400] = "";
        engine_status st = plan_build(&c->m->dm, n, &c->plans[n], e, sizeof e);
        if (st != ENGINE_OK) {
            set_err(err, err_len, e);
            return st;
        }
        if ((st = ctx_buffers(c, c->plans[n], err, err_len)) != ENGINE_OK) {
            plan_free(c->plans[n]);
            c->plans[n] = NULL;
            return st;
        }
    }
    *out = c->plans[n];
    return ENGINE_OK;
}

engine_status engine_ctx_warm(engine_ctx *c, char *err, size_t err_len) {
    const engine_model_info *mi = &c->m->info;
    /* largest first: the shared buffers are sized once */
    for (int n = mi->max_batch; n >= 1; n--) {
        if (mi->fixed_batch && n != mi->fixed_batch)
            continue;
        plan *p;
        engine_status st = get_plan(c, n, &p, err, err_len);
        if (st != ENGINE_OK)
            return st;
    }
    return ENGINE_OK;
}

engine_status engine_run_tensors(engine_ctx *c, int n, const float *const *inputs,
                                 float *const *outputs, char *err, size_t err_len) {
    plan *p;
    engine_status st = get_plan(c, n, &p, err, err_len);
    if (st != ENGINE_OK)
        return st;
    char e[300] = "";
    st = plan_run(p, c->strm, inputs, outputs, e, sizeof e);
    if (st != ENGINE_OK)
        set_err(err, err_len, e);
    return st;
}

int engine_model_num_tensors(const engine_model *m) {
    return m->dm.g->nt;
}

const char *engine_model_tensor_name(const engine_model *m, int t) {
    return m->dm.g->t[t].name;
}

engine_status engine_run_observe(engine_ctx *c, const float *input, int n, float *output,
                                 engine_observe_fn fn, void *ud, char *err, size_t err_len) {
    if (c->m->dm.g->nin != 1 || c->m->dm.g->nout != 1) {
        set_err(err, err_len, "calibration needs a model with one input and one output");
        return ENGINE_ERR_ARG;
    }
    plan *p;
    engine_status st = get_plan(c, n, &p, err, err_len);
    if (st != ENGINE_OK)
        return st;
    const float *in[1] = {input};
    float *outp[1] = {output};
    char e[300] = "";
    st = plan_run_observe(p, c->m->dm.g, c->strm, in, outp, fn, ud, e, sizeof e);
    if (st != ENGINE_OK)
        set_err(err, err_len, e);
    return st;
}

engine_status engine_run(engine_ctx *c, const float *input, int n, float *output, char *err,
                         size_t err_len) {
    if (c->m->dm.g->nin != 1 || c->m->dm.g->nout < 1) {
        set_err(err, err_len, "engine_run needs a model with one input");
        return ENGINE_ERR_ARG;
    }
    if (c->m->dm.g->nout > 1) {
        set_err(err, err_len, "engine_run needs a model with one output");
        return ENGINE_ERR_ARG;
    }
    const float *in[1] = {input};
    float *outp[1] = {output};
    return engine_run_tensors(c, n, in, outp, err, err_len);
}

const char *engine_cpu_isa(void) {
    const char *isa = dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa());
    return isa ? isa : "unknown";
}
