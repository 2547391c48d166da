/* graph_ops.c — the operator table (rows in graph_ops.h), the op-specific load
 * checks it names, and the ONNX name <-> graph_op mapping. */
#include "graph_shape.h"

#include <stdio.h>
#include <string.h>

/* An int attribute's value as stored (whatever its type), or def when absent. */
static int64_t attr_i(const graph_node *n, const char *name, int64_t def) {
    const graph_attr *a = graph_attr_find(n, name);
    return a ? a->i : def;
}

static engine_status graph_check_ok(const graph_node *n, char *err, size_t err_len) {
    return ENGINE_OK;
}

static engine_status graph_check_bn(const graph_node *n, char *err, size_t err_len) {
    if (attr_i(n, "spatial", 1) != 1) {
        snprintf(err, err_len, "node '%s' (%s): attribute 'spatial' must be 1", n->name,
                 n->op_type);
        return ENGINE_ERR_UNSUPPORTED;
    }
    if (attr_i(n, "training_mode", 0) != 0) {
        snprintf(err, err_len, "node '%s' (%s): attribute 'training_mode' must be 0 (inference)",
                 n->name, n->op_type);
        return ENGINE_ERR_UNSUPPORTED;
    }
    for (int j = 1; j < n->nout; j++)
        if (n->out[j] >= 0) {
            snprintf(err, err_len,
                     "node '%s' (BatchNormalization): training outputs are not supported", n->name);
            return ENGINE_ERR_UNSUPPORTED;
        }
    return ENGINE_OK;
}

static engine_status graph_check_maxpool(const graph_node *n, char *err, size_t err_len) {
    if (attr_i(n, "storage_order", 0) != 0) {
        snprintf(err, err_len, "node '%s' (%s): attribute 'storage_order' must be 0", n->name,
                 n->op_type);
        return ENGINE_ERR_UNSUPPORTED;
    }
    if (n->nout > 1 && n->out[1] >= 0) {
        snprintf(err, err_len, "node '%s' (MaxPool): output 'Indices' is not supported", n->name);
        return ENGINE_ERR_UNSUPPORTED;
    }
    return ENGINE_OK;
}

static engine_status graph_check_pad(const graph_node *n, char *err, size_t err_len) {
    const graph_attr *m = graph_attr_find(n, "mode");
    if (m && m->s && strcmp(m->s, "constant") != 0) {
        snprintf(err, err_len, "node '%s' (%s): attribute 'mode' must be 'constant'", n->name,
                 n->op_type);
        return ENGINE_ERR_UNSUPPORTED;
    }
    return ENGINE_OK;
}

#define GRAPH_OP_ROW(NAME, onnx, nmin, nopt, attrs, check, shape, flags, build)                    \
    {onnx, nmin, nopt, attrs, graph_check_##check, graph_shape_##shape, flags},
const graph_op_def graph_op_defs[] = {GRAPH_OPS(GRAPH_OP_ROW)};
#undef GRAPH_OP_ROW
/* Rows are in enum order because both come from GRAPH_OPS; the count is
 * checked here (the array is sized by its initializers). */
_Static_assert(sizeof graph_op_defs / sizeof graph_op_defs[0] == OP_COUNT,
               "graph_op_defs must have one row per graph_op");

int graph_op_from_onnx(const char *op_type) {
    for (int i = 0; i < OP_COUNT; i++)
        if (strcmp(graph_op_defs[i].onnx, op_type) == 0)
            return i;
    return -1;
}

const char *graph_op_name(graph_op op) {
    return (unsigned)op < OP_COUNT ? graph_op_defs[op].onnx : "?";
}
