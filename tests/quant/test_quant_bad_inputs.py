#!/usr/bin/python3
"""`resnetd quantize` with bad calibration inputs: a clear one-line error and
the documented exit code, and no output model left claiming to be int8.
  missing directory -> 2, empty directory -> 2, only sub-directories -> 2,
  a file that is not an image -> 1 (names the file), a truncated PNG -> 1,
  a dangling symlink (unreadable) -> 1, bad --percentile -> 2.
A good directory then succeeds and the result loads and runs (int8 logits
close to fp32 on this small net)."""
import argparse
import io
import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from quant_common import cosine, infer, run, write_config


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 16, 3, padding=1)
        self.c3 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        a = torch.relu(self.c1(x))
        b = torch.relu(self.c3(torch.relu(self.c2(a))) + a)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(b, 1), 1))


def png_bytes(seed):
    rng = np.random.default_rng(seed)
    im = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(im).save(buf, "PNG")
    return buf.getvalue()


def expect_fail(resnetd, model, cal, out, code, needle):
    p = run([resnetd, "quantize", "--model", model, "--calibration", cal, "--out", out],
            expect=code)
    err = p.stderr.strip()
    assert needle in err, "stderr %r lacks %r" % (err, needle)
    assert "Traceback" not in err and len(err.splitlines()) <= 2, err
    assert not os.path.exists(os.path.join(out, "quant.tsv")), "output written on failure"
    print("ok (%d): %s" % (code, err.splitlines()[-1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--resnetd", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as w:
        model = os.path.join(w, "tiny")
        os.makedirs(model)
        torch.manual_seed(0)
        torch.onnx.export(Tiny().eval(), torch.zeros(1, 3, 32, 32),
                          os.path.join(model, "model.onnx"), opset_version=13,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
        write_config(model, {"input": {"resize": 32, "crop": 32}})
        out = os.path.join(w, "out")
        r = a.resnetd
        expect_fail(r, model, os.path.join(w, "nope"), out, 2, "nope")
        empty = os.path.join(w, "empty")
        os.makedirs(os.path.join(empty, "subdir"))
        expect_fail(r, model, empty, out, 2, "no image files")
        bad = os.path.join(w, "bad")
        os.makedirs(bad)
        with open(os.path.join(bad, "a.png"), "wb") as f:
            f.write(png_bytes(1))
        with open(os.path.join(bad, "b.txt"), "w") as f:
            f.write("not an image\n")
        expect_fail(r, model, bad, out, 1, "b.txt")
        trunc = os.path.join(w, "trunc")
        os.makedirs(trunc)
        with open(os.path.join(trunc, "t.png"), "wb") as f:
            f.write(png_bytes(2)[:200])
        expect_fail(r, model, trunc, out, 1, "t.png")
        dangling = os.path.join(w, "dangling")
        os.makedirs(dangling)
        os.symlink(os.path.join(w, "missing.png"), os.path.join(dangling, "x.png"))
        expect_fail(r, model, dangling, out, 1, "x.png")
        p = run([r, "quantize", "--model", model, "--calibration", bad, "--out", out,
                 "--percentile", "7"], expect=2)
        assert "--percentile" in p.stderr, p.stderr
        good = os.path.join(w, "good")
        os.makedirs(good)
        for i in range(12):
            with open(os.path.join(good, "%02d.png" % i), "wb") as f:
                f.write(png_bytes(100 + i))
        run([r, "quantize", "--model", model, "--calibration", good, "--out", out])
        rng = np.random.default_rng(5)
        x = ((rng.random((6, 3, 32, 32)) - 0.45) / 0.226).astype(np.float32)
        y32 = infer(r, model, x, w, "fp32")
        y8 = infer(r, out, x, w, "int8")
        c = cosine(y32, y8).min()
        print("tiny net: int8 vs fp32 cosine min %.5f" % c)
        assert c >= 0.99, c
    print("ok")


if __name__ == "__main__":
    main()
