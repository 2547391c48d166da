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
    /* taps (engine.h): graph tensor, full dims (dims[0] -1 when dynamic) */
    int ntaps;
    int *tap_t;
    int64_t (*tap_dims)[ENGINE_MAX_DIMS];
    int *tap_ndim;
    int *tap_unfuse;     /* the node a plan variant unfuses to compute the tap, or -1 */
    int default_emb;     /* tap index or -1 */
    engine_cam_info cam; /* weight/bias: the graph's constants, or cam_own_* */
    float *cam_own_w, *cam_own_b;
    engine_status cam_st;
    char cam_err[200];
};

/* Tap copies a context keeps ready (one per batch size and tap asked for);
 * past this the least recently used is dropped. Also the most different
 * taps one run may ask for. */
#define CTX_TAP_CACHE 32

typedef struct {
    const plan *pl; /* the plan it copies from; NULL: empty */
    int tap;
    uint64_t used;
    plan_tap pt;
} tap_slot;

/* Plan variants a context keeps for taps of fused-away tensors (one per batch
 * size and set of unfused nodes); past this the least recently used goes. */
#define CTX_VARIANTS 4

typedef struct {
    int n;       /* batch size; 0: empty */
    char *nodes; /* g->nn flags: the nodes built unfused */
    plan *p;
    uint64_t used;
} variant_slot;

struct engine_ctx {
    const engine_model *m;
    dnnl_stream_t strm;
    int threads;
    plan **plans; /* index: batch size */
    int nplans;
    void *arena, *scratch; /* shared by all plans, sized for the largest */
    size_t arena_cap, scratch_cap;
    tap_slot taps[CTX_TAP_CACHE];
    variant_slot variants[CTX_VARIANTS];
    uint64_t tick;
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
    return (engine_load_params){.max_batch = 8, .winograd = 1, .channels_last = 1};
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

/* The taps: every computed float tensor whose first dimension is the batch
 * (a: shapes at batch b1; b: at batch 2, NULL for a fixed batch). */
static engine_status find_taps(engine_model *m, const graph_shape *a, const graph_shape *b,
                               int b1) {
    graph *g = m->dm.g;
    m->tap_t = calloc((size_t)g->nt + 1, sizeof(int));
    m->tap_dims = calloc((size_t)g->nt + 1, sizeof *m->tap_dims);
    m->tap_ndim = calloc((size_t)g->nt + 1, sizeof(int));
    m->tap_unfuse = calloc((size_t)g->nt + 1, sizeof(int));
    if (!m->tap_t || !m->tap_dims || !m->tap_ndim || !m->tap_unfuse)
        return ENGINE_ERR_NOMEM;
    for (int t = 0; t < g->nt; t++) {
        const graph_shape *sa = &a[t];
        if (g->t[t].is_input || g->t[t].producer < 0 || sa->is_const || sa->dtype != GRAPH_F32 ||
            sa->ndim < 1 || sa->dims[0] != b1 ||
            (b && (b[t].ndim != sa->ndim || b[t].dims[0] != 2 ||
                   memcmp(b[t].dims + 1, sa->dims + 1, (size_t)(sa->ndim - 1) * sizeof(int64_t)))))
            continue; /* not per image: the batch must be dim 0 and only dim 0 */
        int64_t per = graph_numel(sa->dims + 1, sa->ndim - 1);
        if (per < 1 || per > INT32_MAX ||
            strlen(g->t[t].name) >= sizeof(((engine_tensor_desc *)0)->name))
            continue;
        int i = m->ntaps++;
        m->tap_unfuse[i] = -1;
        m->tap_t[i] = t;
        m->tap_ndim[i] = sa->ndim;
        memcpy(m->tap_dims[i], sa->dims, (size_t)sa->ndim * sizeof(int64_t));
        if (b)
            m->tap_dims[i][0] = -1;
    }
    /* the tensors fused away into a Conv's or BatchNormalization's post-ops
     * (the value before each post-op), computed by a plan variant that runs
     * that node unfused; they have the shape of the node's output */
    for (int k = 0; k < g->nn; k++) {
        const graph_node *n = &g->n[k];
        if (n->op != OP_CONV && n->op != OP_BATCHNORM)
            continue;
        for (int j = 0; j < n->npost; j++) {
            int t = n->post_in[j], o = n->out[0];
            if (t < 0 || t >= g->nt || g->t[t].producer >= 0 || g->t[t].is_output ||
                a[o].ndim < 1 || a[o].dims[0] != b1 || m->ntaps >= g->nt ||
                strlen(g->t[t].name) >= sizeof(((engine_tensor_desc *)0)->name))
                continue;
            int i = m->ntaps++;
            m->tap_unfuse[i] = k;
            m->tap_t[i] = t;
            m->tap_ndim[i] = a[o].ndim;
            memcpy(m->tap_dims[i], a[o].dims, (size_t)a[o].ndim * sizeof(int64_t));
            if (b)
                m->tap_dims[i][0] = -1;
        }
    }
    return ENGINE_OK;
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
        if (st == ENGINE_OK)
            st = find_taps(m, a, m->info.fixed_batch ? NULL : b, b1);
    }
    graph_shapes_release(a, g->nt);
    graph_shapes_release(b, g->nt);
    free(a);
    free(b);
    return st;
}

static int tap_of_tensor(const engine_model *m, int t) {
    for (int i = 0; t >= 0 && i < m->ntaps; i++)
        if (m->tap_t[i] == t)
            return i;
    return -1;
}

static const float *const_f32(const graph *g, int t, int64_t count) {
    return t >= 0 && g->t[t].is_const && g->t[t].dtype == GRAPH_F32 && g->t[t].f &&
                   g->t[t].count == count
               ? g->t[t].f
               : NULL;
}

/* The classifier at the end of the graph (engine.h: default embedding, class
 * activation maps): output <- (Softmax) <- Gemm | MatMul (+ Add) <- x, and
 * x <- (Flatten/Reshape) <- GlobalAveragePool <- features. Records what is
 * missing in cam_st/cam_err; fails only when out of memory. */
static engine_status find_classifier(engine_model *m) {
    graph *g = m->dm.g;
    m->default_emb = -1;
    m->cam_st = ENGINE_ERR_UNSUPPORTED;
    m->cam.features_tap = -1;
#define CAM_FAIL(...)                                                                              \
    do {                                                                                           \
        snprintf(m->cam_err, sizeof m->cam_err, __VA_ARGS__);                                      \
        return ENGINE_OK;                                                                          \
    } while (0)
    if (g->nout != 1)
        CAM_FAIL("the model has %d outputs, not one classifier output", g->nout);
    int t = g->outputs[0];
    const graph_node *n = g->t[t].producer >= 0 ? &g->n[g->t[t].producer] : NULL;
    if (n && n->op == OP_SOFTMAX) {
        t = n->in[0];
        n = g->t[t].producer >= 0 ? &g->n[g->t[t].producer] : NULL;
    }
    int bias_t = -1, wt = -1, x = -1, trans = 0;
    float alpha = 1.f, beta = 1.f;
    if (n && n->op == OP_ADD && n->nin == 2) { /* MatMul + bias */
        int j = g->t[n->in[0]].is_const ? 0 : 1;
        bias_t = n->in[j];
        t = n->in[1 - j];
        n = g->t[t].producer >= 0 ? &g->n[g->t[t].producer] : NULL;
        if (!n || n->op != OP_MATMUL)
            CAM_FAIL("the output is not computed by a Gemm or MatMul (+Add) classifier");
    }
    if (n && n->op == OP_GEMM && n->nin >= 2 && !graph_attr_int(n, "transA", 0)) {
        x = n->in[0];
        wt = n->in[1];
        trans = (int)graph_attr_int(n, "transB", 0);
        alpha = graph_attr_float(n, "alpha", 1.f);
        beta = graph_attr_float(n, "beta", 1.f);
        if (n->nin > 2)
            bias_t = n->in[2];
    } else if (n && n->op == OP_MATMUL && n->nin == 2) {
        x = n->in[0];
        wt = n->in[1];
    } else {
        CAM_FAIL("the output is not computed by a Gemm or MatMul (+Add) classifier");
    }
    m->default_emb = tap_of_tensor(m, x);
    int ti = m->default_emb;
    if (ti < 0 || m->tap_ndim[ti] != 2)
        CAM_FAIL("the classifier's input is not a per-image vector");
    int64_t C = m->tap_dims[ti][1];
    int64_t K = m->info.num_classes;
    const graph_tensor *w = &g->t[wt];
    const float *wf = const_f32(g, wt, C * K);
    if (!wf || w->ndim != 2)
        CAM_FAIL("the classifier's weights are not a constant %lld x %lld matrix", (long long)C,
                 (long long)K);
    const float *bf = bias_t >= 0 ? const_f32(g, bias_t, K) : NULL;
    if (bias_t >= 0 && !bf)
        CAM_FAIL("the classifier's bias is not a constant vector of %lld", (long long)K);
    /* x <- Flatten/Reshape <- GlobalAveragePool <- features [N,C,h,w] */
    int f = x;
    n = g->t[f].producer >= 0 ? &g->n[g->t[f].producer] : NULL;
    while (n && (n->op == OP_FLATTEN || n->op == OP_RESHAPE || n->op == OP_SQUEEZE)) {
        f = n->in[0];
        n = g->t[f].producer >= 0 ? &g->n[g->t[f].producer] : NULL;
    }
    if (!n || n->op != OP_GLOBALAVGPOOL)
        CAM_FAIL("the classifier's input is not a global average pool");
    int fi = tap_of_tensor(m, n->in[0]);
    if (fi < 0 || m->tap_ndim[fi] != 4 || m->tap_dims[fi][1] != C)
        CAM_FAIL("the global average pool does not read [N,%lld,h,w] features", (long long)C);
    /* the graph's own rows when they already are classes x channels (a
     * PyTorch Linear exports Gemm transB=1, alpha=beta=1: no copy of
     * ResNet-50's 8 MB); else a copy, owned by the model */
    const float *rw = wf, *rb = bf;
    if (!trans || alpha != 1.f) {
        float *cw = malloc((size_t)(C * K) * sizeof(float));
        if (!cw)
            return ENGINE_ERR_NOMEM;
        for (int64_t k = 0; k < K; k++)
            for (int64_t c = 0; c < C; c++)
                cw[k * C + c] = alpha * (trans ? wf[k * C + c] : wf[c * K + k]);
        rw = m->cam_own_w = cw;
    }
    if (bf && beta != 1.f) {
        float *cb = malloc((size_t)K * sizeof(float));
        if (!cb)
            return ENGINE_ERR_NOMEM;
        for (int64_t k = 0; k < K; k++)
            cb[k] = beta * bf[k];
        rb = m->cam_own_b = cb;
    }
    m->cam = (engine_cam_info){.features_tap = fi,
                               .channels = (int)C,
                               .height = (int)m->tap_dims[fi][2],
                               .width = (int)m->tap_dims[fi][3],
                               .classes = (int)K,
                               .weight = rw,
                               .bias = rb};
    m->cam_st = ENGINE_OK;
    return ENGINE_OK;
#undef CAM_FAIL
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

static const char *const conv_algo_names[ENGINE_CONV_NALGO] = {"auto", "direct", "channels_last",
                                                               "winograd"};

const char *engine_conv_algo_str(int algo) {
    return algo >= 0 && algo < ENGINE_CONV_NALGO ? conv_algo_names[algo] : "?";
}

int engine_conv_algo_parse(const char *s) {
    for (int i = 0; s && i < ENGINE_CONV_NALGO; i++)
        if (strcmp(s, conv_algo_names[i]) == 0)
            return i;
    return -1;
}

/* Per node: the Conv algorithm the load parameters ask for (conv_force, else
 * the conv_choices entry of that name; names not in the graph are ignored). */
static signed char *conv_algos(const graph *g, const engine_load_params *p) {
    signed char *a = calloc((size_t)g->nn + 1, 1);
    for (int i = 0; a && i < g->nn; i++) {
        if (g->n[i].op != OP_CONV)
            continue;
        int want = p->conv_force > 0 && p->conv_force < ENGINE_CONV_NALGO ? p->conv_force : 0;
        for (int k = 0; !want && g->n[i].name && g->n[i].name[0] && k < p->nconv_choices; k++)
            if (strcmp(p->conv_choices[k].node, g->n[i].name) == 0 && p->conv_choices[k].algo > 0 &&
                p->conv_choices[k].algo < ENGINE_CONV_NALGO)
                want = p->conv_choices[k].algo;
        a[i] = (signed char)want;
    }
    return a;
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
        if (st == ENGINE_OK)
            st = find_classifier(m);
    }
    m->dm.winograd = p ? p->winograd : 1;
    m->dm.channels_last = p ? p->channels_last : 1;
    if (st == ENGINE_OK && p && (p->conv_force || p->nconv_choices > 0) &&
        !(m->dm.conv_algo = conv_algos(m->dm.g, p))) {
        snprintf(e, sizeof e, "out of memory");
        st = ENGINE_ERR_NOMEM;
    }
    if (st == ENGINE_OK && qdq)
        st = qdq_ranges(&m->dm, p ? p->quant_path : NULL, e, sizeof e);
    else if (st == ENGINE_OK && p && p->quant_path)
        st = quant_file_read(p->quant_path, m->dm.g, &m->dm.qmin, &m->dm.qmax, &m->dm.qrange, e,
                             sizeof e);
    /* int8 plans keep their post-ops fused: no unfused taps (they are last) */
    while (st == ENGINE_OK && m->dm.qrange && m->ntaps > 0 && m->tap_unfuse[m->ntaps - 1] >= 0)
        m->ntaps--;
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
    free(m->tap_t);
    free(m->tap_dims);
    free(m->tap_ndim);
    free(m->tap_unfuse);
    free(m->cam_own_w);
    free(m->cam_own_b);
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
    for (int i = 0; i < CTX_TAP_CACHE; i++)
        if (c->taps[i].pl)
            plan_tap_release(&c->taps[i].pt);
    for (int i = 0; i < CTX_VARIANTS; i++) {
        plan_free(c->variants[i].p);
        free(c->variants[i].nodes);
    }
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
        for (int i = 0; i < CTX_VARIANTS; i++)
            if (c->variants[i].p && c->variants[i].p != p)
                plan_bind(c->variants[i].p, c->arena, c->scratch);
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

int engine_model_num_nodes(const engine_model *m) {
    return m->dm.g->nn;
}

const char *engine_model_node_name(const engine_model *m, int i) {
    return m->dm.g->n[i].name ? m->dm.g->n[i].name : "";
}

engine_status engine_run_node_times(engine_ctx *c, const float *input, int n, float *output,
                                    double *node_sec, int *node_algo, char *err, size_t err_len) {
    const graph *g = c->m->dm.g;
    if (g->nin != 1 || g->nout != 1) {
        set_err(err, err_len, "timing needs a model with one input and one output");
        return ENGINE_ERR_ARG;
    }
    plan *p;
    engine_status st = get_plan(c, n, &p, err, err_len);
    if (st != ENGINE_OK)
        return st;
    double *step = calloc((size_t)p->nsteps + 1, sizeof *step);
    if (!step) {
        set_err(err, err_len, "out of memory");
        return ENGINE_ERR_NOMEM;
    }
    const float *in[1] = {input};
    float *outp[1] = {output};
    char e[300] = "";
    st = plan_run_timed(p, c->strm, in, outp, step, e, sizeof e);
    if (st != ENGINE_OK)
        set_err(err, err_len, e);
    for (int i = 0; i < g->nn; i++) {
        node_sec[i] = 0;
        node_algo[i] = 0;
    }
    for (int k = 0; st == ENGINE_OK && k < p->nsteps; k++)
        if (p->steps[k].node >= 0 && p->steps[k].node < g->nn) {
            node_sec[p->steps[k].node] += step[k];
            if (p->steps[k].algo)
                node_algo[p->steps[k].node] = p->steps[k].algo;
        }
    free(step);
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

int engine_model_num_taps(const engine_model *m) {
    return m->ntaps;
}

void engine_model_tap_desc(const engine_model *m, int i, engine_tensor_desc *d) {
    memset(d, 0, sizeof *d);
    if (i < 0 || i >= m->ntaps)
        return;
    snprintf(d->name, sizeof d->name, "%s", m->dm.g->t[m->tap_t[i]].name);
    d->ndim = m->tap_ndim[i];
    memcpy(d->dims, m->tap_dims[i], sizeof d->dims);
}

int engine_model_tap_unfused(const engine_model *m, int i) {
    return i >= 0 && i < m->ntaps && m->tap_unfuse[i] >= 0;
}

int engine_model_find_tap(const engine_model *m, const char *name) {
    for (int i = 0; name && i < m->ntaps; i++)
        if (strcmp(m->dm.g->t[m->tap_t[i]].name, name) == 0)
            return i;
    return -1;
}

int engine_model_default_embedding(const engine_model *m) {
    return m->default_emb;
}

engine_status engine_model_cam_info(const engine_model *m, engine_cam_info *ci, char *err,
                                    size_t err_len) {
    if (m->cam_st != ENGINE_OK) {
        memset(ci, 0, sizeof *ci);
        ci->features_tap = -1;
        set_err(err, err_len, m->cam_err);
        return m->cam_st;
    }
    *ci = m->cam;
    return ENGINE_OK;
}

/* The context's copy-out of tap `tap` from plan p, built on first use and
 * cached (least recently used out past CTX_TAP_CACHE). */
static engine_status ctx_tap(engine_ctx *c, plan *p, int tap, uint64_t run_start,
                             const plan_tap **out, char *err, size_t err_len) {
    tap_slot *free_slot = NULL, *lru = NULL;
    for (int i = 0; i < CTX_TAP_CACHE; i++) {
        tap_slot *s = &c->taps[i];
        if (s->pl == p && s->tap == tap) {
            s->used = ++c->tick;
            *out = &s->pt;
            return ENGINE_OK;
        }
        if (!s->pl && !free_slot)
            free_slot = s;
        /* a slot this run already uses stays */
        if (s->pl && s->used <= run_start && (!lru || s->used < lru->used))
            lru = s;
    }
    tap_slot *s = free_slot ? free_slot : lru;
    if (!s) {
        set_err(err, err_len, "too many different taps in one run");
        return ENGINE_ERR_ARG;
    }
    if (s->pl) {
        plan_tap_release(&s->pt);
        s->pl = NULL;
    }
    char e[300] = "";
    engine_status st = plan_tap_init(&c->m->dm, p, c->m->tap_t[tap], &s->pt, e, sizeof e);
    if (st != ENGINE_OK) {
        set_err(err, err_len, e);
        return st;
    }
    s->pl = p;
    s->tap = tap;
    s->used = ++c->tick;
    *out = &s->pt;
    return ENGINE_OK;
}

/* The plan variant of batch n that runs the nodes flagged in nodes unfused
 * (g->nn flags; taken over by the cache on success, else freed). */
static engine_status ctx_variant(engine_ctx *c, int n, char *nodes, plan **out, char *err,
                                 size_t err_len) {
    int nn = c->m->dm.g->nn;
    variant_slot *lru = NULL;
    for (int i = 0; i < CTX_VARIANTS; i++) {
        variant_slot *v = &c->variants[i];
        if (v->n == n && !memcmp(v->nodes, nodes, (size_t)nn)) {
            free(nodes);
            v->used = ++c->tick;
            *out = v->p;
            return ENGINE_OK;
        }
        if (!lru || !v->n || (lru->n && v->used < lru->used))
            lru = v;
    }
    plan *p = NULL;
    char e[400] = "";
    engine_status st = plan_build_unfused(&c->m->dm, n, nodes, &p, e, sizeof e);
    if (st != ENGINE_OK) {
        free(nodes);
        set_err(err, err_len, e);
        return st;
    }
    if (lru->n) { /* out: its tap copies, then the plan */
        for (int i = 0; i < CTX_TAP_CACHE; i++)
            if (c->taps[i].pl == lru->p) {
                plan_tap_release(&c->taps[i].pt);
                c->taps[i].pl = NULL;
            }
        plan_free(lru->p);
        free(lru->nodes);
        *lru = (variant_slot){0};
    }
    if ((st = ctx_buffers(c, p, err, err_len)) != ENGINE_OK) {
        plan_free(p);
        free(nodes);
        return st;
    }
    *lru = (variant_slot){n, nodes, p, ++c->tick};
    *out = p;
    return ENGINE_OK;
}

engine_status engine_run_fetch(engine_ctx *c, const float *input, int n, float *output,
                               const engine_fetch *fetch, int nfetch, char *err, size_t err_len) {
    if (nfetch <= 0)
        return engine_run(c, input, n, output, err, err_len);
    if (c->m->dm.g->nin != 1 || c->m->dm.g->nout != 1) {
        set_err(err, err_len, "engine_run_fetch needs a model with one input and one output");
        return ENGINE_ERR_ARG;
    }
    if (nfetch > CTX_TAP_CACHE * 8) {
        set_err(err, err_len, "too many fetches in one run");
        return ENGINE_ERR_ARG;
    }
    plan *p;
    engine_status st = get_plan(c, n, &p, err, err_len);
    if (st != ENGINE_OK)
        return st;
    plan_fetch pf[CTX_TAP_CACHE * 8];
    char *nodes = NULL; /* the nodes a variant must unfuse, when a tap needs one */
    for (int i = 0; i < nfetch; i++) {
        const engine_fetch *f = &fetch[i];
        if (f->image < 0 || f->image >= n || f->tap < 0 || f->tap >= c->m->ntaps || !f->dst) {
            free(nodes);
            set_err(err, err_len, "fetch names no image of the batch or no tap of the model");
            return ENGINE_ERR_ARG;
        }
        int u = c->m->tap_unfuse[f->tap];
        if (u >= 0 && !nodes && !(nodes = calloc((size_t)c->m->dm.g->nn + 1, 1))) {
            set_err(err, err_len, "out of memory");
            return ENGINE_ERR_NOMEM;
        }
        if (u >= 0)
            nodes[u] = 1;
    }
    if (nodes && (st = ctx_variant(c, n, nodes, &p, err, err_len)) != ENGINE_OK)
        return st;
    uint64_t run_start = c->tick;
    for (int i = 0; i < nfetch; i++) {
        const engine_fetch *f = &fetch[i];
        const plan_tap *pt;
        if ((st = ctx_tap(c, p, f->tap, run_start, &pt, err, err_len)) != ENGINE_OK)
            return st;
        pf[i] = (plan_fetch){pt, f->image, f->dst};
    }
    const float *in[1] = {input};
    float *outp[1] = {output};
    char e[300] = "";
    st = plan_run_fetch(p, c->strm, in, outp, pf, nfetch, e, sizeof e);
    if (st != ENGINE_OK)
        set_err(err, err_len, e);
    return st;
}

const char *engine_cpu_isa(void) {
    const char *isa = dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa());
    return isa ? isa : "unknown";
}
