/* http.c — libmicrohttpd in thread-pool mode behind the hooks of http.h.
 *
 * Framing (RFC 9112) is checked here, once the headers are in and before any
 * body byte is used, because libmicrohttpd 0.9.75 is lenient where a front
 * proxy may not be (each case was reproduced against 0.9.75):
 *   - duplicate Content-Length: it uses the first, the rest of the body runs
 *     as the next request; two Transfer-Encoding: it uses the first;
 *   - "Transfer-Encoding : chunked": it keeps a header named
 *     "Transfer-Encoding " (with the space) and frames by Content-Length;
 *   - obs-fold (a line starting with SP/HT): it glues the continuation onto
 *     the header NAME ("X-A: a" + " b" gives "X-Ab: a",
 *     "Transfer-Encoding:" + " chunked" gives "Transfer-Encodingchunked");
 *   - a Transfer-Encoding other than chunked: it reads until the peer closes;
 *   - bare LF in chunk framing: accepted (connection.c, "TODO: Add MHD option
 *     to disallow"); the application only ever sees de-chunked data, and
 *     MHD_OPTION_STRICT_FOR_CLIENT does not cover it (in 0.9.75, level 1
 *     only requires Host and refuses spaces in the URI; the whitespace-
 *     before-colon check runs only at level -1, the "tolerant" level).
 * All of these are answered 400 (JSON) + Connection: close, except chunked
 * bodies: since bare LF in chunk lines cannot be refused without replacing
 * libmicrohttpd, chunked request bodies get 411 + close unless
 * http_config.allow_chunked (fail closed: a refused request, never a
 * desync). Identical duplicate Content-Length headers are refused too (RFC
 * 9112 6.3 allows either; no honest client sends them).
 */
#include "http.h"

#include "framing.h"
#include "linger.h"

#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define POST_BUFFER 65536
#define MAX_PARTS 1024

struct http_server {
    struct MHD_Daemon *d;
    http_config c;
    int port;
    char *tls_cert, *tls_key; /* PEM text, alive as long as the daemon */
    linger_pool *linger;
};

/* Per connection (MHD's socket context): set when an answer went out before
 * the request body was read, so the close lingers (linger.h). */
typedef struct {
    int linger;
} conn_ctx;

typedef struct {
    char *filename;
    char *data;
    size_t len, cap;
} part;

struct http_req {
    http_server *s;
    struct MHD_Connection *conn;
    char *method, *path;
    int64_t content_length;
    int headers_done, body_done, responded, suspended;
    int too_large, multipart, chunked;
    int refused;             /* HTTP_BODY_*: the body is not stored */
    uint64_t reserved, held; /* bytes reserved from c.mem; bytes of buffers held */
    const char *mp_error;
    size_t received;
    char *body;
    size_t len, cap;
    struct MHD_PostProcessor *pp;
    part *parts;
    int nparts;
    int status;
    size_t bytes;
    void *user;
    int tag;
    void (*resume)(http_req *, void *);
    int fd;      /* the connection's socket while suspended, else -1 */
    int aborted; /* the client closed or reset the connection first */
};

/* Reserves n more bytes from the server-wide budget: 0 or -1 (over). */
static int reserve(http_req *r, uint64_t n) {
    if (r->s->c.mem && budget_reserve(r->s->c.mem, n))
        return -1;
    r->reserved += n;
    return 0;
}

/* Counts n more bytes held by the request, reserving from the budget what
 * its reservation does not cover yet: 0 or -1 (nothing taken). */
static int take(http_req *r, uint64_t n) {
    uint64_t spare = r->reserved > r->held ? r->reserved - r->held : 0;
    if (n > spare && reserve(r, n - spare))
        return -1;
    r->held += n;
    return 0;
}

static void unreserve(http_req *r) {
    if (r->s->c.mem && r->reserved)
        budget_release(r->s->c.mem, r->reserved);
    r->reserved = r->held = 0;
}

/* Appends to a growable buffer (first capacity `first`, then doubling) that
 * never grows past limit, reserving from the budget every byte of capacity
 * the request's reservation does not cover yet. Returns 0, HTTP_BODY_TOO_LARGE,
 * HTTP_BODY_OVER_BUDGET, or -1 (out of memory). */
static int append(http_req *r, char **buf, size_t *len, size_t *cap, const char *data, size_t n,
                  size_t limit, size_t first) {
    if (*len + n > limit)
        return HTTP_BODY_TOO_LARGE;
    if (*len + n > *cap) {
        size_t need = *len + n, nc = *cap ? *cap : (first > 4096 ? first : 4096);
        while (nc < need)
            nc *= 2;
        if (nc > limit)
            nc = limit;
        uint64_t spare = r->reserved > r->held ? r->reserved - r->held : 0;
        if (nc - *cap > spare && need - *cap <= spare)
            nc = *cap + (size_t)spare; /* stay inside the reservation */
        if (take(r, nc - *cap)) {
            nc = need; /* the budget is tight: exactly what is needed, or refuse */
            if (take(r, nc - *cap))
                return HTTP_BODY_OVER_BUDGET;
        }
        char *p = realloc(*buf, nc);
        if (!p)
            return -1;
        *buf = p;
        *cap = nc;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    return 0;
}

/* Drops every stored body byte (and its reservation): the rest of the body is
 * read and discarded, and the request is refused for `why`. */
static void discard_body(http_req *r, int why) {
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
    for (int i = 0; i < r->nparts; i++) {
        free(r->parts[i].data);
        r->parts[i].data = NULL;
        r->parts[i].len = r->parts[i].cap = 0;
    }
    unreserve(r);
    if (!r->refused || why == HTTP_BODY_TOO_LARGE) /* too large is final: 413 wins */
        r->refused = why;
    if (why == HTTP_BODY_TOO_LARGE)
        r->too_large = 1;
}

static enum MHD_Result post_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *filename, const char *content_type,
                                 const char *transfer_encoding, const char *data, uint64_t off,
                                 size_t size) {
    http_req *r = cls;
    if (r->refused)
        return MHD_NO;
    if (!filename)
        return MHD_YES; /* plain form fields are ignored */
    part *cur = r->nparts ? &r->parts[r->nparts - 1] : NULL;
    if (off == 0 && (!cur || cur->len > 0 || strcmp(cur->filename, filename) != 0)) {
        if (r->nparts >= MAX_PARTS) {
            r->mp_error = "too many parts";
            return MHD_NO;
        }
        part *np = realloc(r->parts, (size_t)(r->nparts + 1) * sizeof(part));
        if (!np) {
            r->mp_error = "out of memory";
            return MHD_NO;
        }
        r->parts = np;
        cur = &r->parts[r->nparts];
        memset(cur, 0, sizeof(*cur));
        if (take(r, strlen(filename) + 1)) { /* file names are body bytes too */
            r->refused = HTTP_BODY_OVER_BUDGET;
            return MHD_NO;
        }
        if (!(cur->filename = strdup(filename))) {
            r->mp_error = "out of memory";
            return MHD_NO;
        }
        r->nparts++;
    }
    int rc =
        size ? append(r, &cur->data, &cur->len, &cur->cap, data, size, r->s->c.max_body_bytes, 0)
             : 0;
    if (rc == HTTP_BODY_OVER_BUDGET) {
        r->refused = HTTP_BODY_OVER_BUDGET; /* the handler discards the body */
        return MHD_NO;
    }
    if (rc) {
        r->mp_error = "part too large or out of memory";
        return MHD_NO;
    }
    return MHD_YES;
}

static int begins_ci(const char *s, const char *prefix) {
    return s && strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* Marks the connection to linger on close: an answer is going out before the
 * body was read (linger.h). */
static void want_linger(http_req *r) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_ctx *cc = ci ? ci->socket_context : NULL;
    if (cc)
        cc->linger = 1;
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size) {
    (void)kind;
    (void)value_size;
    framing_field(cls, key, key_size, value);
    return MHD_YES;
}

/* RFC 9112 framing rules (framing.h, and the top of this file): 0, or the
 * status (400, 411) with *code and *msg set. */
static int framing_error(const http_server *s, struct MHD_Connection *conn, const char *version,
                         int *chunked, const char **code, const char **msg) {
    framing_scan f = {0};
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, scan_header, &f);
    return framing_verdict(&f, strcmp(version, "HTTP/1.0") == 0, s->c.allow_chunked, chunked, code,
                           msg);
}

/* Runs on_headers and, for multipart bodies, sets up the post processor. */
static void headers_in(http_req *r) {
    r->s->c.on_headers(r, r->s->c.app);
    r->headers_done = 1;
    if (r->responded) {
        unreserve(r); /* answered at once: the body is discarded, never stored */
        return;
    }
    if (r->multipart && !r->refused) {
        r->pp = MHD_create_post_processor(r->conn, POST_BUFFER, post_iter, r);
        if (!r->pp)
            r->mp_error = "multipart body without a usable boundary";
    }
}

/* The first call: headers are in, no body byte has been used. */
static enum MHD_Result first_call(http_server *s, http_req *r, const char *version) {
    struct MHD_Connection *conn = r->conn;
    const char *code, *msg;
    int st = framing_error(s, conn, version, &r->chunked, &code, &msg);
    if (st) { /* refuse and close: nothing after these headers is trusted */
        char body[320];
        int n = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                         code, msg);
        static const char *const hdr[] = {"Connection", "close", NULL};
        want_linger(r); /* whatever follows is unread */
        http_respond(r, st, "application/json", strndup(body, (size_t)n), (size_t)n, hdr);
        return MHD_YES;
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    r->content_length = cl ? strtoll(cl, NULL, 10) : -1;
    r->multipart = begins_ci(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type"),
                             "multipart/form-data");
    if (r->content_length > (int64_t)s->c.max_body_bytes) {
        r->too_large = 1;
        r->refused = HTTP_BODY_TOO_LARGE;
    } else if (r->content_length > 0 && reserve(r, (uint64_t)r->content_length)) {
        r->refused = HTTP_BODY_OVER_BUDGET; /* refused before any body byte is read */
    }
    /* libmicrohttpd closes the connection after a response queued on this
     * first call (it cannot know what follows), which would end every
     * keep-alive GET and pipelined request: a request without a body gets
     * its hooks on the next call, once it is complete. */
    if (r->content_length <= 0 && !r->chunked)
        return MHD_YES;
    headers_in(r);
    return MHD_YES;
}

/* Body bytes: stored (within the limits and the budget) or discarded. */
static enum MHD_Result body_data(http_server *s, http_req *r, const char *data, size_t n) {
    r->received += n;
    if (r->received > s->c.max_body_bytes && r->refused != HTTP_BODY_TOO_LARGE)
        discard_body(r, HTTP_BODY_TOO_LARGE);
    if (r->refused) /* a chunked stream far beyond the limit is cut off, not read forever */
        return r->received > 4 * s->c.max_body_bytes + (1u << 20) ? MHD_NO : MHD_YES;
    if (r->multipart) {
        if (r->pp && !r->mp_error && MHD_post_process(r->pp, data, n) != MHD_YES && !r->mp_error &&
            !r->refused)
            r->mp_error = "malformed multipart body";
        if (r->refused == HTTP_BODY_OVER_BUDGET)
            discard_body(r, HTTP_BODY_OVER_BUDGET);
        return MHD_YES;
    }
    size_t first = r->content_length > 0 ? (size_t)r->content_length : 0;
    int rc = append(r, &r->body, &r->len, &r->cap, data, n, s->c.max_body_bytes, first);
    if (rc > 0)
        discard_body(r, rc);
    return rc < 0 ? MHD_NO : MHD_YES; /* out of memory: close */
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
    http_server *s = cls;
    http_req *r = *con_cls;
    if (!r) {
        if (!(r = calloc(1, sizeof(*r))))
            return MHD_NO;
        r->s = s;
        r->conn = conn;
        r->fd = -1;
        r->method = strdup(method);
        r->path = strdup(url);
        *con_cls = r;
        if (!r->method || !r->path)
            return MHD_NO;
        return first_call(s, r, version);
    }
    if (!r->headers_done && !r->responded) /* a request without a body, now complete */
        headers_in(r);
    if (r->responded) {
        *upload_data_size = 0; /* answered early: the rest is discarded */
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return body_data(s, r, upload_data, n);
    }
    if (!r->body_done) {
        r->body_done = 1;
        s->c.on_body(r, s->c.app);
        return MHD_YES;
    }
    if (r->suspended && r->resume) {
        r->suspended = 0;
        r->resume(r, s->c.app);
    }
    return MHD_YES;
}

/* 1 when the peer of a connected socket has closed, reset or half-closed
 * it. One non-blocking poll: nothing is read, so pipelined bytes and TLS
 * records stay where they are; POLLRDHUP is the peer's FIN whether or not
 * bytes are still pending before it. */
static int fd_gone(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0 || (p.revents & POLLNVAL))
        return 0;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    http_server *s = cls;
    http_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    /* libmicrohttpd 0.9.75 ends a connection reset or closed by the client
     * "with error", like its own failures: a body cut off before its end, or
     * the socket (still open here), tells. (The socket alone is not enough:
     * under a slow build its hang-up may already be consumed.) */
    if (!r->responded && toe == MHD_REQUEST_TERMINATED_WITH_ERROR) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        r->aborted = (r->headers_done && !r->body_done) || (ci && fd_gone(ci->connect_fd));
    } else {
        r->aborted = !r->responded && (toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ||
                                       toe == MHD_REQUEST_TERMINATED_READ_ERROR);
    }
    if (r->headers_done)
        s->c.on_complete(r, s->c.app);
    if (r->pp)
        MHD_destroy_post_processor(r->pp);
    for (int i = 0; i < r->nparts; i++) {
        free(r->parts[i].filename);
        free(r->parts[i].data);
    }
    free(r->parts);
    free(r->body);
    unreserve(r);
    free(r->method);
    free(r->path);
    free(r);
}

/* Connection start and end: the end hands a socket that still has (or may
 * get) unread client bytes to the lingering close instead of letting the
 * kernel answer them with a reset. libmicrohttpd has already sent the answer
 * and shut the socket for writing; the dup keeps it open after it closes its
 * descriptor (it removes that from its epoll set itself first). */
static void conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode code) {
    http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = calloc(1, sizeof(conn_ctx)); /* NULL: this one never lingers */
        return;
    }
    conn_ctx *cc = *socket_context;
    *socket_context = NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    int pending = 0;
    if (ci && ioctl(ci->connect_fd, FIONREAD, &pending) != 0)
        pending = 0;
    if (ci && ((cc && cc->linger) || pending > 0)) {
        int fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0);
        if (fd >= 0)
            linger_add(s->linger, fd);
    }
    free(cc);
}

/* Reads a whole (small) PEM file; NULL with err set on failure. */
static char *read_pem(const char *key, const char *path, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    char *buf = f ? malloc(1 << 20) : NULL;
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    int bad = !f || !buf || ferror(f) || n == 0 || n == (1 << 20) - 1;
    if (f)
        fclose(f);
    if (bad) {
        snprintf(err, err_len, "%s: cannot read a PEM file from %s", key, path);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

static void free_server(http_server *s) {
    linger_stop(s->linger);
    free(s->tls_cert);
    free(s->tls_key);
    free(s);
}

int http_tls_priorities_check(const char *prio, char *err, size_t err_len) {
    gnutls_priority_t p;
    const char *where = NULL;
    int rc = gnutls_priority_init(&p, prio, &where);
    if (rc != GNUTLS_E_SUCCESS) {
        snprintf(err, err_len, "tls_priorities: not a valid GnuTLS priority string%s%.40s%s (%s)",
                 where ? " at '" : "", where ? where : "", where ? "'" : "", gnutls_strerror(rc));
        return -1;
    }
    gnutls_priority_deinit(p);
    return 0;
}

http_server *http_start(const http_config *c, char *err, size_t err_len) {
    if (!c->tls_cert != !c->tls_key) {
        snprintf(err, err_len, "%s: tls_cert and tls_key must be given together",
                 c->tls_cert ? "tls_key" : "tls_cert");
        return NULL;
    }
    if (c->tls_cert && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(err, err_len, "tls_cert: this libmicrohttpd was built without TLS");
        return NULL;
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", c->port);
    int rc = getaddrinfo(c->host, port, &hints, &ai);
    if (rc) {
        snprintf(err, err_len, "host '%s': %s", c->host, gai_strerror(rc));
        return NULL;
    }
    http_server *s = calloc(1, sizeof(*s));
    if (!s) {
        freeaddrinfo(ai);
        snprintf(err, err_len, "http: out of memory");
        return NULL;
    }
    s->c = *c;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem tls[4] = {{MHD_OPTION_END, 0, NULL}};
    if (c->tls_cert && c->tls_priorities &&
        http_tls_priorities_check(c->tls_priorities, err, err_len)) {
        freeaddrinfo(ai);
        free_server(s);
        return NULL;
    }
    if (c->tls_cert) {
        if (!(s->tls_cert = read_pem("tls_cert", c->tls_cert, err, err_len)) ||
            !(s->tls_key = read_pem("tls_key", c->tls_key, err, err_len))) {
            freeaddrinfo(ai);
            free_server(s);
            return NULL;
        }
        flags |= MHD_USE_TLS;
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key};
        if (c->tls_priorities) /* libmicrohttpd applies it with gnutls_priority_init */
            tls[2] =
                (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)c->tls_priorities};
    }
    s->linger = linger_start(); /* NULL: closes are plain closes */
    s->d = MHD_start_daemon(
        flags, (uint16_t)c->port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)c->threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)c->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)c->connection_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)c->max_connections_per_ip, MHD_OPTION_NOTIFY_CONNECTION, conn_notify, s,
        MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->d) {
        snprintf(err, err_len, "cannot listen on %s:%d (port in use or bad host%s)", c->host,
                 c->port, c->tls_cert ? ", or tls_cert/tls_key unusable" : "");
        free_server(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : c->port;
    return s;
}

int http_port(const http_server *s) {
    return s->port;
}

void http_quiesce(http_server *s) {
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

void http_stop(http_server *s) {
    if (!s)
        return;
    MHD_stop_daemon(s->d); /* before the lingering pool: closing connections feed it */
    free_server(s);
}

const char *http_method(const http_req *r) {
    return r->method;
}
const char *http_path(const http_req *r) {
    return r->path;
}
const char *http_header(const http_req *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}
const char *http_query(const http_req *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}
int64_t http_content_length(const http_req *r) {
    return r->content_length;
}
int http_is_multipart(const http_req *r) {
    return r->multipart;
}
int http_body_too_large(const http_req *r) {
    return r->too_large;
}
int http_body_refused(const http_req *r) {
    return r->refused;
}
const char *http_multipart_error(const http_req *r) {
    return r->mp_error;
}
const void *http_body(const http_req *r, size_t *len) {
    *len = r->len;
    return r->body;
}
int http_num_parts(const http_req *r) {
    return r->nparts;
}
const char *http_part_filename(const http_req *r, int i) {
    return r->parts[i].filename;
}
const void *http_part_data(const http_req *r, int i, size_t *len) {
    *len = r->parts[i].len;
    return r->parts[i].data;
}
void http_set_user(http_req *r, void *user) {
    r->user = user;
}
void *http_user(const http_req *r) {
    return r->user;
}
void http_set_tag(http_req *r, int tag) {
    r->tag = tag;
}
int http_tag(const http_req *r) {
    return r->tag;
}
int http_status(const http_req *r) {
    return r->status;
}
size_t http_bytes(const http_req *r) {
    return r->bytes;
}

int http_respond(http_req *r, int status, const char *content_type, char *body, size_t len,
                 const char *const *headers) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, body ? body : (char *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(body);
        return -1;
    }
    if (content_type)
        MHD_add_response_header(resp, "Content-Type", content_type);
    for (int i = 0; headers && headers[i]; i += 2)
        MHD_add_response_header(resp, headers[i], headers[i + 1]);
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (ok != MHD_YES)
        return -1;
    if (!r->body_done && (r->content_length > 0 || r->chunked))
        want_linger(r); /* answered before the body was read */
    r->responded = 1;
    r->status = status;
    r->bytes = len;
    return 0;
}

void http_suspend(http_req *r, void (*resume)(http_req *r, void *app)) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    r->fd = ci ? ci->connect_fd : -1;
    r->resume = resume;
    r->suspended = 1;
    MHD_suspend_connection(r->conn);
}

/* libmicrohttpd does not watch a suspended connection, and keeps its socket
 * open until it is resumed (nor does it time it out meanwhile), so the
 * descriptor cannot be closed and reused while the request is suspended: ask
 * the kernel directly (fd_gone). */
int http_client_gone(const http_req *r) {
    return r && r->fd >= 0 && fd_gone(r->fd);
}

int http_client_aborted(const http_req *r) {
    return r && r->aborted;
}

void http_resume(http_req *r) {
    MHD_resume_connection(r->conn);
}
