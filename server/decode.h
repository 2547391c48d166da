/*
 * decode.h — the decode pool: the threads that decode and preprocess uploaded
 * images (and parse large request bodies) off the HTTP threads.
 *
 * DESIGN. libmicrohttpd binds each connection to one of `http_threads`
 * threads for its whole life, so a thread busy decoding a large image stalls
 * every connection on it, /healthz and /metrics included. An on_body handler
 * therefore only checks what is cheap (sizes, counts, headers), suspends the
 * request and submits a job here (reqbase_submit does both for every route
 * family); a pool thread decodes, pushes the tensors into the model's queue
 * (or records the error) and resumes the request, whose answer is then
 * written on an HTTP thread as before. The HTTP threads only ever do work
 * proportional to the bytes they move.
 *
 * Jobs are intrusive (the request owns them): the pool allocates nothing
 * after start. At most `max_waiting` jobs wait for a thread; decode_submit
 * refuses at once beyond that (the caller answers 503 + Retry-After), so a
 * burst of uploads queues bounded work, never unbounded latency. Jobs run in
 * submission order. Pool threads run at a lower priority (nice +10) than the
 * HTTP threads and the inference workers, so decoding yields the CPU to them.
 *
 * Shutdown: decode_stop() lets running jobs finish, runs every job still
 * waiting with `aborted` set (it must answer without decoding: 503) and joins
 * the threads. Thread-safe: submit from any thread.
 */
#ifndef RESNETD_DECODE_H
#define RESNETD_DECODE_H

#include <stddef.h>

typedef struct decode_job {
    struct decode_job *next; /* pool-private link */
    /* Runs on a pool thread, exactly once per accepted submit. The job may be
     * freed by the time run returns (e.g. after resuming its request). */
    void (*run)(struct decode_job *j, int aborted);
} decode_job;

typedef struct decode_pool decode_pool;

/* Starts `threads` threads (>= 1). Returns NULL with err set when out of
 * memory or a thread cannot start. Free with decode_stop(). */
decode_pool *decode_start(int threads, int max_waiting, char *err, size_t err_len);

/* Queues j: 0, or -1 (j not taken) when max_waiting jobs already wait or the
 * pool is stopping. */
int decode_submit(decode_pool *p, decode_job *j);

/* Finishes as described above and frees p. NULL is a no-op. */
void decode_stop(decode_pool *p);

#endif
