/*
 * quant.h — int8 post-training calibration (engine-internal: used by
 * `resnetd quantize`, not part of the public engine API; no oneDNN type here).
 *
 * Calibration runs images through the fp32 model and records, for every
 * tensor a node produces (after the graph passes, so a Conv's output is the
 * value after its fused ReLU / residual sum), its minimum, maximum and a
 * histogram of |x|. The file written (quant.tsv) has one line per tensor:
 *     name<TAB>min<TAB>max<TAB>range
 * where range is the clipping bound of |x| used for the int8 scale.
 * engine_load_params.quant_path reads it back.
 */
#ifndef RESNETD_QUANT_H
#define RESNETD_QUANT_H

#include "engine.h"

#include <stddef.h>

typedef struct quant_stats quant_stats;

/* A new, empty collector for model m (which must outlive it); NULL on OOM.
 * Free with quant_stats_free (NULL is a no-op). */
quant_stats *quant_stats_create(const engine_model *m);
void quant_stats_free(quant_stats *qs);

/* Runs n images (as engine_run) on c, a context of the fp32 model given to
 * quant_stats_create, and adds every produced tensor to the statistics. */
engine_status quant_stats_observe(quant_stats *qs, engine_ctx *c, const float *input, int n,
                                  char *err, size_t err_len);

/* Writes quant.tsv to path. range = the `percentile`-th percentile of |x|
 * (100 = the maximum). Returns ENGINE_ERR_IO (message in err) when the file
 * cannot be written, ENGINE_ERR_ARG when nothing was observed. */
engine_status quant_stats_write(const quant_stats *qs, const char *path, double percentile,
                                char *err, size_t err_len);

/* Number of tensors with statistics (for reports). */
int quant_stats_count(const quant_stats *qs);

/* ---- engine.c side ---- */
typedef void (*engine_observe_fn)(void *ud, int tensor, const float *data, size_t count);
/* engine_run that calls fn after each node with the node's output (f32). */
engine_status engine_run_observe(engine_ctx *c, const float *input, int n, float *output,
                                 engine_observe_fn fn, void *ud, char *err, size_t err_len);
/* Graph tensor count and name (names are owned by the model). */
int engine_model_num_tensors(const engine_model *m);
const char *engine_model_tensor_name(const engine_model *m, int t);

#endif
