/*
 * routes_explain.h — POST /v1/models/{m}/explain: class activation maps
 * (docs/api.md, "Explain"). The route table (routes.c) sends
 * /v1/models/{m}/explain here: the request has its own state (a req_base
 * first, routes_explain_size bytes) and shares reqbase's life cycle with /v1
 * classify.
 */
#ifndef RESNETD_ROUTES_EXPLAIN_H
#define RESNETD_ROUTES_EXPLAIN_H

#include "reqbase.h"

#include <stddef.h>

/* The size of its request struct, and the route table's hooks. */
size_t routes_explain_size(void);
void routes_explain_on_headers(req_base *b);
void routes_explain_on_body(req_base *b);

#endif
