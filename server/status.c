/* status.c — module statuses -> HTTP status + JSON code (status.h). */
#include "status.h"

#include "metrics.h"

static const status_info IMG[] = {
    [IMG_OK] = {200, "ok", NULL, -1},
    [IMG_ERR_EMPTY] = {400, "empty_image", NULL, -1},
    [IMG_ERR_UNKNOWN_FORMAT] = {415, "unsupported_image", NULL, -1},
    [IMG_ERR_TRUNCATED] = {400, "invalid_image", NULL, -1},
    [IMG_ERR_CORRUPT] = {400, "invalid_image", NULL, -1},
    [IMG_ERR_TOO_LARGE] = {400, "image_too_large", NULL, -1},
    [IMG_ERR_BAD_DIMENSIONS] = {400, "invalid_image", NULL, -1},
    [IMG_ERR_NOMEM] = {503, "internal", NULL, -1},
    [IMG_ERR_ARG] = {500, "internal", NULL, -1},
    [IMG_ERR_TOO_COMPLEX] = {400, "image_too_complex", NULL, -1},
};

static const status_info PUSH[] = {
    [QUEUE_OK] = {200, "ok", "ok", -1},
    [QUEUE_FULL] = {503, "queue_full", "the model's queue is full; retry later",
                    METRICS_REJECT_QUEUE_FULL},
    [QUEUE_CLOSED] = {503, "draining", "the server is shutting down", METRICS_REJECT_DRAINING},
    [QUEUE_TOO_MANY] = {413, "too_many_images", "more images than queue_capacity", -1},
};

static const status_info ITEM[] = {
    [QUEUE_ITEM_OK] = {200, "ok", "ok", -1},
    [QUEUE_ITEM_EXPIRED] = {504, "deadline_exceeded", "deadline passed before inference", -1},
    [QUEUE_ITEM_FAILED] = {500, "inference_failed", "inference failed", -1},
    [QUEUE_ITEM_ABORTED] = {503, "draining", "the server is shutting down", -1},
    [QUEUE_ITEM_CANCELLED] = {499, "client_closed_request",
                              "the client closed the connection before its answer", -1},
};

static const status_info UNKNOWN = {500, "internal", "internal error", -1};

#define LOOKUP(table, s)                                                                           \
    ((unsigned)(s) < sizeof table / sizeof table[0] && table[s].code ? &table[s] : &UNKNOWN)

const status_info *status_of_img(img_status st) {
    return LOOKUP(IMG, st);
}

const status_info *status_of_push(queue_status qs) {
    return LOOKUP(PUSH, qs);
}

const status_info *status_of_item(queue_item_status st) {
    return LOOKUP(ITEM, st);
}
