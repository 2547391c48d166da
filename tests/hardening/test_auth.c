/*
 * test_auth.c — unit test of the bearer-token gate's two decisions:
 * which paths need a token (health probes and the demo page's static files
 * are open), and whether a header carries it. (The HTTP
 * behaviour is tested end to end by test_access.py.)
 */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>

static int failures;

static void expect(int got, int want, const char *what) {
    if (got != want) {
        fprintf(stderr, "FAIL %s: got %d want %d\n", what, got, want);
        failures++;
    }
}

int main(void) {
    /* no key: everything open */
    expect(auth_required("", 1, "/v1/classify"), 0, "no key");
    expect(auth_required(NULL, 1, "/metrics"), 0, "NULL key");
    /* health checks always open; metrics by config; the rest needs the token */
    expect(auth_required("k", 1, "/healthz"), 0, "/healthz");
    expect(auth_required("k", 1, "/readyz"), 0, "/readyz");
    expect(auth_required("k", 1, "/v2/health/ready"), 0, "/v2/health/ready");
    expect(auth_required("k", 0, "/metrics"), 0, "/metrics open");
    expect(auth_required("k", 1, "/metrics"), 1, "/metrics protected");
    expect(auth_required("k", 0, "/v1/classify"), 1, "/v1/classify");
    expect(auth_required("k", 0, "/healthz/../v1/models"), 1, "no prefix match");
    /* the demo page's static files are open (exact paths only); its API calls are not */
    expect(auth_required("k", 1, "/"), 0, "demo page /");
    expect(auth_required("k", 1, "/demo/app.js"), 0, "/demo/app.js");
    expect(auth_required("k", 1, "/demo/style.css"), 0, "/demo/style.css");
    expect(auth_required("k", 0, "/demo/"), 1, "/demo/");
    expect(auth_required("k", 0, "/demo/other.js"), 1, "other /demo/ path");
    expect(auth_required("k", 0, "/demo/app.js/x"), 1, "asset as a prefix");
    expect(auth_required("k", 0, "/demo/app.jsx"), 1, "asset plus a byte");
    expect(auth_required("k", 0, "//"), 1, "//");
    expect(auth_required("k", 0, "/index.html"), 1, "/index.html");
    expect(auth_required("k", 0, "/v1/models"), 1, "/v1/models (the page's model list)");
    expect(auth_required("k", 0, "/v1/models/m/classify"), 1, "the page's classify");
    expect(auth_required("k", 0, "/v2/models/m/infer"), 1, "/v2 infer");

    expect(auth_token_ok("s3cret", "Bearer s3cret"), 1, "exact");
    expect(auth_token_ok("s3cret", "bearer   s3cret"), 1, "scheme case, spaces");
    expect(auth_token_ok("s3cret", NULL), 0, "no header");
    expect(auth_token_ok("s3cret", ""), 0, "empty header");
    expect(auth_token_ok("s3cret", "s3cret"), 0, "no scheme");
    expect(auth_token_ok("s3cret", "Basic s3cret"), 0, "Basic");
    expect(auth_token_ok("s3cret", "Bearer s3cre"), 0, "prefix of key");
    expect(auth_token_ok("s3cret", "Bearer s3cretX"), 0, "key plus a byte");
    expect(auth_token_ok("s3cret", "Bearer S3cret"), 0, "case of the token");
    expect(auth_token_ok("s3cret", "Bearer "), 0, "empty token");
    expect(auth_token_ok("s3cret", "Bearer s3cret "), 0, "trailing space");
    expect(auth_token_ok("", "Bearer "), 0, "empty key never matches (gate off instead)");
    if (failures)
        return 1;
    printf("auth: ok\n");
    return 0;
}
