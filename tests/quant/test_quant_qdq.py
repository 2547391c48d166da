#!/usr/bin/python3
"""ONNX QDQ models (QuantizeLinear/DequantizeLinear, the layout ONNX Runtime's
quantizer writes; made here by make_qdq.py from the float model with ranges
that ONNX Runtime measured) load onto resnetd's int8 kernels.

--net fashion-mnist (the bundled model, all 10,000 test images), for three
layouts: ONNX Runtime's default (uint8 asymmetric activations, per-channel
int8 weights), the same with each Relu after a Conv/Add removed (its clamp
is the uint8 grid), and symmetric int8 activations with per-tensor weights:
  * resnetd's logits vs ONNX Runtime running the same QDQ model: top-1
    agreement >= 98.5%, mean cosine >= 0.998;
  * test accuracy within 0.3 points of the float model's (ONNX Runtime);
  * the convolutions really run in int8 (oneDNN's own verbose log: all 9
    convs read u8/s8 data, the stem with a source zero point);
  * a model directory whose config.json says "precision": "int8" serves the
    QDQ model without a quant.tsv; with a quant.tsv beside it the load fails;
  * unmappable patterns fail the load (exit 1) with a message naming them.
--quick (run in the ASan build too): 500 images, the default layout only.
--net resnet50: torchvision ResNet-50 (as test_quant_resnet50.py), QDQ with
ONNX Runtime's defaults, on 100 held-apart inputs: top-1 agreement with the
float model >= 95% or at least ONNX Runtime's own (running the same QDQ
file), cosine with the float logits >= 0.99 on every input, mean cosine with
ONNX Runtime's logits >= 0.99; every conv in int8.
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from quant_common import cosine, run, write_config

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = "/usr/share/datasets/fashion-mnist"
NODE_PATH = os.path.join(HERE, "..", "node_modules")


def idx(path, offset):
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def ort(model, x, work, tag):
    """ONNX Runtime's output for float32 NCHW x."""
    inp, out = os.path.join(work, tag + "_ort_in.npy"), os.path.join(work, tag + "_ort_out.npy")
    np.save(inp, x)
    subprocess.run(["node", os.path.join(HERE, "..", "engine", "ort_run.js"), model, inp, out],
                   env=dict(os.environ, NODE_PATH=NODE_PATH), check=True)
    return np.load(out)


def ours(resnetd, model, x, work, tag, env=None):
    inp, out = os.path.join(work, tag + "_in.npy"), os.path.join(work, tag + "_out.npy")
    np.save(inp, x)
    p = run([resnetd, "infer", "--model", model, inp, out], env=env)
    return np.load(out), p


def make_qdq(fp32, out, calib, *opts):
    run([sys.executable, os.path.join(HERE, "make_qdq.py"), fp32, out, calib] + list(opts))


def int8_convs(resnetd, model, x1, work):
    env = dict(os.environ, ONEDNN_VERBOSE="1")
    _, p = ours(resnetd, model, x1, work, "verbose", env=env)
    convs = [l for l in p.stdout.splitlines() + p.stderr.splitlines()
             if l.startswith("onednn_verbose,exec") and ",convolution," in l]
    return sum(1 for l in convs if "src_u8" in l or "src_s8" in l), len(convs)


def expect_fail(resnetd, model, x1, work, words):
    inp = os.path.join(work, "fail_in.npy")
    np.save(inp, x1)
    p = run([resnetd, "infer", "--model", model, inp, os.path.join(work, "fail_out.npy")],
            expect=1)
    msg = p.stderr.strip()
    assert words in msg, "%s: %r lacks %r" % (model, msg, words)
    assert len(msg.splitlines()) == 1, msg
    print("  refused as expected: %s" % msg)


def unmappable(resnetd, fp32, calib, work, x1):
    """Each model has one pattern the int8 kernels cannot take."""
    asym = os.path.join(work, "asym_weights.onnx")
    make_qdq(fp32, asym, calib, "--asym-weights")
    expect_fail(resnetd, asym, x1, work, "non-zero zero point")

    base = os.path.join(work, "qdq_default.onnx")
    m = onnx.load(base)  # per-channel scales on the first conv's output pair
    inits = {t.name: t for t in m.graph.initializer}
    conv = next(n for n in m.graph.node if n.op_type == "Conv")
    channels = inits[conv.input[1].replace("_DequantizeLinear_Output", "_quantized")].dims[0]
    q = next(n for n in m.graph.node
             if n.op_type == "QuantizeLinear" and n.input[0] == conv.output[0])
    for nm in q.input[1:]:
        v = numpy_helper.to_array(inits[nm])
        inits[nm].CopyFrom(numpy_helper.from_array(np.repeat(v.reshape(1), channels), nm))
    for n in m.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[1] == q.input[1]:
            n.attribute.append(helper.make_attribute("axis", 1))
    path = os.path.join(work, "per_channel_act.onnx")
    onnx.save(m, path)
    expect_fail(resnetd, path, x1, work, "per-channel activation")

    def tiny(nodes, inits, in_type, out_name, out_type, name):
        g = helper.make_graph(nodes, name, [helper.make_tensor_value_info(
            "input", in_type, [None, 1, 28, 28])], [helper.make_tensor_value_info(
                out_name, out_type, None)], inits)
        path = os.path.join(work, name + ".onnx")
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
        return path

    w = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.int8), "w")
    sc = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zp = numpy_helper.from_array(np.array(0, np.uint8), "z")
    zw = numpy_helper.from_array(np.array(0, np.int8), "zw")
    dq_w = helper.make_node("DequantizeLinear", ["w", "s", "zw"], ["wf"])
    path = tiny([helper.make_node("DequantizeLinear", ["input", "s", "z"], ["xf"]), dq_w,
                 helper.make_node("Conv", ["xf", "wf"], ["y"])], [w, sc, zp, zw],
                TensorProto.UINT8, "y", TensorProto.FLOAT, "int8_input")
    expect_fail(resnetd, path, x1, work, "only float32 is supported")
    path = tiny([dq_w, helper.make_node("Conv", ["input", "wf"], ["y"]),
                 helper.make_node("QuantizeLinear", ["y", "s", "z"], ["yq"])], [w, sc, zp, zw],
                TensorProto.FLOAT, "yq", TensorProto.UINT8, "int8_output")
    expect_fail(resnetd, path, x1, work, "only float32 is supported")
    path = tiny([helper.make_node("QuantizeLinear", ["input", "s", "z"], ["xq"]),
                 helper.make_node("QLinearConv", ["xq", "s", "z", "w", "s", "zw", "s", "z"],
                                  ["yq"]),
                 helper.make_node("DequantizeLinear", ["yq", "s", "z"], ["y"])],
                [w, sc, zp, zw], TensorProto.FLOAT, "y", TensorProto.FLOAT, "qoperator")
    expect_fail(resnetd, path, x1, work, "QOperator")


def fashion_mnist(a):
    fp32 = os.path.join(a.model, "model.onnx")
    train = idx(os.path.join(DATA, "train-images-idx3-ubyte.gz"), 16).reshape(-1, 1, 28, 28)
    test = idx(os.path.join(DATA, "t10k-images-idx3-ubyte.gz"), 16).reshape(-1, 1, 28, 28)
    labels = idx(os.path.join(DATA, "t10k-labels-idx1-ubyte.gz"), 8)
    mean, std = 0.286041, 0.353024  # models/fashion-mnist/config.json

    def norm(u8):
        return ((u8.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)

    rng = np.random.default_rng(0)
    calib = os.path.join(a.work, "calib.npy")
    np.save(calib, norm(train[rng.choice(len(train), 256, replace=False)]))
    if a.quick:  # the ASan build: the lowering and the refusals, fewer images
        test, labels = test[:500], labels[:500]
    x = norm(test)
    y32 = ort(fp32, x, a.work, "fp32")
    acc32 = float((y32.argmax(1) == labels).mean()) * 100
    print("float model (ONNX Runtime): accuracy %.2f%%" % acc32)
    assert acc32 > 90.0, acc32
    layouts = [("qdq_default", []), ("qdq_relu_removed", ["--remove-relu"]),
               ("qdq_symmetric_per_tensor", ["--symmetric", "--per-tensor"])]
    for name, opts in layouts[:1] if a.quick else layouts:
        path = os.path.join(a.work, name + ".onnx")
        make_qdq(fp32, path, calib, *opts)
        ref = ort(path, x, a.work, name)
        got, _ = ours(a.resnetd, path, x, a.work, name)
        agree = float((ref.argmax(1) == got.argmax(1)).mean()) * 100
        cos = cosine(ref, got)
        acc_ref = float((ref.argmax(1) == labels).mean()) * 100
        acc = float((got.argmax(1) == labels).mean()) * 100
        n8, nc = int8_convs(a.resnetd, path, x[:1], a.work)
        print("%-26s accuracy resnetd %.2f%% ORT %.2f%% | top-1 agreement %.2f%% | cosine "
              "mean %.5f min %.5f | %d of %d convs int8"
              % (name, acc, acc_ref, agree, cos.mean(), cos.min(), n8, nc))
        assert agree >= 98.5, "top-1 agreement with ONNX Runtime %.2f%%" % agree
        assert cos.mean() >= 0.998, "mean cosine %.5f" % cos.mean()
        assert acc >= acc32 - 0.3, "accuracy %.2f%% vs float %.2f%%" % (acc, acc32)
        assert nc == 9 and n8 == 9, "%d of %d convs ran in int8 (all should)" % (n8, nc)

    # a model directory: config.json says int8, no quant.tsv
    d = os.path.join(a.work, "fm_qdq_dir")
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(a.model, d)
    shutil.copy(os.path.join(a.work, "qdq_default.onnx"), os.path.join(d, "model.onnx"))
    with open(os.path.join(a.model, "config.json")) as f:
        cfg = json.load(f)
    cfg["precision"] = "int8"
    write_config(d, cfg)
    img = os.path.join(HERE, "..", "..", "examples", "00000_Ankle-boot.png")
    p = run([a.resnetd, "classify", "--model", d, img])
    print("classify (QDQ model directory):", p.stdout.strip()[:120])
    assert "Ankle" in p.stdout, p.stdout
    with open(os.path.join(d, "quant.tsv"), "w") as f:
        f.write("input\t-1\t2\t2\n")
    p = run([a.resnetd, "classify", "--model", d, img], expect=1)
    assert "already quantized" in p.stderr, p.stderr
    unmappable(a.resnetd, fp32, calib, a.work, x[:1])


def resnet50(a):
    sys.path.insert(0, HERE)
    import test_quant_resnet50 as r50
    fp32 = os.path.join(a.work, "resnet50_112", "model.onnx")
    if not os.path.exists(fp32):
        os.makedirs(os.path.dirname(fp32), exist_ok=True)
        r50.export(fp32 + ".tmp")
        os.replace(fp32 + ".tmp", fp32)
    calib = os.path.join(a.work, "r50_calib.npy")
    np.save(calib, r50.u8_images(32, 7000)[1])
    path = os.path.join(a.work, "resnet50_qdq.onnx")
    make_qdq(fp32, path, calib)
    _, held = r50.u8_images(100, 9000)
    ref = ort(path, held, a.work, "r50_qdq")
    got, _ = ours(a.resnetd, path, held, a.work, "r50_qdq")
    y32 = ort(fp32, held, a.work, "r50_fp32")
    agree = float((ref.argmax(1) == got.argmax(1)).mean()) * 100
    cos = cosine(ref, got)
    n8, nc = int8_convs(a.resnetd, path, held[:1], a.work)
    print("ResNet-50 QDQ: top-1 agreement with ONNX Runtime %.1f%% (ORT QDQ vs float %.1f%%, "
          "resnetd QDQ vs float %.1f%%), cosine mean %.5f min %.5f, %d of %d convs int8"
          % (agree, float((ref.argmax(1) == y32.argmax(1)).mean()) * 100,
             float((got.argmax(1) == y32.argmax(1)).mean()) * 100, cos.mean(), cos.min(), n8, nc))
    # Two int8 implementations each err a little from the float model, so
    # their top-1s disagree on near-ties more often than either does with it.
    # The QDQ file fixes the grids (the stem's input too), so the bar is ONNX
    # Runtime's own run of it: resnetd must stay at least as close to float.
    agree32 = float((got.argmax(1) == y32.argmax(1)).mean()) * 100
    ort32 = float((ref.argmax(1) == y32.argmax(1)).mean()) * 100
    assert agree32 >= min(ort32, 95.0), \
        "top-1 agreement with the float model %.1f%% (ONNX Runtime's: %.1f%%)" % (agree32, ort32)
    assert cos.mean() >= 0.99, "mean cosine with ONNX Runtime's QDQ %.5f" % cos.mean()
    assert cosine(y32, got).min() >= 0.99, cosine(y32, got).min()
    assert n8 == nc, "%d of %d convs ran in int8" % (n8, nc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--resnetd", required=True)
    ap.add_argument("--model", help="the bundled model directory (fashion-mnist)")
    ap.add_argument("--net", choices=["fashion-mnist", "resnet50"], default="fashion-mnist")
    ap.add_argument("--work", required=True)
    ap.add_argument("--quick", action="store_true",
                    help="500 test images, ONNX Runtime's default layout only")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    (fashion_mnist if a.net == "fashion-mnist" else resnet50)(a)
    print("ok")


if __name__ == "__main__":
    main()
