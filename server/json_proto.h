/*
 * json_proto.h — the jansson adapter for the protocol families: KServe v2 /
 * Triton request parsing and response building, and TorchServe's bodies.
 * No jansson type leaves json_proto.c. Every function returning char * gives
 * a malloc'd NUL-terminated string (caller frees; *len, when not NULL,
 * receives its length) or NULL when out of memory.
 */
#ifndef RESNETD_JSON_PROTO_H
#define RESNETD_JSON_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define JP_MAX_DIMS 8
/* "outputs" entries a request may list: a model has far fewer outputs (each
 * must be named once), so a longer list is refused before it is copied */
#define JP_MAX_OUTPUTS 16

/* One "inputs" entry of a v2 inference request. */
typedef struct {
    char name[128];
    char datatype[16];
    int ndim;
    int64_t shape[JP_MAX_DIMS];
    int64_t binary_size; /* parameters.binary_data_size; -1 when the data is JSON */
    int has_data;        /* a "data" member is present */
    size_t count;        /* elements in "data" (nested arrays are flattened) */
    float *f32;          /* FP32 data, count floats (malloc'd) */
    char **bytes;        /* BYTES data: count malloc'd strings... */
    size_t *bytes_len;   /* ...and their lengths */
} jp_v2_input;

/* One "outputs" entry. */
typedef struct {
    char name[128];
    int binary;         /* parameters.binary_data: -1 absent, 0, 1 */
    int classification; /* parameters.classification: 0 when absent */
} jp_v2_output;

typedef struct {
    char id[256]; /* a longer "id" (in bytes) is refused: never cut */
    int has_id;
    int binary_output;  /* parameters.binary_data_output */
    int64_t timeout_us; /* parameters.timeout; 0 when absent */
    jp_v2_input *inputs;
    int ninputs;
    jp_v2_output *outputs;
    int noutputs;
    int has_outputs; /* an "outputs" member is present */
} jp_v2_request;

/* What parsing a JSON text will cost, from one linear pass over its bytes
 * (no allocation): an upper bound of the JSON values it holds, and of the
 * memory jansson's tree of it takes (measured per token with jansson 2.14:
 * a number ~40 bytes, "[]" ~125, "{}" ~220, a member ~145, a string ~80 plus
 * its bytes; the bound allows 1.5x and more). A 14 MB body of "{}" would
 * otherwise take 1.1 GB. */
typedef struct {
    uint64_t values; /* upper bound of the values (elements, members, scalars) */
    uint64_t bytes;  /* upper bound of the parse's peak memory */
} jp_cost;
void jp_parse_cost(const char *json, size_t len, jp_cost *c);

/* Parses the JSON part of a v2 inference request. Returns 0, or -1 with err
 * naming the cause (bad JSON with its byte offset, invalid UTF-8 included;
 * a member of the wrong type; a data element that is not a number / string,
 * or an FP32 number outside the float range; an "id" over 255 bytes; more
 * than JP_MAX_OUTPUTS "outputs"). Data is decoded for
 * FP32 (numbers) and BYTES (strings) inputs only. Free with
 * jp_v2_request_free (also after a failure). */
int jp_v2_parse_request(const char *json, size_t len, jp_v2_request *out, char *err,
                        size_t err_len);
void jp_v2_request_free(jp_v2_request *r);

/* One "outputs" entry of a response. */
typedef struct {
    const char *name;
    const char *datatype; /* "FP32" or "BYTES" */
    int ndim;
    int64_t shape[JP_MAX_DIMS];
    size_t count;
    const float *f32;        /* FP32 data for JSON */
    const char *const *strs; /* BYTES data for JSON */
    int64_t binary_size;     /* >= 0: the data follows in binary; JSON gets only the size */
} jp_v2_output_data;

/* {"model_name", "model_version", "id"?, "outputs": [...]}; floats with 9
 * significant digits (a float round-trips). id may be NULL. */
char *jp_v2_response(const char *model, const char *version, const char *id,
                     const jp_v2_output_data *o, int n, size_t *len);

/* {"error": msg} */
char *jp_v2_error(const char *msg, size_t *len);

/* GET /v2: {"name", "version", "extensions": [...]} */
char *jp_v2_server_metadata(const char *name, const char *version, const char *const *ext, int next,
                            size_t *len);

typedef struct {
    const char *name;
    const char *datatype;
    int ndim;
    int64_t shape[JP_MAX_DIMS];
} jp_v2_tensor_meta;

/* GET /v2/models/{m}: {"name", "versions": [version], "platform", "inputs",
 * "outputs"}. */
char *jp_v2_model_metadata(const char *name, const char *version, const char *platform,
                           const jp_v2_tensor_meta *in, int nin, const jp_v2_tensor_meta *out,
                           int nout, size_t *len);

/* The same with the internal tensors an infer request may name as outputs
 * (engine.h taps): "tensors": [tensor metadata, ...] and "embedding": the
 * default embedding's name (omitted when NULL). */
char *jp_v2_model_metadata_taps(const char *name, const char *version, const char *platform,
                                const jp_v2_tensor_meta *in, int nin, const jp_v2_tensor_meta *out,
                                int nout, const jp_v2_tensor_meta *taps, int ntaps,
                                const char *embedding, size_t *len);

/* GET /v2/models/{m}/config: Triton's model configuration for the model's
 * one input and output (NCHW FP32 in, [classes] FP32 out). label_file may
 * be NULL. */
char *jp_v2_model_config(const char *name, const char *platform, int max_batch, const char *in_name,
                         const int64_t chw[3], const char *out_name, int64_t classes,
                         const char *label_file, size_t *len);

/* POST /v2/repository/index: [{"name", "version", "state"}, ...] */
char *jp_v2_repository_index(const char *const *names, int n, const char *version,
                             const char *state, size_t *len);

/* TorchServe image classifier: {"label": probability, ...} in the given
 * order (6 significant digits, as /v1). */
char *jp_ts_predictions(const char *const *labels, const double *probs, int n, size_t *len);

/* TorchServe error: {"code": code, "type": type, "message": msg} */
char *jp_ts_error(int code, const char *type, const char *msg, size_t *len);

#endif
