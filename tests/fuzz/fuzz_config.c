/*
 * fuzz_config.c — libFuzzer target over the two JSON config parsers:
 *   - the server's option file (cfg_parse_json, the --config reader's core),
 *     checked afterwards: every accepted value still prints as valid JSON;
 *   - a model directory's config.json (model_config_load), written into a
 *     per-process scratch directory next to an empty model.onnx and a small
 *     labels.txt (the parser never opens the ONNX file).
 * The input's first byte picks the parser; the rest is the document.
 */
#include "cfg.h"
#include "model_config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char scratch_dir[64];

/* Creates the scratch model directory once; returns its path or NULL. */
static const char *scratch(void) {
    if (scratch_dir[0])
        return scratch_dir;
    char tmpl[] = "/tmp/fuzz_config.XXXXXX";
    if (!mkdtemp(tmpl))
        return NULL;
    char p[128];
    snprintf(p, sizeof p, "%s/model.onnx", tmpl);
    FILE *f = fopen(p, "wb");
    if (!f)
        return NULL;
    fclose(f);
    snprintf(p, sizeof p, "%s/labels.txt", tmpl);
    if (!(f = fopen(p, "wb")))
        return NULL;
    fputs("a\nb\nc\n", f);
    fclose(f);
    snprintf(scratch_dir, sizeof scratch_dir, "%s", tmpl);
    return scratch_dir;
}

static void fuzz_cfg(const char *text, size_t len) {
    cfg_t c;
    char err[512];
    cfg_defaults(&c);
    if (cfg_parse_json(&c, text, len, err, sizeof err) != 0 &&
        (memchr(err, '\0', sizeof err) == NULL || !err[0]))
        abort(); /* every failure names its cause */
    FILE *f = fopen("/dev/null", "w");
    if (f) {
        cfg_print_json(&c, f);
        fclose(f);
    }
    cfg_free(&c);
}

static void fuzz_model_config(const char *text, size_t len) {
    const char *dir = scratch();
    if (!dir)
        return;
    char p[128];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "wb");
    if (!f)
        return;
    size_t w = fwrite(text, 1, len, f);
    fclose(f);
    if (w != len)
        return;
    model_config mc;
    char err[512];
    memset(&mc, 0, sizeof mc);
    if (model_config_load(dir, &mc, err, sizeof err) == 0) {
        char buf[16];
        for (int i = 0; i < mc.num_labels + 2; i++)
            if (!model_config_label(&mc, i, buf))
                abort();
        if (mc.max_batch < 1 || mc.input.crop_h < 1 || mc.input.crop_w < 1)
            abort();
    }
    model_config_free(&mc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    if (data[0] & 1)
        fuzz_model_config((const char *)data + 1, size - 1);
    else
        fuzz_cfg((const char *)data + 1, size - 1);
    return 0;
}
