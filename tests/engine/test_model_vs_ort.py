#!/usr/bin/env python3
"""One whole model through `resnetd infer` and through ONNX Runtime.

  test_model_vs_ort.py --model resnet50 --opset 13 --resnetd BIN --cache DIR
                       [--batches 1,3,8]

The model is exported by models.export() (cached in DIR). Each batch is
seeded input run by both; the bound is max|ours - ORT| <= 1e-3 * max|ORT|.
A guard checks that the logits really differ between images of a batch, so
a model that ignores its input (and an engine bug it would hide) fails.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import models  # noqa: E402

NODE_MODULES = os.path.join(HERE, "..", "node_modules")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, choices=models.model_names())
    ap.add_argument("--opset", type=int, required=True)
    ap.add_argument("--resnetd", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--batches", default="1,3,8")
    ap.add_argument("--tol", type=float, default=1e-3)
    a = ap.parse_args()

    t0 = time.time()
    onnx_path = models.export(a.model, a.opset, a.cache)
    t_export = time.time() - t0
    size = models.input_size(a.model)
    batches = [int(b) for b in a.batches.split(",")]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        pairs, ours = [], {}
        t0 = time.time()
        for b in batches:
            x = models.images(b, size, seed=4242 + b)
            xin = os.path.join(tmp, "in%d.npy" % b)
            np.save(xin, x)
            out = os.path.join(tmp, "ours%d.npy" % b)
            r = subprocess.run([a.resnetd, "infer", "--model", onnx_path, xin, out],
                               capture_output=True, text=True)
            if r.returncode != 0:
                failures.append("batch %d: resnetd infer exited %d: %s"
                                % (b, r.returncode, r.stderr.strip()))
                continue
            ours[b] = np.load(out)
            pairs += [xin, os.path.join(tmp, "ort%d.npy" % b)]
        t_ours = time.time() - t0
        t0 = time.time()
        env = dict(os.environ, NODE_PATH=NODE_MODULES)
        r = subprocess.run(["node", os.path.join(HERE, "ort_run.js"), onnx_path] + pairs,
                           env=env, capture_output=True, text=True)
        if r.returncode != 0:
            print("FAIL: ONNX Runtime failed: " + r.stderr.strip())
            return 1
        t_ort = time.time() - t0
        for b in batches:
            if b not in ours:
                continue
            ref = np.load(os.path.join(tmp, "ort%d.npy" % b))
            got = ours[b]
            if got.shape != ref.shape:
                failures.append("batch %d: shape %s, ONNX Runtime %s" % (b, got.shape, ref.shape))
                continue
            scale = float(np.abs(ref).max())
            err = float(np.abs(got - ref).max())
            spread = float(np.abs(ref - ref[:1]).max()) if b > 1 else float("nan")
            print("%s opset %d batch %d: max|ours-ORT| = %.3g, max|ORT| = %.3g, ratio %.2e, "
                  "spread between images %.3g" % (a.model, a.opset, b, err, scale,
                                                  err / scale if scale else float("inf"), spread))
            if not np.all(np.isfinite(got)):
                failures.append("batch %d: non-finite output" % b)
            elif not err <= a.tol * scale:
                failures.append("batch %d: max|ours-ORT| %.3g > %g * %.3g"
                                % (b, err, a.tol, scale))
            if b > 1 and not spread > 0.05 * scale:
                failures.append("batch %d: logits barely depend on the input (spread %.3g): "
                                "the test model is degenerate" % (b, spread))
    print("times: export/cache %.1fs, resnetd %.1fs, ORT %.1fs" % (t_export, t_ours, t_ort))
    for f in failures:
        print("FAIL: %s opset %d %s" % (a.model, a.opset, f))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
