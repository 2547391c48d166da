/*
 * http.h — the libmicrohttpd adapter. No MHD type leaves http.c.
 *
 * A request goes through three application hooks, each called on one of the
 * server's HTTP threads:
 *   on_headers  headers are in; may respond at once (404, 405, 413 from
 *               Content-Length, 503 when draining): the body is then not read;
 *   on_body     the whole body is in (raw bytes, or multipart file parts from
 *               MHD's post processor); must respond, or call http_suspend();
 *   on_complete the response went out or the connection died; the place for
 *               the access log and metrics. The request is freed after it.
 * A suspended request is parked without a thread; http_resume() (any thread)
 * makes its resume callback run on an HTTP thread, which must respond.
 */
#ifndef RESNETD_HTTP_H
#define RESNETD_HTTP_H

#include "budget.h"

#include <stddef.h>
#include <stdint.h>

typedef struct http_server http_server;
typedef struct http_req http_req;

typedef struct {
    const char *host;
    int port; /* 0 = any free port (see http_port) */
    int threads;
    int max_connections;
    int connection_timeout_s;
    size_t max_body_bytes; /* larger bodies: http_body_too_large() */
    void (*on_headers)(http_req *r, void *app);
    void (*on_body)(http_req *r, void *app);
    void (*on_complete)(http_req *r, void *app);
    void *app;
    /* PEM files; both set = HTTPS only (libmicrohttpd's GnuTLS), both NULL = HTTP */
    const char *tls_cert, *tls_key;
    int max_connections_per_ip; /* 0 = unlimited */
    /* The server-wide bytes-in-flight budget (NULL: none). Every request-body
     * byte held in memory is reserved from it first: a declared
     * Content-Length up front, a chunked body as it grows; a body that does
     * not fit is not stored (http_body_refused() says so). */
    budget *mem;
    const char *tls_priorities; /* GnuTLS priority string; NULL = GnuTLS default */
    /* 0: a request with Transfer-Encoding: chunked gets 411 + close (see
     * http.c: libmicrohttpd 0.9.75 accepts bare LF in chunk framing and
     * cannot be told not to). */
    int allow_chunked;
} http_config;

/* Why a request's body was not stored (http_body_refused). */
enum { HTTP_BODY_OK = 0, HTTP_BODY_TOO_LARGE, HTTP_BODY_OVER_BUDGET };

/* Checks a GnuTLS priority string: 0, or -1 with err naming tls_priorities
 * and the offending part. */
int http_tls_priorities_check(const char *prio, char *err, size_t err_len);

/* Binds and starts serving. Returns NULL with err naming the cause. Stop
 * with http_stop(). */
http_server *http_start(const http_config *c, char *err, size_t err_len);

/* The bound TCP port. */
int http_port(const http_server *s);

/* Stops accepting connections (open ones are still served). */
void http_quiesce(http_server *s);

/* Stops every thread and closes every connection, then frees s. No request
 * may be suspended. NULL is a no-op. */
void http_stop(http_server *s);

/* Request accessors (valid until on_complete returns). Strings are owned by
 * the request. */
const char *http_method(const http_req *r);
const char *http_path(const http_req *r);
const char *http_header(const http_req *r, const char *name); /* NULL if absent */
const char *http_query(const http_req *r, const char *name);  /* NULL if absent */
int64_t http_content_length(const http_req *r);               /* -1 if absent */
int http_is_multipart(const http_req *r);
int http_body_too_large(const http_req *r);
/* HTTP_BODY_OK, or why the body was not stored and must be refused:
 * HTTP_BODY_TOO_LARGE (413) or HTTP_BODY_OVER_BUDGET (503 + Retry-After). */
int http_body_refused(const http_req *r);
const char *http_multipart_error(const http_req *r); /* NULL, or why it failed */
const void *http_body(const http_req *r, size_t *len);
int http_num_parts(const http_req *r);
const char *http_part_filename(const http_req *r, int i);
const void *http_part_data(const http_req *r, int i, size_t *len);

/* The application's per-request state; freed by the application in on_complete. */
void http_set_user(http_req *r, void *user);
void *http_user(const http_req *r);

/* A small integer the application may attach besides the user state (the
 * routes use it to track announcements for requests another module owns). */
void http_set_tag(http_req *r, int tag);
int http_tag(const http_req *r);

/* Sends a response. body (malloc'd) is taken over, even on failure.
 * headers: NULL or NULL-terminated name, value pairs. Returns 0 or -1. */
int http_respond(http_req *r, int status, const char *content_type, char *body, size_t len,
                 const char *const *headers);

/* Status and body bytes sent (0 when no response was queued). */
int http_status(const http_req *r);
size_t http_bytes(const http_req *r);

/* Parks the request (from on_body only). After http_resume(r), resume(r, app)
 * runs on an HTTP thread and must respond. */
void http_suspend(http_req *r, void (*resume)(http_req *r, void *app));
void http_resume(http_req *r); /* any thread, once per http_suspend */

/* 1 when the client of a suspended request has gone: it closed or reset the
 * connection, or shut down its sending side (a half-close counts as gone, as
 * for nginx and Go's net/http). Cheap (one non-blocking poll, nothing read)
 * and callable from any thread between http_suspend and http_resume;
 * 0 otherwise (and for NULL). */
int http_client_gone(const http_req *r);

/* In on_complete: 1 when the connection ended because the client closed or
 * reset it before any response was queued (e.g. an upload cut off mid-body). */
int http_client_aborted(const http_req *r);

#endif
