#!/usr/bin/env python3
"""Bytes-to-tensor time per image: resnetd's image pipeline vs PIL +
torchvision (Resize(256), CenterCrop(224), ToTensor, Normalize), both on one
core, in the same run. Prints one JSON line per image and a summary.

usage: image_vs_pil.py RESNETD WORKDIR [SECONDS_PER_MEASUREMENT]"""
import io
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "image"))
from imgtest_common import make_model, photo  # noqa: E402

torch.set_num_threads(1)
TF = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


def pil_seconds(data, budget):
    TF(Image.open(io.BytesIO(data)).convert("RGB"))  # warm-up
    n, t0 = 0, time.perf_counter()
    while True:
        TF(Image.open(io.BytesIO(data)).convert("RGB"))
        n += 1
        el = time.perf_counter() - t0
        if el >= budget and n >= 3:
            return el / n


def pil_decode_seconds(data, budget):
    """PIL's decode alone (same libjpeg-turbo as ours): the floor for any exact pipeline."""
    n, t0 = 0, time.perf_counter()
    while True:
        Image.open(io.BytesIO(data)).convert("RGB")
        n += 1
        el = time.perf_counter() - t0
        if el >= budget / 2 and n >= 3:
            return el / n


def ours_seconds(binary, model, path, budget, fast):
    extra = [] if fast else ["--no-fast-path"]
    out = os.path.join(tempfile.gettempdir(), f"bench_{os.getpid()}.npy")
    probe = subprocess.run([binary, "preprocess", "--model", model, *extra, "--repeat", "3", path, out],
                           capture_output=True, text=True, check=True)
    per = json.loads(probe.stdout)["seconds_per_image"]
    reps = max(3, int(budget / max(per, 1e-6)))
    p = subprocess.run([binary, "preprocess", "--model", model, *extra, "--repeat", str(reps), path, out],
                       capture_output=True, text=True, check=True)
    os.remove(out)
    return json.loads(p.stdout)["seconds_per_image"]


def main():
    binary, work = sys.argv[1], sys.argv[2]
    budget = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    os.makedirs(work, exist_ok=True)
    model = make_model(os.path.join(work, "model"))
    for w, h in [(500, 375), (4000, 3000)]:
        path = os.path.join(work, f"photo_{w}x{h}.jpg")
        if not os.path.exists(path):
            Image.fromarray(photo(w, h, 42)).save(path, quality=90)
        data = open(path, "rb").read()
        pil = pil_seconds(data, budget)
        pil_dec = pil_decode_seconds(data, budget)
        exact = ours_seconds(binary, model, path, budget, fast=False)
        fast = ours_seconds(binary, model, path, budget, fast=True)
        print(json.dumps({"image": f"{w}x{h} JPEG q90", "bytes": len(data),
                          "pil_torchvision_ms": round(pil * 1e3, 3),
                          "pil_decode_only_ms": round(pil_dec * 1e3, 3),
                          "resnetd_exact_ms": round(exact * 1e3, 3),
                          "resnetd_fast_ms": round(fast * 1e3, 3),
                          "speedup_exact": round(pil / exact, 2),
                          "speedup_fast": round(pil / fast, 2)}), flush=True)


if __name__ == "__main__":
    main()
