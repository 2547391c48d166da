/* cmd_classify.c — `resnetd classify` (placeholder until its module lands). */
#include "commands.h"

#include <stdio.h>

int cmd_classify(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "resnetd classify: not built yet\n");
    return 1;
}
