#!/usr/bin/env python3
"""Bytes-to-tensor time per image: resnetd's image pipeline vs PIL +
torchvision (Resize(256), CenterCrop(224), ToTensor, Normalize), one core.
The two sides alternate in short rounds so machine load hits both alike; the
speed-up is the median of the per-round ratios. Prints one JSON line per image.

usage: image_vs_pil.py RESNETD WORKDIR [SECONDS_PER_ROUND] [ROUNDS]"""
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torchvision.transforms as T
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "image"))
from imgtest_common import make_model, photo  # noqa: E402

torch.set_num_threads(1)
TF = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


def timed(fn, budget):
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if el >= budget and n >= 3:
            return el / n


def ours(binary, model, path, reps, fast):
    out = os.path.join(tempfile.gettempdir(), f"bench_{os.getpid()}.npy")
    extra = [] if fast else ["--no-fast-path"]
    p = subprocess.run([binary, "preprocess", "--model", model, *extra, "--repeat", str(reps),
                        path, out], capture_output=True, text=True, check=True)
    os.remove(out)
    return json.loads(p.stdout)["seconds_per_image"]


def main():
    binary, work = sys.argv[1], sys.argv[2]
    budget = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    os.makedirs(work, exist_ok=True)
    model = make_model(os.path.join(work, "model"))
    for w, h in [(500, 375), (4000, 3000)]:
        path = os.path.join(work, f"photo_{w}x{h}.jpg")
        if not os.path.exists(path):
            Image.fromarray(photo(w, h, 42)).save(path, quality=90)
        data = open(path, "rb").read()
        full = lambda: TF(Image.open(io.BytesIO(data)).convert("RGB"))  # noqa: E731
        dec = lambda: Image.open(io.BytesIO(data)).convert("RGB")  # noqa: E731
        per = ours(binary, model, path, 3, False)
        reps = max(3, int(budget / max(per, 1e-6)))
        r = {"pil": [], "dec": [], "exact": [], "fast": []}
        for _ in range(rounds):
            r["pil"].append(timed(full, budget))
            r["dec"].append(timed(dec, budget / 2))
            r["exact"].append(ours(binary, model, path, reps, False))
            r["fast"].append(ours(binary, model, path, reps, True))
        med = {k: statistics.median(v) for k, v in r.items()}
        print(json.dumps({
            "image": f"{w}x{h} JPEG q90", "bytes": len(data), "rounds": rounds,
            "pil_torchvision_ms": round(med["pil"] * 1e3, 3),
            "pil_decode_only_ms": round(med["dec"] * 1e3, 3),
            "resnetd_exact_ms": round(med["exact"] * 1e3, 3),
            "resnetd_fast_ms": round(med["fast"] * 1e3, 3),
            "speedup_exact": round(statistics.median(p / e for p, e in zip(r["pil"], r["exact"])), 2),
            "speedup_fast": round(statistics.median(p / f for p, f in zip(r["pil"], r["fast"])), 2),
            "ceiling_full_decode": round(med["pil"] / med["dec"], 2)}), flush=True)


if __name__ == "__main__":
    main()
