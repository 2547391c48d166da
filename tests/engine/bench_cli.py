#!/usr/bin/env python3
"""`resnetd bench` prints one JSON object per configuration with the
contract's keys, sane values, and agrees with `resnetd infer` about which
model it ran (its name). Uses the small CIFAR ResNet-20 for speed.

  bench_cli.py --resnetd BIN --cache DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

KEYS = ["model", "batch", "workers", "threads", "images_per_second", "latency_ms_p50",
        "latency_ms_p99", "peak_rss_bytes"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--resnetd", required=True)
    ap.add_argument("--cache", required=True)
    a = ap.parse_args()
    onnx_path = models.export("cifar_resnet20", 13, a.cache)
    bad = []
    with tempfile.TemporaryDirectory() as tmp:
        # A model directory: its name is the model's name.
        d = os.path.join(tmp, "cifar20")
        os.mkdir(d)
        shutil.copy(onnx_path, os.path.join(d, "model.onnx"))
        r = subprocess.run([a.resnetd, "bench", "--model", d, "--batch", "1,4", "--workers",
                            "1,2", "--threads", "1", "--seconds", "0.5"],
                           capture_output=True, text=True, timeout=240)
        print(r.stdout, end="")
        if r.returncode != 0:
            bad.append("exit %d: %s" % (r.returncode, r.stderr.strip()))
        lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
        want = [(b, w) for w in (1, 2) for b in (1, 4)]
        if len(lines) != len(want):
            bad.append("%d JSON lines, want %d" % (len(lines), len(want)))
        for ln, (b, w) in zip(lines, want):
            o = json.loads(ln)
            if list(o) != KEYS:
                bad.append("keys %s, want %s" % (list(o), KEYS))
                continue
            if (o["model"], o["batch"], o["workers"], o["threads"]) != ("cifar20", b, w, 1):
                bad.append("configuration %s, want cifar20 batch %d workers %d" % (ln, b, w))
            if not (o["images_per_second"] > 0 and
                    0 < o["latency_ms_p50"] <= o["latency_ms_p99"] and
                    o["peak_rss_bytes"] > 1 << 20):
                bad.append("implausible values: " + ln)
        # Bad usage is exit code 2 with one line.
        for argv in (["bench"], ["bench", "--model", d, "--batch", "0"],
                     ["bench", "--model", d, "--seconds", "x"], ["bench", "--bogus", "1"]):
            r = subprocess.run([a.resnetd] + argv, capture_output=True, text=True)
            if r.returncode != 2:
                bad.append("%s: exit %d, want 2" % (argv, r.returncode))
        r = subprocess.run([a.resnetd, "bench", "--model", os.path.join(tmp, "none.onnx")],
                           capture_output=True, text=True)
        if r.returncode != 1 or "none.onnx" not in r.stderr:
            bad.append("missing model: exit %d, stderr %r" % (r.returncode, r.stderr))
    for b in bad:
        print("FAIL: " + b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
