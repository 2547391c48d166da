#!/usr/bin/python3
"""`resnetd infer` on the bundled model equals ONNX Runtime.

    infer_cli.py RESNETD MODEL_DIR DATA_DIR NODE ORT_CHECK_JS

ONNX Runtime (tests/models/ort_check.js) writes the first 256 normalised test
images [256,1,28,28] and its logits [256,10] as .npy; `resnetd infer` runs the
same input through the committed model.onnx (given both as the directory and
as the bare file); the logits must agree within 1e-3 (absolute, logits are
O(10)) and every argmax must be equal (except near-ties, gap < 1e-3).
"""

import os
import subprocess
import sys
import tempfile

import numpy as np


def main():
    binary, model_dir, data_dir, node, ort_js = sys.argv[1:6]
    n = 256
    with tempfile.TemporaryDirectory() as tmp:
        xin, ref, out = (os.path.join(tmp, f) for f in ("in.npy", "ref.npy", "out.npy"))
        subprocess.run([node, ort_js, model_dir, data_dir, "--first", str(n),
                        "--write-input", xin, "--write-logits", ref, "--min-accuracy", "0",
                        "--min-agreement", "0"], check=True, timeout=300)
        r_logits = np.load(ref)
        assert r_logits.shape == (n, 10), r_logits.shape
        for model in (model_dir, os.path.join(model_dir, "model.onnx")):
            r = subprocess.run([binary, "infer", "--model", model, xin, out],
                               capture_output=True, timeout=300)
            assert r.returncode == 0, f"resnetd infer --model {model}: exit {r.returncode}: " \
                                      f"{r.stderr.decode()}"
            got = np.load(out)
            assert got.shape == (n, 10) and got.dtype == np.float32, (got.shape, got.dtype)
            diff = float(np.abs(got - r_logits).max())
            same = int((got.argmax(1) == r_logits.argmax(1)).sum())
            print(f"--model {model}: max |resnetd - onnxruntime| = {diff:.2e}, "
                  f"argmax equal {same}/{n}")
            assert diff <= 1e-3, f"logits differ from ONNX Runtime by {diff}"
            top2 = np.sort(r_logits, axis=1)[:, -2:]
            ties = int((top2[:, 1] - top2[:, 0] < 1e-3).sum())  # near-ties may flip
            assert same >= n - ties, f"argmax differs for {n - same} images"
    return 0


if __name__ == "__main__":
    sys.exit(main())
