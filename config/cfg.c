/*
 * cfg.c — the option table and its four readers (defaults, JSON file, env,
 * CLI) plus --help and --print-config. Every reader goes through set_opt(),
 * so bounds are checked in one place and every error names the key.
 *
 * Defaults were chosen by measurement on the 2-core dev box (see
 * bench/server_wrk.sh and the README): one worker per model using every core
 * for oneDNN beats two single-threaded workers on latency at equal
 * throughput; batches form within 2 ms; two HTTP threads only move bytes
 * while the decode pool (one thread per core) decodes. docs/config.md is
 * generated from OPTS (cfg_md.c), server/README.md gives the reasons.
 */
#include "cfg.h"

#include "log.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    T_INT,
    T_STR,
    T_LIST,
    T_LEVEL,
    T_GOAL,
    T_BOOL
} opt_type; /* LEVEL, GOAL: named values */

typedef struct {
    const char *name; /* JSON key */
    opt_type type;
    size_t off;  /* offset in cfg_t */
    size_t size; /* T_STR: buffer size */
    int64_t min, max;
    const char *def; /* default, parsed like any other value */
    const char *env;
    const char *flag;
    const char *help;
} opt;

#define OFF(f) offsetof(cfg_t, f)
#define I64MAX INT64_C(9223372036854775807)

static const opt OPTS[] = {
    {"host", T_STR, OFF(host), sizeof(((cfg_t *)0)->host), 0, 0, "127.0.0.1", "RESNETD_HOST",
     "--host", "address to listen on"},
    {"port", T_INT, OFF(port), 0, 0, 65535, "8080", "RESNETD_PORT", "--port",
     "TCP port (0 = any free port, printed on stderr)"},
    {"grpc_port", T_INT, OFF(grpc_port), 0, -1, 65535, "8081", "RESNETD_GRPC_PORT", "--grpc-port",
     "gRPC port (KServe v2 / Triton GRPCInferenceService, docs/grpc.md; 0 = any free port, "
     "printed on stderr; -1 = no gRPC port)"},
    {"grpc_host", T_STR, OFF(grpc_host), sizeof(((cfg_t *)0)->grpc_host), 0, 0, "",
     "RESNETD_GRPC_HOST", "--grpc-host", "address the gRPC port listens on (empty = host)"},
    {"model", T_LIST, OFF(models), 0, 0, 0, "", "RESNETD_MODEL", "--model",
     "model directory or .onnx file; repeatable (env: comma-separated); "
     "default: the bundled models/fashion-mnist"},
    {"model_repository", T_STR, OFF(model_repository), sizeof(((cfg_t *)0)->model_repository), 0, 0,
     "", "RESNETD_MODEL_REPOSITORY", "--model-repository",
     "directory whose every sub-directory is a model (NAME/model.onnx, or NAME/<N>/model.onnx "
     "for versions; README \"Changing models while serving\")"},
    {"model_control_mode", T_STR, OFF(model_control_mode), sizeof(((cfg_t *)0)->model_control_mode),
     0, 0, "none", "RESNETD_MODEL_CONTROL_MODE", "--model-control-mode",
     "none (load the repository at start; SIGHUP rescans it), poll (rescan every "
     "repository_poll_secs too) or explicit (load only load_model at start, then "
     "POST /v2/repository/models/NAME/load and /unload)"},
    {"repository_poll_secs", T_INT, OFF(repository_poll_secs), 0, 1, 86400, "15",
     "RESNETD_REPOSITORY_POLL_SECS", "--repository-poll-secs",
     "poll mode: seconds between repository scans"},
    {"load_model", T_STR, OFF(load_model), sizeof(((cfg_t *)0)->load_model), 0, 0, "",
     "RESNETD_LOAD_MODEL", "--load-model",
     "explicit mode: repository models loaded at start (comma-separated; the flag repeats)"},
    {"exit_on_error", T_BOOL, OFF(exit_on_error), 0, 0, 1, "true", "RESNETD_EXIT_ON_ERROR",
     "--exit-on-error",
     "true: a model that fails to load at start-up stops the server; false: it is reported "
     "UNAVAILABLE and the others serve (after start-up no model failure stops the server)"},
    {"strict_readiness", T_BOOL, OFF(strict_readiness), 0, 0, 1, "true", "RESNETD_STRICT_READINESS",
     "--strict-readiness",
     "true: /readyz and /v2/health/ready are 200 only when every model that should serve is "
     "ready; false: once start-up is over"},
    {"workers", T_INT, OFF(workers), 0, 1, 64, "1", "RESNETD_WORKERS", "--workers",
     "inference worker threads per model, each with its own engine context"},
    {"threads_per_worker", T_INT, OFF(threads_per_worker), 0, 0, 256, "0",
     "RESNETD_THREADS_PER_WORKER", "--threads-per-worker",
     "oneDNN threads per worker (0 = cores / workers)"},
    {"max_batch", T_INT, OFF(max_batch), 0, 0, 256, "0", "RESNETD_MAX_BATCH", "--max-batch",
     "largest batch formed (0 = each model's config.json max_batch, default 8)"},
    {"tune_goal", T_GOAL, OFF(tune_goal), 0, 0, 2, "throughput", "RESNETD_TUNE_GOAL", "--tune-goal",
     "throughput, latency or off: which pick of a model's tuned.json (resnetd bench --tune) "
     "fills workers, threads_per_worker and max_batch when they are not set (docs/tuning.md)"},
    {"batch_timeout_us", T_INT, OFF(batch_timeout_us), 0, 0, 10000000, "2000",
     "RESNETD_BATCH_TIMEOUT_US", "--batch-timeout-us",
     "longest wait for a batch to fill after its first image was queued"},
    {"queue_capacity", T_INT, OFF(queue_capacity), 0, 1, 1000000, "64", "RESNETD_QUEUE_CAPACITY",
     "--queue-capacity", "images waiting per model before requests get 503"},
    {"max_body_bytes", T_INT, OFF(max_body_bytes), 0, 1, INT64_C(1) << 32, "20971520",
     "RESNETD_MAX_BODY_BYTES", "--max-body-bytes", "largest request body (413 above)"},
    {"max_image_pixels", T_INT, OFF(max_image_pixels), 0, 1, I64MAX, "40000000",
     "RESNETD_MAX_IMAGE_PIXELS", "--max-image-pixels",
     "largest decoded image, width*height (400 image_too_large above, checked from the header)"},
    {"request_timeout_ms", T_INT, OFF(request_timeout_ms), 0, 1, 3600000, "30000",
     "RESNETD_REQUEST_TIMEOUT_MS", "--request-timeout-ms",
     "deadline per request (X-Request-Timeout-Ms may shorten it); 504 past it"},
    {"drain_timeout_ms", T_INT, OFF(drain_timeout_ms), 0, 0, 3600000, "10000",
     "RESNETD_DRAIN_TIMEOUT_MS", "--drain-timeout-ms",
     "on SIGTERM/SIGINT, longest wait for accepted requests"},
    {"top_k", T_INT, OFF(top_k), 0, 1, 100000, "5", "RESNETD_TOP_K", "--top-k",
     "predictions per image when the request has no top_k"},
    {"log_level", T_LEVEL, OFF(log_level), 0, 0, 3, "info", "RESNETD_LOG_LEVEL", "--log-level",
     "error, warn, info (access log) or debug"},
    {"http_threads", T_INT, OFF(http_threads), 0, 1, 256, "2", "RESNETD_HTTP_THREADS",
     "--http-threads",
     "HTTP threads: they receive requests and send answers, and never decode images, so "
     "health checks and metrics stay fast while uploads are being decoded"},
    {"decode_threads", T_INT, OFF(decode_threads), 0, 0, 256, "0", "RESNETD_DECODE_THREADS",
     "--decode-threads",
     "threads that decode and preprocess uploaded images, off the HTTP threads (0 = cores)"},
    {"max_inflight_bytes", T_INT, OFF(max_inflight_bytes), 0, INT64_C(1) << 20, INT64_C(1) << 40,
     "268435456", "RESNETD_MAX_INFLIGHT_BYTES", "--max-inflight-bytes",
     "server-wide budget for request bodies being received, images being decoded, tensors "
     "and answers; past it new uploads get 503 + Retry-After instead of more memory"},
    {"max_connections", T_INT, OFF(max_connections), 0, 1, 100000, "1024",
     "RESNETD_MAX_CONNECTIONS", "--max-connections", "open connections at most"},
    {"connection_timeout_s", T_INT, OFF(connection_timeout_s), 0, 1, 3600, "30",
     "RESNETD_CONNECTION_TIMEOUT_S", "--connection-timeout-s",
     "idle connection timeout (slow clients are cut off)"},
    {"max_connections_per_ip", T_INT, OFF(max_connections_per_ip), 0, 0, 100000, "64",
     "RESNETD_MAX_CONNECTIONS_PER_IP", "--max-connections-per-ip",
     "open connections per client address (0 = no limit; behind a proxy every client is "
     "the proxy): bounds what one slow or idle client can hold"},
    {"allow_chunked", T_INT, OFF(allow_chunked), 0, 0, 1, "0", "RESNETD_ALLOW_CHUNKED",
     "--allow-chunked",
     "1: accept Transfer-Encoding: chunked request bodies (0: 411, send a Content-Length); "
     "libmicrohttpd 0.9.75 accepts bare LF in chunk framing, which a front proxy may read "
     "differently: enable only behind a proxy that re-frames request bodies"},
    {"api_key", T_STR, OFF(api_key), sizeof(((cfg_t *)0)->api_key), 0, 0, "", "RESNETD_API_KEY",
     "--api-key",
     "bearer token required on every route but health checks (prefer the env or file: "
     "flags show in ps); --print-config redacts it"},
    {"metrics_auth", T_INT, OFF(metrics_auth), 0, 0, 1, "0", "RESNETD_METRICS_AUTH",
     "--metrics-auth", "1: /metrics needs the api_key too"},
    {"tls_cert", T_STR, OFF(tls_cert), sizeof(((cfg_t *)0)->tls_cert), 0, 0, "", "RESNETD_TLS_CERT",
     "--tls-cert", "PEM certificate (chain): serve HTTPS (needs tls_key)"},
    {"tls_key", T_STR, OFF(tls_key), sizeof(((cfg_t *)0)->tls_key), 0, 0, "", "RESNETD_TLS_KEY",
     "--tls-key", "PEM private key of tls_cert"},
    {"tls_priorities", T_STR, OFF(tls_priorities), sizeof(((cfg_t *)0)->tls_priorities), 0, 0,
     "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-CIPHER-ALL:"
     "+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305",
     "RESNETD_TLS_PRIORITIES", "--tls-priorities",
     "GnuTLS priority string for HTTPS (default: TLS 1.2+ with forward-secret AEAD suites)"},
};
#define NOPTS (sizeof(OPTS) / sizeof(OPTS[0]))
_Static_assert(NOPTS <= 64, "cfg_t.set_mask has one bit per option");

static const char *const GOALS[] = {"throughput", "latency", "off"};

const char *cfg_tune_goal_str(int64_t goal) {
    return goal >= 0 && goal < 3 ? GOALS[goal] : "throughput";
}

/* The value names of a T_LEVEL or T_GOAL option, indexed by value. */
static const char *const *named_values(opt_type t, int64_t *n) {
    *n = t == T_LEVEL ? LOG_LEVELS : 3;
    return t == T_LEVEL ? log_level_names : GOALS;
}

size_t cfg_option_count(void) {
    return NOPTS;
}

void cfg_option_names(size_t i, const char **name, const char **env, const char **flag) {
    *name = OPTS[i].name;
    *env = OPTS[i].env;
    *flag = OPTS[i].flag;
}

void cfg_option_doc(size_t i, const char **help, const char **def, int *is_int, int64_t *min,
                    int64_t *max) {
    *help = OPTS[i].help;
    *def = OPTS[i].def;
    *is_int = OPTS[i].type == T_INT;
    *min = OPTS[i].min;
    *max = OPTS[i].max;
}

static const opt *find_key(const char *key) {
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(OPTS[i].name, key) == 0)
            return &OPTS[i];
    return NULL;
}

int cfg_is_set(const cfg_t *c, const char *key) {
    const opt *o = find_key(key);
    return o && (c->set_mask >> (size_t)(o - OPTS) & 1u);
}

static void list_clear(cfg_t *c) {
    for (int i = 0; i < c->num_models; i++)
        free(c->models[i]);
    c->num_models = 0;
}

/* Parses value into the option; src names where it came from for messages.
 * Any src but "default" marks the option as explicitly set. */
static int parse_opt(cfg_t *c, const opt *o, const char *value, const char *src, char *err,
                     size_t err_len) {
    char *field = (char *)c + o->off;
    switch (o->type) {
    case T_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end) {
            snprintf(err, err_len, "%s (%s): '%s' is not an integer", o->name, src, value);
            return -1;
        }
        if (v < o->min || v > o->max) {
            snprintf(err, err_len, "%s (%s): %lld is out of range [%lld, %lld]", o->name, src, v,
                     (long long)o->min, (long long)o->max);
            return -1;
        }
        *(int64_t *)field = v;
        return 0;
    }
    case T_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "false") ||
            !strcmp(value, "0")) {
            *(int64_t *)field = !strcmp(value, "true") || !strcmp(value, "1");
            return 0;
        }
        snprintf(err, err_len, "%s (%s): '%s' is not true or false", o->name, src, value);
        return -1;
    case T_STR:
        if (!strcmp(o->name, "load_model") && field[0] && strcmp(src, "default") &&
            strlen(field) + 1 + strlen(value) < o->size) { /* repeated: appended */
            size_t used = strlen(field);
            snprintf(field + used, o->size - used, ",%s", value);
            return 0;
        }
        if (strlen(value) >= o->size) {
            snprintf(err, err_len, "%s (%s): value too long", o->name, src);
            return -1;
        }
        snprintf(field, o->size, "%s", value);
        return 0;
    case T_LEVEL:
    case T_GOAL: {
        int64_t n;
        const char *const *names = named_values(o->type, &n);
        char all[128] = "";
        for (int64_t i = 0; i < n; i++) {
            if (strcmp(value, names[i]) == 0) {
                *(int64_t *)field = i;
                return 0;
            }
            size_t used = strlen(all);
            snprintf(all + used, sizeof all - used, "%s%s", i ? ", " : "", names[i]);
        }
        snprintf(err, err_len, "%s (%s): '%s' is not one of %s", o->name, src, value, all);
        return -1;
    }
    case T_LIST:
        if (!*value)
            return 0;
        if (c->num_models >= CFG_MAX_MODELS) {
            snprintf(err, err_len, "%s (%s): more than %d models", o->name, src, CFG_MAX_MODELS);
            return -1;
        }
        if (!(c->models[c->num_models] = strdup(value))) {
            snprintf(err, err_len, "%s: out of memory", o->name);
            return -1;
        }
        c->num_models++;
        return 0;
    }
    return -1;
}

static int set_opt(cfg_t *c, const opt *o, const char *value, const char *src, char *err,
                   size_t err_len) {
    if (parse_opt(c, o, value, src, err, err_len))
        return -1;
    if (strcmp(src, "default") != 0)
        c->set_mask |= UINT64_C(1) << (size_t)(o - OPTS);
    return 0;
}

void cfg_defaults(cfg_t *c) {
    char err[256];
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < NOPTS; i++) {
        int rc = set_opt(c, &OPTS[i], OPTS[i].def, "default", err, sizeof err);
        (void)rc;
        /* a default that fails its own bounds is a programmer error */
        if (rc != 0) {
            fprintf(stderr, "%s:%d: bad default: %s\n", __FILE__, __LINE__, err);
            abort();
        }
    }
}

int cfg_set(cfg_t *c, const char *key, const char *value, char *err, size_t err_len) {
    const opt *o = find_key(key);
    if (!o) {
        snprintf(err, err_len, "%s: unknown option", key);
        return -1;
    }
    return set_opt(c, o, value, "set", err, err_len);
}

/* A JSON scalar as the string the other readers see. */
static int json_scalar_str(json_t *v, char *buf, size_t len) {
    if (json_is_string(v))
        snprintf(buf, len, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, len, "%s", json_is_true(v) ? "true" : "false");
    else if (json_is_real(v)) /* 2.0 is fine for an integer key; 2.5 is rejected by strtoll */
        snprintf(buf, len, "%.17g", json_real_value(v));
    else
        return -1;
    return 0;
}

/* Applies a parsed config document (path names it in messages). */
static int apply_json(cfg_t *c, json_t *root, const char *path, char *err, size_t err_len) {
    int rc = 0;
    if (!json_is_object(root)) {
        snprintf(err, err_len, "config %s: top level must be an object", path);
        rc = -1;
    }
    const char *key;
    json_t *v;
    char src[64], buf[4096];
    snprintf(src, sizeof src, "file");
    json_object_foreach(root, key, v) {
        if (rc)
            break;
        const opt *o = find_key(key);
        if (!o) {
            snprintf(err, err_len, "%s (%s): unknown key", key, path);
            rc = -1;
        } else if (o->type == T_LIST && json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                if (json_scalar_str(e, buf, sizeof buf) || set_opt(c, o, buf, src, err, err_len)) {
                    if (!*err)
                        snprintf(err, err_len, "%s (%s): array of strings expected", key, path);
                    rc = -1;
                    break;
                }
            }
        } else if (json_scalar_str(v, buf, sizeof buf)) {
            snprintf(err, err_len, "%s (%s): string or number expected", key, path);
            rc = -1;
        } else if (set_opt(c, o, buf, src, err, err_len)) {
            rc = -1;
        }
    }
    return rc;
}

static int read_file(cfg_t *c, const char *path, char *err, size_t err_len) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        snprintf(err, err_len, "config %s:%d:%d: %s", path, je.line, je.column, je.text);
        return -1;
    }
    int rc = apply_json(c, root, path, err, err_len);
    json_decref(root);
    return rc;
}

int cfg_parse_json(cfg_t *c, const char *text, size_t len, char *err, size_t err_len) {
    json_error_t je;
    err[0] = 0;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root) {
        snprintf(err, err_len, "config <buffer>:%d:%d: %s", je.line, je.column, je.text);
        return -1;
    }
    int rc = apply_json(c, root, "<buffer>", err, err_len);
    json_decref(root);
    return rc;
}

static int read_env(cfg_t *c, char *err, size_t err_len) {
    for (size_t i = 0; i < NOPTS; i++) {
        const char *v = getenv(OPTS[i].env);
        if (!v)
            continue;
        if (OPTS[i].type == T_LIST) {
            list_clear(c); /* env replaces the file's list */
            char *dup = strdup(v), *save = NULL;
            if (!dup) {
                snprintf(err, err_len, "%s: out of memory", OPTS[i].env);
                return -1;
            }
            int rc = 0;
            for (char *t = strtok_r(dup, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save))
                rc = set_opt(c, &OPTS[i], t, OPTS[i].env, err, err_len);
            free(dup);
            if (rc)
                return -1;
        } else if (set_opt(c, &OPTS[i], v, OPTS[i].env, err, err_len)) {
            return -1;
        }
    }
    return 0;
}

/* Finds "--name" or "--name=value" at argv[*i]; returns the value or NULL. */
static const char *flag_value(int argc, char **argv, int *i, const char *flag, int *matched) {
    size_t n = strlen(flag);
    *matched = 0;
    if (strncmp(argv[*i], flag, n) != 0)
        return NULL;
    if (argv[*i][n] == '=') {
        *matched = 1;
        return argv[*i] + n + 1;
    }
    if (argv[*i][n] != 0)
        return NULL;
    *matched = 1;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

cfg_status cfg_load(cfg_t *c, int argc, char **argv, FILE *out, char *err, size_t err_len) {
    cfg_defaults(c);
    err[0] = 0;
    int want_help = 0, want_print = 0, m;
    const char *file = getenv("RESNETD_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            want_help = 1;
        else if (strcmp(argv[i], "--print-config") == 0)
            want_print = 1;
        else {
            const char *v = flag_value(argc, argv, &i, "--config", &m);
            if (m && !v) {
                snprintf(err, err_len, "config: --config needs a file");
                return CFG_ERR_USAGE;
            }
            if (m)
                file = v;
        }
    }
    if (want_help) {
        cfg_print_help(out);
        return CFG_EXIT_OK;
    }
    if (file && *file && read_file(c, file, err, err_len))
        return CFG_ERR_USAGE;
    if (read_env(c, err, err_len))
        return CFG_ERR_USAGE;
    int cli_models = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--print-config") == 0 || strcmp(argv[i], "--help") == 0 ||
            strcmp(argv[i], "-h") == 0)
            continue;
        const char *v = flag_value(argc, argv, &i, "--config", &m);
        if (m)
            continue;
        size_t k;
        for (k = 0; k < NOPTS; k++) {
            v = flag_value(argc, argv, &i, OPTS[k].flag, &m);
            if (!m)
                continue;
            if (!v) {
                snprintf(err, err_len, "%s (%s): missing value", OPTS[k].name, OPTS[k].flag);
                return CFG_ERR_USAGE;
            }
            if (OPTS[k].type == T_LIST && !cli_models++)
                list_clear(c); /* the CLI's list replaces env's and file's */
            if (set_opt(c, &OPTS[k], v, OPTS[k].flag, err, err_len))
                return CFG_ERR_USAGE;
            break;
        }
        if (k == NOPTS) {
            snprintf(err, err_len, "%s: unknown option (see --help)", argv[i]);
            return CFG_ERR_USAGE;
        }
    }
    if (want_print) {
        cfg_print_json(c, out);
        return CFG_EXIT_OK;
    }
    return CFG_OK;
}

void cfg_print_json(const cfg_t *c, FILE *f) {
    json_t *o = json_object();
    if (!o)
        return;
    for (size_t i = 0; i < NOPTS; i++) {
        const char *field = (const char *)c + OPTS[i].off;
        json_t *v = NULL;
        switch (OPTS[i].type) {
        case T_INT:
            v = json_integer(*(const int64_t *)field);
            break;
        case T_BOOL:
            v = json_boolean(*(const int64_t *)field);
            break;
        case T_STR: /* the token never appears in output */
            v = json_string(strcmp(OPTS[i].name, "api_key") == 0 && field[0] ? "<redacted>"
                                                                             : field);
            break;
        case T_LEVEL:
            v = json_string(log_level_names[*(const int64_t *)field]); /* parsed: in range */
            break;
        case T_GOAL:
            v = json_string(cfg_tune_goal_str(*(const int64_t *)field));
            break;
        case T_LIST:
            v = json_array();
            for (int k = 0; k < c->num_models && v; k++)
                json_array_append_new(v, json_string(c->models[k]));
            break;
        }
        json_object_set_new(o, OPTS[i].name, v);
    }
    char *s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
    if (s) {
        fprintf(f, "%s\n", s);
        free(s);
    }
    json_decref(o);
}

void cfg_print_help(FILE *f) {
    fprintf(f, "usage: resnetd serve [options]\n\n"
               "Every option is also an environment variable and a key of the JSON file\n"
               "given by --config FILE (or RESNETD_CONFIG); precedence CLI > env > file >\n"
               "default. --print-config prints the effective configuration as JSON.\n\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const opt *o = &OPTS[i];
        fprintf(f, "  %-24s %s\n  %-24s env %s, key \"%s\", default \"%s\"", o->flag, o->help, "",
                o->env, o->name, o->def);
        if (o->type == T_INT)
            fprintf(f, ", range [%lld, %lld]", (long long)o->min, (long long)o->max);
        fputc('\n', f);
    }
}

void cfg_free(cfg_t *c) {
    if (c)
        list_clear(c);
}
