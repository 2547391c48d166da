#!/usr/bin/env python3
"""A 28x28 `gray` model (MNIST-style config: resize 28, no crop key, 1-value
mean/std) matches torchvision Grayscale + Resize + CenterCrop + ToTensor +
Normalize. usage: test_gray28.py RESNETD WORKDIR"""
import os
import sys

import numpy as np
from PIL import Image
import torchvision.transforms as T

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imgtest_common import lsb_diff, make_model, photo, run_preprocess  # noqa: E402

MEAN, STD = [0.1307], [0.3081]


def main():
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    model = make_model(os.path.join(work, "mnist"),
                       {"name": "mnist", "input": {"color": "gray", "resize": 28, "mean": MEAN,
                                                   "std": STD}, "max_batch": 4})
    imgs = []
    for name, arr, fmt in [("sq.jpg", photo(200, 200, 1), "JPEG"), ("sq.png", photo(97, 97, 2), "PNG"),
                           ("tiny.png", photo(20, 20, 3), "PNG"), ("wide.jpg", photo(640, 480, 4), "JPEG"),
                           ("tall.webp", photo(120, 300, 5), "WEBP")]:
        p = os.path.join(work, name)
        Image.fromarray(arr).save(p, fmt)
        imgs.append(p)
    gp = os.path.join(work, "gray_sq.png")
    Image.fromarray(photo(90, 90, 6)).convert("L").save(gp)
    imgs.append(gp)
    ref_t = T.Compose([T.Grayscale(), T.Resize(28), T.CenterCrop(28), T.ToTensor(),
                       T.Normalize(MEAN, STD)])
    failures = 0
    for p in imgs:
        ref = ref_t(Image.open(p).convert("RGB")).numpy()
        for extra in (["--no-fast-path"], []):
            out = p + ".npy"
            rc, err = run_preprocess(binary, model, p, out, *extra)
            if rc != 0:
                print("FAIL", p, err)
                failures += 1
                continue
            ours = np.load(out)
            d = lsb_diff(ours[0], ref, STD)
            bound = 2.0 if extra else 16.0  # fast path: the documented bound
            ok = ours.shape == (1, 1, 28, 28) and d.max() <= bound + 1e-3
            print(f"{'ok  ' if ok else 'FAIL'} {os.path.basename(p)} {' '.join(extra)}: "
                  f"shape {ours.shape}, max {d.max():.3f} LSB, mean {d.mean():.4f}")
            failures += not ok
    print("FAILED" if failures else "OK", failures)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
