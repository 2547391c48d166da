/*
 * grpc_server.h — the gRPC port: KServe v2 / Triton GRPCInferenceService
 * (grpc_service.proto) over HTTP/2 (libnghttp2), plaintext or TLS (GnuTLS,
 * ALPN "h2", the HTTP port's certificate and priorities). docs/grpc.md is
 * the reference; the design is at the top of grpc_server.c.
 */
#ifndef RESNETD_GRPC_SERVER_H
#define RESNETD_GRPC_SERVER_H

#include "app.h"

#include <stddef.h>

typedef struct grpc_server grpc_server;

/* Binds host:port (0 = any free port) and starts the event-loop thread.
 * Limits and TLS come from a->cfg. Returns NULL with err naming the cause. */
grpc_server *grpc_start(app *a, const char *host, int port, char *err, size_t err_len);

/* The bound TCP port. */
int grpc_port(const grpc_server *s);

/* Stops the thread and closes every connection, then frees s. Call after
 * the decode pool and the workers stopped (every call has come back).
 * NULL is a no-op. */
void grpc_stop(grpc_server *s);

#endif
