/*
 * status.h — the one table in server/ from a module's own status to what a
 * client sees: an HTTP status, a stable JSON error code (docs/api.md), a
 * default message, and the resnetd_rejected_total reason when the status
 * refuses work the client may retry (-1: none; e.g. too_many_images is the
 * client's error). Every route family (/v1, /v2, TorchServe, the demo page,
 * gRPC through its own status map) answers through it: the image module
 * reports only img_status, the queue only queue_status/queue_item_status
 * (an engine failure is QUEUE_ITEM_FAILED).
 */
#ifndef RESNETD_STATUS_H
#define RESNETD_STATUS_H

#include "img.h"
#include "queue.h"

typedef struct {
    int http;         /* HTTP status */
    const char *code; /* JSON error code */
    const char *msg;  /* default message (NULL for images: the decoder's own line, else
                       * img_status_str) */
    int reject;       /* metrics_reason counted when it refuses work, or -1 */
} status_info;

/* An image that failed to decode or preprocess: 415 unsupported_image, 400
 * image_too_large / image_too_complex / empty_image / invalid_image, 503
 * internal (out of memory), 500 internal (bad argument). */
const status_info *status_of_img(img_status st);

/* A queue_push that took nothing: 503 queue_full, 503 draining (closed),
 * 413 too_many_images (more than queue_capacity; not a rejection). */
const status_info *status_of_push(queue_status qs);

/* An image's fate in the queue: 200 ok, 504 deadline_exceeded, 500
 * inference_failed (the engine), 503 draining, 499 client_closed_request. */
const status_info *status_of_item(queue_item_status st);

#endif
