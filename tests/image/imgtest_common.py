"""Shared helpers for the image tests: synthetic photos, a PNG writer PIL
lacks (16-bit colour, Adam7 interlacing), model dirs, the torchvision
reference and the comparison in 8-bit steps (LSB)."""
import io
import json
import os
import struct
import subprocess
import zlib

import numpy as np
from PIL import Image, ImageOps
import torch
import torchvision.transforms as T

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def photo(w, h, seed=0):
    """A photo-like RGB array: smooth gradients, edges, texture and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin(x / (w / 5.3) + seed) * np.cos(y / (h / 3.1))
    g = 128 + 90 * np.cos((x + y) / (w / 7.7))
    b = 255 * (x / w) * (1 - y / h)
    img = np.stack([r, g, b], -1)
    cx, cy = w * 0.6, h * 0.4
    disk = (x - cx) ** 2 + (y - cy) ** 2 < (min(w, h) / 4) ** 2
    img[disk] = [230, 40, 60]
    img[(x.astype(int) // 9 + y.astype(int) // 9) % 2 == 0] *= 0.85
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def write_png(path, arr, ctype, depth, interlace=False, plte=None, trns=None):
    """arr: HxW or HxWxC of uint8/uint16 samples (palette indices for ctype 3)."""
    h, w = arr.shape[:2]
    a = arr.reshape(h, w, -1)
    be = ">u2" if depth == 16 else "u1"

    def rows(sub):
        out = b""
        for r in sub:
            out += b"\x00" + r.astype(be).tobytes()
        return out

    if not interlace:
        raw = rows(a)
    else:
        raw = b""
        for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
                               (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
            sub = a[y0::dy, x0::dx]
            if sub.size:
                raw += rows(sub)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
    if plte is not None:
        data += _chunk(b"PLTE", bytes(plte))
    if trns is not None:
        data += _chunk(b"tRNS", bytes(trns))
    data += _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def exif_orientation_bytes(o):
    """A minimal little-endian EXIF block with IFD0 Orientation = o."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, o, 0) + struct.pack("<I", 0)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd


def make_model(dirpath, cfg=None):
    os.makedirs(dirpath, exist_ok=True)
    open(os.path.join(dirpath, "model.onnx"), "wb").close()  # preprocess never reads it
    if cfg is not None:
        with open(os.path.join(dirpath, "config.json"), "w") as f:
            json.dump(cfg, f)
    return dirpath


def reference(path, color="rgb", resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
              exif=True):
    """torchvision + PIL, the way users train."""
    im = Image.open(path)
    if exif:
        im = ImageOps.exif_transpose(im)
    im = im.convert("L" if color == "gray" else "RGB")
    t = [T.Resize(resize), T.CenterCrop(crop), T.ToTensor()]
    if color == "bgr":
        t.append(T.Lambda(lambda x: x[[2, 1, 0]]))
    t.append(T.Normalize(mean, std))
    return T.Compose(t)(im).numpy()


def run_preprocess(binary, model, img, out, *extra):
    p = subprocess.run([binary, "preprocess", "--model", model, *extra, img, out],
                       capture_output=True, text=True)
    return p.returncode, p.stderr


def lsb_diff(ours, ref, std, scale=255.0):
    """|ours - ref| in 8-bit steps, per element."""
    s = np.asarray(std, np.float64).reshape(-1, 1, 1)[: ref.shape[0]]
    return np.abs(ours.astype(np.float64) - ref.astype(np.float64)) * s * scale
