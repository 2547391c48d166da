#!/usr/bin/env python3
"""A 28x28 `gray` model (MNIST-style config: resize 28, no crop key, 1-value
mean/std) matches torchvision Grayscale + Resize + CenterCrop + ToTensor +
Normalize. usage: test_gray28.py RESNETD WORKDIR"""
import os
import sys

import numpy as np
from PIL import Image, ImageOps
import torchvision.transforms as T

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imgtest_common import lsb_diff, make_model, photo, run_preprocess  # noqa: E402

MEAN, STD = [0.1307], [0.3081]


def exact_luma(binary, work):
    """A colour JPEG is converted to L while it is decoded (no RGB raster):
    with an identity resize the model's input is PIL's L of the decoded image,
    bit for bit, for every kind of colour JPEG (4:4:4/4:2:2/4:2:0, progressive,
    CMYK, EXIF-rotated) and for a gray one."""
    side = 144
    model = make_model(os.path.join(work, "identity"),
                       {"name": "identity", "input": {"color": "gray", "resize": side, "crop": side,
                                                      "scale": 255.0, "mean": [0.0], "std": [1.0],
                                                      "fast_path": False}})
    im = Image.fromarray(photo(side, side, 7))
    cases = [(f"s{sub}{'_prog' if prog else ''}", im, dict(subsampling=sub, progressive=prog))
             for sub in (0, 1, 2) for prog in (False, True)]
    exif = Image.Exif()
    exif[0x0112] = 6
    cases += [("cmyk", im.convert("CMYK"), {}), ("gray", im.convert("L"), {}),
              ("exif6", im, dict(exif=exif.tobytes()))]
    failures = 0
    for name, src, kw in cases:
        p = os.path.join(work, f"luma_{name}.jpg")
        src.save(p, "JPEG", quality=90, **kw)
        out = p + ".npy"
        rc, err = run_preprocess(binary, model, p, out)
        ref = np.asarray(ImageOps.exif_transpose(Image.open(p)).convert("RGB").convert("L"),
                         dtype=np.float32)
        ours = np.load(out)[0, 0] * 255.0 if rc == 0 else None
        ok = ours is not None and ours.shape == ref.shape and np.array_equal(np.rint(ours), ref) \
            and np.abs(ours - np.rint(ours)).max() < 1e-3
        print(f"{'ok  ' if ok else 'FAIL'} luma {name}: "
              f"{err if rc else f'max diff {np.abs(ours - ref).max():.4f}'}")
        failures += not ok
    return failures


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
    failures += exact_luma(binary, work)
    print("FAILED" if failures else "OK", failures)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
