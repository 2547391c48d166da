/* main.c — `resnetd [subcommand] ...`: dispatch only; each subcommand lives
 * in its own file. With no subcommand (or options only) it serves. */
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How long an idle OpenMP thread spins before it sleeps, in libgomp's
 * iterations (a `pause` each, ~15-40 ns). oneDNN runs every primitive as a
 * parallel region, so a context's threads wait between ~60 regions per
 * ResNet-50 image. Measured (docs/latency.md; ResNet-50 batch 1, 2 threads,
 * 2 cores, p50 fp32 / int8 ms): 100 spins, libgomp's value when it counts
 * more threads than cores, lets them sleep at every barrier: 25 / 9 quiet,
 * 37 / 13 next to a busy thread. 1000: 20.5 / 6.3 quiet, 41.5 / 14.9 next to
 * one. 2000-20000 are no faster quiet and slower when shared (45-115 /
 * 18-59: a thread whose partner was preempted spins longer); libgomp's
 * default, 300,000 (~5-10 ms), matches 1000 in these runs but made runs
 * 20x slower next to compile jobs. */
#define OMP_SPIN_DEFAULT "1000"

/* libgomp reads GOMP_SPINCOUNT once, when it is loaded, before main runs:
 * unless the user chose a policy (GOMP_SPINCOUNT or OMP_WAIT_POLICY set),
 * run again with ours. If the exec fails, libgomp's default stays. */
static void omp_spin_policy(char **argv) {
    if (getenv("GOMP_SPINCOUNT") || getenv("OMP_WAIT_POLICY"))
        return;
    if (setenv("GOMP_SPINCOUNT", OMP_SPIN_DEFAULT, 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    unsetenv("GOMP_SPINCOUNT");
}

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
    omp_spin_policy(argv);
    if (argc < 2 || argv[1][0] == '-')
        return cmd_serve(argc, argv); /* argv[0] stands in for "serve" */
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(argv[1], cmds[i].name) == 0)
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "resnetd: unknown subcommand '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
