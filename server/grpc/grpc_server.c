/*
 * grpc_server.c — the gRPC port's transport: listener, connections, TLS,
 * HTTP/2 (libnghttp2) and the gRPC message framing of each stream.
 *
 * DESIGN. One event-loop thread (epoll) owns every gRPC connection, its
 * nghttp2 session and its streams; it only moves bytes, checks what is
 * cheap (headers, the 5-byte message prefix against max_body_bytes) and
 * answers the control RPCs, which are small (RepositoryModelLoad/Unload
 * are queued for the registry's loader thread and come back as a call,
 * grpc_server_wake, so a load never stalls the loop). A ModelInfer goes the way of
 * every inference request (reqbase_submit_async): unpacking the message,
 * the input checks and the image decodes run on the decode pool, the images
 * go through the model's queue (so gRPC and HTTP requests batch together),
 * and the call comes back through grpc_server_wake (an eventfd and a list)
 * to this thread, which answers. A stream reset or a connection closed
 * while a call's images wait sets its request's `gone` flag (reqbase.h), which
 * the queue items' alive hook reads, so those images never reach the engine; the
 * call's memory is freed only when every item has come back.
 *
 * Bounds (docs/limits.md, docs/grpc.md): connections at most
 * max_connections and max_connections_per_ip (counted for this port on its
 * own); SETTINGS_MAX_CONCURRENT_STREAMS 128; header list 16 KiB per stream
 * (advertised and enforced); HPACK table 4 KiB; a request message at most
 * max_body_bytes, refused from its prefix before a byte of it is buffered,
 * and reserved in the server budget before it is; nghttp2's own memory
 * counted per connection (GRPC_CONN_MEM) and in the budget; resets by the
 * peer limited by a token bucket (rapid reset: GOAWAY ENHANCE_YOUR_CALM);
 * SETTINGS and PING floods by nghttp2's outbound-ACK limit; a peer that
 * does not read: one frame of output is buffered, and a connection whose
 * output makes no progress for connection_timeout_s is closed, as is one
 * idle (no stream, no byte) that long, or whose TLS handshake takes longer.
 */
#include "grpc_server.h"

#include "auth.h"
#include "grpc_internal.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define GRPC_MAX_STREAMS 128
#define GRPC_MAX_HEADER_LIST 16384
#define GRPC_HEADER_TABLE 4096
#define GRPC_CONN_MEM (4u << 20) /* nghttp2's allocations per connection */
/* The first bytes of a connection's nghttp2 memory (the session, its
 * SETTINGS and HPACK tables) are not taken from the budget, so a new
 * connection is not reset while the budget is full (its requests get
 * UNAVAILABLE instead); at most max_connections x this, outside
 * max_inflight_bytes (docs/limits.md). */
#define GRPC_CONN_BASE (64u << 10)
#define GRPC_STREAM_WINDOW (1 << 20) /* per stream */
#define GRPC_CONN_WINDOW (16 << 20)  /* per connection */
#define GRPC_RESET_BURST 200.0       /* peer resets before the bucket runs dry */
#define GRPC_RESET_RATE 50.0         /* ...refilled per second */
#define GRPC_READ_CHUNK 16384
#define GRPC_STREAM_PENDING 16 /* ModelStreamInfer messages waiting per stream */

typedef struct gmsg {
    struct gmsg *next;
    uint8_t *msg;
    size_t len;
    uint64_t reserved;
} gmsg;

typedef struct {
    size_t size;
    size_t budgeted; /* reserved in the budget (else within the connection's base);
                      * also keeps the payload 16-byte aligned */
} mem_hdr;

struct gconn {
    grpc_server *srv;
    int fd;
    gconn *prev, *next;
    nghttp2_session *h2;
    gnutls_session_t tls;
    int handshaking;
    char ip[64];
    gstream *streams;
    int nstreams;
    uint8_t *wbuf; /* output taken from nghttp2, not yet written */
    size_t wlen, woff;
    int64_t t_open, t_io; /* opened; last byte read or written */
    int64_t t_stall;      /* output pending and unwritten since (0: none) */
    double reset_tokens;
    int64_t reset_t;
    uint64_t mem;          /* nghttp2's bytes (past `base`, also reserved in the budget) */
    uint64_t base;         /* ...of them not reserved: at most GRPC_CONN_BASE */
    int events;            /* epoll events registered */
    int goaway;            /* GOAWAY sent for the drain */
    int32_t last_admitted; /* the highest stream id whose HEADERS came before the drain */
    int dead;              /* close at the end of this loop turn */
    int fake;              /* fuzz: no socket, output discarded */
};

struct grpc_server {
    app *a;
    const cfg_t *cfg;
    int lfd, ep, evfd;
    int port;
    pthread_t th;
    int started;
    _Atomic int stop;
    pthread_mutex_t mu;
    grpc_call *done; /* calls come back (grpc_server_wake) */
    gconn *conns;
    int nconns;
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    int tls;
    _Atomic long calls;    /* ModelInfer calls not yet freed */
    int64_t accept_paused; /* out of file descriptors: accept again after this */
};

static int64_t now_ns(void) {
    return queue_now_ns();
}

app *grpc_app(const gstream *s) {
    return s->c->srv->a;
}

grpc_server *grpc_srv(const gstream *s) {
    return s->c->srv;
}

int64_t grpc_msg_max(const grpc_server *srv) {
    return srv->cfg->max_body_bytes;
}

/* ---- nghttp2's memory: counted per connection and in the budget ---- */

static void *m_malloc(size_t size, void *ud) {
    gconn *c = ud;
    uint64_t n = size + sizeof(mem_hdr);
    if (c->mem + n > GRPC_CONN_MEM)
        return NULL;
    int budgeted = c->base + n > GRPC_CONN_BASE;
    if (budgeted && budget_reserve(&c->srv->a->mem, n))
        return NULL;
    mem_hdr *h = malloc(n);
    if (!h) {
        if (budgeted)
            budget_release(&c->srv->a->mem, n);
        return NULL;
    }
    h->size = size;
    h->budgeted = (size_t)budgeted;
    c->mem += n;
    if (!budgeted)
        c->base += n;
    return h + 1;
}

static void m_free(void *p, void *ud) {
    gconn *c = ud;
    if (!p)
        return;
    mem_hdr *h = (mem_hdr *)p - 1;
    uint64_t n = h->size + sizeof(mem_hdr);
    c->mem -= n;
    if (h->budgeted)
        budget_release(&c->srv->a->mem, n);
    else
        c->base -= n;
    free(h);
}

static void *m_calloc(size_t nmemb, size_t size, void *ud) {
    if (size && nmemb > SIZE_MAX / size)
        return NULL;
    void *p = m_malloc(nmemb * size, ud);
    if (p)
        memset(p, 0, nmemb * size);
    return p;
}

static void *m_realloc(void *p, size_t size, void *ud) {
    if (!p)
        return m_malloc(size, ud);
    mem_hdr *h = (mem_hdr *)p - 1;
    void *q = m_malloc(size, ud);
    if (!q)
        return NULL;
    memcpy(q, p, h->size < size ? h->size : size);
    m_free(p, ud);
    return q;
}

/* ---- streams ---- */

static void stream_unlink(gstream *s) {
    gconn *c = s->c;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    c->nstreams--;
}

/* Drops the drain hold of s (check_headers), if it still has it. */
static void unadmit(gstream *s) {
    if (s->admitted)
        atomic_fetch_sub(&s->c->srv->a->work, 1);
    s->admitted = 0;
}

/* Counts and logs the answer of s (once), by its HTTP(-equivalent) status. */
static void account(gstream *s, int http, size_t bytes) {
    unadmit(s);
    if (s->counted)
        return;
    s->counted = 1;
    app *a = s->c->srv->a;
    metrics_request_proto(a->metrics, s->model, http, METRICS_PROTO_GRPC);
    double secs = (double)(now_ns() - s->t0_ns) / 1e9;
    if (s->model >= 0)
        metrics_observe_request(a->metrics, s->model, METRICS_PROTO_GRPC, secs);
    if (s->images > 0 && s->model >= 0)
        metrics_images(a->metrics, s->model, s->images);
    log_access_proto(s->rid, "POST", s->path, http, bytes, secs * 1e3,
                     metrics_model_name(a->metrics, s->model), s->images, "grpc");
}

static void stream_free(gstream *s) {
    app *a = s->c->srv->a;
    if (s->call) { /* its images may still wait: they must not run */
        atomic_store(&s->call->b.gone, 1);
        s->call->s = NULL;
        s->call = NULL;
    }
    if (!s->counted)
        account(s, grpc_status_http(GRPC_CANCELLED), 0);
    unadmit(s);
    while (s->pending) {
        gmsg *m = s->pending;
        s->pending = m->next;
        budget_release(&a->mem, m->reserved);
        free(m->msg);
        free(m);
    }
    free(s->msg);
    free(s->dmsg);
    free(s->out);
    budget_release(&a->mem, s->msg_reserved + s->dreserved + s->out_reserved +
                                (s->from_base ? 0 : sizeof(gstream)));
    if (s->from_base)
        s->c->base -= sizeof(gstream);
    metrics_inflight_add(a->metrics, -1);
    free(s);
}

static ssize_t read_out(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t length,
                        uint32_t *flags, nghttp2_data_source *src, void *ud) {
    gstream *s = src->ptr;
    (void)ud;
    size_t n = s->out_len - s->out_off;
    if (n > length)
        n = length;
    if (n) { /* sent bytes leave the budget as they go */
        memcpy(buf, s->out + s->out_off, n);
        s->out_off += n;
        budget_release(&s->c->srv->a->mem, n);
        s->out_reserved -= n;
        if (s->out_off == s->out_len) {
            free(s->out);
            s->out = NULL;
            s->out_len = s->out_off = 0;
        }
    }
    if (s->out_len == 0) {
        if (s->streaming && !s->out_done) {
            if (n)
                return (ssize_t)n;
            s->deferred = 1; /* grpc_stream_push or the end resumes it */
            return NGHTTP2_ERR_DEFERRED;
        }
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        char st[8], msg[1200];
        snprintf(st, sizeof st, "%d", s->status);
        grpc_pct_encode(s->message, msg, sizeof msg);
        nghttp2_nv tr[2] = {
            {(uint8_t *)"grpc-status", (uint8_t *)st, 11, strlen(st), NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)"grpc-message", (uint8_t *)msg, 12, strlen(msg), NGHTTP2_NV_FLAG_NONE}};
        nghttp2_submit_trailer(h2, id, tr, msg[0] ? 2 : 1);
    }
    return (ssize_t)n;
}

#define NV(n, v)                                                                                   \
    { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }

void grpc_answer(gstream *s, int status, const char *message, uint8_t *msg, size_t len) {
    if (s->answered) {
        free(msg);
        return;
    }
    app *a = s->c->srv->a;
    s->answered = 1;
    s->discard = 1;
    s->t_last = now_ns();
    if (msg && status == GRPC_OK) {
        uint64_t n = GRPC_PREFIX + (uint64_t)len;
        int reserved = len <= UINT32_MAX && budget_reserve(&a->mem, n) == 0;
        if (reserved)
            s->out = malloc(n);
        if (!s->out) {
            if (reserved)
                budget_release(&a->mem, n);
            else
                metrics_rejected(a->metrics, METRICS_REJECT_OVER_BUDGET);
            status = reserved ? GRPC_INTERNAL : GRPC_UNAVAILABLE;
            message = reserved ? "out of memory"
                               : "the answer does not fit the server's max_inflight_bytes now; "
                                 "retry later";
        } else {
            s->out_reserved = n;
            grpc_prefix_write(s->out, (uint32_t)len);
            memcpy(s->out + GRPC_PREFIX, msg, len);
            s->out_len = (size_t)n;
        }
    }
    free(msg);
    s->status = status;
    snprintf(s->message, sizeof s->message, "%s", message ? message : "");
    if (s->out) {
        nghttp2_nv nva[2] = {NV(":status", "200"), NV("content-type", "application/grpc")};
        nghttp2_data_provider dp = {.source.ptr = s, .read_callback = read_out};
        if (nghttp2_submit_response(s->c->h2, s->id, nva, 2, &dp) != 0)
            s->c->dead = 1;
        account(s, grpc_status_http(status), s->out_len);
        return;
    }
    char st[8], enc[1200];
    snprintf(st, sizeof st, "%d", status);
    grpc_pct_encode(s->message, enc, sizeof enc);
    nghttp2_nv nva[4] = {NV(":status", "200"), NV("content-type", "application/grpc"),
                         NV("grpc-status", st), NV("grpc-message", enc)};
    if (nghttp2_submit_response(s->c->h2, s->id, nva, enc[0] ? 4 : 3, NULL) != 0)
        s->c->dead = 1;
    account(s, grpc_status_http(status), 0);
}

/* An HTTP-level refusal (not a gRPC request at all). */
static void answer_http(gstream *s, const char *status) {
    s->answered = 1;
    s->discard = 1;
    nghttp2_nv nva[1] = {NV(":status", status)};
    nghttp2_submit_response(s->c->h2, s->id, nva, 1, NULL);
    account(s, atoi(status), 0);
}

/* ---- ModelStreamInfer ---- */

static void resume(gstream *s) {
    if (s->deferred) {
        s->deferred = 0;
        nghttp2_session_resume_data(s->c->h2, s->id);
    }
}

/* Ends a stream: trailers after what is queued (or Trailers-Only). */
static void stream_finish(gstream *s, int status, const char *message) {
    if (!s->resp_started) {
        grpc_answer(s, status, message, NULL, 0);
        return;
    }
    if (s->out_done)
        return;
    s->out_done = 1;
    s->answered = 1;
    s->discard = 1;
    s->status = status;
    snprintf(s->message, sizeof s->message, "%s", message ? message : "");
    resume(s);
}

/* One message's answer, counted and logged as a request of its own. */
static void account_msg(gstream *s, int http, int model, int images, int64_t t0, size_t bytes) {
    app *a = s->c->srv->a;
    double secs = (double)(now_ns() - t0) / 1e9;
    metrics_request_proto(a->metrics, model, http, METRICS_PROTO_GRPC);
    if (model >= 0)
        metrics_observe_request(a->metrics, model, METRICS_PROTO_GRPC, secs);
    if (images > 0 && model >= 0)
        metrics_images(a->metrics, model, images);
    log_access_proto(s->rid, "POST", s->path, http, bytes, secs * 1e3,
                     metrics_model_name(a->metrics, model), images, "grpc");
}

void grpc_stream_push(gstream *s, uint8_t *msg, size_t len, int http, int model, int images,
                      int64_t t0) {
    app *a = s->c->srv->a;
    account_msg(s, http, model, images, t0, msg ? len : 0);
    s->t_last = now_ns();
    if (s->out_done) {
        free(msg);
        return;
    }
    uint64_t n = GRPC_PREFIX + (uint64_t)len;
    if (!msg || len > UINT32_MAX) {
        free(msg);
        stream_finish(s, GRPC_INTERNAL, "out of memory");
        return;
    }
    if (budget_reserve(&a->mem, n)) {
        free(msg);
        metrics_rejected(a->metrics, METRICS_REJECT_OVER_BUDGET);
        stream_finish(s, GRPC_UNAVAILABLE,
                      "the answers do not fit the server's max_inflight_bytes now; retry later");
        return;
    }
    uint8_t *o = realloc(s->out, s->out_len + n);
    if (!o) {
        budget_release(&a->mem, n);
        free(msg);
        stream_finish(s, GRPC_INTERNAL, "out of memory");
        return;
    }
    s->out = o;
    grpc_prefix_write(o + s->out_len, (uint32_t)len);
    memcpy(o + s->out_len + GRPC_PREFIX, msg, len);
    s->out_len += n;
    s->out_reserved += n;
    free(msg);
    if (s->resp_started) {
        resume(s);
        return;
    }
    s->resp_started = 1;
    s->status = GRPC_OK;
    nghttp2_nv nva[2] = {NV(":status", "200"), NV("content-type", "application/grpc")};
    nghttp2_data_provider dp = {.source.ptr = s, .read_callback = read_out};
    if (nghttp2_submit_response(s->c->h2, s->id, nva, 2, &dp) != 0)
        s->c->dead = 1;
}

/* Runs the stream's next message when none is in flight; ends the stream
 * once the client has finished and every message is answered. */
static void stream_pump(gstream *s) {
    app *a = s->c->srv->a;
    while (!s->call && !s->out_done && !s->answered) {
        if (s->pending) {
            gmsg *m = s->pending;
            if (!(s->pending = m->next))
                s->pending_tail = &s->pending;
            s->npending--;
            s->pending_bytes -= m->len;
            free(s->dmsg); /* a message an error left behind */
            budget_release(&a->mem, s->dreserved);
            s->dmsg = m->msg;
            s->dlen = m->len;
            s->dreserved = m->reserved;
            free(m);
            s->counted = 1; /* its messages are counted one by one */
            grpc_dispatch(s);
            continue;
        }
        if (s->remote_done)
            stream_finish(s, GRPC_OK, NULL);
        break;
    }
}

/* A complete message of a ModelStreamInfer stream. */
static void stream_message(gstream *s) {
    char msg[200];
    gmsg *m = calloc(1, sizeof(*m));
    if (!m || s->npending >= GRPC_STREAM_PENDING ||
        s->pending_bytes + s->len > (uint64_t)grpc_msg_max(s->c->srv)) {
        free(m);
        snprintf(msg, sizeof msg,
                 "more than %d messages or max_body_bytes wait on this stream; send the next "
                 "after an answer",
                 GRPC_STREAM_PENDING);
        stream_finish(s, m ? GRPC_RESOURCE_EXHAUSTED : GRPC_INTERNAL, msg);
        return;
    }
    m->msg = s->msg;
    m->len = s->len;
    m->reserved = s->msg_reserved;
    s->msg = NULL;
    s->msg_reserved = 0;
    if (!s->pending_tail)
        s->pending_tail = &s->pending;
    *s->pending_tail = m;
    s->pending_tail = &m->next;
    s->npending++;
    s->pending_bytes += m->len;
    stream_pump(s);
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *ud) {
    gconn *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    app *a = c->srv->a;
    /* the stream's own state is in the budget too (128 per connection), or
     * while the budget is full in the connection's base, so that health
     * checks are answered and requests refused with a status */
    int from_base = 0;
    if (budget_reserve(&a->mem, sizeof(gstream))) {
        if (c->base + sizeof(gstream) > GRPC_CONN_BASE)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* nghttp2 resets the stream */
        from_base = 1;
        c->base += sizeof(gstream);
    }
    gstream *s = calloc(1, sizeof(*s));
    if (!s) {
        if (from_base)
            c->base -= sizeof(gstream);
        else
            budget_release(&a->mem, sizeof(gstream));
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    s->from_base = from_base;
    metrics_inflight_add(a->metrics, 1);
    s->c = c;
    s->id = f->hd.stream_id;
    s->model = -1;
    s->enc_identity = 1;
    s->timeout_ns = -1;
    s->t0_ns = s->t_last = now_ns();
    snprintf(s->path, sizeof s->path, "-");
    snprintf(s->rid, sizeof s->rid, "%016llx%08llx", (unsigned long long)a->id_seed,
             (unsigned long long)atomic_fetch_add(&a->next_id, 1));
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->nstreams++;
    nghttp2_session_set_stream_user_data(h2, s->id, s);
    return 0;
}

static int hdr_is(const uint8_t *n, size_t nl, const char *want) {
    return nl == strlen(want) && !memcmp(n, want, nl);
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *ud) {
    gconn *c = ud;
    (void)flags;
    gstream *s = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!s || f->hd.type != NGHTTP2_HEADERS)
        return 0;
    s->hdr_bytes += nl + vl + 32;
    if (s->hdr_bytes > GRPC_MAX_HEADER_LIST) /* nghttp2 resets the stream */
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers of the request carry nothing we use */
    if (hdr_is(name, nl, ":path")) {
        snprintf(s->path, sizeof s->path, "%.*s", (int)(vl < 127 ? vl : 127), (const char *)value);
        s->method = grpc_method_of((const char *)value, vl);
        s->path_ok |= 1;
    } else if (hdr_is(name, nl, ":method")) {
        if (vl == 4 && !memcmp(value, "POST", 4))
            s->path_ok |= 2;
    } else if (hdr_is(name, nl, "content-type")) {
        static const char ct[] = "application/grpc";
        size_t l = sizeof ct - 1;
        s->ct_ok =
            vl >= l && !memcmp(value, ct, l) && (vl == l || value[l] == '+' || value[l] == ';');
    } else if (hdr_is(name, nl, "grpc-encoding")) {
        snprintf(s->enc, sizeof s->enc, "%.*s", (int)(vl < 31 ? vl : 31), (const char *)value);
        s->enc_identity = vl == 8 && !memcmp(value, "identity", 8);
    } else if (hdr_is(name, nl, "grpc-timeout")) {
        if (grpc_timeout_parse((const char *)value, vl, &s->timeout_ns))
            s->bad_timeout = 1;
    } else if (hdr_is(name, nl, "authorization")) {
        const char *key = c->srv->cfg->api_key;
        char v[600];
        if (vl < sizeof v) {
            memcpy(v, value, vl);
            v[vl] = 0;
            s->auth_ok = key[0] && auth_token_ok(key, v);
        }
    } else if (hdr_is(name, nl, "x-request-id")) {
        int ok = vl > 0 && vl < sizeof s->rid;
        for (size_t i = 0; ok && i < vl; i++)
            ok = value[i] > 0x20 && value[i] < 0x7F && value[i] != '"' && value[i] != '\\';
        if (ok)
            snprintf(s->rid, sizeof s->rid, "%.*s", (int)vl, (const char *)value);
    }
    return 0;
}

/* Headers are in: what can be refused before the message is read. */
static void check_headers(gstream *s) {
    const cfg_t *cfg = s->c->srv->cfg;
    char msg[300];
    if (s->path_ok != 3) {
        answer_http(s, "405");
        return;
    }
    if (!s->ct_ok) {
        answer_http(s, "415");
        return;
    }
    if (s->method == GM_UNKNOWN) {
        snprintf(msg, sizeof msg, "unknown method %s", s->path);
        grpc_answer(s, GRPC_UNIMPLEMENTED, msg, NULL, 0);
        return;
    }
    if (cfg->api_key[0] && !s->auth_ok && !grpc_method_open(s->method)) {
        grpc_answer(s, GRPC_UNAUTHENTICATED,
                    "this server needs 'authorization: Bearer <api_key>' metadata", NULL, 0);
        return;
    }
    if (s->bad_timeout) {
        grpc_answer(s, GRPC_INVALID_ARGUMENT, "malformed grpc-timeout", NULL, 0);
        return;
    }
    s->streaming = s->method == GM_MODEL_STREAM_INFER;
    /* A stream that began before the drain is accepted even if its message
     * is still arriving when the drain begins (as an HTTP upload is): its
     * count in app.work makes the drain wait for it. Count first, then look
     * at the flag, as reqbase_gate does. Streams opened later are refused
     * (UNAVAILABLE) and lie past the GOAWAY's last-stream-id. */
    app *a = s->c->srv->a;
    if (s->method == GM_MODEL_INFER) {
        atomic_fetch_add(&a->work, 1);
        s->admitted = 1;
    }
    if (atomic_load(&a->draining))
        unadmit(s);
    else if (s->id > s->c->last_admitted)
        s->c->last_admitted = s->id;
}

/* The request stream ended: dispatch its one message. */
static void end_of_request(gstream *s) {
    if (s->streaming && !s->answered) {
        s->remote_done = 1;
        if (s->npre || s->have_len)
            stream_finish(s, GRPC_INVALID_ARGUMENT, "the last request message is truncated");
        else
            stream_pump(s);
        return;
    }
    if (s->discard || s->answered || s->dispatched)
        return;
    if (s->nmsgs == 0) {
        grpc_answer(s, GRPC_INVALID_ARGUMENT,
                    s->npre || s->have_len ? "the request message is truncated"
                                           : "no request message",
                    NULL, 0);
        return;
    }
    s->dispatched = 1;
    grpc_dispatch(s);
}

/* Message bytes of a stream: the prefix is checked before anything is
 * buffered; a unary RPC takes exactly one message. */
static void feed(gstream *s, const uint8_t *d, size_t n) {
    app *a = s->c->srv->a;
    char msg[300];
    while (n && !s->discard) {
        if (!s->have_len) {
            if (s->nmsgs && !s->streaming) {
                grpc_answer(s, GRPC_INVALID_ARGUMENT,
                            "more than one request message on a unary RPC", NULL, 0);
                return;
            }
            size_t k = GRPC_PREFIX - (size_t)s->npre;
            if (k > n)
                k = n;
            memcpy(s->pre + s->npre, d, k);
            s->npre += (int)k;
            d += k;
            n -= k;
            if (s->npre < GRPC_PREFIX)
                return;
            int compressed;
            if (grpc_prefix_parse(s->pre, &compressed, &s->len)) {
                grpc_answer(s, GRPC_INVALID_ARGUMENT, "bad message prefix (flag not 0 or 1)", NULL,
                            0);
                return;
            }
            if (compressed) {
                snprintf(msg, sizeof msg,
                         "compressed messages (grpc-encoding '%s') are not supported; send "
                         "them uncompressed (identity)",
                         s->enc[0] ? s->enc : "");
                grpc_answer(s, GRPC_UNIMPLEMENTED, msg, NULL, 0);
                return;
            }
            if ((int64_t)s->len > grpc_msg_max(s->c->srv)) {
                metrics_rejected(a->metrics, METRICS_REJECT_BODY_TOO_LARGE);
                snprintf(msg, sizeof msg,
                         "the request message is %u bytes, over max_body_bytes (%lld)", s->len,
                         (long long)grpc_msg_max(s->c->srv));
                grpc_answer(s, GRPC_RESOURCE_EXHAUSTED, msg, NULL, 0);
                return;
            }
            if (budget_reserve(&a->mem, s->len)) {
                metrics_rejected(a->metrics, METRICS_REJECT_OVER_BUDGET);
                grpc_answer(s, GRPC_UNAVAILABLE,
                            "the server holds as many request bytes as max_inflight_bytes "
                            "allows; retry",
                            NULL, 0);
                return;
            }
            s->msg_reserved = s->len;
            if (!(s->msg = malloc(s->len ? s->len : 1))) {
                grpc_answer(s, GRPC_INTERNAL, "out of memory", NULL, 0);
                return;
            }
            s->have_len = 1;
            s->got = 0;
        }
        size_t k = s->len - s->got;
        if (k > n)
            k = n;
        memcpy(s->msg + s->got, d, k);
        s->got += k;
        d += k;
        n -= k;
        if (s->got == s->len) {
            s->nmsgs++;
            s->have_len = 0;
            s->npre = 0;
            if (s->streaming)
                stream_message(s);
        }
    }
}

static int on_data(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *d, size_t n,
                   void *ud) {
    (void)flags;
    (void)ud;
    gstream *s = nghttp2_session_get_stream_user_data(h2, id);
    if (s) {
        s->t_last = now_ns();
        feed(s, d, n);
    }
    return 0;
}

/* Rapid reset (CVE-2023-44487): a token bucket of the peer's resets. */
static int reset_seen(gconn *c) {
    int64_t t = now_ns();
    c->reset_tokens += (double)(t - c->reset_t) / 1e9 * GRPC_RESET_RATE;
    if (c->reset_tokens > GRPC_RESET_BURST)
        c->reset_tokens = GRPC_RESET_BURST;
    c->reset_t = t;
    c->reset_tokens -= 1;
    return c->reset_tokens < 0;
}

static int on_frame(nghttp2_session *h2, const nghttp2_frame *f, void *ud) {
    gconn *c = ud;
    if (f->hd.type == NGHTTP2_RST_STREAM) {
        if (reset_seen(c)) {
            log_msg(LOG_WARN, "grpc: too many stream resets, closing the connection", c->ip);
            nghttp2_session_terminate_session(h2, NGHTTP2_ENHANCE_YOUR_CALM);
        }
        return 0;
    }
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    gstream *s = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!s)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
        check_headers(s);
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
        end_of_request(s);
    return 0;
}

/* An answer that ended the stream before the request did (an early error):
 * tell the peer to stop sending (RST_STREAM NO_ERROR, RFC 9113 8.1) instead
 * of reading and dropping the rest of its message. */
static int on_frame_sent(nghttp2_session *h2, const nghttp2_frame *f, void *ud) {
    (void)ud;
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        f->hd.flags & NGHTTP2_FLAG_END_STREAM &&
        nghttp2_session_get_stream_remote_close(h2, f->hd.stream_id) == 0)
        nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_close(nghttp2_session *h2, int32_t id, uint32_t err, void *ud) {
    (void)err;
    (void)ud;
    gstream *s = nghttp2_session_get_stream_user_data(h2, id);
    if (!s)
        return 0;
    nghttp2_session_set_stream_user_data(h2, id, NULL);
    stream_unlink(s);
    stream_free(s);
    return 0;
}

/* ---- connections ---- */

static void conn_free(gconn *c) {
    grpc_server *srv = c->srv;
    /* nghttp2_session_del does not call on_close: detach the streams first */
    while (c->streams) {
        gstream *s = c->streams;
        stream_unlink(s);
        stream_free(s);
    }
    nghttp2_session_del(c->h2);
    if (c->tls)
        gnutls_deinit(c->tls);
    if (c->fd >= 0) {
        epoll_ctl(srv->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    if (c->prev)
        c->prev->next = c->next;
    else if (srv->conns == c)
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    free(c->wbuf);
    free(c);
}

static gconn *conn_new(grpc_server *srv, int fd, const char *ip) {
    gconn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->srv = srv;
    c->fd = fd;
    snprintf(c->ip, sizeof c->ip, "%s", ip);
    c->t_open = c->t_io = c->reset_t = now_ns();
    c->reset_tokens = GRPC_RESET_BURST;
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb)) {
        free(c);
        return NULL;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_sent);
    nghttp2_option *opt;
    if (nghttp2_option_new(&opt)) {
        nghttp2_session_callbacks_del(cb);
        free(c);
        return NULL;
    }
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, GRPC_HEADER_TABLE);
    nghttp2_option_set_max_outbound_ack(opt, 1000); /* SETTINGS / PING floods */
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
    nghttp2_option_set_max_send_header_block_length(opt, 65536);
    nghttp2_mem mem = {c, m_malloc, m_free, m_calloc, m_realloc};
    int rc = nghttp2_session_server_new3(&c->h2, cb, c, opt, &mem);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    if (rc) {
        free(c);
        return NULL;
    }
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, GRPC_MAX_STREAMS},
                                   {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, GRPC_MAX_HEADER_LIST},
                                   {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, GRPC_HEADER_TABLE},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, GRPC_STREAM_WINDOW},
                                   {NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
    nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, GRPC_CONN_WINDOW);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    return c;
}

static void set_events(gconn *c, int ev) {
    if (c->fake || c->events == ev)
        return;
    struct epoll_event e = {.events = (uint32_t)ev, .data.ptr = c};
    epoll_ctl(c->srv->ep, EPOLL_CTL_MOD, c->fd, &e);
    c->events = ev;
}

/* Writes n bytes: the count written, 0 when the socket is full, -1 on error. */
static ssize_t raw_write(gconn *c, const uint8_t *p, size_t n) {
    if (c->tls) {
        ssize_t w = gnutls_record_send(c->tls, p, n);
        if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED)
            return 0;
        return w < 0 ? -1 : w;
    }
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    return w;
}

/* Moves output from nghttp2 to the socket until it is empty or the socket
 * is full (then EPOLLOUT); at most one chunk is ever buffered here. */
static void flush(gconn *c) {
    for (;;) {
        if (c->woff == c->wlen) {
            const uint8_t *p;
            ssize_t n = nghttp2_session_mem_send(c->h2, &p);
            if (n < 0) {
                c->dead = 1;
                return;
            }
            if (n == 0)
                break;
            if (c->fake)
                continue;
            uint8_t *b = realloc(c->wbuf, (size_t)n);
            if (!b) {
                c->dead = 1;
                return;
            }
            memcpy(b, p, (size_t)n);
            c->wbuf = b;
            c->wlen = (size_t)n;
            c->woff = 0;
        }
        ssize_t w = raw_write(c, c->wbuf + c->woff, c->wlen - c->woff);
        if (w < 0) {
            c->dead = 1;
            return;
        }
        if (w == 0)
            break;
        c->woff += (size_t)w;
        c->t_io = now_ns();
        c->t_stall = 0;
    }
    int pending = c->woff < c->wlen;
    if (pending && !c->t_stall)
        c->t_stall = now_ns();
    if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) && !pending) {
        c->dead = 1;
        return;
    }
    set_events(c, EPOLLIN | (pending ? EPOLLOUT : 0));
}

static void conn_input(gconn *c, const uint8_t *d, size_t n) {
    ssize_t r = nghttp2_session_mem_recv(c->h2, d, n);
    if (r < 0) {
        c->dead = 1;
        return;
    }
    c->t_io = now_ns();
}

static void conn_readable(gconn *c) {
    uint8_t buf[GRPC_READ_CHUNK];
    if (c->handshaking) {
        int rc = gnutls_handshake(c->tls);
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
            set_events(c, gnutls_record_get_direction(c->tls) ? EPOLLOUT : EPOLLIN);
            return;
        }
        gnutls_datum_t proto = {0};
        if (rc < 0 || gnutls_alpn_get_selected_protocol(c->tls, &proto) != 0 || proto.size != 2 ||
            memcmp(proto.data, "h2", 2) != 0) {
            c->dead = 1;
            return;
        }
        c->handshaking = 0;
        c->t_io = now_ns();
        set_events(c, EPOLLIN);
    }
    /* bounded (other connections get their turn; epoll is level-triggered),
     * except for records GnuTLS already holds: epoll cannot see those */
    for (int i = 0; !c->dead && (i < 16 || (c->tls && gnutls_record_check_pending(c->tls))); i++) {
        ssize_t n;
        if (c->tls) {
            n = gnutls_record_recv(c->tls, buf, sizeof buf);
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
                break;
            if (n < 0 && n != GNUTLS_E_REHANDSHAKE) {
                c->dead = 1;
                break;
            }
            if (n < 0)
                continue;
        } else {
            n = recv(c->fd, buf, sizeof buf, 0);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                break;
        }
        if (n <= 0) {
            c->dead = 1;
            break;
        }
        conn_input(c, buf, (size_t)n);
        if ((size_t)n < sizeof buf && !c->tls)
            break;
    }
}

/* ---- completions (any thread -> the loop) ---- */

void grpc_server_wake(req_base *b) {
    grpc_call *call = (grpc_call *)b;
    grpc_server *srv = call->srv;
    pthread_mutex_lock(&srv->mu);
    call->next_done = srv->done;
    srv->done = call;
    pthread_mutex_unlock(&srv->mu);
    uint64_t one = 1;
    if (srv->evfd >= 0 && write(srv->evfd, &one, sizeof one) < 0) {
        /* the counter is saturated: the loop is already woken */
    }
}

void grpc_server_call_add(grpc_server *srv) {
    atomic_fetch_add(&srv->calls, 1);
}

static void call_free(grpc_call *c) {
    app *a = c->srv->a;
    atomic_fetch_sub(&c->srv->calls, 1);
    reqbase_done(&c->b, 0);
    grpc_call_free_service(c);
    free(c->msg);
    budget_release(&a->mem, c->msg_reserved + c->unpack_reserved);
    free(c);
}

static void drain_done(grpc_server *srv) {
    pthread_mutex_lock(&srv->mu);
    grpc_call *list = srv->done;
    srv->done = NULL;
    pthread_mutex_unlock(&srv->mu);
    while (list) {
        grpc_call *c = list;
        list = c->next_done;
        reqbase_collect(&c->b);
        gstream *s = c->s;
        if (s) {
            s->call = NULL;
            c->s = NULL;
            grpc_call_finish(c, s);
            if (s->streaming)
                stream_pump(s);
            if (!s->c->dead)
                flush(s->c);
        }
        call_free(c);
    }
}

/* ---- the loop ---- */

static void accept_all(grpc_server *srv) {
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(srv->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* the listener would stay readable: pause it instead of spinning */
                epoll_ctl(srv->ep, EPOLL_CTL_DEL, srv->lfd, NULL);
                srv->accept_paused = now_ns() + 100000000;
                log_msg(LOG_WARN, "grpc: cannot accept (out of file descriptors or memory)",
                        strerror(errno));
            }
            return;
        }
        char ip[64] = "";
        getnameinfo((struct sockaddr *)&ss, sl, ip, sizeof ip, NULL, 0, NI_NUMERICHOST);
        int same = 0;
        for (gconn *c = srv->conns; c; c = c->next)
            same += !strcmp(c->ip, ip);
        long per_ip = (long)srv->cfg->max_connections_per_ip;
        if (srv->nconns >= srv->cfg->max_connections || (per_ip > 0 && same >= per_ip)) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        gconn *c = conn_new(srv, fd, ip);
        if (!c) {
            close(fd);
            continue;
        }
        if (srv->tls) {
            if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK) ||
                gnutls_priority_set(c->tls, srv->prio) ||
                gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, srv->cred)) {
                conn_free(c);
                continue;
            }
            gnutls_datum_t h2 = {(unsigned char *)"h2", 2};
            gnutls_alpn_set_protocols(c->tls, &h2, 1, GNUTLS_ALPN_MANDATORY);
            gnutls_transport_set_int(c->tls, fd);
            gnutls_handshake_set_timeout(c->tls, 0);
            c->handshaking = 1;
        }
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        c->events = EPOLLIN;
        if (epoll_ctl(srv->ep, EPOLL_CTL_ADD, fd, &e)) {
            c->fd = -1;
            close(fd);
            conn_free(c);
            continue;
        }
        if (!srv->tls)
            flush(c); /* our SETTINGS */
    }
}

/* Streams that hold memory without progress: a request whose bytes
 * stopped coming, or an answer the peer does not take (no WINDOW_UPDATE),
 * for connection_timeout_s: reset (CANCEL). A call in flight is not timed
 * here (its deadline is). */
static void stream_timeouts(gconn *c, int64_t t, int64_t limit) {
    int reset = 0;
    for (gstream *s = c->streams; s; s = s->next)
        if (!s->call && (s->streaming || !(s->dispatched && !s->answered)) &&
            t - s->t_last > limit) {
            nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
            s->t_last = t; /* once */
            reset = 1;
        }
    if (reset)
        flush(c);
}

/* Timers: idle, stalled output, slow handshakes, stalled streams; the
 * drain's GOAWAY. */
static void tick(grpc_server *srv) {
    int64_t t = now_ns(), limit = (int64_t)srv->cfg->connection_timeout_s * 1000000000;
    int draining = atomic_load(&srv->a->draining);
    if (srv->accept_paused && t >= srv->accept_paused) {
        struct epoll_event el = {.events = EPOLLIN, .data.ptr = &srv->lfd};
        epoll_ctl(srv->ep, EPOLL_CTL_ADD, srv->lfd, &el);
        srv->accept_paused = 0;
    }
    for (gconn *c = srv->conns; c; c = c->next) {
        if (c->dead)
            continue;
        if (c->nstreams)
            stream_timeouts(c, t, limit);
        if (c->dead)
            continue;
        if (c->handshaking && t - c->t_open > limit)
            c->dead = 1;
        else if (c->t_stall && t - c->t_stall > limit)
            c->dead = 1; /* the peer does not read */
        else if (!c->nstreams && t - c->t_io > limit && !c->handshaking) {
            nghttp2_session_terminate_session(c->h2, NGHTTP2_NO_ERROR);
            flush(c);
            c->dead = 1;
        } else if (draining && !c->goaway && !c->handshaking) {
            c->goaway = 1;
            nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, c->last_admitted, NGHTTP2_NO_ERROR,
                                  NULL, 0);
            flush(c);
        }
    }
}

static void reap(grpc_server *srv) {
    for (gconn *c = srv->conns, *n; c; c = n) {
        n = c->next;
        if (c->dead)
            conn_free(c);
    }
}

static void *loop(void *arg) {
    grpc_server *srv = arg;
    struct epoll_event ev[64];
    int64_t last_tick = 0;
    while (!atomic_load(&srv->stop)) {
        int n = epoll_wait(srv->ep, ev, 64, 100);
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;
            if (p == &srv->lfd) {
                accept_all(srv);
            } else if (p == &srv->evfd) {
                uint64_t v;
                if (read(srv->evfd, &v, sizeof v) < 0) {
                    /* nothing to read: spurious */
                }
                drain_done(srv);
            } else {
                gconn *c = p;
                if (c->dead)
                    continue;
                if (ev[i].events & (EPOLLERR | EPOLLHUP) && !(ev[i].events & EPOLLIN)) {
                    c->dead = 1;
                    continue;
                }
                if (c->handshaking || ev[i].events & EPOLLIN)
                    conn_readable(c);
                if (!c->dead && !c->handshaking)
                    flush(c);
            }
        }
        drain_done(srv);
        int64_t t = now_ns();
        if (t - last_tick > 100000000) {
            tick(srv);
            last_tick = t;
        }
        reap(srv);
    }
    /* stopping: the answers already submitted go out (up to 1 s), then
     * every connection closes */
    drain_done(srv);
    for (int round = 0; round < 100; round++) {
        int pending = 0;
        for (gconn *c = srv->conns; c; c = c->next) {
            if (c->dead || c->fake || c->handshaking)
                continue;
            if (!c->goaway) {
                c->goaway = 1;
                nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, c->last_admitted, NGHTTP2_NO_ERROR,
                                      NULL, 0);
            }
            flush(c);
            pending |= !c->dead && (c->woff < c->wlen || nghttp2_session_want_write(c->h2));
        }
        if (!pending)
            break;
        epoll_wait(srv->ep, ev, 64, 10);
    }
    while (srv->conns)
        conn_free(srv->conns);
    drain_done(srv);
    return NULL;
}

/* ---- start / stop ---- */

static int listen_on(const char *host, int port, char *err, size_t err_len) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc) {
        snprintf(err, err_len, "grpc_host '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 1024)) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, err_len, "grpc_port: cannot listen on %s:%d (%s)", host, port,
                 strerror(errno));
    return fd;
}

static grpc_server *server_new(app *a) {
    grpc_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    srv->a = a;
    srv->cfg = a->cfg;
    srv->lfd = srv->ep = srv->evfd = -1;
    pthread_mutex_init(&srv->mu, NULL);
    return srv;
}

static void server_free(grpc_server *srv) {
    if (srv->lfd >= 0)
        close(srv->lfd);
    if (srv->evfd >= 0)
        close(srv->evfd);
    if (srv->ep >= 0)
        close(srv->ep);
    if (srv->cred)
        gnutls_certificate_free_credentials(srv->cred);
    if (srv->prio)
        gnutls_priority_deinit(srv->prio);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}

grpc_server *grpc_start(app *a, const char *host, int port, char *err, size_t err_len) {
    grpc_server *srv = server_new(a);
    if (!srv) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    const cfg_t *cfg = a->cfg;
    if (cfg->tls_cert[0]) {
        int rc = gnutls_certificate_allocate_credentials(&srv->cred);
        if (!rc)
            rc = gnutls_certificate_set_x509_key_file(srv->cred, cfg->tls_cert, cfg->tls_key,
                                                      GNUTLS_X509_FMT_PEM);
        if (rc < 0) {
            snprintf(err, err_len, "grpc: tls_cert/tls_key unusable: %s", gnutls_strerror(rc));
            server_free(srv);
            return NULL;
        }
        const char *where = NULL;
        rc = gnutls_priority_init(&srv->prio, cfg->tls_priorities[0] ? cfg->tls_priorities : NULL,
                                  &where);
        if (rc < 0) {
            srv->prio = NULL;
            snprintf(err, err_len, "tls_priorities: %s", gnutls_strerror(rc));
            server_free(srv);
            return NULL;
        }
        srv->tls = 1;
    }
    if ((srv->lfd = listen_on(host, port, err, err_len)) < 0) {
        server_free(srv);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(srv->lfd, (struct sockaddr *)&ss, &sl);
    srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    srv->ep = epoll_create1(EPOLL_CLOEXEC);
    srv->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event el = {.events = EPOLLIN, .data.ptr = &srv->lfd};
    struct epoll_event ee = {.events = EPOLLIN, .data.ptr = &srv->evfd};
    if (srv->ep < 0 || srv->evfd < 0 || epoll_ctl(srv->ep, EPOLL_CTL_ADD, srv->lfd, &el) ||
        epoll_ctl(srv->ep, EPOLL_CTL_ADD, srv->evfd, &ee)) {
        snprintf(err, err_len, "grpc: epoll: %s", strerror(errno));
        server_free(srv);
        return NULL;
    }
    if (pthread_create(&srv->th, NULL, loop, srv)) {
        snprintf(err, err_len, "grpc: cannot start its thread");
        server_free(srv);
        return NULL;
    }
    srv->started = 1;
    return srv;
}

int grpc_port(const grpc_server *s) {
    return s->port;
}

void grpc_stop(grpc_server *srv) {
    if (!srv)
        return;
    if (srv->started) {
        atomic_store(&srv->stop, 1);
        uint64_t one = 1;
        if (write(srv->evfd, &one, sizeof one) < 0) {
            /* the loop wakes at its next 100 ms tick anyway */
        }
        pthread_join(srv->th, NULL);
    }
    server_free(srv);
}

/* ---- fuzzing (tests/fuzz/fuzz_grpc.c): one connection without a socket ---- */

grpc_server *grpc_fuzz_server(app *a);
void grpc_fuzz_input(grpc_server *srv, const uint8_t *d, size_t n);
void grpc_fuzz_free(grpc_server *srv);

grpc_server *grpc_fuzz_server(app *a) {
    return server_new(a);
}

/* Feeds d as the whole input of a fresh connection; output is discarded. */
void grpc_fuzz_input(grpc_server *srv, const uint8_t *d, size_t n) {
    gconn *c = conn_new(srv, -1, "fuzz");
    if (!c)
        return;
    c->fake = 1;
    flush(c);
    for (size_t off = 0; off < n && !c->dead;) { /* in pieces, as a socket delivers */
        size_t k = n - off < 1000 ? n - off : 1000;
        conn_input(c, d + off, k);
        off += k;
        flush(c);
        drain_done(srv);
    }
    /* the calls come back through the decode pool, the queue and a worker:
     * answer them on the open connection (up to 5 s), as a client would wait */
    for (int i = 0; i < 5000 && !c->dead && atomic_load(&srv->calls) > 0; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        drain_done(srv);
        flush(c);
    }
    conn_free(c);
    for (int i = 0; i < 5000 && atomic_load(&srv->calls) > 0; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        drain_done(srv);
    }
    drain_done(srv);
}

void grpc_fuzz_free(grpc_server *srv) {
    server_free(srv);
}
