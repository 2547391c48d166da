/*
 * log.c — the logger (see log.h). Lines are built with jansson in the same
 * compact, key-ordered form as the server's answers, then written whole.
 */
#include "log.h"

#include "json_client.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

/* Six significant digits for "ms", as in the answers (server/json.c). */
#define LOG_DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6))

const char *const log_level_names[LOG_LEVELS] = {"error", "warn", "info", "debug"};

static atomic_int log_max = LOG_INFO;

void log_set_level(int level) {
    atomic_store(&log_max, level);
}

int log_enabled(int level) {
    return level <= atomic_load(&log_max);
}

static void now_iso(char *buf, size_t len) {
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

/* Writes o as one line and drops the reference; NULL (out of memory) writes nothing. */
static void emit(json_t *o) {
    char *s = o ? json_dumps(o, LOG_DUMP_FLAGS) : NULL;
    json_decref(o);
    if (s) {
        fprintf(stderr, "%s\n", s);
        free(s);
    }
}

void log_msg(int level, const char *msg, const char *detail) {
    if (!log_enabled(level))
        return;
    char t[64];
    now_iso(t, sizeof t);
    const char *name = level >= 0 && level < LOG_LEVELS ? log_level_names[level] : "info";
    json_t *o = json_pack("{s:s,s:s,s:s}", "time", t, "level", name, "msg", msg);
    if (o && detail)
        json_object_set_new(o, "detail", json_client_string(detail));
    emit(o);
}

void log_access(const char *id, const char *method, const char *path, int status, size_t bytes,
                double ms, const char *model, int images) {
    log_access_proto(id, method, path, status, bytes, ms, model, images, "http");
}

void log_access_proto(const char *id, const char *method, const char *path, int status,
                      size_t bytes, double ms, const char *model, int images,
                      const char *protocol) {
    if (!log_enabled(LOG_INFO))
        return;
    char t[64];
    now_iso(t, sizeof t);
    emit(json_pack("{s:s,s:s,s:o,s:o,s:i,s:I,s:f,s:s,s:i,s:s}", "time", t, "id", id, "method",
                   json_client_string(method), "path", json_client_string(path), "status", status,
                   "bytes", (json_int_t)bytes, "ms", ms, "model", model ? model : "", "images",
                   images, "protocol", protocol));
}
