#!/usr/bin/env python3
"""Writes the seed corpora of the hardening fuzz targets (tests/fuzz/corpus/
{onnx,config,npy,request}). Run with Debian's python3 (torch, numpy, PIL):
    /usr/bin/python3 tests/hardening/make_fuzz_seeds.py
Every seed is small (< 16 KB) so the fuzzer mutates quickly."""
import io
import os
import sys

import numpy as np
import torch
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus")


def out(kind, name, data):
    d = os.path.join(ROOT, kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def onnx_seeds():
    torch.manual_seed(0)

    class Res(torch.nn.Module):
        def __init__(self, c=1, n=10):
            super().__init__()
            self.c1 = torch.nn.Conv2d(c, 4, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(4)
            self.c2 = torch.nn.Conv2d(4, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4, n)

        def forward(self, x):
            y = torch.relu(self.bn(self.c1(x)))
            y = torch.relu(y + self.c2(y))
            y = torch.nn.functional.max_pool2d(y, 2)
            y = torch.nn.functional.adaptive_avg_pool2d(y, 1).flatten(1)
            return self.fc(y)

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3 * 4 * 4, 5)

        def forward(self, x):
            return torch.softmax(self.fc(x.reshape(x.shape[0], -1)), 1)

    for name, m, shape, dyn in [("res_gray8.onnx", Res(1), (1, 1, 8, 8), True),
                                ("res_rgb8_fixed.onnx", Res(3, 3), (2, 3, 8, 8), False),
                                ("flat_rgb4.onnx", Flat(), (1, 3, 4, 4), True)]:
        m.eval()
        buf = io.BytesIO()
        kw = {"dynamic_axes": {"x": {0: "n"}, "y": {0: "n"}}} if dyn else {}
        torch.onnx.export(m, torch.randn(*shape), buf, input_names=["x"], output_names=["y"],
                          opset_version=13, **kw)
        out("onnx", name, buf.getvalue())


def qdq_seeds():
    """A tiny QDQ model (tests/quant/make_qdq.py's layout): asymmetric uint8
    input grid, per-channel and per-tensor int8 weights, int32 bias, a pair
    with zero point 0 after a Relu and one whose clamp stands for a Relu."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    inits, nodes = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(arr, name))
        return name

    def qdq(t, scale, zp):
        s, z = init(t + "_s", np.array(scale, np.float32)), init(t + "_z", np.array(zp, np.uint8))
        nodes.append(helper.make_node("QuantizeLinear", [t, s, z], [t + "_q"]))
        nodes.append(helper.make_node("DequantizeLinear", [t + "_q", s, z], [t + "_dq"]))
        return t + "_dq"

    def weight(name, shape, per_channel):
        q = rng.integers(-127, 128, shape).astype(np.int8)
        sc = np.full(shape[0] if per_channel else (), 0.02, np.float32)
        zp = np.zeros(np.shape(sc), np.int8)
        attrs = {"axis": 0} if per_channel else {}
        nodes.append(helper.make_node("DequantizeLinear", [init(name + "_q", q), init(
            name + "_s", sc), init(name + "_z", zp)], [name], **attrs))
        return name

    x = qdq("x", 0.02, 128)
    b = "b1"
    nodes.append(helper.make_node("DequantizeLinear", [init("b1_q", np.arange(4, dtype=np.int32)),
                                                       init("b1_s", np.full(4, 4e-4, np.float32)),
                                                       init("b1_z", np.zeros(4, np.int32))],
                                  [b], axis=0))
    nodes.append(helper.make_node("Conv", [x, weight("w1", (4, 1, 3, 3), True), b], ["c1"],
                                  pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["c1"], ["r1"]))
    r1 = qdq("r1", 0.05, 0)
    nodes.append(helper.make_node("Conv", [r1, weight("w2", (4, 4, 3, 3), False)], ["c2"],
                                  pads=[1, 1, 1, 1]))
    c2 = qdq("c2", 0.05, 0)  # no Relu in the graph: the grid's clamp is one
    nodes.append(helper.make_node("GlobalAveragePool", [c2], ["p"]))
    nodes.append(helper.make_node("Flatten", ["p"], ["f"]))
    nodes.append(helper.make_node("Gemm", ["f", weight("w3", (10, 4), True)], ["y"], transB=1))
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["n", 1, 8, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, ["n", 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    out("onnx", "qdq_gray8.onnx", m.SerializeToString())


def config_seeds():
    # byte 0 even: the server's --config document; odd: a model's config.json
    out("config", "server_full.json", b"\x00" + b'{"host": "127.0.0.1", "port": 0, '
        b'"model": ["a", "b"], "workers": 2, "threads_per_worker": 1, "max_batch": 4, '
        b'"batch_timeout_us": 100, "queue_capacity": 8, "max_body_bytes": 1000, '
        b'"max_image_pixels": 100, "request_timeout_ms": 5, "drain_timeout_ms": 1, '
        b'"top_k": 3, "log_level": "debug", "http_threads": 1}')
    out("config", "server_bad.json", b"\x00" + b'{"port": 70000, "top_k": "x"}')
    out("config", "server_real.json", b"\x00" + b'{"workers": 2.0, "model": "m"}')
    out("config", "model_full.json", b"\x01" + b'{"name": "resnet50", "input": {"color": '
        b'"bgr", "resize": 256, "crop": 224, "scale": 255.0, "mean": [0.485, 0.456, 0.406], '
        b'"std": [0.229, 0.224, 0.225], "exif_orientation": false, "fast_path": true}, '
        b'"max_batch": 8, "precision": "int8", "description": "x"}')
    out("config", "model_gray.json", b"\x01" + b'{"input": {"color": "gray", "resize": 28, '
        b'"mean": [0.5], "std": [0.5]}}')
    out("config", "model_dup.json", b"\x01" + b'{"name": "a", "name": "b"}')


def npy_seeds():
    rng = np.random.default_rng(0)
    for name, shape in [("scalar", ()), ("vec", (5,)), ("img", (1, 1, 4, 4)), ("empty", (0, 3)),
                        ("batch", (2, 3, 2, 2))]:
        buf = io.BytesIO()
        np.save(buf, rng.standard_normal(shape).astype("<f4"))
        out("npy", name + ".npy", buf.getvalue())
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.zeros((2, 2), "<f4"), version=(2, 0))
    out("npy", "v2.npy", buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, np.asfortranarray(np.zeros((2, 3), "<f4")))
    out("npy", "fortran.npy", buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, np.zeros((2,), ">f8"))
    out("npy", "f8.npy", buf.getvalue())


def request_seeds():
    png = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(png, "PNG")
    png = png.getvalue()
    jpg = io.BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(jpg, "JPEG")
    jpg = jpg.getvalue()

    def req(line, headers, body=b""):
        h = b"".join(k + b": " + v + b"\r\n" for k, v in headers)
        return line + b"\r\n" + h + b"\r\n" + body

    out("request", "raw_png", req(b"POST /v1/classify?top_k=3 HTTP/1.1",
                                  [(b"Host", b"x"), (b"Content-Length", str(len(png)).encode())],
                                  png))
    out("request", "named_jpg", req(b"POST /v1/models/m/classify HTTP/1.1",
                                    [(b"Host", b"x"), (b"X-Request-Timeout-Ms", b"100"),
                                     (b"Content-Type", b"image/jpeg"),
                                     (b"Content-Length", str(len(jpg)).encode())], jpg))
    chunked = b"%x\r\n" % len(png) + png + b"\r\n0\r\n\r\n"
    out("request", "chunked", req(b"POST /v1/classify HTTP/1.1",
                                  [(b"Host", b"x"), (b"Transfer-Encoding", b"chunked")], chunked))
    b = b"XyZ"
    mp = (b"--" + b + b"\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.png\"\r\n"
          b"Content-Type: image/png\r\n\r\n" + png + b"\r\n--" + b +
          b"\r\nContent-Disposition: form-data; name=\"g\"; filename=\"\xff\xfe.jpg\"\r\n\r\n" +
          jpg + b"\r\n--" + b + b"\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nhello\r\n--"
          + b + b"--\r\n")
    out("request", "multipart", req(b"POST /v1/classify?top_k=1 HTTP/1.1",
                                     [(b"Host", b"x"),
                                      (b"Content-Type", b"multipart/form-data; boundary=" + b),
                                      (b"Content-Length", str(len(mp)).encode())], mp))
    out("request", "multipart_noboundary",
        req(b"POST /v1/classify HTTP/1.1", [(b"Host", b"x"), (b"Content-Type", b"multipart/form-data"),
                                             (b"Content-Length", b"5")], b"hello"))
    out("request", "pipelined", req(b"GET /healthz HTTP/1.1", [(b"Host", b"x")]) +
        req(b"GET /v1/models HTTP/1.1", [(b"Host", b"x")]) +
        req(b"GET /metrics HTTP/1.1", [(b"Host", b"x")]) +
        req(b"GET /readyz HTTP/1.1", [(b"Host", b"x"), (b"Connection", b"close")]))
    out("request", "bad_topk", req(b"POST /v1/classify?top_k=-1&top_k=abc HTTP/1.1",
                                   [(b"Host", b"x"), (b"Content-Length", b"4")], b"\x89PNG"))
    out("request", "traversal", req(b"POST /v1/models/%2e%2e/classify HTTP/1.1",
                                    [(b"Host", b"x"), (b"Content-Length", b"0")]))
    out("request", "cl_te", req(b"POST /v1/classify HTTP/1.1",
                                [(b"Host", b"x"), (b"Content-Length", b"3"),
                                 (b"Transfer-Encoding", b"chunked")], b"3\r\nabc\r\n0\r\n\r\n"))
    out("request", "method", req(b"DELETE /v1/classify HTTP/1.1", [(b"Host", b"x")]))


if __name__ == "__main__":
    which = sys.argv[1:] or ["onnx", "qdq", "config", "npy", "request"]
    for w in which:
        globals()[w + "_seeds"]()
