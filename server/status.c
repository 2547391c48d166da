/* status.c — image status -> JSON error code; the HTTP status itself comes
 * from the image module's img_status_http() so there is one mapping. */
#include "status.h"

int status_img_http(img_status st, const char **code) {
    switch (st) {
    case IMG_OK:
        *code = "ok";
        break;
    case IMG_ERR_UNKNOWN_FORMAT:
        *code = "unsupported_image";
        break;
    case IMG_ERR_TOO_LARGE:
        *code = "image_too_large";
        break;
    case IMG_ERR_TOO_COMPLEX:
        *code = "image_too_complex";
        break;
    case IMG_ERR_NOMEM:
    case IMG_ERR_ARG:
        *code = "internal";
        break;
    case IMG_ERR_EMPTY:
        *code = "empty_image";
        break;
    default:
        *code = "invalid_image";
        break;
    }
    return img_status_http(st);
}
