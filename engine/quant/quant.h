/*
 * quant.h — int8 post-training calibration (engine-internal: used by
 * `resnetd quantize`, not part of the public engine API; no oneDNN type here).
 *
 * Calibration runs images through the fp32 model and records, for every
 * tensor a node produces (after the graph passes, so a Conv's output is the
 * value after its fused ReLU / residual sum), its minimum, maximum and a
 * histogram of |x|, then writes them as the scales file (ENGINE_QUANT_FILE;
 * format, reader and writer: quant_file.h), which engine_load_params.quant_path
 * reads back.
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

/* Writes the scales file (quant_file.h) to path. range = the `percentile`-th percentile of |x|
 * (100 = the maximum). Returns ENGINE_ERR_IO (message in err) when the file
 * cannot be written, ENGINE_ERR_ARG when nothing was observed. */
engine_status quant_stats_write(const quant_stats *qs, const char *path, double percentile,
                                char *err, size_t err_len);

/* Number of tensors with statistics (for reports). */
int quant_stats_count(const quant_stats *qs);

#endif
