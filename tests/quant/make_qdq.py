#!/usr/bin/python3
"""Writes a QDQ-quantized copy of a float ONNX model the way ONNX Runtime's
quantizer (quantize_static, quant_format=QDQ) lays it out, so the test does
not depend on resnetd's own quantizer:

  * every float activation that is not a graph output gets one
    QuantizeLinear -> DequantizeLinear pair (`T_QuantizeLinear_Output`,
    `T_DequantizeLinear_Output`), and all its consumers read the DQ output;
  * Conv and Gemm weights are stored as int8 initializers (`W_quantized`,
    symmetric, scale = max|w| / 127, per output channel unless --per-tensor)
    behind a DequantizeLinear; biases as int32 with scale = s_x * s_w;
  * activation ranges are min/max over the calibration inputs, measured by
    ONNX Runtime (tests/engine/ort_run.js --ranges), asymmetric uint8 by
    default (scale = (max - min) / 255, zero point = round(-min / scale)) or
    symmetric int8 with --symmetric (scale = max|x| / 127.5, zero point 0);
  * --remove-relu drops each Relu that directly follows a Conv or an Add and
    quantizes the producer's output with the Relu's range (ONNX Runtime's
    removable-activation rule: a uint8 grid starting at 0 is the clamp).
Test-only switches that make unmappable models: --asym-weights (uint8
weights with zero point 128).

usage: make_qdq.py FP32.onnx OUT.onnx CALIB1.npy [CALIB2.npy ...] [options]
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ORT_RUN = os.path.join(HERE, "..", "engine", "ort_run.js")
NODE_PATH = os.path.join(HERE, "..", "node_modules")


def measure_ranges(model, inputs):
    """{tensor: (min, max)} for every node output, measured by ONNX Runtime."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for o in n.output:
            if o and o not in have:
                m.graph.output.append(helper.make_tensor_value_info(o, TensorProto.FLOAT, None))
    with tempfile.TemporaryDirectory() as w:
        path = os.path.join(w, "all_outputs.onnx")
        onnx.save(m, path)
        out = os.path.join(w, "ranges.json")
        env = dict(os.environ, NODE_PATH=NODE_PATH)
        subprocess.run(["node", ORT_RUN, "--ranges", out, path] + inputs, env=env, check=True)
        with open(out) as f:
            r = json.load(f)
    return {k: (float(v[0]), float(v[1])) for k, v in r.items()}


def act_params(lo, hi, symmetric):
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if symmetric:
        a = max(abs(lo), abs(hi))
        scale = a / 127.5 if a > 0 else 1.0
        return np.float32(scale), np.int8(0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    zp = int(np.clip(np.round(-lo / scale), 0, 255))
    return np.float32(scale), np.uint8(zp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("calib", nargs="+")
    ap.add_argument("--per-tensor", action="store_true")
    ap.add_argument("--symmetric", action="store_true")
    ap.add_argument("--remove-relu", action="store_true")
    ap.add_argument("--asym-weights", action="store_true")
    a = ap.parse_args()

    model = onnx.load(a.model)
    g = model.graph
    ranges = measure_ranges(model, a.calib)
    inits = {t.name: t for t in g.initializer}
    outputs = {o.name for o in g.output}
    xs = [np.load(p) for p in a.calib]
    ranges[g.input[0].name] = (min(float(x.min()) for x in xs), max(float(x.max()) for x in xs))

    if a.remove_relu:
        producer = {o: n for n in g.node for o in n.output}
        uses = {}
        for n in g.node:
            for i in n.input:
                uses[i] = uses.get(i, 0) + 1
        keep = []
        for n in g.node:
            p = producer.get(n.input[0]) if n.op_type == "Relu" else None
            if p is not None and p.op_type in ("Conv", "Add") and uses[n.input[0]] == 1 \
                    and n.output[0] not in outputs:
                p.output[0] = n.output[0]  # the quantized grid [0, ...] is the clamp
                continue
            keep.append(n)
        del g.node[:]
        g.node.extend(keep)

    nodes, new_inits = [], []
    act_scale = {}

    def qdq_activation(t):
        s, z = act_params(*ranges[t], a.symmetric)
        act_scale[t] = float(s)
        new_inits.append(numpy_helper.from_array(np.array(s, np.float32), t + "_scale"))
        new_inits.append(numpy_helper.from_array(np.array(z), t + "_zero_point"))
        q, d = t + "_QuantizeLinear_Output", t + "_DequantizeLinear_Output"
        nodes.append(helper.make_node("QuantizeLinear", [t, t + "_scale", t + "_zero_point"], [q],
                                      name=t + "_QuantizeLinear"))
        nodes.append(helper.make_node("DequantizeLinear", [q, t + "_scale", t + "_zero_point"],
                                      [d], name=t + "_DequantizeLinear"))
        return d

    def dq_weight(name, axis):
        w = numpy_helper.to_array(inits[name]).astype(np.float32)
        red = tuple(range(1, w.ndim)) if axis == 0 and not a.per_tensor else None
        amax = np.abs(w).max(axis=red) if red is not None else np.abs(w).max()
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        shp = (-1,) + (1,) * (w.ndim - 1) if np.ndim(scale) else ()
        if a.asym_weights:
            q = np.clip(np.round(w / scale.reshape(shp)) + 128, 0, 255).astype(np.uint8)
            zp = np.full(np.shape(scale), 128, np.uint8)
        else:
            q = np.clip(np.round(w / scale.reshape(shp)), -127, 127).astype(np.int8)
            zp = np.zeros(np.shape(scale), np.int8)
        new_inits.append(numpy_helper.from_array(q, name + "_quantized"))
        new_inits.append(numpy_helper.from_array(scale, name + "_scale"))
        new_inits.append(numpy_helper.from_array(zp, name + "_zero_point"))
        d = name + "_DequantizeLinear_Output"
        attrs = {"axis": axis} if np.ndim(scale) else {}
        nodes.append(helper.make_node(
            "DequantizeLinear", [name + "_quantized", name + "_scale", name + "_zero_point"], [d],
            name=name + "_DequantizeLinear", **attrs))
        return d, scale

    def dq_bias(name, s_x, s_w):
        b = numpy_helper.to_array(inits[name]).astype(np.float64)
        scale = (np.float64(s_x) * np.broadcast_to(s_w, b.shape)).astype(np.float32)
        q = np.round(b / scale).astype(np.int32)
        new_inits.append(numpy_helper.from_array(q, name + "_quantized"))
        new_inits.append(numpy_helper.from_array(scale, name + "_scale"))
        new_inits.append(numpy_helper.from_array(np.zeros(b.shape, np.int32),
                                                 name + "_zero_point"))
        d = name + "_DequantizeLinear_Output"
        nodes.append(helper.make_node(
            "DequantizeLinear", [name + "_quantized", name + "_scale", name + "_zero_point"], [d],
            name=name + "_DequantizeLinear", axis=0))
        return d

    dq_of = {}
    for t in [g.input[0].name] + [o for n in g.node for o in n.output]:
        if t in ranges and t not in outputs:
            dq_of[t] = qdq_activation(t)
    # the pairs follow their producers; the graph input's comes first
    order = list(g.node)
    qnodes = nodes[:]
    nodes.clear()
    pairs = {qnodes[i].input[0]: qnodes[i:i + 2] for i in range(0, len(qnodes), 2)}
    out_nodes = list(pairs.get(g.input[0].name, []))
    used = set()
    for n in order:
        ins = list(n.input)
        if n.op_type in ("Conv", "Gemm"):
            wi = 1
            axis = 0 if n.op_type == "Conv" or any(
                at.name == "transB" and at.i == 1 for at in n.attribute) else 1
            x = ins[0]
            ins[0] = dq_of.get(x, x)
            ins[wi], s_w = dq_weight(ins[wi], axis)
            out_nodes.extend(nodes)
            nodes.clear()
            if len(ins) > 2 and ins[2] in inits:
                ins[2] = dq_bias(ins[2], act_scale[x], s_w)
                out_nodes.extend(nodes)
                nodes.clear()
        else:
            ins = [dq_of.get(i, i) if i not in inits else i for i in ins]
        used.update(i for i in n.input if i in inits and n.op_type in ("Conv", "Gemm"))
        n2 = helper.make_node(n.op_type, ins, list(n.output), name=n.name)
        n2.attribute.extend(n.attribute)
        out_nodes.append(n2)
        for o in n.output:
            out_nodes.extend(pairs.get(o, []))
    keep = [t for t in g.initializer if t.name not in used]
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    del g.node[:]
    g.node.extend(out_nodes)
    del g.value_info[:]
    onnx.checker.check_model(model)
    onnx.save(model, a.out)


if __name__ == "__main__":
    main()
