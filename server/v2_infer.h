/*
 * v2_infer.h — the protocol-neutral half of a KServe v2 inference request,
 * shared by the REST route (routes_v2_infer.c) and the gRPC service
 * (grpc/grpc_service.c): input checks that fill a request's images
 * (reqbase_images) and Triton's classification strings. Messages name the
 * input and the model; every function returns 0 or the HTTP status of the
 * failure with msg set (the gRPC side maps the status, docs/grpc.md).
 */
#ifndef RESNETD_V2_INFER_H
#define RESNETD_V2_INFER_H

#include "json_proto.h"
#include "reqbase.h"

#include <stddef.h>

/* How BYTES elements arrive when bin is NULL. */
typedef enum {
    V2_BYTES_BASE64 = 0, /* in->bytes are base64 strings (REST JSON) */
    V2_BYTES_RAW,        /* in->bytes are the encoded images (gRPC bytes_contents) */
} v2_bytes_mode;

/* The FP32 input [N,C,H,W] of b's model: checks name, shape and size
 * (bin: in->binary_size bytes of little-endian floats; else in->f32 with
 * in->count values), then allocates the images and copies the tensors. */
int v2_take_fp32(req_base *b, const jp_v2_input *in, const unsigned char *bin, char *msg,
                 size_t ml);

/* The BYTES input [N] or [N,1] of encoded images: bin holds
 * in->binary_size bytes of 4-byte little-endian lengths each followed by an
 * element; else in->bytes (mode). The images only point at their bytes
 * (bin, in->bytes, or base64-decoded buffers stored in (*b64)[(*nb64)++],
 * which the caller frees); the decode pool decodes them next. */
int v2_take_bytes(req_base *b, const jp_v2_input *in, const unsigned char *bin, v2_bytes_mode mode,
                  unsigned char ***b64, int *nb64, char *msg, size_t ml);

/* n rows of k "value:index[:label]" strings, highest first (Triton's
 * classification format: the raw output value with %f, the label when the
 * model has labels.txt). A malloc'd array of n * k malloc'd strings, or
 * NULL when out of memory; free with v2_free_strs(s, n * k). */
/* After the images exist (reqbase_images): the rows of internal tensor `tap`
 * (engine.h taps) for every image, within the bound one answer may hold
 * (embed.h: EMBED_MAX_ANSWER_FLOATS as binary data, EMBED_MAX_JSON_FLOATS
 * as JSON numbers) and reserved in the budget (reqbase_tap). Shared by the
 * HTTP /v2 infer route and gRPC ModelInfer. 0, or the HTTP status (413, or
 * reqbase_tap's) with msg set. */
int v2_take_tap(req_base *b, int tap, int binary, char *msg, size_t ml);

char **v2_classify_strings(const app_model *m, const float *out, int n, int k);
void v2_free_strs(char **s, size_t n);

#endif
