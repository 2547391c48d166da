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
#include "tuned.h"

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

/* Engine hooks for the worker pool (workers.h). */
static void *ctx_create(void *user, int worker, char *err, size_t err_len) {
    app_model *m = user;
    engine_ctx_params p = engine_ctx_default_params();
    p.threads = m->threads;
    engine_ctx *c = NULL;
    (void)worker;
    if (engine_ctx_create(m->em, &p, &c, err, err_len) != ENGINE_OK)
        return NULL;
    return c;
}

typedef struct {
    engine_ctx *c;
    int fixed;
} ctx_pair;

static int ctx_run(void *ctx, const float *in, int n, float *out, char *err, size_t err_len) {
    return engine_run(ctx, in, n, out, err, err_len) == ENGINE_OK ? 0 : -1;
}

static int ctx_run_fixed(void *ctx, const float *in, int n, float *out, char *err, size_t err_len) {
    /* a fixed-batch model always runs its full batch; rows past n are padding */
    ctx_pair *p = ctx;
    (void)n;
    return engine_run(p->c, in, p->fixed, out, err, err_len) == ENGINE_OK ? 0 : -1;
}

static void *ctx_create_fixed(void *user, int worker, char *err, size_t err_len) {
    app_model *m = user;
    ctx_pair *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    p->fixed = m->info.fixed_batch;
    if (!(p->c = ctx_create(user, worker, err, err_len))) {
        free(p);
        return NULL;
    }
    return p;
}

static void ctx_free(void *ctx) {
    engine_ctx_free(ctx);
}

static void ctx_free_fixed(void *ctx) {
    ctx_pair *p = ctx;
    engine_ctx_free(p->c);
    free(p);
}

static void depth_hook(void *arg, int delta) {
    app_model *m = arg;
    metrics_queue_depth_add(m->metrics, m->index, delta);
}

/* Collects the model paths: --model values, then model_repository's sub-directories
 * (sorted), else the bundled default. Returns the count or -1. */
static int model_paths(const cfg_t *c, char paths[][PATH_MAX], int max, char *err, size_t len) {
    int n = 0;
    for (int i = 0; i < c->num_models && n < max; i++)
        snprintf(paths[n++], PATH_MAX, "%s", c->models[i]);
    if (c->model_repository[0]) {
        struct dirent **list;
        int k = scandir(c->model_repository, &list, NULL, alphasort);
        if (k < 0) {
            snprintf(err, len, "model_repository: cannot read %.400s", c->model_repository);
            return -1;
        }
        for (int i = 0; i < k; i++) {
            char p[PATH_MAX];
            struct stat st;
            int w = snprintf(p, sizeof p, "%s/%s", c->model_repository, list[i]->d_name);
            if (w > 0 && w < (int)sizeof p && list[i]->d_name[0] != '.' && stat(p, &st) == 0 &&
                S_ISDIR(st.st_mode) && n < max)
                snprintf(paths[n++], PATH_MAX, "%s", p);
            free(list[i]);
        }
        free(list);
    }
    if (n == 0) {
        if (server_default_model("fashion-mnist", paths[0], PATH_MAX)) {
            snprintf(err, len, "model: none given and the bundled models/fashion-mnist is missing");
            return -1;
        }
        n = 1;
    }
    return n;
}

/* The tuned plan (<model dir>/tuned.json, written by bench --tune) for the
 * options the user did not set: workers, threads_per_worker, max_batch (a
 * max_batch in the model's config.json counts as set). Never fatal: a
 * malformed or foreign file is logged once and ignored. */
static void apply_tuned(const app *a, app_model *m) {
    const cfg_t *c = a->cfg;
    int own_w = !cfg_is_set(c, "workers"), own_t = !cfg_is_set(c, "threads_per_worker");
    int own_b = !cfg_is_set(c, "max_batch") && !m->mc.max_batch_set;
    if (c->tune_goal == CFG_TUNE_OFF || !(own_w || own_t || own_b))
        return;
    snprintf(m->tuned_path, sizeof m->tuned_path, "%s", m->mc.tuned_path);
    const char *base = strrchr(m->mc.onnx_path, '/');
    base = base ? base + 1 : m->mc.onnx_path;
    tuned_fingerprint here;
    tuned_fingerprint_here(m->mc.int8, engine_cpu_isa(), &here);
    tuned_plan plan;
    char err[4600], detail[4900];
    tuned_status st = tuned_load(m->tuned_path, &here, base, &plan, err, sizeof err);
    const char *goal = cfg_tune_goal_str(c->tune_goal);
    const tuned_pick *p = c->tune_goal == CFG_TUNE_LATENCY ? &plan.latency : &plan.throughput;
    if (st == TUNED_OK && !p->batch) {
        snprintf(err, sizeof err, "%s: has no %s pick", m->tuned_path, goal);
        st = TUNED_INVALID;
    }
    if (st != TUNED_OK) {
        if (st != TUNED_MISSING) {
            snprintf(detail, sizeof detail, "%s: %s", m->mc.name, err);
            log_msg(LOG_WARN, "tuned.json ignored", detail);
        }
        m->tuned_path[0] = 0;
        return;
    }
    int w = 0;
    w += snprintf(detail + w, sizeof detail - (size_t)w, "%s:", m->mc.name);
    if (own_w) {
        m->workers = p->workers;
        m->tuned |= APP_TUNED_WORKERS;
        w += snprintf(detail + w, sizeof detail - (size_t)w, " workers=%d", p->workers);
    }
    if (own_t) {
        m->threads = p->threads;
        m->tuned |= APP_TUNED_THREADS;
        w += snprintf(detail + w, sizeof detail - (size_t)w, " threads_per_worker=%d", p->threads);
    }
    if (own_b) {
        m->max_batch = p->batch;
        m->tuned |= APP_TUNED_MAX_BATCH;
        w += snprintf(detail + w, sizeof detail - (size_t)w, " max_batch=%d", p->batch);
    }
    m->tuned_goal = goal;
    snprintf(detail + w, sizeof detail - (size_t)w, " (%s pick of %s%s%s%s)", goal, m->tuned_path,
             own_w ? "" : "; workers set", own_t ? "" : "; threads_per_worker set",
             own_b ? "" : "; max_batch set");
    log_msg(LOG_INFO, "tuned plan applied", detail);
}

/* Returns 0, -2 when the model's configuration is at fault, -1 otherwise. */
static int load_model(const app *a, const char *path, app_model *m, char *err, size_t len) {
    const cfg_t *c = a->cfg;
    if (model_config_load(path, &m->mc, err, len))
        return -2; /* the model's configuration (config.json, labels.txt, name) */
    m->max_batch = c->max_batch ? (int)c->max_batch : m->mc.max_batch;
    m->workers = (int)c->workers;
    m->threads = (int)c->threads_per_worker; /* 0 = cores / workers, below */
    apply_tuned(a, m);
    if (m->max_batch < 1)
        m->max_batch = 1;
    engine_load_params lp = model_config_engine_params(&m->mc, m->max_batch);
    if (engine_model_load(m->mc.onnx_path, &lp, &m->em, err, len) != ENGINE_OK)
        return -1;
    engine_model_get_info(m->em, &m->info);
    if (m->info.fixed_batch)
        m->max_batch = m->info.fixed_batch;
    else if (m->info.max_batch > 0 && m->max_batch > m->info.max_batch)
        m->max_batch = m->info.max_batch;
    int ch = img_channels(&m->mc.input);
    if (ch != m->info.channels || m->mc.input.crop_h != m->info.height ||
        m->mc.input.crop_w != m->info.width) {
        snprintf(err, len, "%s: preprocessing gives [%d,%d,%d] but the model takes [%d,%d,%d]",
                 path, ch, m->mc.input.crop_h, m->mc.input.crop_w, m->info.channels, m->info.height,
                 m->info.width);
        return -1;
    }
    m->in_floats = (size_t)ch * (size_t)m->info.height * (size_t)m->info.width;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (m->threads == 0)
        m->threads = (int)(cores / m->workers > 0 ? cores / m->workers : 1);
    return 0;
}

static void free_models(app *a) {
    for (int i = 0; i < a->nmodels; i++) {
        app_model *m = &a->models[i];
        queue_destroy(m->q);
        engine_model_free(m->em);
        model_config_free(&m->mc);
    }
    free(a->models);
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
    for (int i = 0; i < a->nmodels; i++)
        queue_flush(a->models[i].q); /* nothing more will come to fill a batch */
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
        for (int i = 0; i < a->nmodels; i++)
            workers_abort(a->models[i].pool);
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
    char(*paths)[PATH_MAX] = malloc(CFG_MAX_MODELS * 8 * sizeof(*paths));
    if (!paths) {
        log_msg(LOG_ERROR, "out of memory", NULL);
        return 1;
    }
    int n = model_paths(c, paths, CFG_MAX_MODELS * 8, err, sizeof err);
    if (n < 0) {
        free(paths);
        log_msg(LOG_ERROR, "bad configuration", err);
        return 2;
    }
    if (!(a.models = calloc((size_t)n, sizeof(app_model)))) {
        free(paths);
        log_msg(LOG_ERROR, "out of memory", NULL);
        return 1;
    }
    const char *names[CFG_MAX_MODELS * 8];
    int max_batch = 1, rc = 1;
    for (int i = 0; i < n; i++, a.nmodels++) {
        app_model *m = &a.models[i];
        int lm = load_model(&a, paths[i], m, err, sizeof err);
        if (lm) {
            a.nmodels++;
            log_msg(LOG_ERROR, "cannot load model", err);
            rc = lm == -2 ? 2 : 1; /* a configuration error exits 2, as a bad option does */
            goto out;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(a.models[j].mc.name, m->mc.name)) {
                a.nmodels++;
                log_msg(LOG_ERROR, "two models have the same name", m->mc.name);
                rc = 2;
                goto out;
            }
        names[i] = m->mc.name;
        if (m->max_batch > max_batch)
            max_batch = m->max_batch;
    }
    budget_init(&a.mem, (uint64_t)c->max_inflight_bytes);
    if (!(a.metrics = metrics_create(names, n, max_batch))) {
        log_msg(LOG_ERROR, "out of memory", NULL);
        goto out;
    }
    metrics_set_budget(a.metrics, &a.mem);
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
    for (int i = 0; i < n; i++) {
        app_model *m = &a.models[i];
        m->metrics = a.metrics;
        m->index = i;
        if (!(m->q = queue_create((int)c->queue_capacity, depth_hook, m))) {
            log_msg(LOG_ERROR, "out of memory", NULL);
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
    int started = 0;
    for (; started < n; started++) {
        app_model *m = &a.models[started];
        int fixed = m->info.fixed_batch != 0;
        workers_params bp = {m->q,
                             m->workers,
                             m->max_batch,
                             (int64_t)c->batch_timeout_us * 1000,
                             m->in_floats,
                             (size_t)m->info.num_classes,
                             fixed ? ctx_create_fixed : ctx_create,
                             fixed ? ctx_run_fixed : ctx_run,
                             fixed ? ctx_free_fixed : ctx_free,
                             m,
                             a.metrics,
                             started};
        if (!(m->pool = workers_start(&bp, err, sizeof err))) {
            log_msg(LOG_ERROR, "cannot start workers", err);
            break;
        }
    }
    rc = started == n ? 0 : 1;
    while (rc == 0) {
        int sig = wait_signal(&set, 50);
        if (sig) {
            log_msg(LOG_INFO, sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
            drain(&a);
            break;
        }
        if (atomic_load(&a.ready))
            continue;
        int ready = 1;
        for (int i = 0; i < n && rc == 0; i++) {
            int r = workers_ready(a.models[i].pool, err, sizeof err);
            if (r < 0) {
                log_msg(LOG_ERROR, "worker failed", err);
                rc = 1;
            }
            ready &= r == 1;
        }
        if (rc == 0 && ready) {
            atomic_store(&a.ready, 1);
            log_msg(LOG_INFO, "ready", where);
        }
    }
    if (rc != 0) { /* a failed start: answer what is queued, then stop */
        atomic_store(&a.draining, 1);
        for (int i = 0; i < started; i++)
            workers_abort(a.models[i].pool);
    }
    for (int i = 0; i < n; i++)
        queue_close(a.models[i].q);
    for (int i = 0; i < started; i++)
        workers_join(a.models[i].pool);
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
    free(paths);
    metrics_destroy(a.metrics);
    free_models(&a);
    return rc;
}
