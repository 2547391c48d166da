/*
 * quant_file.h — the int8 scales file, quant.tsv (ENGINE_QUANT_FILE in
 * engine.h): its one reader and one writer (engine-internal).
 *
 * Format: UTF-8 text, one line per activation tensor,
 *     name<TAB>min<TAB>max<TAB>range
 * where min and max are the values calibration saw and range the clipping
 * bound of |x| the int8 scale is derived from (range >= 0, max >= min).
 * Lines starting with '#' and empty lines are comments. Names are the graph's
 * tensor names after the load-time passes (a Conv's output is the value after
 * its fused ReLU or residual sum); a name the model lacks is an error (scales
 * from another model). Lines are read with a 1 KiB buffer.
 */
#ifndef RESNETD_QUANT_FILE_H
#define RESNETD_QUANT_FILE_H

#include "engine.h"
#include "graph/graph.h"

#include <stddef.h>

typedef struct {
    const char *name;
    float min, max, range;
} quant_row;

/* Fills *row with the i-th tensor's line; returns 0 when it has none. */
typedef int (*quant_row_fn)(void *ud, int i, quant_row *row);

/* Writes the file at path: a header comment naming `percentile`, then the
 * rows i = 0..n-1 that row() yields. ENGINE_ERR_IO (message in err) when the
 * file cannot be written. */
engine_status quant_file_write(const char *path, double percentile, int n, quant_row_fn row,
                               void *ud, char *err, size_t err_len);

/* Reads the file at path into per-tensor arrays of g->nt + 1 floats (zero
 * where the file has no line; range 0 keeps a tensor fp32). The arrays are
 * stored in *qmin, *qmax, *qrange as soon as they are allocated, also on
 * error; the caller frees them. ENGINE_ERR_IO when the file cannot be opened,
 * ENGINE_ERR_PARSE on a malformed line or a file without ranges,
 * ENGINE_ERR_INVALID for a tensor the graph lacks, ENGINE_ERR_NOMEM. */
engine_status quant_file_read(const char *path, const graph *g, float **qmin, float **qmax,
                              float **qrange, char *err, size_t err_len);

#endif
