/*
 * graph_ops.h — THE operator table: every fact about an operator is in its
 * row, and the rows are indexed by graph_op (the enum is generated from them).
 * Each layer expands the columns it needs (an "X macro"):
 *   graph.h        the graph_op enum: OP_<NAME> in row order, then OP_COUNT
 *   graph_ops.c    graph_op_defs[]: ONNX name, arity, attributes, checker,
 *                  shape function, flags (read by graph_check.c, graph_shape.c)
 *   dnnl/plan.c    the builder of each op
 * Both arrays are checked at compile time to have exactly OP_COUNT rows.
 *
 * X(NAME, onnx, nin_min, nin_opt, attrs, check, shape, flags, build):
 *   NAME     the enum constant is OP_NAME
 *   onnx     the ONNX op_type
 *   nin_min  inputs that must be given (named) — checked at load
 *   nin_opt  index of the first input that may be omitted (empty name);
 *            NIN_ALL: none may — checked by shape inference
 *   attrs    the attributes we implement, space-separated and space-padded;
 *            any other attribute fails the load (graph_check.c)
 *   check    graph_check_<check>() in graph_ops.c: attribute values and
 *            outputs we refuse (ok: nothing more to check)
 *   shape    graph_shape_<shape>() in graph_shape_ops.c: the outputs' shapes
 *            (the value too, for Shape and ConstantOfShape); unsupported:
 *            fails
 *   flags    OPF_FOLD: with constant inputs the value is computed at plan
 *            time (graph_fold.c); OPF_CONST: shape arithmetic, a runtime (or
 *            integer) input fails the load; OPF_LOWERED: removed by
 *            graph_lower_qdq before shapes are inferred
 *   build    dnnl_build_<build>() in dnnl/: the oneDNN steps for the node
 *            (none: the op cannot run on runtime tensors). OPF_CONST ops are
 *            planned only when their constant value is too big to fold
 *            (graph_fold), so Squeeze/Unsqueeze/Cast keep the reshape
 *            builder. An int8 Conv tries dnnl_build_conv_int8 first
 *            (dnnl/plan.c build_node).
 *
 * ADDING AN OPERATOR
 *   1. A row below (the enum, the ONNX name lookup, the attribute check and
 *      both dispatch arrays follow from it). Row order is the enum order and
 *      means nothing else (flags say what an op is); by convention new
 *      runtime ops go before the QDQ block.
 *   2. Its shape function in graph_shape_ops.c (prototype generated in
 *      graph_shape.h); parameters that may be attributes or constant inputs
 *      go through graph_params.c. If OPF_FOLD: its value rule in
 *      fold_rule_of() in graph_fold.c (the default copies elements in order,
 *      as reshapes do).
 *   3. A checker in graph_ops.c when attribute values need checking.
 *   4. Its builder in dnnl/ (prototype generated in dnnl_build.h): dnnl_ops.c for
 *      one-primitive ops, or a new dnnl_<op>.c using the dnnl_build.h helpers.
 *   5. Tests: an ONNX node test (tests/engine/onnx_node) and, when a model
 *      family uses it, a model-vs-ORT case (tests/engine/models.py).
 */
#ifndef RESNETD_GRAPH_OPS_H
#define RESNETD_GRAPH_OPS_H

#define NIN_ALL 64 /* the loader's input limit: no input may be omitted */

#define A_CONV " auto_pad dilations group kernel_shape pads strides "
#define A_BN " epsilon momentum spatial training_mode is_test "
#define A_MAXPOOL " auto_pad ceil_mode dilations kernel_shape pads storage_order strides "
#define A_AVGPOOL " auto_pad ceil_mode count_include_pad kernel_shape pads strides "
#define A_QDQ " axis saturate block_size "

/* clang-format off */
#define GRAPH_OPS(X)                                                                                                                                      \
    X(CONV,             "Conv",                2,  2,        A_CONV,                        ok,       conv,             0,                     conv)      \
    X(BATCHNORM,        "BatchNormalization",  5,  NIN_ALL,  A_BN,                          bn,       same,             0,                     batchnorm) \
    X(RELU,             "Relu",                1,  NIN_ALL,  " ",                           ok,       same,             0,                     eltwise)   \
    X(CLIP,             "Clip",                1,  1,        " min max ",                   ok,       same,             0,                     eltwise)   \
    X(MAXPOOL,          "MaxPool",             1,  NIN_ALL,  A_MAXPOOL,                     maxpool,  pool,             0,                     pool)      \
    X(AVGPOOL,          "AveragePool",         1,  NIN_ALL,  A_AVGPOOL,                     ok,       pool,             0,                     pool)      \
    X(GLOBALAVGPOOL,    "GlobalAveragePool",   1,  NIN_ALL,  " ",                           ok,       global_pool,      0,                     pool)      \
    X(ADD,              "Add",                 2,  NIN_ALL,  " ",                           ok,       broadcast,        OPF_FOLD,              binary)    \
    X(SUM,              "Sum",                 1,  NIN_ALL,  " ",                           ok,       broadcast,        0,                     binary)    \
    X(MUL,              "Mul",                 2,  NIN_ALL,  " ",                           ok,       broadcast,        OPF_FOLD,              binary)    \
    X(FLATTEN,          "Flatten",             1,  NIN_ALL,  " axis ",                      ok,       flatten,          OPF_FOLD,              reshape)   \
    X(RESHAPE,          "Reshape",             2,  NIN_ALL,  " allowzero ",                 ok,       reshape,          OPF_FOLD,              reshape)   \
    X(GEMM,             "Gemm",                2,  2,        " alpha beta transA transB ",  ok,       gemm,             0,                     gemm)      \
    X(MATMUL,           "MatMul",              2,  NIN_ALL,  " ",                           ok,       matmul,           0,                     matmul)    \
    X(SOFTMAX,          "Softmax",             1,  NIN_ALL,  " axis ",                      ok,       same,             0,                     softmax)   \
    X(IDENTITY,         "Identity",            1,  NIN_ALL,  " ",                           ok,       same,             OPF_FOLD,              reshape)   \
    X(DROPOUT,          "Dropout",             1,  1,        " ratio seed is_test ",        ok,       same,             OPF_FOLD,              reshape)   \
    X(CONCAT,           "Concat",              1,  NIN_ALL,  " axis ",                      ok,       concat,           OPF_FOLD,              concat)    \
    X(PAD,              "Pad",                 1,  2,        " mode pads value ",           pad,      pad,              0,                     pad)       \
    X(SLICE,            "Slice",               1,  3,        " starts ends axes ",          ok,       slice,            OPF_FOLD,              slice)     \
    /* QDQ quantization: lowered by graph_lower_qdq, never planned */                                                                                     \
    X(QUANTIZE,         "QuantizeLinear",      1,  NIN_ALL,  A_QDQ,                         ok,       unsupported,      OPF_LOWERED,           none)      \
    X(DEQUANTIZE,       "DequantizeLinear",    1,  NIN_ALL,  A_QDQ,                         ok,       unsupported,      OPF_LOWERED,           none)      \
    /* shape arithmetic: evaluated on constants only, never executed */                                                                                   \
    X(SHAPE,            "Shape",               1,  NIN_ALL,  " start end ",                 ok,       shape,            OPF_CONST,             none)      \
    X(GATHER,           "Gather",              2,  NIN_ALL,  " axis ",                      ok,       gather,           OPF_CONST | OPF_FOLD,  none)      \
    X(UNSQUEEZE,        "Unsqueeze",           1,  NIN_ALL,  " axes ",                      ok,       unsqueeze,        OPF_CONST | OPF_FOLD,  reshape)   \
    X(SQUEEZE,          "Squeeze",             1,  1,        " axes ",                      ok,       squeeze,          OPF_CONST | OPF_FOLD,  reshape)   \
    X(CAST,             "Cast",                1,  NIN_ALL,  " to saturate ",               ok,       cast,             OPF_CONST | OPF_FOLD,  reshape)   \
    X(CONSTANTOFSHAPE,  "ConstantOfShape",     1,  NIN_ALL,  " value ",                     ok,       constantofshape,  OPF_CONST,             none)      \
    X(SUB,              "Sub",                 2,  NIN_ALL,  " ",                           ok,       broadcast2,       OPF_CONST | OPF_FOLD,  none)      \
    X(DIV,              "Div",                 2,  NIN_ALL,  " ",                           ok,       broadcast2,       OPF_CONST | OPF_FOLD,  none)      \
    X(TRANSPOSE,        "Transpose",           1,  NIN_ALL,  " perm ",                      ok,       transpose,        OPF_CONST | OPF_FOLD,  none)
/* clang-format on */

enum { OPF_FOLD = 1, OPF_CONST = 2, OPF_LOWERED = 4 };

#endif
