/* auth.c — the bearer-token gate (see auth.h). */
#include "auth.h"

#include "app.h"
#include "demo_assets.h"
#include "json.h"
#include "reqbase.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

int auth_required(const char *api_key, int metrics_auth, const char *path) {
    static const char *const open_paths[] = {"/healthz", "/readyz", "/v2/health/live",
                                             "/v2/health/ready", "/ping"};
    if (!api_key || !api_key[0])
        return 0;
    for (size_t i = 0; i < sizeof open_paths / sizeof open_paths[0]; i++)
        if (strcmp(path, open_paths[i]) == 0)
            return 0;
    /* The demo page's static files are the same bytes for everyone and hold
     * no data; open, they let a browser load the page, which then asks for
     * the key and sends it on its /v1 calls (exact paths, the embedded table). */
    for (int i = 0; i < demo_nassets; i++)
        if (strcmp(path, demo_assets[i].path) == 0)
            return 0;
    if (strcmp(path, "/metrics") == 0)
        return metrics_auth != 0;
    return 1;
}

int auth_token_ok(const char *key, const char *header) {
    if (!key || !key[0] || !header || strncasecmp(header, "Bearer ", 7) != 0)
        return 0;
    const char *tok = header + 7;
    while (*tok == ' ')
        tok++;
    size_t n = strlen(key), m = strlen(tok);
    /* every byte of the key is looked at whatever the token holds */
    volatile unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)key[i] ^ (unsigned char)(i < m ? tok[i] : 0);
    return diff == 0;
}

void auth_on_headers(http_req *r, void *cls) {
    app *a = cls;
    if (!auth_required(a->cfg->api_key, (int)a->cfg->metrics_auth, http_path(r)) ||
        auth_token_ok(a->cfg->api_key, http_header(r, "Authorization"))) {
        routes_on_headers(r, cls);
        return;
    }
    /* a request of its own: X-Request-Id, the standard headers, counted and
     * logged like any answer; the routes never see it */
    req_base *b = reqbase_new(a, r, sizeof *b);
    if (!b)
        return; /* answered 500 */
    b->denied = 1;
    int given = http_header(r, "Authorization") != NULL;
    size_t len = 1; /* a failed allocation (NULL body) is answered 500 */
    char *body = json_error_body(
        "unauthorized", given ? "invalid bearer token" : "a bearer token is required", &len);
    const char *hdr[] = {"WWW-Authenticate",
                         given ? "Bearer realm=\"resnetd\", error=\"invalid_token\""
                               : "Bearer realm=\"resnetd\"",
                         NULL};
    reqbase_respond(b, 401, "application/json", body, len, hdr);
}

static int denied(http_req *r) {
    const req_base *b = http_user(r);
    return b && b->denied;
}

void auth_on_body(http_req *r, void *cls) {
    if (!denied(r))
        routes_on_body(r, cls);
}

void auth_on_complete(http_req *r, void *cls) {
    if (!denied(r)) {
        routes_on_complete(r, cls);
        return;
    }
    req_base *b = http_user(r);
    int status = http_status(r);
    reqbase_done(b, status);
    free(b);
    reqbase_end(cls, 1, status);
}
