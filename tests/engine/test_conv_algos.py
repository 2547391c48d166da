#!/usr/bin/env python3
"""Per-node conv algorithms (engine_load_params.conv_force / conv_choices)
against ONNX Runtime.

  test_conv_algos.py --model cifar_resnet20 --opset 13 --runner BIN --cache DIR [--batch 3]

The model (models.export, cached in DIR) runs with the static rules, every
conv forced to direct, to channels_last and to Winograd (where available,
else the static rule), and with per-node choices cycling through the three
plus unknown node names (ignored). Each output must match ORT within the
whole-model bound (max|ours - ORT| <= 1e-3 * max|ORT|). Where oneDNN has the
AVX-512 kernels, the forced variants must really run them on some convs
(Winograd also on maps under 14x14, which the static rule leaves direct).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import models  # noqa: E402

NODE_MODULES = os.path.join(HERE, "..", "node_modules")
VARIANTS = ("auto", "direct", "channels_last", "winograd", "choices")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, choices=models.model_names())
    ap.add_argument("--opset", type=int, required=True)
    ap.add_argument("--runner", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--tol", type=float, default=1e-3)
    a = ap.parse_args()
    onnx_path = models.export(a.model, a.opset, a.cache)
    x = models.images(a.batch, models.input_size(a.model), seed=77).astype(np.float32)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        xin = os.path.join(tmp, "in.npy")
        np.save(xin, x)
        x.tofile(os.path.join(tmp, "in.raw"))
        r = subprocess.run([a.runner, onnx_path, os.path.join(tmp, "in.raw"), str(a.batch), tmp],
                           capture_output=True, text=True)
        print(r.stdout.strip())
        if r.returncode != 0:
            print("FAIL: runner exited %d: %s" % (r.returncode, r.stderr.strip()))
            return 1
        env = dict(os.environ, NODE_PATH=NODE_MODULES)
        o = subprocess.run(["node", os.path.join(HERE, "ort_run.js"), onnx_path, xin,
                            os.path.join(tmp, "ort.npy")], env=env, capture_output=True, text=True)
        if o.returncode != 0:
            print("FAIL: ONNX Runtime failed: " + o.stderr.strip())
            return 1
        ref = np.load(os.path.join(tmp, "ort.npy")).reshape(a.batch, -1)
        scale = float(np.abs(ref).max())
        counts = {}
        for line in r.stdout.splitlines():
            m = re.match(r"variant (\S+): direct (\d+) channels_last (\d+) winograd (\d+)", line)
            if m:
                counts[m.group(1)] = tuple(int(v) for v in m.groups()[1:])
        for v in VARIANTS:
            got = np.fromfile(os.path.join(tmp, v + ".raw"), dtype=np.float32)
            got = got.reshape(a.batch, -1)
            err = float(np.abs(got - ref).max())
            print("%s %s: max|ours-ORT| = %.3g, max|ORT| = %.3g" % (a.model, v, err, scale))
            if not np.all(np.isfinite(got)) or not err <= a.tol * scale:
                failures.append("%s: max|ours-ORT| %.3g > %g * %.3g" % (v, err, a.tol, scale))
        total = sum(counts["auto"])
        if any(sum(c) != total for c in counts.values()):
            failures.append("conv counts differ between variants: %s" % counts)
        if counts["direct"] != (total, 0, 0):
            failures.append("direct forced: %s" % (counts["direct"],))
        if "avx512" in r.stdout.lower():
            if counts["channels_last"][1] <= counts["auto"][1]:
                failures.append("channels_last forced ran no more channels-last convs: %s"
                                % counts)
            if counts["winograd"][2] <= counts["auto"][2]:
                failures.append("winograd forced ran no more Winograd convs: %s" % counts)
            if counts["choices"] == counts["auto"]:
                failures.append("per-node choices changed nothing: %s" % counts)
    for f in failures:
        print("FAIL: " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
