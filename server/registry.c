/* registry.c — the live model registry (design in registry.h). */
#include "registry.h"

#include "log.h"
#include "server.h"
#include "tuned.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REG_MAXV 64  /* versions remembered per model (index entries) */
#define REG_NHIST 10 /* load duration buckets: 0.1 s * 2^k, k = 0..9, then +Inf */

enum { MODE_NONE = 0, MODE_POLL, MODE_EXPLICIT };

typedef struct {
    long version;
    int state;
    char reason[300];
    app_model *m; /* published: takes handles */
    uint64_t fp;  /* the content m was loaded from, or the content that failed */
    int failed;   /* the load of content fp failed */
    uint64_t loads_ok, loads_failed;
} reg_ver;

typedef struct {
    char name[128];
    char path[PATH_MAX]; /* its directory or .onnx file */
    int wanted;          /* should serve (strict readiness) */
    char reason[300];    /* a model-level problem (version_policy) */
    reg_ver v[REG_MAXV];
    int nv;
} reg_entry;

typedef struct op {
    int load;
    char name[128];
    int done, status;
    char msg[400];
    registry_done_fn fn; /* registry_control_async: called, then the op freed */
    void *ctx;
    struct op *next;
} op;

struct registry {
    pthread_mutex_t mu;
    pthread_cond_t cv, done_cv;
    reg_entry *e;
    int n, cap;
    app_model *retired;
    pthread_t th;
    int running, stop, rescan;
    int mode;
    op *ops;
    uint64_t hist[REG_NHIST + 1], hist_ns, hist_count;
};

typedef struct {
    long version;
    char dir[PATH_MAX];
    int versioned;
} cand;

/* server.h: the bundled default model, looked up here (where the model list is
 * built) so that the registry does not call back into server.c. */
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

const char *registry_state_name(int s) {
    static const char *const n[] = {"READY", "LOADING", "UNLOADING", "UNAVAILABLE"};
    return s >= 0 && s < 4 ? n[s] : "UNAVAILABLE";
}

/* ---- engine hooks for the worker pool (workers.h) ---- */

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

static int ctx_run(void *ctx, const float *in, int n, float *out, const engine_fetch *fetch,
                   int nfetch, char *err, size_t err_len) {
    return engine_run_fetch(ctx, in, n, out, fetch, nfetch, err, err_len) == ENGINE_OK ? 0 : -1;
}

static int ctx_run_fixed(void *ctx, const float *in, int n, float *out, const engine_fetch *fetch,
                         int nfetch, char *err, size_t err_len) {
    /* a fixed-batch model always runs its full batch; rows past n are padding */
    ctx_pair *p = ctx;
    (void)n;
    return engine_run_fetch(p->c, in, p->fixed, out, fetch, nfetch, err, err_len) == ENGINE_OK ? 0
                                                                                               : -1;
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

/* ---- loading one version ---- */

/* The tuned plan (<version dir>/tuned.json, written by bench --tune) for the
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
    tuned_pick *p = c->tune_goal == CFG_TUNE_LATENCY ? &plan.latency : &plan.throughput;
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
        tuned_plan_release(&plan);
        return;
    }
    int w = 0, nconv = p->conv_tuned ? model_config_take_conv_choices(&m->mc, p) : -1;
    tuned_plan_release(&plan);
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
    if (nconv >= 0)
        w += snprintf(detail + w, sizeof detail - (size_t)w, " conv_algorithms=%d", nconv);
    m->tuned_goal = goal;
    snprintf(detail + w, sizeof detail - (size_t)w, " (%s pick of %s%s%s%s)", goal, m->tuned_path,
             own_w ? "" : "; workers set", own_t ? "" : "; threads_per_worker set",
             own_b ? "" : "; max_batch set");
    log_msg(LOG_INFO, "tuned plan applied", detail);
}

static void version_free(app_model *m) {
    if (!m || m->adopted)
        return;
    if (m->q)
        queue_close(m->q);
    if (m->pool)
        workers_join(m->pool);
    queue_destroy(m->q);
    engine_model_free(m->em);
    model_config_free(&m->mc);
    if (m->metrics) /* its series leave /metrics (nothing writes to the slot now) */
        metrics_remove_model(m->metrics, m->index);
    free(m);
}

/* A classifier answers one vector of class scores per image: its first
 * output is [N, classes] (size-1 dimensions besides, as [N, classes, 1, 1]).
 * 1 with err set when it is not (e.g. a feature map [N, 10, 14, 14]). */
static int not_a_vector(const engine_model *em, const char *dir, char *err, size_t len) {
    engine_tensor_desc d;
    engine_model_output_desc(em, 0, &d);
    int big = 0;
    for (int k = 1; k < d.ndim; k++)
        big += d.dims[k] != 1;
    if (big <= 1)
        return 0;
    char shape[160] = "";
    size_t w = 0;
    for (int k = 0; k < d.ndim && w < sizeof shape; k++)
        w += (size_t)snprintf(shape + w, sizeof shape - w, "%s%lld", k ? "," : "",
                              k == 0 ? -1LL : (long long)d.dims[k]);
    snprintf(err, len, "%s: output '%s' is [%s], not a vector of class scores per image", dir,
             d.name, shape);
    return 1;
}

/* Loads candidate c of entry name (its own metrics slot) and starts its workers (warming up
 * in the background). Returns the version, or NULL with err set and *cfg_err
 * 1 when the model's configuration is at fault. */
static app_model *version_load(app *a, const char *name, const cand *c, char *err, size_t len,
                               int *cfg_err) {
    const cfg_t *cf = a->cfg;
    *cfg_err = 0;
    app_model *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, len, "out of memory");
        return NULL;
    }
    int rc = c->versioned ? model_config_load_version(c->dir, c->dir, &m->mc, err, len)
                          : model_config_load(c->dir, &m->mc, err, len);
    if (c->versioned && !rc) { /* the model's directory names it (config.json may rename it) */
        model_config_free(&m->mc);
        char mdir[PATH_MAX];
        snprintf(mdir, sizeof mdir, "%s", c->dir);
        char *sl = strrchr(mdir, '/');
        if (sl)
            *sl = 0;
        rc = model_config_load_version(mdir, c->dir, &m->mc, err, len);
    }
    if (rc) {
        *cfg_err = 1;
        free(m);
        return NULL;
    }
    snprintf(m->mc.name, sizeof m->mc.name, "%s", name);
    m->version = c->version;
    char ver[24];
    snprintf(ver, sizeof ver, "%ld", m->version);
    if ((m->index = metrics_add_model(a->metrics, name, ver)) < 0) {
        snprintf(err, len, "too many model versions loaded at once for the metrics (%d)",
                 METRICS_MAX_MODELS);
        model_config_free(&m->mc);
        free(m);
        return NULL;
    }
    m->metrics = a->metrics;
    m->max_batch = cf->max_batch ? (int)cf->max_batch : m->mc.max_batch;
    m->workers = (int)cf->workers;
    m->threads = (int)cf->threads_per_worker; /* 0 = cores / workers, below */
    apply_tuned(a, m);
    if (m->max_batch < 1)
        m->max_batch = 1;
    engine_load_params lp = model_config_engine_params(&m->mc, m->max_batch);
    if (engine_model_load(m->mc.onnx_path, &lp, &m->em, err, len) != ENGINE_OK)
        goto fail;
    engine_model_get_info(m->em, &m->info);
    if (m->info.fixed_batch)
        m->max_batch = m->info.fixed_batch;
    else if (m->info.max_batch > 0 && m->max_batch > m->info.max_batch)
        m->max_batch = m->info.max_batch;
    int ch = img_channels(&m->mc.input);
    if (ch != m->info.channels || m->mc.input.crop_h != m->info.height ||
        m->mc.input.crop_w != m->info.width) {
        snprintf(err, len, "%s: preprocessing gives [%d,%d,%d] but the model takes [%d,%d,%d]",
                 c->dir, ch, m->mc.input.crop_h, m->mc.input.crop_w, m->info.channels,
                 m->info.height, m->info.width);
        goto fail;
    }
    m->in_floats = (size_t)ch * (size_t)m->info.height * (size_t)m->info.width;
    if (not_a_vector(m->em, c->dir, err, len))
        goto fail;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (m->threads == 0)
        m->threads = (int)(cores / m->workers > 0 ? cores / m->workers : 1);
    if (!(m->q = queue_create((int)cf->queue_capacity, depth_hook, m))) {
        snprintf(err, len, "out of memory");
        goto fail;
    }
    int fixed = m->info.fixed_batch != 0;
    workers_params bp = {m->q,
                         m->workers,
                         m->max_batch,
                         (int64_t)cf->batch_timeout_us * 1000,
                         m->in_floats,
                         (size_t)m->info.num_classes,
                         fixed ? ctx_create_fixed : ctx_create,
                         fixed ? ctx_run_fixed : ctx_run,
                         fixed ? ctx_free_fixed : ctx_free,
                         m,
                         a->metrics,
                         m->index};
    if (!(m->pool = workers_start(&bp, err, len)))
        goto fail;
    return m;
fail:
    version_free(m);
    return NULL;
}

/* ---- the repository ---- */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static uint64_t fp_stat(uint64_t h, const char *dir, const char *file) {
    char p[PATH_MAX + 64];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, file);
    if (stat(p, &st) != 0)
        return fnv(h, "-", 1);
    int64_t v[3] = {(int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec, (int64_t)st.st_mtim.tv_nsec};
    return fnv(h, v, sizeof v);
}

static uint64_t fp_content(uint64_t h, const char *dir, const char *file) {
    char p[PATH_MAX + 64], buf[8192];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    FILE *f = fopen(p, "rb");
    if (!f)
        return fnv(h, "-", 1);
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0 && total < (1u << 22)) {
        h = fnv(h, buf, n);
        total += n;
    }
    fclose(f);
    return h;
}

/* What a candidate was loaded from: size + mtime of model.onnx, tuned.json
 * and quant.tsv; the bytes of config.json and labels.txt (the model's and the
 * version's). */
static uint64_t fingerprint(const cand *c, const char *mdir) {
    uint64_t h = 1469598103934665603ULL;
    struct stat st;
    if (stat(c->dir, &st) == 0 && S_ISREG(st.st_mode)) /* a bare .onnx file */
        return fnv(h,
                   (int64_t[]){(int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec,
                               (int64_t)st.st_mtim.tv_nsec},
                   3 * sizeof(int64_t));
    h = fp_stat(h, c->dir, "model.onnx");
    h = fp_stat(h, c->dir, "tuned.json");
    h = fp_stat(h, c->dir, "quant.tsv");
    h = fp_content(h, c->dir, "config.json");
    h = fp_content(h, c->dir, "labels.txt");
    if (c->versioned) {
        h = fp_content(h, mdir, "config.json");
        h = fp_content(h, mdir, "labels.txt");
    }
    return h;
}

static int has_onnx(const char *dir) {
    char p[PATH_MAX + 16];
    struct stat st;
    snprintf(p, sizeof p, "%s/model.onnx", dir);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The model's name before loading it: config.json's "name", else the
 * directory's (or .onnx file's) name. */
static void model_name(const char *path, char *name, size_t len) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(name, len, "%s", b);
    size_t n = strlen(name);
    if (n > 5 && !strcmp(name + n - 5, ".onnx"))
        name[n - 5] = 0;
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/config.json", path);
    json_t *j = json_load_file(p, 0, NULL);
    const char *s = j ? json_string_value(json_object_get(j, "name")) : NULL;
    if (s && *s && strlen(s) < len && !strchr(s, '/'))
        snprintf(name, len, "%s", s);
    json_decref(j);
}

static int cmp_cand(const void *x, const void *y) {
    long a = ((const cand *)x)->version, b = ((const cand *)y)->version;
    return a < b ? 1 : a > b ? -1 : 0; /* highest first */
}

/* The versions of the model at path its version_policy wants, highest first.
 * Returns their count, or -1 with err set (a bad version_policy). */
static int wanted_versions(const char *path, cand *out, int max, char *err, size_t len) {
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, len, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode) || has_onnx(path)) {
        out[0].version = 1;
        out[0].versioned = 0;
        snprintf(out[0].dir, sizeof out[0].dir, "%s", path);
        return 1;
    }
    cand *all = calloc(REG_MAXV, sizeof(*all));
    if (!all) {
        snprintf(err, len, "out of memory");
        return -1;
    }
    int n = 0;
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d)) && n < REG_MAXV) {
        const char *s = de->d_name;
        size_t k = strspn(s, "0123456789");
        if (!*s || s[k] || k > 15)
            continue;
        snprintf(all[n].dir, sizeof all[n].dir, "%s/%s", path, s);
        if (!has_onnx(all[n].dir))
            continue; /* not (yet) a version */
        all[n].version = atol(s);
        all[n].versioned = 1;
        n++;
    }
    if (d)
        closedir(d);
    qsort(all, (size_t)n, sizeof *all, cmp_cand);
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/config.json", path);
    json_t *j = json_load_file(p, 0, NULL), *vp = j ? json_object_get(j, "version_policy") : NULL;
    int keep = 1, rc = 0; /* default: latest 1 */
    long spec[REG_MAXV];
    int nspec = -1;
    if (vp) {
        json_t *l = json_object_get(vp, "latest"), *s = json_object_get(vp, "specific");
        if (json_object_get(vp, "all") && json_object_size(vp) == 1)
            keep = REG_MAXV;
        else if (json_is_object(l) && json_object_size(vp) == 1) {
            json_t *k = json_object_get(l, "num_versions");
            if (!json_is_integer(k) || json_integer_value(k) < 1) {
                snprintf(err, len,
                         "%s: version_policy.latest.num_versions: expected an integer >= 1", p);
                rc = -1;
            } else
                keep = json_integer_value(k) > REG_MAXV ? REG_MAXV : (int)json_integer_value(k);
        } else if (json_is_object(s) && json_object_size(vp) == 1 &&
                   json_is_array(json_object_get(s, "versions"))) {
            json_t *vs = json_object_get(s, "versions"), *e;
            size_t i;
            nspec = 0;
            json_array_foreach(vs, i, e) {
                if (!json_is_integer(e) || json_integer_value(e) < 0) {
                    snprintf(err, len, "%s: version_policy.specific.versions: integers expected",
                             p);
                    rc = -1;
                } else if (nspec < REG_MAXV)
                    spec[nspec++] = (long)json_integer_value(e);
            }
        } else {
            snprintf(err, len,
                     "%s: version_policy: expected {\"latest\":{\"num_versions\":K}}, {\"all\":{}} "
                     "or {\"specific\":{\"versions\":[..]}}",
                     p);
            rc = -1;
        }
    }
    json_decref(j);
    int m = 0;
    for (int i = 0; rc == 0 && i < n && m < max; i++) {
        int want = nspec < 0 ? i < keep : 0;
        for (int k = 0; k < nspec; k++)
            want |= spec[k] == all[i].version;
        if (want)
            out[m++] = all[i];
    }
    free(all);
    return rc ? -1 : m;
}

/* ---- the table (callers hold mu) ---- */

static reg_entry *find_entry(registry *r, const char *name, size_t len) {
    for (int i = 0; i < r->n; i++)
        if (strlen(r->e[i].name) == len && !strncmp(r->e[i].name, name, len))
            return &r->e[i];
    return NULL;
}

static reg_entry *add_entry(app *a, const char *name, const char *path) {
    registry *r = a->reg;
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 8;
        reg_entry *e = realloc(r->e, (size_t)cap * sizeof(*e));
        if (!e)
            return NULL;
        r->e = e;
        r->cap = cap;
    }
    reg_entry *e = &r->e[r->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->path, sizeof e->path, "%s", path);
    return e;
}

static reg_ver *find_ver(reg_entry *e, long v) {
    for (int i = 0; i < e->nv; i++)
        if (e->v[i].version == v)
            return &e->v[i];
    return NULL;
}

static reg_ver *add_ver(reg_entry *e, long v) {
    if (e->nv == REG_MAXV) { /* forget the oldest version that does not serve */
        int k = 0;
        while (k < e->nv && e->v[k].m)
            k++;
        if (k == e->nv)
            return NULL;
        memmove(&e->v[k], &e->v[k + 1], (size_t)(e->nv - k - 1) * sizeof e->v[0]);
        e->nv--;
    }
    reg_ver *rv = &e->v[e->nv++];
    memset(rv, 0, sizeof *rv);
    rv->version = v;
    rv->state = REG_UNAVAILABLE;
    return rv;
}

static void retire(registry *r, reg_ver *rv, const char *why) {
    app_model *m = rv->m;
    if (!m)
        return;
    rv->m = NULL;
    rv->state = REG_UNAVAILABLE;
    snprintf(rv->reason, sizeof rv->reason, "%s", why);
    m->next = r->retired;
    r->retired = m;
    char d[400];
    snprintf(d, sizeof d, "%s version %ld: %s", m->mc.name, m->version, why);
    log_msg(LOG_INFO, "model version retired", d);
}

static void observe_load(registry *r, int64_t ns) {
    double s = (double)ns / 1e9, ub = 0.1;
    int b = 0;
    while (b < REG_NHIST && s > ub) {
        b++;
        ub *= 2;
    }
    r->hist[b]++;
    r->hist_ns += (uint64_t)ns;
    r->hist_count++;
}

static int wait_warm(app_model *m, char *err, size_t len) {
    for (;;) {
        int w = workers_ready(m->pool, err, len);
        if (w)
            return w;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
}

/* Brings entry e (at path) in line with its repository folder: loads what
 * its version_policy wants and is new or changed (warmed before it is
 * published: at start-up it is published at once, a->ready gates it), then
 * retires what it no longer wants. Returns 0, or 1 when a load failed (err:
 * the last reason), 2 when it was the configuration's fault. */
static int sync_entry(app *a, const char *name, const char *path, int startup, char *err,
                      size_t len) {
    registry *r = a->reg;
    cand *c = calloc(REG_MAXV, sizeof(*c));
    if (!c) {
        snprintf(err, len, "out of memory");
        return 1;
    }
    char why[4600] = "";
    int nc = wanted_versions(path, c, REG_MAXV, why, sizeof why);
    pthread_mutex_lock(&r->mu);
    reg_entry *e = find_entry(r, name, strlen(name));
    if (!e && !(e = add_entry(a, name, path))) {
        pthread_mutex_unlock(&r->mu);
        free(c);
        snprintf(err, len, "%s: cannot add the model", name);
        return 1;
    }
    e->wanted = 1;
    snprintf(e->path, sizeof e->path, "%s", path);
    const char *reason = nc < 0 ? why : nc == 0 ? "no version to load" : "";
    snprintf(e->reason, sizeof e->reason, "%.*s", (int)sizeof e->reason - 1, reason);
    pthread_mutex_unlock(&r->mu);
    if (nc < 0) {
        log_msg(LOG_ERROR, "model not loaded", why);
        snprintf(err, len, "%s", why);
        free(c);
        return 2;
    }
    int rc = 0, failed = 0;
    for (int i = 0; i < nc; i++) {
        uint64_t fp = fingerprint(&c[i], path);
        pthread_mutex_lock(&r->mu);
        e = find_entry(r, name, strlen(name));
        reg_ver *rv = find_ver(e, c[i].version);
        int skip = rv && rv->fp == fp && (rv->m || rv->failed);
        if (rv && skip && rv->failed)
            failed = 1;
        if (!skip && !rv)
            rv = add_ver(e, c[i].version);
        if (!skip && rv && !rv->m) {
            rv->state = REG_LOADING;
            rv->reason[0] = 0;
        }
        pthread_mutex_unlock(&r->mu);
        if (skip || !rv)
            continue;
        int64_t t0 = queue_now_ns();
        int cfg_err = 0;
        char lerr[4600] = "";
        app_model *m = version_load(a, name, &c[i], lerr, sizeof lerr, &cfg_err);
        if (m && !startup && wait_warm(m, lerr, sizeof lerr) < 0) {
            version_free(m);
            m = NULL;
        }
        int64_t dt = queue_now_ns() - t0;
        malloc_trim(0); /* the parse's and warm-up's scratch, freed: back to the system */
        pthread_mutex_lock(&r->mu);
        e = find_entry(r, name, strlen(name));
        rv = find_ver(e, c[i].version);
        if (!rv) { /* forgotten meanwhile */
            pthread_mutex_unlock(&r->mu);
            version_free(m);
            continue;
        }
        char d[5000];
        if (m) {
            app_model *old = rv->m;
            rv->m = m; /* the switch: new handles get the new version */
            rv->fp = fp;
            rv->failed = 0;
            rv->state = startup ? REG_LOADING : REG_READY;
            rv->reason[0] = 0;
            if (!startup) {
                rv->loads_ok++;
                observe_load(r, dt);
            }
            if (old) {
                old->next = r->retired;
                r->retired = old;
            }
            pthread_mutex_unlock(&r->mu);
            snprintf(d, sizeof d, "%s version %ld (%.3f s)", name, c[i].version, (double)dt / 1e9);
            log_msg(LOG_INFO, startup ? "model version loaded" : "model version ready", d);
            continue;
        }
        /* not (yet) complete? a version is only judged once its files stop changing */
        struct stat st;
        char onnx[PATH_MAX + 16];
        snprintf(onnx, sizeof onnx, "%s/model.onnx", c[i].dir);
        int young = !startup && stat(onnx, &st) == 0 && time(NULL) - st.st_mtim.tv_sec < 2;
        if (!startup && (young || fingerprint(&c[i], path) != fp)) {
            if (!rv->m && !rv->loads_ok && !rv->loads_failed)
                e->nv--, memmove(rv, rv + 1, (size_t)((e->v + e->nv) - rv) * sizeof *rv);
            else if (!rv->m)
                rv->state = REG_UNAVAILABLE;
            pthread_mutex_unlock(&r->mu);
            snprintf(d, sizeof d, "%s version %ld: still being written; retried at the next scan",
                     name, c[i].version);
            log_msg(LOG_INFO, "model version not loaded yet", d);
            failed = 1;
            continue;
        }
        rv->fp = fp;
        rv->failed = 1;
        rv->loads_failed++;
        if (!rv->m)
            rv->state = REG_UNAVAILABLE;
        snprintf(rv->reason, sizeof rv->reason, "%.*s", (int)sizeof rv->reason - 1, lerr);
        pthread_mutex_unlock(&r->mu);
        snprintf(d, sizeof d, "%s version %ld: %s", name, c[i].version, lerr);
        log_msg(LOG_ERROR, "model version failed to load", d);
        snprintf(err, len, "%s", d);
        failed = 1;
        rc = cfg_err ? 2 : rc == 2 ? 2 : 1;
    }
    /* retire the versions it no longer wants; while a wanted one failed, the
     * old ones keep serving (unless their folder is gone) */
    pthread_mutex_lock(&r->mu);
    e = find_entry(r, name, strlen(name));
    for (int i = 0; e && i < e->nv; i++) {
        reg_ver *rv = &e->v[i];
        int want = 0;
        for (int k = 0; k < nc; k++)
            want |= c[k].version == rv->version;
        if (want || !rv->m)
            continue;
        int gone =
            rv->m->mc.dir && !has_onnx(rv->m->mc.dir) && access(rv->m->mc.onnx_path, F_OK) != 0;
        if (!failed || gone)
            retire(r, rv, gone ? "removed from the repository" : "unloaded (version_policy)");
    }
    pthread_mutex_unlock(&r->mu);
    free(c);
    return rc;
}

static void unload_entry(registry *r, reg_entry *e, const char *why) {
    e->wanted = 0;
    for (int i = 0; i < e->nv; i++)
        retire(r, &e->v[i], why);
}

/* The model paths: --model values, then the repository's sub-directories
 * (sorted), else the bundled default. Returns a malloc'd array (count in
 * *n), or NULL with err set. */
static char (*model_paths(const cfg_t *c, int *n, char *err, size_t len))[PATH_MAX] {
    struct dirent **list = NULL;
    int k = 0;
    if (c->model_repository[0] && (k = scandir(c->model_repository, &list, NULL, alphasort)) < 0) {
        snprintf(err, len, "model_repository: cannot read %.400s", c->model_repository);
        return NULL;
    }
    char(*paths)[PATH_MAX] = malloc((size_t)(c->num_models + k + 1) * sizeof(*paths));
    *n = 0;
    for (int i = 0; paths && i < c->num_models; i++)
        snprintf(paths[(*n)++], PATH_MAX, "%s", c->models[i]);
    for (int i = 0; i < k; i++) {
        char p[PATH_MAX];
        struct stat st;
        int w = snprintf(p, sizeof p, "%s/%s", c->model_repository, list[i]->d_name);
        if (paths && w > 0 && w < (int)sizeof p && list[i]->d_name[0] != '.' && stat(p, &st) == 0 &&
            S_ISDIR(st.st_mode))
            snprintf(paths[(*n)++], PATH_MAX, "%s", p);
        free(list[i]);
    }
    free(list);
    if (!paths) {
        snprintf(err, len, "out of memory");
        return NULL;
    }
    /* nothing given, or an empty repository in mode none (the container's
     * empty /models): the bundled model */
    if (*n == 0 && (!c->model_repository[0] || !strcmp(c->model_control_mode, "none"))) {
        if (server_default_model("fashion-mnist", paths[0], PATH_MAX)) {
            snprintf(err, len, "model: none given and the bundled models/fashion-mnist is missing");
            free(paths);
            return NULL;
        }
        *n = 1;
    }
    return paths;
}

static int in_load_list(const cfg_t *c, const char *name) {
    const char *s = c->load_model;
    size_t n = strlen(name);
    while (*s) {
        size_t k = strcspn(s, ",");
        if (k == n && !strncmp(s, name, n))
            return 1;
        s += k + (s[k] == ',');
    }
    return 0;
}

/* A full scan (start-up, SIGHUP, poll). */
static int scan(app *a, int startup, char *err, size_t len) {
    registry *r = a->reg;
    int n = 0, rc = 0;
    char(*paths)[PATH_MAX] = model_paths(a->cfg, &n, err, len);
    if (!paths)
        return 2;
    char(*names)[128] = calloc((size_t)n + 1, sizeof(*names));
    for (int i = 0; names && i < n; i++) {
        model_name(paths[i], names[i], sizeof names[i]);
        for (int j = 0; startup && j < i; j++)
            if (!strcmp(names[i], names[j])) {
                snprintf(err, len, "two models have the same name: %s", names[i]);
                rc = 2;
            }
    }
    for (int i = 0; names && i < n && rc != 2; i++) {
        int from_cli = i < a->cfg->num_models;
        if (r->mode == MODE_EXPLICIT && !from_cli && (!startup || !in_load_list(a->cfg, names[i])))
            continue;
        int s = sync_entry(a, names[i], paths[i], startup, err, len);
        if (s && startup && a->cfg->exit_on_error) {
            rc = s;
            break;
        }
    }
    if (r->mode != MODE_EXPLICIT && names && !startup) { /* models gone from the repository */
        pthread_mutex_lock(&r->mu);
        for (int i = 0; i < r->n; i++) {
            int found = 0;
            for (int k = 0; k < n; k++)
                found |= !strcmp(names[k], r->e[i].name);
            if (!found && r->e[i].wanted)
                unload_entry(r, &r->e[i], "removed from the repository");
        }
        pthread_mutex_unlock(&r->mu);
    }
    free(names);
    free(paths);
    return rc;
}

/* ---- the loader thread ---- */

static void reap(registry *r) {
    pthread_mutex_lock(&r->mu);
    app_model **pp = &r->retired, *free_list = NULL;
    while (*pp) {
        app_model *m = *pp;
        if (atomic_load(&m->refs) == 0) {
            *pp = m->next;
            m->next = free_list;
            free_list = m;
        } else
            pp = &m->next;
    }
    pthread_mutex_unlock(&r->mu);
    int freed = free_list != NULL;
    while (free_list) {
        app_model *m = free_list;
        free_list = m->next;
        version_free(m); /* its queue is empty: every request that used it is done */
    }
    if (freed)
        malloc_trim(0); /* hand the engine's freed weights back to the system */
}

static void run_op(app *a, op *o) {
    registry *r = a->reg;
    char err[5000] = "";
    pthread_mutex_lock(&r->mu);
    reg_entry *e = find_entry(r, o->name, strlen(o->name));
    char path[PATH_MAX + 256] = "";
    if (e)
        snprintf(path, sizeof path, "%s", e->path);
    pthread_mutex_unlock(&r->mu);
    struct stat st;
    if (!path[0] && a->cfg->model_repository[0]) {
        snprintf(path, sizeof path, "%s/%s", a->cfg->model_repository, o->name);
        if (strchr(o->name, '/') || o->name[0] == '.' || stat(path, &st) != 0 ||
            !S_ISDIR(st.st_mode))
            path[0] = 0;
    }
    if (!path[0]) {
        o->status = 404;
        snprintf(o->msg, sizeof o->msg, "unknown model '%s'", o->name);
        return;
    }
    if (!o->load) {
        pthread_mutex_lock(&r->mu);
        if ((e = find_entry(r, o->name, strlen(o->name))))
            unload_entry(r, e, "unloaded");
        pthread_mutex_unlock(&r->mu);
        o->status = 200;
        return;
    }
    int rc = sync_entry(a, o->name, path, 0, err, sizeof err);
    pthread_mutex_lock(&r->mu);
    e = find_entry(r, o->name, strlen(o->name));
    int serving = 0;
    for (int i = 0; e && i < e->nv; i++)
        serving |= e->v[i].m != NULL;
    if (!serving && !err[0] && e)
        snprintf(err, sizeof err, "%s", e->reason[0] ? e->reason : "no version loaded");
    pthread_mutex_unlock(&r->mu);
    o->status = serving && !rc ? 200 : 400;
    snprintf(o->msg, sizeof o->msg, "%.390s", o->status == 200 ? "" : err);
}

/* An op has its status (called without r->mu): an async op's callback
 * runs and the op is freed; a waiter is woken (o is its, untouched after). */
static void op_done(registry *r, op *o) {
    if (o->fn) {
        o->fn(o->ctx, o->status, o->msg);
        free(o);
        return;
    }
    pthread_mutex_lock(&r->mu);
    o->done = 1;
    pthread_cond_broadcast(&r->done_cv);
    pthread_mutex_unlock(&r->mu);
}

static void *loader(void *arg) {
    app *a = arg;
    registry *r = a->reg;
    int64_t next_poll = queue_now_ns() + a->cfg->repository_poll_secs * 1000000000LL;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        if (!r->ops && !r->rescan)
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        if (r->stop)
            break;
        op *o = r->ops;
        if (o)
            r->ops = o->next;
        int rescan = r->rescan;
        r->rescan = 0;
        pthread_mutex_unlock(&r->mu);
        reap(r);
        char err[600];
        if (o) {
            run_op(a, o);
            op_done(r, o);
        } else if (rescan || (r->mode == MODE_POLL && queue_now_ns() >= next_poll)) {
            scan(a, 0, err, sizeof err);
            next_poll = queue_now_ns() + a->cfg->repository_poll_secs * 1000000000LL;
        }
        pthread_mutex_lock(&r->mu);
    }
    op *left = r->ops; /* shutting down: the ops not run are refused */
    r->ops = NULL;
    pthread_mutex_unlock(&r->mu);
    while (left) {
        op *o = left;
        left = o->next;
        o->status = 503;
        snprintf(o->msg, sizeof o->msg, "the server is shutting down");
        op_done(r, o);
    }
    return NULL;
}

/* ---- the API ---- */

static registry *reg_new(app *a) {
    registry *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    pthread_cond_init(&r->done_cv, NULL);
    a->reg = r;
    return r;
}

int registry_adopt(app *a, app_model *m) {
    if (!a->reg && !reg_new(a))
        return -1;
    registry *r = a->reg;
    pthread_mutex_lock(&r->mu);
    reg_entry *e = find_entry(r, m->mc.name, strlen(m->mc.name));
    if (!e)
        e = add_entry(a, m->mc.name, "");
    reg_ver *rv = e ? add_ver(e, m->version ? m->version : 1) : NULL;
    if (rv) {
        m->adopted = 1;
        m->version = rv->version;
        char ver[24];
        snprintf(ver, sizeof ver, "%ld", rv->version);
        m->index = metrics_add_model(a->metrics, m->mc.name, ver);
        rv->m = m;
        rv->state = REG_READY;
        e->wanted = 1;
    }
    pthread_mutex_unlock(&r->mu);
    return rv ? 0 : -1;
}

int registry_start(app *a, char *err, size_t len) {
    registry *r = reg_new(a);
    if (!r) {
        snprintf(err, len, "out of memory");
        return 1;
    }
    const char *mode = a->cfg->model_control_mode;
    if (!strcmp(mode, "none"))
        r->mode = MODE_NONE;
    else if (!strcmp(mode, "poll"))
        r->mode = MODE_POLL;
    else if (!strcmp(mode, "explicit"))
        r->mode = MODE_EXPLICIT;
    else {
        snprintf(err, len, "model_control_mode: '%s' is not one of none, poll, explicit", mode);
        return 2;
    }
    if (r->mode == MODE_POLL && !a->cfg->model_repository[0]) {
        snprintf(err, len, "model_control_mode poll needs a model_repository");
        return 2;
    }
    return scan(a, 1, err, len);
}

int registry_startup_poll(app *a, char *err, size_t len) {
    registry *r = a->reg;
    int all = 1, rc = 1;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++)
        for (int k = 0; k < r->e[i].nv; k++) {
            reg_ver *rv = &r->e[i].v[k];
            if (!rv->m || rv->state != REG_LOADING)
                continue;
            char werr[500] = "";
            int w = workers_ready(rv->m->pool, werr, sizeof werr);
            if (w == 0)
                all = 0;
            else if (w > 0) {
                rv->state = REG_READY;
                rv->loads_ok++;
            } else {
                char d[700];
                snprintf(d, sizeof d, "%s version %ld: %s", r->e[i].name, rv->version, werr);
                log_msg(LOG_ERROR, "worker failed", d);
                rv->loads_failed++;
                rv->failed = 1;
                retire(r, rv, werr);
                if (a->cfg->exit_on_error) {
                    snprintf(err, len, "%s", d);
                    rc = -1;
                }
            }
        }
    if (all && rc == 1 && !r->running) {
        r->running = pthread_create(&r->th, NULL, loader, a) == 0;
        if (!r->running) {
            snprintf(err, len, "cannot start the model loader thread");
            rc = -1;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return rc == 1 ? all : rc;
}

void registry_rescan(app *a) {
    registry *r = a->reg;
    pthread_mutex_lock(&r->mu);
    if (r->mode != MODE_EXPLICIT) {
        r->rescan = 1;
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
}

void registry_stop_loader(app *a) {
    registry *r = a->reg;
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_broadcast(&r->cv);
    int running = r->running;
    r->running = 0;
    pthread_mutex_unlock(&r->mu);
    if (running)
        pthread_join(r->th, NULL);
}

/* Calls fn on every version, published or retired (under the lock). */
static void each(app *a, void (*fn)(app_model *m)) {
    registry *r = a->reg;
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++)
        for (int k = 0; k < r->e[i].nv; k++)
            if (r->e[i].v[k].m)
                fn(r->e[i].v[k].m);
    for (app_model *m = r->retired; m; m = m->next)
        fn(m);
    pthread_mutex_unlock(&r->mu);
}

static void do_flush(app_model *m) {
    queue_flush(m->q);
}
static void do_abort(app_model *m) {
    workers_abort(m->pool);
}
static void do_close(app_model *m) {
    queue_close(m->q);
}
static void do_join(app_model *m) {
    if (m->pool)
        workers_join(m->pool);
    m->pool = NULL;
}

void registry_flush(app *a) {
    each(a, do_flush);
}
void registry_abort(app *a) {
    each(a, do_abort);
}
void registry_close(app *a) {
    each(a, do_close);
    each(a, do_join);
}

void registry_free(app *a) {
    registry *r = a->reg;
    if (!r)
        return;
    registry_stop_loader(a);
    for (int i = 0; i < r->n; i++)
        for (int k = 0; k < r->e[i].nv; k++)
            version_free(r->e[i].v[k].m);
    while (r->retired) {
        app_model *m = r->retired;
        r->retired = m->next;
        version_free(m);
    }
    free(r->e);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    pthread_cond_destroy(&r->done_cv);
    free(r);
    a->reg = NULL;
}

app_model *registry_acquire(app *a, const char *name, size_t len, long version) {
    registry *r = a->reg;
    app_model *best = NULL;
    pthread_mutex_lock(&r->mu);
    reg_entry *e = find_entry(r, name, len);
    for (int i = 0; e && i < e->nv; i++) {
        app_model *m = e->v[i].m;
        if (!m || (version >= 0 && e->v[i].version != version))
            continue;
        if (!best || m->version > best->version)
            best = m;
    }
    if (best)
        atomic_fetch_add(&best->refs, 1);
    pthread_mutex_unlock(&r->mu);
    return best;
}

app_model *registry_acquire_first(app *a) {
    registry *r = a->reg;
    char name[128] = "";
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n && !name[0]; i++)
        for (int k = 0; k < r->e[i].nv; k++)
            if (r->e[i].v[k].m)
                snprintf(name, sizeof name, "%s", r->e[i].name);
    pthread_mutex_unlock(&r->mu);
    return name[0] ? registry_acquire(a, name, strlen(name), -1) : NULL;
}

void registry_release(app_model *m) {
    if (m)
        atomic_fetch_sub(&m->refs, 1);
}

int registry_list(app *a, app_model **out, int max) {
    registry *r = a->reg;
    int n = 0;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n && n < max; i++) {
        app_model *best = NULL;
        for (int k = 0; k < r->e[i].nv; k++) {
            app_model *m = r->e[i].v[k].m;
            if (m && (!best || m->version > best->version))
                best = m;
        }
        if (best) {
            atomic_fetch_add(&best->refs, 1);
            out[n++] = best;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

json_t *registry_index(app *a, const char *name, int ready_only) {
    registry *r = a->reg;
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n; i++) {
        reg_entry *e = &r->e[i];
        if (name && strcmp(name, e->name))
            continue;
        int any = 0;
        for (int k = 0; k < e->nv; k++) {
            reg_ver *rv = &e->v[k];
            if (ready_only && rv->state != REG_READY)
                continue;
            char v[32];
            snprintf(v, sizeof v, "%ld", rv->version);
            json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s}", "name", e->name, "version", v,
                                                 "state", registry_state_name(rv->state), "reason",
                                                 rv->reason));
            any = 1;
        }
        if (!any && !ready_only)
            json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s}", "name", e->name, "version",
                                                 "", "state", "UNAVAILABLE", "reason",
                                                 e->reason[0] ? e->reason : "not loaded"));
    }
    pthread_mutex_unlock(&r->mu);
    return arr;
}

int registry_server_ready(app *a) {
    return atomic_load(&a->ready) && !atomic_load(&a->draining) &&
           (!a->cfg->strict_readiness || registry_all_ready(a));
}

int registry_not_ready(app *a, char *name, size_t len) {
    registry *r = a->reg;
    int ok = 1;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n && ok; i++) {
        if (!r->e[i].wanted)
            continue;
        int ready = 0;
        for (int k = 0; k < r->e[i].nv; k++)
            ready |= r->e[i].v[k].m && r->e[i].v[k].state == REG_READY;
        if (!ready && name)
            snprintf(name, len, "%s", r->e[i].name);
        ok &= ready;
    }
    pthread_mutex_unlock(&r->mu);
    return !ok;
}

int registry_all_ready(app *a) {
    return !registry_not_ready(a, NULL, 0);
}

/* Queues o for the loader and returns 0, or the status of an op that
 * cannot be queued (msg set). */
static int enqueue(registry *r, op *o, const char *name, size_t len, char *msg, size_t msg_len) {
    if (r->mode != MODE_EXPLICIT) {
        snprintf(msg, msg_len,
                 "model control disabled: explicit model load / unload is not allowed if "
                 "polling is enabled (model_control_mode poll)");
        if (r->mode == MODE_NONE)
            snprintf(msg, msg_len, "model control disabled (model_control_mode none)");
        return 400;
    }
    if (len >= sizeof o->name) {
        snprintf(msg, msg_len, "unknown model");
        return 404;
    }
    memcpy(o->name, name, len);
    o->name[len] = '\0';
    pthread_mutex_lock(&r->mu);
    if (!r->running) {
        pthread_mutex_unlock(&r->mu);
        snprintf(msg, msg_len, "the server is not ready");
        return 503;
    }
    op **pp = &r->ops;
    while (*pp)
        pp = &(*pp)->next;
    *pp = o;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

int registry_control(app *a, const char *name, size_t len, int load, char *msg, size_t msg_len) {
    registry *r = a->reg;
    op o;
    memset(&o, 0, sizeof o);
    o.load = load;
    int st = enqueue(r, &o, name, len, msg, msg_len);
    if (st)
        return st;
    pthread_mutex_lock(&r->mu); /* done is set under it */
    while (!o.done)
        pthread_cond_wait(&r->done_cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    snprintf(msg, msg_len, "%s", o.msg);
    return o.status;
}

int registry_control_async(app *a, const char *name, size_t len, int load, registry_done_fn done,
                           void *ctx, char *msg, size_t msg_len) {
    op *o = calloc(1, sizeof(*o));
    if (!o) {
        snprintf(msg, msg_len, "out of memory");
        return 503;
    }
    o->load = load;
    o->fn = done;
    o->ctx = ctx;
    int st = enqueue(a->reg, o, name, len, msg, msg_len);
    if (st)
        free(o);
    return st;
}

int registry_metrics(app *a, char **text, size_t *len) {
    registry *r = a->reg;
    size_t cap = 4096;
    char *s = malloc(cap);
    size_t n = 0;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(s + n, cap - n, __VA_ARGS__);                                            \
        if (w_ < 0)                                                                                \
            break;                                                                                 \
        if ((size_t)w_ >= cap - n) {                                                               \
            cap = (cap + (size_t)w_) * 2;                                                          \
            char *t_ = realloc(s, cap);                                                            \
            if (!t_) {                                                                             \
                free(s);                                                                           \
                s = NULL;                                                                          \
                goto oom;                                                                          \
            }                                                                                      \
            s = t_;                                                                                \
            snprintf(s + n, cap - n, __VA_ARGS__);                                                 \
        }                                                                                          \
        n += (size_t)w_;                                                                           \
    } while (0)
    if (!s)
        return -1;
    pthread_mutex_lock(&r->mu);
    PUT("# HELP resnetd_model_ready 1 when the model version is READY.\n"
        "# TYPE resnetd_model_ready gauge\n");
    for (int i = 0; i < r->n; i++)
        for (int k = 0; k < r->e[i].nv; k++)
            PUT("resnetd_model_ready{model=\"%s\",version=\"%ld\"} %d\n", r->e[i].name,
                r->e[i].v[k].version, r->e[i].v[k].state == REG_READY);
    PUT("# HELP resnetd_model_loads_total Model version loads, by result.\n"
        "# TYPE resnetd_model_loads_total counter\n");
    for (int i = 0; i < r->n; i++)
        for (int k = 0; k < r->e[i].nv; k++) {
            reg_ver *rv = &r->e[i].v[k];
            PUT("resnetd_model_loads_total{model=\"%s\",version=\"%ld\",result=\"success\"} "
                "%llu\n",
                r->e[i].name, rv->version, (unsigned long long)rv->loads_ok);
            PUT("resnetd_model_loads_total{model=\"%s\",version=\"%ld\",result=\"failure\"} "
                "%llu\n",
                r->e[i].name, rv->version, (unsigned long long)rv->loads_failed);
        }
    PUT("# HELP resnetd_model_load_duration_seconds Load + warm-up of a model version while "
        "serving.\n# TYPE resnetd_model_load_duration_seconds histogram\n");
    {
        uint64_t cum = 0;
        double ub = 0.1;
        for (int b = 0; b < REG_NHIST; b++, ub *= 2) {
            cum += r->hist[b];
            PUT("resnetd_model_load_duration_seconds_bucket{le=\"%g\"} %llu\n", ub,
                (unsigned long long)cum);
        }
        cum += r->hist[REG_NHIST];
        PUT("resnetd_model_load_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
            "resnetd_model_load_duration_seconds_sum %.6f\n"
            "resnetd_model_load_duration_seconds_count %llu\n",
            (unsigned long long)cum, (double)r->hist_ns / 1e9, (unsigned long long)r->hist_count);
    }
    pthread_mutex_unlock(&r->mu);
    char *t = realloc(*text, *len + n + 1);
    if (!t) {
        free(s);
        return -1;
    }
    memcpy(t + *len, s, n + 1);
    *text = t;
    *len += n;
    free(s);
    return 0;
oom:
    pthread_mutex_unlock(&r->mu);
    return -1;
#undef PUT
}
