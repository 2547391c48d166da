/* test_cfg.c — the option schema: flags and env names derive from the key,
 * precedence CLI > env > file > default, bounds and unknown keys rejected
 * with the key named. */
#include "check.h"
#include "cfg.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cfg_status load(cfg_t *c, char *err, int argc, ...) {
    char *argv[32];
    va_list ap;
    va_start(ap, argc);
    argv[0] = "serve";
    for (int i = 1; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    FILE *devnull = fopen("/dev/null", "w");
    cfg_status st = cfg_load(c, argc, argv, devnull, err, 256);
    fclose(devnull);
    return st;
}

int main(void) {
    char err[256], dir[] = "/tmp/cfgtestXXXXXX", path[300];
    /* names are consistent: key max_batch <=> --max-batch <=> RESNETD_MAX_BATCH */
    for (size_t i = 0; i < cfg_option_count(); i++) {
        const char *name, *env, *flag;
        char want_env[128] = "RESNETD_", want_flag[128] = "--";
        cfg_option_names(i, &name, &env, &flag);
        for (const char *p = name; *p; p++) {
            size_t e = strlen(want_env), f = strlen(want_flag);
            want_env[e] = (char)toupper((unsigned char)*p);
            want_env[e + 1] = 0;
            want_flag[f] = *p == '_' ? '-' : *p;
            want_flag[f + 1] = 0;
        }
        CHECK(strcmp(env, want_env) == 0);
        CHECK(strcmp(flag, want_flag) == 0);
    }
    cfg_t c;
    CHECK(load(&c, err, 1) == CFG_OK);
    CHECK(!strcmp(c.host, "127.0.0.1") && c.port == 8080 && c.top_k == 5);
    cfg_free(&c);

    CHECK(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/c.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f);
    fprintf(f, "{\"port\": 9000, \"workers\": 2, \"top_k\": 3, \"model\": [\"a\", \"b\"]}");
    fclose(f);
    setenv("RESNETD_WORKERS", "3", 1);
    setenv("RESNETD_MODEL", "e1,e2,e3", 1);
    char cfgflag[320];
    snprintf(cfgflag, sizeof cfgflag, "--config=%s", path);
    CHECK(load(&c, err, 4, cfgflag, "--top-k", "7") == CFG_OK);
    CHECK(c.port == 9000);                                  /* file */
    CHECK(c.workers == 3);                                  /* env over file */
    CHECK(c.top_k == 7);                                    /* CLI over file */
    CHECK(c.num_models == 3 && !strcmp(c.models[2], "e3")); /* env list replaces file list */
    cfg_free(&c);
    CHECK(load(&c, err, 6, "--config", path, "--model", "x", "--model=y") == CFG_OK);
    CHECK(c.num_models == 2 && !strcmp(c.models[0], "x") && !strcmp(c.models[1], "y"));
    cfg_free(&c);
    unsetenv("RESNETD_MODEL");

    setenv("RESNETD_WORKERS", "0", 1);
    CHECK(load(&c, err, 1) == CFG_ERR_USAGE && strstr(err, "workers"));
    cfg_free(&c);
    unsetenv("RESNETD_WORKERS");
    CHECK(load(&c, err, 3, "--port", "70000") == CFG_ERR_USAGE && strstr(err, "port"));
    cfg_free(&c);
    CHECK(load(&c, err, 3, "--max-batch", "8x") == CFG_ERR_USAGE && strstr(err, "max_batch"));
    cfg_free(&c);
    CHECK(load(&c, err, 3, "--log-level", "loud") == CFG_ERR_USAGE && strstr(err, "log_level"));
    cfg_free(&c);
    CHECK(load(&c, err, 2, "--nope") == CFG_ERR_USAGE && strstr(err, "--nope"));
    cfg_free(&c);
    CHECK(load(&c, err, 2, "--port") == CFG_ERR_USAGE && strstr(err, "port"));
    cfg_free(&c);
    f = fopen(path, "w");
    CHECK(f);
    fprintf(f, "{\"queue_capacity\": -1}");
    fclose(f);
    CHECK(load(&c, err, 2, cfgflag) == CFG_ERR_USAGE && strstr(err, "queue_capacity"));
    cfg_free(&c);
    f = fopen(path, "w");
    CHECK(f);
    fprintf(f, "{\"bogus_key\": 1}");
    fclose(f);
    CHECK(load(&c, err, 2, cfgflag) == CFG_ERR_USAGE && strstr(err, "bogus_key"));
    cfg_free(&c);
    CHECK(load(&c, err, 2, "--help") == CFG_EXIT_OK);
    cfg_free(&c);
    remove(path);
    remove(dir);
    printf("test_cfg: ok\n");
    return 0;
}
