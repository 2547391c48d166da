/*
 * engine_internal.h — engine.c's hooks for int8 calibration (engine/quant/
 * quant.c), not part of the public API (engine.h). No oneDNN type here.
 */
#ifndef RESNETD_ENGINE_INTERNAL_H
#define RESNETD_ENGINE_INTERNAL_H

#include "engine.h"

#include <stddef.h>

typedef void (*engine_observe_fn)(void *ud, int tensor, const float *data, size_t count);

/* engine_run that calls fn after each node with the node's output (f32).
 * Needs a model with one input and one output; slow (waits after each step). */
engine_status engine_run_observe(engine_ctx *c, const float *input, int n, float *output,
                                 engine_observe_fn fn, void *ud, char *err, size_t err_len);

/* The optimised graph's nodes (engine_tune.c): count and ONNX name ("" when
 * unnamed; owned by the model). */
int engine_model_num_nodes(const engine_model *m);
const char *engine_model_node_name(const engine_model *m, int i);

/* engine_run that waits after every step and writes each node's time in
 * seconds (the sum of its steps, reorders included) into node_sec and the
 * algorithm its fp32 Conv step runs (ENGINE_CONV_*; 0 for other nodes) into
 * node_algo (engine_model_num_nodes entries each). One input, one output. */
engine_status engine_run_node_times(engine_ctx *c, const float *input, int n, float *output,
                                    double *node_sec, int *node_algo, char *err, size_t err_len);

/* Graph tensor count and name (names are owned by the model). */
int engine_model_num_tensors(const engine_model *m);
const char *engine_model_tensor_name(const engine_model *m, int t);

#endif
