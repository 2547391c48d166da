/*
 * server.h — `resnetd serve`: loads the models, starts the HTTP front end and
 * the inference workers, serves until SIGTERM/SIGINT, then drains.
 */
#ifndef RESNETD_SERVER_H
#define RESNETD_SERVER_H

#include "cfg.h"

#include <stddef.h>

/* Runs the server with the effective config c until a signal. Returns the
 * process exit code: 0 after a clean drain, 1 on a runtime failure (model
 * load, bind), 2 on a bad model set (duplicate names, nothing to serve).
 * Failures are logged as one JSON line on stderr. */
int server_run(const cfg_t *c);

/* The bundled default model: the first existing of <exe_dir>/../models/NAME,
 * <exe_dir>/models/NAME and <exe_dir>/../share/resnetd/models/NAME. Writes
 * the path into buf and returns 0, or -1 when none exists. (In registry.c,
 * which builds the model list: the registry never calls into server.c.) */
int server_default_model(const char *name, char *buf, size_t len);

#endif
