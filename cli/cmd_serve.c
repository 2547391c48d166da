/* cmd_serve.c — `resnetd serve [options]`: the option schema (config/cfg.h)
 * turns argv/env/file into a config; server_run does the rest. */
#include "commands.h"

#include "cfg.h"
#include "server.h"

#include <stdio.h>

int cmd_serve(int argc, char **argv) {
    cfg_t c;
    char err[512];
    cfg_status st = cfg_load(&c, argc, argv, stdout, err, sizeof err);
    int rc = 0;
    if (st == CFG_ERR_USAGE) {
        fprintf(stderr, "resnetd serve: %s\n", err);
        rc = 2;
    } else if (st == CFG_OK) {
        rc = server_run(&c);
    }
    cfg_free(&c);
    return rc;
}
