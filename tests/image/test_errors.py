#!/usr/bin/env python3
"""Bad inputs give distinct, named errors and exit code 1; bad model configs
exit 2 with a message naming the file and key. usage: test_errors.py RESNETD WORKDIR"""
import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imgtest_common import make_model, photo  # noqa: E402

failures = 0


def check(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL", msg)


def run(binary, *args):
    p = subprocess.run([binary, "preprocess", *args], capture_output=True, text=True)
    return p.returncode, p.stderr.strip()


def png_chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def png_header_only(w, h):
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))


def main():
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    model = make_model(os.path.join(work, "m"))
    out = os.path.join(work, "out.npy")
    buf = io.BytesIO()
    Image.fromarray(photo(320, 240, 1)).save(buf, "JPEG", quality=90)
    jpg = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(photo(320, 240, 2)).save(buf, "PNG")
    png = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(photo(320, 240, 3)).save(buf, "WEBP", quality=80)
    webp = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(photo(32, 24, 4)).save(buf, "GIF")
    gif = buf.getvalue()

    sof = jpg.index(b"\xff\xc0")
    bad_precision = bytearray(jpg)
    bad_precision[sof + 4] = 7
    zero_height = bytearray(jpg)
    zero_height[sof + 5:sof + 7] = b"\x00\x00"
    idat = png.index(b"IDAT")
    bad_png = bytearray(png)
    for i in range(idat + 8, idat + 40):
        bad_png[i] ^= 0x5A

    cases = [  # name, bytes, expected status code, extra args
        ("empty", b"", "empty_image", []),
        ("text", b"hello, this is not an image\n", "unsupported_image", []),
        ("gif", gif, "unsupported_image", []),
        ("jpeg_magic_only", jpg[:2], "truncated_image", []),
        ("jpeg_header_cut", jpg[:120], "truncated_image", []),
        ("jpeg_half", jpg[: len(jpg) // 2], "truncated_image", []),
        ("png_half", png[: len(png) // 2], "truncated_image", []),
        ("png_header_cut", png[:20], "truncated_image", []),
        ("webp_half", webp[: len(webp) // 2], "truncated_image", []),
        ("jpeg_bad_precision", bytes(bad_precision), "corrupt_image", []),
        ("png_bad_idat", bytes(bad_png), "corrupt_image", []),
        ("png_bad_signature_chunk", png[:8] + b"\x00\x00\x00\x0dIHDX" + png[16:], "corrupt_image",
         []),
        ("png_huge_header", png_header_only(20000, 20000), "image_too_large", []),
        ("jpeg_over_limit", jpg, "image_too_large", ["--max-image-pixels", "1000"]),
        ("png_zero_width", png_header_only(0, 100), "bad_image_dimensions", []),
        ("png_absurd_width", png_header_only(3000000, 1), "bad_image_dimensions", []),
        ("jpeg_zero_height", bytes(zero_height), "bad_image_dimensions", []),
        ("png_extreme_aspect", None, "bad_image_dimensions", []),
    ]
    # 1 x 400000 (ok by pixel count) would resize to 256 x 102400000: refused.
    arr = np.zeros((1, 400000), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    cases[-1] = (cases[-1][0], buf.getvalue(), cases[-1][2], [])

    seen = {}
    for name, data, want, extra in cases:
        path = os.path.join(work, name + ".bin")
        with open(path, "wb") as f:
            f.write(data)
        rc, err = run(binary, "--model", model, *extra, path, out)
        check(rc == 1, f"{name}: exit {rc}, want 1 ({err})")
        check(f": {want}: " in err, f"{name}: stderr {err!r} lacks {want}")
        check(err.count("\n") == 0 and path in err, f"{name}: not one line naming the file: {err!r}")
        seen.setdefault(want, []).append(name)
        print(f"{name}: {err}")
    check(len(seen) == 6, f"statuses seen {sorted(seen)}")

    # Good inputs still work (sanity: the cases above are not failing for another reason).
    for name, data in [("ok.jpg", jpg), ("ok.png", png), ("ok.webp", webp)]:
        path = os.path.join(work, name)
        with open(path, "wb") as f:
            f.write(data)
        rc, err = run(binary, "--model", model, path, out)
        check(rc == 0 and np.load(out).shape == (1, 3, 224, 224), f"{name}: {rc} {err}")

    # Runtime failures: missing image, unwritable output.
    rc, err = run(binary, "--model", model, os.path.join(work, "nope.jpg"), out)
    check(rc == 1 and "nope.jpg" in err, f"missing image: {rc} {err}")
    rc, err = run(binary, "--model", model, os.path.join(work, "ok.jpg"), "/nonexistent/x.npy")
    check(rc == 1 and "/nonexistent/x.npy" in err, f"unwritable output: {rc} {err}")

    # Good configs: the tensor shape follows resize/crop/color (crop null or
    # absent with a resize given = crop to resize; nothing given = 256/224).
    good_configs = [
        ("{}", (1, 3, 224, 224)),
        ('{"input": {"resize": 28}}', (1, 3, 28, 28)),
        ('{"input": {"crop": null}}', (1, 3, 256, 256)),
        ('{"input": {"resize": 64, "crop": 32, "color": "bgr"}}', (1, 3, 32, 32)),
        ('{"input": {"color": "gray", "resize": 28, "mean": [0.5], "std": [0.5],'
         ' "exif_orientation": false, "fast_path": false}, "name": "g", "max_batch": 3,'
         ' "precision": "int8", "description": "test"}', (1, 1, 28, 28)),
    ]
    for i, (text, shape) in enumerate(good_configs):
        d = make_model(os.path.join(work, f"goodcfg{i}"))
        with open(os.path.join(d, "config.json"), "w") as f:
            f.write(text)
        rc, err = run(binary, "--model", d, os.path.join(work, "ok.jpg"), out)
        got = np.load(out).shape if rc == 0 else None
        check(rc == 0 and got == shape, f"config {text}: exit {rc} {err}, shape {got}, want {shape}")

    # Usage and config errors exit 2 and name the file and key.
    rc, err = run(binary, os.path.join(work, "ok.jpg"), out)
    check(rc == 2, f"no --model: {rc}")
    rc, err = run(binary, "--model", model, "--bogus", os.path.join(work, "ok.jpg"), out)
    check(rc == 2, f"unknown option: {rc}")
    bad_configs = [
        ('{"input": {"resize": "big"}}', "input.resize"),
        ('{"input": {"resize": 0}}', "input.resize"),
        ('{"input": {"crop": -3}}', "input.crop"),
        ('{"input": {"color": "cmyk"}}', "input.color"),
        ('{"input": {"std": [0.2, 0, 0.2]}}', "input.std[1]"),
        ('{"input": {"mean": [0.2, 0.3]}}', "input.mean"),
        ('{"input": {"scale": -1}}', "input.scale"),
        ('{"input": {"fast_path": 1}}', "input.fast_path"),
        ('{"input": {"colour": "rgb"}}', "input.colour"),
        ('{"input": []}', "input"),
        ('{"max_batch": 0}', "max_batch"),
        ('{"max_batch": 2.5}', "max_batch"),
        ('{"precision": "fp16"}', "precision"),
        ('{"name": 5}', "name"),
        ('{"nmae": "x"}', "nmae"),
        ('{"input": {"resize": 256,}}', "config.json:1:"),
        ('[1, 2]', "config.json"),
    ]
    for i, (text, key) in enumerate(bad_configs):
        d = make_model(os.path.join(work, f"badcfg{i}"))
        with open(os.path.join(d, "config.json"), "w") as f:
            f.write(text)
        rc, err = run(binary, "--model", d, os.path.join(work, "ok.jpg"), out)
        check(rc == 2 and "config.json" in err and key in err,
              f"config {text}: exit {rc}, stderr {err!r} should name config.json and {key}")
    empty_dir = os.path.join(work, "no_onnx")
    os.makedirs(empty_dir, exist_ok=True)
    rc, err = run(binary, "--model", empty_dir, os.path.join(work, "ok.jpg"), out)
    check(rc == 2 and "model.onnx" in err, f"dir without model.onnx: {rc} {err}")
    rc, err = run(binary, "--model", os.path.join(work, "missing.onnx"), os.path.join(work, "ok.jpg"), out)
    check(rc == 2 and "missing.onnx" in err, f"missing .onnx: {rc} {err}")

    print("FAILED" if failures else "OK", failures)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
