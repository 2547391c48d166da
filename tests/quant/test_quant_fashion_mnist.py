#!/usr/bin/python3
"""The bundled Fashion-MNIST model quantized with calibration images from the
training set (written as the data set's own 8-bit PNGs): test accuracy of the
int8 model on all 10,000 test images within 0.3 points of the fp32 model's,
both computed by resnetd on the same tensors (preprocessed as config.json says)."""
import argparse
import gzip
import json
import os
import tempfile

import numpy as np
from PIL import Image

from quant_common import infer, run

DATA = "/usr/share/datasets/fashion-mnist"


def idx(path, offset):
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--resnetd", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--calib", type=int, default=256)
    a = ap.parse_args()
    train = idx(os.path.join(DATA, "train-images-idx3-ubyte.gz"), 16).reshape(-1, 28, 28)
    test = idx(os.path.join(DATA, "t10k-images-idx3-ubyte.gz"), 16).reshape(-1, 1, 28, 28)
    labels = idx(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz"), 8)
    with open(os.path.join(a.model, "config.json")) as f:
        inp = json.load(f).get("input", {})
    scale = float(inp.get("scale", 255.0))
    mean = float(np.atleast_1d(inp.get("mean", [0.0]))[0])
    std = float(np.atleast_1d(inp.get("std", [1.0]))[0])
    x = ((test.astype(np.float32) / scale - mean) / std).astype(np.float32)
    with tempfile.TemporaryDirectory() as w:
        cal = os.path.join(w, "calib")
        os.makedirs(cal)
        rng = np.random.default_rng(0)
        for i in rng.choice(len(train), a.calib, replace=False):
            Image.fromarray(train[i]).save(os.path.join(cal, "%05d.png" % i))
        out = os.path.join(w, "fm_int8")
        p = run([a.resnetd, "quantize", "--model", a.model, "--calibration", cal, "--out", out])
        print(p.stdout.strip())
        y32 = infer(a.resnetd, a.model, x, w, "fp32")
        y8 = infer(a.resnetd, out, x, w, "int8")
    acc32 = float((y32.argmax(1) == labels).mean()) * 100
    acc8 = float((y8.argmax(1) == labels).mean()) * 100
    agree = float((y32.argmax(1) == y8.argmax(1)).mean()) * 100
    print("fp32 %.2f%%  int8 %.2f%%  (diff %+.2f points, predictions agree on %.2f%%)"
          % (acc32, acc8, acc8 - acc32, agree))
    assert acc32 > 50.0, "fp32 accuracy %.2f%%: is the model trained?" % acc32
    assert acc8 >= acc32 - 0.3, "int8 loses %.2f points" % (acc32 - acc8)
    print("ok")


if __name__ == "__main__":
    main()
