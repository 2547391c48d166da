/* http.c — libmicrohttpd in thread-pool mode behind the hooks of http.h. */
#include "http.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define POST_BUFFER 65536
#define MAX_PARTS 1024

struct http_server {
    struct MHD_Daemon *d;
    http_config c;
    int port;
    char *tls_cert, *tls_key; /* PEM text, alive as long as the daemon */
};

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
    int too_large, multipart;
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
};

/* Appends to a growable buffer, refusing to grow past limit. */
static int append(char **buf, size_t *len, size_t *cap, const char *data, size_t n, size_t limit) {
    if (*len + n > limit)
        return -1;
    if (*len + n > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (nc < *len + n)
            nc *= 2;
        if (nc > limit)
            nc = limit;
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

static enum MHD_Result post_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *filename, const char *content_type,
                                 const char *transfer_encoding, const char *data, uint64_t off,
                                 size_t size) {
    http_req *r = cls;
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
        if (!(cur->filename = strdup(filename))) {
            r->mp_error = "out of memory";
            return MHD_NO;
        }
        r->nparts++;
    }
    if (size && append(&cur->data, &cur->len, &cur->cap, data, size, r->s->c.max_body_bytes)) {
        r->mp_error = "part too large or out of memory";
        return MHD_NO;
    }
    return MHD_YES;
}

static int begins_ci(const char *s, const char *prefix) {
    return s && strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* Runs on_headers and, for multipart bodies, sets up the post processor. */
static void headers_in(http_req *r) {
    r->s->c.on_headers(r, r->s->c.app);
    r->headers_done = 1;
    if (!r->responded && r->multipart && !r->too_large) {
        r->pp = MHD_create_post_processor(r->conn, POST_BUFFER, post_iter, r);
        if (!r->pp)
            r->mp_error = "multipart body without a usable boundary";
    }
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
        r->method = strdup(method);
        r->path = strdup(url);
        *con_cls = r;
        if (!r->method || !r->path)
            return MHD_NO;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        r->content_length = cl ? strtoll(cl, NULL, 10) : -1;
        r->multipart = begins_ci(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type"),
                                 "multipart/form-data");
        if (r->content_length > (int64_t)s->c.max_body_bytes)
            r->too_large = 1;
        const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
        if (cl && te) { /* RFC 9112 6.3: a smuggling attempt; refuse and close */
            static const char msg[] = "{\"error\":{\"code\":\"bad_request\",\"message\":"
                                      "\"Content-Length together with Transfer-Encoding\"}}";
            static const char *const hdr[] = {"Connection", "close", NULL};
            http_respond(r, 400, "application/json", strdup(msg), sizeof msg - 1, hdr);
            return MHD_YES;
        }
        /* libmicrohttpd closes the connection after a response queued on this
         * first call (it cannot know what follows), which would end every
         * keep-alive GET and pipelined request: a request without a body gets
         * its hooks on the next call, once it is complete. */
        if (r->content_length <= 0 && !te)
            return MHD_YES;
        headers_in(r);
        return MHD_YES;
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
        r->received += n;
        if (r->received > s->c.max_body_bytes) {
            r->too_large = 1;
            free(r->body);
            r->body = NULL;
            r->len = r->cap = 0;
            /* a chunked stream far beyond the limit is cut off, not read forever */
            return r->received > 4 * s->c.max_body_bytes + (1u << 20) ? MHD_NO : MHD_YES;
        }
        if (r->too_large)
            return MHD_YES;
        if (r->multipart) {
            if (r->pp && !r->mp_error && MHD_post_process(r->pp, upload_data, n) != MHD_YES &&
                !r->mp_error)
                r->mp_error = "malformed multipart body";
        } else if (append(&r->body, &r->len, &r->cap, upload_data, n, s->c.max_body_bytes)) {
            return MHD_NO; /* out of memory */
        }
        return MHD_YES;
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

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    http_server *s = cls;
    http_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
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
    free(r->method);
    free(r->path);
    free(r);
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
    free(s->tls_cert);
    free(s->tls_key);
    free(s);
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
    struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL}};
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
    }
    s->d = MHD_start_daemon(
        flags, (uint16_t)c->port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)c->threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)c->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)c->connection_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)c->max_connections_per_ip, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
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
    MHD_stop_daemon(s->d);
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
    r->responded = 1;
    r->status = status;
    r->bytes = len;
    return 0;
}

void http_suspend(http_req *r, void (*resume)(http_req *r, void *app)) {
    r->resume = resume;
    r->suspended = 1;
    MHD_suspend_connection(r->conn);
}

void http_resume(http_req *r) {
    MHD_resume_connection(r->conn);
}
