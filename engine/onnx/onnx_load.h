/* onnx_load.h — ONNX protobuf (via protobuf-c) to resnetd's graph IR. */
#ifndef RESNETD_ONNX_LOAD_H
#define RESNETD_ONNX_LOAD_H

#include "graph/graph.h"

/* Parses an ONNX model from memory into a new graph (freed with graph_free).
 * base_dir resolves external data files (NULL forbids them). Only structure
 * and constants are produced; no pass runs here. On error *out is NULL and
 * err names the file offset, tensor, node, op or attribute at fault. */
engine_status onnx_load_graph(const void *data, size_t len, const char *base_dir, graph **out,
                              char *err, size_t err_len);

/* Parses a serialized float TensorProto (ONNX test data): name, shape and a
 * new float buffer the caller frees with free(). Non-float data is refused. */
engine_status onnx_load_tensor(const void *data, size_t len, char *name, size_t name_len, int *ndim,
                               int64_t *dims, float **out, char *err, size_t err_len);

#endif
