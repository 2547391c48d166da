/* onnx_tensor.h — TensorProto conversion, internal to engine/onnx. */
#ifndef RESNETD_ONNX_TENSOR_H
#define RESNETD_ONNX_TENSOR_H

#include "graph/graph.h"
#include "onnx.pb-c.h"

/* Fills constant tensor t (dims, dtype, data owned by t) from tp. External
 * data is read from base_dir (NULL forbids it), its location must stay inside
 * that directory and its offset/length inside the file. Errors name the tensor. */
engine_status onnx_tensor_convert(const Onnx__TensorProto *tp, const char *base_dir,
                                  graph_tensor *t, char *err, size_t err_len);

#endif
