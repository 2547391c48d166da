/*
 * test_framing_unit.c — unit test of the RFC 9112 framing rules
 * (server/framing.h) on header fields laid out as libmicrohttpd 0.9.75 leaves
 * them (name, NUL for the colon, optional SP/HT, value), and on the layout a
 * folded line leaves (the name moved away from its value). The HTTP
 * behaviour is tested end to end by test_framing.py.
 */
#include "framing.h"

#include <stdio.h>
#include <string.h>

static int failures;

/* Up to 8 fields per request, each in its own in-place buffer. */
typedef struct {
    char buf[8][128];
    framing_scan f;
    int n;
} req;

/* Adds "name:<ows>value" parsed in place. */
static void field(req *q, const char *name, const char *ows, const char *value) {
    char *b = q->buf[q->n++];
    size_t k = strlen(name), w = strlen(ows);
    memcpy(b, name, k);
    b[k] = '\0';
    memcpy(b + k + 1, ows, w);
    strcpy(b + k + 1 + w, value);
    framing_field(&q->f, b, k, b + k + 1 + w);
}

static void expect(req *q, int http10, int allow_chunked, int want, const char *want_code,
                   const char *what) {
    const char *code = NULL, *msg = NULL;
    int chunked, got = framing_verdict(&q->f, http10, allow_chunked, &chunked, &code, &msg);
    if (got != want || (want && strcmp(code, want_code) != 0)) {
        fprintf(stderr, "FAIL %s: got %d %s (%s), want %d %s\n", what, got, got ? code : "",
                got ? msg : "", want, want ? want_code : "");
        failures++;
    }
}

int main(void) {
    req q;
#define NEW() memset(&q, 0, sizeof q)
    NEW();
    field(&q, "Host", " ", "x");
    field(&q, "Content-Length", " ", "5");
    expect(&q, 0, 0, 0, NULL, "plain request");
    NEW();
    field(&q, "Host", "", "x");
    field(&q, "X-Spaces", " \t  ", "v");
    field(&q, "X-Empty", "", "");
    expect(&q, 0, 0, 0, NULL, "OWS and empty values");
    NEW();
    field(&q, "Host", " ", "x");
    field(&q, "Content-Length", " ", "5");
    field(&q, "content-length", " ", "30");
    expect(&q, 0, 0, 400, "bad_request", "two Content-Length");
    NEW();
    field(&q, "Host", " ", "x");
    field(&q, "Content-Length", " ", "5");
    field(&q, "Content-Length", " ", "5");
    expect(&q, 0, 0, 400, "bad_request", "two identical Content-Length");
    NEW();
    field(&q, "Host", " ", "x");
    field(&q, "Transfer-Encoding ", "", "chunked"); /* "Transfer-Encoding : chunked" */
    expect(&q, 0, 1, 400, "bad_request", "space before the colon");
    NEW();
    field(&q, "Host", " ", "x");
    field(&q, "Content-Length\t", "", "5");
    expect(&q, 0, 0, 400, "bad_request", "tab before the colon");
    NEW();
    field(&q, "Host", " ", "x");
    field(&q, "Transfer-Encoding", " ", "gzip");
    expect(&q, 0, 1, 400, "bad_request", "TE gzip");
    NEW();
    field(&q, "Host", " ", "x");
    field(&q, "Transfer-Encoding", " ", "gzip, chunked");
    expect(&q, 0, 1, 400, "bad_request", "TE gzip, chunked");
    NEW();
    field(&q, "Host", " ", "x");
    field(&q, "Transfer-Encoding", " ", "chunked");
    field(&q, "Transfer-Encoding", " ", "chunked");
    expect(&q, 0, 1, 400, "bad_request", "two TE");
    NEW();
    field(&q, "Host", " ", "x");
    field(&q, "Transfer-Encoding", " ", "chunked");
    field(&q, "Content-Length", " ", "3");
    expect(&q, 0, 1, 400, "bad_request", "CL + TE");
    NEW();
    field(&q, "Transfer-Encoding", " ", "chunked");
    expect(&q, 1, 1, 400, "bad_request", "TE in HTTP/1.0");
    NEW();
    field(&q, "Content-Length", " ", "5");
    expect(&q, 0, 0, 400, "bad_request", "HTTP/1.1 without Host");
    expect(&q, 1, 0, 0, NULL, "HTTP/1.0 without Host");
    NEW();
    field(&q, "Host", " ", "x");
    field(&q, "Host", " ", "y");
    expect(&q, 0, 0, 400, "bad_request", "two Host");
    NEW();
    field(&q, "Host", " ", "x");
    field(&q, "Transfer-Encoding", " ", "Chunked");
    expect(&q, 0, 0, 411, "length_required", "chunked, not allowed");
    expect(&q, 0, 1, 0, NULL, "chunked, allowed");
    /* obs-fold: libmicrohttpd moves the name ("X-A" + "b") away from the
     * value "a" it left in the read buffer. Both live in the connection's
     * memory pool (one allocation), as framing.h requires: framing_field
     * reads the bytes between them, so the test keeps them in one array too
     * (two separate arrays would let it read past one of them wherever the
     * linker puts them close together). Here the moved name lies before the
     * value, within 64 bytes. */
    NEW();
    field(&q, "Host", " ", "x");
    {
        static char pool[] = "X-Ab\0X-A\0 a"; /* moved name | read buffer */
        framing_field(&q.f, pool, 4, pool + 10);
    }
    expect(&q, 0, 0, 400, "bad_request", "obs-fold (name moved)");
    NEW();
    field(&q, "Host", " ", "x");
    {
        /* "Transfer-Encoding:" + " chunked": the value "" stays after the
         * colon in the read buffer, the name grows elsewhere */
        static char pool[] = "Transfer-Encoding\0\0Transfer-Encodingchunked"; /* buffer | name */
        framing_field(&q.f, pool + 19, 24, pool + 18); /* the name after the value */
    }
    expect(&q, 0, 1, 400, "bad_request", "obs-fold of TE (no value)");
    NEW();
    field(&q, "Host", " ", "x");
    {
        static char far[200] = "X-Far";
        framing_field(&q.f, far, 5, far + 100); /* value too far from its name */
    }
    expect(&q, 0, 0, 400, "bad_request", "value far from its name");
    NEW();
    field(&q, "Host", " ", "x");
    field(&q, "", " ", "v");
    expect(&q, 0, 0, 400, "bad_request", "empty name");
    if (failures)
        return 1;
    printf("framing unit: ok\n");
    return 0;
}
