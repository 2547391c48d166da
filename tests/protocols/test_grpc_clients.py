"""KServe v2 / Triton gRPC (`inference.GRPCInferenceService` on --grpc-port)
against the real `resnetd serve`, with real clients: Debian's python3-grpcio
(stubs generated from server/grpc/grpc_service.proto at test time by
python3-grpc-tools), npm's @grpc/grpc-js + @grpc/proto-loader
(tests/protocols/grpc_client.js), and tests/lib/grpc_kserve.H2 where a
client library would hide what the server sent (grpc-timeout, grpc-encoding,
one connection for 64 streams).

References: the HTTP /v2 infer route of the same server for the same input
(raw output bytes equal bit for bit: the binary tensor extension's bytes, or
the JSON numbers as float32), which tests/protocols/test_v2.py ties to
`resnetd infer`, /v1 and torch/torchvision; here once more torch for images.

usage: test_grpc_clients.py RESNETD_BINARY {api|node|auth|tls|concurrency|drain} [STUB_DIR]
  api          every RPC (ModelStreamInfer too), FP32 raw + typed, BYTES images (PNG/JPEG/WebP),
               classification, internal tensors as outputs (taps),
               errors and their status codes, deadlines, metrics and access log
  node         the same calls through @grpc/grpc-js
  auth         api_key: UNAUTHENTICATED without / with a wrong bearer token (grpcio and node)
  tls          the HTTP port's tls_cert/tls_key on the gRPC port (grpcio and node)
  concurrency  64 streams on one connection, 16 connections at once
  drain        SIGTERM with streams in flight: they finish OK, new ones refused, exit 0
"""

import base64
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import grpc_kserve as gk  # noqa: E402
import ptest  # noqa: E402
from ptest import check  # noqa: E402
import test_v2  # noqa: E402

import grpc  # noqa: E402

pb2 = pb2_grpc = None
KEY = "grpc-test-key-0123456789"
SVC = "/inference.GRPCInferenceService/"


# ----------------------------------------------------------------- helpers


class Server(gk.GrpcServer):
    """tests/lib/grpc_kserve.GrpcServer with ptest's session() (log tail on failure,
    stop, exit code in self.rc)."""
    session = ptest.Server.session
    rc = None


def bytes_tensor(elems):
    """Triton's BYTES serialization: each element as <u32 LE length><bytes>."""
    return b"".join(struct.pack("<I", len(b)) + b for b in elems)


def parse_bytes_tensor(blob):
    out, off = [], 0
    while off < len(blob):
        n = struct.unpack("<I", blob[off:off + 4])[0]
        out.append(blob[off + 4:off + 4 + n])
        off += 4 + n
    return out


def fp32_request(model, x, typed=False, rid="", outputs=None, in_name="input"):
    r = pb2.ModelInferRequest(model_name=model, id=rid)
    t = r.inputs.add(name=in_name, datatype="FP32", shape=list(x.shape))
    if typed:
        t.contents.fp32_contents.extend(x.ravel().tolist())
    else:
        r.raw_input_contents.append(x.astype("<f4").tobytes())
    for o in outputs or []:
        r.outputs.append(o)
    return r


def image_request(model, imgs, typed=False, shape=None, classification=None, out_name=None):
    r = pb2.ModelInferRequest(model_name=model)
    t = r.inputs.add(name="image", datatype="BYTES", shape=shape or [len(imgs)])
    if typed:
        t.contents.bytes_contents.extend(imgs)
    else:
        r.raw_input_contents.append(bytes_tensor(imgs))
    if classification:
        o = r.outputs.add(name=out_name)
        o.parameters["classification"].int64_param = classification
    return r


def output_bytes(resp, i=0):
    """Output i's raw bytes: raw_output_contents[i], or the typed contents
    re-serialized (fp32 little-endian / Triton BYTES)."""
    if len(resp.raw_output_contents) > i:
        return resp.raw_output_contents[i]
    o = resp.outputs[i]
    if o.datatype == "FP32":
        return np.array(o.contents.fp32_contents, "<f4").tobytes()
    return bytes_tensor(o.contents.bytes_contents)


def http_fp32(srv, model, x, in_name="input", classification=None, out_name=None,
              scheme_conn=None):
    """The HTTP /v2 answer for the same tensor, binary out: (json, raw bytes)."""
    req = {"inputs": [{"name": in_name, "shape": list(x.shape), "datatype": "FP32",
                       "parameters": {"binary_data_size": x.nbytes}}],
           "parameters": {"binary_data_output": True}}
    if classification:
        req["outputs"] = [{"name": out_name, "parameters": {"classification": classification,
                                                             "binary_data": True}}]
    s, _, j, tail = test_v2.infer(srv, model, req, x.astype("<f4").tobytes())
    check(s == 200, f"HTTP /v2 FP32 {model}: {s} {j}")
    return j, tail


def http_images(srv, model, imgs, classification=None, out_name=None):
    blob = bytes_tensor(imgs)
    req = {"inputs": [{"name": "image", "shape": [len(imgs)], "datatype": "BYTES",
                       "parameters": {"binary_data_size": len(blob)}}],
           "parameters": {"binary_data_output": True}}
    if classification:
        req["outputs"] = [{"name": out_name, "parameters": {"classification": classification,
                                                             "binary_data": True}}]
    s, _, j, tail = test_v2.infer(srv, model, req, blob)
    check(s == 200, f"HTTP /v2 BYTES {model}: {s} {j}")
    return j, tail


def expect_status(fn, code, words=(), what=""):
    """Calls fn() (a grpcio call) and checks it fails with code; returns the error."""
    try:
        fn()
    except grpc.RpcError as e:
        check(e.code() == code, f"{what}: expected {code}, got {e.code()} {e.details()!r}")
        for w in words:
            check(w.lower() in (e.details() or "").lower(),
                  f"{what}: message {e.details()!r} should mention {w!r}")
        return e
    raise AssertionError(f"{what}: expected {code}, the call succeeded")


def make_cert(tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def test_images_of(models):
    """{model: [png, jpg, webp]} test images."""
    return {m: [ptest.make_image(i + (0 if m == "gray" else 10), f)
                for i, f in enumerate(["png", "jpg", "webp"])] for m in models}


# ----------------------------------------------------------------- api


def test_health_metadata(srv, stub, models):
    check(stub.ServerLive(pb2.ServerLiveRequest()).live is True, "ServerLive")
    check(stub.ServerReady(pb2.ServerReadyRequest()).ready is True, "ServerReady")
    for m in models:
        check(stub.ModelReady(pb2.ModelReadyRequest(name=m)).ready is True, f"ModelReady {m}")
        check(stub.ModelReady(pb2.ModelReadyRequest(name=m, version="1")).ready is True,
              f"ModelReady {m} v1")
    s, _, v2 = srv.json("GET", "/v2")
    md = stub.ServerMetadata(pb2.ServerMetadataRequest())
    check(md.name == v2["name"] == "resnetd" and md.version == v2["version"],
          f"ServerMetadata {md} vs /v2 {v2}")
    check("classification" in md.extensions, f"extensions {list(md.extensions)}")
    for m in models:
        s, _, j = srv.json("GET", f"/v2/models/{m}")
        r = stub.ModelMetadata(pb2.ModelMetadataRequest(name=m))
        got = {"name": r.name, "versions": list(r.versions), "platform": r.platform,
               "inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
                          for t in r.inputs],
               "outputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
                           for t in r.outputs]}
        # the internal tensors a request may name (HTTP: "tensors") follow the output
        want = {k: j[k] for k in got}
        want["outputs"] = j["outputs"] + j.get("tensors", [])
        check(j.get("tensors"), f"HTTP /v2/models/{m} lists no internal tensors: {j}")
        check(got == want, f"ModelMetadata {m}: {got} vs HTTP {j}")
    expect_status(lambda: stub.ModelMetadata(pb2.ModelMetadataRequest(name="nope")),
                  grpc.StatusCode.NOT_FOUND, ["nope"], "ModelMetadata unknown model")
    expect_status(lambda: stub.ModelReady(pb2.ModelReadyRequest(name="nope")),
                  grpc.StatusCode.NOT_FOUND, ["nope"], "ModelReady unknown model")
    expect_status(lambda: stub.ModelMetadata(pb2.ModelMetadataRequest(name="gray", version="7")),
                  grpc.StatusCode.NOT_FOUND, [], "ModelMetadata unknown version")


def test_fp32(srv, stub, binary, models, tmp):
    d = models["gray"][0]
    x = np.random.default_rng(3).standard_normal((3, 1, 28, 28)).astype(np.float32)
    ref = test_v2.resnetd_infer(binary, d, x, tmp).astype("<f4").tobytes()
    hj, htail = http_fp32(srv, "gray", x)
    check(htail == ref, "HTTP /v2 vs resnetd infer")
    r = stub.ModelInfer(fp32_request("gray", x, rid="req-7"))
    check(r.model_name == "gray" and r.model_version == "1" and r.id == "req-7", f"{r}")
    (o,) = r.outputs
    check(o.name == "logits" and o.datatype == "FP32" and list(o.shape) == [3, 10], f"{o}")
    check(output_bytes(r) == htail, "gRPC raw FP32 logits != HTTP /v2 binary logits")
    r2 = stub.ModelInfer(fp32_request("gray", x, typed=True))
    check(r2.id == "" and output_bytes(r2) == htail, "gRPC typed fp32_contents != HTTP /v2")
    # the HTTP JSON answer holds the same float32 values
    s, _, j, _ = test_v2.infer(srv, "gray", {"inputs": [{
        "name": "input", "shape": [3, 1, 28, 28], "datatype": "FP32",
        "data": x.ravel().tolist()}]})
    check(np.array(j["outputs"][0]["data"], "<f4").tobytes() == htail, "HTTP JSON vs binary")
    # versioned request, explicitly requested output
    r = pb2.ModelInferRequest(model_name="gray", model_version="1")
    r.inputs.add(name="input", datatype="FP32", shape=[3, 1, 28, 28])
    r.raw_input_contents.append(x.tobytes())
    r.outputs.add(name="logits")
    check(output_bytes(stub.ModelInfer(r)) == htail, "versioned / explicit output")
    # the rgb model: another input name and output name
    xr = np.random.default_rng(4).standard_normal((2, 3, 32, 32)).astype(np.float32)
    _, t = http_fp32(srv, "rgb", xr, in_name="pixel_values")
    rr = stub.ModelInfer(fp32_request("rgb", xr, in_name="pixel_values"))
    check(rr.outputs[0].name == "scores" and list(rr.outputs[0].shape) == [2, 7], f"{rr}")
    check(output_bytes(rr) == t, "rgb FP32 != HTTP")
    return x, htail


def test_images(srv, stub, binary, models, tmp, imgs):
    n = 0
    for name in ("gray", "rgb"):
        d, net, inp = models[name]
        out_name = "logits" if name == "gray" else "scores"
        hj, htail = http_images(srv, name, imgs[name])
        classes = hj["outputs"][0]["shape"][1]
        # an independent reference: torch + torchvision/PIL preprocessing
        got = np.frombuffer(htail, "<f4").reshape(-1, classes)
        for i, b in enumerate(imgs[name]):
            t = ptest.torch_reference(net, inp, b)
            check(np.abs(got[i] - t).max() < 2e-3, f"{name} image {i} vs torch")
        for typed in (False, True):
            for shape in ([3], [3, 1]):
                r = stub.ModelInfer(image_request(name, imgs[name], typed, shape))
                o = r.outputs[0]
                check(o.datatype == "FP32" and list(o.shape) == [3, classes], f"{o}")
                check(output_bytes(r) == htail,
                      f"{name} BYTES typed={typed} shape={shape}: gRPC != HTTP /v2")
                n += 1
        # each image alone (batch of one) also equals HTTP's batch of one
        for i, b in enumerate(imgs[name]):
            _, t1 = http_images(srv, name, [b])
            check(output_bytes(stub.ModelInfer(image_request(name, [b]))) == t1,
                  f"{name} image {i} alone")
        # classification: k strings "score:index:label" equal to HTTP's
        for k in (1, 3):
            cj, ctail = http_images(srv, name, imgs[name], k, out_name)
            r = stub.ModelInfer(image_request(name, imgs[name], classification=k,
                                              out_name=out_name))
            o = r.outputs[0]
            check(o.datatype == "BYTES" and list(o.shape) == [3, k], f"classification {o}")
            strs = parse_bytes_tensor(output_bytes(r))
            check(output_bytes(r) == ctail and len(strs) == 3 * k,
                  f"{name} classification {k}: {strs} vs {parse_bytes_tensor(ctail)}")
            top = got.argsort(1)[:, ::-1][:, :k]
            for i in range(3):
                for j in range(k):
                    parts = strs[i * k + j].decode().split(":")
                    check(int(parts[1]) == top[i, j], f"classification index {parts}")
                    if name == "gray":
                        check(len(parts) == 3 and parts[2], f"label in {parts}")
                    else:
                        check(len(parts) == 2, f"no labels.txt: {parts}")
    return n


def test_taps(srv, stub, imgs):
    """Internal tensors (issue 16) as requested outputs: the same names as the
    HTTP /v2 metadata's "tensors", answered with raw_output_contents equal bit
    for bit to the HTTP /v2 route's binary data (which tests/server/test_embed.py
    ties to PyTorch forward hooks), alone or with the model's output in either
    order; two of them, or classification on one, are INVALID_ARGUMENT."""
    n = 0
    for m, ims in imgs.items():
        _, _, meta = srv.json("GET", f"/v2/models/{m}")
        out = meta["outputs"][0]["name"]
        names = [t["name"] for t in meta["tensors"]]
        pick = sorted({names[0], names[len(names) // 2], names[-1],
                       meta.get("embedding") or names[-1]})
        two = ims[:2]
        _, logits = http_images(srv, m, two)
        blob = bytes_tensor(two)
        for t in pick:
            req = {"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES",
                               "parameters": {"binary_data_size": len(blob)}}],
                   "outputs": [{"name": t, "parameters": {"binary_data": True}}]}
            st, _, hj, tail = test_v2.infer(srv, m, req, blob)
            check(st == 200 and hj["outputs"][0]["name"] == t, f"HTTP /v2 tap {m} {t}: {st} {hj}")
            for order in ([t], [out, t], [t, out]):
                r = image_request(m, two)
                for name in order:
                    r.outputs.add(name=name)
                resp = stub.ModelInfer(r, timeout=60)
                check([o.name for o in resp.outputs] == order and
                      len(resp.raw_output_contents) == len(order),
                      f"gRPC tap {m} {order}: outputs {[o.name for o in resp.outputs]}")
                for i, name in enumerate(order):
                    o = resp.outputs[i]
                    if name == t:
                        check(o.datatype == "FP32" and
                              list(o.shape) == hj["outputs"][0]["shape"],
                              f"gRPC tap {m} {t}: {o.datatype} {list(o.shape)} vs HTTP "
                              f"{hj['outputs'][0]}")
                        check(resp.raw_output_contents[i] == tail,
                              f"gRPC tap {m} {t}: bytes differ from HTTP /v2")
                    else:
                        check(resp.raw_output_contents[i] == logits,
                              f"gRPC {m} {out} next to tap {t}: bytes differ from HTTP /v2")
                n += 1
        r = image_request(m, two)
        r.outputs.add(name=pick[0])
        r.outputs.add(name=pick[-1])
        expect_status(lambda: stub.ModelInfer(r, timeout=60), grpc.StatusCode.INVALID_ARGUMENT,
                      ["at most one"], "two internal tensors")
        r = image_request(m, two)
        r.outputs.add(name=pick[0]).parameters["classification"].int64_param = 3
        expect_status(lambda: stub.ModelInfer(r, timeout=60), grpc.StatusCode.INVALID_ARGUMENT,
                      ["classification does not apply"], "classification on a tensor")
    return n


def test_stream(srv, stub, imgs):
    """ModelStreamInfer: messages answered one each, in order, equal to HTTP /v2;
    a failing message answered with error_message while the stream goes on."""
    x = np.random.default_rng(11).standard_normal((2, 1, 28, 28)).astype(np.float32)
    _, fp_ref = http_fp32(srv, "gray", x)
    refs = [http_images(srv, "gray", [b])[1] for b in imgs["gray"]]
    reqs = [fp32_request("gray", x, rid="s0")]
    reqs += [image_request("gray", [b]) for b in imgs["gray"]]
    reqs.append(fp32_request("nope", x, rid="bad"))
    reqs.append(fp32_request("gray", x, typed=True, rid="s5"))
    for i, r in enumerate(reqs):
        if not r.id:
            r.id = f"s{i}"
    out = list(stub.ModelStreamInfer(iter(reqs), timeout=60))
    check(len(out) == len(reqs), f"ModelStreamInfer: {len(out)} answers for {len(reqs)}")
    want = [fp_ref] + refs + [None, fp_ref]
    for i, (o, w) in enumerate(zip(out, want)):
        if w is None:
            check(o.error_message and "nope" in o.error_message,
                  f"stream message {i}: error_message {o.error_message!r}")
            continue
        check(not o.error_message, f"stream message {i}: {o.error_message}")
        check(o.infer_response.id == reqs[i].id, f"stream message {i}: id "
              f"{o.infer_response.id!r}, order kept")
        check(output_bytes(o.infer_response) == w, f"stream message {i}: != HTTP /v2")
    # an empty stream ends OK with no answer
    check(list(stub.ModelStreamInfer(iter([]), timeout=30)) == [], "empty stream")
    return len(out)


def test_errors(srv, stub, chan):
    x = np.zeros((1, 1, 28, 28), np.float32)
    INV = grpc.StatusCode.INVALID_ARGUMENT
    expect_status(lambda: stub.ModelInfer(fp32_request("nope", x)), grpc.StatusCode.NOT_FOUND,
                  ["nope"], "unknown model")
    r = fp32_request("gray", x)
    r.model_version = "7"
    expect_status(lambda: stub.ModelInfer(r), grpc.StatusCode.NOT_FOUND, [], "unknown version")
    expect_status(lambda: stub.ModelInfer(fp32_request("gray", np.zeros((1, 1, 27, 28),
                                                                        np.float32))),
                  INV, [], "bad shape")
    r = pb2.ModelInferRequest(model_name="gray")
    r.inputs.add(name="input", datatype="INT32", shape=[1, 1, 28, 28])
    r.raw_input_contents.append(b"\0" * 28 * 28 * 4)
    expect_status(lambda: stub.ModelInfer(r), INV, ["INT32"], "bad datatype")
    r = pb2.ModelInferRequest(model_name="gray")
    r.inputs.add(name="input", datatype="FP32", shape=[1, 1, 28, 28])
    r.raw_input_contents.append(b"\0" * (28 * 28 * 4 - 4))
    expect_status(lambda: stub.ModelInfer(r), INV, [], "raw data shorter than the shape")
    r = pb2.ModelInferRequest(model_name="gray")
    r.inputs.add(name="input", datatype="FP32", shape=[1, 1, 28, 28]).contents.fp32_contents \
        .extend([0.0] * 10)
    expect_status(lambda: stub.ModelInfer(r), INV, [], "typed data count != shape")
    expect_status(lambda: stub.ModelInfer(fp32_request("gray", x, in_name="wrong")), INV,
                  ["wrong"], "unknown input name")
    expect_status(lambda: stub.ModelInfer(pb2.ModelInferRequest(model_name="gray")), INV, [],
                  "no input")
    r = fp32_request("gray", x)
    r.outputs.add(name="nope")
    expect_status(lambda: stub.ModelInfer(r), INV, ["nope"], "unknown output name")
    png = ptest.make_image(0, "png")
    expect_status(lambda: stub.ModelInfer(image_request("gray", [png, b"not an image at all"])),
                  INV, [], "bad image")
    expect_status(lambda: stub.ModelInfer(image_request("gray", [png[:len(png) // 2]])),
                  INV, [], "truncated image")
    r = image_request("gray", [png])
    r.raw_input_contents[0] = r.raw_input_contents[0][:-3]
    expect_status(lambda: stub.ModelInfer(r), INV, [], "BYTES length prefix past the data")
    # a message that is not a ModelInferRequest at all (undecodable protobuf)
    raw = chan.unary_unary(SVC + "ModelInfer", request_serializer=None,
                           response_deserializer=None)
    expect_status(lambda: raw(b"\x0a\xff\xff\xff\xff\x0f"), INV, [], "undecodable protobuf")
    # unknown methods, of this service and of another
    for path in (SVC + "ModelConfig", SVC + "Nope", "/foo.Bar/Baz"):
        m = chan.unary_unary(path, request_serializer=None, response_deserializer=None)
        expect_status(lambda: m(b""), grpc.StatusCode.UNIMPLEMENTED, [], path)
    # still serving
    check(stub.ServerLive(pb2.ServerLiveRequest()).live, "alive after errors")


def test_limits(binary, models, stub_dir):
    """max_body_bytes -> RESOURCE_EXHAUSTED; full queue -> UNAVAILABLE;
    grpc-timeout -> DEADLINE_EXCEEDED (the server's status, read from the
    trailers by the raw h2 client, and grpcio's); unsupported grpc-encoding
    -> UNIMPLEMENTED. A 1.5 s batch timeout holds requests in the queue."""
    d = models["gray"][0]
    srv = Server(binary, ["--model", d, "--workers", "1", "--max-batch", "8",
                                 "--batch-timeout-us", "1500000", "--queue-capacity", "2",
                                 "--max-body-bytes", "2000000"])
    out = {}
    with srv.session():
        png = ptest.make_image(1, "png")
        c = gk.H2(srv.grpc_port, timeout=30)
        # 1. over max_body_bytes, by the length prefix: RESOURCE_EXHAUSTED
        big = np.zeros((700, 1, 28, 28), np.float32)  # 2.2 MB
        r = c.call("ModelInfer", fp32_request("gray", big).SerializeToString())
        check(r.status == gk.RESOURCE_EXHAUSTED, f"over max_body_bytes: {r.status} "
              f"{r.message_text!r}")
        with srv.channel(**{"grpc.max_send_message_length": 8 << 20}) as ch:
            stub = pb2_grpc.GRPCInferenceServiceStub(ch)
            expect_status(lambda: stub.ModelInfer(fp32_request("gray", big)),
                          grpc.StatusCode.RESOURCE_EXHAUSTED, [], "grpcio over max_body_bytes")
        # an HTTP upload announced and left half-sent keeps every forming batch waiting its
        # full 1.5 s for it (the queue expects it), so requests surely wait in the queue
        up = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
        up.sendall(b"POST /v1/models/gray/classify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(png) + png[:10])
        # 2. 40 streams at once: a batch and the queue (capacity 2) fill, the others find it
        #    full: UNAVAILABLE; the accepted ones are answered
        sids = [c.start("ModelInfer", gk.message(image_request("gray", [png])
                                                 .SerializeToString())) for _ in range(40)]
        c.pump(lambda: all(c.calls[s].done for s in sids), timeout=60)
        st = [c.calls[s].status for s in sids]
        check(set(st) <= {gk.OK, gk.UNAVAILABLE} and st.count(gk.UNAVAILABLE) > 0 and
              st.count(gk.OK) > 0, f"a full queue: statuses {st}")
        out["queue"] = f"{st.count(gk.UNAVAILABLE)} of 40 UNAVAILABLE"
        # 3. a 200 ms deadline while the batch waits 1.5 s: DEADLINE_EXCEEDED from the server
        t0 = time.monotonic()
        r = c.call("ModelInfer", image_request("gray", [png]).SerializeToString(),
                   grpc_timeout="200m", timeout=30)
        check(r.status == gk.DEADLINE_EXCEEDED, f"grpc-timeout 200m: {r.status} "
              f"{r.message_text!r}")
        out["deadline_s"] = round(time.monotonic() - t0, 2)
        with srv.channel() as ch:
            stub = pb2_grpc.GRPCInferenceServiceStub(ch)
            expect_status(lambda: stub.ModelInfer(image_request("gray", [png]), timeout=0.2),
                          grpc.StatusCode.DEADLINE_EXCEEDED, [], "grpcio timeout=0.2")
        up.sendall(png[10:])
        reply = b""
        while True:
            d = up.recv(65536)
            if not d:
                break
            reply += d
        up.close()
        check(reply.startswith(b"HTTP/1.1 200"), f"the held upload: {reply[:100]!r}")
        with srv.channel() as ch:
            stub = pb2_grpc.GRPCInferenceServiceStub(ch)
            # a deadline long enough succeeds
            ok = stub.ModelInfer(image_request("gray", [png]), timeout=20)
            check(len(ok.outputs) == 1, "request with a 20 s deadline")
        # 4. grpc-encoding the server does not support: UNIMPLEMENTED
        body = image_request("gray", [png]).SerializeToString()
        sid = c.start("ModelInfer", gk.message(body, compressed=True),
                      extra=[("grpc-encoding", "x-unknown-codec")])
        r = c.wait(sid, 30)
        check(r.status == gk.UNIMPLEMENTED, f"grpc-encoding x-unknown-codec: {r.status}")
        # the compressed flag without any grpc-encoding is a protocol error
        sid = c.start("ModelInfer", gk.message(body, compressed=True))
        r = c.wait(sid, 30)
        check(r.status in (gk.INTERNAL, gk.UNIMPLEMENTED, gk.INVALID_ARGUMENT),
              f"compressed flag, no grpc-encoding: {r.status}")
        # grpcio with gzip: answered correctly, or refused UNIMPLEMENTED
        with srv.channel() as ch:
            stub = pb2_grpc.GRPCInferenceServiceStub(ch)
            try:
                g = stub.ModelInfer(image_request("gray", [png]), timeout=20,
                                    compression=grpc.Compression.Gzip)
                ref = stub.ModelInfer(image_request("gray", [png]), timeout=20)
                check(output_bytes(g) == output_bytes(ref), "gzip answer")
                out["gzip"] = "supported"
            except grpc.RpcError as e:
                check(e.code() == grpc.StatusCode.UNIMPLEMENTED, f"gzip: {e.code()}")
                out["gzip"] = "UNIMPLEMENTED"
        c.close()
        check(gk.server_live(srv.grpc_port) == (gk.OK, True), "alive after the limits")
        m = srv.metrics()
        check(re.search(r'resnetd_requests_total\{model="[^"]*",version="[^"]*",code="413",protocol="grpc"\} [1-9]',
                        m), "413 (RESOURCE_EXHAUSTED) counted for grpc")
        check(re.search(r'resnetd_requests_total\{model="gray",version="1",code="503",protocol="grpc"\} [1-9]',
                        m), "503 (UNAVAILABLE) counted for grpc")
        check(re.search(r'resnetd_requests_total\{model="gray",version="1",code="504",protocol="grpc"\} [1-9]',
                        m), "504 (DEADLINE_EXCEEDED) counted for grpc")
    check(srv.rc == 0, f"exit code {srv.rc}")
    return out


def grpc_requests(srv, model, code):
    return srv.metric("resnetd_requests_total", {"model": model, "code": code,
                                                 "protocol": "grpc"})


def test_metrics_log(srv, stub):
    x = np.zeros((1, 1, 28, 28), np.float32)
    ok0, bad0 = grpc_requests(srv, "gray", "200"), grpc_requests(srv, "gray", "400")
    http0 = srv.metric("resnetd_requests_total", {"model": "gray", "code": "200",
                                                  "protocol": "http"})
    for _ in range(3):
        stub.ModelInfer(fp32_request("gray", x, rid="metrics-probe"))
    expect_status(lambda: stub.ModelInfer(fp32_request("gray", np.zeros((1, 2, 28, 28),
                                                                        np.float32))),
                  grpc.StatusCode.INVALID_ARGUMENT, [], "bad shape for metrics")
    check(grpc_requests(srv, "gray", "200") - ok0 == 3, "3 OK gRPC requests counted")
    check(grpc_requests(srv, "gray", "400") - bad0 == 1, "1 INVALID_ARGUMENT counted as 400")
    check(srv.metric("resnetd_requests_total", {"model": "gray", "code": "200",
                                                "protocol": "http"}) == http0,
          "gRPC requests not counted as http")
    m = srv.metrics()
    check('resnetd_request_duration_seconds_count{model="gray",version="1",protocol="grpc"}' in m,
          "request duration histogram has the grpc protocol label")
    time.sleep(0.3)
    lines = srv.log_lines()
    acc = [o for o in lines if o.get("protocol") == "grpc" and
           o.get("path") == SVC + "ModelInfer" and o.get("model") == "gray"]
    check(len(acc) >= 4, f"access log lines for gRPC ModelInfer: {len(acc)}")
    check(any(o["status"] == 200 and o["images"] == 1 and o["method"] == "POST" for o in acc),
          f"an OK gRPC access line: {acc[:2]}")
    check(any(o["status"] == 400 for o in acc), "the INVALID_ARGUMENT access line (400)")
    check(any(o.get("protocol") == "http" and o.get("path", "").startswith("/v2/")
              for o in lines), "HTTP access lines say protocol http")


def test_full_budget(binary, models):
    """A new connection while max_inflight_bytes is all but full (an HTTP
    upload announced with a body that takes it): not reset (nghttp2's session
    starts in the connection's own base, docs/limits.md): ServerLive answers
    OK, a ModelInfer gets UNAVAILABLE naming max_inflight_bytes, and the
    budget is back to 0 when the upload goes."""
    srv = Server(binary, ["--model", models["gray"][0], "--max-inflight-bytes", "1048576",
                          "--max-body-bytes", "1048576"])
    with srv.session():
        up = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        up.sendall(b"POST /v1/models/gray/classify HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: %d\r\n\r\nabc" % (1048576 - 2048))
        t0 = time.monotonic()
        while not re.search(r"^resnetd_inflight_bytes 104652[0-9]", srv.metrics(), re.M):
            check(time.monotonic() - t0 < 30, "the upload's bytes not reserved")
            time.sleep(0.02)
        c = gk.H2(srv.grpc_port, timeout=30)
        live = c.call("ServerLive", pb2.ServerLiveRequest().SerializeToString())
        check(live.status == gk.OK and
              pb2.ServerLiveResponse.FromString(live.messages[0]).live,
              f"ServerLive on a new connection with a full budget: {live.status} {live.reset}")
        inf = c.call("ModelInfer", image_request("gray", [ptest.make_image(0, "png")])
                     .SerializeToString())
        check(inf.status == gk.UNAVAILABLE and "max_inflight_bytes" in inf.message_text,
              f"ModelInfer with a full budget: {inf.status} {inf.message_text}")
        c.close()
        up.close()
        t0 = time.monotonic()
        while not re.search(r"^resnetd_inflight_bytes 0$", srv.metrics(), re.M):
            check(time.monotonic() - t0 < 30, "the budget is not back to 0")
            time.sleep(0.02)
    check(srv.rc == 0, f"exit code {srv.rc}")


def run_api(binary, stub_dir):
    with tempfile.TemporaryDirectory(prefix="proto-grpc-") as tmp:
        models = ptest.export_models(tmp)
        imgs = test_images_of(models)
        srv = Server(binary, ["--model", models["gray"][0], "--model",
                                     models["rgb"][0], "--workers", "1"])
        with srv.session():
            with srv.channel() as ch:
                stub = pb2_grpc.GRPCInferenceServiceStub(ch)
                test_health_metadata(srv, stub, models)
                test_fp32(srv, stub, binary, models, tmp)
                n = test_images(srv, stub, binary, models, tmp, imgs)
                nt = test_taps(srv, stub, imgs)
                ns = test_stream(srv, stub, imgs)
                test_errors(srv, stub, ch)
                test_metrics_log(srv, stub)
        check(srv.rc == 0, f"exit code {srv.rc}")
        lim = test_limits(binary, models, stub_dir)
        test_full_budget(binary, models)
    print(f"grpc api ok: every RPC; {n} BYTES requests and FP32 raw/typed equal HTTP /v2 bit for "
          f"bit; {nt} requests for internal tensors equal HTTP /v2 bit for bit; "
          f"ModelStreamInfer {ns} messages; errors, metrics, access log; limits {lim}")


# ----------------------------------------------------------------- node


def node_bin():
    return os.environ.get("RESNETD_NODE") or "node"


def run_node_calls(target, calls, ca=None, parallel=False, tmp=None):
    spec = {"proto": gk.proto_path(), "target": target, "parallel": parallel, "calls": calls}
    if ca:
        spec["ca"] = ca
    sp, op = os.path.join(tmp, "node-spec.json"), os.path.join(tmp, "node-out.json")
    with open(sp, "w") as f:
        json.dump(spec, f)
    subprocess.run([node_bin(), os.path.join(HERE, "grpc_client.js"), sp, op], check=True,
                   timeout=240)
    with open(op) as f:
        return json.load(f)


def b64(b):
    return {"$b64": base64.b64encode(b).decode()}


def unb64(v):
    return base64.b64decode(v["$b64"])


def node_output_bytes(resp, i=0):
    if len(resp["raw_output_contents"]) > i:
        return unb64(resp["raw_output_contents"][i])
    o = resp["outputs"][i]
    if o["datatype"] == "FP32":
        return np.array(o["contents"]["fp32_contents"], "<f4").tobytes()
    return bytes_tensor([unb64(e) for e in o["contents"]["bytes_contents"]])


def run_node(binary, stub_dir):
    check(os.path.isdir(os.path.join(HERE, "..", "node_modules", "@grpc", "grpc-js")),
          "tests/node_modules/@grpc/grpc-js missing: npm install --ignore-scripts in tests/")
    with tempfile.TemporaryDirectory(prefix="proto-grpc-node-") as tmp:
        models = ptest.export_models(tmp)
        imgs = test_images_of(models)
        srv = Server(binary, ["--model", models["gray"][0], "--model",
                                     models["rgb"][0], "--workers", "1"])
        with srv.session():
            x = np.random.default_rng(8).standard_normal((2, 1, 28, 28)).astype(np.float32)
            _, fp_ref = http_fp32(srv, "gray", x)
            _, img_ref = http_images(srv, "rgb", imgs["rgb"])
            _, cls_ref = http_images(srv, "gray", imgs["gray"], 3, "logits")
            meta = srv.json("GET", "/v2/models/gray")[2]
            fp_in = {"name": "input", "datatype": "FP32", "shape": ["2", "1", "28", "28"]}
            calls = [
                {"method": "ServerLive"}, {"method": "ServerReady"},
                {"method": "ModelReady", "request": {"name": "rgb"}},
                {"method": "ServerMetadata"},
                {"method": "ModelMetadata", "request": {"name": "gray"}},
                {"method": "ModelInfer", "request": {"model_name": "gray", "id": "n1",
                                                     "inputs": [fp_in],
                                                     "raw_input_contents": [b64(x.tobytes())]}},
                {"method": "ModelInfer", "request": {
                    "model_name": "gray",
                    "inputs": [dict(fp_in, contents={"fp32_contents": x.ravel().tolist()})]}},
                {"method": "ModelInfer", "request": {
                    "model_name": "rgb", "inputs": [{"name": "image", "datatype": "BYTES",
                                                     "shape": ["3"]}],
                    "raw_input_contents": [b64(bytes_tensor(imgs["rgb"]))]}},
                {"method": "ModelInfer", "request": {
                    "model_name": "gray",
                    "inputs": [{"name": "image", "datatype": "BYTES", "shape": ["3", "1"],
                                "contents": {"bytes_contents": [b64(b) for b in imgs["gray"]]}}],
                    "outputs": [{"name": "logits",
                                 "parameters": {"classification": {"int64_param": "3"}}}]}},
                {"method": "ModelInfer", "request": {"model_name": "nope", "inputs": [fp_in],
                                                     "raw_input_contents": [b64(x.tobytes())]}},
                {"method": "ModelInfer", "request": {
                    "model_name": "gray", "inputs": [dict(fp_in, shape=["2", "1", "28", "27"])],
                    "raw_input_contents": [b64(x.tobytes())]}},
                {"method": "ModelInfer", "request": {
                    "model_name": "gray", "inputs": [{"name": "image", "datatype": "BYTES",
                                                      "shape": ["1"]}],
                    "raw_input_contents": [b64(bytes_tensor([b"GIF89a not supported"]))]}},
                {"method": "ModelInfer", "deadline_ms": 20000, "metadata": {"x-extra": "1"},
                 "request": {"model_name": "gray", "inputs": [fp_in],
                             "raw_input_contents": [b64(x.tobytes())]}},
            ]
            out = run_node_calls(srv.target, calls, tmp=tmp)
            codes = [o["code"] for o in out]
            check(codes == [0] * 9 + [5, 3, 3, 0], f"node status codes {codes}: {out}")
            check(out[0]["response"]["live"] and out[1]["response"]["ready"] and
                  out[2]["response"]["ready"], "node health")
            check(out[3]["response"]["name"] == "resnetd", f"node ServerMetadata {out[3]}")
            mm = out[4]["response"]
            check(mm["name"] == "gray" and mm["inputs"][0]["name"] == meta["inputs"][0]["name"] and
                  [int(v) for v in mm["inputs"][0]["shape"]] == meta["inputs"][0]["shape"],
                  f"node ModelMetadata {mm} vs {meta}")
            check(out[5]["response"]["id"] == "n1", "node id echoed")
            for i in (5, 6, 12):
                check(node_output_bytes(out[i]["response"]) == fp_ref, f"node FP32 call {i}")
            check(node_output_bytes(out[7]["response"]) == img_ref, "node BYTES rgb")
            check(node_output_bytes(out[8]["response"]) == cls_ref, "node classification")
            check("nope" in out[9]["details"], f"node NOT_FOUND message {out[9]}")
            # an unknown method through grpc-js's generic client
            s = os.path.join(tmp, "unk.js")
            with open(s, "w") as f:
                f.write("const grpc = require(%s);\n"
                        "const c = new grpc.Client(%s, grpc.credentials.createInsecure());\n"
                        "c.makeUnaryRequest('/inference.GRPCInferenceService/Nope', x => x, "
                        "x => x, Buffer.alloc(0), (e) => { console.log(e ? e.code : 0); "
                        "c.close(); });\n" % (json.dumps(os.path.join(
                            HERE, "..", "node_modules", "@grpc", "grpc-js")),
                            json.dumps(srv.target)))
            p = subprocess.run([node_bin(), s], capture_output=True, timeout=60)
            check(p.stdout.strip() == b"12", f"node unknown method: {p.stdout} {p.stderr[-500:]}")
        check(srv.rc == 0, f"exit code {srv.rc}")
    print("grpc node ok: @grpc/grpc-js: every RPC, FP32 raw/typed, BYTES, classification equal "
          "HTTP /v2; NOT_FOUND, INVALID_ARGUMENT, UNIMPLEMENTED")


# ----------------------------------------------------------------- auth, tls


def run_auth(binary, stub_dir):
    with tempfile.TemporaryDirectory(prefix="proto-grpc-auth-") as tmp:
        models = ptest.export_models(tmp)
        x = np.random.default_rng(9).standard_normal((1, 1, 28, 28)).astype(np.float32)
        srv = Server(binary, ["--model", models["gray"][0]],
                            env={"RESNETD_API_KEY": KEY})
        with srv.session():
            s, _, j, tail = test_v2.infer(srv, "gray", {
                "inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
                            "parameters": {"binary_data_size": x.nbytes}}],
                "parameters": {"binary_data_output": True}}, x.tobytes(),
                headers={"Authorization": "Bearer " + KEY})
            check(s == 200, f"HTTP with the key: {s}")
            UA = grpc.StatusCode.UNAUTHENTICATED
            with srv.channel() as ch:
                stub = pb2_grpc.GRPCInferenceServiceStub(ch)
                good = (("authorization", "Bearer " + KEY),)
                for md, what in (((), "no token"), ((("authorization", "Bearer wrong"),),
                                                      "wrong token"),
                                 ((("authorization", KEY),), "no Bearer scheme"),
                                 ((("authorization", "Basic " + KEY),), "Basic scheme")):
                    expect_status(lambda: stub.ModelInfer(fp32_request("gray", x), metadata=md),
                                  UA, [], f"ModelInfer, {what}")
                    expect_status(lambda: stub.ModelMetadata(pb2.ModelMetadataRequest(
                        name="gray"), metadata=md), UA, [], f"ModelMetadata, {what}")
                    expect_status(lambda: stub.ServerMetadata(pb2.ServerMetadataRequest(),
                                                              metadata=md),
                                  UA, [], f"ServerMetadata, {what}")
                r = stub.ModelInfer(fp32_request("gray", x), metadata=good)
                check(output_bytes(r) == tail, "ModelInfer with the key == HTTP")
                check(stub.ModelMetadata(pb2.ModelMetadataRequest(name="gray"),
                                         metadata=good).name == "gray", "metadata with the key")
                # health checks stay open, like /v2/health/*
                check(stub.ServerLive(pb2.ServerLiveRequest()).live, "ServerLive without key")
                check(stub.ServerReady(pb2.ServerReadyRequest()).ready, "ServerReady w/o key")
                # an unknown model is not revealed without the key
                expect_status(lambda: stub.ModelInfer(fp32_request("nope", x)), UA, [],
                              "unknown model without key")
            fp_in = {"name": "input", "datatype": "FP32", "shape": ["1", "1", "28", "28"]}
            req = {"model_name": "gray", "inputs": [fp_in], "raw_input_contents": [b64(x.tobytes())]}
            out = run_node_calls(srv.target, [
                {"method": "ModelInfer", "request": req},
                {"method": "ModelInfer", "request": req, "metadata": {"authorization": "Bearer x"}},
                {"method": "ModelInfer", "request": req,
                 "metadata": {"authorization": "Bearer " + KEY}}], tmp=tmp)
            check([o["code"] for o in out] == [16, 16, 0], f"node auth codes {out}")
            check(node_output_bytes(out[2]["response"]) == tail, "node with key == HTTP")
            m = srv.http_request("GET", "/metrics")[2].decode()
            check(re.search(r'code="401",protocol="grpc"\} [1-9]', m),
                  "UNAUTHENTICATED counted as 401 for grpc")
        check(srv.rc == 0, f"exit code {srv.rc}")
    print("grpc auth ok: UNAUTHENTICATED without/with a wrong bearer token (grpcio, grpc-js); "
          "the right token answers == HTTP")


def run_tls(binary, stub_dir):
    with tempfile.TemporaryDirectory(prefix="proto-grpc-tls-") as tmp:
        models = ptest.export_models(tmp)
        cert, key = make_cert(tmp)
        imgs = [ptest.make_image(i, f) for i, f in enumerate(["png", "jpg", "webp"])]
        srv = Server(binary, ["--model", models["gray"][0], "--tls-cert", cert,
                                     "--tls-key", key], scheme="https",
                            env={"RESNETD_API_KEY": KEY})
        with srv.session():
            import http.client
            ctx = ssl.create_default_context(cafile=cert)
            blob = bytes_tensor(imgs)
            hdr = json.dumps({"inputs": [{"name": "image", "shape": [3], "datatype": "BYTES",
                                          "parameters": {"binary_data_size": len(blob)}}],
                              "parameters": {"binary_data_output": True}}).encode()
            hc = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=60)
            hc.request("POST", "/v2/models/gray/infer", hdr + blob,
                       {"Inference-Header-Content-Length": str(len(hdr)),
                        "Authorization": "Bearer " + KEY})
            hr = hc.getresponse()
            body = hr.read()
            check(hr.status == 200, f"HTTPS /v2: {hr.status} {body[:200]}")
            ref = body[int(hr.getheader("Inference-Header-Content-Length")):]
            hc.close()
            with open(cert, "rb") as f:
                creds = grpc.ssl_channel_credentials(root_certificates=f.read())
            good = (("authorization", "Bearer " + KEY),)
            with grpc.secure_channel(srv.target, creds,
                                     options=[("grpc.enable_http_proxy", 0)]) as ch:
                stub = pb2_grpc.GRPCInferenceServiceStub(ch)
                check(stub.ServerLive(pb2.ServerLiveRequest(), timeout=30).live, "TLS ServerLive")
                r = stub.ModelInfer(image_request("gray", imgs), metadata=good, timeout=60)
                check(output_bytes(r) == ref, "gRPC over TLS == HTTPS /v2")
                expect_status(lambda: stub.ModelInfer(image_request("gray", imgs), timeout=60),
                              grpc.StatusCode.UNAUTHENTICATED, [], "TLS without the key")
            # our raw h2 client over TLS (ALPN h2)
            c = gk.H2(srv.grpc_port, tls=gk.tls_client_context(cert), timeout=30)
            rr = c.call("ModelInfer", image_request("gray", imgs).SerializeToString(),
                        metadata=good)
            check(rr.status == gk.OK and output_bytes(pb2.ModelInferResponse.FromString(
                rr.messages[0])) == ref, f"h2 over TLS: {rr.status}")
            c.close()
            # plaintext HTTP/2 to the TLS port is not served
            with grpc.insecure_channel(srv.target, options=[("grpc.enable_http_proxy", 0)]) as ch:
                stub = pb2_grpc.GRPCInferenceServiceStub(ch)
                try:
                    stub.ServerLive(pb2.ServerLiveRequest(), timeout=5)
                    raise AssertionError("plaintext h2c answered on the TLS gRPC port")
                except grpc.RpcError as e:
                    check(e.code() in (grpc.StatusCode.UNAVAILABLE,
                                       grpc.StatusCode.DEADLINE_EXCEEDED,
                                       grpc.StatusCode.INTERNAL), f"h2c on TLS: {e.code()}")
            out = run_node_calls(srv.target, [
                {"method": "ServerLive"},
                {"method": "ModelInfer", "metadata": {"authorization": "Bearer " + KEY},
                 "request": {"model_name": "gray",
                             "inputs": [{"name": "image", "datatype": "BYTES", "shape": ["3"]}],
                             "raw_input_contents": [b64(blob)]}}], ca=cert, tmp=tmp)
            check([o["code"] for o in out] == [0, 0], f"node over TLS {out}")
            check(node_output_bytes(out[1]["response"]) == ref, "node TLS == HTTPS")
        check(srv.rc == 0, f"exit code {srv.rc}")
    print("grpc tls ok: grpcio, grpc-js and h2 over TLS (the HTTP port's cert) == HTTPS /v2; "
          "plaintext refused")


# ----------------------------------------------------------------- concurrency


def run_concurrency(binary, stub_dir):
    with tempfile.TemporaryDirectory(prefix="proto-grpc-conc-") as tmp:
        models = ptest.export_models(tmp)
        imgs = [ptest.make_image(i, ["png", "jpg", "webp"][i % 3]) for i in range(8)]
        srv = Server(binary, ["--model", models["gray"][0], "--workers", "1",
                                     "--queue-capacity", "1024"])
        with srv.session():
            refs = [http_images(srv, "gray", [b])[1] for b in imgs]
            # 64 streams on ONE connection, all opened before any answer is read
            c = gk.H2(srv.grpc_port, timeout=120)
            sids = []
            for i in range(64):
                sids.append(c.start("ModelInfer", gk.message(
                    image_request("gray", [imgs[i % 8]]).SerializeToString())))
            c.pump(lambda: all(c.calls[s].done for s in sids), timeout=120)
            bad = [i for i, s in enumerate(sids)
                   if c.calls[s].status != gk.OK or output_bytes(pb2.ModelInferResponse
                                                                 .FromString(c.calls[s]
                                                                             .messages[0]))
                   != refs[i % 8]]
            check(not bad, f"64 streams on one connection: wrong answers {bad[:5]} "
                  f"{[(c.calls[sids[i]].status, c.calls[sids[i]].reset) for i in bad[:5]]}")
            c.close()
            # grpcio: 64 calls in flight on one channel
            with srv.channel() as ch:
                stub = pb2_grpc.GRPCInferenceServiceStub(ch)
                futs = [stub.ModelInfer.future(image_request("gray", [imgs[i % 8]]), timeout=120)
                        for i in range(64)]
                got = [output_bytes(f.result()) for f in futs]
                check(got == [refs[i % 8] for i in range(64)], "grpcio 64 futures")
            # 16 connections (own subchannels), 8 calls each, at once
            errs, lock = [], threading.Lock()
            barrier = threading.Barrier(16)

            def conn_worker(k):
                try:
                    with srv.channel(**{"grpc.use_local_subchannel_pool": 1}) as ch:
                        stub = pb2_grpc.GRPCInferenceServiceStub(ch)
                        grpc.channel_ready_future(ch).result(timeout=60)
                        barrier.wait(timeout=60)
                        fs = [stub.ModelInfer.future(image_request("gray", [imgs[(k + i) % 8]]),
                                                     timeout=120) for i in range(8)]
                        for i, f in enumerate(fs):
                            if output_bytes(f.result()) != refs[(k + i) % 8]:
                                raise AssertionError(f"connection {k} call {i}: wrong answer")
                except Exception as e:  # noqa: BLE001 - reported below
                    with lock:
                        errs.append(f"{k}: {e!r}")
            ts = [threading.Thread(target=conn_worker, args=(k,)) for k in range(16)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            check(not errs, f"16 connections: {errs[:3]}")
            # mixed: gRPC and HTTP together land in the same batches and agree
            n = grpc_requests(srv, "gray", "200")
            check(n >= 64 + 64 + 128, f"grpc OK requests counted: {n}")
        check(srv.rc == 0, f"exit code {srv.rc}")
    print("grpc concurrency ok: 64 streams on one connection (h2 and grpcio), 16 connections "
          "x 8 calls; every answer == HTTP /v2")


# ----------------------------------------------------------------- drain


def run_drain(binary, stub_dir):
    """Batches wait 5 s to fill: the streams are surely in flight at SIGTERM,
    and the drain must flush them at once; one whose message is still arriving
    at SIGTERM is answered too. New streams are refused (UNAVAILABLE or
    REFUSED_STREAM, or by the GOAWAY alone when they reach the server after
    it), past the GOAWAY's last-stream-id, and the server exits 0."""
    with tempfile.TemporaryDirectory(prefix="proto-grpc-drain-") as tmp:
        models = ptest.export_models(tmp)
        imgs = [ptest.make_image(i, "png") for i in range(4)]
        srv = Server(binary, ["--model", models["gray"][0], "--workers", "1",
                                     "--max-batch", "16", "--batch-timeout-us", "5000000",
                                     "--queue-capacity", "256", "--drain-timeout-ms", "20000"])
        try:
            refs = []
            # references from a batch of one each (the HTTP route, before the test)
            for b in imgs:
                s, _, j, tail = test_v2.infer(srv, "gray", {
                    "inputs": [{"name": "i", "shape": [1], "datatype": "BYTES",
                                "data": [base64.b64encode(b).decode()]}]})
                check(s == 200, f"reference {s}")
                refs.append(np.array(j["outputs"][0]["data"], np.float32))
            # an announced HTTP upload left half-sent: the forming batch waits for it (5 s)
            hold = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
            hold_body = imgs[2]
            hold.sendall(b"POST /v1/models/gray/classify HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(hold_body) +
                         hold_body[:10])
            c = gk.H2(srv.grpc_port, timeout=60)
            sids = [c.start("ModelInfer", gk.message(image_request("gray", [imgs[i % 4]])
                                                     .SerializeToString())) for i in range(8)]
            # one stream still uploading its message at SIGTERM
            up_body = gk.message(image_request("gray", [imgs[1]]).SerializeToString())
            half = len(up_body) // 2
            up = c.start("ModelInfer", up_body[:half], end=False)
            ch = srv.channel()
            stub = pb2_grpc.GRPCInferenceServiceStub(ch)
            futs = [stub.ModelInfer.future(image_request("gray", [imgs[i % 4]]), timeout=60)
                    for i in range(4)]
            deadline = time.monotonic() + 10
            inflight = 0
            while time.monotonic() < deadline:
                m = srv.metrics()
                inflight = int(re.search(r"^resnetd_inflight_requests (\d+)", m, re.M).group(1))
                if inflight >= 14:
                    break
                time.sleep(0.02)
            print(f"drain: {inflight} requests in flight at SIGTERM")
            check(not any(c.calls[s].done for s in sids) and not any(f.done() for f in futs),
                  "streams finished before SIGTERM: the batch did not wait")
            t0 = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            for _ in range(200):
                if srv.http_request("GET", "/readyz")[0] == 503:
                    break
                time.sleep(0.01)
            # a new stream on the open connection is refused
            late = c.start("ModelInfer", gk.message(image_request("gray", [imgs[0]])
                                                    .SerializeToString()))
            c.send_data(up, up_body[half:], end=True)
            hold.sendall(hold_body[10:])
            # the late stream is refused by a RST_STREAM or UNAVAILABLE, or, when its
            # HEADERS reach the server after its GOAWAY, by that GOAWAY alone: a stream
            # past the last-stream-id was not processed and gets no frame of its own
            # (RFC 9113 section 6.8); the server may then close the connection
            def late_refused():
                lc = c.calls[late]
                return lc.done or (c.goaway is not None and c.goaway[1] < late)
            c.pump(lambda: all(c.calls[s].done for s in sids + [up]) and late_refused(),
                   timeout=60)
            lc = c.calls[late]
            check(lc.status == gk.UNAVAILABLE or lc.reset is not None or
                  (not lc.done and c.goaway[1] < late),
                  f"a new stream while draining: status {lc.status} reset {lc.reset}")
            # GOAWAY names the last stream that began before the drain: the one
            # uploading at SIGTERM is in, the one opened after is past it
            c.pump(lambda: c.goaway is not None, timeout=10)
            check(c.goaway[0] == 0 and up <= c.goaway[1] < late,
                  f"GOAWAY (error, last-stream-id) {c.goaway}: want NO_ERROR and "
                  f"{up} <= id < {late}")
            for i, s in enumerate(sids):
                cl = c.calls[s]
                check(cl.status == gk.OK, f"in-flight stream {i}: {cl.status} {cl.reset} "
                      f"{cl.message_text}")
                got = np.frombuffer(output_bytes(pb2.ModelInferResponse.FromString(
                    cl.messages[0])), "<f4")
                check(np.abs(got - refs[i % 4]).max() < 1e-5, f"in-flight stream {i} answer")
            # a stream whose message was still arriving at SIGTERM began before the
            # drain: it is answered, as HTTP answers such an accepted upload (test_v2 drain)
            uc = c.calls[up]
            check(uc.status == gk.OK,
                  f"the stream uploading at SIGTERM: {uc.status} {uc.reset} {uc.message_text}")
            got = np.frombuffer(output_bytes(pb2.ModelInferResponse.FromString(
                uc.messages[0])), "<f4")
            check(np.abs(got - refs[1]).max() < 1e-5, "the uploading stream's answer")
            for i, f in enumerate(futs):
                got = np.frombuffer(output_bytes(f.result()), "<f4")
                check(np.abs(got - refs[i % 4]).max() < 1e-5, f"grpcio in-flight call {i}")
            reply = b""
            while True:
                d = hold.recv(65536)
                if not d:
                    break
                reply += d
            hold.close()
            check(reply.startswith(b"HTTP/1.1 200"), f"the held HTTP upload: {reply[:100]!r}")
            # a new connection is refused too (closed, or UNAVAILABLE)
            st, live = gk.server_live(srv.grpc_port, timeout=3)
            r2 = None
            try:
                c2 = gk.H2(srv.grpc_port, timeout=5)
                r2 = c2.call("ModelInfer", image_request("gray", [imgs[0]]).SerializeToString(),
                             timeout=5)
                c2.close()
            except (OSError, EOFError):
                pass
            check(r2 is None or r2.status == gk.UNAVAILABLE or r2.reset is not None,
                  f"ModelInfer on a new connection while draining: {r2 and r2.status}")
            c.close()
            ch.close()
            rc = srv.proc.wait(timeout=50)
            elapsed = time.monotonic() - t0
            check(rc == 0, f"exit code {rc}")
            check(elapsed < 20, f"drain took {elapsed:.1f} s")
        except Exception:
            sys.stderr.write(srv.logs().decode(errors="replace")[-3000:])
            raise
        finally:
            srv.stop()
            srv.cleanup()
    print(f"grpc drain ok: 13 streams in flight at SIGTERM (one still uploading) finished OK, "
          f"new streams refused, "
          f"exit 0 after {elapsed:.2f} s")


def main():
    global pb2, pb2_grpc
    binary = os.path.abspath(sys.argv[1])
    mode = sys.argv[2]
    stub_dir = sys.argv[3] if len(sys.argv) > 3 else None
    pb2, pb2_grpc = gk.stubs(stub_dir)
    {"api": run_api, "node": run_node, "auth": run_auth, "tls": run_tls,
     "concurrency": run_concurrency, "drain": run_drain}[mode](binary, stub_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
