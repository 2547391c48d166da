/* model_config.c — placeholder until the image pipeline's model loader lands. */
#include "model_config.h"

#include <stdio.h>
#include <string.h>

int model_config_load(const char *path, model_config *out, char *err, size_t err_len) {
    memset(out, 0, sizeof(*out));
    snprintf(err, err_len, "%s: model directories not supported yet", path);
    return -1;
}
void model_config_free(model_config *mc) {
    (void)mc;
}
