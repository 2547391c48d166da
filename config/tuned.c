/*
 * tuned.c — tuned.json: the fingerprint of this machine, the atomic writer
 * used by `bench --tune` and the validating reader used by `serve`.
 *
 * The fingerprint's ISA is the caller's engine_cpu_isa(): the kernels oneDNN
 * actually dispatches (ONEDNN_MAX_CPU_ISA lowers them), not what the CPU has.
 */
#include "tuned.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TUNED_FORMAT 1

#ifndef RESNETD_VERSION
#define RESNETD_VERSION "unknown"
#endif

/* The first "model name" of /proc/cpuinfo, trimmed; "unknown" if none. */
static void cpu_model_name(char *buf, size_t len) {
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        char *v = strchr(line, ':');
        if (!v)
            continue;
        for (v++; *v == ' ' || *v == '\t'; v++)
            ;
        size_t n = strcspn(v, "\r\n");
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        if (n > 0)
            snprintf(buf, len, "%.*s", (int)n, v);
        break;
    }
    fclose(f);
}

void tuned_fingerprint_here(int int8, const char *isa, tuned_fingerprint *fp) {
    memset(fp, 0, sizeof *fp);
    fp->cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (fp->cores < 1)
        fp->cores = 1;
    cpu_model_name(fp->cpu_model, sizeof fp->cpu_model);
    snprintf(fp->isa, sizeof fp->isa, "%s", isa ? isa : "unknown");
    snprintf(fp->precision, sizeof fp->precision, "%s", int8 ? "int8" : "fp32");
    snprintf(fp->version, sizeof fp->version, "%s", RESNETD_VERSION);
}

static json_t *pick_json(const tuned_pick *p) {
    json_t *o = json_pack("{s:i,s:i,s:i,s:f,s:f,s:f}", "batch", p->batch, "workers", p->workers,
                          "threads", p->threads, "images_per_second", p->images_per_second,
                          "latency_ms_p50", p->latency_ms_p50, "latency_ms_p99", p->latency_ms_p99);
    if (!o || !p->conv_tuned)
        return o;
    json_t *c = json_object();
    for (int i = 0; c && i < p->nconvs; i++)
        if (json_object_set_new(c, p->convs[i].node,
                                json_string(engine_conv_algo_str(p->convs[i].algo)))) {
            json_decref(c);
            c = NULL;
        }
    if (!c || json_object_set_new(o, "conv_algorithms", c)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

void tuned_plan_release(tuned_plan *p) {
    tuned_pick *picks[2] = {&p->throughput, &p->latency};
    for (int i = 0; i < 2; i++) {
        free(picks[i]->convs);
        picks[i]->convs = NULL;
        picks[i]->nconvs = 0;
    }
}

/* A pick's optional "conv_algorithms": {"node": "winograd", ...}, bounded. */
static int parse_convs(json_t *o, const char *where, tuned_pick *p, char *err, size_t err_len) {
    json_t *c = json_object_get(o, "conv_algorithms");
    if (!c)
        return 0;
    if (!json_is_object(c) || json_object_size(c) > TUNED_MAX_CONV) {
        snprintf(err, err_len, "%s.conv_algorithms: object of at most %d entries expected", where,
                 TUNED_MAX_CONV);
        return -1;
    }
    p->conv_tuned = 1;
    if (!json_object_size(c))
        return 0;
    if (!(p->convs = calloc(json_object_size(c), sizeof *p->convs))) {
        snprintf(err, err_len, "%s.conv_algorithms: out of memory", where);
        return -1;
    }
    const char *key;
    json_t *val;
    json_object_foreach(c, key, val) {
        int a = json_is_string(val) ? engine_conv_algo_parse(json_string_value(val)) : -1;
        if (strlen(key) >= sizeof p->convs[0].node || !key[0]) {
            snprintf(err, err_len, "%s.conv_algorithms: node names are 1 to %zu bytes", where,
                     sizeof p->convs[0].node - 1);
            return -1;
        }
        if (a <= ENGINE_CONV_AUTO) {
            snprintf(err, err_len,
                     "%s.conv_algorithms.%s: \"direct\", \"channels_last\" or \"winograd\" "
                     "expected",
                     where, key);
            return -1;
        }
        snprintf(p->convs[p->nconvs].node, sizeof p->convs[0].node, "%s", key);
        p->convs[p->nconvs++].algo = a;
    }
    return 0;
}

int tuned_save(const char *path, const tuned_plan *p, char *err, size_t err_len) {
    const tuned_fingerprint *fp = &p->fp;
    json_t *root =
        json_pack("{s:i,s:s,s:s,s:f,s:{s:I,s:s,s:s,s:s,s:s}}", "format", TUNED_FORMAT, "model",
                  p->model, "model_file", p->model_file, "seconds", p->seconds, "fingerprint",
                  "cores", (json_int_t)fp->cores, "cpu_model", fp->cpu_model, "isa", fp->isa,
                  "precision", fp->precision, "version", fp->version);
    const tuned_pick *picks[2] = {&p->throughput, &p->latency};
    const char *keys[2] = {"throughput", "latency"};
    for (int i = 0; root && i < 2; i++)
        if (picks[i]->batch > 0 && json_object_set_new(root, keys[i], pick_json(picks[i]))) {
            json_decref(root);
            root = NULL;
        }
    char *text =
        root ? json_dumps(root, JSON_PRESERVE_ORDER | JSON_INDENT(2) | JSON_REAL_PRECISION(10))
             : NULL;
    json_decref(root);
    if (!text) {
        snprintf(err, err_len, "%s: out of memory", path);
        return -1;
    }
    char tmp[4200];
    int w = snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
    if (w < 0 || (size_t)w >= sizeof tmp) {
        free(text);
        snprintf(err, err_len, "%s: path too long", path);
        return -1;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, err_len, "cannot write %s: %s", path, strerror(errno));
        free(text);
        return -1;
    }
    size_t len = strlen(text), done = 0;
    int e = 0;
    while (done < len && !e) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno != EINTR)
            e = errno;
        else if (n > 0)
            done += (size_t)n;
    }
    if (!e && write(fd, "\n", 1) != 1)
        e = errno ? errno : EIO;
    if (!e && fchmod(fd, 0644) != 0) /* mkstemp made it 0600: others read it too */
        e = errno;
    if (!e && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && !e)
        e = errno;
    if (!e && rename(tmp, path) != 0)
        e = errno;
    free(text);
    if (e) {
        unlink(tmp);
        snprintf(err, err_len, "cannot write %s: %s", path, strerror(e));
        return -1;
    }
    return 0;
}

/* Reads an integer in [lo, hi] at key of o. Returns 0 or -1 with err set. */
static int get_int(json_t *o, const char *where, const char *key, long lo, long hi, long *v,
                   char *err, size_t err_len) {
    json_t *x = json_object_get(o, key);
    if (!json_is_integer(x) || json_integer_value(x) < lo || json_integer_value(x) > hi) {
        snprintf(err, err_len, "%s.%s: integer in [%ld, %ld] expected", where, key, lo, hi);
        return -1;
    }
    *v = (long)json_integer_value(x);
    return 0;
}

static int get_str(json_t *o, const char *where, const char *key, char *buf, size_t len, char *err,
                   size_t err_len) {
    json_t *x = json_object_get(o, key);
    if (!json_is_string(x) || strlen(json_string_value(x)) >= len) {
        snprintf(err, err_len, "%s.%s: string expected", where, key);
        return -1;
    }
    snprintf(buf, len, "%s", json_string_value(x));
    return 0;
}

static int get_num(json_t *o, const char *where, const char *key, double *v, char *err,
                   size_t err_len) {
    json_t *x = json_object_get(o, key);
    if (!json_is_number(x) || json_number_value(x) < 0) {
        snprintf(err, err_len, "%s.%s: non-negative number expected", where, key);
        return -1;
    }
    *v = json_number_value(x);
    return 0;
}

/* A pick, absent or valid. The bounds are the server's (config/cfg.c):
 * workers 1..64, threads 1..256, batch 1..256. */
static int parse_pick(json_t *root, const char *key, tuned_pick *p, char *err, size_t err_len) {
    json_t *o = json_object_get(root, key);
    if (!o)
        return 0;
    long b, w, t;
    if (!json_is_object(o)) {
        snprintf(err, err_len, "%s: object expected", key);
        return -1;
    }
    if (get_int(o, key, "batch", 1, 256, &b, err, err_len) ||
        get_int(o, key, "workers", 1, 64, &w, err, err_len) ||
        get_int(o, key, "threads", 1, 256, &t, err, err_len) ||
        get_num(o, key, "images_per_second", &p->images_per_second, err, err_len) ||
        get_num(o, key, "latency_ms_p50", &p->latency_ms_p50, err, err_len))
        return -1;
    if (parse_convs(o, key, p, err, err_len))
        return -1;
    json_t *p99 = json_object_get(o, "latency_ms_p99"); /* optional */
    p->latency_ms_p99 = json_is_number(p99) ? json_number_value(p99) : 0;
    p->batch = (int)b;
    p->workers = (int)w;
    p->threads = (int)t;
    return 0;
}

static int parse_plan(json_t *root, tuned_plan *out, char *err, size_t err_len) {
    long format, cores;
    json_t *fp = json_object_get(root, "fingerprint");
    if (!json_is_object(root)) {
        snprintf(err, err_len, "top level must be an object");
        return -1;
    }
    if (get_int(root, "tuned", "format", TUNED_FORMAT, TUNED_FORMAT, &format, err, err_len) ||
        get_str(root, "tuned", "model", out->model, sizeof out->model, err, err_len) ||
        get_str(root, "tuned", "model_file", out->model_file, sizeof out->model_file, err, err_len))
        return -1;
    if (!json_is_object(fp)) {
        snprintf(err, err_len, "fingerprint: object expected");
        return -1;
    }
    if (get_int(fp, "fingerprint", "cores", 1, 1L << 20, &cores, err, err_len) ||
        get_str(fp, "fingerprint", "cpu_model", out->fp.cpu_model, sizeof out->fp.cpu_model, err,
                err_len) ||
        get_str(fp, "fingerprint", "isa", out->fp.isa, sizeof out->fp.isa, err, err_len) ||
        get_str(fp, "fingerprint", "precision", out->fp.precision, sizeof out->fp.precision, err,
                err_len) ||
        get_str(fp, "fingerprint", "version", out->fp.version, sizeof out->fp.version, err,
                err_len))
        return -1;
    out->fp.cores = cores;
    if (parse_pick(root, "throughput", &out->throughput, err, err_len) ||
        parse_pick(root, "latency", &out->latency, err, err_len))
        return -1;
    if (!out->throughput.batch && !out->latency.batch) {
        snprintf(err, err_len, "neither a throughput nor a latency pick");
        return -1;
    }
    return 0;
}

/* Names the first fingerprint field that differs; 0 when all match. */
static int fp_mismatch(const tuned_fingerprint *here, const tuned_fingerprint *f, char *err,
                       size_t err_len) {
    if (here->cores != f->cores) {
        snprintf(err, err_len, "fingerprint mismatch: %ld cores here, %ld in the file", here->cores,
                 f->cores);
        return 1;
    }
    const char *names[4] = {"cpu_model", "isa", "precision", "version"};
    const char *a[4] = {here->cpu_model, here->isa, here->precision, here->version};
    const char *b[4] = {f->cpu_model, f->isa, f->precision, f->version};
    for (int i = 0; i < 4; i++)
        if (strcmp(a[i], b[i]) != 0) {
            snprintf(err, err_len,
                     "fingerprint mismatch: %s is '%.120s' here, '%.120s' in the file", names[i],
                     a[i], b[i]);
            return 1;
        }
    return 0;
}

tuned_status tuned_load(const char *path, const tuned_fingerprint *here, const char *model_file,
                        tuned_plan *out, char *err, size_t err_len) {
    struct stat st;
    memset(out, 0, sizeof *out);
    err[0] = 0;
    if (stat(path, &st) != 0 && errno == ENOENT)
        return TUNED_MISSING;
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, err_len, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        return TUNED_INVALID;
    }
    char why[512] = "";
    int rc = parse_plan(root, out, why, sizeof why);
    json_decref(root);
    if (rc) {
        tuned_plan_release(out);
        snprintf(err, err_len, "%s: %s", path, why);
        return TUNED_INVALID;
    }
    if (fp_mismatch(here, &out->fp, why, sizeof why)) {
        snprintf(err, err_len, "%s: %s", path, why);
        return TUNED_MISMATCH;
    }
    if (model_file && strcmp(model_file, out->model_file) != 0) {
        snprintf(err, err_len, "%s: measured for %s, not %s", path, out->model_file, model_file);
        return TUNED_MISMATCH;
    }
    return TUNED_OK;
}
