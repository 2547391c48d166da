/* status.h — the one place where a module's status becomes an HTTP status and
 * a stable JSON error code (used by the routes and by `resnetd classify`). */
#ifndef RESNETD_STATUS_H
#define RESNETD_STATUS_H

#include "img.h"

/* HTTP status for an image error; *code receives its JSON error code
 * (unsupported_image 415, image_too_large 413, empty_image / invalid_image
 * 400, internal 500). */
int status_img_http(img_status st, const char **code);

#endif
