/* test_conv_algos.c — the per-node conv algorithm override
 * (engine_load_params.conv_force / conv_choices), driven by test_conv_algos.py.
 *
 *   engine_test_conv_algos MODEL.onnx INPUT.raw BATCH OUTDIR
 *
 * INPUT.raw: BATCH images of float32 NCHW. For each variant (the static
 * rules, every conv forced to direct, channels_last, winograd, and per-node
 * choices cycling through the three plus names the model does not have)
 * loads the model, runs the batch once with engine_run and once timed per
 * step (engine_run_node_times, which also reports the algorithm each conv
 * ran), checks both outputs are equal, writes OUTDIR/<variant>.raw and prints
 * one line "variant N: direct D channels_last C winograd W" (convs per
 * algorithm). Exit 0, or 1 with a message. */
#include "engine.h"
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, const char *err) {
    fprintf(stderr, "FAIL: %s: %s\n", what, err);
    return 1;
}

static int run_variant(const char *onnx, const char *name, const engine_load_params *lp,
                       const float *input, int batch, const char *outdir) {
    char err[512] = "";
    engine_model *m = NULL;
    engine_ctx *c = NULL;
    if (engine_model_load(onnx, lp, &m, err, sizeof err) != ENGINE_OK)
        return fail(name, err);
    engine_ctx_params cp = engine_ctx_default_params();
    cp.threads = 2;
    if (engine_ctx_create(m, &cp, &c, err, sizeof err) != ENGINE_OK) {
        engine_model_free(m);
        return fail(name, err);
    }
    engine_model_info info;
    engine_model_get_info(m, &info);
    size_t nout = (size_t)batch * (size_t)info.num_classes;
    int nn = engine_model_num_nodes(m);
    float *out = calloc(nout, sizeof *out), *out2 = calloc(nout, sizeof *out2);
    double *sec = calloc((size_t)nn + 1, sizeof *sec);
    int *algo = calloc((size_t)nn + 1, sizeof *algo);
    int rc = 1;
    if (!out || !out2 || !sec || !algo) {
        fail(name, "out of memory");
        goto done;
    }
    if (engine_run(c, input, batch, out, err, sizeof err) != ENGINE_OK ||
        engine_run_node_times(c, input, batch, out2, sec, algo, err, sizeof err) != ENGINE_OK) {
        fail(name, err);
        goto done;
    }
    if (memcmp(out, out2, nout * sizeof *out) != 0) {
        fail(name, "the timed run's output differs from engine_run's");
        goto done;
    }
    int count[ENGINE_CONV_NALGO] = {0};
    for (int i = 0; i < nn; i++)
        if (algo[i] > 0 && algo[i] < ENGINE_CONV_NALGO)
            count[algo[i]]++;
    printf("variant %s: direct %d channels_last %d winograd %d\n", name, count[1], count[2],
           count[3]);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.raw", outdir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(out, sizeof *out, nout, f) != nout) {
        if (f)
            fclose(f);
        fail(path, "cannot write");
        goto done;
    }
    fclose(f);
    rc = 0;
done:
    free(out);
    free(out2);
    free(sec);
    free(algo);
    engine_ctx_free(c);
    engine_model_free(m);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL.onnx INPUT.raw BATCH OUTDIR\n", argv[0]);
        return 2;
    }
    const char *onnx = argv[1], *outdir = argv[4];
    int batch = atoi(argv[3]);
    char err[512] = "";
    engine_load_params lp = engine_load_default_params();
    lp.max_batch = batch;
    engine_model *m = NULL;
    if (batch < 1 || engine_model_load(onnx, &lp, &m, err, sizeof err) != ENGINE_OK)
        return fail("load", batch < 1 ? "bad batch" : err);
    engine_model_info info;
    engine_model_get_info(m, &info);
    size_t nin = (size_t)batch * (size_t)info.channels * (size_t)info.height * (size_t)info.width;
    /* per-node choices: every node named, cycling through the algorithms,
     * plus names no model has (ignored) */
    int nn = engine_model_num_nodes(m);
    engine_conv_choice *ch = calloc((size_t)nn + 3, sizeof *ch);
    float *input = malloc(nin * sizeof *input);
    FILE *f = fopen(argv[2], "rb");
    int rc = 0;
    if (!ch || !input || !f || fread(input, sizeof *input, nin, f) != nin)
        rc = fail(argv[2], "cannot read the input");
    if (f)
        fclose(f);
    int n = 0;
    for (int i = 0; i < nn; i++) {
        const char *name = engine_model_node_name(m, i);
        if (!name[0] || strlen(name) >= sizeof ch[0].node)
            continue;
        snprintf(ch[n].node, sizeof ch[n].node, "%s", name);
        ch[n].algo = 1 + n % 3;
        n++;
    }
    snprintf(ch[n].node, sizeof ch[n].node, "no/such/node");
    ch[n++].algo = ENGINE_CONV_WINOGRAD;
    snprintf(ch[n].node, sizeof ch[n].node, "%s", "");
    ch[n++].algo = 99; /* out of range: ignored too */
    engine_model_free(m);
    const char *names[ENGINE_CONV_NALGO] = {"auto", "direct", "channels_last", "winograd"};
    for (int k = 0; rc == 0 && k < ENGINE_CONV_NALGO; k++) {
        engine_load_params v = lp;
        v.conv_force = k;
        rc = run_variant(onnx, names[k], &v, input, batch, outdir);
    }
    if (rc == 0) {
        engine_load_params v = lp;
        v.conv_choices = ch;
        v.nconv_choices = n;
        rc = run_variant(onnx, "choices", &v, input, batch, outdir);
    }
    free(ch);
    free(input);
    printf("isa %s\n", engine_cpu_isa());
    return rc;
}
