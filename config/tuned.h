/*
 * tuned.h — the tuned plan of a model: what `resnetd bench --tune` measured
 * as the best (workers, threads, batch) for throughput and for latency, saved
 * as <model dir>/tuned.json together with a fingerprint of the machine, and
 * read back by `serve` for the options the user did not set (docs/tuning.md).
 *
 * A plan only holds on the machine that measured it: the fingerprint (online
 * cores, CPU model name, oneDNN's effective ISA, model precision, resnetd
 * version) must match field for field, or the file is ignored.
 */
#ifndef RESNETD_TUNED_H
#define RESNETD_TUNED_H

#include "engine.h" /* engine_conv_choice */

#include <stddef.h>

#define TUNED_FILE "tuned.json"
/* Most "conv_algorithms" entries a pick may hold (more: the file is invalid). */
#define TUNED_MAX_CONV 4096

typedef struct {
    long cores;          /* sysconf(_SC_NPROCESSORS_ONLN) */
    char cpu_model[256]; /* /proc/cpuinfo "model name", "unknown" if absent */
    char isa[64];        /* oneDNN's effective ISA, e.g. "Intel AVX2" */
    char precision[8];   /* "fp32" or "int8" */
    char version[32];    /* RESNETD_VERSION */
} tuned_fingerprint;

typedef struct tuned_pick_s {
    int batch, workers, threads;
    double images_per_second, latency_ms_p50, latency_ms_p99;
    /* "conv_algorithms": per Conv node the algorithm measured fastest at this
     * pick's batch and threads (engine_tune_convs); optional. conv_tuned: the
     * key is present (written even when empty). convs: malloc'd, owned by the
     * plan (tuned_plan_release). */
    int conv_tuned;
    engine_conv_choice *convs;
    int nconvs;
} tuned_pick;

typedef struct {
    char model[128];      /* the model's name (informational) */
    char model_file[256]; /* basename of the .onnx measured (several may share a directory) */
    tuned_fingerprint fp;
    tuned_pick throughput, latency; /* batch == 0: not measured */
    double seconds;                 /* measuring time per configuration */
} tuned_plan;

typedef enum {
    TUNED_OK = 0,
    TUNED_MISSING,  /* no file: nothing to say */
    TUNED_INVALID,  /* unreadable, malformed or out-of-range values */
    TUNED_MISMATCH, /* valid, but measured on another machine, build or model */
} tuned_status;

/* Fills fp for this machine (isa: engine_cpu_isa()) and a model of the given
 * precision (int8 != 0). */
void tuned_fingerprint_here(int int8, const char *isa, tuned_fingerprint *fp);

/* Writes p to path as JSON, atomically (a temporary file in the same
 * directory, then rename). Returns 0, or -1 with err naming the path and the
 * cause; no temporary file is left behind. */
int tuned_save(const char *path, const tuned_plan *p, char *err, size_t err_len);

/* Frees what tuned_load allocated (the picks' convs); safe on a zeroed plan. */
void tuned_plan_release(tuned_plan *p);

/* Reads path into *out and checks it against here (the fingerprint) and
 * model_file (the basename of the model's .onnx). TUNED_OK: *out is valid and
 * every pick present has values within the server's bounds. Otherwise err
 * holds one line saying why (empty for TUNED_MISSING). Release *out with
 * tuned_plan_release whatever the status. A "conv_algorithms" object with more
 * than TUNED_MAX_CONV entries, a name of 128 bytes or more, or a value other
 * than "direct", "channels_last", "winograd" makes the file TUNED_INVALID. */
tuned_status tuned_load(const char *path, const tuned_fingerprint *here, const char *model_file,
                        tuned_plan *out, char *err, size_t err_len);

#endif
