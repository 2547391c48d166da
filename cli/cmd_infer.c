/* cmd_infer.c — `resnetd infer` (placeholder until its module lands). */
#include "commands.h"

#include <stdio.h>

int cmd_infer(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "resnetd infer: not built yet\n");
    return 1;
}
