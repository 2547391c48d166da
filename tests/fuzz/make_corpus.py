#!/usr/bin/env python3
"""Regenerates the seed corpus in corpus/image/: one small file per decoder
path (each < 4 KB). usage: make_corpus.py GEN_RESTART_JPEG (tests/image)"""
import io
import os
import subprocess
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "image"))
from imgtest_common import exif_orientation_bytes, photo, write_png  # noqa: E402

d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "image")
os.makedirs(d, exist_ok=True)
a = photo(24, 18, 1)
im = Image.fromarray(a)
im.save(f"{d}/baseline.jpg", quality=70)
im.save(f"{d}/progressive.jpg", quality=70, progressive=True)
im.save(f"{d}/s444.jpg", quality=70, subsampling=0)
im.convert("L").save(f"{d}/gray.jpg", quality=70)
im.convert("CMYK").save(f"{d}/cmyk.jpg", quality=70)
im.save(f"{d}/exif6.jpg", quality=70, exif=exif_orientation_bytes(6))
im.save(f"{d}/rgb.png")
Image.fromarray(np.dstack([a, a[..., :1]]), "RGBA").save(f"{d}/rgba.png")
im.quantize(16).save(f"{d}/palette_trns.png", transparency=2)
im.convert("LA").save(f"{d}/gray_alpha.png")
im.convert("1").save(f"{d}/bilevel.png")
write_png(f"{d}/rgb16_interlaced.png", a.astype(np.uint16) * 257, 2, 16, interlace=True)
write_png(f"{d}/gray16.png", a[..., 0].astype(np.uint16) * 3, 0, 16)
im.save(f"{d}/exif8.png", exif=exif_orientation_bytes(8))
im.save(f"{d}/exif3.webp", quality=50, exif=exif_orientation_bytes(3))
im.save(f"{d}/lossy.webp", quality=50)
im.save(f"{d}/lossless.webp", lossless=True)
Image.fromarray(np.dstack([a, a[..., :1]]), "RGBA").save(f"{d}/alpha.webp", quality=50)
# lossless variants for the VP8L pre-parse (img_vp8l.c): predictor and
# cross-colour sub-images, an entropy image naming several groups, colour
# cache, colour indexing with 2/4/16 colours (packed pixels), lossless alpha
b = Image.fromarray(photo(32, 28, 2))
b.save(f"{d}/lossless_m6.webp", lossless=True, method=6, quality=100)
b.save(f"{d}/lossless_m0.webp", lossless=True, method=0, quality=0)
y, x = np.mgrid[0:128, 0:128]
regions = np.where((x < 64) ^ (y < 64), (x * 2) % 256, (x * y // 64) % 7 * 36).astype(np.uint8)
Image.fromarray(np.dstack([regions, regions[::-1], regions.T])).save(
    f"{d}/lossless_groups.webp", lossless=True, method=6)
Image.fromarray(np.dstack([photo(32, 32, 3), photo(32, 32, 4)[..., :1]]), "RGBA").save(
    f"{d}/lossless_rgba.webp", lossless=True, method=4)
for colours in (2, 4, 16):
    b.quantize(colours).convert("RGB").save(f"{d}/lossless_palette{colours}.webp", lossless=True)
Image.fromarray(np.dstack([a, a[..., 1:2]]), "RGBA").save(
    f"{d}/alpha_lossless_alph.webp", quality=50, alpha_quality=100, method=6)
if len(sys.argv) > 1:
    subprocess.run([sys.argv[1], f"{d}/restart.jpg", "40", "24"], check=True)
    subprocess.run([sys.argv[1], f"{d}/arith_restart.jpg", "24", "16", "arith"], check=True)
    subprocess.run([sys.argv[1], f"{d}/ycck_restart.jpg", "16", "16", "ycck"], check=True)
for f in sorted(os.listdir(d)):
    print(f, os.path.getsize(os.path.join(d, f)))
