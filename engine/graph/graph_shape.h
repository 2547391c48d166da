/*
 * graph_shape.h — shapes of every tensor for one batch size, plus the values
 * of tensors computable from constants (shape arithmetic such as
 * Shape→Gather→Unsqueeze→Concat→Reshape is folded here, per batch size, so a
 * dynamic-batch model folds as well as a fixed one).
 */
#ifndef RESNETD_GRAPH_SHAPE_H
#define RESNETD_GRAPH_SHAPE_H

#include "graph.h"

typedef struct {
    int ndim;
    int64_t dims[GRAPH_MAX_DIMS];
    int is_const; /* value known: f or i is valid */
    graph_dtype dtype;
    const float *f;
    const int64_t *i;
    void *owned; /* buffer behind f/i when computed here */
} graph_shape;

/* Fills s[0..g->nt) for batch size `batch`. Nodes whose outputs are all
 * constant need not run. Release with graph_shapes_release (also on error). */
engine_status graph_infer(const graph *g, int batch, graph_shape *s, char *err, size_t err_len);
void graph_shapes_release(graph_shape *s, int nt);

/* ---- operator parameters (graph_params.c, the bottom of this folder) ---- */

/* Sliding-window geometry of Conv/MaxPool/AveragePool (ONNX semantics, with
 * auto_pad and ceil_mode resolved into explicit begin/end padding). */
typedef struct {
    int nsp;
    int64_t k[3], s[3], d[3], pl[3], pr[3], out[3];
} graph_geom;

engine_status graph_window_geom(const graph_node *n, const int64_t *in_sp, int nsp,
                                const int64_t *kernel, graph_geom *g, char *err, size_t err_len);

/* Slice parameters per input dim: start, step and output length. */
engine_status graph_slice_params(const graph *g, const graph_node *n, const graph_shape *s,
                                 int64_t *start, int64_t *step, int64_t *len, char *err,
                                 size_t err_len);
/* Pad parameters: pads[2*ndim] (begins then ends) and the constant value. */
engine_status graph_pad_params(const graph *g, const graph_node *n, const graph_shape *s,
                               int64_t *pads, float *value, char *err, size_t err_len);

/* Squeeze/Unsqueeze axes (attribute, or constant input from opset 13). */
engine_status graph_axes_param(const graph *g, const graph_node *n, const graph_shape *s,
                               int64_t *axes, int *na, char *err, size_t err_len);

/* Normalises a possibly negative axis; returns -1 when out of range. */
int graph_axis(int64_t axis, int ndim);

/* Copies a constant int64 tensor's values (at most cap) into out; returns
 * the count, or -1 when s is not such a constant or holds more. */
int graph_const_ints(const graph_shape *s, int64_t *out, int cap);

/* ---- the operator table (rows: graph_ops.h; array: graph_ops.c) ---- */

/* One call of a shape function: the node and every tensor's shape so far. */
typedef struct {
    const graph *g;
    const graph_node *n;
    graph_shape *s;                 /* every tensor */
    const graph_shape *x;           /* the first input */
    graph_shape *o;                 /* the first output: preset to x's dims, dtype f32 */
    int64_t fp[2 * GRAPH_MAX_DIMS]; /* fold parameters: perm, or slice start/step */
    int done;                       /* set when the function computed o's value itself */
    char *err;
    size_t err_len;
} graph_shape_call;

typedef struct {
    const char *onnx;
    int nin_min, nin_opt;
    const char *attrs;
    engine_status (*check)(const graph_node *n, char *err, size_t err_len);
    engine_status (*shape)(graph_shape_call *c);
    int flags; /* OPF_* */
} graph_op_def;

extern const graph_op_def graph_op_defs[]; /* OP_COUNT rows, indexed by graph_op */

/* The value of a folded node (OPF_FOLD, all inputs constant) into c->o, from
 * its shape call; leaves it unknown when it is too big to fold (graph_fold.c). */
engine_status graph_fold(graph_shape_call *c);
/* Gives o an owned value buffer of its element count and type dt (is_const
 * set); NULL on OOM (graph_fold.c). */
void *graph_value_alloc(graph_shape *o, graph_dtype dt);

/* graph_shape_<shape>() of every row (graph_shape_ops.c). */
#define GRAPH_SHAPE_DECL(NAME, onnx, nmin, nopt, attrs, check, shape, flags, build)                \
    engine_status graph_shape_##shape(graph_shape_call *c);
GRAPH_OPS(GRAPH_SHAPE_DECL)
#undef GRAPH_SHAPE_DECL

#endif
