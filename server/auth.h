/*
 * auth.h — optional bearer-token access control in front of every route
 * family (/v1, /v2, TorchServe, the demo page).
 *
 * With cfg api_key set, a request must carry "Authorization: Bearer <key>"
 * or it gets 401 with a JSON error and "WWW-Authenticate: Bearer". Always
 * open: /healthz, /readyz, the health probes of the other protocols
 * (/v2/health/live, /v2/health/ready, /ping) and the demo page's static
 * files (/, /demo/app.js, /demo/style.css: the demo_assets table; the page
 * asks for the key and its /v1 calls carry it); /metrics is open unless
 * cfg metrics_auth is 1. Without api_key everything is open.
 *
 * auth_check is the first check of the route table (routes.c): a denied
 * request is answered there, with an X-Request-Id, the standard headers,
 * its count in the metrics and its access-log line, and never reaches a
 * route family.
 */
#ifndef RESNETD_AUTH_H
#define RESNETD_AUTH_H

#include "reqbase.h"

#include <stddef.h>

/* The route table's first check (routes.c): 0 when b's request may go on,
 * else 401 (answered, with WWW-Authenticate; its family never sees it). */
int auth_check(req_base *b);

/* 1 when path needs a token under this config (api_key set), else 0. */
int auth_required(const char *api_key, int metrics_auth, const char *path);

/* 1 when the Authorization header value carries exactly the bearer token
 * key ("Bearer" is case-insensitive). The comparison's time depends only on
 * the key's length, never on where the bytes differ. header may be NULL. */
int auth_token_ok(const char *key, const char *header);

#endif
