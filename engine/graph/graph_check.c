/* graph_check.c — every attribute we meet must be one we implement, every
 * node must have the inputs and outputs its op needs (graph_op_defs). */
#include "graph_shape.h"

#include <stdio.h>
#include <string.h>

/* Attribute names first: an unknown one is refused before any value rule. */
static engine_status check_attr_names(const graph_node *n, const char *ok, char *err,
                                      size_t err_len) {
    for (int a = 0; a < n->nattr; a++) {
        char key[160];
        snprintf(key, sizeof key, " %s ", n->attr[a].name);
        if (!strstr(ok, key)) {
            snprintf(err, err_len, "node '%s' (%s): attribute '%s' is not supported", n->name,
                     n->op_type, n->attr[a].name);
            return ENGINE_ERR_UNSUPPORTED;
        }
    }
    return ENGINE_OK;
}

static engine_status check_arity(const graph_node *n, int min_in, char *err, size_t err_len) {
    if (n->nin < min_in || n->in[0] < 0 || (min_in > 1 && n->in[1] < 0) || n->nout < 1 ||
        n->out[0] < 0) {
        snprintf(err, err_len, "node '%s' (%s): missing inputs or outputs", n->name, n->op_type);
        return ENGINE_ERR_INVALID;
    }
    for (int j = 2; j < min_in; j++)
        if (n->in[j] < 0) {
            snprintf(err, err_len, "node '%s' (%s): missing input %d", n->name, n->op_type, j);
            return ENGINE_ERR_INVALID;
        }
    return ENGINE_OK;
}

engine_status graph_check_attrs(const graph *g, char *err, size_t err_len) {
    for (int i = 0; i < g->nn; i++) {
        const graph_node *n = &g->n[i];
        const graph_op_def *d = &graph_op_defs[n->op];
        engine_status st = check_attr_names(n, d->attrs, err, err_len);
        if (st == ENGINE_OK)
            st = d->check(n, err, err_len);
        if (st == ENGINE_OK)
            st = check_arity(n, d->nin_min, err, err_len);
        if (st != ENGINE_OK)
            return st;
    }
    return ENGINE_OK;
}
