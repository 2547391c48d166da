/*
 * json.h — the jansson adapter for /v1 and `classify`: their answers are
 * built here, so the two print predictions identically (the v2 and
 * TorchServe bodies: json_proto.h; log lines: common/log.h). Every function
 * returns a malloc'd NUL-terminated string (caller frees; *len, when not
 * NULL, receives its length) or NULL when out of memory.
 */
#ifndef RESNETD_JSON_H
#define RESNETD_JSON_H

#include "engine.h"
#include "json_client.h" /* json_client_string: client bytes as JSON strings */
#include "model_config.h"
#include "predict.h"

#include <stddef.h>

/* One image's outcome: predictions, or an error code and message. */
typedef struct {
    const char *filename; /* multipart part or CLI file; NULL for a raw body */
    const predict_entry *preds;
    int npreds;
    const char *err_code; /* non-NULL for an error */
    const char *err_message;
} json_result;

/* {"error": {"code": ..., "message": ...}} */
char *json_error_body(const char *code, const char *message, size_t *len);

/* Raw body: {"model": m, "predictions": [...]}; multipart: {"model": m,
 * "results": [{"filename": ..., "predictions"|"error": ...}, ...]}. */
char *json_classify_body(const char *model, const model_config *mc, const json_result *r, int n,
                         int multipart, size_t *len);

/* `resnetd classify`: {"file": ..., "predictions"|"error": ...} (no newline). */
char *json_classify_line(const model_config *mc, const json_result *r);

typedef struct {
    const model_config *mc;
    int channels, height, width, num_classes, max_batch, workers, ready;
    int threads;            /* oneDNN threads per worker in effect */
    const char *tuned_file; /* NULL: no tuned.json value in effect */
    const char *tuned_goal; /* "throughput" | "latency" */
    unsigned tuned;         /* which came from tuned_file: 1 workers, 2 threads, 4 max_batch */
    const engine_model *em; /* NULL: no "tensors"/"embedding" */
} json_model_info;

/* {"models": [{"name", "input_shape": [C,H,W], "classes", "max_batch",
 * "workers", "ready", "labels": bool, "config": {"input": {...}, "max_batch",
 * "workers", "threads_per_worker", "tuned": false | {"file", "goal",
 * "applied": ["workers", ...]}}, "embedding": tensor name | null,
 * "tensors": [{"name", "shape": [per-image dims]}, ...]}]} (engine.h taps) */
char *json_models_body(const json_model_info *m, int n, size_t *len);

#endif
