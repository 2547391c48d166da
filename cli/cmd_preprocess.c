/* cmd_preprocess.c — `resnetd preprocess` (placeholder until its module lands). */
#include "commands.h"

#include <stdio.h>

int cmd_preprocess(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "resnetd preprocess: not built yet\n");
    return 1;
}
