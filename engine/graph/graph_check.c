/* graph_check.c — every attribute we meet must be one we implement. */
#include "graph.h"

#include <stdio.h>
#include <string.h>

/* Space-separated attribute names each op accepts. */
static const char *allowed(graph_op op) {
    switch (op) {
    case OP_CONV:
        return " auto_pad dilations group kernel_shape pads strides ";
    case OP_BATCHNORM:
        return " epsilon momentum spatial training_mode is_test ";
    case OP_CLIP:
        return " min max ";
    case OP_MAXPOOL:
        return " auto_pad ceil_mode dilations kernel_shape pads storage_order strides ";
    case OP_AVGPOOL:
        return " auto_pad ceil_mode count_include_pad kernel_shape pads strides ";
    case OP_FLATTEN:
    case OP_CONCAT:
    case OP_GATHER:
        return " axis ";
    case OP_SOFTMAX:
        return " axis ";
    case OP_RESHAPE:
        return " allowzero ";
    case OP_GEMM:
        return " alpha beta transA transB ";
    case OP_DROPOUT:
        return " ratio seed is_test ";
    case OP_PAD:
        return " mode pads value ";
    case OP_SLICE:
        return " starts ends axes ";
    case OP_SHAPE:
        return " start end ";
    case OP_UNSQUEEZE:
    case OP_SQUEEZE:
        return " axes ";
    case OP_CAST:
        return " to saturate ";
    case OP_CONSTANTOFSHAPE:
        return " value ";
    case OP_TRANSPOSE:
        return " perm ";
    case OP_QUANTIZE:
    case OP_DEQUANTIZE:
        return " axis saturate block_size ";
    default:
        return " ";
    }
}

engine_status graph_check_attrs(const graph *g, char *err, size_t err_len) {
    for (int i = 0; i < g->nn; i++) {
        const graph_node *n = &g->n[i];
        const char *ok = allowed(n->op);
        for (int a = 0; a < n->nattr; a++) {
            const graph_attr *at = &n->attr[a];
            char key[160];
            snprintf(key, sizeof key, " %s ", at->name);
            const char *why = NULL;
            if (!strstr(ok, key))
                why = "is not supported";
            else if (strcmp(at->name, "spatial") == 0 && at->i != 1)
                why = "must be 1";
            else if (strcmp(at->name, "training_mode") == 0 && at->i != 0)
                why = "must be 0 (inference)";
            else if (strcmp(at->name, "storage_order") == 0 && at->i != 0)
                why = "must be 0";
            else if (strcmp(at->name, "mode") == 0 && at->s && strcmp(at->s, "constant") != 0)
                why = "must be 'constant'";
            if (why) {
                snprintf(err, err_len, "node '%s' (%s): attribute '%s' %s", n->name, n->op_type,
                         at->name, why);
                return ENGINE_ERR_UNSUPPORTED;
            }
        }
        if (n->op == OP_MAXPOOL && n->nout > 1 && n->out[1] >= 0) {
            snprintf(err, err_len, "node '%s' (MaxPool): output 'Indices' is not supported",
                     n->name);
            return ENGINE_ERR_UNSUPPORTED;
        }
        if (n->op == OP_BATCHNORM && n->nout > 1) {
            for (int j = 1; j < n->nout; j++)
                if (n->out[j] >= 0) {
                    snprintf(err, err_len,
                             "node '%s' (BatchNormalization): training outputs are not supported",
                             n->name);
                    return ENGINE_ERR_UNSUPPORTED;
                }
        }
        int min_in = n->op == OP_CONV || n->op == OP_ADD || n->op == OP_MUL || n->op == OP_GEMM ||
                             n->op == OP_MATMUL || n->op == OP_GATHER || (n->op == OP_RESHAPE)
                         ? 2
                     : n->op == OP_BATCHNORM ? 5
                                             : 1;
        if (n->nin < min_in || n->in[0] < 0 || (min_in > 1 && n->in[1] < 0) || n->nout < 1 ||
            n->out[0] < 0) {
            snprintf(err, err_len, "node '%s' (%s): missing inputs or outputs", n->name,
                     n->op_type);
            return ENGINE_ERR_INVALID;
        }
        for (int j = 2; j < min_in; j++)
            if (n->in[j] < 0) {
                snprintf(err, err_len, "node '%s' (%s): missing input %d", n->name, n->op_type, j);
                return ENGINE_ERR_INVALID;
            }
    }
    return ENGINE_OK;
}
