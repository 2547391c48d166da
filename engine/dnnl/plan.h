/*
 * plan.h — the oneDNN backend (internal to the engine). No other module sees
 * oneDNN types.
 *
 * DESIGN. A dnnl_model is built once at load: the optimised graph, the CPU
 * engine and, per Conv node, weights already reordered into the layout the
 * AVX2 kernels want. It is never written afterwards, so any number of
 * contexts may share it. A plan belongs to one context and one batch size:
 * the primitives of every step (created once), the layout chosen for each
 * tensor (format_tag_any lets each primitive pick nChw8c and the consumer is
 * then given exactly that layout, so no reorder is needed between layers),
 * one arena holding every activation at offsets planned by liveness (tensors
 * whose lives do not overlap share bytes; in-place residual sums and
 * reshapes share their source's buffer) and one scratchpad shared by all
 * steps. Arena and scratchpad belong to the context, sized for its largest
 * plan and shared by all its plans (a context runs one plan at a time).
 * Running a plan allocates nothing: it binds the caller's input and output
 * pointers and executes the steps in order.
 *
 * FILES. This header is what engine.c uses; the op builders share
 * dnnl_build.h, which lists the folder's files from the bottom (dnnl_build.c)
 * to the top (dnnl_model.c). Which builder a node gets is its row of the
 * operator table (graph/graph_ops.h).
 */
#ifndef RESNETD_DNNL_PLAN_H
#define RESNETD_DNNL_PLAN_H

#include "graph/graph.h"
#include "graph/graph_shape.h"

#include <oneapi/dnnl/dnnl.h>

typedef struct {
    int has;
    dnnl_memory_desc_t md;  /* layout of data */
    void *data;             /* reordered weights (owned) */
    char impl[64];          /* kernel they were laid out for (Winograd layouts are per kernel) */
    dnnl_memory_desc_t qmd; /* int8: s8 weights in the kernel's layout (qdata, owned) */
    void *qdata;
} dnnl_prepared;

typedef struct {
    graph *g;
    dnnl_engine_t eng;
    dnnl_prepared *prep;    /* g->nn entries */
    int probing;            /* set only inside dnnl_model_prepare */
    int winograd;           /* try Winograd for 3x3 stride-1 convs */
    int channels_last;      /* direct KxK convs on nhwc where oneDNN has brgconv (dnnl_conv.c) */
    signed char *conv_algo; /* g->nn entries or NULL: per node ENGINE_CONV_* (dnnl_conv.c) */
    /* int8 (NULL for fp32): per graph tensor, calibrated minimum, maximum and
     * range (the clipping bound for |x|; 0 = no range, the tensor stays
     * fp32). Owned. */
    float *qmin, *qmax, *qrange;
} dnnl_model;

/* Prepares m->prep (Conv weights in the kernels' layout) for shapes at batch
 * `batch`. Frees plain weight copies that are no longer needed. */
engine_status dnnl_model_prepare(dnnl_model *m, int batch, char *err, size_t err_len);
void dnnl_model_release(dnnl_model *m); /* frees prep and the engine, not g */

#define PLAN_MAX_ARGS 16

typedef struct {
    int arg;
    int tensor; /* plan tensor, or -1 when mem is fixed */
    int view;   /* 1: a memory with md on tensor's buffer */
    dnnl_memory_desc_t md;
    dnnl_memory_t mem;
    size_t img_bytes; /* steps run per image: bytes from one image to the next (0: shared) */
} plan_arg;

typedef enum { CUSTOM_NONE, CUSTOM_PAD, CUSTOM_SLICE, CUSTOM_CLIP } plan_custom;

typedef struct {
    dnnl_primitive_t prim;
    plan_custom custom;
    int node; /* graph node the step belongs to, -1 for plan-level copies */
    int algo; /* the conv step of an fp32 Conv: the ENGINE_CONV_* it runs; else 0 */
    /* > 1: the primitive is made for one image and runs once per image of
     * the batch, its per-image args (img_bytes) moved from image to image,
     * so that every batch computes each image exactly as batch 1 does
     * (dnnl_conv.c: Winograd on small maps) */
    int images;
    int nargs;
    plan_arg args[PLAN_MAX_ARGS];
    dnnl_exec_arg_t exec[PLAN_MAX_ARGS];
    /* custom ops (plain row-major float tensors) */
    int cin, cout, ndim;
    int64_t idims[GRAPH_MAX_DIMS], odims[GRAPH_MAX_DIMS];
    int64_t a[GRAPH_MAX_DIMS], b[GRAPH_MAX_DIMS];
    float value;
} plan_step;

enum { BIND_ARENA, BIND_CONST, BIND_INPUT, BIND_OUTPUT };

typedef struct {
    int batch;
    int nt, capt; /* graph tensors, then plan temporaries */
    graph_shape *shapes;
    dnnl_memory_desc_t *md;
    char *has_md;
    int *alias;    /* tensor whose buffer this one uses, -1 for none */
    int *bind;     /* BIND_* */
    int *bind_idx; /* input/output index for BIND_INPUT/OUTPUT */
    int *last;     /* last step that reads the tensor */
    int *first;    /* step that writes it first */
    size_t *off;
    void **cdata; /* BIND_CONST: the data */
    /* int8: a u8/s8 tensor holds round(x * qscale[t]); deq[t]/quq[t] are the
     * plan temporaries holding t dequantized to f32 / quantized (-1: none). */
    float *qscale;
    int *deq, *quq;
    plan_step *steps;
    int nsteps, caps;
    size_t arena_size;   /* bytes of activations (owner provides them) */
    size_t scratch_size; /* bytes of scratchpad (owner provides them) */
    dnnl_memory_t *amem; /* memories living in the arena or the scratchpad */
    size_t *aoff;        /* their offsets; (size_t)-1 for the scratchpad */
    int namem;
    void **owned;
    int nowned, capo;
    /* memories bound to the caller's pointers at run time */
    dnnl_memory_t *dyn;
    int *dyn_root;
    int ndyn;
    void *arena_base; /* what plan_bind was last given (taps read from it) */
} plan;

/* Builds the plan for batch `batch`; *out freed with plan_free. */
engine_status plan_build(const dnnl_model *m, int batch, plan **out, char *err, size_t err_len);
/* The same with the nodes flagged in unfuse (g->nn entries) built without
 * their post-ops, each post-op its own step, so that every post_in tensor
 * of those nodes (graph.h) is computed: a plan variant for taps of tensors
 * the passes fused away. fp32 plans only (ENGINE_ERR_UNSUPPORTED for int8). */
engine_status plan_build_unfused(const dnnl_model *m, int batch, const char *unfuse, plan **out,
                                 char *err, size_t err_len);
void plan_free(plan *p);
/* Points the plan's activations and scratchpad at the owner's buffers (at
 * least arena_size and scratch_size bytes, 64-byte aligned). Call again
 * whenever the buffers move; never while the plan runs. */
void plan_bind(plan *p, void *arena, void *scratch);
/* Runs: inputs/outputs are the caller's plain float buffers per graph input/output. */
engine_status plan_run(plan *p, dnnl_stream_t s, const float *const *inputs, float *const *outputs,
                       char *err, size_t err_len);

/* plan_run that waits after every step and writes its duration (seconds,
 * monotonic clock) into step_sec[k] (nsteps entries). For tuning. */
engine_status plan_run_timed(plan *p, dnnl_stream_t s, const float *const *inputs,
                             float *const *outputs, double *step_sec, char *err, size_t err_len);

/* Like plan_run, and after every node's last step calls fn with the node's
 * first output (f32 data in the runtime layout, count floats including any
 * layout padding, which is zero). For calibration; slow (waits after each step). */
typedef void (*plan_observe_fn)(void *ud, int tensor, const float *data, size_t count);
engine_status plan_run_observe(plan *p, const graph *g, dnnl_stream_t s, const float *const *inputs,
                               float *const *outputs, plan_observe_fn fn, void *ud, char *err,
                               size_t err_len);

/*
 * Taps: one tensor of a plan copied out per image, in plain f32 layout,
 * right after the step that completes it (before any later step may reuse
 * its bytes). A tap adds one reorder per fetched image to the run and
 * changes nothing else: the plan's own steps and memory are those of
 * plan_run. u8/s8 tensors of int8 plans are dequantized by the reorder.
 */
typedef struct {
    int tensor;        /* graph tensor */
    int after;         /* step that completes it (-1: before the first step) */
    size_t per;        /* floats per image */
    size_t img_stride; /* bytes between two images in the runtime layout */
    dnnl_primitive_t prim;
    dnnl_memory_t src, dst; /* handles set at run time */
} plan_tap;

/* Prepares the tap of graph tensor t (which the plan computes) in p.
 * ENGINE_ERR_UNSUPPORTED when the plan holds t in a layout that cannot be
 * split per image. Release with plan_tap_release. */
engine_status plan_tap_init(const dnnl_model *m, const plan *p, int t, plan_tap *out, char *err,
                            size_t err_len);
void plan_tap_release(plan_tap *pt);

typedef struct {
    const plan_tap *tap;
    int image;  /* 0..batch-1 */
    float *dst; /* tap->per floats */
} plan_fetch;

/* plan_run that also copies out each fetch's image of its tap. */
engine_status plan_run_fetch(plan *p, dnnl_stream_t s, const float *const *inputs,
                             float *const *outputs, const plan_fetch *f, int nf, char *err,
                             size_t err_len);

#endif
