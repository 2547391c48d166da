/*
 * cmd_bench.c — `resnetd bench`: engine throughput and latency, one JSON
 * object per configuration on stdout, progress on stderr.
 *
 * DESIGN: the model is loaded once and shared (it is immutable). A
 * configuration (batch, workers W, threads T) creates W contexts of T threads
 * each and runs them in W pthreads, each looping engine_run() on its own
 * random input until the deadline. After a warm-up (which also builds the
 * primitives for that batch size) the threads wait at a start line, so the clock
 * covers only steady-state runs. Throughput is all images finished divided by
 * the wall time from the start until the last thread's last run returned;
 * latency percentiles are over every engine_run() of every worker.
 * peak_rss_bytes is the process's peak resident set so far (getrusage), so it
 * includes the model; run one configuration per process to compare peaks.
 * --tune also saves both picks with the machine's fingerprint as tuned.json
 * beside model.onnx (config/tuned.h), which serve then uses for the options
 * its configuration leaves unset, and, per pick, each conv's algorithm timed
 * per node at its batch and threads (engine_tune_convs).
 */
#include "commands.h"
#include "engine.h"
#include "model_config.h"
#include "tuned.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_LIST 16
#define BENCH_WARMUP_RUNS 2

typedef struct {
    int v[BENCH_MAX_LIST];
    int n;
} bench_list;

/* Start line: workers report ready after their warm-up; main then sets go
 * (1 = run, -1 = abort) and starts the clock. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready, go;
} bench_gate;

typedef struct {
    engine_ctx *ctx;
    const engine_model_info *info;
    int batch;
    float *input, *output;
    double *lat_ms; /* one per timed run; grown as needed */
    size_t nlat, cap;
    double seconds;  /* timed run length, from the start signal */
    double finished; /* when the last run returned (monotonic seconds) */
    bench_gate *gate;
    char err[512];
    int failed;
} bench_worker;

static double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void bench_usage(FILE *f) {
    fprintf(f, "usage: resnetd bench --model M [--batch 1,8] [--threads T] [--workers W]\n"
               "                     [--seconds S] [--tune [--tune-out FILE | --no-save]]\n"
               "  --tune: measures every workers x threads (workers * threads <= cores) x\n"
               "  batch 1,2,4,8 (3 s each unless --seconds) and ends with two JSON lines,\n"
               "  \"tuned\": \"throughput\" (most img/s) and \"tuned\": \"latency\"\n"
               "  (lowest p50 at batch 1). Both picks and this machine's fingerprint are\n"
               "  saved as tuned.json in the model's directory (--tune-out FILE: elsewhere;\n"
               "  --no-save: not at all); `serve` uses them for workers,\n"
               "  threads_per_worker and max_batch unless set (see docs/tuning.md).\n"
               "  Then each conv's algorithm (direct, channels_last, winograd) is timed\n"
               "  per node at each pick's batch and threads (one \"tuned_convs\" line per\n"
               "  pick) and saved in the pick as conv_algorithms, which serve applies.\n"
               "  Without --tune, bench runs the engine's static conv rules.\n"
               "  An unwritable destination is a warning, not an error.\n"
               "  --batch, --threads and --workers take comma-separated lists; every\n"
               "  combination is measured. Defaults: batch 1,8; workers 1; threads = cores /\n"
               "  workers; seconds 10. One JSON line per configuration on stdout.\n");
}

/* Parses "1,8,16" into l (values in 1..max). Returns 0, or -1 if malformed. */
static int bench_parse_list(const char *s, int max, bench_list *l) {
    l->n = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 1 || v > max || l->n == BENCH_MAX_LIST)
            return -1;
        l->v[l->n++] = (int)v;
        if (*end == '\0')
            return 0;
        if (*end != ',')
            return -1;
        p = end + 1;
    }
}

static void *bench_worker_main(void *arg) {
    bench_worker *w = arg;
    for (int i = 0; i < BENCH_WARMUP_RUNS && !w->failed; i++)
        if (engine_run(w->ctx, w->input, w->batch, w->output, w->err, sizeof(w->err)) != ENGINE_OK)
            w->failed = 1;
    bench_gate *g = w->gate;
    pthread_mutex_lock(&g->mu);
    g->ready++;
    pthread_cond_broadcast(&g->cv);
    while (g->go == 0)
        pthread_cond_wait(&g->cv, &g->mu);
    int go = g->go;
    pthread_mutex_unlock(&g->mu);
    if (go < 0)
        return NULL; /* another worker could not start: nothing is measured */
    double end_time = bench_now() + w->seconds;
    while (!w->failed) {
        double t0 = bench_now();
        if (engine_run(w->ctx, w->input, w->batch, w->output, w->err, sizeof(w->err)) !=
            ENGINE_OK) {
            w->failed = 1;
            break;
        }
        double t1 = bench_now();
        if (w->nlat == w->cap) {
            size_t cap = w->cap ? w->cap * 2 : 256;
            double *nl = realloc(w->lat_ms, cap * sizeof(double));
            if (!nl) {
                snprintf(w->err, sizeof(w->err), "out of memory for latency samples");
                w->failed = 1;
                break;
            }
            w->lat_ms = nl;
            w->cap = cap;
        }
        w->lat_ms[w->nlat++] = (t1 - t0) * 1e3;
        w->finished = t1;
        if (t1 >= end_time)
            break;
    }
    return NULL;
}

static int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v (n > 0). */
static double bench_percentile(const double *v, size_t n, double p) {
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    return v[rank ? rank - 1 : 0];
}

static long long bench_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return (long long)ru.ru_maxrss * 1024; /* Linux reports KiB */
}

static void bench_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* What one configuration measured (for --tune). */
typedef struct {
    int batch, workers, threads;
    double ips, p50, p99;
} bench_result;

/* Measures one configuration, prints its JSON line and fills *res.
 * Returns 0, or 1 after printing the cause to stderr. */
static int bench_config(const engine_model *m, const engine_model_info *info, const char *name,
                        int batch, int workers, int threads, double seconds, bench_result *res) {
    size_t in_n =
        (size_t)batch * (size_t)info->channels * (size_t)info->height * (size_t)info->width;
    size_t out_n = (size_t)batch * (size_t)info->num_classes;
    bench_worker *w = calloc((size_t)workers, sizeof(*w));
    pthread_t *tid = calloc((size_t)workers, sizeof(*tid));
    bench_gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    int rc = 1, created = 0;
    double *all = NULL;
    if (!w || !tid) {
        fprintf(stderr, "resnetd bench: out of memory\n");
        goto done;
    }
    fprintf(stderr, "bench: %s batch=%d workers=%d threads=%d: warming up\n", name, batch, workers,
            threads);
    uint32_t seed = 12345;
    for (int i = 0; i < workers; i++) {
        w[i].info = info;
        w[i].batch = batch;
        w[i].input = malloc(in_n * sizeof(float));
        w[i].output = malloc(out_n * sizeof(float));
        if (!w[i].input || !w[i].output) {
            fprintf(stderr, "resnetd bench: out of memory for batch %d buffers\n", batch);
            goto done;
        }
        for (size_t j = 0; j < in_n; j++) {
            seed = seed * 1664525u + 1013904223u; /* LCG: any image-like range will do */
            w[i].input[j] = (float)(seed >> 8) / 16777216.0f * 4.0f - 2.0f;
        }
        engine_ctx_params cp = engine_ctx_default_params();
        cp.threads = threads;
        char err[512] = "";
        if (engine_ctx_create(m, &cp, &w[i].ctx, err, sizeof(err)) != ENGINE_OK) {
            fprintf(stderr, "resnetd bench: %s\n", err);
            goto done;
        }
    }
    for (int i = 0; i < workers; i++) {
        w[i].gate = &gate;
        w[i].seconds = seconds;
    }
    for (; created < workers; created++)
        if (pthread_create(&tid[created], NULL, bench_worker_main, &w[created]) != 0) {
            fprintf(stderr, "resnetd bench: cannot start worker thread %d\n", created);
            break;
        }
    /* Wait until every started worker has warmed up, then start the clock. */
    pthread_mutex_lock(&gate.mu);
    while (gate.ready < created)
        pthread_cond_wait(&gate.cv, &gate.mu);
    gate.go = created == workers ? 1 : -1;
    double t_start = bench_now();
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
    for (int i = 0; i < created; i++)
        pthread_join(tid[i], NULL);
    if (created < workers)
        goto done;

    size_t total_runs = 0;
    double t_end = t_start;
    for (int i = 0; i < workers; i++) {
        if (w[i].failed) {
            fprintf(stderr, "resnetd bench: worker %d: %s\n", i, w[i].err);
            goto done;
        }
        total_runs += w[i].nlat;
        if (w[i].finished > t_end)
            t_end = w[i].finished;
    }
    all = malloc((total_runs ? total_runs : 1) * sizeof(double));
    if (!all || total_runs == 0) {
        fprintf(stderr, "resnetd bench: no timed runs\n");
        goto done;
    }
    size_t k = 0;
    for (int i = 0; i < workers; i++)
        for (size_t j = 0; j < w[i].nlat; j++)
            all[k++] = w[i].lat_ms[j];
    qsort(all, total_runs, sizeof(double), bench_cmp_double);
    double ips = (double)total_runs * batch / (t_end - t_start);
    printf("{\"model\": ");
    bench_json_string(name);
    printf(", \"batch\": %d, \"workers\": %d, \"threads\": %d, \"images_per_second\": %.2f, "
           "\"latency_ms_p50\": %.2f, \"latency_ms_p99\": %.2f, \"peak_rss_bytes\": %lld}\n",
           batch, workers, threads, ips, bench_percentile(all, total_runs, 50),
           bench_percentile(all, total_runs, 99), bench_peak_rss());
    fflush(stdout);
    *res = (bench_result){batch,
                          workers,
                          threads,
                          ips,
                          bench_percentile(all, total_runs, 50),
                          bench_percentile(all, total_runs, 99)};
    fprintf(stderr, "bench: %s batch=%d workers=%d threads=%d: %.2f img/s over %zu runs\n", name,
            batch, workers, threads, ips, total_runs);
    rc = 0;
done:
    for (int i = 0; w && i < workers; i++) {
        engine_ctx_free(w[i].ctx);
        free(w[i].input);
        free(w[i].output);
        free(w[i].lat_ms);
    }
    free(all);
    free(w);
    free(tid);
    return rc;
}

static void bench_pick(const bench_result *r, tuned_pick *p) {
    *p = (tuned_pick){.batch = r->ips > 0 ? r->batch : 0,
                      .workers = r->workers,
                      .threads = r->threads,
                      .images_per_second = r->ips,
                      .latency_ms_p50 = r->p50,
                      .latency_ms_p99 = r->p99};
}

/* --tune, after the grid: the conv algorithms timed per node at pick p's
 * batch and threads (engine_tune_convs; runs from --seconds, 5..100 per
 * variant), one JSON line on stdout, per-node medians on stderr; p->convs
 * gets the choices (conv_tuned set). Returns 0, or 1 with the error printed
 * (a warning for the caller: the grid's picks still hold). */
static int bench_tune_convs(const char *onnx, const engine_load_params *lp0, const char *what,
                            double seconds, tuned_pick *p) {
    engine_load_params lp = *lp0;
    lp.max_batch = p->batch; /* weights laid out as serve lays them out for this pick */
    int runs = seconds * 10 < 5 ? 5 : seconds * 10 > 100 ? 100 : (int)(seconds * 10);
    engine_conv_timing *t = NULL;
    int n = 0;
    char err[1024] = "";
    fprintf(stderr,
            "bench: timing conv algorithms per node (%s pick: batch=%d threads=%d, %d runs)\n",
            what, p->batch, p->threads, runs);
    if (engine_tune_convs(onnx, &lp, p->batch, p->threads, runs, &t, &n, err, sizeof err) !=
        ENGINE_OK) {
        fprintf(stderr, "resnetd bench: conv timing: %s\n", err);
        return 1;
    }
    p->convs = calloc((size_t)n + 1, sizeof *p->convs);
    if (!p->convs) {
        free(t);
        fprintf(stderr, "resnetd bench: out of memory\n");
        return 1;
    }
    p->conv_tuned = 1;
    int count[ENGINE_CONV_NALGO] = {0}, changed = 0;
    double def_ms = 0, best_ms = 0;
    for (int i = 0; i < n; i++) {
        snprintf(p->convs[i].node, sizeof p->convs[i].node, "%s", t[i].node);
        p->convs[i].algo = t[i].algo;
        count[t[i].algo]++;
        changed += t[i].algo != t[i].default_algo;
        def_ms += t[i].ms[t[i].default_algo];
        best_ms += t[i].ms[t[i].algo];
        fprintf(stderr, "bench:   %-40s default %-13s", t[i].node,
                engine_conv_algo_str(t[i].default_algo));
        for (int a = 1; a < ENGINE_CONV_NALGO; a++)
            if (t[i].ms[a] >= 0)
                fprintf(stderr, " %s %.3f ms", engine_conv_algo_str(a), t[i].ms[a]);
        fprintf(stderr, " -> %s\n", engine_conv_algo_str(t[i].algo));
    }
    p->nconvs = n;
    printf("{\"tuned_convs\": \"%s\", \"batch\": %d, \"threads\": %d, \"runs\": %d, "
           "\"conv_algorithms\": {",
           what, p->batch, p->threads, runs);
    for (int i = 0; i < n; i++) {
        printf("%s", i ? ", " : "");
        bench_json_string(t[i].node);
        printf(": \"%s\"", engine_conv_algo_str(t[i].algo));
    }
    printf("}, \"nodes\": {\"direct\": %d, \"channels_last\": %d, \"winograd\": %d}, "
           "\"changed\": %d, \"default_ms\": %.3f, \"chosen_ms\": %.3f}\n",
           count[ENGINE_CONV_DIRECT], count[ENGINE_CONV_CHANNELS_LAST], count[ENGINE_CONV_WINOGRAD],
           changed, def_ms, best_ms);
    fflush(stdout);
    free(t);
    return 0;
}

/* Saves the picks as tuned.json in dir, or as out when given. A failure is a
 * warning on stderr naming the path: the measurement itself succeeded. */
static void bench_save_tuned(const char *out, const char *dir, const char *name, const char *onnx,
                             int int8, double seconds, const bench_result *best_t,
                             const bench_result *best_l, const tuned_pick *convs) {
    tuned_plan plan;
    memset(&plan, 0, sizeof plan);
    const char *base = strrchr(onnx, '/');
    snprintf(plan.model, sizeof plan.model, "%s", name);
    snprintf(plan.model_file, sizeof plan.model_file, "%s", base ? base + 1 : onnx);
    tuned_fingerprint_here(int8, engine_cpu_isa(), &plan.fp);
    plan.seconds = seconds;
    bench_pick(best_t, &plan.throughput);
    bench_pick(best_l, &plan.latency);
    plan.throughput.conv_tuned = convs[0].conv_tuned;
    plan.throughput.convs = convs[0].convs;
    plan.throughput.nconvs = convs[0].nconvs;
    plan.latency.conv_tuned = convs[1].conv_tuned;
    plan.latency.convs = convs[1].convs;
    plan.latency.nconvs = convs[1].nconvs;
    char path[4200], err[4400];
    if (out)
        snprintf(path, sizeof path, "%s", out);
    else
        snprintf(path, sizeof path, "%s/%s", dir, TUNED_FILE);
    if (tuned_save(path, &plan, err, sizeof err) != 0)
        fprintf(stderr, "resnetd bench: warning: tuned plan not saved: %s\n", err);
    else
        fprintf(stderr, "bench: tuned plan saved to %s\n", path);
}

int cmd_bench(int argc, char **argv) {
    const char *model = NULL;
    bench_list batches = {{1, 8}, 2}, workers = {{1}, 1}, threads = {{0}, 0};
    double seconds = 10.0;
    int batch_given = 0, tune = 0, seconds_given = 0, wt_given = 0, no_save = 0;
    const char *tune_out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            bench_usage(stdout);
            return 0;
        }
        if (strcmp(a, "--tune") == 0) {
            tune = 1;
            continue;
        }
        if (strcmp(a, "--no-save") == 0) {
            no_save = 1;
            continue;
        }
        if (i + 1 >= argc || a[0] != '-') {
            fprintf(stderr, "resnetd bench: %s '%s'\n",
                    a[0] == '-' ? "missing value for" : "unexpected argument", a);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--model") == 0) {
            model = v;
        } else if (strcmp(a, "--tune-out") == 0) {
            if (!*v) {
                fprintf(stderr, "resnetd bench: --tune-out needs a file name\n");
                return 2;
            }
            tune_out = v;
        } else if (strcmp(a, "--batch") == 0) {
            batch_given = 1;
            if (bench_parse_list(v, 4096, &batches) != 0) {
                fprintf(stderr, "resnetd bench: --batch '%s' is not a list like 1,8\n", v);
                return 2;
            }
        } else if (strcmp(a, "--workers") == 0) {
            wt_given = 1;
            if (bench_parse_list(v, 256, &workers) != 0) {
                fprintf(stderr, "resnetd bench: --workers '%s' is not a list like 1,2\n", v);
                return 2;
            }
        } else if (strcmp(a, "--threads") == 0) {
            wt_given = 1;
            if (bench_parse_list(v, 1024, &threads) != 0) {
                fprintf(stderr, "resnetd bench: --threads '%s' is not a list like 1,2\n", v);
                return 2;
            }
        } else if (strcmp(a, "--seconds") == 0) {
            seconds_given = 1;
            char *end;
            errno = 0;
            seconds = strtod(v, &end);
            if (errno || end == v || *end || !(seconds > 0 && seconds <= 86400)) {
                fprintf(stderr, "resnetd bench: --seconds '%s' is not in (0, 86400]\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "resnetd bench: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "resnetd bench: --model M is required\n");
        bench_usage(stderr);
        return 2;
    }
    if ((tune_out || no_save) && !tune) {
        fprintf(stderr, "resnetd bench: --tune-out and --no-save only go with --tune\n");
        return 2;
    }
    if (tune_out && no_save) {
        fprintf(stderr, "resnetd bench: --tune-out and --no-save exclude each other\n");
        return 2;
    }
    char err[1024] = "";
    model_config mc;
    if (model_config_resolve(model, &mc, err, sizeof(err)) != 0) {
        fprintf(stderr, "resnetd bench: %s\n", err);
        return 2;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    if (tune) {
        if (!batch_given)
            batches = (bench_list){{1, 2, 4, 8}, 4};
        if (!seconds_given)
            seconds = 3.0;
        if (!wt_given) { /* every workers x threads that fits the cores */
            workers.n = threads.n = 0;
            for (long v = 1; v <= cores && v <= BENCH_MAX_LIST; v++) {
                workers.v[workers.n++] = (int)v;
                threads.v[threads.n++] = (int)v;
            }
        }
    }
    int max_b = 1;
    for (int i = 0; i < batches.n; i++)
        if (batches.v[i] > max_b)
            max_b = batches.v[i];
    engine_load_params lp = model_config_engine_params(&mc, max_b);
    const char *onnx = mc.onnx_path, *name = mc.name;
    engine_model *m = NULL;
    fprintf(stderr, "bench: loading %s\n", onnx);
    if (engine_model_load(onnx, &lp, &m, err, sizeof(err)) != ENGINE_OK) {
        fprintf(stderr, "resnetd bench: %s\n", err);
        model_config_free(&mc);
        return 1;
    }
    engine_model_info info;
    engine_model_get_info(m, &info);
    bench_result best_t = {0}, best_l = {0}, res;
    if (info.fixed_batch > 0 && !batch_given)
        batches = (bench_list){{info.fixed_batch}, 1};
    int rc = 0, measured = 0;
    for (int wi = 0; wi < workers.n && rc == 0; wi++) {
        int nth = threads.n ? threads.n : 1;
        for (int ti = 0; ti < nth && rc == 0; ti++) {
            int t = threads.n ? threads.v[ti] : (int)(cores / workers.v[wi]);
            if (t < 1)
                t = 1;
            if (tune && !wt_given && (long)workers.v[wi] * t > cores)
                continue; /* oversubscribed: never the best here */
            for (int bi = 0; bi < batches.n && rc == 0; bi++) {
                int b = batches.v[bi];
                if (info.fixed_batch > 0 && b != info.fixed_batch) {
                    fprintf(stderr, "bench: %s has a fixed batch of %d: skipping batch %d\n", name,
                            info.fixed_batch, b);
                    continue;
                }
                rc = bench_config(m, &info, name, b, workers.v[wi], t, seconds, &res);
                measured++;
                if (rc == 0 && res.ips > best_t.ips)
                    best_t = res;
                if (rc == 0 && (b == 1 || info.fixed_batch) &&
                    (!best_l.ips || res.p50 < best_l.p50))
                    best_l = res;
            }
        }
    }
    if (rc == 0 && measured == 0) {
        fprintf(stderr, "resnetd bench: %s has a fixed batch of %d: no --batch value matches\n",
                name, info.fixed_batch);
        rc = 1;
    }
    if (rc == 0 && tune) {
        const bench_result *r[2] = {&best_t, &best_l};
        const char *what[2] = {"throughput", "latency"};
        for (int i = 0; i < 2; i++)
            if (r[i]->ips > 0) {
                printf("{\"tuned\": \"%s\", \"model\": ", what[i]);
                bench_json_string(name);
                printf(", \"batch\": %d, \"workers\": %d, \"threads\": %d, "
                       "\"images_per_second\": %.2f, \"latency_ms_p50\": %.2f, "
                       "\"latency_ms_p99\": %.2f}\n",
                       r[i]->batch, r[i]->workers, r[i]->threads, r[i]->ips, r[i]->p50, r[i]->p99);
            }
        fflush(stdout);
        /* conv algorithms at each pick's batch and threads: [0] throughput, [1] latency */
        tuned_pick convs[2];
        memset(convs, 0, sizeof convs);
        engine_model_free(m); /* the variants load their own copies */
        m = NULL;
        for (int i = 1; i >= 0 && rc == 0; i--) {
            if (r[i]->ips <= 0)
                continue;
            if (i == 0 && convs[1].conv_tuned && best_t.batch == best_l.batch &&
                best_t.threads == best_l.threads) {
                convs[0] = convs[1]; /* same measurement; copied below */
                convs[0].convs = NULL;
                if (convs[1].nconvs &&
                    (convs[0].convs = malloc(sizeof *convs[0].convs * (size_t)convs[1].nconvs)))
                    memcpy(convs[0].convs, convs[1].convs,
                           sizeof *convs[0].convs * (size_t)convs[1].nconvs);
                else
                    convs[0].nconvs = 0;
                continue;
            }
            bench_pick(r[i], &convs[i]);
            if (bench_tune_convs(onnx, &lp, what[i], seconds, &convs[i]) != 0) {
                /* the grid's picks stand: saved without conv_algorithms */
                fprintf(stderr,
                        "resnetd bench: warning: %s pick saved without conv "
                        "algorithms\n",
                        what[i]);
                free(convs[i].convs);
                memset(&convs[i], 0, sizeof convs[i]);
            }
        }
        if (rc == 0 && !no_save)
            bench_save_tuned(tune_out, mc.dir, name, onnx, mc.int8, seconds, &best_t, &best_l,
                             convs);
        free(convs[0].convs);
        free(convs[1].convs);
    }
    engine_model_free(m);
    model_config_free(&mc);
    return rc;
}
