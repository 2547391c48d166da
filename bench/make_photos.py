#!/usr/bin/python3
"""Write photo-like JPEGs for the classify benchmark (bench/classify_vs_bench.sh).

    /usr/bin/python3 bench/make_photos.py OUT_DIR [--count N] [--seed S]

Offline stand-ins for camera photos: typical camera sizes from 640x480 to
1600x1200 (landscape and portrait), smooth colour gradients, a few filled
shapes, sensor-like noise, JPEG quality 80-95 with 4:2:0 chroma subsampling,
so decoding costs what it costs for real photos of those sizes. Files are
photo_NNNN.jpg; the same seed writes the same bytes.
"""

import argparse
import os

import numpy as np
from PIL import Image, ImageDraw

SIZES = [(640, 480), (800, 600), (1024, 768), (1280, 960), (1600, 1200), (1280, 720),
         (1920, 1080), (480, 640), (768, 1024), (1200, 1600)]


def photo(rng, w, h):
    """A smooth background (bilinear upsampling of a coarse random grid), some
    ellipses and rectangles, and Gaussian noise, as an RGB PIL image."""
    coarse = rng.uniform(0, 255, size=(4, 4, 3)).astype(np.float32)
    img = Image.fromarray(coarse.astype(np.uint8), "RGB").resize((w, h), Image.BILINEAR)
    d = ImageDraw.Draw(img)
    for _ in range(rng.integers(3, 9)):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1 = x0 + int(rng.integers(w // 10, w // 2))
        y1 = y0 + int(rng.integers(h // 10, h // 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)([x0, y0, x1, y1], fill=fill)
    a = np.asarray(img, dtype=np.float32)
    a += rng.normal(0, 6, size=a.shape).astype(np.float32)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    total = 0
    for i in range(a.count):
        w, h = SIZES[i % len(SIZES)]
        path = os.path.join(a.out, f"photo_{i:04d}.jpg")
        photo(rng, w, h).save(path, quality=int(rng.integers(80, 96)), subsampling=2)
        total += os.path.getsize(path)
    print(f"make_photos: wrote {a.count} JPEGs ({total / 1e6:.1f} MB) to {a.out}")


if __name__ == "__main__":
    main()
