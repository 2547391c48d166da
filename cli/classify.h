/*
 * classify.h — what the files of `resnetd classify` share (internal to cli/):
 * the run's state (the ring of slots, its counters and the inputs) defined
 * in cmd_classify.c, and the output side (classify_output.c: the writer that
 * prints finished slots in input order, CSV and JSON lines, the progress bar
 * and its file counter). cmd_classify.c's header comment has the design.
 */
#ifndef RESNETD_CLI_CLASSIFY_H
#define RESNETD_CLI_CLASSIFY_H

#include "classify_inputs.h"

#include "engine.h"
#include "model_config.h"
#include "predict.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define CL_STALL_MS 100
#define CL_DECODE_NICE 10
#define CL_PROGRESS_MS 200

enum { SL_FREE = 0, SL_DECODING, SL_READY, SL_RUNNING, SL_DONE };
enum { FMT_JSONL = 0, FMT_CSV };

typedef struct {
    int state;
    char *path;
    const char *err_code; /* NULL: predictions */
    char err_msg[320];
    float *in;            /* in_floats, inside cl.tensors */
    predict_entry *preds; /* k entries, inside cl.preds */
    int npreds;
    long long size; /* file size when listed: inline decoding starts with the largest */
} cl_slot;

typedef struct {
    /* fixed once the run starts */
    model_config mc;
    engine_model *em;
    engine_model_info info;
    engine_ctx **ctx;
    int k, batch, workers, threads, decoders, format, progress;
    size_t in_floats, window;
    int64_t max_body, max_pixels;
    uint64_t mem_limit;
    FILE *out;
    char *const *inputs;
    int ninputs, recursive, all_files;
    double t_start;

    /* the ring and its counters, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv_ready, cv_done, cv_free, cv_mem;
    cl_slot *slots;
    float *tensors;
    predict_entry *preds;
    uint64_t next_seq, emitted;
    int nready, ndecoding, input_done, stop, oom;
    double last_ready;
    uint64_t mem_used;
    uint64_t failed;

    /* the inputs, under rmu (held while reading a list or listing a directory) */
    pthread_mutex_t rmu;
    ci_iter *it;

    _Atomic long long total;               /* for the progress bar: -1 while unknown */
    _Atomic long long decode_ns, infer_ns; /* --stats: decoding CPU time, engine_run time */
    _Atomic int counter_stop;
} cl;

static inline double cl_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static inline void cl_abs_deadline(struct timespec *ts, double seconds_from_now) {
    clock_gettime(CLOCK_REALTIME, ts);
    double s = (double)ts->tv_sec + (double)ts->tv_nsec * 1e-9 + seconds_from_now;
    ts->tv_sec = (time_t)s;
    ts->tv_nsec = (long)((s - (double)ts->tv_sec) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* The progress counter thread: the same expansion of the inputs again (not
 * stdin), for the bar's total. */
void *cl_counter_main(void *arg);
/* The writer loop (main thread). Returns 0, or 1 after a fatal error. */
int cl_writer(cl *c);

#endif
