/* cmd_bench.c — `resnetd bench` (placeholder until its module lands). */
#include "commands.h"

#include <stdio.h>

int cmd_bench(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "resnetd bench: not built yet\n");
    return 1;
}
