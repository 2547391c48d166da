/*
 * test_engine_taps.c — the taps API of engine.c (engine.h: engine_model_*tap*,
 * engine_model_default_embedding, engine_model_cam_info, engine_run_fetch).
 *
 *   test_engine_taps MODEL.onnx
 *
 * The values themselves are checked against PyTorch and ONNX Runtime by
 * tests/server/test_embed.py; this checks what only the C API shows:
 *  - a run with no fetch and the outputs of a run with fetches are bit for
 *    bit engine_run's;
 *  - every tap fetched for an image of a batch, images asking for different
 *    taps or none, equals that tap from a run of that image alone (so copies
 *    come from the right image and the right step, whatever else the batch
 *    asks; within 1e-4, as the batch size may change a kernel's blocking) —
 *    every tap at batch sizes 1..3, more (batch, tap) pairs than the context
 *    caches, so eviction is exercised too;
 *  - the classifier found by engine_model_cam_info reproduces the output
 *    from the default embedding (W x + b), and global-average-pooling the
 *    features tap gives the embedding;
 *  - bad fetches (image out of the batch, unknown tap, NULL dst, more
 *    different taps than the cache) are ENGINE_ERR_ARG with a message and
 *    leave the context usable; find_tap of an unknown name is -1.
 */
#include "check.h"
#include "engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t tap_floats(const engine_model *m, int t) {
    engine_tensor_desc d;
    engine_model_tap_desc(m, t, &d);
    size_t n = 1;
    for (int i = 1; i < d.ndim; i++)
        n *= (size_t)d.dims[i];
    return n;
}

static double max_rel(const float *a, const float *b, size_t n) {
    double e = 0, mx = 1e-12;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)a[i] - b[i]));
        mx = fmax(mx, fabs((double)b[i]));
    }
    return e / mx;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_engine_taps MODEL.onnx\n");
        return 2;
    }
    char err[512];
    engine_load_params lp = engine_load_default_params();
    lp.max_batch = 3;
    engine_model *m;
    CHECK(engine_model_load(argv[1], &lp, &m, err, sizeof err) == ENGINE_OK);
    engine_model_info info;
    engine_model_get_info(m, &info);
    int ntaps = engine_model_num_taps(m);
    CHECK(ntaps > 0);
    CHECK(engine_model_find_tap(m, "no such tensor") == -1);
    for (int t = 0; t < ntaps; t++) {
        engine_tensor_desc d;
        engine_model_tap_desc(m, t, &d);
        CHECK(engine_model_find_tap(m, d.name) == t);
        CHECK(d.ndim >= 2 && d.dims[0] == -1);
    }
    engine_ctx *c;
    CHECK(engine_ctx_create(m, NULL, &c, err, sizeof err) == ENGINE_OK);

    enum { N = 3 };
    size_t inf = (size_t)info.channels * info.height * info.width, K = (size_t)info.num_classes;
    float *in = malloc(N * inf * sizeof(float)), *ref = malloc(N * K * sizeof(float)),
          *out = malloc(N * K * sizeof(float)), *one = malloc(K * sizeof(float)),
          *refn = malloc(N * K * sizeof(float));
    CHECK(in && ref && out && one && refn);
    for (size_t i = 0; i < N * inf; i++)
        in[i] = (float)sin((double)i * 0.731) + (float)(i % 7) * 0.1f;
    CHECK(engine_run(c, in, N, ref, err, sizeof err) == ENGINE_OK);
    CHECK(engine_run_fetch(c, in, N, out, NULL, 0, err, sizeof err) == ENGINE_OK);
    CHECK(memcmp(out, ref, N * K * sizeof(float)) == 0);

    /* every tap, batch sizes 1..3; image i of a batch asks for tap t + i (or
     * nothing when that passes the last tap); each vs a batch-1 run */
    size_t most = 0;
    for (int t = 0; t < ntaps; t++)
        most = tap_floats(m, t) > most ? tap_floats(m, t) : most;
    float *got = malloc(N * most * sizeof(float)), *alone = malloc(most * sizeof(float));
    CHECK(got && alone);
    int pairs = 0;
    for (int n = 1; n <= N; n++)
        for (int t = 0; t < ntaps; t += n) {
            engine_fetch f[N];
            int nf = 0;
            for (int i = 0; i < n; i++)
                if (t + i < ntaps)
                    f[nf++] = (engine_fetch){i, t + i, got + (size_t)i * most};
            CHECK(engine_run(c, in, n, refn, err, sizeof err) == ENGINE_OK);
            CHECK(engine_run_fetch(c, in, n, out, f, nf, err, sizeof err) == ENGINE_OK);
            CHECK(memcmp(out, refn, (size_t)n * K * sizeof(float)) == 0);
            pairs += nf;
            for (int k = 0; k < nf; k++) {
                engine_fetch a = {0, f[k].tap, alone};
                CHECK(engine_run_fetch(c, in + (size_t)f[k].image * inf, 1, one, &a, 1, err,
                                       sizeof err) == ENGINE_OK);
                double e = max_rel(f[k].dst, alone, tap_floats(m, f[k].tap));
                if (e > 1e-4) {
                    engine_tensor_desc d;
                    engine_model_tap_desc(m, f[k].tap, &d);
                    fprintf(stderr, "tap %s image %d of %d: relative difference %g\n", d.name,
                            f[k].image, n, e);
                }
                CHECK(e <= 1e-4); /* batch size may change the kernel's blocking */
            }
        }
    CHECK(pairs > 32 || ntaps * 3 <= 32); /* more than the cache holds when the model allows */

    /* the classifier behind the default embedding */
    int emb = engine_model_default_embedding(m);
    engine_cam_info ci;
    engine_status cs = engine_model_cam_info(m, &ci, err, sizeof err);
    if (emb >= 0 && cs == ENGINE_OK) {
        CHECK(ci.classes == info.num_classes && ci.weight);
        CHECK(tap_floats(m, emb) == (size_t)ci.channels);
        size_t hw = (size_t)ci.height * ci.width;
        CHECK(tap_floats(m, ci.features_tap) == (size_t)ci.channels * hw);
        float *e = malloc(N * (size_t)ci.channels * sizeof(float)),
              *feat = malloc(N * (size_t)ci.channels * hw * sizeof(float));
        CHECK(e && feat);
        engine_fetch f[2 * N];
        for (int i = 0; i < N; i++) {
            f[2 * i] = (engine_fetch){i, emb, e + (size_t)i * ci.channels};
            f[2 * i + 1] = (engine_fetch){i, ci.features_tap, feat + (size_t)i * ci.channels * hw};
        }
        CHECK(engine_run_fetch(c, in, N, out, f, 2 * N, err, sizeof err) == ENGINE_OK);
        for (int i = 0; i < N; i++) {
            float logits[4096], pooled[8192];
            CHECK(K <= 4096 && ci.channels <= 8192);
            for (int k = 0; k < ci.classes; k++) {
                double s = ci.bias ? ci.bias[k] : 0;
                for (int ch = 0; ch < ci.channels; ch++)
                    s += (double)ci.weight[(size_t)k * ci.channels + ch] *
                         e[(size_t)i * ci.channels + ch];
                logits[k] = (float)s;
            }
            for (int ch = 0; ch < ci.channels; ch++) {
                double s = 0;
                for (size_t p = 0; p < hw; p++)
                    s += feat[((size_t)i * ci.channels + ch) * hw + p];
                pooled[ch] = (float)(s / (double)hw);
            }
            CHECK(max_rel(logits, ref + (size_t)i * K, K) < 1e-4);
            CHECK(max_rel(pooled, e + (size_t)i * ci.channels, (size_t)ci.channels) < 1e-5);
        }
        free(e);
        free(feat);
        printf("cam: %d classes x %d channels on %dx%d features\n", ci.classes, ci.channels,
               ci.height, ci.width);
    } else {
        CHECK(cs == ENGINE_ERR_UNSUPPORTED && err[0] && ci.features_tap == -1);
        printf("no cam: %s\n", err);
    }

    /* bad fetches: refused with a message, the context still works */
    engine_fetch bad[40];
    bad[0] = (engine_fetch){N, 0, got};
    err[0] = 0;
    CHECK(engine_run_fetch(c, in, N, out, bad, 1, err, sizeof err) == ENGINE_ERR_ARG && err[0]);
    bad[0] = (engine_fetch){0, ntaps, got};
    CHECK(engine_run_fetch(c, in, N, out, bad, 1, err, sizeof err) == ENGINE_ERR_ARG);
    bad[0] = (engine_fetch){0, 0, NULL};
    CHECK(engine_run_fetch(c, in, N, out, bad, 1, err, sizeof err) == ENGINE_ERR_ARG);
    if (ntaps > 32) {
        float *big = malloc(33 * most * sizeof(float));
        CHECK(big);
        for (int k = 0; k < 33; k++)
            bad[k] = (engine_fetch){k % N, k, big + (size_t)k * most};
        err[0] = 0;
        CHECK(engine_run_fetch(c, in, N, out, bad, 33, err, sizeof err) == ENGINE_ERR_ARG &&
              err[0]);
        free(big);
    }
    CHECK(engine_run_fetch(c, in, N, out, NULL, 0, err, sizeof err) == ENGINE_OK);
    CHECK(memcmp(out, ref, N * K * sizeof(float)) == 0);
    printf("%d taps, %d fetches checked\n", ntaps, pairs);

    free(in);
    free(ref);
    free(out);
    free(one);
    free(refn);
    free(got);
    free(alone);
    engine_ctx_free(c);
    engine_model_free(m);
    printf("test_engine_taps: ok\n");
    return 0;
}
