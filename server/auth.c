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

int auth_check(req_base *b) {
    app *a = b->a;
    http_req *r = b->r;
    if (!auth_required(a->cfg->api_key, (int)a->cfg->metrics_auth, http_path(r)) ||
        auth_token_ok(a->cfg->api_key, http_header(r, "Authorization")))
        return 0;
    int given = http_header(r, "Authorization") != NULL;
    size_t len = 1; /* a failed allocation (NULL body) is answered 500 */
    char *body = json_error_body(
        "unauthorized", given ? "invalid bearer token" : "a bearer token is required", &len);
    const char *hdr[] = {"WWW-Authenticate",
                         given ? "Bearer realm=\"resnetd\", error=\"invalid_token\""
                               : "Bearer realm=\"resnetd\"",
                         NULL};
    reqbase_respond(b, 401, "application/json", body, len, hdr);
    return 401;
}
