"""Shared helpers for the int8 tests: write images, run the resnetd CLI."""
import json
import os
import subprocess

import numpy as np
from PIL import Image


def run(cmd, expect=0, **kw):
    """Runs cmd; asserts its exit code; returns CompletedProcess."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != expect:
        raise AssertionError("%s: exit %d (want %d)\nstdout: %s\nstderr: %s" % (
            " ".join(cmd), p.returncode, expect, p.stdout[-2000:], p.stderr[-2000:]))
    return p


def write_config(model_dir, cfg):
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(cfg, f)


def save_png(path, arr_u8):
    Image.fromarray(arr_u8).save(path)


def infer(resnetd, model, x, work, tag):
    """resnetd infer on float32 NCHW x; returns the logits."""
    inp = os.path.join(work, tag + "_in.npy")
    out = os.path.join(work, tag + "_out.npy")
    np.save(inp, np.ascontiguousarray(x, dtype=np.float32))
    run([resnetd, "infer", "--model", model, inp, out])
    return np.load(out)


def cosine(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)
