/*
 * routes_explain.h — POST /v1/models/{m}/explain: class activation maps
 * (docs/api.md, "Explain"). routes.c hands a request to these hooks when
 * routes_explain_owns() claims its path; the request then has its own state
 * (a req_base first) and shares reqbase's life cycle with /v1 classify.
 */
#ifndef RESNETD_ROUTES_EXPLAIN_H
#define RESNETD_ROUTES_EXPLAIN_H

#include "app.h"

/* 1 for "/v1/models/{name}/explain" (any name without '/'). */
int routes_explain_owns(const char *path);

/* The http_config hooks for those paths (routes.c forwards to them). */
void routes_explain_on_headers(http_req *r, app *a);
void routes_explain_on_body(http_req *r, app *a);
void routes_explain_on_complete(http_req *r, app *a);

#endif
