/* quant_file.c — the reader and writer of quant.tsv (format: quant_file.h). */
#include "quant_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

engine_status quant_file_write(const char *path, double percentile, int n, quant_row_fn row,
                               void *ud, char *err, size_t err_len) {
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, err_len, "%s: cannot write", path);
        return ENGINE_ERR_IO;
    }
    fprintf(f, "# resnetd int8 calibration: tensor, min, max, range (percentile %.4g of |x|)\n",
            percentile);
    for (int i = 0; i < n; i++) {
        quant_row r;
        if (row(ud, i, &r))
            fprintf(f, "%s\t%.9g\t%.9g\t%.9g\n", r.name, r.min, r.max, r.range);
    }
    if (fclose(f) != 0) {
        snprintf(err, err_len, "%s: write failed", path);
        return ENGINE_ERR_IO;
    }
    return ENGINE_OK;
}

engine_status quant_file_read(const char *path, const graph *g, float **qmin, float **qmax,
                              float **qrange, char *err, size_t err_len) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "%s: cannot open the int8 scales file", path);
        return ENGINE_ERR_IO;
    }
    *qmin = calloc((size_t)g->nt + 1, sizeof(float));
    *qmax = calloc((size_t)g->nt + 1, sizeof(float));
    *qrange = calloc((size_t)g->nt + 1, sizeof(float));
    if (!*qmin || !*qmax || !*qrange) {
        fclose(f);
        snprintf(err, err_len, "out of memory");
        return ENGINE_ERR_NOMEM;
    }
    char line[1024];
    int ln = 0, used = 0;
    engine_status st = ENGINE_OK;
    while (st == ENGINE_OK && fgets(line, sizeof line, f)) {
        ln++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char *tab = strchr(line, '\t');
        float mn, mx, range;
        if (!tab || sscanf(tab + 1, "%f %f %f", &mn, &mx, &range) != 3 || !(range >= 0.f) ||
            !(mx >= mn)) {
            snprintf(err, err_len, "%s:%d: expected name<TAB>min<TAB>max<TAB>range", path, ln);
            st = ENGINE_ERR_PARSE;
            break;
        }
        *tab = 0;
        int t = graph_tensor_find(g, line);
        if (t < 0) {
            snprintf(err, err_len,
                     "%s:%d: the model has no tensor '%.200s' (scales from another model?)", path,
                     ln, line);
            st = ENGINE_ERR_INVALID;
            break;
        }
        (*qmin)[t] = mn;
        (*qmax)[t] = mx;
        (*qrange)[t] = range;
        used++;
    }
    fclose(f);
    if (st == ENGINE_OK && !used) {
        snprintf(err, err_len, "%s: no tensor ranges", path);
        st = ENGINE_ERR_PARSE;
    }
    return st;
}
