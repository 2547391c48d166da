/*
 * log.h — the program's one logger: JSON lines on stderr, one line per
 * event, written with one stdio call so lines from concurrent threads never
 * interleave. Two streams share it:
 *   events  {"time","level","msg"[,"detail"]}            log_msg()
 *   access  {"time","id","method","path","status","bytes","ms","model","images","protocol"}
 *           one per answered request, at level info     log_access()
 * The keys are an interface: tests and dashboards parse them (docs/api.md,
 * "Logs"). The level is process-wide, set once at start (serve: log_level).
 */
#ifndef RESNETD_LOG_H
#define RESNETD_LOG_H

#include <stddef.h>

typedef enum { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_LEVELS } log_level;

/* The level names, indexed by log_level ("error", "warn", "info", "debug"):
 * the values of the log_level option and of the "level" key. */
extern const char *const log_level_names[LOG_LEVELS];

/* Sets the most verbose level written (default LOG_INFO). Call before
 * starting threads. */
void log_set_level(int level);

/* 1 when a line at level would be written. */
int log_enabled(int level);

/* An event line; detail may be NULL (no "detail" key). */
void log_msg(int level, const char *msg, const char *detail);

/* One access-log line (level info): the request id, method and path as the
 * client sent them, the answer's status and body bytes, the time since the
 * request arrived, the model's name ("" when none) and the images in it. */
void log_access(const char *id, const char *method, const char *path, int status, size_t bytes,
                double ms, const char *model, int images);

/* The same with the protocol the request came in by ("http", "grpc");
 * log_access writes "http". For gRPC, method is "POST", path the RPC's
 * (/inference.GRPCInferenceService/ModelInfer) and status the HTTP status
 * the gRPC status stands for (docs/grpc.md). */
void log_access_proto(const char *id, const char *method, const char *path, int status,
                      size_t bytes, double ms, const char *model, int images, const char *protocol);

#endif
