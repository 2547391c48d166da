/*
 * fuzz_request.c — libFuzzer target over the request path: raw HTTP bytes
 * (request line, query parameters, headers, raw or chunked bodies,
 * multipart/form-data) through the server's real code: http.c (the
 * libmicrohttpd adapter and its multipart post processor), routes.c (routing,
 * top_k, timeouts, image decode, queue, suspend/resume, JSON bodies), queue,
 * worker pool and metrics.
 *
 * Why a loopback socket: libmicrohttpd parses requests only from a
 * connection (its post processor reads the Content-Type of an
 * MHD_Connection), so there is no socket-free entry point into the code the
 * server runs. The target therefore starts ONE in-process server on
 * 127.0.0.1 (any free port) at the first input, with the real route hooks and
 * a fake engine behind the worker pool (outputs are a function of the input
 * tensor), and sends each input over a fresh TCP connection, half-closes it
 * and reads the answer. Checks: the server always answers with HTTP (or
 * closes), and every response of ours with a 4xx/5xx status has a JSON
 * error body; ASan/UBSan watch everything in between.
 */
#include "app.h"
#include "fuzz_fake.h"
#include "registry.h"
#include "log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NCLASSES 10

typedef struct {
    cfg_t cfg;
    app a;
    app_model m;
    http_server *h;
    int port;
} fixture;

static fixture *fx;

static fixture *setup(void) {
    static fixture f;
    char err[256];
    signal(SIGPIPE, SIG_IGN);
    cfg_defaults(&f.cfg);
    f.cfg.log_level = LOG_ERROR;
    log_set_level(LOG_ERROR); /* no access log per input */
    f.cfg.max_body_bytes = 1 << 20;
    f.cfg.max_image_pixels = 1 << 20;
    f.cfg.request_timeout_ms = 2000;
    f.a.cfg = &f.cfg;
    model_config *mc = &f.m.mc;
    snprintf(mc->name, sizeof mc->name, "m");
    mc->input = img_default_params();
    mc->input.color = IMG_COLOR_GRAY;
    mc->input.resize = 8;
    mc->input.crop_h = mc->input.crop_w = 8;
    mc->max_batch = 4;
    f.m.info = (engine_model_info){1, 8, 8, NCLASSES, 0, 4};
    f.m.max_batch = 4;
    f.m.workers = f.m.threads = 1;
    f.m.in_floats = 64;
    const char *names[] = {"m"};
    if (!(f.a.metrics = metrics_create(names, 1, 4)))
        abort();
    f.m.metrics = f.a.metrics;
    if (registry_adopt(&f.a, &f.m)) /* the one model, version 1 */
        abort();
    if (!(f.m.q = queue_create(64, NULL, NULL)))
        abort();
    workers_params bp = {f.m.q,
                         1,
                         4,
                         200000,
                         f.m.in_floats,
                         NCLASSES,
                         fuzz_fake_ctx_create,
                         fuzz_fake_run,
                         fuzz_fake_ctx_free,
                         &f.m,
                         f.a.metrics,
                         0};
    if (!(f.m.pool = workers_start(&bp, err, sizeof err)))
        abort();
    while (workers_ready(f.m.pool, err, sizeof err) == 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&f.a.ready, 1);
    http_config hc = {"127.0.0.1",
                      0,
                      2,    /* HTTP threads */
                      4096, /* connections */
                      1,    /* idle timeout, s */
                      (size_t)f.cfg.max_body_bytes,
                      routes_on_headers, /* as server.c: the route table (auth open here) */
                      routes_on_body,
                      routes_on_complete,
                      &f.a,
                      NULL,
                      NULL,
                      0,
                      NULL, /* no budget */
                      NULL,
                      1}; /* chunked bodies allowed: libmicrohttpd's chunk parser stays fuzzed */
    if (!(f.h = http_start(&hc, err, sizeof err))) {
        fprintf(stderr, "fuzz_request: %s\n", err);
        abort();
    }
    f.port = http_port(f.h);
    return &f;
}

/* Reads until EOF, a full buffer, 3 s of silence before the first byte or
 * 20 ms after the last one (libmicrohttpd may keep a half-closed
 * connection open until its timeout once it has answered). Returns bytes read. */
static size_t read_all(int fd, char *buf, size_t cap) {
    size_t n = 0;
    while (n < cap) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, n ? 20 : 300) <= 0)
            break;
        ssize_t got = recv(fd, buf + n, cap - n, 0);
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    return n;
}

/* Every response in buf: HTTP status line; our 4xx/5xx carry a JSON error. */
static void check_responses(const char *buf, size_t n) {
    const char *p = buf, *end = buf + n;
    while (p < end) {
        if ((size_t)(end - p) < 12)
            return; /* cut short: the connection closed mid-way */
        if (memcmp(p, "HTTP/1.", 7) != 0)
            abort();
        int status = atoi(p + 9);
        if (status < 100 || status > 599)
            abort();
        const char *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!hend)
            return;
        const char *cl = memmem(p, (size_t)(hend - p), "Content-Length: ", 16);
        /* libmicrohttpd's own answers to malformed HTTP are HTML, close the
         * connection and are not ours to check (0.9.75 even repeats its
         * header block for a bad Content-Length such as "+5") */
        if (memmem(p, (size_t)(hend - p), "X-Request-Id", 12) == NULL)
            return;
        if (!cl)
            abort(); /* ours always carry a Content-Length */
        size_t blen = (size_t)strtoul(cl + 16, NULL, 10);
        const char *body = hend + 4;
        if ((size_t)(end - body) >= 7 && memcmp(body, "HTTP/1.", 7) == 0) {
            p = body; /* the answer to a HEAD: its Content-Length, no body */
            continue;
        }
        if (body + blen > end)
            return;
        /* errors are {"error": ...}; TorchServe's routes answer with
         * TorchServe's own shape, {"code": N, "type": ..., "message": ...} */
        if (status >= 400 && (blen < 10 || (memcmp(body, "{\"error\":", 9) != 0 &&
                                            memcmp(body, "{\"code\":", 8) != 0)))
            abort();
        p = body + blen;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fx)
        fx = setup();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)fx->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return 0;
    }
    size_t off = 0;
    while (off < size) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server closed early (a 413 or a parse error) */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    static char buf[1 << 20];
    size_t n = read_all(fd, buf, sizeof buf);
    /* reset, not FIN: the server drops the connection at once instead of at
     * its idle timeout, so connections do not pile up between inputs */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    check_responses(buf, n);
    return 0;
}
