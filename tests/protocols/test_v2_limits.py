#!/usr/bin/python3
"""KServe v2 against hostile-but-valid requests (issue 13, classes 4, 6, 10):
the real `resnetd serve` on 127.0.0.1, real bytes, exact status and message,
and whether inference ran, read from /metrics (resnetd_images_total and the
batch-size histogram count engine runs).

  outputs   entries must be distinct names of real outputs: a repeated or
            unknown name is 400 naming the entry, more than 16 entries is 400,
            before inference; "outputs": [] answers the default output; an
            amplification request (64 images, 30,000 outputs) is refused at once
  id        over 255 bytes -> 400 before inference (also multi-byte UTF-8 at
            the 255-byte boundary); 255 bytes of multi-byte characters echoed
            intact; invalid UTF-8 in the JSON -> 400
  fp32      values outside the float range (1e39, -1e39) -> 400 naming the input
  classification  clamped to the model's classes
  json      the JSON's cost is known before jansson builds its tree: more
            values than queue_capacity tensors of the model hold -> 400 at once;
            a tree that could not fit max_inflight_bytes -> 413 (a 14 MB body
            of "{}" took 1.1 GB before)

usage: test_v2_limits.py RESNETD_BINARY
"""

import json
import os
import struct
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptest  # noqa: E402
from ptest import check  # noqa: E402


def post(srv, req, binary=b""):
    js = req if isinstance(req, bytes) else json.dumps(req).encode()
    h = {"Content-Type": "application/json"}
    if binary:
        h = {"Inference-Header-Content-Length": str(len(js)),
             "Content-Type": "application/octet-stream"}
    t0 = time.monotonic()
    s, rh, body = srv.request("POST", "/v2/models/gray/infer", js + binary, h)
    dt = time.monotonic() - t0
    hl = rh.get("inference-header-content-length")
    head = body[:int(hl)] if hl else body
    return s, rh, json.loads(head), dt


def runs(srv):
    """(images answered, engine runs) so far for model gray."""
    return (srv.metric("resnetd_images_total", {"model": "gray"}),
            srv.metric("resnetd_batch_size_count", {"model": "gray"}))


def refused(srv, req, status, words, binary=b""):
    """The request gets `status` with an error naming every word, and no
    inference ran for it."""
    before = runs(srv)
    s, h, j, dt = post(srv, req, binary)
    check(s == status, f"expected {status} for {words}, got {s} {j}")
    check(list(j) == ["error"] and isinstance(j["error"], str), f"error shape {j}")
    for w in words:
        check(w in j["error"], f"error {j['error']!r} should mention {w!r}")
    check(runs(srv) == before, f"inference ran for a refused request ({words}): "
          f"{before} -> {runs(srv)}")
    return j, dt


def main():
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="proto-v2-limits-") as tmp:
        models = ptest.export_models(tmp)
        srv = ptest.Server(binary, ["--model", models["gray"][0], "--workers", "1"])
        with srv.session():
            x = np.random.default_rng(3).random((2, 1, 28, 28), np.float32)
            good = {"name": "input", "shape": [2, 1, 28, 28], "datatype": "FP32",
                    "data": x.ravel().tolist()}
            s, _, ref, _ = post(srv, {"inputs": [good]})
            check(s == 200 and len(ref["outputs"]) == 1, f"baseline {s} {ref}")
            logits = ref["outputs"][0]

            # class 4: outputs distinct, real, capped; [] is the default output
            refused(srv, {"inputs": [good], "outputs": [{"name": "logits"}, {"name": "logits"}]},
                    400, ["'logits'", "twice", "entries 0 and 1"])
            refused(srv, {"inputs": [good], "outputs": [{"name": "logits"}, {"name": "probs"}]},
                    400, ["'probs'", "entry 1"])
            refused(srv, {"inputs": [good], "outputs": [{"name": "logits"}] * 17}, 400,
                    ["17 entries", "at most 16"])
            s, _, j, _ = post(srv, {"inputs": [good], "outputs": []})
            check(s == 200 and j["outputs"] == [logits], f"outputs [] -> default: {s} {j}")
            s, _, j, _ = post(srv, {"inputs": [good], "outputs": [
                {"name": "logits", "parameters": {"classification": 1000000}}]})
            check(s == 200 and j["outputs"][0]["shape"] == [2, 10], f"classification {s} {j}")
            # the amplification: 64 binary FP32 images, 30,000 outputs
            big = np.zeros((64, 1, 28, 28), np.float32).tobytes()
            amp = {"inputs": [{"name": "input", "shape": [64, 1, 28, 28], "datatype": "FP32",
                               "parameters": {"binary_data_size": len(big)}}],
                   "outputs": [{"name": "logits"}] * 30000}
            _, dt = refused(srv, amp, 400, ["30000 entries"], big)
            check(dt < 1.0, f"amplification refusal took {dt:.2f} s")

            # class 6: id length in bytes, never cut, never a 500 after inference
            refused(srv, {"id": "a" * 256, "inputs": [good]}, 400, ['"id"', "256 bytes"])
            refused(srv, {"id": "a" * 254 + "\u00e9", "inputs": [good]}, 400, ["256 bytes"])
            refused(srv, {"id": "\u20ac" * 200, "inputs": [good]}, 400, ["600 bytes"])
            rid = "a" * 252 + "\u20ac"  # 255 bytes, the last character multi-byte
            s, _, j, _ = post(srv, {"id": rid, "inputs": [good]})
            check(s == 200 and j["id"] == rid, f"255-byte id: {s} {j.get('id')!r}")
            before = runs(srv)
            raw = b'{"id": "caf\xe9", "inputs": [' + json.dumps(good).encode() + b']}'
            s, _, j, _ = post(srv, raw)
            check(s == 400 and "invalid JSON" in j["error"] and runs(srv) == before,
                  f"invalid UTF-8 id: {s} {j}")

            # class 10: FP32 outside the float range
            for v in (1e39, -1e39, 3.5e38):
                data = [0.0] * (2 * 784)
                data[5] = v
                refused(srv, {"inputs": [dict(good, data=data)]}, 400,
                        ["input 'input'", "element 5", "FP32 range"])
            data = [0.0] * (2 * 784)
            data[0] = 3.4e38  # the largest floats are fine
            s, _, j, _ = post(srv, {"inputs": [dict(good, data=data)]})
            check(s == 200, f"3.4e38: {s} {j}")

            # BYTES images go through the decode pool: errors still name the element
            png = ptest.make_image(1, "png")
            blob = struct.pack("<I", len(png)) + png + struct.pack("<I", 5) + b"hello"
            refused(srv, {"inputs": [{"name": "i", "shape": [2], "datatype": "BYTES",
                                      "parameters": {"binary_data_size": len(blob)}}]},
                    415, ["input 'i' element 1"], blob)
            # the last answer's bytes are released when its request completes,
            # just after the client has read it
            t0 = time.monotonic()
            while ("resnetd_inflight_bytes 0\n" not in srv.metrics() and
                   time.monotonic() - t0 < 5):
                time.sleep(0.01)
            m = srv.metrics()
            check("resnetd_inflight_bytes 0\n" in m, "budget not back to 0 after the requests")
            check("resnetd_inflight_bytes_limit " in m, "budget limit not exported")

            # JSON cost: 9.9 M numbers (18 MB) for a model whose requests hold at most
            # 2 * 64 * 784 + 4096 values
            bomb = (b'{"inputs":[{"name":"input","shape":[1,1,28,28],"datatype":"FP32",'
                    b'"data":[' + b",".join([b"0"] * 9_900_000) + b"]}]}")
            _, dt = refused(srv, bomb, 400, ["9900011 values", "at most 104448"])
            check(dt < 1.0, f"JSON value cap took {dt:.2f} s")
        check(srv.rc == 0, f"server exit code {srv.rc}")

        # a JSON tree over the whole budget (8 MiB here): 50,000 "{}" (100 KB) are
        # within the value cap but would take ~11 MB in jansson
        srv = ptest.Server(binary, ["--model", models["gray"][0],
                                    "--max-inflight-bytes", str(8 << 20)])
        with srv.session():
            bomb = (b'{"inputs":[{"name":"input","shape":[1,1,28,28],"datatype":"FP32",'
                    b'"data":[' + b",".join([b"{}"] * 50_000) + b"]}]}")
            refused(srv, bomb, 413, ["JSON needs up to", "max_inflight_bytes",
                                     "binary data"])
            one = {"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
                   "data": [0.5] * 784}
            s, _, j, _ = post(srv, {"inputs": [one]})
            check(s == 200 and j["outputs"][0]["shape"] == [1, 10], f"small JSON: {s} {j}")
        check(srv.rc == 0, f"server exit code {srv.rc}")
    print("v2 limits ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
