#!/usr/bin/python3
"""Work whose client has gone is dropped (issue 16): the real binary on
loopback, raw sockets so the test decides when each client leaves.

  queued   200 classify requests fill the model's queue (capacity 200, one
           worker, batches of up to 256 that wait 10 s to fill while an
           announced upload is still arriving), then their clients leave:
           150 close (20 of them with a pipelined request's first bytes
           unread), 25 reset (SO_LINGER 0), 25 half-close and keep reading.
           When the upload completes, its push finds the queue full and first
           drops gone clients' images (not a 503), and the batch runs that
           one image only: the engine sees 1 image (resnetd_batch_size_sum),
           the 200 are answered/logged 499 and counted in
           resnetd_cancelled_total{reason="client_closed"}; a half-closed
           client reads a 499 client_closed_request answer or, as
           libmicrohttpd 0.9.75 often closes such a connection when it is
           resumed, nothing. Then the server is healthy: the upload's answer
           matches torch, a new classify answers 200 with torch's top-5,
           /healthz is 200, resnetd_inflight_bytes is back to its idle value,
           the queue empty and resnetd_inflight_requests 1 (the /metrics
           request itself).
  decode   with one decode thread busy on a multipart of large PNGs, 40
           requests wait for the decode pool and their clients close: none
           of them is decoded (resnetd_preprocess_duration_seconds counts only
           the large parts and later requests), all 40 are 499 and cancelled.
  upload   uploads cut off mid-body (raw and multipart, closed and reset):
           counted as reason="upload_aborted", logged 499, their bytes freed
           at once (resnetd_inflight_bytes back to idle).
  tls      the queued case over HTTPS with 40 clients (a tenth send a
           close_notify before their FIN).
  grpc     the queued case over gRPC (--grpc-port): 96 ModelInfer calls wait in
           the queue, then a third is reset (RST_STREAM CANCEL from an h2
           client), a third is cancelled by python3-grpcio (future.cancel())
           and a third loses its connection (closed). None reaches the engine
           (resnetd_batch_size_sum counts the upload's image only), all are
           counted in resnetd_cancelled_total{reason="stream_reset"} and
           resnetd_requests_total{code="499",protocol="grpc"}, the access log
           has them with status 499 and protocol grpc, the budget and queue are
           back to idle, and a ModelInfer afterwards answers torch's top-5.

usage: test_cancel.py RESNETD_BINARY {queued|tls|decode|upload|grpc}
"""

import http.client
import io
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

import srvtest
from srvtest import check

BIN = None


def metric(text, name, labels=None):
    """The value of a series, or the sum of every series of `name` whose
    labels include `labels` (request series also carry `protocol`)."""
    if not labels:
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0
    total = 0.0
    for line in text.splitlines():
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2)))
        if all(have.get(k) == str(v) for k, v in labels.items()):
            total += float(m.group(3))
    return total


def wait_for(srv, cond, what, timeout=60.0):
    """Polls /metrics until cond(text) holds (bounded; not a timing assertion:
    the server's counters move just after the clients' sockets do)."""
    t0 = time.monotonic()
    while True:
        text = srv.metrics()
        if cond(text):
            return text
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not reached within {timeout:g} s\n" +
                                 "\n".join(x for x in text.splitlines()
                                           if x.startswith("resnetd_") and "bucket" not in x))
        time.sleep(0.02)


def post_bytes(body, path="/v1/classify", ctype=None, length=None):
    h = (f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: "
         f"{len(body) if length is None else length}\r\n")
    if ctype:
        h += f"Content-Type: {ctype}\r\n"
    return h.encode() + b"\r\n" + body


def reset(s):
    """Closes with a TCP reset instead of a FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def read_answer(s):
    """One HTTP answer (status, headers, body) from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(65536)
        if not d:
            return None, {}, data
        data += d
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdr = {k.lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
    n = int(hdr.get("content-length", "0"))
    while len(body) < n:
        d = s.recv(65536)
        if not d:
            break
        body += d
    return status, hdr, body


def access(srv, path="/v1/classify"):
    return [x for x in srv.log_lines() if x.get("path") == path and "status" in x]


def same_top(preds, ref, tol=2e-4):
    check(len(preds) == len(ref), (preds, ref))
    for p, (i, prob) in zip(preds, ref):
        check(abs(p["probability"] - prob) < tol, f"probability {p} vs torch {(i, prob)}")


def check_idle(srv, idle_bytes, model):
    text = wait_for(srv, lambda t: metric(t, "resnetd_inflight_bytes") == idle_bytes and
                    metric(t, "resnetd_inflight_requests") == 1 and
                    metric(t, "resnetd_queue_depth", {"model": model}) == 0,
                    "budget, in-flight requests and queue back to idle")
    check(srv.alive(), "server died")
    st, _, b = srv.request("GET", "/healthz")
    check(st == 200 and json.loads(b) == {"status": "ok"}, f"/healthz {st} {b}")
    return text


class TlsServer(srvtest.resnetd_serve.Server):
    """The server over HTTPS (a certificate made here); the helpers' requests
    (metrics(), request()) go over TLS too."""

    def __init__(self, binary, args, tmp):
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        super().__init__(binary, args + ["--tls-cert", cert, "--tls-key", key], scheme="https",
                         prefix="srvtest-", show_log_on_failure=True)
        t0 = time.monotonic()
        while self.request("GET", "/readyz")[0] != 200:  # warm-up
            check(time.monotonic() - t0 < 120, "not ready")
            time.sleep(0.05)

    def conn(self, timeout=60):
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                           context=self.ctx)


def test_queued(tmp, tls=False):
    n = 40 if tls else 200
    model, net = srvtest.export_model(tmp, "tiny", width=2, seed=3, max_batch=256)
    imgs = srvtest.make_images(tmp, 2)
    body = open(imgs[0], "rb").read()
    # queue_capacity n: the queue is full when the upload's image comes, so
    # its push first drops gone clients' images to make room
    args = ["--model", model, "--workers", "1", "--max-batch", "256", "--queue-capacity", str(n),
            "--batch-timeout-us", "10000000", "--max-connections-per-ip", "0",
            "--log-level", "info"]
    s = TlsServer(BIN, args, tmp) if tls else srvtest.Server(BIN, args)

    def connect():
        c = socket.create_connection(("127.0.0.1", s.port), timeout=60)
        return s.ctx.wrap_socket(c) if tls else c

    try:
        idle = metric(s.metrics(), "resnetd_inflight_bytes")
        # announced upload: while it arrives, the batch waits (up to 10 s) to fill
        slow = connect()
        slow_body = open(imgs[1], "rb").read()
        slow.sendall(post_bytes(slow_body[:10], length=len(slow_body)))
        # connect (and shake hands) first: the 10 s start with the first push
        socks = [connect() for _ in range(n)]
        for c in socks:
            c.sendall(post_bytes(body))
        t = wait_for(s, lambda t: metric(t, "resnetd_queue_depth", {"model": "tiny"}) == n,
                     f"{n} images queued")
        check(metric(t, "resnetd_batch_size_count", {"model": "tiny"}) == 0,
              "a batch ran before the clients left (the 10 s batch timeout passed)")
        # 3/4 close (the first tenth with a pipelined request's first bytes
        # unread, or over TLS a close_notify, before the FIN), 1/8 reset,
        # 1/8 half-close and keep reading
        closing, resetting = n * 3 // 4, n * 7 // 8
        for i, c in enumerate(socks):
            if i < n // 10:
                if tls:
                    c.settimeout(0.2)  # sends close_notify; the server will not answer it
                    try:
                        c.unwrap()
                    except (OSError, ValueError):
                        pass
                else:
                    c.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
            if i < closing:
                c.close()
            elif i < resetting:
                reset(c)
            else:
                c.shutdown(socket.SHUT_WR)
        time.sleep(0.2)  # slack for the FINs and resets (loopback delivers them at once)
        slow.sendall(slow_body[10:])  # the upload completes: the batch forms now
        st, _, b = read_answer(slow)
        check(st == 200, f"the upload's answer (a full queue made room): {st} {b[:200]}")
        same_top(json.loads(b)["predictions"], srvtest.reference(net, imgs[1], 5))
        slow.close()
        got = 0
        for c in socks[resetting:]:  # a half-closed client may read why, or just the close
            c.settimeout(30)
            try:
                st, h, b = read_answer(c)
            except (ConnectionResetError, ssl.SSLError):
                st = None
            c.close()
            if st is None:
                continue
            got += 1
            check(st == 499, f"half-closed client: status {st}")
            check(json.loads(b)["error"]["code"] == "client_closed_request", b)
            check(h.get("connection", "").lower() == "close", h)
        t = wait_for(s, lambda t: metric(t, "resnetd_requests_total",
                                         {"model": "tiny", "code": "499"}) == n,
                     f"{n} requests answered 499")
        check(metric(t, "resnetd_batch_size_sum", {"model": "tiny"}) == 1,
              f"the engine ran {metric(t, 'resnetd_batch_size_sum', {'model': 'tiny'})} "
              "images, want 1 (the upload's)")
        check(metric(t, "resnetd_batch_size_count", {"model": "tiny"}) == 1, "one batch")
        check(metric(t, "resnetd_images_total", {"model": "tiny"}) == 1, "images_total")
        check(metric(t, "resnetd_cancelled_total",
                     {"model": "tiny", "reason": "client_closed"}) == n, "cancelled_total")
        check(metric(t, "resnetd_cancelled_total",
                     {"model": "tiny", "reason": "upload_aborted"}) == 0, "upload_aborted")
        check(metric(t, "resnetd_requests_total", {"model": "tiny", "code": "200"}) == 1, "200s")
        check_idle(s, idle, "tiny")
        # a normal request afterwards
        st, _, b = s.request("POST", "/v1/classify", body)
        check(st == 200, f"classify after: {st} {b}")
        same_top(json.loads(b)["predictions"], srvtest.reference(net, imgs[0], 5))
        log = access(s)
        check(sum(1 for x in log if x["status"] == 499) == n,
              f"access log: {sum(1 for x in log if x['status'] == 499)} lines with 499")
        check(all(x["model"] == "tiny" and x["images"] == 1 for x in log), log[:2])
        check_idle(s, idle, "tiny")
        rc = s.stop()
        check(rc == 0, f"exit code {rc}")
    finally:
        s.cleanup()
    print(f"queued{' (TLS)' if tls else ''}: {n} of {n} cancelled, engine ran 1 image; "
          f"{got} of {n - resetting} half-closed clients read the 499")


def png(w, h, seed):
    """A w x h RGB gradient PNG: many pixels, few bytes."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 3 + seed) % 256, (y * 5) % 256, ((x + y) * 7) % 256], -1).astype(np.uint8)
    b = io.BytesIO()
    Image.fromarray(img).save(b, "PNG", compress_level=1)
    return b.getvalue()


def test_decode(tmp):
    model, net = srvtest.export_model(tmp, "tiny", seed=5)
    imgs = srvtest.make_images(tmp, 1)
    small = open(imgs[0], "rb").read()
    big = png(3000, 3000, 1)
    parts = 24
    # the 24 large parts take one decode thread ~5 s, and over 30 s (the default
    # request deadline) under ThreadSanitizer: the deadline is not what this tests
    s = srvtest.Server(BIN, ["--model", model, "--decode-threads", "1", "--queue-capacity", "128",
                             "--max-connections-per-ip", "0", "--request-timeout-ms", "300000",
                             "--connection-timeout-s", "300", "--log-level", "info"])
    try:
        idle = metric(s.metrics(), "resnetd_inflight_bytes")
        mp, ctype = srvtest.multipart([(f"big{i}.png", big) for i in range(parts)])
        heavy = socket.create_connection(("127.0.0.1", s.port), timeout=120)
        heavy.sendall(post_bytes(mp, ctype=ctype))
        wait_for(s, lambda t: metric(t, "resnetd_preprocess_duration_seconds_count",
                                     {"model": "tiny"}) >= 1, "the large parts being decoded")
        # the decode thread is busy with it; these wait behind it in the pool
        socks = []
        for i in range(40):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=60)
            c.sendall(post_bytes(small))
            socks.append(c)
        # every request received (a reset before that would discard it unread)
        wait_for(s, lambda t: metric(t, "resnetd_inflight_requests") == 40 + 2,
                 "40 requests and the upload in flight (and this /metrics)")
        for i, c in enumerate(socks):
            c.close() if i % 2 else reset(c)
        # the pool runs jobs in order and the 40 came after the large parts'
        # job started: while those are not all decoded, none of the 40 has
        # started (the counter only grows)
        t = s.metrics()
        before = metric(t, "resnetd_preprocess_duration_seconds_count", {"model": "tiny"})
        check(before < parts, "the large parts were all decoded before the clients left; "
                              "this machine decodes too fast for the test")
        st, _, b = read_answer(heavy)
        heavy.close()
        check(st == 200 and len(json.loads(b)["results"]) == parts, f"heavy: {st} {b[:200]}")
        t = wait_for(s, lambda t: metric(t, "resnetd_requests_total",
                                         {"model": "tiny", "code": "499"}) == 40,
                     "40 requests answered 499")
        check(metric(t, "resnetd_preprocess_duration_seconds_count", {"model": "tiny"}) == parts,
              "a request whose client left was decoded: preprocess count "
              f"{metric(t, 'resnetd_preprocess_duration_seconds_count', {'model': 'tiny'})}")
        check(metric(t, "resnetd_batch_size_sum", {"model": "tiny"}) == parts, "engine images")
        check(metric(t, "resnetd_cancelled_total",
                     {"model": "tiny", "reason": "client_closed"}) == 40, "cancelled_total")
        check_idle(s, idle, "tiny")
        st, _, b = s.request("POST", "/v1/classify", small)
        check(st == 200, f"classify after: {st} {b}")
        same_top(json.loads(b)["predictions"], srvtest.reference(net, imgs[0], 5))
        check(sum(1 for x in access(s) if x["status"] == 499) == 40, "access log 499s")
        rc = s.stop()
        check(rc == 0, f"exit code {rc}")
    finally:
        s.cleanup()
    print("decode: 40 of 40 cancelled before decoding")


def test_upload(tmp):
    model, net = srvtest.export_model(tmp, "tiny", seed=6)
    imgs = srvtest.make_images(tmp, 1)
    small = open(imgs[0], "rb").read()
    s = srvtest.Server(BIN, ["--model", model, "--log-level", "info"])
    try:
        idle = metric(s.metrics(), "resnetd_inflight_bytes")
        mp, ctype = srvtest.multipart([("a.png", png(300, 300, 2)), ("b.png", png(300, 300, 3))])
        cuts = [(post_bytes(b"\x89PNG" + b"x" * 300000), "raw"),
                (post_bytes(mp, ctype=ctype), "multipart"),
                (post_bytes(mp, path="/v2/models/tiny/infer", ctype="application/json"), "v2")]
        n = 0
        for req, what in cuts:
            for how in (socket.socket.close, reset):
                c = socket.create_connection(("127.0.0.1", s.port), timeout=60)
                c.sendall(req[:len(req) // 2])
                # the server holds the half body (its bytes reserved) before the cut
                wait_for(s, lambda t: metric(t, "resnetd_inflight_bytes") > idle,
                         f"{what}: body reserved")
                how(c)
                n += 1
                wait_for(s, lambda t: metric(t, "resnetd_cancelled_total",
                                             {"model": "tiny", "reason": "upload_aborted"}) == n,
                         f"{what}: upload {n} counted as aborted")
                check_idle(s, idle, "tiny")
        t = s.metrics()
        check(metric(t, "resnetd_requests_total", {"model": "tiny", "code": "499"}) == n, "499s")
        check(metric(t, "resnetd_cancelled_total",
                     {"model": "tiny", "reason": "client_closed"}) == 0, "client_closed")
        st, _, b = s.request("POST", "/v1/classify", small)
        check(st == 200, f"classify after: {st} {b}")
        same_top(json.loads(b)["predictions"], srvtest.reference(net, imgs[0], 5))
        log = [x for x in s.log_lines() if x.get("status") == 499]
        check(len(log) == n and {x["path"] for x in log} == {"/v1/classify",
                                                              "/v2/models/tiny/infer"}, log)
        rc = s.stop()
        check(rc == 0, f"exit code {rc}")
    finally:
        s.cleanup()
    print(f"upload: {n} cut uploads counted, budget back to idle")


def grpc_infer_msg(pb2, body):
    """A ModelInfer request for model tiny with one encoded image (BYTES)."""
    r = pb2.ModelInferRequest(model_name="tiny")
    r.inputs.add(name="image", datatype="BYTES", shape=[1]).contents.bytes_contents.append(body)
    return r


def test_grpc(tmp):
    import grpc
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
    import grpc_kserve as gk
    pb2, pb2_grpc = gk.stubs(os.path.join(tmp, "stubs"))
    per = 32
    n = 3 * per
    model, net = srvtest.export_model(tmp, "tiny", width=2, seed=3, max_batch=256)
    imgs = srvtest.make_images(tmp, 2)
    body = open(imgs[0], "rb").read()
    args = ["--model", model, "--workers", "1", "--max-batch", "256", "--queue-capacity", "256",
            "--batch-timeout-us", "10000000", "--max-connections-per-ip", "0",
            "--log-level", "info"]
    s = srvtest.Server(BIN, args)
    check(s.grpc_port, "no gRPC port in the server's log")
    chan = None
    try:
        idle = metric(s.metrics(), "resnetd_inflight_bytes")
        slow = socket.create_connection(("127.0.0.1", s.port), timeout=60)
        slow_body = open(imgs[1], "rb").read()
        slow.sendall(post_bytes(slow_body[:10], length=len(slow_body)))
        framed = gk.message(grpc_infer_msg(pb2, body).SerializeToString())
        # connections first: the 10 s start with the first push
        resetter, closer = gk.H2(s.grpc_port, timeout=60), gk.H2(s.grpc_port, timeout=60)
        chan = grpc.insecure_channel(f"127.0.0.1:{s.grpc_port}",
                                     options=[("grpc.enable_http_proxy", 0)])
        grpc.channel_ready_future(chan).result(timeout=60)
        stub = pb2_grpc.GRPCInferenceServiceStub(chan)
        rs = [resetter.start("ModelInfer", framed) for _ in range(per)]
        cs = [closer.start("ModelInfer", framed) for _ in range(per)]
        futs = [stub.ModelInfer.future(grpc_infer_msg(pb2, body), timeout=120)
                for _ in range(per)]
        t = wait_for(s, lambda t: metric(t, "resnetd_queue_depth", {"model": "tiny"}) == n,
                     f"{n} images queued")
        check(metric(t, "resnetd_batch_size_count", {"model": "tiny"}) == 0,
              "a batch ran before the calls were cancelled (the 10 s batch timeout passed)")
        check(not any(f.done() for f in futs), "a grpcio call finished before it was cancelled")
        for sid in rs:  # RST_STREAM(CANCEL), the connection stays open
            resetter.conn.reset_stream(sid, error_code=8)
        resetter._flush()
        for f in futs:
            check(f.cancel(), "grpcio could not cancel a waiting call")
        closer.sock.close()  # the connection goes: every stream on it with it
        # every call seen gone by the server (its stream closed) before the batch forms
        wait_for(s, lambda t: metric(t, "resnetd_inflight_requests") <= 2,
                 "the cancelled streams closed (in flight: the upload and /metrics)")
        slow.sendall(slow_body[10:])  # the upload completes: the batch forms now
        st, _, b = read_answer(slow)
        check(st == 200, f"the upload's answer: {st} {b[:200]}")
        same_top(json.loads(b)["predictions"], srvtest.reference(net, imgs[1], 5))
        slow.close()
        t = wait_for(s, lambda t: metric(t, "resnetd_cancelled_total",
                                         {"model": "tiny", "reason": "stream_reset"}) == n,
                     f"{n} gRPC calls counted as cancelled (stream_reset)")
        check(metric(t, "resnetd_batch_size_sum", {"model": "tiny"}) == 1,
              f"the engine ran {metric(t, 'resnetd_batch_size_sum', {'model': 'tiny'})} "
              "images, want 1 (the upload's)")
        check(metric(t, "resnetd_batch_size_count", {"model": "tiny"}) == 1, "one batch")
        check(metric(t, "resnetd_images_total", {"model": "tiny"}) == 1, "images_total")
        check(metric(t, "resnetd_requests_total",
                     {"model": "tiny", "code": "499", "protocol": "grpc"}) == n,
              f"requests_total 499 grpc: {metric(t, 'resnetd_requests_total', {'code': '499'})}")
        check(metric(t, "resnetd_requests_total", {"code": "200", "protocol": "grpc"}) == 0,
              "a cancelled gRPC call counted 200")
        for r in ("client_closed", "upload_aborted"):
            check(metric(t, "resnetd_cancelled_total", {"model": "tiny", "reason": r}) == 0, r)
        check(resetter.goaway is None, f"the resetting connection got GOAWAY {resetter.goaway}")
        check(all(resetter.calls[sid].status is None for sid in rs), "a reset stream answered")
        # the connection whose streams were reset still serves, and so does a new one
        for c in (resetter, gk.H2(s.grpc_port, timeout=60)):
            call = c.call("ModelInfer", grpc_infer_msg(pb2, body).SerializeToString(),
                          timeout=60)
            check(call.status == gk.OK, f"ModelInfer after: {call.status} {call.message_text}")
            resp = pb2.ModelInferResponse.FromString(call.messages[0])
            logits = np.frombuffer(resp.raw_output_contents[0], "<f4").astype(np.float64)
            prob = np.exp(logits - logits.max())
            prob /= prob.sum()
            top = np.argsort(-prob, kind="stable")[:5]
            got = [{"index": int(i), "probability": float(prob[i])} for i in top]
            ref = srvtest.reference(net, imgs[0], 5)
            check([g["index"] for g in got] == [i for i, _ in ref], f"{got} vs torch {ref}")
            same_top(got, ref)
            c.close()
        chan.close()
        chan = None
        # (an open connection holds its nghttp2 memory in the budget)
        check_idle(s, idle, "tiny")
        log = [x for x in s.log_lines() if x.get("path", "").endswith("/ModelInfer")
               and "status" in x]
        bad = [x for x in log[:n] if x["status"] != 499]
        check(len(log) == n + 2 and not bad and all(x["status"] == 200 for x in log[n:]),
              f"access log: {len(log)} ModelInfer lines (want {n} with 499, then 2 with 200), "
              f"not 499: {bad[:3]}")
        check(all(x.get("protocol") == "grpc" and x.get("model") == "tiny" for x in log), log[:2])
        rc = s.stop()
        check(rc == 0, f"exit code {rc}")
    finally:
        if chan is not None:
            chan.close()
        s.cleanup()
    print(f"grpc: {n} of {n} cancelled ({per} reset, {per} grpcio cancel, {per} connection "
          "closed), engine ran 1 image")


def main():
    global BIN
    BIN = sys.argv[1]
    test = {"queued": test_queued, "tls": lambda tmp: test_queued(tmp, tls=True),
            "decode": test_decode, "upload": test_upload, "grpc": test_grpc}[sys.argv[2]]
    with tempfile.TemporaryDirectory(prefix="srvtest-") as tmp:
        test(tmp)
    print(f"{sys.argv[2]}: ok")


if __name__ == "__main__":
    main()
