/* metrics.c — lock-free counters and histograms, rendered on demand. */
#include "metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NDUR 16     /* duration buckets before +Inf */
#define MAXBATCH 64 /* batch-size buckets at most */

static const int CODES[] = {200, 400, 401, 404, 405, 413, 415, 499, 500, 503, 504};
#define NCODES ((int)(sizeof(CODES) / sizeof(CODES[0])) + 1) /* + "other" */

static const char *REASONS[METRICS_REJECT_COUNT] = {"queue_full", "draining",       "not_ready",
                                                    "deadline",   "body_too_large", "over_budget"};
static const char *PROTOS[METRICS_PROTO_COUNT] = {"http", "grpc"};
static const char *CANCELS[METRICS_CANCEL_COUNT] = {"client_closed", "upload_aborted",
                                                    "stream_reset"};
static const char *HNAMES[METRICS_H_COUNT] = {
    "resnetd_request_duration_seconds", "resnetd_queue_duration_seconds",
    "resnetd_preprocess_duration_seconds", "resnetd_inference_duration_seconds"};
static const char *HHELP[METRICS_H_COUNT] = {
    "Time from request headers to response, per model.",
    "Time an image waited in the model's queue before its batch ran.",
    "Time to decode and preprocess one image.", "Time of one engine_run call (one batch)."};

typedef struct {
    _Atomic uint64_t b[MAXBATCH + 1]; /* non-cumulative; last is +Inf */
    _Atomic uint64_t sum_ns;          /* durations: ns; batch size: images */
} hist;

typedef struct {
    char *name;
    char version[24]; /* "" for the "no model" slot */
    int used;         /* a version holds it (under metrics.add) */
    _Atomic uint64_t requests[METRICS_PROTO_COUNT][NCODES];
    _Atomic uint64_t images;
    _Atomic uint64_t cancelled[METRICS_CANCEL_COUNT];
    _Atomic long depth;
    hist h[METRICS_H_COUNT]; /* METRICS_H_REQUEST: in hreq, by protocol */
    hist hreq[METRICS_PROTO_COUNT];
    hist batch;
} model_metrics;

struct metrics {
    _Atomic int n; /* models named so far (metrics_add_model); slot cap is "no model" */
    int cap;
    pthread_mutex_t add; /* metrics_add_model / metrics_remove_model / metrics_render */
    int max_batch;
    model_metrics *mm;
    _Atomic uint64_t rejected[METRICS_REJECT_COUNT];
    _Atomic long inflight;
    const budget *mem; /* exported when set */
};

static model_metrics *slot(metrics *m, int model) {
    return &m->mm[model >= 0 && model < atomic_load_explicit(&m->n, memory_order_acquire) ? model
                                                                                          : m->cap];
}

metrics *metrics_create(const char *const *model_names, int n, int max_batch) {
    metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->cap = METRICS_MAX_MODELS;
    m->max_batch = max_batch < 1 ? 1 : max_batch > MAXBATCH ? MAXBATCH : max_batch;
    pthread_mutex_init(&m->add, NULL);
    m->mm = calloc((size_t)m->cap + 1, sizeof(*m->mm));
    if (!m->mm || !(m->mm[m->cap].name = strdup(""))) {
        metrics_destroy(m);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (metrics_add_model(m, model_names[i], "1") < 0) {
            metrics_destroy(m);
            return NULL;
        }
    return m;
}

int metrics_add_model(metrics *m, const char *name, const char *version) {
    pthread_mutex_lock(&m->add);
    int n = atomic_load(&m->n), i = 0;
    while (i < n && m->mm[i].used)
        i++;
    char *nm = i < m->cap ? strdup(name) : NULL;
    if (!nm) {
        i = -1;
    } else {
        model_metrics *s = &m->mm[i];
        char *old = s->name; /* a reused slot: its version was freed, nothing writes to it */
        memset(s, 0, sizeof *s);
        free(old);
        s->name = nm;
        snprintf(s->version, sizeof s->version, "%s", version);
        s->used = 1;
        if (i == n)
            atomic_store_explicit(&m->n, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&m->add);
    return i;
}

void metrics_remove_model(metrics *m, int model) {
    pthread_mutex_lock(&m->add);
    if (model >= 0 && model < atomic_load(&m->n))
        m->mm[model].used = 0; /* the name stays until reuse: a late reader sees a string */
    pthread_mutex_unlock(&m->add);
}

const char *metrics_model_name(const metrics *m, int model) {
    return slot((metrics *)m, model)->name;
}

void metrics_destroy(metrics *m) {
    if (!m)
        return;
    if (m->mm)
        for (int i = 0; i <= m->cap; i++)
            free(m->mm[i].name);
    free(m->mm);
    pthread_mutex_destroy(&m->add);
    free(m);
}

#define ADD(a, v) atomic_fetch_add_explicit(&(a), (v), memory_order_relaxed)
#define LOAD(a) atomic_load_explicit(&(a), memory_order_relaxed)

void metrics_request(metrics *m, int model, int http_status) {
    metrics_request_proto(m, model, http_status, METRICS_PROTO_HTTP);
}

void metrics_request_proto(metrics *m, int model, int http_status, int p) {
    int c = NCODES - 1;
    for (int i = 0; i < NCODES - 1; i++)
        if (CODES[i] == http_status)
            c = i;
    if (p < 0 || p >= METRICS_PROTO_COUNT)
        p = METRICS_PROTO_HTTP;
    ADD(slot(m, model)->requests[p][c], 1);
}

void metrics_images(metrics *m, int model, int n) {
    ADD(slot(m, model)->images, (uint64_t)n);
}

void metrics_rejected(metrics *m, metrics_reason r) {
    ADD(m->rejected[r], 1);
}

void metrics_cancelled(metrics *m, int model, metrics_cancel r) {
    ADD(slot(m, model)->cancelled[r], 1);
}

static void observe(hist *x, double seconds) {
    int b = 0;
    double ub = 0.0005;
    while (b < NDUR && seconds > ub) {
        b++;
        ub *= 2;
    }
    ADD(x->b[b], 1);
    ADD(x->sum_ns, (uint64_t)(seconds > 0 ? seconds * 1e9 : 0));
}

void metrics_observe(metrics *m, metrics_hist h, int model, double seconds) {
    model_metrics *mm = slot(m, model);
    observe(h == METRICS_H_REQUEST ? &mm->hreq[METRICS_PROTO_HTTP] : &mm->h[h], seconds);
}

void metrics_observe_request(metrics *m, int model, int p, double seconds) {
    if (p < 0 || p >= METRICS_PROTO_COUNT)
        p = METRICS_PROTO_HTTP;
    observe(&slot(m, model)->hreq[p], seconds);
}

void metrics_batch_size(metrics *m, int model, int n) {
    hist *x = &slot(m, model)->batch;
    ADD(x->b[n >= 1 && n <= m->max_batch ? n - 1 : m->max_batch], 1);
    ADD(x->sum_ns, (uint64_t)n);
}

void metrics_queue_depth_add(metrics *m, int model, int delta) {
    ADD(slot(m, model)->depth, delta);
}

void metrics_set_budget(metrics *m, const budget *b) {
    m->mem = b;
}

void metrics_inflight_add(metrics *m, int delta) {
    ADD(m->inflight, delta);
}

static uint64_t hist_count(const hist *x, int nb) {
    uint64_t n = 0;
    for (int b = 0; b <= nb; b++)
        n += LOAD(((hist *)x)->b[b]);
    return n;
}

void metrics_totals(const metrics *mc, int model, metrics_model_totals *t) {
    metrics *m = (metrics *)mc;
    model_metrics *mm = slot(m, model);
    memset(t, 0, sizeof *t);
    for (int p = 0; p < METRICS_PROTO_COUNT; p++)
        for (int c = 0; c < NCODES; c++) {
            uint64_t v = LOAD(mm->requests[p][c]);
            if (c < NCODES - 1 && CODES[c] == 200)
                t->ok += v;
            else
                t->failed += v;
        }
    t->images = LOAD(mm->images);
    for (int h = 0; h < METRICS_H_COUNT; h++) {
        if (h == METRICS_H_REQUEST) {
            for (int p = 0; p < METRICS_PROTO_COUNT; p++) {
                t->count[h] += hist_count(&mm->hreq[p], NDUR);
                t->ns[h] += LOAD(mm->hreq[p].sum_ns);
            }
        } else {
            t->count[h] = hist_count(&mm->h[h], NDUR);
            t->ns[h] = LOAD(mm->h[h].sum_ns);
        }
    }
}

long metrics_queue_depth(const metrics *m, int model) {
    return LOAD(((metrics *)m)->mm[model].depth);
}

/* A growable text buffer; on allocation failure it sets oom and stops. */
typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *s, const char *fmt, ...) {
    if (s->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            s->oom = 1;
            return;
        }
        if ((size_t)n < s->cap - s->len) {
            s->len += (size_t)n;
            return;
        }
        size_t cap = s->cap * 2 + (size_t)n;
        char *p = realloc(s->p, cap);
        if (!p) {
            s->oom = 1;
            return;
        }
        s->p = p;
        s->cap = cap;
    }
}

/* Label value escaped per the text format (backslash, quote, newline). */
static void sb_label(sbuf *s, const char *v) {
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            sb_printf(s, "\\%c", *v);
        else if (*v == '\n')
            sb_printf(s, "\\n");
        else
            sb_printf(s, "%c", *v);
    }
}

/* extra: "" or more labels after model, e.g. ",protocol=\"http\"" */
static void render_hist(sbuf *s, const char *name, const char *model, const char *extra,
                        const hist *x, int nb, int linear, int is_time) {
    uint64_t cum = 0;
    double ub = 0.0005;
    for (int b = 0; b <= nb; b++) {
        cum += LOAD(((hist *)x)->b[b]);
        sb_printf(s, "%s_bucket{model=\"", name);
        sb_label(s, model);
        if (b == nb)
            sb_printf(s, "\"%s,le=\"+Inf\"} %llu\n", extra, (unsigned long long)cum);
        else if (linear)
            sb_printf(s, "\"%s,le=\"%d\"} %llu\n", extra, b + 1, (unsigned long long)cum);
        else
            sb_printf(s, "\"%s,le=\"%g\"} %llu\n", extra, ub, (unsigned long long)cum);
        ub *= 2;
    }
    uint64_t sum = LOAD(((hist *)x)->sum_ns);
    sb_printf(s, "%s_sum{model=\"", name);
    sb_label(s, model);
    if (is_time)
        sb_printf(s, "\"%s} %.9f\n", extra, (double)sum / 1e9);
    else
        sb_printf(s, "\"%s} %llu\n", extra, (unsigned long long)sum);
    sb_printf(s, "%s_count{model=\"", name);
    sb_label(s, model);
    sb_printf(s, "\"%s} %llu\n", extra, (unsigned long long)cum);
}

static void render_process(sbuf *s) {
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char buf[2048];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        unsigned long long ut = 0, st = 0, start = 0, rss = 0;
        /* fields 3.. after ')': state(3) ... utime(14) stime(15) ... starttime(22) vsize(23)
         * rss(24) */
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                        "%*d %*d %llu %*u %llu",
                        &ut, &st, &start, &rss) == 4) {
            double btime = 0;
            FILE *g = fopen("/proc/stat", "r");
            if (g) {
                char line[256];
                while (fgets(line, sizeof line, g))
                    if (sscanf(line, "btime %lf", &btime) == 1)
                        break;
                fclose(g);
            }
            sb_printf(s,
                      "# HELP process_cpu_seconds_total Total user and system CPU time spent in "
                      "seconds.\n# TYPE process_cpu_seconds_total counter\n"
                      "process_cpu_seconds_total %.2f\n",
                      (double)(ut + st) / (double)tick);
            sb_printf(s,
                      "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                      "# TYPE process_resident_memory_bytes gauge\n"
                      "process_resident_memory_bytes %llu\n",
                      rss * (unsigned long long)page);
            sb_printf(s,
                      "# HELP process_start_time_seconds Start time of the process since unix "
                      "epoch in seconds.\n# TYPE process_start_time_seconds gauge\n"
                      "process_start_time_seconds %.2f\n",
                      btime + (double)start / (double)tick);
        }
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long fds = 0;
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                fds++;
        closedir(d);
        sb_printf(s,
                  "# HELP process_open_fds Number of open file descriptors.\n"
                  "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n",
                  fds - 1 /* the DIR's own fd */);
    }
}

int metrics_render(const metrics *mc, char **out, size_t *len) {
    metrics *m = (metrics *)mc;
    sbuf s = {malloc(16384), 0, 16384, 0};
    if (!s.p)
        return -1;
    pthread_mutex_lock(&m->add); /* slots are neither taken nor given back meanwhile */
    int nn = atomic_load_explicit(&m->n, memory_order_acquire);
#define IX(i) ((i) == nn ? m->cap : (i))
#define FREE_SLOT(i) ((i) < nn && !m->mm[i].used) /* its version is gone: no series */
    sb_printf(&s, "# HELP resnetd_requests_total Requests answered, by model, status code (HTTP, "
                  "or the one a gRPC status stands for) and protocol.\n"
                  "# TYPE resnetd_requests_total counter\n");
    for (int p = 0; p < METRICS_PROTO_COUNT; p++)
        for (int i = 0; i <= nn; i++)
            for (int c = 0; c < NCODES && !FREE_SLOT(i); c++) {
                uint64_t v = LOAD(m->mm[IX(i)].requests[p][c]);
                if (!v && i == nn)
                    continue; /* keep the "no model" series sparse */
                sb_printf(&s, "resnetd_requests_total{model=\"");
                sb_label(&s, m->mm[IX(i)].name);
                sb_printf(&s, "\",version=\"%s", m->mm[IX(i)].version);
                if (c < NCODES - 1)
                    sb_printf(&s, "\",code=\"%d\",protocol=\"%s\"} %llu\n", CODES[c], PROTOS[p],
                              (unsigned long long)v);
                else
                    sb_printf(&s, "\",code=\"other\",protocol=\"%s\"} %llu\n", PROTOS[p],
                              (unsigned long long)v);
            }
    sb_printf(
        &s, "# HELP resnetd_images_total Images classified (answered with predictions), by model.\n"
            "# TYPE resnetd_images_total counter\n");
    for (int i = 0; i < nn; i++) {
        if (FREE_SLOT(i))
            continue;
        sb_printf(&s, "resnetd_images_total{model=\"");
        sb_label(&s, m->mm[i].name);
        sb_printf(&s, "\",version=\"%s\"} %llu\n", m->mm[i].version,
                  (unsigned long long)LOAD(m->mm[i].images));
    }
    sb_printf(&s, "# HELP resnetd_rejected_total Requests or images refused, by reason.\n"
                  "# TYPE resnetd_rejected_total counter\n");
    for (int r = 0; r < METRICS_REJECT_COUNT; r++)
        sb_printf(&s, "resnetd_rejected_total{reason=\"%s\"} %llu\n", REASONS[r],
                  (unsigned long long)LOAD(m->rejected[r]));
    sb_printf(&s, "# HELP resnetd_cancelled_total Requests whose client went away before their "
                  "answer, their remaining work dropped, by model and reason.\n"
                  "# TYPE resnetd_cancelled_total counter\n");
    for (int i = 0; i < nn; i++)
        for (int r = 0; r < METRICS_CANCEL_COUNT && !FREE_SLOT(i); r++) {
            sb_printf(&s, "resnetd_cancelled_total{model=\"");
            sb_label(&s, m->mm[i].name);
            sb_printf(&s, "\",version=\"%s\",reason=\"%s\"} %llu\n", m->mm[i].version, CANCELS[r],
                      (unsigned long long)LOAD(m->mm[i].cancelled[r]));
        }
    for (int h = 0; h < METRICS_H_COUNT; h++) {
        sb_printf(&s, "# HELP %s %s\n# TYPE %s histogram\n", HNAMES[h], HHELP[h], HNAMES[h]);
        for (int i = 0; i < nn; i++) {
            if (FREE_SLOT(i))
                continue;
            char extra[80];
            snprintf(extra, sizeof extra, ",version=\"%s\"", m->mm[i].version);
            if (h != METRICS_H_REQUEST) {
                render_hist(&s, HNAMES[h], m->mm[i].name, extra, &m->mm[i].h[h], NDUR, 0, 1);
                continue;
            }
            for (int p = 0; p < METRICS_PROTO_COUNT; p++) {
                snprintf(extra, sizeof extra, ",version=\"%s\",protocol=\"%s\"", m->mm[i].version,
                         PROTOS[p]);
                render_hist(&s, HNAMES[h], m->mm[i].name, extra, &m->mm[i].hreq[p], NDUR, 0, 1);
            }
        }
    }
    sb_printf(&s, "# HELP resnetd_batch_size Images per engine_run call.\n"
                  "# TYPE resnetd_batch_size histogram\n");
    for (int i = 0; i < nn; i++) {
        char extra[40];
        snprintf(extra, sizeof extra, ",version=\"%s\"", m->mm[i].version);
        if (!FREE_SLOT(i))
            render_hist(&s, "resnetd_batch_size", m->mm[i].name, extra, &m->mm[i].batch,
                        m->max_batch, 1, 0);
    }
    sb_printf(&s, "# HELP resnetd_queue_depth Images waiting in the model's queue.\n"
                  "# TYPE resnetd_queue_depth gauge\n");
    for (int i = 0; i < nn; i++) {
        if (FREE_SLOT(i))
            continue;
        sb_printf(&s, "resnetd_queue_depth{model=\"");
        sb_label(&s, m->mm[i].name);
        sb_printf(&s, "\",version=\"%s\"} %ld\n", m->mm[i].version, LOAD(m->mm[i].depth));
    }
    sb_printf(&s,
              "# HELP resnetd_inflight_requests Requests being processed.\n"
              "# TYPE resnetd_inflight_requests gauge\nresnetd_inflight_requests %ld\n",
              LOAD(m->inflight));
    if (m->mem) {
        sb_printf(&s,
                  "# HELP resnetd_inflight_bytes Bytes reserved in the server-wide budget "
                  "(request bodies, image decodes, tensors, answers).\n"
                  "# TYPE resnetd_inflight_bytes gauge\nresnetd_inflight_bytes %llu\n"
                  "# HELP resnetd_inflight_bytes_limit The budget (max_inflight_bytes).\n"
                  "# TYPE resnetd_inflight_bytes_limit gauge\nresnetd_inflight_bytes_limit %llu\n"
                  "# HELP resnetd_inflight_bytes_peak Highest resnetd_inflight_bytes so far.\n"
                  "# TYPE resnetd_inflight_bytes_peak gauge\nresnetd_inflight_bytes_peak %llu\n",
                  (unsigned long long)budget_used(m->mem), (unsigned long long)m->mem->limit,
                  (unsigned long long)atomic_load_explicit(&((budget *)m->mem)->peak,
                                                           memory_order_relaxed));
    }
    sb_printf(&s,
              "# HELP resnetd_build_info Build information.\n"
              "# TYPE resnetd_build_info gauge\nresnetd_build_info{version=\"%s\"} 1\n",
              RESNETD_VERSION);
    pthread_mutex_unlock(&m->add);
    render_process(&s);
    if (s.oom) {
        free(s.p);
        return -1;
    }
    *out = s.p;
    *len = s.len;
    return 0;
#undef IX
#undef FREE_SLOT
}
