#!/usr/bin/env python3
"""HTTP/1.1 framing (RFC 9112), lingering close and the body budget against
the real `resnetd serve` on 127.0.0.1.

    test_framing.py RESNETD framing   every ambiguous framing is 400 (or 411) +
                                      close, and nothing hidden in it runs
    test_framing.py RESNETD linger    clients that write the whole body before
                                      reading (urllib, http.client, curl
                                      without Expect) read the JSON 413 / 503
    test_framing.py RESNETD budget    bodies are reserved from
                                      max_inflight_bytes: 503 over_budget +
                                      Retry-After, counted, logged, released

framing: each case is sent on a fresh connection with a request hidden
behind it (GET /smuggled-N). It must get exactly the status and JSON code
listed, with Connection: close, the server must stay healthy, and at the end
no /smuggled-N may appear in the access log, while a control request sent
the honest way (/smuggled-control, pipelined after a valid request) must.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hardlib as H  # noqa: E402
from hardlib import check  # noqa: E402

MAX_BODY = 20 * 1024 * 1024


def raw_all(srv, data, timeout=10):
    """Sends data on a fresh connection; every response until EOF, and
    whether the server closed the connection (EOF seen)."""
    s = srv.connect(timeout)
    out, closed = [], False
    try:
        s.sendall(data)
        r = H._Reader(s)
        while True:
            resp = H.read_response(s, r)
            if resp[0] is None:
                closed = True
                break
            out.append(resp)
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    except socket.timeout:
        pass
    finally:
        s.close()
    return out, closed


def healthy(srv, what):
    check(srv.alive(), f"server died after: {what}")
    check(srv.get("/healthz")[0] == 200, f"/healthz failed after: {what}")


def smuggled(i):
    return b"GET /smuggled-%d HTTP/1.1\r\nHost: x\r\n\r\n" % i


def framing_cases(png):
    """(name, raw request with /smuggled-i hidden in it, status, JSON code)."""
    P = b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n"
    cases = []

    def add(name, head, body, status=400, code="bad_request"):
        i = len(cases)
        cases.append((name, head + b"\r\n" + body.replace(b"SMUGGLED", smuggled(i)), status, code))

    hid = b"SMUGGLED"
    add("duplicate Content-Length, differing",
        P + b"Content-Length: 5\r\nContent-Length: %d\r\n" % (5 + len(smuggled(0))), b"hello" + hid)
    add("duplicate Content-Length, identical",
        P + b"Content-Length: %d\r\nContent-Length: %d\r\n" % ((len(smuggled(1)),) * 2), hid)
    add("Content-Length: 5, 5 (list)", P + b"Content-Length: 5, 5\r\n", b"hello" + hid, 400, None)
    add("space before the colon, with Content-Length",
        P + b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n", b"hello" + hid)
    add("space before the colon, no Content-Length", P + b"Transfer-Encoding : chunked\r\n",
        b"5\r\nhello\r\n0\r\n\r\n" + hid)
    add("tab before the colon", P + b"Content-Length\t: 5\r\n", b"hello" + hid)
    add("obs-fold of Transfer-Encoding",
        P + b"X-A: 1\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n", b"hello" + hid)
    add("obs-fold of any header", P + b"X-A: a\r\n\tb\r\nContent-Length: 5\r\n", b"hello" + hid)
    add("whitespace before the first header line",
        b"POST /v1/classify HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: x\r\n"
        b"Content-Length: 5\r\n", b"hello" + hid)
    add("Transfer-Encoding: gzip", P + b"Transfer-Encoding: gzip\r\n", b"hello" + hid)
    add("Transfer-Encoding: gzip, chunked", P + b"Transfer-Encoding: gzip, chunked\r\n",
        b"5\r\nhello\r\n0\r\n\r\n" + hid)
    add("Transfer-Encoding: chunked, chunked", P + b"Transfer-Encoding: chunked, chunked\r\n",
        b"5\r\nhello\r\n0\r\n\r\n" + hid)
    add("Transfer-Encoding: identity", P + b"Transfer-Encoding: identity\r\n", b"hello" + hid)
    add("two Transfer-Encoding headers",
        P + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
        b"5\r\nhello\r\n0\r\n\r\n" + hid)
    add("Content-Length with Transfer-Encoding",
        P + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n" + hid)
    add("Transfer-Encoding in HTTP/1.0",
        b"POST /v1/classify HTTP/1.0\r\nTransfer-Encoding: chunked\r\n",
        b"5\r\nhello\r\n0\r\n\r\n" + hid)
    add("HTTP/1.1 without Host", b"POST /v1/classify HTTP/1.1\r\nContent-Length: 5\r\n",
        b"hello" + hid)
    add("two Host headers", P + b"Host: y\r\nContent-Length: 5\r\n", b"hello" + hid)
    add("chunked body, bare LF in the framing", P + b"Transfer-Encoding: chunked\r\n",
        b"5\nhello\n0\n\n" + hid, 411, "length_required")
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(png), png)
    add("chunked body, valid framing (411 by default)", P + b"Transfer-Encoding: chunked\r\n",
        chunked + hid, 411, "length_required")
    return cases


def test_framing(binary, tmp, before=False):
    model_dir, _ = H.export_model(tmp)
    srv = H.Server(binary, ["--model", model_dir, "--log-level", "info",
                            "--connection-timeout-s", "5"])
    try:
        png = H.png_bytes()
        for name, data, status, code in framing_cases(png):
            t0 = time.monotonic()
            rs, closed = raw_all(srv, data)
            dt = time.monotonic() - t0
            check(len(rs) == 1, f"{name}: want one answer, got {[(r[0], r[2][:80]) for r in rs]}")
            st, hdr, body = rs[0]
            check(st == status, f"{name}: status {st}, want {status}: {body[:200]!r}")
            if code is not None or "json" in hdr.get("content-type", ""):
                check(H.json_error(st, hdr, body, code), f"{name}: not JSON {code}: {body[:200]!r}")
            check(closed and hdr.get("connection", "").lower() == "close",
                  f"{name}: connection not closed ({hdr})")
            check(dt < 2.0, f"{name}: took {dt:.2f} s (hangs until a timeout?)")
            healthy(srv, name)
            print(f"  {name}: {st} in {dt * 1000:.0f} ms, closed")
        # the control: a pipelined request sent honestly IS executed and logged
        ok = b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(png), png)
        rs, _ = raw_all(srv, ok + b"GET /smuggled-control HTTP/1.1\r\nHost: x\r\n"
                        b"Connection: close\r\n\r\n")
        check([r[0] for r in rs] == [200, 404], f"control: {[(r[0], r[2][:80]) for r in rs]}")
        time.sleep(0.3)
        log = srv.logs().decode(errors="replace")
        check("/smuggled-control" in log, "control request missing from the access log")
        for i in range(len(framing_cases(png))):
            check(f"/smuggled-{i}\"" not in log, f"request hidden in case {i} was executed")
        st = srv.proc_status()
        print(f"  peak RSS {st['VmHWM'] >> 20} MiB")
    finally:
        rc = srv.stop()
    check(rc == 0, f"server exit code {rc} (a sanitizer report?)")
    # allow_chunked=1: chunked bodies work again (documented risk: bare LF)
    srv = H.Server(binary, ["--model", model_dir, "--allow-chunked", "1"])
    try:
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(png[i:i + 100]), png[i:i + 100])
                           for i in range(0, len(png), 100)) + b"0\r\n\r\n"
        rs, _ = raw_all(srv, b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                        b"chunked\r\nConnection: close\r\n\r\n" + chunked)
        check(rs and rs[0][0] == 200, f"allow_chunked: valid chunked: {rs[:1]}")
        rs, _ = raw_all(srv, b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                        b"gzip\r\n\r\nhello")
        check(rs and rs[0][0] == 400, f"allow_chunked: gzip still refused: {rs[:1]}")
    finally:
        rc = srv.stop()
    check(rc == 0, f"server exit code {rc} (a sanitizer report?)")


def urllib_post(url, body, headers):
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_linger(binary, tmp):
    model_dir, _ = H.export_model(tmp)
    srv = H.Server(binary, ["--model", model_dir, "--log-level", "info"])
    url = f"http://127.0.0.1:{srv.port}/v1/classify"
    try:
        big = os.urandom(MAX_BODY + (8 << 20))  # 28 MiB: over max_body_bytes
        for n in range(3):  # a reset is a race: try a few times
            st, hdr, body = urllib_post(url, big, {"Content-Type": "image/png"})
            check(st == 413 and H.json_error(st, {k.lower(): v for k, v in hdr.items()}, body,
                                             "body_too_large"), f"urllib 413: {st} {body[:200]!r}")
            check("X-Request-Id" in hdr, f"urllib 413 without X-Request-Id: {hdr}")
        print("  urllib, 28 MiB body: 413 JSON read")
        # http.client: sends the whole body, then reads
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        c.request("POST", "/v2/models/tiny/infer", body=big,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        b = r.read()
        check(r.status == 413 and "error" in json.loads(b), f"http.client v2: {r.status} {b[:200]!r}")
        c.close()
        print("  http.client, 28 MiB body to /v2: 413 JSON read")
        # curl without Expect: 100-continue
        path = os.path.join(tmp, "big.bin")
        with open(path, "wb") as f:
            f.write(big)
        p = subprocess.run(["curl", "-sS", "-H", "Expect:", "-H", "Content-Type: image/png",
                            "--data-binary", "@" + path, "-w", "\n%{http_code}", url],
                           capture_output=True, timeout=60)
        out = p.stdout.decode(errors="replace")
        check(p.returncode == 0 and out.endswith("\n413") and "body_too_large" in out,
              f"curl without Expect: rc {p.returncode} {out[-300:]!r} {p.stderr[-300:]!r}")
        print("  curl without Expect, 28 MiB: 413 JSON read")
        # the lingering close is bounded (linger.h): a client that never
        # stops sending is cut off after 64 MiB discarded or 10 s, whichever
        # comes first, and costs no memory
        rss0 = srv.proc_status()["VmRSS"]
        for label, pause, max_s in (("fast", 0, 13), ("slow", 0.05, 13)):
            s = srv.connect(30)
            s.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 10000000000\r\n\r\n")
            t0, sent, cut = time.monotonic(), 0, False
            chunk = b"\0" * (65536 if not pause else 16384)
            try:
                while time.monotonic() - t0 < 30:
                    s.sendall(chunk)
                    sent += len(chunk)
                    if pause:
                        time.sleep(pause)
            except (BrokenPipeError, ConnectionResetError):
                cut = True
            dt = time.monotonic() - t0
            s.close()
            check(cut and dt < max_s, f"endless body ({label}): not cut off ({dt:.1f} s, "
                  f"{sent >> 20} MiB)")
            check(sent <= (64 << 20) + (16 << 20), f"endless body: {sent >> 20} MiB discarded")
            if pause:
                check(dt > 8, f"endless slow body cut off after {dt:.1f} s, before LINGER_MS")
            print(f"  endless body ({label}): cut off after {dt:.1f} s, {sent >> 20} MiB sent")
        rss1 = srv.proc_status()["VmRSS"]
        check(rss1 - rss0 < (8 << 20), f"endless body: RSS grew {(rss1 - rss0) >> 20} MiB")
        healthy(srv, "linger")
    finally:
        rc = srv.stop()
    check(rc == 0, f"server exit code {rc} (a sanitizer report?)")


def test_budget(binary, tmp):
    model_dir, _ = H.export_model(tmp)
    srv = H.Server(binary, ["--model", model_dir, "--log-level", "info",
                            "--max-inflight-bytes", str(1 << 20)])
    try:
        png = H.png_bytes()
        check(srv.post("/v1/classify", png)[0] == 200, "small body under the budget")
        # a body that alone is over the budget: refused at once, before its body
        big = os.urandom(2 << 20)
        st, hdr, body = urllib_post(f"http://127.0.0.1:{srv.port}/v1/classify", big,
                                    {"Content-Type": "image/png", "X-Request-Id": "budget-1"})
        hdr = {k.lower(): v for k, v in hdr.items()}
        check(st == 503 and H.json_error(st, hdr, body, "over_budget"), f"2 MiB: {st} {body!r}")
        check(hdr.get("retry-after") == "1" and hdr.get("x-request-id") == "budget-1",
              f"503 headers: {hdr}")
        for proto, path in (("v2", "/v2/models/tiny/infer"), ("ts", "/predictions/tiny")):
            st, hdr, body = urllib_post(f"http://127.0.0.1:{srv.port}{path}", big,
                                        {"Content-Type": "application/octet-stream"})
            check(st == 503 and "retry-after" in {k.lower() for k in hdr},
                  f"{proto} 2 MiB: {st} {body[:200]!r}")
        # two uploads held open: the second does not fit beside the first
        held = srv.connect(30)
        half = 700 << 10
        held.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % half
                     + b"\0" * 1000)
        time.sleep(0.3)
        st = srv.post("/v1/classify", b"\0" * half)
        check(st[0] == 503 and H.json_error(*st, "over_budget"), f"second held upload: {st[:1]}")
        held.close()  # the first one's reservation is released when it ends
        time.sleep(0.3)
        st = srv.post("/v1/classify", b"\0" * half)
        check(st[0] != 503, f"after release: {st[0]} {st[2][:200]!r}")
        m = srv.metric("resnetd_rejected_total", {"reason": "over_budget"})
        check(m == 4, f"resnetd_rejected_total{{reason=\"over_budget\"}} = {m}")
        logged = [x for x in srv.log_lines() if x.get("status") == 503]
        check(any(x.get("id") == "budget-1" for x in logged), "503 missing from the access log")
        # multipart parts are reserved too (here: within the Content-Length)
        body, ctype = H.multipart([(b"a.png", png), (b"b.png", png)])
        st = srv.post("/v1/classify", body, ctype)
        check(st[0] == 200, f"multipart under the budget: {st[0]} {st[2][:200]!r}")
        healthy(srv, "budget")
        print(f"  over_budget rejections counted: {m:.0f}")
    finally:
        rc = srv.stop()
    check(rc == 0, f"server exit code {rc} (a sanitizer report?)")
    # chunked bodies (allow_chunked=1) are reserved as they grow: refused
    # once they pass the budget, the rest discarded, answered when complete
    srv = H.Server(binary, ["--model", model_dir, "--allow-chunked", "1",
                            "--max-inflight-bytes", str(1 << 20)])
    try:
        piece = b"\0" * 65536
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(32)) + b"0\r\n\r\n"
        for path in ("/v1/classify", "/v2/models/tiny/infer", "/predictions/tiny"):
            rs, _ = raw_all(srv, b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked)
            check(rs and rs[0][0] == 503 and rs[0][1].get("retry-after") == "1",
                  f"chunked 2 MiB to {path}: {[(r[0], r[2][:100]) for r in rs]}")
        # multipart parts held as they arrive (no Content-Length to reserve up front)
        body, ctype = H.multipart([(b"a.png", b"\0" * (700 << 10)), (b"b.png", b"\0" * (700 << 10))])
        mp = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 65536]), body[i:i + 65536])
                      for i in range(0, len(body), 65536)) + b"0\r\n\r\n"
        rs, _ = raw_all(srv, b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: " +
                        ctype.encode() + b"\r\nTransfer-Encoding: chunked\r\n"
                        b"Connection: close\r\n\r\n" + mp)
        check(rs and rs[0][0] == 503 and H.json_error(*rs[0], "over_budget"),
              f"chunked multipart 1.4 MiB: {[(r[0], r[2][:100]) for r in rs]}")
        check(srv.metric("resnetd_rejected_total", {"reason": "over_budget"}) == 4,
              "chunked over_budget not counted")
        check(srv.post("/v1/classify", png)[0] == 200, "budget released after chunked refusals")
        print("  chunked 2 MiB bodies: 503 over_budget on v1, v2, TorchServe")
    finally:
        rc = srv.stop()
    check(rc == 0, f"server exit code {rc} (a sanitizer report?)")


def main():
    binary, which = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="framing-") as tmp:
        {"framing": test_framing, "linger": test_linger, "budget": test_budget}[which](binary, tmp)
    print(f"framing {which}: ok")


if __name__ == "__main__":
    main()
