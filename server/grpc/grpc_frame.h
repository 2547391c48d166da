/*
 * grpc_frame.h — the pure parts of gRPC over HTTP/2 (no I/O, no state):
 * the 5-byte message prefix, the grpc-timeout header, grpc-message
 * percent-encoding and the mapping between gRPC status codes and the HTTP
 * statuses the rest of the server speaks. Unit-tested by
 * tests/server/test_grpc_frame.c.
 */
#ifndef RESNETD_GRPC_FRAME_H
#define RESNETD_GRPC_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* gRPC status codes (grpc/doc/statuscodes.md). */
enum {
    GRPC_OK = 0,
    GRPC_CANCELLED = 1,
    GRPC_UNKNOWN = 2,
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_DEADLINE_EXCEEDED = 4,
    GRPC_NOT_FOUND = 5,
    GRPC_RESOURCE_EXHAUSTED = 8,
    GRPC_FAILED_PRECONDITION = 9,
    GRPC_UNIMPLEMENTED = 12,
    GRPC_INTERNAL = 13,
    GRPC_UNAVAILABLE = 14,
    GRPC_UNAUTHENTICATED = 16,
};

#define GRPC_PREFIX 5

/* The length-prefixed message header: byte 0 the compressed flag (0 or 1),
 * bytes 1..4 the big-endian length. Returns 0, or -1 when the flag is
 * neither 0 nor 1. */
int grpc_prefix_parse(const uint8_t p[GRPC_PREFIX], int *compressed, uint32_t *len);

/* Writes the header of an uncompressed message of len bytes. */
void grpc_prefix_write(uint8_t p[GRPC_PREFIX], uint32_t len);

/* grpc-timeout: 1 to 8 ASCII digits then one unit of H M S m u n. Returns 0
 * with *ns set (saturated at INT64_MAX), or -1 when malformed. */
int grpc_timeout_parse(const char *v, size_t len, int64_t *ns);

/* grpc-message percent-encoding: bytes outside 0x20..0x7E and '%' become
 * %XX. Writes at most out_len - 1 bytes and a NUL (never cuts an escape);
 * returns the length written. */
size_t grpc_pct_encode(const char *in, char *out, size_t out_len);

/* The gRPC status for an HTTP status of the shared request code: 400/415
 * INVALID_ARGUMENT, 401 UNAUTHENTICATED, 404 NOT_FOUND, 413
 * RESOURCE_EXHAUSTED, 499 CANCELLED, 503 UNAVAILABLE, 504
 * DEADLINE_EXCEEDED, 501 UNIMPLEMENTED, anything else INTERNAL. */
int grpc_status_from_http(int http_status);

/* The reverse, for metrics and the access log: the HTTP status a gRPC
 * status stands for (OK 200, UNIMPLEMENTED 501, UNKNOWN/INTERNAL 500...). */
int grpc_status_http(int grpc_status);

/* The status's name ("OK", "INVALID_ARGUMENT"...), "UNKNOWN" if unknown. */
const char *grpc_status_name(int grpc_status);

#endif
