/* cmd_serve.c — `resnetd serve` (placeholder until its module lands). */
#include "commands.h"

#include <stdio.h>

int cmd_serve(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "resnetd serve: not built yet\n");
    return 1;
}
