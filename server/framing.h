/*
 * framing.h — RFC 9112 message-framing rules for one request's header
 * fields, decided before any body byte is used. Pure (no I/O, no
 * libmicrohttpd): http.c feeds it every header field libmicrohttpd parsed.
 *
 * Refused (400 bad_request; the caller answers with Connection: close):
 * a field name that is not a token (whitespace before the colon), a folded
 * line (obs-fold), two or more Content-Length (identical ones too: RFC 9112
 * 6.3 allows either, no honest client sends them), two or more
 * Transfer-Encoding, Content-Length with Transfer-Encoding, Transfer-Encoding
 * in HTTP/1.0, a Transfer-Encoding other than exactly "chunked", an HTTP/1.1
 * request without exactly one Host. A chunked body gets 411 length_required
 * unless allowed (see http.c: libmicrohttpd 0.9.75 accepts bare LF in chunk
 * framing).
 */
#ifndef RESNETD_FRAMING_H
#define RESNETD_FRAMING_H

#include <stddef.h>

typedef struct {
    int ncl, nte, nhost;
    const char *te;  /* the Transfer-Encoding value (the last one seen) */
    const char *bad; /* why a field line is malformed, or NULL */
} framing_scan;

/* Records one header field. key[0..key_size) is the name, value its
 * NUL-terminated value, both as libmicrohttpd 0.9.75 leaves them: parsed in
 * place, so value sits right after the name, the NUL that replaced the colon
 * and optional SP/HT. A folded line breaks that layout (libmicrohttpd glues
 * the continuation onto the NAME and moves it), which is how obs-fold is
 * seen; only bytes between the two pointers are read, and only when they are
 * at most 64 bytes apart. */
void framing_field(framing_scan *f, const char *key, size_t key_size, const char *value);

/* The verdict once every field is in: 0, or the HTTP status (400, 411) with
 * *code and *msg (static strings) set. *chunked: the body is chunked. */
int framing_verdict(const framing_scan *f, int http10, int allow_chunked, int *chunked,
                    const char **code, const char **msg);

#endif
