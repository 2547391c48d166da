/* status.c — status -> HTTP mapping. */
#include "status.h"

int status_img_http(img_status st, const char **code) {
    switch (st) {
    case IMG_OK:
        *code = "ok";
        return 200;
    case IMG_ERR_UNKNOWN_FORMAT:
        *code = "unsupported_image";
        return 415;
    case IMG_ERR_TOO_LARGE:
        *code = "image_too_large";
        return 413;
    case IMG_ERR_NOMEM:
        *code = "internal";
        return 500;
    case IMG_ERR_EMPTY:
        *code = "empty_image";
        return 400;
    default:
        *code = "invalid_image";
        return 400;
    }
}
