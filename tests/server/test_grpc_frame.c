/*
 * test_grpc_frame.c — the pure parts of the gRPC port (server/grpc/grpc_frame.h):
 * the 5-byte message prefix, grpc-timeout, grpc-message percent-encoding, the
 * status mapping both ways; and the protocol label of the request metrics
 * (metrics.h) that gRPC and HTTP answers share.
 */
#include "grpc_frame.h"
#include "metrics.h"

#include "check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void test_prefix(void) {
    uint8_t p[GRPC_PREFIX];
    int comp = -1;
    uint32_t len = 0;
    grpc_prefix_write(p, 0x01020304u);
    CHECK(p[0] == 0 && p[1] == 1 && p[2] == 2 && p[3] == 3 && p[4] == 4); /* big-endian */
    CHECK(grpc_prefix_parse(p, &comp, &len) == 0 && comp == 0 && len == 0x01020304u);
    uint8_t q[GRPC_PREFIX] = {1, 0xFF, 0xFF, 0xFF, 0xFF};
    CHECK(grpc_prefix_parse(q, &comp, &len) == 0 && comp == 1 && len == UINT32_MAX);
    q[0] = 2; /* only 0 and 1 are flags */
    CHECK(grpc_prefix_parse(q, &comp, &len) == -1);
}

static int timeout_is(const char *v, int64_t want) {
    int64_t ns = -1;
    return grpc_timeout_parse(v, strlen(v), &ns) == 0 && ns == want;
}

static int timeout_bad(const char *v) {
    int64_t ns = 0;
    return grpc_timeout_parse(v, strlen(v), &ns) == -1;
}

static void test_timeout(void) {
    CHECK(timeout_is("1n", 1));
    CHECK(timeout_is("7u", 7000));
    CHECK(timeout_is("250m", 250000000));
    CHECK(timeout_is("3S", INT64_C(3000000000)));
    CHECK(timeout_is("2M", INT64_C(120000000000)));
    CHECK(timeout_is("1H", INT64_C(3600000000000)));
    CHECK(timeout_is("99999999H", INT64_MAX)); /* saturated, not wrapped */
    CHECK(timeout_is("00000000n", 0));
    CHECK(timeout_bad(""));
    CHECK(timeout_bad("S"));          /* no digits */
    CHECK(timeout_bad("100"));        /* no unit */
    CHECK(timeout_bad("123456789S")); /* 9 digits: the spec allows 8 */
    CHECK(timeout_bad("1s"));         /* units are case-sensitive */
    CHECK(timeout_bad("-1S"));
    CHECK(timeout_bad("1 S"));
    CHECK(timeout_bad("1SS"));
}

static void test_pct(void) {
    char out[64];
    CHECK(grpc_pct_encode("plain text: ok", out, sizeof out) == 14 &&
          !strcmp(out, "plain text: ok"));
    CHECK(grpc_pct_encode("a%b\nc", out, sizeof out) == 9 && !strcmp(out, "a%25b%0Ac"));
    CHECK(grpc_pct_encode("\xC3\xA9", out, sizeof out) == 6 && !strcmp(out, "%C3%A9"));
    /* truncation never cuts an escape in half */
    char small[6];
    grpc_pct_encode("ab\n\n", small, sizeof small);
    CHECK(!strcmp(small, "ab%0A"));
    grpc_pct_encode("abcd\n", small, sizeof small);
    CHECK(!strcmp(small, "abcd"));
    CHECK(grpc_pct_encode("x", out, 0) == 0);
}

static void test_status(void) {
    static const int http[] = {200, 400, 401, 404, 413, 415, 499, 501, 503, 504, 500, 418};
    static const int grpc[] = {GRPC_OK,
                               GRPC_INVALID_ARGUMENT,
                               GRPC_UNAUTHENTICATED,
                               GRPC_NOT_FOUND,
                               GRPC_RESOURCE_EXHAUSTED,
                               GRPC_INVALID_ARGUMENT,
                               GRPC_CANCELLED,
                               GRPC_UNIMPLEMENTED,
                               GRPC_UNAVAILABLE,
                               GRPC_DEADLINE_EXCEEDED,
                               GRPC_INTERNAL,
                               GRPC_INTERNAL};
    for (size_t i = 0; i < sizeof http / sizeof http[0]; i++)
        CHECK(grpc_status_from_http(http[i]) == grpc[i]);
    /* and back: what the metrics' code label says */
    CHECK(grpc_status_http(GRPC_OK) == 200);
    CHECK(grpc_status_http(GRPC_INVALID_ARGUMENT) == 400);
    CHECK(grpc_status_http(GRPC_UNAUTHENTICATED) == 401);
    CHECK(grpc_status_http(GRPC_NOT_FOUND) == 404);
    CHECK(grpc_status_http(GRPC_RESOURCE_EXHAUSTED) == 413);
    CHECK(grpc_status_http(GRPC_UNAVAILABLE) == 503);
    CHECK(grpc_status_http(GRPC_DEADLINE_EXCEEDED) == 504);
    CHECK(grpc_status_http(GRPC_UNIMPLEMENTED) == 501);
    CHECK(grpc_status_http(GRPC_INTERNAL) == 500);
    CHECK(grpc_status_http(GRPC_UNKNOWN) == 500);
    CHECK(!strcmp(grpc_status_name(GRPC_UNAUTHENTICATED), "UNAUTHENTICATED"));
    CHECK(!strcmp(grpc_status_name(99), "UNKNOWN"));
}

static void test_metrics_protocol(void) {
    const char *names[] = {"m"};
    metrics *m = metrics_create(names, 1, 8);
    CHECK(m);
    metrics_request(m, 0, 200);
    metrics_request_proto(m, 0, 200, METRICS_PROTO_GRPC);
    metrics_request_proto(m, 0, 200, METRICS_PROTO_GRPC);
    metrics_request_proto(m, -1, 501, METRICS_PROTO_GRPC);
    metrics_observe(m, METRICS_H_REQUEST, 0, 0.001);
    metrics_observe_request(m, 0, METRICS_PROTO_GRPC, 0.001);
    metrics_observe_request(m, 0, METRICS_PROTO_GRPC, 1.0);
    char *text;
    size_t len;
    CHECK(metrics_render(m, &text, &len) == 0);
    CHECK(strstr(
        text,
        "resnetd_requests_total{model=\"m\",version=\"1\",code=\"200\",protocol=\"http\"} 1\n"));
    CHECK(strstr(
        text,
        "resnetd_requests_total{model=\"m\",version=\"1\",code=\"200\",protocol=\"grpc\"} 2\n"));
    CHECK(strstr(
        text,
        "resnetd_requests_total{model=\"\",version=\"\",code=\"other\",protocol=\"grpc\"} 1\n"));
    CHECK(!strstr(text, "resnetd_requests_total{model=\"\",version=\"\",code=\"200\""));
    CHECK(strstr(
        text,
        "resnetd_request_duration_seconds_count{model=\"m\",version=\"1\",protocol=\"http\"} 1\n"));
    CHECK(strstr(
        text,
        "resnetd_request_duration_seconds_count{model=\"m\",version=\"1\",protocol=\"grpc\"} 2\n"));
    CHECK(strstr(
        text, "resnetd_request_duration_seconds_bucket{model=\"m\",version=\"1\",protocol=\"grpc\","
              "le=\"0.001\"} 1\n"));
    CHECK(strstr(
        text,
        "resnetd_queue_duration_seconds_count{model=\"m\",version=\"1\"} 0\n")); /* no label */
    free(text);
    /* a slot per (model, version), given back when the version is freed */
    int v2 = metrics_add_model(m, "m", "2");
    CHECK(v2 == 1);
    metrics_images(m, v2, 3);
    CHECK(metrics_render(m, &text, &len) == 0);
    CHECK(strstr(text, "resnetd_images_total{model=\"m\",version=\"2\"} 3\n"));
    CHECK(strstr(text, "resnetd_images_total{model=\"m\",version=\"1\"} 0\n"));
    free(text);
    metrics_remove_model(m, v2);
    CHECK(metrics_render(m, &text, &len) == 0);
    CHECK(!strstr(text, "version=\"2\"")); /* its series are gone */
    free(text);
    CHECK(metrics_add_model(m, "m", "3") == v2); /* reused, counters zeroed */
    CHECK(metrics_render(m, &text, &len) == 0);
    CHECK(strstr(text, "resnetd_images_total{model=\"m\",version=\"3\"} 0\n"));
    CHECK(strstr(text, "resnetd_queue_depth{model=\"m\",version=\"3\"} 0\n"));
    free(text);
    metrics_destroy(m);
}

int main(void) {
    test_prefix();
    test_timeout();
    test_pct();
    test_status();
    test_metrics_protocol();
    printf("grpc_frame ok\n");
    return 0;
}
