/* status.h — the one place where a module's status becomes an HTTP status and
 * a stable JSON error code (used by the routes and by `resnetd classify`). */
#ifndef RESNETD_STATUS_H
#define RESNETD_STATUS_H

#include "img.h"

/* HTTP status for an image error (img_status_http: 415 unknown format, 400
 * other input errors, 503 out of memory); *code receives its JSON error code
 * (unsupported_image, image_too_large, empty_image, invalid_image, internal). */
int status_img_http(img_status st, const char **code);

#endif
