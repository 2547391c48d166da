#!/usr/bin/python3
"""A MaxPool between two int8 convs of a QDQ model (ResNet's stem pattern)
pools the u8 integers themselves when its output keeps its input's scale
(engine/dnnl/dnnl_pool.c), else it runs in f32 between a dequantizing and a
quantizing reorder. Tiny hand-made QDQ models, Conv -> Relu -> Q/DQ ->
MaxPool -> Q/DQ -> Conv -> Q/DQ:
  * A (pool output on the input's scale): oneDNN's log shows the pooling on
    u8 -> u8 and no f32 pooling; both convs read u8;
  * C (pool output on another scale): f32 pooling, as before;
  * A and C against ONNX Runtime running the same files: cosine >= 0.9999 and
    max error <= 2 output quantization steps.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from quant_common import cosine, run

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_PATH = os.path.join(HERE, "..", "node_modules")


def model(path, pool_scale_ratio):
    rng = np.random.default_rng(17)
    s_in, s1, s2 = 0.02, 0.05, 0.08
    sp = s1 * pool_scale_ratio
    w1 = rng.integers(-127, 128, (16, 8, 3, 3), dtype=np.int8)
    w2 = rng.integers(-127, 128, (8, 16, 1, 1), dtype=np.int8)
    f = lambda v, n: numpy_helper.from_array(np.array(v, np.float32), n)
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
             f(s_in, "s_in"), f(s1, "s1"), f(sp, "sp"), f(s2, "s2"), f(0.002, "sw1"),
             f(0.004, "sw2"), numpy_helper.from_array(np.array(128, np.uint8), "z_in"),
             numpy_helper.from_array(np.array(0, np.uint8), "z0"),
             numpy_helper.from_array(np.array(0, np.int8), "zw"),
             numpy_helper.from_array(rng.normal(0, 0.1, 16).astype(np.float32), "b1")]
    nodes = [
        helper.make_node("QuantizeLinear", ["input", "s_in", "z_in"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s_in", "z_in"], ["xf"]),
        helper.make_node("DequantizeLinear", ["w1", "sw1", "zw"], ["w1f"]),
        helper.make_node("Conv", ["xf", "w1f", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("QuantizeLinear", ["r1", "s1", "z0"], ["r1q"]),
        helper.make_node("DequantizeLinear", ["r1q", "s1", "z0"], ["r1f"]),
        helper.make_node("MaxPool", ["r1f"], ["pool"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("QuantizeLinear", ["pool", "sp", "z0"], ["pq"]),
        helper.make_node("DequantizeLinear", ["pq", "sp", "z0"], ["pf"]),
        helper.make_node("DequantizeLinear", ["w2", "sw2", "zw"], ["w2f"]),
        helper.make_node("Conv", ["pf", "w2f"], ["c2"]),
        helper.make_node("QuantizeLinear", ["c2", "s2", "z0"], ["c2q"]),
        helper.make_node("DequantizeLinear", ["c2q", "s2", "z0"], ["y"]),
    ]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    g = helper.make_graph(nodes, "qdq_maxpool", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, [None, 8, 32, 32])], outs, inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    return s2


def ours(resnetd, path, x, work, tag):
    inp, out = os.path.join(work, tag + "_in.npy"), os.path.join(work, tag + "_out.npy")
    np.save(inp, x)
    p = run([resnetd, "infer", "--model", path, inp, out],
            env=dict(os.environ, ONEDNN_VERBOSE="1"))
    log = [l for l in (p.stdout + p.stderr).splitlines() if l.startswith("onednn_verbose,exec")]
    return np.load(out), log


def ort(path, x, work, tag):
    inp, out = os.path.join(work, tag + "_ort_in.npy"), os.path.join(work, tag + "_ort_out.npy")
    np.save(inp, x)
    subprocess.run(["node", os.path.join(HERE, "..", "engine", "ort_run.js"), path, inp, out],
                   env=dict(os.environ, NODE_PATH=NODE_PATH), check=True)
    return np.load(out)


def pools(log):
    return [l for l in log if ",pooling" in l]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--resnetd", required=True)
    a = ap.parse_args()
    x = np.random.default_rng(4).uniform(-2.5, 2.5, (3, 8, 32, 32)).astype(np.float32)
    with tempfile.TemporaryDirectory() as work:
        pa, pc = (os.path.join(work, n + ".onnx") for n in "ac")
        s2 = model(pa, 1.0)
        model(pc, 1.5)
        ya, la = ours(a.resnetd, pa, x, work, "a")
        yc, lc = ours(a.resnetd, pc, x, work, "c")
        pa_, pc_ = pools(la), pools(lc)
        assert pa_ and all("src_u8" in l and "dst_u8" in l for l in pa_), pa_
        assert pc_ and all("src_f32" in l for l in pc_), pc_
        for tag, log in (("A", la), ("C", lc)):
            convs = [l for l in log if ",convolution," in l]
            assert len(convs) >= 2 and all("src_u8" in l for l in convs), (tag, convs)
        print("pooling: A on u8, C on f32; every conv reads u8")
        assert ya.size == 3 * 8 * 16 * 16 and ya.dtype == np.float32, ya.shape
        for tag, path, y in (("A", pa, ya), ("C", pc, yc)):
            r = ort(path, x, work, tag).reshape(y.shape)
            cs, err = float(cosine(y.reshape(1, -1), r.reshape(1, -1))[0]), float(np.abs(y - r).max())
            print("%s vs ONNX Runtime: cosine %.6f, max error %.4g (%.2f steps of %g)"
                  % (tag, cs, err, err / s2, s2))
            assert cs >= 0.9999 and err <= 2 * s2 + 1e-6, (tag, cs, err)
    print("ok")


if __name__ == "__main__":
    sys.exit(main())
