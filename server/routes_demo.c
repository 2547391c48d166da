/*
 * routes_demo.c — the browser demo: GET / (index.html), /demo/app.js and
 * /demo/style.css, embedded in the binary (demo/demo_assets.h). The page
 * talks to /v1 only; a Content-Security-Policy keeps it to this origin.
 */
#include "demo_assets.h"
#include "json.h"
#include "proto.h"

#include <stdlib.h>
#include <string.h>

/* Everything from this origin; blob: for the local preview of the image. */
#define DEMO_CSP                                                                                   \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "        \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static void demo_error(proto_req *p, int status, const char *code, const char *msg,
                       const char *const *hdr) {
    size_t len = 0;
    char *body = json_error_body(code, msg, &len);
    proto_respond(p, status, "application/json", body, len, hdr);
}

void routes_demo_on_headers(proto_req *p) {
    const char *path = http_path(p->b.r);
    const demo_asset *asset = NULL;
    for (int i = 0; i < demo_nassets; i++)
        if (!strcmp(path, demo_assets[i].path))
            asset = &demo_assets[i];
    if (!asset) {
        demo_error(p, 404, "not_found", "no such path", NULL);
        return;
    }
    char *body = malloc(asset->len ? asset->len : 1);
    if (body)
        memcpy(body, asset->data, asset->len);
    const char *hdr[] = {"Content-Security-Policy",
                         DEMO_CSP,
                         "X-Content-Type-Options",
                         "nosniff",
                         "Cache-Control",
                         "no-cache",
                         "Referrer-Policy",
                         "no-referrer",
                         NULL};
    proto_respond(p, 200, asset->content_type, body, asset->len, hdr);
}
