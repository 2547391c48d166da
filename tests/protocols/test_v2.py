"""KServe v2 / Open Inference Protocol (REST) with Triton's binary tensor data
and classification extensions, against the real `resnetd serve`.

References: `resnetd infer` on the same .npy tensor (logits must be equal),
/v1 for the same image (classification indices, labels, probabilities),
torch + torchvision/PIL for images (independent), and the onnx graph for the
tensor names. usage: test_v2.py RESNETD_BINARY"""

import base64
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptest  # noqa: E402
from ptest import check  # noqa: E402


def infer(srv, model, req, binary=b"", headers=None):
    """POSTs a v2 inference request (dict, or bytes for a raw JSON text),
    with optional binary data after it. Returns (status, headers, json, binary tail)."""
    js = req if isinstance(req, bytes) else json.dumps(req).encode()
    h = dict(headers or {})
    if binary:
        h["Inference-Header-Content-Length"] = str(len(js))
        h.setdefault("Content-Type", "application/octet-stream")
    else:
        h.setdefault("Content-Type", "application/json")
    s, rh, body = srv.request("POST", f"/v2/models/{model}/infer", js + binary, h)
    hl = rh.get("inference-header-content-length")
    head, tail = (body[:int(hl)], body[int(hl):]) if hl else (body, b"")
    return s, rh, json.loads(head), tail


def expect_error(srv, model, req, status, words, binary=b"", headers=None):
    s, h, j, _ = infer(srv, model, req, binary, headers)
    check(s == status, f"expected {status} for {words}, got {s} {j}")
    check(isinstance(j.get("error"), str) and list(j) == ["error"], f"error shape: {j}")
    for w in words:
        check(w in j["error"], f"error {j['error']!r} should mention {w!r}")
    check(h.get("content-type") == "application/json", f"error content type {h}")


def resnetd_infer(binary, model_dir, x, tmp):
    """`resnetd infer` on x: the raw-output reference (docs/cli.md)."""
    i, o = os.path.join(tmp, "in.npy"), os.path.join(tmp, "out.npy")
    np.save(i, x)
    subprocess.run([binary, "infer", "--model", model_dir, i, o], check=True,
                   stdout=subprocess.DEVNULL)
    return np.load(o)


def resnetd_preprocess(binary, model_dir, data, tmp):
    p, o = os.path.join(tmp, "img.bin"), os.path.join(tmp, "pre.npy")
    with open(p, "wb") as f:
        f.write(data)
    subprocess.run([binary, "preprocess", "--model", model_dir, p, o], check=True,
                   stdout=subprocess.DEVNULL)
    return np.load(o)


def v1_top(srv, model, data, k):
    s, _, j = srv.json("POST", f"/v1/models/{model}/classify?top_k={k}", data)
    check(s == 200, f"/v1 classify: {s} {j}")
    return j["predictions"]


def test_metadata(srv, models):
    s, h, j = srv.json("GET", "/v2")
    check(s == 200 and j["name"] == "resnetd" and j["version"], f"/v2: {s} {j}")
    for e in ("binary_tensor_data", "classification"):
        check(e in j["extensions"], f"/v2 extensions lack {e}: {j}")
    for path in ("/v2/health/live", "/v2/health/ready"):
        s, h, b = srv.request("GET", path)
        check(s == 200 and b == b"", f"{path}: {s} {b!r}")
    for name, (d, _, inp) in models.items():
        g = onnx.load(os.path.join(d, "model.onnx")).graph
        c = 1 if inp["color"] == "gray" else 3
        for base in (f"/v2/models/{name}", f"/v2/models/{name}/versions/1"):
            s, _, j = srv.json("GET", base)
            check(s == 200, f"{base}: {s} {j}")
            check(j["name"] == name and j["versions"] == ["1"] and j["platform"], f"{base}: {j}")
            check(j["inputs"] == [{"name": g.input[0].name, "datatype": "FP32",
                                   "shape": [-1, c, inp["crop"], inp["crop"]]}], f"inputs {j}")
            classes = g.output[0].type.tensor_type.shape.dim[1].dim_value
            check(j["outputs"] == [{"name": g.output[0].name, "datatype": "FP32",
                                    "shape": [-1, classes]}], f"outputs {j}")
            s, _, b = srv.request("GET", base + "/ready")
            check(s == 200 and b == b"", f"{base}/ready: {s}")
            s, _, cfg = srv.json("GET", base + "/config")
            check(s == 200 and cfg["max_batch_size"] >= 1 and
                  cfg["input"][0]["dims"] == [c, inp["crop"], inp["crop"]] and
                  cfg["output"][0]["dims"] == [classes], f"config {cfg}")
    s, _, j = srv.json("POST", "/v2/repository/index", b"{}")
    check(s == 200 and sorted(m["name"] for m in j) == sorted(models) and
          all(m["state"] == "READY" for m in j), f"repository index {j}")
    # unknown model / version / path, wrong method
    for path in ("/v2/models/nope", "/v2/models/nope/ready", "/v2/models/gray/versions/7",
                 "/v2/models/gray/versions/7/ready", "/v2/models/gray/bogus", "/v2/nothing"):
        s, h, j = srv.json("GET", path)
        check(s == 404 and isinstance(j.get("error"), str), f"{path}: {s} {j}")
    check("nope" in srv.json("GET", "/v2/models/nope")[2]["error"], "404 names the model")
    s, h, j = srv.json("GET", "/v2/models/gray/infer")
    check(s == 405 and "POST" in h.get("allow", "") and "error" in j, f"GET infer: {s} {h} {j}")
    s, h, j = srv.json("POST", "/v2/health/live", b"")
    check(s == 405 and "error" in j, f"POST live: {s}")


def test_fp32(binary, srv, models, tmp):
    d, net, inp = models["gray"]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 1, 28, 28)).astype(np.float32)
    ref = resnetd_infer(binary, d, x, tmp)
    with __import__("torch").no_grad():
        tref = net(__import__("torch").from_numpy(x)).numpy()
    check(np.abs(ref - tref).max() < 1e-4, "resnetd infer vs torch")
    req = {"id": "req-7", "inputs": [{"name": "input", "shape": [3, 1, 28, 28],
                                      "datatype": "FP32", "data": x.tolist()}]}
    s, h, j, _ = infer(srv, "gray", req)
    check(s == 200, f"JSON FP32: {s} {j}")
    check(j["model_name"] == "gray" and j["model_version"] == "1" and j["id"] == "req-7", f"{j}")
    (o,) = j["outputs"]
    check(o["name"] == "logits" and o["datatype"] == "FP32" and o["shape"] == [3, 10], f"{o}")
    y = np.array(o["data"], np.float32).reshape(3, 10)
    diff = float(np.abs(y - ref).max())
    check(np.array_equal(y, ref), f"/v2 JSON logits differ from resnetd infer by {diff}")
    # flat data, versioned path, explicitly requested output
    req = {"inputs": [{"name": "input", "shape": [3, 1, 28, 28], "datatype": "FP32",
                       "data": x.ravel().tolist()}], "outputs": [{"name": "logits"}]}
    s, h, j, _ = infer(srv, "gray/versions/1", req)
    check(s == 200 and "id" not in j, f"flat FP32: {s} {j}")
    check(np.array_equal(np.array(j["outputs"][0]["data"], np.float32).reshape(3, 10), ref),
          "flat FP32 logits")
    # binary in, binary out (Triton's binary tensor data extension)
    req = {"inputs": [{"name": "input", "shape": [3, 1, 28, 28], "datatype": "FP32",
                       "parameters": {"binary_data_size": x.nbytes}}],
           "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}
    s, h, j, tail = infer(srv, "gray", req, x.tobytes())
    check(s == 200 and h.get("content-type") == "application/octet-stream", f"binary: {s} {h}")
    (o,) = j["outputs"]
    check(o["parameters"] == {"binary_data_size": 120} and "data" not in o, f"binary out {o}")
    check(len(tail) == 120, f"binary tail {len(tail)}")
    check(np.array_equal(np.frombuffer(tail, "<f4").reshape(3, 10), ref), "binary logits")
    # binary in, JSON out; and binary_data_output for every output
    s, h, j, tail = infer(srv, "gray", {"inputs": req["inputs"]}, x.tobytes())
    check(s == 200 and tail == b"" and "inference-header-content-length" not in h, f"{h}")
    check(np.array_equal(np.array(j["outputs"][0]["data"], np.float32).reshape(3, 10), ref),
          "binary in, JSON out")
    s, h, j, tail = infer(srv, "gray", {"inputs": [{"name": "input", "shape": [1, 1, 28, 28],
                                                    "datatype": "FP32", "data": x[0].ravel().tolist()}],
                                        "parameters": {"binary_data_output": True}})
    ref1 = resnetd_infer(binary, d, x[:1], tmp)  # batch 1 may round differently than batch 3
    got = np.frombuffer(tail, "<f4")
    check(s == 200 and np.array_equal(got, ref1[0]), f"binary_data_output: {got} vs {ref1[0]}")
    return diff


def test_images(binary, srv, models, tmp):
    """BYTES inputs: base64 in JSON and length-prefixed binary; classification."""
    n_checked = 0
    for name in ("gray", "rgb"):
        d, net, inp = models[name]
        imgs = [ptest.make_image(i, f) for i, f in enumerate(["png", "jpg", "webp"])]
        # reference: resnetd preprocess + resnetd infer, and torch/torchvision
        pre = np.concatenate([resnetd_preprocess(binary, d, b, tmp) for b in imgs])
        ref = resnetd_infer(binary, d, pre, tmp)
        for i, b in enumerate(imgs):
            t = ptest.torch_reference(net, inp, b)
            check(np.abs(ref[i] - t).max() < 2e-3, f"{name} image {i}: server pipeline vs torch "
                  f"{np.abs(ref[i] - t).max()}")
        classes = ref.shape[1]
        js = {"inputs": [{"name": "image", "shape": [3], "datatype": "BYTES",
                          "data": [base64.b64encode(b).decode() for b in imgs]}]}
        s, h, j, _ = infer(srv, name, js)
        check(s == 200, f"{name} BYTES JSON: {s} {j}")
        y = np.array(j["outputs"][0]["data"], np.float32).reshape(3, classes)
        check(j["outputs"][0]["shape"] == [3, classes], f"shape {j['outputs'][0]['shape']}")
        check(np.array_equal(y, ref), f"{name} BYTES logits vs resnetd preprocess+infer "
              f"{np.abs(y - ref).max()}")
        # the same as Triton's binary BYTES, shape [N,1], with classification, binary out
        blob = b"".join(struct.pack("<I", len(b)) + b for b in imgs)
        k = 3
        req = {"inputs": [{"name": "image", "shape": [3, 1], "datatype": "BYTES",
                           "parameters": {"binary_data_size": len(blob)}}],
               "outputs": [{"name": "logits" if name == "gray" else "scores",
                            "parameters": {"classification": k, "binary_data": True}}]}
        s, h, j, tail = infer(srv, name, req, blob)
        check(s == 200, f"{name} BYTES binary: {s} {j}")
        o = j["outputs"][0]
        check(o["datatype"] == "BYTES" and o["shape"] == [3, k] and
              o["parameters"]["binary_data_size"] == len(tail), f"{o}")
        strs, off = [], 0
        while off < len(tail):
            (n,) = struct.unpack_from("<I", tail, off)
            strs.append(tail[off + 4:off + 4 + n].decode())
            off += 4 + n
        check(len(strs) == 3 * k, f"{len(strs)} classification strings")
        # the same request with a JSON answer gives the same strings
        req["outputs"][0]["parameters"]["binary_data"] = False
        s, h, j2, _ = infer(srv, name, req, blob)
        check(s == 200 and j2["outputs"][0]["data"] == strs, "JSON vs binary classification")
        for i, b in enumerate(imgs):
            top = v1_top(srv, name, b, k)
            row = strs[i * k:(i + 1) * k]
            for r, p in zip(row, top):
                parts = r.split(":")
                # "value:index:label" with labels.txt, "value:index" without (as Triton)
                check(len(parts) == (3 if name == "gray" else 2), f"format {r!r}")
                check(int(parts[1]) == p["index"], f"{name} img {i}: {row} vs /v1 {top}")
                if name == "gray":
                    check(parts[2] == p["label"], f"label {r!r} vs /v1 {p}")
                check(parts[0] == "%f" % ref[i][int(parts[1])], f"value {r!r} vs logit "
                      f"{ref[i][int(parts[1])]}")
                sm = np.exp(ref[i] - ref[i].max())
                sm /= sm.sum()
                check(abs(sm[int(parts[1])] - p["probability"]) < 1e-5,
                      f"softmax of the value vs /v1 probability {p}")
                n_checked += 1
            vals = [float(r.split(":")[0]) for r in row]
            check(vals == sorted(vals, reverse=True), f"order {row}")
    # a data: URL prefix is accepted; URL-safe base64 without padding too
    img = ptest.make_image(5, "png")
    for enc in ("data:image/png;base64," + base64.b64encode(img).decode(),
                base64.urlsafe_b64encode(img).decode().rstrip("=")):
        s, h, j, _ = infer(srv, "gray", {"inputs": [{"name": "x", "shape": [1],
                                                     "datatype": "BYTES", "data": [enc]}]})
        check(s == 200, f"base64 variant: {s} {j}")
    return n_checked


def test_errors(srv):
    x = [0.0] * 784
    good = {"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": x}
    expect_error(srv, "nope", {"inputs": [good]}, 404, ["nope"])
    expect_error(srv, "gray/versions/3", {"inputs": [good]}, 404, ["version"])
    # the protocol's own example request (UINT32 [2,2] "input0") is not this model's input
    expect_error(srv, "gray", {"id": "42", "inputs": [{"name": "input0", "shape": [2, 2],
                                                       "datatype": "UINT32", "data": [1, 2, 3, 4]}],
                               "outputs": [{"name": "output0"}]}, 400, ["output0"])
    expect_error(srv, "gray", {"inputs": [dict(good, datatype="INT64")]}, 400, ["INT64"])
    expect_error(srv, "gray", {"inputs": [dict(good, datatype="FP16")]}, 400, ["FP16"])
    expect_error(srv, "gray", {"inputs": [dict(good, shape=[1, 1, 28, 27], data=x[:756])]}, 400,
                 ["shape", "[1,1,28,27]"])
    expect_error(srv, "gray", {"inputs": [dict(good, shape=[1, 784])]}, 400, ["shape"])
    expect_error(srv, "gray", {"inputs": [dict(good, data=x[:-1])]}, 400, ["783", "784"])
    expect_error(srv, "gray", {"inputs": [dict(good, data=["a"] * 784)]}, 400, ["number"])
    expect_error(srv, "gray", {"inputs": [dict(good, name="pixels")]}, 400, ["pixels", "input"])
    expect_error(srv, "gray", {"inputs": [good, good]}, 400, ["2 inputs"])
    expect_error(srv, "gray", {"inputs": [good], "outputs": [{"name": "probs"}]}, 400, ["probs"])
    expect_error(srv, "gray", {"inputs": []}, 400, ["inputs"])
    expect_error(srv, "gray", {"inputs": [{"name": "input", "shape": [1, 1, 28, 28],
                                           "datatype": "FP32"}]}, 400, ["data"])
    expect_error(srv, "gray", b'{"inputs": [', 400, ["JSON"])
    expect_error(srv, "gray", {"inputs": [{"name": "i", "shape": [1], "datatype": "BYTES",
                                           "data": ["not*base64!"]}]}, 400, ["base64"])
    expect_error(srv, "gray", {"inputs": [{"name": "i", "shape": [2], "datatype": "BYTES",
                                           "data": [base64.b64encode(b"x" * 30).decode()] * 2}]},
                 415, ["element 0"])
    expect_error(srv, "gray", {"inputs": [{"name": "i", "shape": [2], "datatype": "BYTES",
                                           "data": ["AAAA"]}]}, 400, ["1 strings"])
    png = ptest.make_image(1, "png")
    expect_error(srv, "gray", {"inputs": [{"name": "i", "shape": [1], "datatype": "BYTES",
                                           "data": [base64.b64encode(png[:len(png) // 2]).decode()]}]},
                 400, ["element 0"])
    # truncated binary data
    fp = np.zeros((1, 1, 28, 28), np.float32).tobytes()
    bin_in = {"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
              "parameters": {"binary_data_size": len(fp)}}
    expect_error(srv, "gray", {"inputs": [bin_in]}, 400, ["truncated"], fp[:-4])
    expect_error(srv, "gray", {"inputs": [dict(bin_in, parameters={"binary_data_size": 100})]},
                 400, ["binary_data_size"], fp[:100])
    expect_error(srv, "gray", {"inputs": [bin_in]}, 400, ["no input claims"], fp + b"xx")
    blob = struct.pack("<I", len(png)) + png
    by = {"name": "i", "shape": [1], "datatype": "BYTES",
          "parameters": {"binary_data_size": len(blob) - 5}}
    expect_error(srv, "gray", {"inputs": [by]}, 400, ["truncated"], blob[:-5])
    expect_error(srv, "gray", {"inputs": [dict(by, shape=[60], parameters={"binary_data_size": 8})]},
                 400, ["cannot hold 60"], b"\0" * 8)
    js = json.dumps({"inputs": [bin_in]}).encode()
    s, h, b = srv.request("POST", "/v2/models/gray/infer", js + fp,
                          {"Inference-Header-Content-Length": str(len(js) + len(fp) + 1)})
    check(s == 400 and "Inference-Header-Content-Length" in json.loads(b)["error"], f"{s} {b}")


def test_shared(srv):
    """v2 requests go through /v1's queue: deadlines, metrics."""
    x = np.zeros((2, 1, 28, 28), np.float32)
    req = {"inputs": [{"name": "input", "shape": [2, 1, 28, 28], "datatype": "FP32",
                       "data": x.ravel().tolist()}]}
    before = srv.metric("resnetd_images_total", {"model": "gray"})
    req_before = srv.metric("resnetd_requests_total", {"model": "gray", "code": "200"})
    s, h, j, _ = infer(srv, "gray", req, headers={"X-Request-Id": "trace-me-1"})
    check(s == 200 and h.get("x-request-id") == "trace-me-1", f"{s} {h}")
    check(h.get("server-timing", "").startswith("total;dur="), f"Server-Timing {h}")
    check(srv.metric("resnetd_images_total", {"model": "gray"}) == before + 2, "images_total")
    check(srv.metric("resnetd_requests_total", {"model": "gray", "code": "200"}) ==
          req_before + 1, "requests_total")
    dl = srv.metric("resnetd_rejected_total", {"reason": "deadline"})
    s, h, j, _ = infer(srv, "gray", req, headers={"X-Request-Timeout-Ms": "0"})
    check(s == 504 and "deadline" in j["error"], f"X-Request-Timeout-Ms 0: {s} {j}")
    s, h, j, _ = infer(srv, "gray", dict(req, parameters={"timeout": 1}))
    check(s == 504, f"parameters.timeout 1us: {s} {j}")
    check(srv.metric("resnetd_rejected_total", {"reason": "deadline"}) >= dl + 2, "deadline")
    check(srv.metric("resnetd_requests_total", {"model": "gray", "code": "504"}) >= 2, "504s")


def test_keepalive(srv):
    """Clients such as tritonclient keep one connection: GETs, infer POSTs
    (JSON and binary) and TorchServe requests in a row on one socket."""
    import http.client
    png = ptest.make_image(6, "png")
    js = json.dumps({"inputs": [{"name": "i", "shape": [1], "datatype": "BYTES",
                                 "data": [base64.b64encode(png).decode()]}]})
    x = np.zeros((1, 1, 28, 28), np.float32)
    hdr = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                  "parameters": {"binary_data_size": x.nbytes}}]}).encode()
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    sock = None
    for method, path, body, h in [
            ("GET", "/v2/health/ready", None, {}), ("POST", "/v2/models/gray/infer", js, {}),
            ("GET", "/v2/models/gray", None, {}),
            ("POST", "/v2/models/gray/infer", hdr + x.tobytes(),
             {"Inference-Header-Content-Length": str(len(hdr))}),
            ("POST", "/predictions/gray", png, {}), ("GET", "/ping", None, {}),
            ("POST", "/v2/models/gray/infer", js, {}),
            # an error answered before the body is read may close (the client reconnects)
            ("POST", "/v2/models/nope/infer", js, {})]:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        r.read()
        check(r.status == (404 if "nope" in path else 200), f"{method} {path}: {r.status}")
        check(sock is None or c.sock is sock or "nope" in path,
              f"{method} {path}: the connection was not kept")
        sock = c.sock
    c.close()


def test_curl(srv, tmp):
    """The documented curl examples, sent with curl itself."""
    def curl(*args):
        r = subprocess.run(["curl", "-sS", "--max-time", "60", "-w", "\n%{http_code}"] +
                           list(args), check=True, capture_output=True)
        body, _, code = r.stdout.rpartition(b"\n")
        return int(code), body
    code, body = curl(srv.url + "/v2/health/ready")
    check(code == 200, f"curl ready {code}")
    img = os.path.join(tmp, "shirt.png")
    with open(img, "wb") as f:
        f.write(ptest.make_image(2, "png"))
    req = os.path.join(tmp, "req.json")
    with open(req, "w") as f:
        json.dump({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                               "data": [base64.b64encode(open(img, "rb").read()).decode()]}],
                   "outputs": [{"name": "logits", "parameters": {"classification": 3}}]}, f)
    code, body = curl("-X", "POST", "-H", "Content-Type: application/json", "--data-binary",
                      "@" + req, srv.url + "/v2/models/gray/infer")
    j = json.loads(body)
    top = v1_top(srv, "gray", open(img, "rb").read(), 3)
    check(code == 200 and [int(s.split(":")[1]) for s in j["outputs"][0]["data"]] ==
          [p["index"] for p in top], f"curl classification {j} vs {top}")
    # binary: JSON header + the PNG as one length-prefixed BYTES element
    data = open(img, "rb").read()
    hdr = json.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                  "parameters": {"binary_data_size": len(data) + 4}}],
                      "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]})
    body_path = os.path.join(tmp, "req.bin")
    with open(body_path, "wb") as f:
        f.write(hdr.encode() + struct.pack("<I", len(data)) + data)
    code, body = curl("-X", "POST", "-H", f"Inference-Header-Content-Length: {len(hdr)}",
                      "-H", "Content-Type: application/octet-stream", "--data-binary",
                      "@" + body_path, srv.url + "/v2/models/gray/infer")
    check(code == 200 and len(body) > 40, f"curl binary {code}")
    code, body = curl("-X", "POST", "-d", "{}", srv.url + "/v2/models/missing/infer")
    check(code == 404 and "missing" in json.loads(body)["error"], f"curl 404 {code} {body}")


def test_mutations(srv, rounds=300):
    """Random byte and header mutations of valid requests: every answer is
    200 or a JSON {"error"} with 400/413/415, and the server keeps serving."""
    rng = np.random.default_rng(11)
    png = ptest.make_image(3, "png")
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    seeds = []
    for req, blob in [
        ({"inputs": [{"name": "input", "shape": [2, 1, 28, 28], "datatype": "FP32",
                      "parameters": {"binary_data_size": x.nbytes}}],
          "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}, x.tobytes()),
        ({"inputs": [{"name": "i", "shape": [2], "datatype": "BYTES",
                      "parameters": {"binary_data_size": 2 * (len(png) + 4)}}],
          "outputs": [{"name": "logits", "parameters": {"classification": 2}}]},
         (struct.pack("<I", len(png)) + png) * 2),
        ({"inputs": [{"name": "i", "shape": [1], "datatype": "BYTES",
                      "data": [base64.b64encode(png).decode()]}]}, b""),
        ({"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
                      "data": x[0].ravel().tolist()}]}, b"")]:
        seeds.append((json.dumps(req).encode(), blob))
    seen = {}
    for i in range(rounds):
        js, blob = seeds[i % len(seeds)]
        body = bytearray(js + blob)
        for _ in range(int(rng.integers(1, 4))):
            op, pos = int(rng.integers(0, 3)), int(rng.integers(0, len(body)))
            if op == 0:
                body[pos] = int(rng.integers(0, 256))
            elif op == 1:
                del body[pos:pos + int(rng.integers(1, 64))]
            else:
                body[pos:pos] = bytes(rng.integers(0, 256, int(rng.integers(1, 16)), np.uint8))
        h = {}
        if blob:
            hl = len(js) + int(rng.integers(-3, 4)) if i % 3 == 0 else len(js)
            h["Inference-Header-Content-Length"] = str(hl)
        s, rh, b = srv.request("POST", "/v2/models/gray/infer", bytes(body), h)
        seen[s] = seen.get(s, 0) + 1
        check(s in (200, 400, 413, 415), f"mutation {i}: status {s} {b[:200]!r}")
        if s != 200:
            check(isinstance(json.loads(b).get("error"), str), f"mutation {i}: {b[:200]!r}")
    s, _, _ = srv.request("GET", "/v2/health/ready")
    check(s == 200, "server alive after mutations")
    return seen


def test_mixed_batching(binary, models, tmp):
    """v2, /v1 and TorchServe requests arriving together are batched together
    by the model's one queue (batch_timeout 300 ms lets the batch fill)."""
    import threading
    d = models["gray"][0]
    imgs = [ptest.make_image(20 + i, "png") for i in range(8)]
    pre = np.concatenate([resnetd_preprocess(binary, d, b, tmp) for b in imgs])
    ref = resnetd_infer(binary, d, pre, tmp)
    srv = ptest.Server(binary, ["--model", d, "--workers", "1", "--max-batch", "8",
                                "--batch-timeout-us", "300000"])
    try:
        batches0 = srv.metric("resnetd_batch_size_count", {"model": "gray"})
        # an announced upload on its way keeps the forming batch waiting (queue_expect),
        # so the 8 requests meet in the queue however the threads are scheduled
        import socket
        held = json.dumps({"inputs": [{"name": "i", "shape": [1], "datatype": "BYTES",
                                       "data": [base64.b64encode(imgs[0]).decode()]}]}).encode()
        up = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        up.sendall(b"POST /v2/models/gray/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                   b"\r\n" % len(held) + held[:10])
        out, errs = [None] * 8, []
        barrier = threading.Barrier(8)

        def run(i):
            try:
                barrier.wait()
                if i % 4 < 2:  # v2 BYTES, raw logits
                    s, _, j, _ = infer(srv, "gray", {"inputs": [{
                        "name": "image", "shape": [1], "datatype": "BYTES",
                        "data": [base64.b64encode(imgs[i]).decode()]}]})
                    out[i] = ("v2", s, np.array(j["outputs"][0]["data"], np.float32))
                elif i % 4 == 2:
                    s, _, j = srv.json("POST", "/v1/models/gray/classify?top_k=1", imgs[i])
                    out[i] = ("v1", s, j["predictions"][0]["index"])
                else:
                    s, _, b = srv.request("POST", "/predictions/gray", imgs[i])
                    out[i] = ("ts", s, next(iter(json.loads(b))))
            except Exception as e:  # reported below
                errs.append(repr(e))
        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(not errs, f"mixed requests failed: {errs}")
        for i, (kind, s, v) in enumerate(out):
            check(s == 200, f"{kind} request {i}: {s}")
            if kind == "v2":
                check(np.abs(v - ref[i]).max() < 1e-5, f"batched v2 logits {i}: {v} vs {ref[i]}")
            elif kind == "v1":
                check(v == int(np.argmax(ref[i])), f"batched /v1 {i}")
            else:
                check(v == ptest.GRAY_LABELS[int(np.argmax(ref[i]))], f"batched TorchServe {i}")
        batches = srv.metric("resnetd_batch_size_count", {"model": "gray"}) - batches0
        check(1 <= batches <= 2, f"8 mixed requests ran in {batches} batches (expected sharing)")
        up.sendall(held[10:])
        reply = up.recv(65536)
        up.close()
        check(reply.startswith(b"HTTP/1.1 200"), f"the held upload: {reply[:100]!r}")
    finally:
        srv.stop()
        srv.cleanup()
    return int(batches)


def test_drain(binary, models):
    """SIGTERM while a v2 and a TorchServe request wait in the queue (a 2 s
    batch timeout) and while a v2 request is still uploading its body: all
    were accepted before the drain, so all are answered 200; then exit 0."""
    import signal
    import socket
    import threading
    import time
    d = models["gray"][0]
    img = ptest.make_image(30, "png")
    srv = ptest.Server(binary, ["--model", d, "--batch-timeout-us", "2000000",
                                "--drain-timeout-ms", "20000"])
    out = {}
    try:
        def v2():
            out["v2"] = infer(srv, "gray", {"inputs": [{"name": "i", "shape": [1],
                                                        "datatype": "BYTES",
                                                        "data": [base64.b64encode(img).decode()]}]})[0]

        def ts():
            out["ts"] = srv.request("POST", "/predictions/gray", img)[0]
        body = json.dumps({"inputs": [{"name": "i", "shape": [1], "datatype": "BYTES",
                                       "data": [base64.b64encode(img).decode()]}]}).encode()
        up = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        up.sendall(b"POST /v2/models/gray/infer HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) +
                   body[:len(body) // 2])
        threads = [threading.Thread(target=f) for f in (v2, ts)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while srv.metric("resnetd_queue_depth", {"model": "gray"}) < 2:
            check(time.monotonic() < deadline, "requests never reached the queue")
            time.sleep(0.01)
        srv.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(30)
        time.sleep(0.3)  # the upload is still in flight while the others are answered
        up.sendall(body[len(body) // 2:])
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = up.recv(65536)
            if not chunk:
                break
            reply += chunk
        up.close()
        out["upload"] = int(reply.split(b" ")[1]) if reply.startswith(b"HTTP/1.1 ") else reply
        rc = srv.proc.wait(30)
    finally:
        srv.stop()
        srv.cleanup()
    check(out == {"v2": 200, "ts": 200, "upload": 200}, f"answers during the drain: {out}")
    check(rc == 0, f"exit code after the drain {rc}")


def main():
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="proto-v2-") as tmp:
        models = ptest.export_models(tmp)
        srv = ptest.Server(binary, ["--model", models["gray"][0], "--model", models["rgb"][0],
                                    "--workers", "1"])
        with srv.session():
            test_metadata(srv, models)
            diff = test_fp32(binary, srv, models, tmp)
            n = test_images(binary, srv, models, tmp)
            test_errors(srv)
            test_shared(srv)
            test_curl(srv, tmp)
            test_keepalive(srv)
            seen = test_mutations(srv)
        rc = srv.rc
        check(rc == 0, f"server exit code {rc}")
        nb = test_mixed_batching(binary, models, tmp)
        test_drain(binary, models)
    print(f"v2 ok: 8 concurrent v2 + /v1 + TorchServe requests ran in {nb} batch(es)")
    print(f"v2 ok: logits equal resnetd infer (max diff {diff}); {n} classification strings "
          f"agree with /v1; mutated requests answered {seen}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
