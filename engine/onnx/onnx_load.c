/*
 * onnx_load.c — the only file that sees protobuf-c types. It turns a
 * ModelProto into a graph: constants converted to float32/int64, graph inputs
 * and outputs with their shapes, nodes with copied attributes. Everything the
 * file claims is checked (sizes, dims, external data bounds) before use.
 */
#include "onnx_load.h"

#include "onnx.pb-c.h"
#include "onnx_tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static engine_status copy_attr(const Onnx__AttributeProto *ap, graph_attr *a, const graph_node *n,
                               char *err, size_t err_len) {
    a->name = strdup(ap->name ? ap->name : "");
    if (!a->name)
        return ENGINE_ERR_NOMEM;
    switch (ap->type) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
        a->type = ATTR_FLOAT;
        a->f = ap->f;
        return ENGINE_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
        a->type = ATTR_INT;
        a->i = ap->i;
        return ENGINE_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
        a->type = ATTR_STRING;
        a->s = malloc(ap->s.len + 1);
        if (!a->s)
            return ENGINE_ERR_NOMEM;
        if (ap->s.len)
            memcpy(a->s, ap->s.data, ap->s.len);
        a->s[ap->s.len] = 0;
        return ENGINE_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
        a->type = ATTR_FLOATS;
        a->n = (int)ap->n_floats;
        a->floats = malloc((ap->n_floats + 1) * sizeof(float));
        if (!a->floats)
            return ENGINE_ERR_NOMEM;
        if (ap->n_floats)
            memcpy(a->floats, ap->floats, ap->n_floats * sizeof(float));
        return ENGINE_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
        a->type = ATTR_INTS;
        a->n = (int)ap->n_ints;
        a->ints = malloc((ap->n_ints + 1) * sizeof(int64_t));
        if (!a->ints)
            return ENGINE_ERR_NOMEM;
        if (ap->n_ints)
            memcpy(a->ints, ap->ints, ap->n_ints * sizeof(int64_t));
        return ENGINE_OK;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
        /* only a one-element tensor (ConstantOfShape's value): kept as f and i */
        graph_tensor t = {.name = a->name};
        engine_status st =
            ap->t ? onnx_tensor_convert(ap->t, NULL, &t, err, err_len) : ENGINE_ERR_INVALID;
        if (st == ENGINE_OK && t.count != 1)
            st = ENGINE_ERR_UNSUPPORTED;
        if (st == ENGINE_OK) {
            a->type = ATTR_FLOAT;
            a->f = t.f ? t.f[0] : (float)t.i[0];
            a->i = t.i ? t.i[0] : (int64_t)t.f[0];
            a->n = t.dtype;
        } else {
            snprintf(err, err_len, "node '%s' (%s): attribute '%s' must be a 1-element tensor",
                     n->name, n->op_type, a->name);
        }
        free(t.f);
        free(t.i);
        return st;
    }
    default:
        snprintf(err, err_len, "node '%s' (%s): attribute '%s' has an unsupported type %d", n->name,
                 n->op_type, a->name, (int)ap->type);
        return ENGINE_ERR_UNSUPPORTED;
    }
}

/* A Constant node becomes a constant tensor (no node). */
static engine_status load_constant(graph *g, const Onnx__NodeProto *np, const char *base_dir,
                                   char *err, size_t err_len) {
    const char *nm = np->name ? np->name : "";
    if (np->n_output != 1 || np->n_attribute != 1) {
        snprintf(err, err_len, "node '%s' (Constant): needs one output and one attribute", nm);
        return ENGINE_ERR_INVALID;
    }
    int ti = graph_tensor_get(g, np->output[0]);
    if (ti < 0)
        return ENGINE_ERR_NOMEM;
    graph_tensor *t = &g->t[ti];
    if (t->is_const || t->is_input) {
        snprintf(err, err_len, "node '%s' (Constant): output '%s' is defined twice", nm, t->name);
        return ENGINE_ERR_INVALID;
    }
    const Onnx__AttributeProto *a = np->attribute[0];
    const char *an = a->name ? a->name : "";
    if (strcmp(an, "value") == 0 && a->t)
        return onnx_tensor_convert(a->t, base_dir, t, err, err_len);
    int isf = strcmp(an, "value_float") == 0 || strcmp(an, "value_floats") == 0;
    int isi = strcmp(an, "value_int") == 0 || strcmp(an, "value_ints") == 0;
    if (!isf && !isi) {
        snprintf(err, err_len, "node '%s' (Constant): unsupported attribute '%s'", nm, an);
        return ENGINE_ERR_UNSUPPORTED;
    }
    int scalar = strcmp(an, "value_float") == 0 || strcmp(an, "value_int") == 0;
    int64_t cnt = scalar ? 1 : (int64_t)(isf ? a->n_floats : a->n_ints);
    t->ndim = scalar ? 0 : 1;
    t->dims[0] = cnt;
    t->count = cnt;
    t->is_const = 1;
    t->dtype = isf ? GRAPH_F32 : GRAPH_I64;
    if (isf && !(t->f = malloc((size_t)(cnt + 1) * sizeof(float))))
        return ENGINE_ERR_NOMEM;
    if (isi && !(t->i = malloc((size_t)(cnt + 1) * sizeof(int64_t))))
        return ENGINE_ERR_NOMEM;
    for (int64_t k = 0; k < cnt; k++) {
        if (isf)
            t->f[k] = scalar ? a->f : a->floats[k];
        else
            t->i[k] = scalar ? a->i : a->ints[k];
    }
    return ENGINE_OK;
}

static engine_status load_node(graph *g, const Onnx__NodeProto *np, char *err, size_t err_len) {
    const char *nm = np->name ? np->name : "";
    const char *ot = np->op_type ? np->op_type : "";
    if (np->domain && *np->domain && strcmp(np->domain, "ai.onnx") != 0) {
        snprintf(err, err_len, "node '%s' (%s): unsupported operator domain '%s'", nm, ot,
                 np->domain);
        return ENGINE_ERR_UNSUPPORTED;
    }
    int op = graph_op_from_onnx(ot);
    if (op < 0 && (strncmp(ot, "QLinear", 7) == 0 || strstr(ot, "Integer"))) {
        snprintf(err, err_len,
                 "node '%s' (%s): integer operators (the QOperator format) are not supported; "
                 "resnetd runs QDQ models (QuantizeLinear/DequantizeLinear around float "
                 "operators; ONNX Runtime's quantizer: quant_format=QuantFormat.QDQ)",
                 nm, ot);
        return ENGINE_ERR_UNSUPPORTED;
    }
    if (op < 0) {
        snprintf(err, err_len, "node '%s' (%s): unsupported operator", nm, ot);
        return ENGINE_ERR_UNSUPPORTED;
    }
    if (np->n_input > 64 || np->n_output > 8 || np->n_attribute > 64) {
        snprintf(err, err_len, "node '%s' (%s): too many inputs, outputs or attributes", nm, ot);
        return ENGINE_ERR_INVALID;
    }
    int ni = graph_node_add(g, nm, ot, (int)np->n_input, (int)np->n_output);
    if (ni < 0)
        return ENGINE_ERR_NOMEM;
    graph_node *n = &g->n[ni];
    n->op = (graph_op)op;
    for (size_t i = 0; i < np->n_input; i++) {
        if (!np->input[i] || !*np->input[i])
            continue;
        int t = graph_tensor_get(g, np->input[i]);
        if (t < 0)
            return ENGINE_ERR_NOMEM;
        g->n[ni].in[i] = t;
    }
    for (size_t i = 0; i < np->n_output; i++) {
        if (!np->output[i] || !*np->output[i])
            continue;
        int t = graph_tensor_get(g, np->output[i]);
        if (t < 0)
            return ENGINE_ERR_NOMEM;
        graph_tensor *tt = &g->t[t];
        if (tt->is_const || tt->is_input || tt->producer >= 0) {
            snprintf(err, err_len, "node '%s' (%s): output '%s' is defined twice", nm, ot,
                     tt->name);
            return ENGINE_ERR_INVALID;
        }
        tt->producer = ni;
        g->n[ni].out[i] = t;
    }
    n = &g->n[ni];
    n->attr = calloc(np->n_attribute + 1, sizeof(graph_attr));
    if (!n->attr)
        return ENGINE_ERR_NOMEM;
    for (size_t i = 0; i < np->n_attribute; i++) {
        n->nattr = (int)i + 1;
        engine_status st = copy_attr(np->attribute[i], &n->attr[i], n, err, err_len);
        if (st != ENGINE_OK)
            return st;
    }
    return ENGINE_OK;
}

static engine_status load_value_info(graph *g, const Onnx__ValueInfoProto *vi, int is_input,
                                     char *err, size_t err_len) {
    const char *nm = vi->name ? vi->name : "";
    int ti = graph_tensor_get(g, nm);
    if (ti < 0)
        return ENGINE_ERR_NOMEM;
    graph_tensor *t = &g->t[ti];
    if (is_input && t->is_const)
        return ENGINE_OK; /* an initializer listed as input (IR < 4) */
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) {
        snprintf(err, err_len, "%s '%s': not a tensor", is_input ? "input" : "output", nm);
        return ENGINE_ERR_UNSUPPORTED;
    }
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (tt->has_elem_type && tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        snprintf(err, err_len, "%s '%s': data type %d, only float32 is supported",
                 is_input ? "input" : "output", nm, tt->elem_type);
        return ENGINE_ERR_UNSUPPORTED;
    }
    if (!is_input) {
        t->is_output = 1;
        return ENGINE_OK;
    }
    if (!tt->shape || tt->shape->n_dim > GRAPH_MAX_DIMS) {
        snprintf(err, err_len, "input '%s': missing shape or more than %d dims", nm,
                 GRAPH_MAX_DIMS);
        return ENGINE_ERR_UNSUPPORTED;
    }
    t->is_input = 1;
    t->ndim = (int)tt->shape->n_dim;
    for (int d = 0; d < t->ndim; d++) {
        const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[d];
        int known = dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        if (known && (dm->dim_value <= 0 || dm->dim_value > (1 << 24))) {
            snprintf(err, err_len, "input '%s': dim %d is %lld", nm, d, (long long)dm->dim_value);
            return ENGINE_ERR_INVALID;
        }
        if (!known && d != 0) {
            snprintf(err, err_len, "input '%s': dim %d is dynamic; only the batch may be", nm, d);
            return ENGINE_ERR_UNSUPPORTED;
        }
        t->dims[d] = known ? dm->dim_value : -1;
    }
    return ENGINE_OK;
}

static engine_status load_model(const Onnx__ModelProto *mp, const char *base_dir, graph *g,
                                char *err, size_t err_len) {
    if (!mp->graph || mp->graph->n_node == 0) {
        snprintf(err, err_len, "model: no graph nodes (empty file or not an ONNX model)");
        return ENGINE_ERR_PARSE;
    }
    g->opset = 0;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if (!o->domain || !*o->domain || strcmp(o->domain, "ai.onnx") == 0)
            g->opset = (int)o->version;
    }
    if (g->opset < 7 || g->opset > 17) {
        snprintf(err, err_len, "model: ONNX opset %d is not supported (7 to 17)", g->opset);
        return ENGINE_ERR_UNSUPPORTED;
    }
    const Onnx__GraphProto *gp = mp->graph;
    if (!gp) {
        snprintf(err, err_len, "model: no graph");
        return ENGINE_ERR_PARSE;
    }
    engine_status st;
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const char *nm = gp->initializer[i]->name;
        if (!nm || !*nm) {
            snprintf(err, err_len, "initializer %zu: no name", i);
            return ENGINE_ERR_INVALID;
        }
        int ti = graph_tensor_get(g, nm);
        if (ti < 0)
            return ENGINE_ERR_NOMEM;
        if (g->t[ti].is_const) {
            snprintf(err, err_len, "initializer '%s': defined twice", nm);
            return ENGINE_ERR_INVALID;
        }
        if ((st = onnx_tensor_convert(gp->initializer[i], base_dir, &g->t[ti], err, err_len)))
            return st;
    }
    for (size_t i = 0; i < gp->n_input; i++)
        if ((st = load_value_info(g, gp->input[i], 1, err, err_len)))
            return st;
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        if (np->op_type && strcmp(np->op_type, "Constant") == 0 &&
            (!np->domain || !*np->domain || strcmp(np->domain, "ai.onnx") == 0))
            st = load_constant(g, np, base_dir, err, err_len);
        else
            st = load_node(g, np, err, err_len);
        if (st)
            return st;
    }
    if (gp->n_output == 0) {
        snprintf(err, err_len, "model: graph has no outputs");
        return ENGINE_ERR_INVALID;
    }
    g->outputs = malloc(gp->n_output * sizeof(int));
    if (!g->outputs)
        return ENGINE_ERR_NOMEM;
    for (size_t i = 0; i < gp->n_output; i++) {
        if ((st = load_value_info(g, gp->output[i], 0, err, err_len)))
            return st;
        int ti = graph_tensor_find(g, gp->output[i]->name ? gp->output[i]->name : "");
        if (ti < 0 || (g->t[ti].producer < 0 && !g->t[ti].is_const && !g->t[ti].is_input)) {
            snprintf(err, err_len, "output '%s': not produced by any node",
                     gp->output[i]->name ? gp->output[i]->name : "");
            return ENGINE_ERR_INVALID;
        }
        g->outputs[g->nout++] = ti;
    }
    g->inputs = malloc(((size_t)g->nt + 1) * sizeof(int));
    if (!g->inputs)
        return ENGINE_ERR_NOMEM;
    for (size_t i = 0; i < gp->n_input; i++) {
        int ti = graph_tensor_find(g, gp->input[i]->name ? gp->input[i]->name : "");
        if (ti >= 0 && g->t[ti].is_input)
            g->inputs[g->nin++] = ti;
    }
    return ENGINE_OK;
}

engine_status onnx_load_graph(const void *data, size_t len, const char *base_dir, graph **out,
                              char *err, size_t err_len) {
    *out = NULL;
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, data);
    if (!mp) {
        snprintf(err, err_len, "not a valid ONNX protobuf (%zu bytes could not be parsed)", len);
        return ENGINE_ERR_PARSE;
    }
    graph *g = graph_new();
    engine_status st = g ? load_model(mp, base_dir, g, err, err_len) : ENGINE_ERR_NOMEM;
    onnx__model_proto__free_unpacked(mp, NULL);
    if (st == ENGINE_ERR_NOMEM)
        snprintf(err, err_len, "out of memory while loading the model");
    if (st != ENGINE_OK) {
        graph_free(g);
        return st;
    }
    *out = g;
    return ENGINE_OK;
}
