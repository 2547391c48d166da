/*
 * manpage.c — writes the resnetd(1) man page (roff) to stdout, at build time.
 *
 *   resnetd-manpage BUILT_RESNETD VERSION CONF_FILE MODELS_DIR UNIT_FILE > resnetd.1
 *
 * Nothing in it is written by hand twice: the server options come from the
 * option table itself (config/cfg.c, through cfg_option_names/cfg_option_doc),
 * the subcommands and their synopses from the built binary's own `--help` and
 * `SUBCOMMAND --help` output. Adding an option or a subcommand changes the man
 * page at the next build; tests/deploy/manpage_test.py checks that it lists
 * every option and subcommand.
 */
#include "cfg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CMDS 32

/* Writes s as roff text: backslashes escaped, hyphens as \- (so that flags
 * can be copied from the rendered page), and a line never starting with a
 * control character. */
static void roff(const char *s) {
    int bol = 1;
    for (; *s; s++) {
        if (bol && (*s == '.' || *s == '\''))
            fputs("\\&", stdout);
        bol = *s == '\n';
        if (*s == '\\')
            fputs("\\e", stdout);
        else if (*s == '-')
            fputs("\\-", stdout);
        else if (*s == ':') /* a break point inside long values (tls_priorities) */
            fputs(":\\:", stdout);
        else
            putchar(*s);
    }
}

/* Runs `bin args` and returns its stdout (malloc'd, caller frees), or NULL
 * when it cannot run or exits non-zero. */
static char *run(const char *bin, const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "'%s' %s 2>/dev/null", bin, args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int rc = pclose(p);
    if (!buf || rc != 0) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* Collects the subcommand names from the top-level usage text: every line
 * "usage: resnetd NAME ..." or "       resnetd NAME ..." with a lowercase NAME
 * ("[serve]" counts as serve). Returns how many were found. */
static int subcommands(const char *usage, char names[][32]) {
    int n = 0;
    for (const char *l = usage; l && *l && n < MAX_CMDS;) {
        const char *r = strstr(l, "resnetd ");
        const char *eol = strchr(l, '\n');
        if (r && (!eol || r < eol)) {
            r += 8;
            if (*r == '[')
                r++;
            size_t k = 0;
            while (r[k] >= 'a' && r[k] <= 'z' && k < 31)
                k++;
            int dup = 0;
            for (int i = 0; i < n; i++)
                dup |= strlen(names[i]) == k && strncmp(names[i], r, k) == 0;
            if (k && !dup) {
                memcpy(names[n], r, k);
                names[n++][k] = '\0';
            }
        }
        l = eol ? eol + 1 : NULL;
    }
    return n;
}

static void options(void) {
    printf(".SH SERVER OPTIONS\n"
           "Every option of \\fBresnetd serve\\fR is also an environment variable and a key\n"
           "of the JSON configuration file. Precedence: command line > environment >\n"
           "configuration file > default.\n");
    printf(".TP\n\\fB\\-\\-config\\fR \\fIFILE\\fR\n"
           "Read options from the JSON object in \\fIFILE\\fR (environment: RESNETD_CONFIG).\n");
    printf(".TP\n\\fB\\-\\-print\\-config\\fR\n"
           "Print the effective configuration as one JSON object and exit (api_key redacted).\n");
    printf(".TP\n\\fB\\-\\-help\\fR\nList the options and exit.\n");
    for (size_t i = 0; i < cfg_option_count(); i++) {
        const char *name, *env, *flag, *help, *def;
        int is_int;
        int64_t min, max;
        cfg_option_names(i, &name, &env, &flag);
        cfg_option_doc(i, &help, &def, &is_int, &min, &max);
        printf(".TP\n\\fB");
        roff(flag);
        printf("\\fR \\fI%s\\fR\n", is_int ? "N" : "VALUE");
        roff(help);
        printf(".\n.br\nEnvironment \\fB");
        roff(env);
        printf("\\fR, key \\fB\"");
        roff(name);
        printf("\"\\fR, default \"");
        roff(def);
        printf("\"");
        if (is_int)
            printf(", range [%" PRId64 ", %" PRId64 "]", min, max);
        printf(".\n");
    }
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: resnetd-manpage BUILT_RESNETD VERSION CONF_FILE MODELS_DIR "
                        "UNIT_FILE > resnetd.1\n");
        return 2;
    }
    const char *bin = argv[1];
    char *usage = run(bin, "--help");
    if (!usage) {
        fprintf(stderr, "resnetd-manpage: '%s --help' failed\n", bin);
        return 1;
    }
    char names[MAX_CMDS][32] = {{0}};
    int n = subcommands(usage, names);

    printf(".\\\" Generated by packaging/manpage.c from the option table and\n"
           ".\\\" `resnetd --help`; do not edit.\n");
    printf(".TH RESNETD 1 \"\" \"resnetd %s\" \"User Commands\"\n", argv[2]);
    printf(".SH NAME\nresnetd \\- ONNX image classification server and tools (oneDNN, CPU)\n");
    printf(".SH SYNOPSIS\n.nf\n");
    for (const char *l = strncmp(usage, "usage: ", 7) == 0 ? usage + 7 : usage; *l;) {
        while (*l == ' ') /* the usage text's own alignment */
            l++;
        const char *eol = strchr(l, '\n');
        size_t k = eol ? (size_t)(eol - l) + 1 : strlen(l);
        char line[512];
        snprintf(line, sizeof(line), "%.*s", (int)(k < sizeof(line) ? k : sizeof(line) - 1), l);
        roff(line);
        l += k;
    }
    printf(".fi\n");
    printf(".SH DESCRIPTION\n"
           "\\fBresnetd\\fR serves ONNX image classifiers over HTTP (\\fBserve\\fR, the\n"
           "default when no subcommand is given) and runs the same engine from the\n"
           "command line. Without \\fB\\-\\-model\\fR or \\fB\\-\\-model\\-repository\\fR it\n"
           "serves the bundled model found relative to the executable, in\n"
           "\\fI../share/resnetd/models\\fR.\n");
    printf(".SH COMMANDS\n");
    for (int i = 0; i < n; i++) {
        printf(".SS %s\n", names[i]);
        if (strcmp(names[i], "serve") == 0) {
            printf("Serve models over HTTP; see \\fBSERVER OPTIONS\\fR.\n");
            continue;
        }
        char args[64]; /* names[i] is at most 31 bytes */
        snprintf(args, sizeof(args), "%.31s --help", names[i]);
        char *sub = run(bin, args);
        if (sub && strncmp(sub, "usage:", 6) == 0) {
            printf(".nf\n");
            roff(sub);
            printf(".fi\n");
        } else { /* no --help of its own: its line of the top-level usage */
            const char *l = strstr(usage, "resnetd ");
            for (; l; l = strstr(l + 1, "resnetd ")) {
                size_t k = strlen(names[i]);
                if (strncmp(l + 8, names[i], k) == 0 && l[8 + k] == ' ') {
                    const char *eol = strchr(l, '\n');
                    printf(".nf\n");
                    char line[512];
                    snprintf(line, sizeof(line), "%.*s\n", (int)(eol ? eol - l : 511), l);
                    roff(line);
                    printf(".fi\n");
                    break;
                }
            }
        }
        free(sub);
    }
    options();
    printf(".SH SIGNALS\n"
           "On SIGTERM or SIGINT the server stops accepting, \\fB/readyz\\fR answers 503,\n"
           "accepted requests finish within \\fBdrain_timeout_ms\\fR and it exits 0.\n");
    printf(".SH EXIT STATUS\n0 success, 1 runtime failure, 2 bad usage or configuration.\n");
    printf(".SH FILES\n.TP\n\\fI");
    roff(argv[3]);
    printf("\\fR\nConfiguration file read by the systemd unit (\\-\\-config).\n.TP\n\\fI");
    roff(argv[4]);
    printf("\\fR\nThe bundled models.\n.TP\n\\fI");
    roff(argv[5]);
    printf("\\fR\nThe systemd unit (secrets: EnvironmentFile /etc/default/resnetd).\n");
    free(usage);
    return 0;
}
