/*
 * cmd_classify.c — `resnetd classify`: offline bulk classification, one JSON
 * line (or CSV rows) per file, in input order, in the HTTP API's prediction
 * schema (server/json.c, server/predict.c), so a file gets the answer POST
 * /v1/models/{m}/classify gives for it. A failing file gets its own error
 * line and the others still run. Exit 0 when every file was classified, 1
 * when any failed (or the run could not go on), 2 on bad usage (docs/cli.md).
 *
 * DESIGN: a pipeline over a ring of `window` slots, so memory is bounded
 * however many files come in (window = 3 * workers * max_batch + decoders
 * slots, each one input tensor and its top-k):
 *
 *   inputs (classify_inputs.c: files, directories, @lists, stdin, in order;
 *   one expansion shared by every thread under rmu, each input numbered)
 *     -> decode: read the file (at most max_body_bytes), probe its header
 *        (at most max_image_pixels), reserve its worst-case decode bytes
 *        against max_inflight_bytes (waiting for room), decode and
 *        preprocess into its slot's tensor
 *     -> W inference workers, each with its own engine context of T oneDNN
 *        threads, run up to max_batch slots as one batch and write each
 *        slot's top-k
 *     -> the writer (main thread) prints slot `emitted` once it is done,
 *        frees it, and so on: output order is input order.
 *
 * Who decodes (decode_threads):
 *   0 (default)  each worker claims the next max_batch inputs itself and
 *                decodes them on its own T oneDNN (OpenMP) threads, then runs
 *                them. On a CPU-bound machine this wastes nothing: no decode
 *                thread preempts an inference thread in the middle of a
 *                parallel region (where its partner would spin at the
 *                barrier), and the OpenMP threads go from decoding to
 *                inference without idling. Reading and decoding do not
 *                overlap inference, which costs only when cores are spare.
 *   D > 0        D decode threads (nice +CL_DECODE_NICE, as the server's decode
 *                pool) fill the ring ahead of the workers, overlapping file
 *                reads and decoding with inference: for slow storage or spare
 *                cores. A worker then runs a batch when max_batch images are
 *                ready, or fewer when no more can come soon: nothing is being
 *                decoded and the input is exhausted or the ring is full, or
 *                no image became ready for CL_STALL_MS (a slow stdin).
 * docs/cli.md has the measurements (bench/classify_vs_bench.sh).
 */
#include "classify.h"
#include "commands.h"

#include "cfg.h"
#include "engine.h"
#include "json.h"
#include "model_config.h"
#include "predict.h"
#include "server.h"
#include "status.h"
#include "tuned.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void set_error(cl_slot *s, const char *code, const char *msg) {
    s->err_code = code;
    snprintf(s->err_msg, sizeof s->err_msg, "%s", msg && *msg ? msg : code);
}

/* Reads the file of s into *buf (grown, at most max_body + 1 bytes). Returns
 * its length, or -1 with the slot's error set. */
static long long read_input(cl *c, cl_slot *s, char **buf, size_t *cap) {
    char msg[320];
    int fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        snprintf(msg, sizeof msg, "%s: %s", s->path, strerror(errno));
        set_error(s, "io_error", msg);
        return -1;
    }
    struct stat st;
    long long n = -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(msg, sizeof msg, "%s: not a regular file", s->path);
        set_error(s, "io_error", msg);
    } else if (st.st_size > c->max_body) {
        snprintf(msg, sizeof msg, "%s: %lld bytes, over max_body_bytes (%lld)", s->path,
                 (long long)st.st_size, (long long)c->max_body);
        set_error(s, "file_too_large", msg);
    } else {
        size_t want = (size_t)st.st_size + 1; /* one more: a file that grew is noticed */
        if (want > *cap) {
            char *nb = realloc(*buf, want);
            if (nb) {
                *buf = nb;
                *cap = want;
            }
        }
        if (want > *cap) {
            set_error(s, "internal", "out of memory for the file");
        } else {
            size_t got = 0;
            for (;;) {
                if (got == *cap) {
                    if ((long long)got > c->max_body)
                        break;
                    size_t nc =
                        *cap * 2 > (size_t)c->max_body + 1 ? (size_t)c->max_body + 1 : *cap * 2;
                    char *nb = realloc(*buf, nc);
                    if (!nb)
                        break;
                    *buf = nb;
                    *cap = nc;
                }
                ssize_t r = read(fd, *buf + got, *cap - got);
                if (r < 0 && errno == EINTR)
                    continue;
                if (r <= 0) {
                    if (r < 0) {
                        snprintf(msg, sizeof msg, "%s: %s", s->path, strerror(errno));
                        set_error(s, "io_error", msg);
                        got = SIZE_MAX;
                    }
                    break;
                }
                got += (size_t)r;
            }
            if (got == SIZE_MAX) {
                /* error set */
            } else if ((long long)got > c->max_body) {
                snprintf(msg, sizeof msg, "%s: over max_body_bytes (%lld)", s->path,
                         (long long)c->max_body);
                set_error(s, "file_too_large", msg);
            } else if (got == *cap) {
                set_error(s, "internal", "out of memory for the file");
            } else {
                n = (long long)got;
            }
        }
    }
    close(fd);
    return n;
}

static long long thread_cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void decode_input_timed(cl *c, cl_slot *s, char **buf, size_t *cap);

/* Decodes the slot's file into its tensor; on failure the slot's error is set. */
static void decode_input(cl *c, cl_slot *s, char **buf, size_t *cap) {
    long long t0 = thread_cpu_ns();
    decode_input_timed(c, s, buf, cap);
    atomic_fetch_add_explicit(&c->decode_ns, thread_cpu_ns() - t0, memory_order_relaxed);
}

static void decode_input_timed(cl *c, cl_slot *s, char **buf, size_t *cap) {
    long long len = read_input(c, s, buf, cap);
    if (len < 0)
        return;
    img_params p = c->mc.input;
    p.max_pixels = c->max_pixels;
    img_cost cost;
    char msg[320] = "";
    const char *code;
    img_status st = img_probe(*buf, (size_t)len, &p, &cost, msg, sizeof msg);
    if (st == IMG_OK && cost.peak_bytes > c->mem_limit) {
        snprintf(msg, sizeof msg,
                 "decoding this %dx%d image needs %llu bytes, more than max_inflight_bytes (%llu)",
                 cost.width, cost.height, (unsigned long long)cost.peak_bytes,
                 (unsigned long long)c->mem_limit);
        st = IMG_ERR_TOO_COMPLEX;
    } else if (st == IMG_OK) {
        pthread_mutex_lock(&c->mu); /* wait for room: decodes in flight stay under the limit */
        while (!c->stop && c->mem_used && c->mem_used + cost.peak_bytes > c->mem_limit)
            pthread_cond_wait(&c->cv_mem, &c->mu);
        c->mem_used += cost.peak_bytes;
        pthread_mutex_unlock(&c->mu);
        st = img_preprocess(*buf, (size_t)len, &p, s->in, msg, sizeof msg);
        pthread_mutex_lock(&c->mu);
        c->mem_used -= cost.peak_bytes;
        pthread_cond_broadcast(&c->cv_mem);
        pthread_mutex_unlock(&c->mu);
    }
    if (st != IMG_OK) {
        code = status_of_img(st)->code;
        set_error(s, code, msg[0] ? msg : img_status_str(st));
    }
}

static void *decoder_main(void *arg) {
    cl *c = arg;
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), CL_DECODE_NICE); /* best effort */
    char *buf = NULL;
    size_t cap = 0;
    for (;;) {
        ci_entry e;
        pthread_mutex_lock(&c->rmu);
        pthread_mutex_lock(&c->mu);
        int stop = c->stop;
        pthread_mutex_unlock(&c->mu);
        int got = !stop && ci_next(c->it, &e);
        pthread_mutex_lock(&c->mu);
        if (!got) {
            if (!stop && ci_failed(c->it))
                c->oom = 1;
            c->input_done = 1;
            pthread_cond_broadcast(&c->cv_ready);
            pthread_cond_broadcast(&c->cv_done);
            pthread_mutex_unlock(&c->mu);
            pthread_mutex_unlock(&c->rmu);
            break;
        }
        while (!c->stop && c->next_seq - c->emitted >= c->window) {
            pthread_cond_broadcast(&c->cv_ready); /* the ring is full: partial batches may run */
            pthread_cond_wait(&c->cv_free, &c->mu);
        }
        if (c->stop) {
            pthread_mutex_unlock(&c->mu);
            pthread_mutex_unlock(&c->rmu);
            free(e.path);
            break;
        }
        cl_slot *s = &c->slots[c->next_seq++ % c->window];
        s->state = SL_DECODING;
        s->path = e.path;
        s->err_code = NULL;
        s->npreds = 0;
        c->ndecoding++;
        pthread_mutex_unlock(&c->mu);
        pthread_mutex_unlock(&c->rmu);

        if (e.err_code)
            set_error(s, e.err_code, e.err_msg);
        else
            decode_input(c, s, &buf, &cap);

        pthread_mutex_lock(&c->mu);
        c->ndecoding--;
        if (s->err_code) {
            s->state = SL_DONE;
            pthread_cond_signal(&c->cv_done);
        } else {
            s->state = SL_READY;
            c->nready++;
            c->last_ready = cl_now();
        }
        pthread_cond_broadcast(&c->cv_ready);
        pthread_mutex_unlock(&c->mu);
    }
    free(buf);
    return NULL;
}

typedef struct {
    cl *c;
    engine_ctx *ctx;
    float *in, *out;
    cl_slot **batch, **good;
    char **bufs; /* inline decoding: one file buffer per oneDNN thread */
    size_t *caps;
} cl_worker;

/* Under mu: 1 when a batch should be taken now, 0 to wait (*wait_s > 0: at
 * most that long), -1 when there is nothing left to do. */
static int batch_due(cl *c, double *wait_s) {
    *wait_s = 0;
    if (c->stop)
        return -1;
    if (c->nready >= c->batch)
        return 1;
    if (c->nready == 0)
        return c->input_done && c->ndecoding == 0 ? -1 : 0;
    if (c->ndecoding == 0 && (c->input_done || c->next_seq - c->emitted >= c->window))
        return 1;
    double idle = cl_now() - c->last_ready;
    if (idle >= CL_STALL_MS / 1e3)
        return 1;
    *wait_s = CL_STALL_MS / 1e3 - idle;
    return 0;
}

/* Runs the n slots of w->batch whose tensors are decoded (no error) as one
 * batch and marks all n done. */
static void run_batch(cl_worker *w, int n) {
    cl *c = w->c;
    size_t classes = (size_t)c->info.num_classes;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (!w->batch[i]->err_code) {
            memcpy(w->in + (size_t)m * c->in_floats, w->batch[i]->in, c->in_floats * sizeof(float));
            w->good[m++] = w->batch[i];
        }
    if (m > 0) {
        int run_n = m;
        if (c->info.fixed_batch) { /* a fixed-batch model runs its batch, zero-padded */
            run_n = c->info.fixed_batch;
            memset(w->in + (size_t)m * c->in_floats, 0,
                   (size_t)(run_n - m) * c->in_floats * sizeof(float));
        }
        char err[512] = "";
        double t0 = cl_now();
        engine_status es = engine_run(w->ctx, w->in, run_n, w->out, err, sizeof err);
        atomic_fetch_add_explicit(&c->infer_ns, (long long)((cl_now() - t0) * 1e9),
                                  memory_order_relaxed);
        for (int i = 0; i < m; i++) {
            cl_slot *s = w->good[i];
            if (es != ENGINE_OK)
                set_error(s, "inference_failed", err);
            else
                s->npreds =
                    predict_top_k(w->out + (size_t)i * classes, (int)classes, c->k, s->preds);
        }
    }
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < n; i++)
        w->batch[i]->state = SL_DONE;
    pthread_cond_signal(&c->cv_done);
    pthread_mutex_unlock(&c->mu);
}

/* Separate decode threads: take the ready slots (batch_due) and run them. */
static void *worker_main(void *arg) {
    cl_worker *w = arg;
    cl *c = w->c;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        double wait_s;
        int due;
        while ((due = batch_due(c, &wait_s)) == 0) {
            if (wait_s > 0) {
                struct timespec ts;
                cl_abs_deadline(&ts, wait_s);
                pthread_cond_timedwait(&c->cv_ready, &c->mu, &ts);
            } else {
                pthread_cond_wait(&c->cv_ready, &c->mu);
            }
        }
        if (due < 0) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        int n = 0;
        for (uint64_t q = c->emitted; q < c->next_seq && n < c->batch; q++) {
            cl_slot *s = &c->slots[q % c->window];
            if (s->state == SL_READY) {
                s->state = SL_RUNNING;
                w->batch[n++] = s;
            }
        }
        c->nready -= n;
        pthread_mutex_unlock(&c->mu);
        run_batch(w, n);
    }
    return NULL;
}

static int by_size_desc(const void *a, const void *b) {
    long long x = (*(cl_slot *const *)a)->size, y = (*(cl_slot *const *)b)->size;
    return (x < y) - (x > y);
}

/* Inline decoding (decode_threads 0): the worker claims the next max_batch
 * inputs itself, decodes them on its own oneDNN (OpenMP) threads, then runs
 * them: on a CPU-bound machine nothing preempts the inference threads and no
 * thread spins idle while another decodes. Returns when the input ends. */
static void *inline_worker_main(void *arg) {
    cl_worker *w = arg;
    cl *c = w->c;
    for (;;) {
        int n = 0, end = 0;
        pthread_mutex_lock(&c->rmu);
        while (n < c->batch && !end) {
            ci_entry e;
            pthread_mutex_lock(&c->mu);
            /* never wait for the ring while holding claimed slots: run them first */
            int full = c->next_seq - c->emitted >= c->window;
            while (!c->stop && full && n == 0) {
                pthread_cond_wait(&c->cv_free, &c->mu);
                full = c->next_seq - c->emitted >= c->window;
            }
            int stop = c->stop || c->input_done;
            pthread_mutex_unlock(&c->mu);
            if (stop || full)
                break;
            if (n > 0 && ci_would_block(c->it))
                break; /* a slow stdin: run what came instead of waiting for a full batch */
            if (!ci_next(c->it, &e)) {
                pthread_mutex_lock(&c->mu);
                if (ci_failed(c->it))
                    c->oom = 1;
                c->input_done = 1;
                pthread_cond_broadcast(&c->cv_done);
                pthread_cond_broadcast(&c->cv_free);
                pthread_mutex_unlock(&c->mu);
                end = 1;
                break;
            }
            pthread_mutex_lock(&c->mu);
            cl_slot *s = &c->slots[c->next_seq++ % c->window];
            s->path = e.path;
            s->err_code = NULL;
            s->npreds = 0;
            if (e.err_code) {
                set_error(s, e.err_code, e.err_msg);
                s->state = SL_DONE;
                pthread_cond_signal(&c->cv_done);
            } else {
                s->state = SL_DECODING;
                s->size = e.size;
                w->batch[n++] = s;
            }
            pthread_mutex_unlock(&c->mu);
        }
        pthread_mutex_unlock(&c->rmu);
        if (n == 0) {
            pthread_mutex_lock(&c->mu);
            int done = c->stop || c->input_done;
            pthread_mutex_unlock(&c->mu);
            if (done)
                break;
            continue;
        }
        /* largest first (by file size): the threads finish together */
        for (int i = 0; i < n; i++)
            w->good[i] = w->batch[i];
        qsort(w->good, (size_t)n, sizeof(cl_slot *), by_size_desc);
#pragma omp parallel for num_threads(c->threads) schedule(dynamic, 1)
        for (int i = 0; i < n; i++) {
            int t = omp_get_thread_num();
            decode_input(c, w->good[i], &w->bufs[t], &w->caps[t]);
        }
        run_batch(w, n);
    }
    return NULL;
}

static void usage(FILE *f) {
    fprintf(f, "usage: resnetd classify [--model M] [--top-k K] [-r] [--format jsonl|csv]\n"
               "                        [--output FILE] [options] INPUT...\n"
               "  INPUT is an image file, a directory (its image files, sorted by name; -r:\n"
               "  sub-directories too), @LIST (a file of paths, one a line) or - (paths on\n"
               "  stdin). One JSON line per file, in input order: {\"file\", \"predictions\"}\n"
               "  or {\"file\", \"error\": {\"code\", \"message\"}}; --format csv: the rows\n"
               "  file,rank,index,label,probability,error,message with a header.\n"
               "  -r, --recursive          descend into sub-directories\n"
               "  --all-files              in directories, take every file, not only\n"
               "                           .jpg .jpeg .jpe .png .webp\n"
               "  -o, --output FILE        write there instead of stdout\n"
               "  --progress, --no-progress  progress bar on stderr (default: when it is a tty)\n"
               "  --stats                  a JSON summary line on stderr at the end\n"
               "  --workers W, --threads-per-worker T, --max-batch B, --max-body-bytes N,\n"
               "  --max-image-pixels N, --max-inflight-bytes N, --top-k K: as the server\n"
               "  options (resnetd serve --help), their RESNETD_* variables too. Defaults:\n"
               "  1 worker of every core, the model's max_batch, top-k 5.\n"
               "  --decode-threads D: 0 (default) decodes on the workers' own threads,\n"
               "  between batches; D > 0 starts D decode threads that work ahead.\n"
               "  Exit codes: 0 every file classified, 1 some file failed (its error line\n"
               "  says why) or the run stopped, 2 bad usage or model configuration.\n");
}

/* The server options classify shares (config/cfg.c: bounds, env names, flags). */
static const char *const SHARED[] = {
    "top_k",          "workers",        "threads_per_worker", "max_batch",
    "decode_threads", "max_body_bytes", "max_image_pixels",   "max_inflight_bytes"};
#define NSHARED (sizeof(SHARED) / sizeof(SHARED[0]))

/* The table's env and flag of a shared key. */
static void shared_names(const char *key, const char **env, const char **flag) {
    *env = *flag = NULL;
    for (size_t i = 0; i < cfg_option_count(); i++) {
        const char *name;
        cfg_option_names(i, &name, env, flag);
        if (strcmp(name, key) == 0)
            return;
    }
    *env = *flag = NULL;
}

typedef struct {
    const char *model, *output;
    int recursive, all_files, format, progress, stats;
    char **inputs;
    int ninputs;
} cl_args;

/* "--name=value" or "--name value" at argv[*i]; NULL when not this flag.
 * *missing is set when the flag has no value. */
static const char *flag_arg(int argc, char **argv, int *i, const char *flag, int *missing) {
    size_t n = strlen(flag);
    if (strncmp(argv[*i], flag, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != 0)
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

/* Returns 0, 2 (usage error printed) or -1 (--help printed). */
static int parse_args(int argc, char **argv, cl_args *a, cfg_t *cfg) {
    char err[512];
    for (size_t k = 0; k < NSHARED; k++) {
        const char *env, *flag, *v;
        shared_names(SHARED[k], &env, &flag);
        if (env && (v = getenv(env)) && cfg_set(cfg, SHARED[k], v, err, sizeof err)) {
            fprintf(stderr, "resnetd classify: %s: %s\n", env, err);
            return 2;
        }
    }
    a->progress = -1;
    int only_inputs = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v;
        int missing = 0;
        if (only_inputs || s[0] != '-' || !strcmp(s, "-")) {
            a->inputs[a->ninputs++] = argv[i];
            continue;
        }
        if (!strcmp(s, "--")) {
            only_inputs = 1;
        } else if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(s, "-r") || !strcmp(s, "--recursive")) {
            a->recursive = 1;
        } else if (!strcmp(s, "--all-files")) {
            a->all_files = 1;
        } else if (!strcmp(s, "--progress") || !strcmp(s, "--no-progress")) {
            a->progress = s[2] == 'p';
        } else if (!strcmp(s, "--stats")) {
            a->stats = 1;
        } else if ((v = flag_arg(argc, argv, &i, "--model", &missing))) {
            a->model = v;
        } else if ((v = flag_arg(argc, argv, &i, "--output", &missing)) ||
                   (v = flag_arg(argc, argv, &i, "-o", &missing))) {
            if (!*v) {
                fprintf(stderr, "resnetd classify: --output needs a file name\n");
                return 2;
            }
            a->output = v;
        } else if ((v = flag_arg(argc, argv, &i, "--format", &missing))) {
            if (strcmp(v, "jsonl") && strcmp(v, "csv")) {
                fprintf(stderr, "resnetd classify: --format: '%s' is not jsonl or csv\n", v);
                return 2;
            }
            a->format = strcmp(v, "csv") ? FMT_JSONL : FMT_CSV;
        } else {
            size_t k;
            for (k = 0; k < NSHARED && !missing; k++) {
                const char *env, *flag;
                shared_names(SHARED[k], &env, &flag);
                if (flag && (v = flag_arg(argc, argv, &i, flag, &missing))) {
                    if (cfg_set(cfg, SHARED[k], v, err, sizeof err)) {
                        fprintf(stderr, "resnetd classify: %s: %s\n", flag, err);
                        return 2;
                    }
                    break;
                }
            }
            if (k == NSHARED && !missing) {
                fprintf(stderr, "resnetd classify: unknown option '%s' (see --help)\n", s);
                return 2;
            }
        }
        if (missing) {
            fprintf(stderr, "resnetd classify: %s needs a value\n", s);
            return 2;
        }
    }
    if (a->ninputs == 0) {
        fprintf(stderr, "resnetd classify: no input (files, directories, @LIST or -)\n");
        usage(stderr);
        return 2;
    }
    return 0;
}

/* As serve: the throughput pick of the model's tuned.json (resnetd bench
 * --tune, measured on this machine) fills workers, threads_per_worker and
 * max_batch when neither a flag nor a variable (nor config.json, for
 * max_batch) set them, and its conv algorithms come with it. A foreign or
 * malformed file is a warning. */
static void apply_tuned(cl *c, const cfg_t *cfg, int *threads) {
    int own_w = !cfg_is_set(cfg, "workers"), own_t = !cfg_is_set(cfg, "threads_per_worker");
    int own_b = !cfg_is_set(cfg, "max_batch") && !c->mc.max_batch_set;
    if (!c->mc.tuned_path || !(own_w || own_t || own_b))
        return;
    const char *base = strrchr(c->mc.onnx_path, '/');
    tuned_fingerprint here;
    tuned_fingerprint_here(c->mc.int8, engine_cpu_isa(), &here);
    tuned_plan plan;
    char err[1024];
    tuned_status st = tuned_load(c->mc.tuned_path, &here, base ? base + 1 : c->mc.onnx_path, &plan,
                                 err, sizeof err);
    if (st != TUNED_OK || !plan.throughput.batch) {
        if (st != TUNED_MISSING)
            fprintf(stderr, "resnetd classify: warning: %s ignored: %s\n", c->mc.tuned_path,
                    st == TUNED_OK ? "no throughput pick" : err);
        tuned_plan_release(&plan);
        return;
    }
    model_config_take_conv_choices(&c->mc, &plan.throughput);
    tuned_plan_release(&plan);
    if (own_w)
        c->workers = plan.throughput.workers;
    if (own_t)
        *threads = plan.throughput.threads;
    if (own_b)
        c->batch = plan.throughput.batch;
}

/* Loads the model and the contexts. Returns 0, 1 or 2 (message printed). */
static int setup(cl *c, const char *model, const cfg_t *cfg) {
    char err[1024], def[PATH_MAX];
    if (!model) {
        if (server_default_model("fashion-mnist", def, sizeof def)) {
            fprintf(stderr, "resnetd classify: --model missing and no bundled model found\n");
            return 2;
        }
        model = def;
    }
    if (model_config_load(model, &c->mc, err, sizeof err)) {
        fprintf(stderr, "resnetd classify: %s\n", err);
        return 2;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    c->workers = (int)cfg->workers;
    int threads = (int)cfg->threads_per_worker;
    c->batch = cfg->max_batch ? (int)cfg->max_batch : c->mc.max_batch;
    apply_tuned(c, cfg, &threads);
    c->threads = threads ? threads : (int)(cores / c->workers > 0 ? cores / c->workers : 1);
    c->decoders = (int)cfg->decode_threads; /* 0: inline, in the workers' oneDNN threads */
    if (c->batch < 1)
        c->batch = 1;
    engine_load_params lp = model_config_engine_params(&c->mc, c->batch);
    if (engine_model_load(c->mc.onnx_path, &lp, &c->em, err, sizeof err) != ENGINE_OK) {
        fprintf(stderr, "resnetd classify: %s\n", err);
        return 1;
    }
    engine_model_get_info(c->em, &c->info);
    if (c->info.fixed_batch)
        c->batch = c->info.fixed_batch;
    else if (c->info.max_batch > 0 && c->batch > c->info.max_batch)
        c->batch = c->info.max_batch;
    int ch = img_channels(&c->mc.input);
    if (ch != c->info.channels || c->mc.input.crop_h != c->info.height ||
        c->mc.input.crop_w != c->info.width) {
        fprintf(stderr,
                "resnetd classify: %s: preprocessing gives [%d,%d,%d] but the model takes "
                "[%d,%d,%d]\n",
                model, ch, c->mc.input.crop_h, c->mc.input.crop_w, c->info.channels, c->info.height,
                c->info.width);
        return 1;
    }
    c->in_floats = (size_t)ch * (size_t)c->info.height * (size_t)c->info.width;
    c->k = (int)cfg->top_k < c->info.num_classes ? (int)cfg->top_k : c->info.num_classes;
    c->max_body = cfg->max_body_bytes;
    c->max_pixels = cfg->max_image_pixels;
    c->mem_limit = (uint64_t)cfg->max_inflight_bytes;
    c->window = (size_t)c->workers * (size_t)c->batch * 3 + (size_t)c->decoders;
    /* the slot tensors: decoded in place (inline) or by the decode threads */
    c->slots = calloc(c->window, sizeof(cl_slot));
    c->tensors = malloc(c->window * c->in_floats * sizeof(float));
    c->preds = malloc(c->window * (size_t)(c->k > 0 ? c->k : 1) * sizeof(predict_entry));
    c->ctx = calloc((size_t)c->workers, sizeof(engine_ctx *));
    if (!c->slots || !c->tensors || !c->preds || !c->ctx) {
        fprintf(stderr, "resnetd classify: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < c->window; i++) {
        c->slots[i].in = c->tensors + i * c->in_floats;
        c->slots[i].preds = c->preds + i * (size_t)(c->k > 0 ? c->k : 1);
    }
    engine_ctx_params cp = engine_ctx_default_params();
    cp.threads = c->threads;
    for (int i = 0; i < c->workers; i++)
        if (engine_ctx_create(c->em, &cp, &c->ctx[i], err, sizeof err) != ENGINE_OK) {
            fprintf(stderr, "resnetd classify: %s\n", err);
            return 1;
        }
    return 0;
}

static void teardown(cl *c) {
    for (int i = 0; c->ctx && i < c->workers; i++)
        engine_ctx_free(c->ctx[i]);
    free(c->ctx);
    for (size_t i = 0; c->slots && i < c->window; i++)
        free(c->slots[i].path);
    free(c->slots);
    free(c->tensors);
    free(c->preds);
    engine_model_free(c->em);
    model_config_free(&c->mc);
}

/* Starts the threads, writes, joins. Returns the exit code. */
static int run(cl *c, int stats) {
    int rc = 0, nd = 0, nw = 0, counting = 0;
    pthread_t *dt = calloc((size_t)c->decoders + 1, sizeof(pthread_t));
    pthread_t *wt = calloc((size_t)c->workers, sizeof(pthread_t));
    cl_worker *ws = calloc((size_t)c->workers, sizeof(cl_worker));
    pthread_t counter;
    size_t out_floats = (size_t)c->info.num_classes;
    int rb = c->info.fixed_batch ? c->info.fixed_batch : c->batch;
    if (!dt || !wt || !ws) {
        fprintf(stderr, "resnetd classify: out of memory\n");
        rc = 1;
        goto out;
    }
    for (int i = 0; i < c->workers; i++) {
        ws[i].c = c;
        ws[i].ctx = c->ctx[i];
        ws[i].in = malloc((size_t)rb * c->in_floats * sizeof(float));
        ws[i].out = malloc((size_t)rb * out_floats * sizeof(float));
        ws[i].batch = malloc((size_t)c->batch * sizeof(cl_slot *));
        ws[i].good = malloc((size_t)c->batch * sizeof(cl_slot *));
        ws[i].bufs = calloc((size_t)c->threads, sizeof(char *));
        ws[i].caps = calloc((size_t)c->threads, sizeof(size_t));
        if (!ws[i].in || !ws[i].out || !ws[i].batch || !ws[i].good || !ws[i].bufs || !ws[i].caps) {
            fprintf(stderr, "resnetd classify: out of memory\n");
            rc = 1;
            goto out;
        }
    }
    c->t_start = cl_now();
    atomic_store(&c->total, -1);
    if (c->progress && pthread_create(&counter, NULL, cl_counter_main, c) == 0)
        counting = 1;
    for (; nw < c->workers; nw++)
        if (pthread_create(&wt[nw], NULL, c->decoders ? worker_main : inline_worker_main,
                           &ws[nw]) != 0)
            break;
    for (; nd < c->decoders && nw == c->workers; nd++)
        if (pthread_create(&dt[nd], NULL, decoder_main, c) != 0)
            break;
    if (nw < c->workers || nd < c->decoders) {
        fprintf(stderr, "resnetd classify: cannot start threads\n");
        pthread_mutex_lock(&c->mu);
        c->stop = 1;
        pthread_cond_broadcast(&c->cv_ready);
        pthread_cond_broadcast(&c->cv_free);
        pthread_mutex_unlock(&c->mu);
        rc = 1;
    } else {
        rc = cl_writer(c);
        if (rc) {
            /* the output failed: nothing more can be written, and a thread
             * may be blocked reading a list from a pipe that never ends */
            fflush(stderr);
            _exit(1);
        }
    }
    atomic_store(&c->counter_stop, 1);
    for (int i = 0; i < nd; i++)
        pthread_join(dt[i], NULL);
    for (int i = 0; i < nw; i++)
        pthread_join(wt[i], NULL);
    if (counting)
        pthread_join(counter, NULL);
    if (!rc && c->failed)
        rc = 1;
    if (stats) {
        double el = cl_now() - c->t_start;
        fprintf(stderr,
                "{\"files\": %llu, \"failed\": %llu, \"seconds\": %.3f, \"images_per_second\": "
                "%.2f, \"decode_cpu_seconds\": %.3f, \"infer_seconds\": %.3f, \"batch\": %d, "
                "\"workers\": %d, \"threads\": %d, \"decode_threads\": %d}\n",
                (unsigned long long)c->emitted, (unsigned long long)c->failed, el,
                el > 0 ? (double)c->emitted / el : 0.0, (double)atomic_load(&c->decode_ns) / 1e9,
                (double)atomic_load(&c->infer_ns) / 1e9, c->batch, c->workers, c->threads,
                c->decoders);
    }
out:
    for (int i = 0; ws && i < c->workers; i++) {
        free(ws[i].in);
        free(ws[i].out);
        free(ws[i].batch);
        free(ws[i].good);
        for (int t = 0; ws[i].bufs && t < c->threads; t++)
            free(ws[i].bufs[t]);
        free(ws[i].bufs);
        free(ws[i].caps);
    }
    free(ws);
    free(dt);
    free(wt);
    return rc;
}

int cmd_classify(int argc, char **argv) {
    cl_args a;
    memset(&a, 0, sizeof a);
    a.inputs = calloc((size_t)argc, sizeof(char *));
    if (!a.inputs) {
        fprintf(stderr, "resnetd classify: out of memory\n");
        return 1;
    }
    cfg_t cfg;
    cfg_defaults(&cfg);
    int rc = parse_args(argc, argv, &a, &cfg);
    if (rc) {
        free(a.inputs);
        cfg_free(&cfg);
        return rc < 0 ? 0 : rc;
    }
    cl *c = calloc(1, sizeof(cl));
    if (!c) {
        free(a.inputs);
        cfg_free(&cfg);
        fprintf(stderr, "resnetd classify: out of memory\n");
        return 1;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->rmu, NULL);
    pthread_cond_init(&c->cv_ready, NULL);
    pthread_cond_init(&c->cv_done, NULL);
    pthread_cond_init(&c->cv_free, NULL);
    pthread_cond_init(&c->cv_mem, NULL);
    c->format = a.format;
    c->inputs = a.inputs;
    c->ninputs = a.ninputs;
    c->recursive = a.recursive;
    c->all_files = a.all_files;
    rc = setup(c, a.model, &cfg);
    if (!rc) {
        c->out = stdout;
        if (a.output && !(c->out = fopen(a.output, "w"))) {
            fprintf(stderr, "resnetd classify: %s: %s\n", a.output, strerror(errno));
            rc = 1;
        }
    }
    if (!rc && !(c->it = ci_open(a.inputs, a.ninputs, a.recursive, a.all_files, stdin))) {
        fprintf(stderr, "resnetd classify: out of memory\n");
        rc = 1;
    }
    if (!rc) {
        c->progress = a.progress >= 0 ? a.progress : isatty(STDERR_FILENO);
        rc = run(c, a.stats);
    }
    if (c->out && c->out != stdout && fclose(c->out) != 0 && !rc) {
        fprintf(stderr, "resnetd classify: %s: %s\n", a.output, strerror(errno));
        rc = 1;
    }
    ci_close(c->it);
    teardown(c);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->rmu);
    pthread_cond_destroy(&c->cv_ready);
    pthread_cond_destroy(&c->cv_done);
    pthread_cond_destroy(&c->cv_free);
    pthread_cond_destroy(&c->cv_mem);
    free(c);
    free(a.inputs);
    cfg_free(&cfg);
    return rc;
}
