"""protocols_grpc: the gRPC port (server/grpc/, docs/grpc.md) with a real client,
python3-grpcio, whose stubs are generated here from server/grpc/grpc_service.proto
by grpc_tools (python3-grpc-tools). Against a real `resnetd serve`:

  * ServerLive / ServerReady / ServerMetadata / ModelMetadata / ModelReady;
    ModelMetadata says what GET /v2/models/{m} says, ModelStatistics what
    /metrics says;
  * ModelInfer: BYTES images (PNG, JPEG, WebP; raw_input_contents and
    contents.bytes_contents) and FP32 tensors (raw and fp32_contents): the
    raw output bytes equal the HTTP /v2 route's binary output for the same
    input, and the images' logits are torch + torchvision/PIL's (< 2e-3, as
    protocols_v2); classification strings equal the HTTP route's; id echoed;
  * grpc-timeout 0n: DEADLINE_EXCEEDED (the worker drops the image); not gRPC
    (content-type, method): HTTP 415 / 405 (python3-h2 for these);
  * ModelStreamInfer: one answer per message, in order, equal to ModelInfer's;
  * errors: NOT_FOUND, INVALID_ARGUMENT (with the HTTP route's message for the
    same bad shape), UNIMPLEMENTED (unknown method, a gzip
    message), UNAUTHENTICATED (api_key), RESOURCE_EXHAUSTED (max_body_bytes);
  * the protocol label on resnetd_requests_total and the access log;
  * gRPC and HTTP requests batched together (one batch of 8 from 4 + 4);
  * TLS with ALPN h2 (a self-signed certificate made here);
  * a clean exit (SIGTERM drain) every time, and a drain with a ModelInfer
    queued: answered OK, a new one refused UNAVAILABLE.

usage: test_grpc.py RESNETD_BINARY"""

import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptest  # noqa: E402
from ptest import check  # noqa: E402

import grpc  # noqa: E402  (python3-grpcio)

SRC = ptest.SRC
PROTO_DIR = os.path.join(SRC, "server", "grpc")


def stubs(tmp):
    """grpc_service_pb2 and _pb2_grpc generated from our .proto into tmp."""
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}",
                    f"--python_out={tmp}", f"--grpc_python_out={tmp}", "grpc_service.proto"],
                   check=True)
    sys.path.insert(0, tmp)
    import grpc_service_pb2 as pb  # noqa: E402
    import grpc_service_pb2_grpc as pbg  # noqa: E402
    return pb, pbg


def expect_code(fn, code, words=()):
    try:
        fn()
    except grpc.RpcError as e:
        check(e.code() == code, f"expected {code}, got {e.code()} {e.details()!r}")
        for w in words:
            check(w in (e.details() or ""), f"{w!r} not in {e.details()!r}")
        return e.details()
    raise AssertionError(f"expected {code}, the call succeeded")


def http_v2_binary(srv, model, inp_name, datatype, shape, data, classification=0):
    """The HTTP route's answer for the same input, outputs as binary data:
    (json header, binary tail)."""
    out = {"name": "logits" if model == "gray" else "scores",
           "parameters": {"binary_data": True}}
    if classification:
        out["parameters"]["classification"] = classification
    js = json.dumps({"inputs": [{"name": inp_name, "datatype": datatype, "shape": shape,
                                 "parameters": {"binary_data_size": len(data)}}],
                     "outputs": [out]}).encode()
    s, h, body = srv.request("POST", f"/v2/models/{model}/infer", js + data,
                             {"Inference-Header-Content-Length": str(len(js)),
                              "Content-Type": "application/octet-stream"})
    check(s == 200, f"HTTP v2 {model}: {s} {body[:300]!r}")
    hl = int(h["inference-header-content-length"])
    return json.loads(body[:hl]), body[hl:]


def bytes_elems(imgs):
    return b"".join(struct.pack("<I", len(b)) + b for b in imgs)


def test_control(pb, st, srv):
    check(st.ServerLive(pb.ServerLiveRequest()).live is True, "live")
    check(st.ServerReady(pb.ServerReadyRequest()).ready is True, "ready")
    md = st.ServerMetadata(pb.ServerMetadataRequest())
    check(md.name == "resnetd" and md.version and "classification" in md.extensions, md)
    for name in ("gray", "rgb"):
        m = st.ModelMetadata(pb.ModelMetadataRequest(name=name))
        s, _, j = srv.json("GET", f"/v2/models/{name}")
        check(s == 200, f"GET /v2/models/{name}: {s}")
        check(m.name == j["name"] and list(m.versions) == j["versions"] and
              m.platform == j["platform"], f"{m} vs {j}")
        for got, want in ((m.inputs, j["inputs"]), (m.outputs, j["outputs"])):
            check([(t.name, t.datatype, list(t.shape)) for t in got] ==
                  [(t["name"], t["datatype"], t["shape"]) for t in want], f"{got} vs {want}")
        check(st.ModelReady(pb.ModelReadyRequest(name=name, version="1")).ready is True, name)
    expect_code(lambda: st.ModelReady(pb.ModelReadyRequest(name="nope")),
                grpc.StatusCode.NOT_FOUND, ["nope"])
    expect_code(lambda: st.ModelMetadata(pb.ModelMetadataRequest(name="gray", version="7")),
                grpc.StatusCode.NOT_FOUND, ["version"])


def infer_req(pb, model, inp_name, datatype, shape, raw=None, fp32=None, bytes_=None,
              out_name=None, classification=0, rid=""):
    r = pb.ModelInferRequest(model_name=model, id=rid)
    t = r.inputs.add()
    t.name, t.datatype = inp_name, datatype
    t.shape.extend(shape)
    if raw is not None:
        r.raw_input_contents.append(raw)
    if fp32 is not None:
        t.contents.fp32_contents.extend(fp32)
    if bytes_ is not None:
        t.contents.bytes_contents.extend(bytes_)
    if out_name:
        o = r.outputs.add()
        o.name = out_name
        if classification:
            o.parameters["classification"].int64_param = classification
    return r


def test_infer(pb, st, srv, models):
    n = 0
    for name, inp_name, out_name in (("gray", "input", "logits"),
                                     ("rgb", "pixel_values", "scores")):
        _, net, inp = models[name]
        imgs = [ptest.make_image(i, f) for i, f in enumerate(["png", "jpg", "webp"])]
        # BYTES in raw_input_contents
        r = st.ModelInfer(infer_req(pb, name, inp_name, "BYTES", [3], raw=bytes_elems(imgs),
                                    rid=f"grpc-{name}"))
        check(r.id == f"grpc-{name}" and r.model_name == name and r.model_version == "1", r)
        o = r.outputs[0]
        classes = o.shape[1]
        check(o.name == out_name and o.datatype == "FP32" and list(o.shape) == [3, classes], o)
        _, tail = http_v2_binary(srv, name, inp_name, "BYTES", [3], bytes_elems(imgs))
        check(r.raw_output_contents[0] == tail, f"{name}: gRPC output bytes != HTTP v2 binary")
        y = np.frombuffer(r.raw_output_contents[0], "<f4").reshape(3, classes)
        for i, b in enumerate(imgs):
            t = ptest.torch_reference(net, inp, b)
            check(np.abs(y[i] - t).max() < 2e-3, f"{name} image {i}: gRPC vs torch "
                  f"{np.abs(y[i] - t).max()}")
        # BYTES in contents.bytes_contents: the same answer
        r2 = st.ModelInfer(infer_req(pb, name, inp_name, "BYTES", [3, 1], bytes_=imgs))
        check(r2.raw_output_contents[0] == r.raw_output_contents[0], f"{name}: bytes_contents")
        # classification: the HTTP route's strings
        k = 3
        r3 = st.ModelInfer(infer_req(pb, name, inp_name, "BYTES", [3], raw=bytes_elems(imgs),
                                     out_name=out_name, classification=k))
        o3 = r3.outputs[0]
        check(o3.datatype == "BYTES" and list(o3.shape) == [3, k], o3)
        j, tail = http_v2_binary(srv, name, inp_name, "BYTES", [3], bytes_elems(imgs), k)
        check(r3.raw_output_contents[0] == tail, f"{name}: classification bytes != HTTP's")
        raw, strs = r3.raw_output_contents[0], []
        while raw:
            ln = struct.unpack("<I", raw[:4])[0]
            strs.append(raw[4:4 + ln].decode())
            raw = raw[4 + ln:]
        check(len(strs) == 3 * k and int(strs[0].split(":")[1]) == int(np.argmax(y[0])), strs)
        # FP32: raw and fp32_contents, [2, C, H, W]
        info = srv.json("GET", f"/v2/models/{name}")[2]["inputs"][0]["shape"]
        shape = [2] + info[1:]
        x = np.random.default_rng(5).standard_normal(shape).astype("<f4")
        r4 = st.ModelInfer(infer_req(pb, name, inp_name, "FP32", shape, raw=x.tobytes()))
        _, tail = http_v2_binary(srv, name, inp_name, "FP32", shape, x.tobytes())
        check(r4.raw_output_contents[0] == tail, f"{name}: FP32 gRPC output != HTTP v2")
        r5 = st.ModelInfer(infer_req(pb, name, inp_name, "FP32", shape, fp32=x.ravel().tolist()))
        check(r5.raw_output_contents[0] == tail, f"{name}: fp32_contents output != HTTP v2")
        n += 5
    return n


def test_stream(pb, st):
    """ModelStreamInfer: one answer per request message, in order, each what
    ModelInfer answers (an error as error_message; the stream goes on)."""
    img = ptest.make_image(4, "png")
    good = infer_req(pb, "gray", "input", "BYTES", [1], raw=bytes_elems([img]), rid="s1")
    bad = infer_req(pb, "nope", "input", "BYTES", [1], raw=bytes_elems([img]), rid="s2")
    cls = infer_req(pb, "gray", "input", "BYTES", [1], raw=bytes_elems([img]), out_name="logits",
                    classification=2, rid="s3")
    want = st.ModelInfer(good).raw_output_contents[0]
    want_cls = st.ModelInfer(cls).raw_output_contents[0]
    got = list(st.ModelStreamInfer(iter([good, bad, cls, good]), timeout=60))
    check(len(got) == 4, f"{len(got)} answers for 4 messages")
    check(got[0].error_message == "" and got[0].infer_response.id == "s1" and
          got[0].infer_response.raw_output_contents[0] == want, got[0])
    check("nope" in got[1].error_message and not got[1].HasField("infer_response"), got[1])
    check(got[2].infer_response.raw_output_contents[0] == want_cls, got[2])
    check(got[3].infer_response.raw_output_contents[0] == want, got[3])
    check(list(st.ModelStreamInfer(iter([]), timeout=30)) == [], "an empty stream")


def test_errors(pb, st, srv, channel):
    bad = [1, 1, 27, 28]
    d = expect_code(lambda: st.ModelInfer(infer_req(pb, "gray", "input", "FP32", bad,
                                                    raw=b"\0" * 4 * 27 * 28)),
                    grpc.StatusCode.INVALID_ARGUMENT, ["shape"])
    js = json.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": bad,
                                 "parameters": {"binary_data_size": 4 * 27 * 28}}]}).encode()
    s, _, body = srv.request("POST", "/v2/models/gray/infer", js + b"\0" * 4 * 27 * 28,
                             {"Inference-Header-Content-Length": str(len(js))})
    check(s == 400 and json.loads(body)["error"] == d, f"HTTP {s} {body!r} vs gRPC {d!r}")
    expect_code(lambda: st.ModelInfer(infer_req(pb, "gray", "input", "BYTES", [1],
                                                raw=bytes_elems([b"not an image at all"]))),
                grpc.StatusCode.INVALID_ARGUMENT, ["element 0"])
    expect_code(lambda: st.ModelInfer(infer_req(pb, "nope", "input", "FP32", [1])),
                grpc.StatusCode.NOT_FOUND, ["nope"])
    expect_code(lambda: st.ModelInfer(infer_req(pb, "gray", "input", "INT8", [1], raw=b"\0")),
                grpc.StatusCode.INVALID_ARGUMENT, ["INT8"])
    idx = st.RepositoryIndex(pb.RepositoryIndexRequest(ready=True))
    check(sorted((m.name, m.version, m.state) for m in idx.models) ==
          sorted((m, "1", "READY") for m in {x.name for x in idx.models}) and
          "gray" in {m.name for m in idx.models}, f"RepositoryIndex {idx}")
    # model control is disabled in the default mode (none), as Triton's
    expect_code(lambda: st.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="gray")),
                grpc.StatusCode.INVALID_ARGUMENT, ["disabled"])
    nope = channel.unary_unary("/inference.GRPCInferenceService/Nope",
                               request_serializer=lambda b: b, response_deserializer=lambda b: b)
    expect_code(lambda: nope(b""), grpc.StatusCode.UNIMPLEMENTED, ["Nope"])
    expect_code(lambda: st.ModelReady(pb.ModelReadyRequest(name="gray" * 100),
                                      compression=grpc.Compression.Gzip),
                grpc.StatusCode.UNIMPLEMENTED, ["compressed"])
    # the server still answers after every error
    check(st.ServerLive(pb.ServerLiveRequest()).live, "live after errors")


def raw_call(port, path, body, headers=(), method="POST", ctype="application/grpc"):
    """One request with python3-h2 on a fresh plaintext connection, for what a
    gRPC library will not send (grpc-timeout 0, a wrong content-type, GET):
    (response headers, DATA bytes, trailers) as dicts / bytes."""
    import socket
    import h2.config
    import h2.connection
    import h2.events
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    c.send_headers(1, [(":method", method), (":scheme", "http"), (":path", path),
                       (":authority", "127.0.0.1"), ("content-type", ctype),
                       ("te", "trailers")] + list(headers))
    c.send_data(1, struct.pack(">BI", 0, len(body)) + body, end_stream=True)
    sock.sendall(c.data_to_send())
    hdrs, data, trailers, done = {}, b"", {}, False
    while not done:
        chunk = sock.recv(65536)
        if not chunk:
            break
        for ev in c.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived):
                hdrs = {k.decode(): v.decode() for k, v in ev.headers}
            elif isinstance(ev, h2.events.DataReceived):
                data += ev.data
                c.acknowledge_received_data(ev.flow_controlled_length, 1)
            elif isinstance(ev, h2.events.TrailersReceived):
                trailers = {k.decode(): v.decode() for k, v in ev.headers}
            if isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        sock.sendall(c.data_to_send())
    sock.close()
    return hdrs, data, trailers


def test_raw(pb, srv):
    """A deadline already passed (grpc-timeout 0n): DEADLINE_EXCEEDED from the
    worker, which drops the image before inference; not gRPC: HTTP 415/405."""
    img = ptest.make_image(3, "png")
    msg = infer_req(pb, "gray", "input", "BYTES", [1], raw=bytes_elems([img])).SerializeToString()
    path = "/inference.GRPCInferenceService/ModelInfer"
    before = srv.metric("resnetd_rejected_total", {"reason": "deadline"})
    h, _, tr = raw_call(srv.grpc_port, path, msg, [("grpc-timeout", "0n")])
    st = {**h, **tr}
    check(st.get("grpc-status") == "4" and "deadline" in st.get("grpc-message", ""), st)
    check(srv.metric("resnetd_rejected_total", {"reason": "deadline"}) == before + 1,
          "dropped by the worker (rejected deadline)")
    h, data, tr = raw_call(srv.grpc_port, path, msg, [("grpc-timeout", "20S")])
    check(tr.get("grpc-status") == "0" and len(data) > 5, f"{h} {tr}")
    h, _, _ = raw_call(srv.grpc_port, path, msg, ctype="application/json")
    check(h.get(":status") == "415", h)
    h, _, _ = raw_call(srv.grpc_port, path, msg, method="PUT")
    check(h.get(":status") == "405", h)


def test_statistics(pb, st, srv):
    """ModelStatistics says what /metrics says (no traffic in between)."""
    r = st.ModelStatistics(pb.ModelStatisticsRequest(name="gray"))
    check(len(r.model_stats) == 1, r)
    g = r.model_stats[0]
    check(g.name == "gray" and g.version == "1", g)
    check(g.inference_count == srv.metric("resnetd_images_total", {"model": "gray"}) > 0,
          f"inference_count {g.inference_count}")
    check(g.execution_count == srv.metric("resnetd_inference_duration_seconds_count",
                                          {"model": "gray"}) > 0, f"{g.execution_count}")
    check(g.inference_stats.queue.count == srv.metric("resnetd_queue_duration_seconds_count",
                                                      {"model": "gray"}), g.inference_stats)
    check(g.inference_stats.success.count >= 5 and g.inference_stats.compute_infer.ns > 0,
          g.inference_stats)
    r = st.ModelStatistics(pb.ModelStatisticsRequest())
    check(sorted(m.name for m in r.model_stats) == ["gray", "rgb"], r)
    expect_code(lambda: st.ModelStatistics(pb.ModelStatisticsRequest(name="nope")),
                grpc.StatusCode.NOT_FOUND)


def test_metrics_log(srv, n_ok):
    ok = srv.metric("resnetd_requests_total", {"code": "200", "protocol": "grpc"})
    check(ok >= n_ok, f"grpc 200s counted: {ok} < {n_ok}")
    check(srv.metric("resnetd_requests_total", {"model": "gray", "code": "404",
                                                "protocol": "grpc"}) == 0, "404 has no model")
    check(srv.metric("resnetd_requests_total", {"code": "404", "protocol": "grpc"}) >= 1, "404")
    check(srv.metric("resnetd_request_duration_seconds_count",
                     {"model": "gray", "protocol": "grpc"}) >= 5, "grpc duration histogram")
    lines = [x for x in srv.log_lines() if x.get("protocol") == "grpc"]
    infer = [x for x in lines if x["path"].endswith("/ModelInfer") and x["status"] == 200]
    check(len(infer) >= 10 and all(x["method"] == "POST" and x["model"] in ("gray", "rgb")
                                   for x in infer), infer[:3])
    check(any(x["images"] == 3 for x in infer), "images in the access log")
    http = [x for x in srv.log_lines() if x.get("path", "").startswith("/v2/")]
    check(http and all(x["protocol"] == "http" for x in http), "HTTP lines say protocol http")


def test_auth_limits(binary, models, pb, pbg):
    srv = ptest.Server(binary, ["--model", models["gray"][0], "--api-key", "s3cret",
                                "--max-body-bytes", "100"])
    with srv.session():
        ch = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}")
        st = pbg.GRPCInferenceServiceStub(ch)
        check(st.ServerLive(pb.ServerLiveRequest()).live, "ServerLive is open")
        expect_code(lambda: st.ModelMetadata(pb.ModelMetadataRequest(name="gray")),
                    grpc.StatusCode.UNAUTHENTICATED, ["authorization"])
        expect_code(lambda: st.ModelMetadata(pb.ModelMetadataRequest(name="gray"),
                                             metadata=[("authorization", "Bearer wrong")]),
                    grpc.StatusCode.UNAUTHENTICATED)
        key = [("authorization", "Bearer s3cret")]
        check(st.ModelMetadata(pb.ModelMetadataRequest(name="gray"), metadata=key).name == "gray",
              "with the key")
        img = ptest.make_image(1, "png")
        check(len(img) > 100, f"the test image ({len(img)} bytes) is over max_body_bytes")
        expect_code(lambda: st.ModelInfer(infer_req(pb, "gray", "input", "BYTES", [1],
                                                    raw=bytes_elems([img])), metadata=key),
                    grpc.StatusCode.RESOURCE_EXHAUSTED, ["max_body_bytes"])
        ch.close()
    check(srv.rc == 0, f"exit code {srv.rc}")


def test_tls(binary, models, pb, pbg, tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    srv = ptest.resnetd_serve.Server(binary, ["--model", models["gray"][0], "--tls-cert", cert,
                                              "--tls-key", key], scheme="https", prefix="ptest-")
    try:
        creds = grpc.ssl_channel_credentials(open(cert, "rb").read())
        ch = grpc.secure_channel(f"127.0.0.1:{srv.grpc_port}", creds,
                                 options=[("grpc.ssl_target_name_override", "localhost")])
        st = pbg.GRPCInferenceServiceStub(ch)
        check(st.ServerLive(pb.ServerLiveRequest(), timeout=30).live, "TLS ServerLive")
        import time
        for _ in range(600):  # no HTTP readiness probe on an HTTPS server: ask ServerReady
            if st.ServerReady(pb.ServerReadyRequest(), timeout=30).ready:
                break
            time.sleep(0.1)
        img = ptest.make_image(2, "png")
        r = st.ModelInfer(infer_req(pb, "gray", "input", "BYTES", [1], raw=bytes_elems([img])),
                          timeout=30)
        check(len(r.raw_output_contents[0]) == 40, "TLS ModelInfer")
        ch.close()
        # plaintext HTTP/2 on the TLS port is refused, not served
        plain = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}")
        expect_code(lambda: pbg.GRPCInferenceServiceStub(plain).ServerLive(
            pb.ServerLiveRequest(), timeout=5), grpc.StatusCode.UNAVAILABLE)
        plain.close()
        rc = srv.stop()
    finally:
        srv.cleanup()
    check(rc == 0, f"exit code {rc}")


def test_drain(binary, models, pb, pbg):
    """SIGTERM while a ModelInfer's image waits in the queue: it is answered
    OK, a new ModelInfer is refused (UNAVAILABLE), the server exits 0. The
    image is made to wait by an HTTP upload held half-sent (announced to the
    queue, queue_expect) and a 10 s batch timeout; the test waits for
    resnetd_queue_depth to show it, so nothing depends on timing."""
    import signal
    import socket
    import time
    srv = ptest.Server(binary, ["--model", models["gray"][0], "--batch-timeout-us", "10000000"])
    with srv.session():
        ch = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}")
        st = pbg.GRPCInferenceServiceStub(ch)
        held = b'{"inputs": []}'
        up = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
        up.sendall(b"POST /v2/models/gray/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                   b"\r\n" % len(held) + held[:5])
        img = ptest.make_image(5, "png")
        fut = st.ModelInfer.future(infer_req(pb, "gray", "input", "BYTES", [1],
                                             raw=bytes_elems([img])), timeout=120)
        while srv.metric("resnetd_queue_depth", {"model": "gray"}) < 1:
            check(not fut.done(), f"answered before it was queued: {fut}")
            time.sleep(0.01)
        srv.proc.send_signal(signal.SIGTERM)
        while not srv.log_lines("draining") and srv.alive():
            time.sleep(0.01)
        # refused: UNAVAILABLE "draining" from the gate, or REFUSED_STREAM after GOAWAY
        expect_code(lambda: st.ModelInfer(infer_req(pb, "gray", "input", "BYTES", [1],
                                                    raw=bytes_elems([img])), timeout=30),
                    grpc.StatusCode.UNAVAILABLE)
        r = fut.result()
        check(list(r.outputs[0].shape) == [1, 10] and len(r.raw_output_contents[0]) == 40,
              f"the call accepted before SIGTERM is answered: {r.outputs}")
        up.sendall(held[5:])  # the held upload was accepted too: it is answered (no inputs)
        reply = up.recv(65536)
        up.close()
        check(reply.startswith(b"HTTP/1.1 400"), f"the held upload: {reply[:80]!r}")
        ch.close()
    check(srv.rc == 0, f"exit code {srv.rc}")


def test_mixed_batching(binary, models, pb, pbg):
    """4 gRPC and 4 HTTP v2 requests of one image each meet in the model's
    one queue and run as ONE batch of 8: an HTTP upload held half-sent keeps
    the forming batch waiting (queue_expect), max_batch 8 closes it as soon
    as the 8 images are queued (the 10 s batch timeout never decides)."""
    import socket
    import threading
    _, net, inp = models["gray"]
    srv = ptest.Server(binary, ["--model", models["gray"][0], "--workers", "1", "--max-batch", "8",
                                "--batch-timeout-us", "10000000"])
    with srv.session():
        b0 = srv.metric("resnetd_batch_size_count", {"model": "gray"})
        s0 = srv.metric("resnetd_batch_size_sum", {"model": "gray"})
        held = b'{"inputs": []}'
        up = socket.create_connection(("127.0.0.1", srv.port), timeout=120)
        up.sendall(b"POST /v2/models/gray/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                   b"\r\n" % len(held) + held[:5])
        imgs = [ptest.make_image(30 + i, "png") for i in range(8)]
        ch = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}")
        st = pbg.GRPCInferenceServiceStub(ch)
        out, errs = [None] * 8, []
        barrier = threading.Barrier(8)

        def run(i):
            try:
                barrier.wait()
                if i % 2 == 0:
                    r = st.ModelInfer(infer_req(pb, "gray", "input", "BYTES", [1],
                                                raw=bytes_elems([imgs[i]])), timeout=120)
                    out[i] = r.raw_output_contents[0]
                else:
                    out[i] = http_v2_binary(srv, "gray", "input", "BYTES", [1],
                                            bytes_elems([imgs[i]]))[1]
            except Exception as e:  # reported below
                errs.append(repr(e))
        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(not errs, f"mixed requests failed: {errs}")
        for i, o in enumerate(out):
            y = np.frombuffer(o, "<f4")
            t = ptest.torch_reference(net, inp, imgs[i])
            check(np.abs(y - t).max() < 2e-3, f"request {i} vs torch: {np.abs(y - t).max()}")
        batches = srv.metric("resnetd_batch_size_count", {"model": "gray"}) - b0
        images = srv.metric("resnetd_batch_size_sum", {"model": "gray"}) - s0
        check(batches == 1 and images == 8, f"4 gRPC + 4 HTTP requests ran in {batches} batches "
              f"of {images} images (expected one of 8)")
        up.sendall(held[5:])
        reply = up.recv(65536)
        up.close()
        check(reply.startswith(b"HTTP/1.1 400"), f"the held upload (no inputs): {reply[:80]!r}")
        ch.close()
    check(srv.rc == 0, f"exit code {srv.rc}")


def main():
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="proto-grpc-") as tmp:
        pb, pbg = stubs(tmp)
        models = ptest.export_models(tmp)
        srv = ptest.Server(binary, ["--model", models["gray"][0], "--model", models["rgb"][0]])
        with srv.session():
            check(srv.grpc_port, "no 'grpc listening' log line")
            ch = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}")
            st = pbg.GRPCInferenceServiceStub(ch)
            test_control(pb, st, srv)
            n = test_infer(pb, st, srv, models)
            test_stream(pb, st)
            test_errors(pb, st, srv, ch)
            test_raw(pb, srv)
            test_statistics(pb, st, srv)
            test_metrics_log(srv, n)
            ch.close()
        check(srv.rc == 0, f"server exit code {srv.rc}")
        test_auth_limits(binary, models, pb, pbg)
        test_tls(binary, models, pb, pbg, tmp)
        test_drain(binary, models, pb, pbg)
        test_mixed_batching(binary, models, pb, pbg)
    print(f"grpc ok: {n} ModelInfer answers equal the HTTP v2 route's bytes and torch")
    print("grpc ok: a ModelInfer queued at SIGTERM was answered, a new one refused, exit 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
