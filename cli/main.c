/* main.c — `resnetd [subcommand] ...`: dispatch only; each subcommand lives
 * in its own file. With no subcommand (or options only) it serves. */
#include "commands.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: resnetd [serve] [options]             serve models over HTTP (default)\n"
            "       resnetd classify [--model M] [--top-k K] [-r] [--format jsonl|csv] INPUT...\n"
            "       resnetd infer --model M IN.npy OUT.npy\n"
            "       resnetd preprocess --model M IMAGE OUT.npy\n"
            "       resnetd bench --model M [--batch 1,8] [--threads T] [--seconds S]\n"
            "       resnetd quantize --model M --calibration DIR --out OUT\n"
            "       resnetd --version | --help\n"
            "'resnetd serve --help' lists every server option.\n");
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"serve", cmd_serve}, {"classify", cmd_classify},
                {"infer", cmd_infer}, {"preprocess", cmd_preprocess},
                {"bench", cmd_bench}, {"quantize", cmd_quantize}};
    if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
        printf("resnetd %s\n", RESNETD_VERSION);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 2 || argv[1][0] == '-')
        return cmd_serve(argc, argv); /* argv[0] stands in for "serve" */
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(argv[1], cmds[i].name) == 0)
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "resnetd: unknown subcommand '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
