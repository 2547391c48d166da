/*
 * cfg.h — the server's option schema: ONE table (name, type, bounds, default,
 * env name, flag, help) read by the CLI parser, the environment reader, the
 * JSON config-file reader, --help and --print-config.
 *
 * Precedence: CLI > env (RESNETD_*) > file (--config FILE or RESNETD_CONFIG) > default.
 * For workers, threads_per_worker and max_batch a model's tuned.json (written
 * by `resnetd bench --tune`, see config/tuned.h) sits between file and default:
 * cfg_is_set() tells serve which options the user gave.
 * Flag --max-batch <=> env RESNETD_MAX_BATCH <=> file key "max_batch".
 */
#ifndef RESNETD_CFG_H
#define RESNETD_CFG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CFG_MAX_MODELS 16

/* Which pick of a model's tuned.json (bench --tune) serve uses, if any. */
typedef enum { CFG_TUNE_THROUGHPUT = 0, CFG_TUNE_LATENCY, CFG_TUNE_OFF } cfg_tune_goal;

typedef struct {
    char host[256];
    int64_t port;
    int64_t grpc_port;            /* -1 = no gRPC port */
    char grpc_host[256];          /* "" = host */
    char *models[CFG_MAX_MODELS]; /* malloc'd paths (repeatable --model) */
    int num_models;
    char model_repository[4096];
    char model_control_mode[16];  /* none, poll or explicit (server/registry.h) */
    int64_t repository_poll_secs; /* poll mode: seconds between scans */
    char load_model[4096];        /* explicit mode: models loaded at start, comma-separated */
    int64_t exit_on_error;        /* 1: a model failing at start-up stops the server */
    int64_t strict_readiness;     /* 1: ready only when every wanted model is */
    int64_t workers;              /* inference workers per model */
    int64_t threads_per_worker;   /* oneDNN threads per worker; 0 = cores / workers */
    int64_t max_batch;            /* 0 = each model's config.json max_batch */
    int64_t batch_timeout_us;
    int64_t queue_capacity; /* images per model queue */
    int64_t max_body_bytes;
    int64_t max_image_pixels;
    int64_t request_timeout_ms;
    int64_t drain_timeout_ms;
    int64_t top_k;
    int64_t log_level; /* log_level (common/log.h) */
    int64_t http_threads;
    int64_t decode_threads;     /* image decode pool; 0 = cores */
    int64_t max_inflight_bytes; /* server-wide memory budget (server/budget.h) */
    int64_t max_connections;
    int64_t connection_timeout_s;
    int64_t max_connections_per_ip; /* 0 = no per-address limit */
    int64_t allow_chunked;          /* 1: accept chunked request bodies (server/http.c) */
    char api_key[256];    /* "" = no access control; else the bearer token (server/auth.h) */
    int64_t metrics_auth; /* 1: /metrics needs the token too */
    char tls_cert[4096];  /* PEM files; both set = HTTPS only */
    char tls_key[4096];
    char tls_priorities[512]; /* GnuTLS priority string */
    int64_t tune_goal;        /* cfg_tune_goal */
    uint64_t set_mask;        /* bit i: option i was given by flag, env or file (see cfg_is_set) */
} cfg_t;

typedef enum {
    CFG_OK = 0,
    CFG_EXIT_OK,   /* --help or --print-config handled: exit 0 */
    CFG_ERR_USAGE, /* bad flag, value or file: exit 2, err names the key */
} cfg_status;

/* Fills c with every default. Free with cfg_free(). */
void cfg_defaults(cfg_t *c);

/* Builds the effective config from defaults, file, env (getenv) and argv
 * (argv[0] is skipped). Handles --help and --print-config by writing to out
 * and returning CFG_EXIT_OK. On CFG_ERR_USAGE err holds one line naming the
 * key at fault. Positional arguments are rejected. c is always left freeable
 * with cfg_free(). */
cfg_status cfg_load(cfg_t *c, int argc, char **argv, FILE *out, char *err, size_t err_len);

/* Sets one option by its key name from a string (as the env/CLI readers do).
 * Returns 0, or -1 with err naming the key. */
int cfg_set(cfg_t *c, const char *key, const char *value, char *err, size_t err_len);

/* Applies a JSON config document held in memory (the --config file's format)
 * on top of c, as the file reader does. Returns 0, or -1 with err naming the
 * key (or line:column) at fault; c stays freeable with cfg_free() either way. */
int cfg_parse_json(cfg_t *c, const char *text, size_t len, char *err, size_t err_len);

/* Writes the effective config as a JSON object (one line + newline) to f. */
void cfg_print_json(const cfg_t *c, FILE *f);

/* Writes the option table as --help text to f. */
void cfg_print_help(FILE *f);

/* 1 when the option named key was given explicitly (CLI flag, env, config
 * file or cfg_set), even if to its default value; 0 when it holds its default
 * (or key is unknown). Tuned defaults (tuned.json) only fill unset options. */
int cfg_is_set(const cfg_t *c, const char *key);

/* Stable name of a tune goal ("throughput", "latency", "off"). */
const char *cfg_tune_goal_str(int64_t goal);

/* Frees the model list; NULL is a no-op. */
void cfg_free(cfg_t *c);

/* Number of entries in the schema, and their names/env/flag strings (for tests). */
size_t cfg_option_count(void);
void cfg_option_names(size_t i, const char **name, const char **env, const char **flag);
/* Option i's help text and default (as written in the table); for integer
 * options *is_int = 1 and [*min, *max] is the accepted range. Used by the man
 * page generator (packaging/manpage.c), so the man page follows the table. */
void cfg_option_doc(size_t i, const char **help, const char **def, int *is_int, int64_t *min,
                    int64_t *max);

#endif
