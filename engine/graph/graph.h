/*
 * graph.h — resnetd's graph IR: what the ONNX loader produces, what the passes
 * rewrite and what the oneDNN planner consumes. Internal to the engine.
 *
 * A graph is a list of tensors and a list of nodes in topological order.
 * Tensors are named values: graph inputs, constants (initializers, Constant
 * nodes and folded values, always stored as float32 or int64) or node outputs.
 * Every string and buffer is owned by the graph and freed by graph_free().
 */
#ifndef RESNETD_GRAPH_H
#define RESNETD_GRAPH_H

#include "engine.h"
#include "graph_ops.h"

#include <stddef.h>
#include <stdint.h>

#define GRAPH_MAX_DIMS ENGINE_MAX_DIMS
#define GRAPH_MAX_POST 4

/* Inside the graph folder: write one line into the caller's (buf, len) error
 * buffer and return st. The FAIL macros of graph_params.c, graph_shape.c,
 * graph_qdq.c and graph_shape_ops.c are this with their own buffer. */
#define GRAPH_FAIL_TO(buf, len, st, ...)                                                           \
    do {                                                                                           \
        snprintf(buf, len, __VA_ARGS__);                                                           \
        return st;                                                                                 \
    } while (0)

typedef enum { GRAPH_F32 = 1, GRAPH_I64 = 7 } graph_dtype;

/* Operators: one per row of GRAPH_OPS (graph_ops.h), in row order. */
#define GRAPH_OP_ENUM(NAME, ...) OP_##NAME,
typedef enum { GRAPH_OPS(GRAPH_OP_ENUM) OP_COUNT } graph_op;
#undef GRAPH_OP_ENUM

typedef enum { ATTR_FLOAT, ATTR_INT, ATTR_STRING, ATTR_FLOATS, ATTR_INTS } graph_attr_type;

typedef struct {
    char *name;
    graph_attr_type type;
    float f;
    int64_t i;
    char *s;
    int n;         /* element count of floats/ints */
    float *floats; /* owned */
    int64_t *ints; /* owned */
} graph_attr;

typedef struct {
    char *name;
    graph_dtype dtype;
    int ndim;                     /* -1 while unknown */
    int64_t dims[GRAPH_MAX_DIMS]; /* for graph inputs dims[0] may be -1 (dynamic batch) */
    int is_const;
    float *f;   /* constant data when dtype is F32 (owned) */
    int64_t *i; /* constant data when dtype is I64 (owned) */
    int64_t count;
    int producer; /* node index, -1 for inputs and constants */
    int is_input, is_output;
    int src_dtype; /* ONNX element type of a constant as stored in the file */
    /* QDQ models (graph_lower_qdq): the activation's int8 grid. qrange > 0
     * when a QuantizeLinear/DequantizeLinear pair gave this tensor a range:
     * values lie in [qmin, qmax] and |x| <= qrange. */
    float qmin, qmax, qrange;
    /* a constant made from int8 weights: per output channel (dim 0), 1/scale,
     * so that w * wq[o] is the stored integer (owned; NULL otherwise) */
    float *wq;
    int wq_n;
    int asym; /* a constant dequantized with a non-zero zero point */
} graph_tensor;

/* A fused post-operation appended to a Conv (or a standalone BN). */
typedef enum { POST_RELU, POST_CLIP, POST_SUM } graph_post_kind;
typedef struct {
    graph_post_kind kind;
    float alpha, beta; /* clip bounds */
} graph_post;

typedef struct {
    char *name;
    char *op_type;
    graph_op op;
    int nin, nout;
    int *in;  /* tensor indices, -1 for an omitted optional input */
    int *out; /* tensor indices, -1 for an omitted optional output */
    int nattr;
    graph_attr *attr;
    int npost;
    graph_post post[GRAPH_MAX_POST];
    /* the tensor that held the value before post-op k (the fused-away
     * output of the node the post-op came from; valid for k < npost): the
     * engine's taps can unfuse it (engine.c) */
    int post_in[GRAPH_MAX_POST];
    int sum_in; /* residual input added in place by a POST_SUM, else -1 */
    int dead;   /* removed by a pass */
} graph_node;

typedef struct {
    graph_tensor *t;
    int nt, capt;
    graph_node *n;
    int nn, capn;
    int *inputs; /* runtime inputs (not initializers) */
    int nin;
    int *outputs;
    int nout;
    int opset;
} graph;

graph *graph_new(void);
void graph_free(graph *g); /* NULL is a no-op */

/* Returns the index of tensor `name`, creating it if absent (-1 on OOM). */
int graph_tensor_get(graph *g, const char *name);
int graph_tensor_find(const graph *g, const char *name);
/* Appends an empty node; returns its index or -1 on OOM. */
int graph_node_add(graph *g, const char *name, const char *op_type, int nin, int nout);

/* Frees n's attributes (the array itself stays, for graph_free). */
void graph_node_clear_attrs(graph_node *n);

/* Attribute lookup; returns NULL when absent. */
const graph_attr *graph_attr_find(const graph_node *n, const char *name);
int64_t graph_attr_int(const graph_node *n, const char *name, int64_t def);
float graph_attr_float(const graph_node *n, const char *name, float def);
/* Copies up to cap ints into out; returns the count (0 when absent). */
int graph_attr_ints(const graph_node *n, const char *name, int64_t *out, int cap);

/* ONNX name of an op, for messages (graph_ops.c). */
const char *graph_op_name(graph_op op);
/* Maps an ONNX op_type to graph_op; returns -1 when unsupported (graph_ops.c). */
int graph_op_from_onnx(const char *op_type);

/* Frees the nodes marked dead, keeps the others in order and recomputes
 * every tensor's producer. */
void graph_drop_dead_nodes(graph *g);

/* Checks that nodes are topologically ordered and acyclic, reordering them
 * when needed. Returns ENGINE_ERR_INVALID (naming the node) on a cycle or an
 * input that nothing produces. */
engine_status graph_toposort(graph *g, char *err, size_t err_len);

/* Validates each node's attributes against the ones we implement. */
engine_status graph_check_attrs(const graph *g, char *err, size_t err_len);

/* QDQ lowering (graph_qdq.c), after graph_toposort: folds DequantizeLinear of
 * constants into float constants, replaces each activation's
 * QuantizeLinear -> DequantizeLinear pair by the tensor itself (plus a Relu
 * when the pair clamps at zero and the tensor may be negative) and records
 * its range in the tensor (qmin, qrange). Patterns the int8 kernels cannot
 * take (integer graph inputs or outputs, integer operators, per-channel
 * activation scales, asymmetric Conv weights, 16-bit or 4-bit types) fail
 * with ENGINE_ERR_UNSUPPORTED naming the node. Sets *has_qdq when any pair
 * was found. Leaves the graph topologically sorted. */
engine_status graph_lower_qdq(graph *g, int *has_qdq, char *err, size_t err_len);

/* Passes (graph_passes.c): drop Identity/Dropout, fold BN into Conv, fuse
 * Relu/Clip, fuse residual Add (+Relu) with a sum post-op, drop dead nodes. */
engine_status graph_optimize(graph *g, char *err, size_t err_len);

/* Element count of a shape; -1 on overflow or negative dims. */
int64_t graph_numel(const int64_t *dims, int ndim);

#endif
