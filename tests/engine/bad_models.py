#!/usr/bin/env python3
"""Broken models and inputs must fail cleanly: `resnetd infer` exits 1 (2 for
bad usage) with exactly one line on stderr naming the cause, writes no
output, and does not crash (under the ASan build: no sanitizer report).

  bad_models.py --resnetd BIN --case NAME       (--list prints the cases)

Every model is made here with onnx.helper from a tiny valid classifier
(Conv-Relu-GlobalAveragePool-Flatten-Gemm); the "control" case runs that
valid model and checks it against a NumPy reference, so the corrupted cases
fail because of their corruption and nothing else.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

H = W = 16
C_OUT = 8
CLASSES = 10


def weights():
    rng = np.random.default_rng(5)
    return {
        "conv_w": rng.normal(size=(C_OUT, 3, 3, 3)).astype(np.float32) * 0.3,
        "conv_b": rng.normal(size=(C_OUT,)).astype(np.float32) * 0.1,
        "fc_w": rng.normal(size=(CLASSES, C_OUT)).astype(np.float32),
        "fc_b": rng.normal(size=(CLASSES,)).astype(np.float32),
    }


def base_nodes():
    return [
        helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["c"], name="conv",
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
    ]


def make_model(nodes=None, inits=None, in_shape=("N", 3, H, W)):
    inits = [numpy_helper.from_array(v, k) for k, v in weights().items()] if inits is None \
        else inits
    g = helper.make_graph(nodes or base_nodes(), "tiny",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                                         ["N", CLASSES])],
                          initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def init_list(replace=None, drop=None):
    out = []
    for k, v in weights().items():
        if k == drop:
            continue
        out.append(replace if replace is not None and replace.name == k
                   else numpy_helper.from_array(v, k))
    return out


def raw_tensor(name, dims, nfloats):
    t = TensorProto(name=name, data_type=TensorProto.FLOAT)
    t.dims.extend(dims)
    t.raw_data = np.ones(nfloats, np.float32).tobytes()
    return t


def reference(x):
    """The tiny model in NumPy: conv 3x3 pad 1, ReLU, mean, Gemm."""
    w = weights()
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    patches = np.stack([xp[:, :, i:i + H, j:j + W] for i in range(3) for j in range(3)], -1)
    conv = np.einsum("nchwk,ock->nohw", patches, w["conv_w"].reshape(C_OUT, 3, 9))
    conv += w["conv_b"][None, :, None, None]
    g = np.maximum(conv, 0).mean(axis=(2, 3))
    return g @ w["fc_w"].T + w["fc_b"]


def serialized(m):
    return m.SerializeToString()


def cycle_model():
    # Add(c, r2) -> s ; Relu(s) -> r2 : s and r2 depend on each other.
    nodes = base_nodes()
    nodes[1] = helper.make_node("Add", ["c", "r2"], ["s"], name="loop_add")
    nodes.insert(2, helper.make_node("Relu", ["s"], ["r2"], name="loop_relu"))
    nodes.insert(3, helper.make_node("Relu", ["s"], ["r"], name="relu"))
    return make_model(nodes)


def unsupported_op_model():
    nodes = base_nodes()
    nodes[-1].output[0] = "pre"
    nodes.append(helper.make_node("Hardmax", ["pre"], ["logits"], name="odd_node", axis=1))
    return make_model(nodes)


# case -> (bytes of model.onnx or None for "no file", expected exit code,
#          words of which the error line must contain one (case-insensitive))
def cases():
    valid = serialized(make_model())
    return {
        "control": (valid, 0, []),
        "missing_file": (None, 1, ["model.onnx"]),
        "empty_file": (b"", 1, ["model.onnx"]),
        "truncated": (valid[: len(valid) * 3 // 5], 1, ["model.onnx"]),
        "not_protobuf": (b"GIF89a this is not an ONNX protobuf\n" * 40, 1, ["model.onnx"]),
        "random_bytes": (np.random.default_rng(3).integers(0, 256, 4096, np.uint8).tobytes(),
                         1, ["model.onnx"]),
        "unsupported_op": (serialized(unsupported_op_model()), 1, ["Hardmax"]),
        "missing_initializer": (serialized(make_model(inits=init_list(drop="conv_w"))), 1,
                                ["conv_w"]),
        "wrong_initializer_size": (serialized(make_model(
            inits=init_list(replace=raw_tensor("conv_w", [C_OUT, 3, 3, 3], C_OUT * 3 * 3)))),
            1, ["conv_w"]),
        "negative_dims": (serialized(make_model(
            inits=init_list(replace=raw_tensor("conv_w", [C_OUT, -3, 3, 3], C_OUT * 9)))),
            1, ["conv_w"]),
        "enormous_initializer_dims": (serialized(make_model(
            inits=init_list(replace=raw_tensor("conv_w", [1 << 31, 1 << 31, 1 << 20, 3],
                                               16)))), 1, ["conv_w"]),
        "enormous_input_dims": (serialized(make_model(in_shape=("N", 3, 1 << 40, 1 << 40))), 1,
                                ["input"]),
        "negative_input_dims": (serialized(make_model(in_shape=("N", 3, -16, 16))), 1,
                                ["input"]),
        "cycle": (serialized(cycle_model()), 1, ["cycle", "loop_add", "loop_relu"]),
        "input_shape_mismatch": (valid, 1, ["in.npy"]),
        "input_not_npy": (valid, 1, ["in.npy"]),
        "usage_no_output": (valid, 2, ["OUT.npy", "usage"]),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--resnetd")
    ap.add_argument("--case")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    all_cases = cases()
    if a.list:
        print("\n".join(all_cases))
        return 0
    data, want_rc, words = all_cases[a.case]
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "model.onnx")
        if data is not None:
            with open(model, "wb") as f:
                f.write(data)
        x = np.random.default_rng(11).normal(size=(2, 3, H, W)).astype(np.float32)
        xin, out = os.path.join(tmp, "in.npy"), os.path.join(tmp, "out.npy")
        if a.case == "input_shape_mismatch":
            np.save(xin, x[:, :, :8, :])
        elif a.case == "input_not_npy":
            with open(xin, "wb") as f:
                f.write(b"\x93NUMPY but not really")
        else:
            np.save(xin, x)
        argv = [a.resnetd, "infer", "--model", model, xin, out]
        if a.case == "usage_no_output":
            argv = argv[:-1]
        env = dict(os.environ)
        # A sanitizer report must not pass for the expected "exit 1".
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":exitcode=86"
        env["UBSAN_OPTIONS"] = env.get("UBSAN_OPTIONS", "") + ":exitcode=87"
        r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        lines = r.stderr.splitlines()
        print("%s: exit %d, stderr: %r" % (a.case, r.returncode, r.stderr))
        bad = []
        if r.returncode != want_rc:
            bad.append("exit code %d, want %d" % (r.returncode, want_rc))
        if "Sanitizer" in r.stderr or "runtime error:" in r.stderr:
            bad.append("sanitizer report")
        if want_rc == 0:
            if r.returncode == 0:
                got, ref = np.load(out), reference(x)
                err = np.abs(got - ref).max()
                if got.shape != ref.shape or not err <= 1e-4 * np.abs(ref).max():
                    bad.append("output %s differs from NumPy reference (max err %s)"
                               % (got.shape, err))
        else:
            if want_rc == 1 and len(lines) != 1:
                bad.append("stderr has %d lines, want exactly 1" % len(lines))
            if not any(w.lower() in r.stderr.lower() for w in words):
                bad.append("error does not name the cause (one of %s)" % words)
            if os.path.exists(out):
                bad.append("an output file was written")
    for b in bad:
        print("FAIL: %s: %s" % (a.case, b))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
