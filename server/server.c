/*
 * server.c — lifecycle: models -> queues -> HTTP -> workers (warm-up) ->
 * ready -> signal -> drain. Signals are blocked in every thread and taken
 * synchronously by the main thread with sigtimedwait, so no handler runs in
 * an arbitrary thread.
 */
#include "server.h"

#include "app.h"
#include "auth.h"
#include "grpc_server.h"
#include "json.h"
#include "log.h"
#include "registry.h"

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int server_default_model(const char *name, char *buf, size_t len) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = 0;
    const char *sub[] = {"/../models/", "/models/", "/../share/resnetd/models/"};
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
        struct stat st;
        int w = snprintf(buf, len, "%s%s%s", exe, sub[i], name);
        if (w > 0 && (size_t)w < len && stat(buf, &st) == 0)
            return 0;
    }
    return -1;
}

/* Waits for a signal or `ms` milliseconds. Returns the signal or 0. */
static int wait_signal(const sigset_t *set, long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    int sig = sigtimedwait(set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

static long elapsed_ms(int64_t since_ns) {
    return (long)((queue_now_ns() - since_ns) / 1000000);
}

/* SIGTERM/SIGINT: /readyz turns 503 at once and new classify requests get
 * 503 "draining" (the listener stays open so load balancers can see the 503;
 * no new work is accepted); the requests accepted before finish; what is
 * still queued at drain_timeout_ms is answered 503 instead of being run. */
static void drain(app *a) {
    int64_t t0 = queue_now_ns();
    atomic_store(&a->draining, 1);
    registry_flush(a); /* nothing more will come to fill a batch */
    log_msg(LOG_INFO, "draining", NULL);
    long drain_ms = (long)a->cfg->drain_timeout_ms;
    /* keep a slice of the drain time for aborting the queue and stopping threads */
    long soft = drain_ms > 200 ? drain_ms - drain_ms / 10 : drain_ms / 2;
    while (atomic_load(&a->work) > 0 && elapsed_ms(t0) < soft) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&a->work) > 0) {
        log_msg(LOG_WARN, "drain timeout: answering queued work with 503", NULL);
        registry_abort(a);
        while (atomic_load(&a->work) > 0 && elapsed_ms(t0) < drain_ms) {
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
    }
}

/* Raises the soft limit on open files to what the configuration can use:
 * every connection, every lingering socket (linger.h), plus slack for model
 * files, the listen socket, epoll and pipes. A hard limit below that is only
 * reported: connections past it are refused at accept, not a crash. */
static void raise_fd_limit(const cfg_t *c) {
    struct rlimit rl;
    /* the gRPC port has its own max_connections */
    rlim_t want = (rlim_t)c->max_connections * (c->grpc_port >= 0 ? 2 : 1) + 256 + 128;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= want)
        return;
    char msg[160];
    snprintf(msg, sizeof msg,
             "open-file limit %llu (hard %llu) is below the %llu that "
             "max_connections needs; raise it (ulimit -n)",
             (unsigned long long)(rl.rlim_cur > old ? rl.rlim_cur : old),
             (unsigned long long)rl.rlim_max, (unsigned long long)want);
    log_msg(LOG_WARN, "file descriptors", msg);
}

int server_run(const cfg_t *c) {
    grpc_server *g = NULL;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);                /* rescans the models (registry.h) */
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited by every thread started below */
    log_set_level((int)c->log_level);
    signal(SIGPIPE, SIG_IGN);

    app a;
    memset(&a, 0, sizeof a);
    a.cfg = c;
    a.id_seed = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL);
    char err[512] = "";
    if (http_tls_priorities_check(c->tls_priorities, err, sizeof err)) { /* before any model */
        log_msg(LOG_ERROR, "bad configuration", err);
        return 2;
    }
    raise_fd_limit(c);
    int rc = 1;
    budget_init(&a.mem, (uint64_t)c->max_inflight_bytes);
    if (!(a.metrics = metrics_create(NULL, 0, (int)(c->max_batch ? c->max_batch : 64)))) {
        log_msg(LOG_ERROR, "out of memory", NULL);
        return 1;
    }
    metrics_set_budget(a.metrics, &a.mem);
    int lm = registry_start(&a, err, sizeof err); /* loads the models, workers warming */
    if (lm) {
        log_msg(LOG_ERROR, lm == 2 ? "bad configuration" : "cannot load model", err);
        rc = lm == 2 ? 2 : 1; /* a configuration error exits 2, as a bad option does */
        goto out;
    }
    {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        int threads = c->decode_threads ? (int)c->decode_threads : (int)(cores > 0 ? cores : 1);
        /* a request waiting for a decode thread is held like an image waiting
         * for inference: queue_capacity of them at most */
        if (!(a.decode = decode_start(threads, (int)c->queue_capacity, err, sizeof err))) {
            log_msg(LOG_ERROR, "cannot start the decode pool", err);
            goto out;
        }
    }
    http_config hc = {c->host,
                      (int)c->port,
                      (int)c->http_threads,
                      (int)c->max_connections,
                      (int)c->connection_timeout_s,
                      (size_t)c->max_body_bytes,
                      auth_on_headers, /* the bearer-token gate, then the routes */
                      auth_on_body,
                      auth_on_complete,
                      &a,
                      c->tls_cert[0] ? c->tls_cert : NULL,
                      c->tls_key[0] ? c->tls_key : NULL,
                      (int)c->max_connections_per_ip,
                      &a.mem,
                      c->tls_priorities,
                      (int)c->allow_chunked};
    http_server *h = http_start(&hc, err, sizeof err);
    if (!h) {
        log_msg(LOG_ERROR, "cannot start HTTP", err);
        goto out;
    }
    char where[300];
    snprintf(where, sizeof where, "%s:%d", c->host, http_port(h));
    log_msg(LOG_INFO, "listening", where);
    if (c->grpc_port >= 0) { /* the gRPC port (server/grpc/, docs/grpc.md) */
        const char *gh = c->grpc_host[0] ? c->grpc_host : c->host;
        if (!(g = grpc_start(&a, gh, (int)c->grpc_port, err, sizeof err))) {
            log_msg(LOG_ERROR, "cannot start gRPC", err);
            http_quiesce(h);
            http_stop(h);
            goto out;
        }
        char gwhere[300];
        snprintf(gwhere, sizeof gwhere, "%s:%d", gh, grpc_port(g));
        log_msg(LOG_INFO, "grpc listening", gwhere);
    }
    rc = 0;
    while (rc == 0) {
        int sig = wait_signal(&set, 50);
        if (sig == SIGHUP) {
            log_msg(LOG_INFO, "SIGHUP: rescanning the models", NULL);
            registry_rescan(&a);
            continue;
        }
        if (sig) {
            log_msg(LOG_INFO, sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
            drain(&a);
            break;
        }
        if (atomic_load(&a.ready))
            continue;
        int r = registry_startup_poll(&a, err, sizeof err);
        if (r < 0) {
            log_msg(LOG_ERROR, "worker failed", err);
            rc = 1;
        } else if (r == 1) {
            atomic_store(&a.ready, 1);
            log_msg(LOG_INFO, "ready", where);
        }
    }
    registry_stop_loader(&a);
    if (rc != 0) { /* a failed start: answer what is queued, then stop */
        atomic_store(&a.draining, 1);
        registry_abort(&a);
    }
    registry_close(&a);
    /* decode jobs still running push into closed queues (503); those still
     * waiting are answered 503 without decoding */
    decode_stop(a.decode);
    a.decode = NULL;
    /* every queued item has now resumed its request; let the HTTP threads answer */
    http_quiesce(h);
    for (int w = 0; w < 200 && atomic_load(&a.work) > 0; w++) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    grpc_stop(g); /* every call has come back: the queues and the decode pool are done */
    g = NULL;
    http_stop(h);
    log_msg(LOG_INFO, "stopped", NULL);
out:
    decode_stop(a.decode);
    registry_free(&a);
    metrics_destroy(a.metrics);
    return rc;
}
