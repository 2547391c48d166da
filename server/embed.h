/*
 * embed.h — POST /v1/embed and /v1/models/{m}/embed (docs/api.md): an
 * internal tensor of the model per image (engine.h taps), the default being
 * the classifier's input (a ResNet's global-average-pool output), pooled over
 * its spatial dimensions and optionally L2-normalised. routes.c routes and
 * receives the request like a classify; this file parses the query, sizes
 * the answer and writes it.
 */
#ifndef RESNETD_EMBED_H
#define RESNETD_EMBED_H

#include "app.h"
#include "reqbase.h"

#include <stddef.h>

/* The most floats one /v1/embed answer (every image together) or one /v2
 * answer's internal tensor may hold (docs/limits.md): past it the request is
 * refused with 413 answer_too_large before anything is decoded. */
#define EMBED_MAX_ANSWER_FLOATS (1u << 20)
/* The same for /v2 outputs answered as JSON numbers (a JSON tree per value). */
#define EMBED_MAX_JSON_FLOATS (1u << 18)

typedef enum { EMBED_POOL_AVG, EMBED_POOL_MAX, EMBED_POOL_NONE } embed_pool;

typedef struct {
    int tap;         /* the model's tap (engine_model_find_tap) */
    embed_pool pool; /* over the dimensions past the channel (dims[2..]) */
    int l2;          /* ?normalize=l2 */
    size_t dim;      /* floats per image in the answer */
    int ndim;        /* the answer's per-image shape */
    int64_t shape[ENGINE_MAX_DIMS];
} embed_opts;

/* Reads ?tensor, ?pool and ?normalize of r for model m and nimgs images.
 * Returns 0, or the HTTP status with *code and msg (len bytes) set: 400
 * unknown_tensor (naming it), invalid_pool, invalid_normalize,
 * no_default_embedding; 413 answer_too_large. */
int embed_parse(const app_model *m, http_req *r, int nimgs, embed_opts *o, const char **code,
                char *msg, size_t len);

/* One image's answer from its tap floats (engine layout, tap_floats of
 * them) into out (o->dim floats). */
void embed_reduce(const embed_opts *o, const float *tap, size_t tap_floats, float *out);

/* The answer of a finished request whose images carried the tap (reqbase_tap):
 * {"model", "version", "tensor", "dim", "shape", "embedding": [...]} for a raw
 * body, "results": [{"filename", "embedding" | "error"}] for multipart.
 * *status is 200, or the status of the request's first failure (its body is
 * then the error). NULL when out of memory. */
char *embed_answer(const req_base *b, const embed_opts *o, int *status, size_t *len);

#endif
