"""The cases of tests/hardening/hostile_cost.py, one function per issue class.
Each case sends real bytes (tests/lib/hostile_gen.py) over a real socket and
gives hostile_cost's Battery.case() a check: None when the answer is the one
the issue asks for, else why not.

Expected answers, and where the issue leaves a choice (each accepts every
documented choice, never a 5xx, a 200 for a refused input, or a hang):
- JPEG bombs (1, 3): 400 with image_too_large, image_too_complex or
  invalid_image (a fix may refuse from the cost model, the scan count, or the
  disagreement between the walk and libjpeg).
- PNG ancillary bombs (2): the chunks carry nothing the model uses; skipping
  them makes a valid 1x1 image, so 200 with predictions is right, and so is 400
  image_too_complex / image_too_large / invalid_image.
- v2 "outputs": [] (4): 400, or 200 with the default outputs (not empty).
- framing (7): 400 then close, or a close without an answer; 501 also for an
  unknown transfer coding and 411 for a server that refuses chunked request
  bodies altogether (then chunk framing is never parsed); never an answer to
  the smuggled request behind it.
- hostile_images.cases() named *_ok with status 200 are controls (valid
  images, e.g. a 6320x6320 progressive JPEG that legitimately needs ~120 MB of
  coefficients): checked for their answer and CPU, not counted in the
  battery's RSS bound.
- over-limit Content-Length (7): the client writes the whole body, then reads
  a JSON 413; a reset before it could read the answer is a failure.
- held uploads (8, 64 MiB budget): at least one 503 over_budget with
  Retry-After, every other upload answered once its last byte arrives (415:
  the body is not an image); one client's 1,030 half-sent headers must not slow
  /healthz from another address past 100 ms.
- TLS (9): 1.0, 1.1, static-RSA and CBC suites refused; ECDHE AEAD on 1.2 and
  TLS 1.3 accepted (the issue asks for forward-secret AEAD suites).
- Latin-1 labels.txt / non-UTF-8 model directory name (10): refused at load
  (exit != 0, the message names the file or directory), or served with a
  warning and only valid UTF-8 in answers.
"""

import json
import os
import re
import socket
import subprocess
import threading
import time

import costlib as C
import hostile_gen as G
import resnetd_serve

try:  # the image helper's generators (tests/lib/hostile_images.py), when present
    import hostile_images
except ImportError:
    hostile_images = None

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXAMPLE = os.path.join(ROOT, "examples", "00002_Trouser.png")
JPEG_CODES = ("image_too_large", "image_too_complex", "invalid_image")
MAX_BODY = 20 * 1024 * 1024  # the server's --max-body-bytes (hostile_cost.SERVER_OPTS)
BUDGET = 64 << 20  # --max-inflight-bytes for the held uploads of class 8


def want_error(statuses, codes=None, clean=True):
    """A JSON error with one of statuses (and codes); clean: no reset on the way."""
    statuses = statuses if isinstance(statuses, tuple) else (statuses,)

    def chk(r):
        if r.status not in statuses:
            return f"got {r.summary()}, want {statuses} {codes or ''}"
        if not r.is_json_error():
            return f"not a JSON error body: {r.body[:160]!r}"
        if codes and r.code not in codes:
            return f"code {r.code}, want one of {codes}"
        if clean and "reset" in r.note:
            return f"connection reset: {r.note}"
        return None
    return chk


def want_predictions_or(codes):
    """200 with predictions, or 400 with one of codes."""
    def chk(r):
        if r.status == 200:
            j = r.json()
            if j and j.get("predictions"):
                return None
            return f"200 without predictions: {r.body[:160]!r}"
        return want_error(400, codes)(r)
    return chk


def ts_error(r):
    """TorchServe-shaped errors are JSON with a 4xx status ({"code", "type", "message"})."""
    if r.status != 400 or "json" not in r.headers.get("content-type", ""):
        return f"got {r.summary()}, want a 400 JSON error"
    return None if isinstance(r.json(), dict) else "not a JSON object"


def post(b, path, body, ctype="application/octet-stream", headers=None, src=None):
    h = {"Content-Type": ctype}
    h.update(headers or {})
    return C.request(b.port, "POST", path, body, h, src=src, timeout=b.timeout)


V2 = "/v2/models/fashion-mnist/infer"


def reference(b):
    """(v1 answer, v2 answer) of a valid image and a valid binary tensor."""
    with open(EXAMPLE, "rb") as f:
        png = f.read()
    r1 = post(b, "/v1/classify?top_k=10", png)
    body, h = G.v2_fp32_binary(2, [{"name": "logits", "parameters": {"binary_data": True}}])
    r2 = C.request(b.port, "POST", V2, body, h, timeout=b.timeout)
    top = (r1.json() or {}).get("predictions", [{}])[0].get("label")
    if r1.status != 200 or top != "Trouser" or r2.status != 200:
        raise RuntimeError(f"reference requests failed: {r1.summary()} {top} {r2.summary()}")
    return r1.body, r2.body


# ---------------------------------------------------------------- classes


def class_1(b):
    for hidden, visible in ((16000, 2001), (32000, 4001)):
        data = G.jpeg_hidden_sof(hidden, visible)
        b.case(1, f"hidden progressive SOF {hidden}² behind FF 00, visible {visible}² "
               f"({len(data)} B)", lambda d=data: post(b, "/v1/classify", d),
               want_error(400, JPEG_CODES))
    data = G.jpeg_hidden_sof(8000, 1001, scans=1500)
    b.case(1, f"1,500 hidden DC scans of an 8000² frame, visible 1001² ({len(data)} B)",
           lambda: post(b, "/v1/classify", data), want_error(400, JPEG_CODES))
    b.case(1, "two of those at once (both HTTP threads busy on the unfixed server)",
           lambda: together(b, [lambda: post(b, "/v1/classify", data)] * 2),
           all_of(want_error(400, JPEG_CODES)))
    data = G.jpeg_hidden_sof(16000, 2001)
    b.case(1, "hidden SOF 16000² as a v2 BYTES element",
           lambda: v2_bytes(b, [data]), want_error(400))
    b.case(1, "hidden SOF 16000² to TorchServe /predictions/fashion-mnist",
           lambda: post(b, "/predictions/fashion-mnist", data), ts_error)
    b.case(1, "tables-only stream behind FF 00, then a visible 16² frame",
           lambda: post(b, "/v1/classify", G.jpeg_tables_only()),
           want_error(400, ("invalid_image", "image_too_complex", "empty_image")))
    b.case(1, "tables-only stream (SOI, DQT, DHT, EOI)",
           lambda: post(b, "/v1/classify", G.jpeg_tables_only(False)),
           want_error(400, ("invalid_image", "image_too_complex", "empty_image")))


# hostile_images.cases() names the image module's statuses (img_status_str);
# over HTTP, server/status.c answers both of these as invalid_image.
HTTP_CODE = {"corrupt_image": "invalid_image", "truncated_image": "invalid_image"}


def class_images(b):
    """The image module's own cases (tests/lib/hostile_images.py), as /v1 raw bodies."""
    for name, data, status, code in hostile_images.cases():
        code = HTTP_CODE.get(code, code)
        row = b.case(0, f"{name} ({len(data) >> 10} KB), want {status} {code}",
                     lambda d=data: post(b, "/v1/classify", d),
                     want_predictions_or(()) if status == 200 else want_error(status, (code,)))
        row.control = status == 200 and name.endswith("_ok")


def v2_bytes(b, elements):
    """A v2 request with BYTES image elements as binary tensor data."""
    import struct
    data = b"".join(struct.pack("<I", len(e)) + e for e in elements)
    hdr = json.dumps({"inputs": [{"name": "image", "shape": [len(elements)], "datatype": "BYTES",
                                  "parameters": {"binary_data_size": len(data)}}]}).encode()
    return C.request(b.port, "POST", V2, hdr + data,
                     {"Inference-Header-Content-Length": str(len(hdr))}, timeout=b.timeout)


def together(b, fns):
    """Runs the requests concurrently; one Resp whose .group holds them all."""
    out = [None] * len(fns)

    def run(i):
        out[i] = fns[i]()
    ts = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    r = C.Resp(out[0].status, out[0].headers, out[0].body, out[0].note)
    r.group = out
    return r


def all_of(check):
    def chk(r):
        whys = dict.fromkeys(w for w in (check(x) for x in r.group) if w)
        return "; ".join(f"{sum(check(x) == w for x in r.group)}× {w}" for w in whys) or None
    return chk


def class_2(b):
    for n, kind in ((100, b"zTXt"), (998, b"zTXt"), (100, b"iTXt")):
        data = G.png_text_bomb(n, kind)
        b.case(2, f"1×1 PNG, {n} {kind.decode()} chunks of 8 MB each ({len(data) >> 10} KB)",
               lambda d=data: post(b, "/v1/classify", d), want_predictions_or(JPEG_CODES))
    data = G.png_iccp_bomb()
    b.case(2, f"1×1 PNG, iCCP profile inflating to 8 MB ({len(data) >> 10} KB)",
           lambda: post(b, "/v1/classify", data), want_predictions_or(JPEG_CODES))
    data = G.png_iccp_bomb(copies=50)
    b.case(2, f"1×1 PNG, 50 iCCP chunks of 8 MB ({len(data) >> 10} KB)",
           lambda: post(b, "/v1/classify", data), want_predictions_or(JPEG_CODES))


def class_3(b):
    for size, scans in ((6320, 990), (6320, 400), (4000, 999)):
        data = G.jpeg_many_scans(size, scans)
        b.case(3, f"{size}² progressive JPEG, DC scan header ×{scans} ({len(data) >> 10} KB)",
               lambda d=data: post(b, "/v1/classify", d), want_error(400, JPEG_CODES))
    # Two at once, as in the issue (/healthz starved while both HTTP threads
    # decoded). 3000² and not 6320²: a libjpeg progress monitor refuses only
    # after the whole-image coefficient buffer exists (~40 MB here, 80 MB at
    # 6320²), and two 6320² side by side would pass the RSS bound by design.
    data = G.jpeg_many_scans(3000, 999)
    b.case(3, f"two 3000² ×999 at once, from two addresses ({len(data) >> 10} KB each)",
           lambda: together(b, [lambda s=f"127.0.1.{i}": post(b, "/v1/classify", data, src=s)
                                for i in range(2)]),
           all_of(want_error(400, JPEG_CODES)))


def class_4(b):
    binout = {"name": "logits", "parameters": {"binary_data": True}}
    variants = [
        ("64 FP32 binary images, 30,000 binary outputs entries", 64, [binout] * 30000),
        ("64 FP32 binary images, 30,000 JSON outputs entries", 64, [{"name": "logits"}] * 30000),
        ("64 images, 30,000 classification outputs", 64,
         [{"name": "logits", "parameters": {"classification": 10}}] * 30000),
        ("two identical outputs entries", 1, [binout, binout]),
        ("30,000 distinct unknown output names", 1, [{"name": f"x{i}"} for i in range(30000)]),
        ("one unknown output name", 1, [{"name": "nope"}]),
    ]
    for name, n, outputs in variants:
        body, h = G.v2_fp32_binary(n, outputs)
        b.case(4, f"{name} ({len(body) >> 10} KB)",
               lambda body=body, h=h: C.request(b.port, "POST", V2, body, h, timeout=b.timeout),
               want_error(400))

    def empty_ok(r):
        if r.status == 200:
            outs = (r.json() or {}).get("outputs")
            return None if outs else f"200 with no outputs: {r.body[:160]!r}"
        return want_error(400)(r)
    body, h = G.v2_fp32_binary(1, [])
    b.case(4, '"outputs": [] (400 or the default outputs)',
           lambda: C.request(b.port, "POST", V2, body, h, timeout=b.timeout), empty_ok)


def class_5(b):
    big = G.png_gray(4000, 4000)
    body, ct = G.multipart([(b"p%d.png" % i, big) for i in range(300)])
    b.case(5, f"300 parts of a 4000² PNG ({len(body) >> 20} MB)",
           lambda: post(b, "/v1/classify", body, ct), want_error(413, ("too_many_images",)))
    bomb = G.jpeg_hidden_sof(16000, 2001)
    body2, ct2 = G.multipart([(b"b%d.jpg" % i, bomb) for i in range(300)])
    b.case(5, "300 parts, each a hidden-SOF JPEG",
           lambda: post(b, "/v1/classify", body2, ct2), want_error(413, ("too_many_images",)))

    def parts_refused(codes, allow_ok):
        def chk(r):
            if r.status == 200:
                res = (r.json() or {}).get("results") or []
                for x in res:
                    if "predictions" in x and allow_ok:
                        continue
                    if (x.get("error") or {}).get("code") not in codes:
                        return f"part answered {json.dumps(x)[:160]}"
                return None if res else "200 without results"
            return want_error((400, 413), codes + ("too_many_images",))(r)
        return chk
    for name, data, ok in (("hidden-SOF 16000² JPEG", bomb, False),
                           ("6320² JPEG with 990 DC scans", G.jpeg_many_scans(6320, 990), False),
                           ("PNG with 100 zTXt bombs", G.png_text_bomb(100), True)):
        body3, ct3 = G.multipart([(b"b%d" % i, data) for i in range(8)])
        b.case(5, f"8 parts, each a {name} ({len(body3) >> 10} KB)",
               lambda body3=body3, ct3=ct3: post(b, "/v1/classify", body3, ct3),
               parts_refused(JPEG_CODES, ok))


def class_6(b):
    for name, ident, ok in (
            ("256 ASCII bytes", "a" * 256, False),
            ("254 ASCII + é (bytes 255-256)", "a" * 254 + "é", False),
            ("253 ASCII + € (bytes 254-256)", "a" * 253 + "€", False),
            ("128 × é (256 bytes)", "é" * 128, False),
            ("1000 × €", "€" * 1000, False),
            ("255 ASCII bytes (valid)", "a" * 255, True),
            ("85 × € = 255 bytes (valid)", "€" * 85, True)):
        body, h = G.v2_fp32_binary(1, None, extra={"id": ident})

        def chk(r, ident=ident, ok=ok):
            if not ok:
                return want_error(400)(r)
            if r.status != 200:
                return f"got {r.summary()}, want 200"
            return None if (r.json() or {}).get("id") == ident else "id not echoed exactly"
        b.case(6, f"id: {name}",
               lambda body=body, h=h: C.request(b.port, "POST", V2, body, h, timeout=b.timeout),
               chk)


def framing_check(r):
    if r.more:
        return f"a second response on the connection (smuggled request answered): {r.more[0][0]}"
    if r.status is None:
        return None if r.note in ("closed", "reset") else f"no answer and no close: {r.note}"
    if r.status not in (400, 411, 501):
        return f"got {r.summary()}, want 400 (or 411, 501) and close"
    if not r.eof:
        return "connection not closed after the framing error"
    return None


def over_limit(b, path, size):
    """Writes the whole over-limit body before reading (as urllib does)."""
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (path.encode(), size)
    return C.exchange(b.port, head + b"\0" * size, timeout=b.timeout)


def class_7(b):
    with open(EXAMPLE, "rb") as f:
        png = f.read()
    t = 5.0 if not b.report else 10.0
    for name, raw in G.framing_cases(png):
        b.case(7, name, lambda raw=raw: C.exchange(b.port, raw, timeout=t, read_all=True),
               framing_check)
    size = MAX_BODY + (1 << 20)
    b.case(7, f"/v1 Content-Length {size} (over the limit), whole body written first",
           lambda: over_limit(b, "/v1/classify", size), want_error(413, ("body_too_large",)))
    b.case(7, "/v2 over-limit Content-Length, whole body written first",
           lambda: over_limit(b, V2, size), want_error(413))


def class_8(b):
    def half_sent():
        socks, failed, deadline = [], 0, time.monotonic() + 30
        for _ in range(1030):
            if time.monotonic() > deadline:
                break
            try:
                s = C.connect(b.port, "127.0.0.3", timeout=2)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                socks.append(s)
            except OSError:
                failed += 1
        time.sleep(1.0)
        held = 0
        for s in socks:
            try:
                s.setblocking(False)
                s.recv(1, socket.MSG_PEEK)  # data or EOF: the server answered or closed it
            except BlockingIOError:
                held += 1
            except OSError:
                pass
        t0 = time.monotonic()
        r = C.request(b.port, "GET", "/healthz", src="127.0.0.6", timeout=b.timeout)
        ms = (time.monotonic() - t0) * 1000
        for s in socks:
            s.close()
        summary = (f"{held} of 1030 held by the server ({failed} connects failed); "
                   f"/healthz from 127.0.0.6: {r.summary()} in {ms:.0f} ms")
        why = None if r.status == 200 and ms < 100 else "/healthz from another address slow/failed"
        return summary, why
    b.case(8, "one client (127.0.0.3) holds 1,030 half-sent headers", half_sent, None)
    if b.match and "budget" not in b.match and "upload" not in b.match:
        return  # --match: no restart for cases that are not run
    b.restart_with(["--max-inflight-bytes", str(BUDGET)])
    try:
        b.case(8, "budget 64 MiB: twelve 20 MB uploads, last byte held back (127.0.0.5)",
               lambda: held_uploads(b, 12, 20_000_000), None)
        b.case(8, "budget 64 MiB: a valid upload right after (the budget is released)",
               lambda: post(b, "/v1/classify", open(EXAMPLE, "rb").read()),
               lambda r: None if r.status == 200 else f"got {r.summary()}")
    finally:
        b.restart_with([])


def held_uploads(b, n, size):
    body = memoryview(b"x" * size)
    head = b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size
    socks, state = [None] * n, ["?"] * n

    def send(i):
        try:
            s = socks[i] = C.connect(b.port, "127.0.0.5", timeout=10)
            s.sendall(head)
            s.sendall(body[:-1])
            state[i] = "held"
        except socket.timeout:
            state[i] = "send blocked"
        except OSError as e:
            state[i] = f"send failed ({type(e).__name__})"
    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=40)
    time.sleep(0.5)
    peak_held = C.mem(b.srv.proc.pid)[0]
    answers = []
    for i, s in enumerate(socks):
        if s is None:
            answers.append(C.Resp(note=state[i]))
            continue
        r = C.Reader(s)
        resp = C.Resp(note=state[i])
        try:
            s.settimeout(1.0)
            resp.status, resp.headers, resp.body = C.read_one(r)
            resp.note = "early"
        except socket.timeout:
            try:  # nothing yet: complete the upload and read the answer
                s.settimeout(b.timeout)
                s.sendall(body[-1:])
                resp.status, resp.headers, resp.body = C.read_one(r)
                resp.note = "completed"
            except (OSError, EOFError) as e:
                resp.note += f"; completing failed ({type(e).__name__})"
        except (OSError, EOFError) as e:
            resp.note += f"; read failed ({type(e).__name__})"
        answers.append(resp)
        s.close()
    over = [a for a in answers if a.status == 503 and a.code == "over_budget"]
    done = [a for a in answers if a.status == 415 and a.note == "completed"]
    others = [a for a in answers if a not in over and a not in done]
    summary = (f"{len(over)}× 503 over_budget, {len(done)}× held then 415; RSS with all held "
               f"{peak_held >> 20} MB" + (f"; others: {[a.summary() for a in others][:4]}"
                                         if others else ""))
    why = []
    if not over:
        why.append("no 503 over_budget although 12 × 20 MB > the 64 MiB budget")
    if others:
        why.append("unexpected answers")
    if any("retry-after" not in a.headers for a in over):
        why.append("503 without Retry-After")
    return summary, "; ".join(why) or None


def s_client(port, args):
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    try:
        p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-ign_eof"] +
                           args, input=req, capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        return False, "s_client timeout"
    out = p.stdout.decode(errors="replace")
    ok = "HTTP/1.1 200" in out
    # "Protocol  :" is the negotiated version ("New, X, Cipher is" names the
    # version that introduced the suite)
    proto = re.search(r"Protocol\s*:\s*(\S+)", out) or re.search(r"New, (\S+),", out)
    ciph = re.search(r"Cipher is (\S+)", out)
    return ok, (f"accepted: {proto.group(1) if proto else '?'} {ciph.group(1) if ciph else '?'}"
                ", /healthz 200" if ok else "refused")


def class_9(b, tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert], check=True,
                   capture_output=True)
    srv = resnetd_serve.Server(b.binary, ["--model", os.path.join(ROOT, "models", "fashion-mnist"),
                                          "--tls-cert", cert, "--tls-key", key],
                               scheme="https", prefix="hostile-tls-")
    low = "DEFAULT:@SECLEVEL=0"  # the client must be willing: OpenSSL 3 refuses 1.0/1.1 itself
    try:
        for name, args, accept in (
                ("TLS 1.0", ["-tls1", "-cipher", low], False),
                ("TLS 1.1", ["-tls1_1", "-cipher", low], False),
                ("TLS 1.2 static RSA AES128-GCM-SHA256", ["-tls1_2", "-cipher",
                                                          "AES128-GCM-SHA256:@SECLEVEL=0"], False),
                ("TLS 1.2 static RSA AES256-SHA (CBC)", ["-tls1_2", "-cipher",
                                                         "AES256-SHA:@SECLEVEL=0"], False),
                ("TLS 1.2 ECDHE-RSA-AES128-SHA (CBC, not AEAD)",
                 ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA:@SECLEVEL=0"], False),
                ("TLS 1.2 ECDHE-RSA-AES128-GCM-SHA256", ["-tls1_2", "-cipher",
                                                         "ECDHE-RSA-AES128-GCM-SHA256"], True),
                ("TLS 1.2 ECDHE-RSA-CHACHA20-POLY1305", ["-tls1_2", "-cipher",
                                                         "ECDHE-RSA-CHACHA20-POLY1305"], True),
                ("TLS 1.3 (default suites)", ["-tls1_3"], True)):
            def run(args=args, accept=accept):
                ok, what = s_client(srv.port, args)
                return what, None if ok == accept else f"want {'accepted' if accept else 'refused'}"
            b.case(9, name, run, None, on_main=False)
    finally:
        srv.cleanup()


def class_10(b, tmp):
    for name, val in (("FP32 JSON value 1e39", "1e39"), ("FP32 JSON value -1e39", "-1e39"),
                      ("FP32 JSON value 1e300", "1e300")):
        body, h = G.v2_fp32_json(val)
        b.case(10, name, lambda body=body, h=h: C.request(b.port, "POST", V2, body, h,
                                                           timeout=b.timeout), want_error(400))
    src = os.path.join(ROOT, "models", "fashion-mnist")

    def model_copy(dirname, labels_line3=None, keep_name=True):
        d = os.path.join(tmp, os.fsdecode(dirname))
        os.makedirs(d)
        os.symlink(os.path.join(src, "model.onnx"), os.path.join(d, "model.onnx"))
        with open(os.path.join(src, "config.json")) as f:
            cfg = json.load(f)
        if not keep_name:
            del cfg["name"]
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        with open(os.path.join(src, "labels.txt"), "rb") as f:
            lines = f.read().split(b"\n")
        if labels_line3 is not None:
            lines[2] = labels_line3
        with open(os.path.join(d, "labels.txt"), "wb") as f:
            f.write(b"\n".join(lines))
        return d

    for name, d, needle in (
            ("labels.txt with a Latin-1 line 3 (Pull\\xe9ver)",
             model_copy(b"latin1-labels", b"Pull\xe9ver"), "labels.txt"),
            ("model directory named fm-\\xe9 (no name in config.json)",
             model_copy(b"fm-\xe9", keep_name=False), "fm-")):
        b.case(10, name, lambda d=d, needle=needle: operator_data(b, d, needle), None,
               on_main=False)


def operator_data(b, model_dir, needle):
    """Refused at load with a message naming the file/dir, or served with
    a warning and valid UTF-8 answers."""
    try:
        srv = resnetd_serve.Server(b.binary, ["--model", model_dir, "--log-level", "info"],
                                   ready_timeout=60, prefix="hostile-labels-")
    except RuntimeError as e:
        msg = str(e)
        named = needle in msg and ("line 3" in msg or ":3" in msg or needle != "labels.txt")
        first = next((ln for ln in msg.splitlines() if needle in ln and "serve" not in ln), "")
        return (f"refused at load: {first[:150]}",
                None if named else "refused without naming the file and line")
    try:
        with open(EXAMPLE, "rb") as f:
            png = f.read()
        r = C.request(srv.port, "POST", "/v1/classify?top_k=10", png, timeout=b.timeout)
        m = C.request(srv.port, "GET", "/v1/models", timeout=b.timeout)
        bad = []
        for x in (r, m):
            try:
                json.loads(x.body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                bad.append(x.summary())
        warned = any(needle in json.dumps(o) for o in srv.log_lines()
                     if o.get("level") in ("warn", "warning"))
        why = []
        if r.status != 200 or m.status != 200:
            why.append(f"classify {r.summary()}, models {m.summary()}")
        if bad:
            why.append("answer not valid UTF-8 JSON")
        if not warned:
            why.append("served without a warning naming it")
        return f"served: classify {r.summary()}, /v1/models {m.summary()}", "; ".join(why) or None
    finally:
        srv.cleanup()



def run(b, only, tmp):
    if hostile_images is not None and 0 in only:
        class_images(b)
    for cls in sorted(only - {0}):
        fn = globals()[f"class_{cls}"]
        if cls in (9, 10):
            fn(b, tmp)
        else:
            fn(b)
