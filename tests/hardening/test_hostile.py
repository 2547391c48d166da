#!/usr/bin/env python3
"""Hostile clients against the real `resnetd serve` on 127.0.0.1.

    test_hostile.py RESNETD abuse      malformed / oversized / tricky requests
    test_hostile.py RESNETD crowd      slowloris + idle connections vs p50 latency
    test_hostile.py RESNETD perip      --max-connections-per-ip caps one address
    test_hostile.py RESNETD lockout    one address cannot lock others out (defaults)

abuse: each case gets the right 4xx/5xx with a JSON error body where our
handlers answer (libmicrohttpd answers malformed HTTP itself, with its own
HTML body: those cases check the status, or that the connection is closed);
after every case /healthz must still answer 200, and at the end the server's
peak RSS (VmHWM) must stay under RSS_BOUND_MB.

crowd: p50 latency of sequential classify requests (new connection each)
measured quiet, then with SLOW slowloris connections (one header byte every
2 s) and IDLE idle connections open, then quiet again; the crowded p50 must be
within 2x of the quiet reference (the mean of the two quiet runs; the whole
measurement is retried up to 3 times since the machine is shared and noisy).
The crowd comes from CROWD_ADDRS loopback addresses (127.0.1.x), each under
the default per-address cap (64), so the test measures what it always did
(a crowd does not slow others down) with the shipped defaults.

lockout (issue 13, class 8), with the default limits: one address holding
1,030 half-sent headers, then 24 uploads of 20 MiB with their last byte held
back; /healthz from another address answers in < 100 ms throughout, the
uploads past max_inflight_bytes get 503 over_budget at once, and the
server's RSS stays under its idle RSS + max_inflight_bytes + slack."""

import json
import os
import random
import resource
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hardlib as H  # noqa: E402
from hardlib import check  # noqa: E402

RSS_BOUND_MB = 160  # ~20 MB idle + 2 HTTP threads x (20 MB body + decode) + slack
MAX_BODY = 20 * 1024 * 1024


def sanitized(binary):
    """ASan/TSan builds keep freed memory in quarantine and shadow: 4x the RSS bound."""
    with open(binary, "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__tsan_init" in data


def expect_error(resp, statuses, what, code=None):
    status, headers, body = resp
    check(status in statuses, f"{what}: status {status}, want {statuses}: {body[:200]!r}")
    check(H.json_error(status, headers, body, code),
          f"{what}: not a JSON error (code {code}): {headers} {body[:200]!r}")
    text = body.decode("utf-8", "replace")
    check("/work" not in text and ".c:" not in text and "/tmp" not in text,
          f"{what}: error body leaks a path: {text}")


def expect_mhd_error_or_close(resp, statuses, what):
    """libmicrohttpd's own answers to malformed HTTP (not JSON; not ours)."""
    status = resp[0]
    check(status is None or status in statuses, f"{what}: status {status}, want {statuses}")


def healthy(srv, what):
    check(srv.alive(), f"server died after: {what}")
    check(srv.get("/healthz")[0] == 200, f"/healthz failed after: {what}")


def raw(srv, data, timeout=10, shut=False):
    """Sends data on a fresh connection, reads responses until EOF/timeout."""
    s = srv.connect(timeout)
    out = []
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        r = H._Reader(s)
        while True:
            resp = H.read_response(s, r)
            if resp[0] is None:
                break
            out.append(resp)
            if resp[1].get("connection", "").lower() == "close":
                break
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        pass
    finally:
        s.close()
    return out


def test_abuse(binary, tmp):
    model_dir, _ = H.export_model(tmp)
    # chunked bodies are allowed here so that libmicrohttpd's chunk parser
    # keeps meeting hostile input (by default they get 411: test_framing.py)
    srv = H.Server(binary, ["--model", model_dir, "--log-level", "info",
                            "--connection-timeout-s", "5", "--allow-chunked", "1"])
    try:
        png = H.png_bytes()
        before = srv.proc_status()
        ok = srv.post("/v1/classify", png)
        check(ok[0] == 200 and "predictions" in json.loads(ok[2]), f"baseline classify: {ok}")

        # oversized headers: one 100 KB header, and 2000 small ones
        big = b"X-Big: " + b"a" * 100000 + b"\r\n"
        expect_mhd_error_or_close(srv.get("/healthz", big), (400, 413, 431), "100 KB header")
        healthy(srv, "100 KB header")
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(2000))
        expect_mhd_error_or_close(srv.get("/healthz", many), (400, 413, 431), "2000 headers")
        healthy(srv, "2000 headers")

        # Content-Length shorter than the body: the first bytes are the body
        # (not an image: 4xx JSON), the rest is garbage the server rejects.
        # No half-close here: a client that shuts its sending side while its
        # request waits for the decode pool has left (docs/api.md) and would
        # be answered 499; Connection: close ends the exchange instead.
        rs = raw(srv, b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
                 b"Connection: close\r\n\r\n" + png[:40])
        check(rs, "CL shorter: no response")
        expect_error(rs[0], (400, 415), "CL shorter than body")
        healthy(srv, "CL shorter")
        # Content-Length longer than the body, then the client half-closes:
        # nothing complete to answer; the server drops the connection
        rs = raw(srv, b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" +
                 png[:40], shut=True, timeout=15)
        check(all(r[0] >= 400 for r in rs), f"CL longer: {rs}")
        healthy(srv, "CL longer")

        # broken chunked encoding
        for i, body in enumerate([b"zz\r\nabc\r\n0\r\n\r\n", b"5\r\nabc\r\n0\r\n\r\n",
                                  b"ffffffffffffffffff\r\nabc\r\n", b"3\r\nabcXX0\r\n\r\n"]):
            rs = raw(srv, b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                     b"\r\n\r\n" + body, shut=True)
            for r in rs:
                check(r[0] >= 400, f"broken chunked {i}: {r}")
                if "json" in r[1].get("content-type", ""):
                    expect_error(r, (400, 413, 415), f"broken chunked {i}")
            healthy(srv, f"broken chunked {i}")
        # valid chunked body is accepted
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(png[i:i + 100]), png[i:i + 100])
                           for i in range(0, len(png), 100)) + b"0\r\n\r\n"
        rs = raw(srv, b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                 b"Connection: close\r\n\r\n" + chunked)
        check(rs and rs[0][0] == 200, f"valid chunked: {rs[:1]}")

        # pipelined requests: answered in order
        pipe = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                b"POST /v1/classify?top_k=2 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") % (len(png),
                                                                                      png)
        rs = raw(srv, pipe)
        check([r[0] for r in rs] == [200, 200, 404, 200], f"pipelined: {[r[0] for r in rs]}")
        check(len(json.loads(rs[1][2])["predictions"]) == 2, "pipelined classify top_k")
        expect_error(rs[2], (404,), "pipelined 404")

        # Content-Length together with Transfer-Encoding (request smuggling)
        rs = raw(srv, b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n"
                 b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", shut=True)
        check(len(rs) == 1, f"CL+TE: the connection must close after the error: {rs}")
        expect_error(rs[0], (400,), "CL+TE", "bad_request")
        healthy(srv, "CL+TE")

        # model names
        for name in ["..", "%2e%2e", "%2E%2E%2F..", "..%2f..%2fetc%2fpasswd", "a%00b", "%00",
                     "tiny%00", "x" * 10240]:
            r = srv.post(f"/v1/models/{name}/classify", png)
            if r[0] in (414, 431, 413) and len(name) > 1000:
                continue  # MHD's own URI limit
            expect_error(r, (400, 404), f"model name {name[:20]}")
        r = srv.request(b"POST /v1/models/../classify HTTP/1.1\r\nHost: x\r\nContent-Length: 0"
                        b"\r\n\r\n")
        expect_error(r, (400, 404), "raw ..")
        r = srv.request(b"POST /v1/models/ti\0ny/classify HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: 0\r\n\r\n")
        expect_mhd_error_or_close(r, (400, 404), "raw NUL in path")
        healthy(srv, "model names")

        # multipart
        body, _ = H.multipart([(b"a.png", png)])
        expect_error(srv.post("/v1/classify", body, "multipart/form-data"), (400,),
                     "multipart without boundary")
        inner, ictype = H.multipart([(b"in.png", png)], "innerbound")
        nested = (b"--outer\r\nContent-Disposition: form-data; name=\"f\"; filename=\"n\"\r\n"
                  b"Content-Type: " + ictype.encode() + b"\r\n\r\n" + inner + b"\r\n--outer--\r\n")
        r = srv.post("/v1/classify", nested, "multipart/form-data; boundary=outer")
        if r[0] == 200:
            res = json.loads(r[2])["results"]
            check(len(res) == 1 and "error" in res[0], f"nested multipart: {res}")
        else:
            expect_error(r, (400, 415), "nested multipart")
        body, ctype = H.multipart([(b"\xff\xfe\x80bad.png", png), (b"ok.png", png)])
        r = srv.post("/v1/classify", body, ctype)
        check(r[0] == 200, f"non-UTF-8 filename: {r[0]} {r[2][:200]!r}")
        res = json.loads(r[2])["results"]
        check(len(res) == 2 and all("predictions" in x for x in res), f"non-UTF-8: {res}")
        check(res[1]["filename"] == "ok.png" and "bad.png" in res[0]["filename"],
              f"non-UTF-8 filenames: {res}")
        body, ctype = H.multipart([(b"p%d" % i, b"x") for i in range(10000)])
        r = srv.post("/v1/classify", body, ctype)
        expect_error(r, (400, 413), "10,000 tiny parts")
        healthy(srv, "multipart")

        # top_k
        for v, want in [("-1", 400), ("0", 400), ("1000000000", 400), ("abc", 400),
                        ("", 400), ("3", 200), ("10", 200)]:
            r = srv.post(f"/v1/classify?top_k={v}", png)
            if want == 200:
                check(r[0] == 200 and len(json.loads(r[2])["predictions"]) == int(v),
                      f"top_k={v}: {r[0]} {r[2][:200]!r}")
            else:
                expect_error(r, (400,), f"top_k={v}", "invalid_top_k")

        # decompression bombs: refused from the header, before any big allocation
        bomb = H.huge_zero_png(30000, 30000)
        check(len(bomb) < MAX_BODY, f"bomb PNG is {len(bomb)} bytes")
        t0 = time.monotonic()
        # image_too_large is 400 in img_status_http (cfg's help says 413: see bugs.md)
        expect_error(srv.post("/v1/classify", bomb, "image/png"), (400, 413),
                     "PNG 30000x30000", "image_too_large")
        check(time.monotonic() - t0 < 10, "PNG bomb took too long")
        expect_error(srv.post("/v1/classify", H.jpeg_claiming(65500, 65500), "image/jpeg"),
                     (400, 413), "JPEG 65500x65500", "image_too_large")
        healthy(srv, "bombs")

        # 1 GB declared body: 413 at once, without reading it
        s = srv.connect(10)
        s.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n")
        r = H.read_response(s)
        s.close()
        expect_error(r, (413,), "1 GB declared body", "body_too_large")
        # a chunked body past the limit is cut off too
        s = srv.connect(30)
        s.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (1 << 20, b"\0" * (1 << 20))
        sent = 0
        try:
            while sent < 200 * (1 << 20):
                s.sendall(chunk)
                sent += 1 << 20
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        s.close()
        check(sent < 200 * (1 << 20), "a 200 MB chunked body was read to the end")
        healthy(srv, "1 GB body")

        after = srv.proc_status()
        bound = RSS_BOUND_MB * (4 if sanitized(binary) else 1)
        print(json.dumps({"rss_before_mb": before["VmRSS"] >> 20,
                          "rss_after_mb": after["VmRSS"] >> 20,
                          "peak_rss_mb": after["VmHWM"] >> 20, "bound_mb": bound,
                          "chunked_bytes_sent_before_cutoff": sent}))
        check(after["VmHWM"] < bound << 20, f"peak RSS {after['VmHWM'] >> 20} MB")
        check(srv.stop() == 0, "server did not exit cleanly")
    finally:
        srv.cleanup()


def p50(srv, png, n):
    lat = []
    req = (b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
           b"Connection: close\r\n\r\n%s") % (len(png), png)
    for _ in range(n):
        t0 = time.perf_counter()
        r = srv.request(req)
        lat.append(time.perf_counter() - t0)
        check(r[0] == 200, f"normal client got {r[0]}")
    lat.sort()
    return lat[len(lat) // 2]


CROWD_ADDRS = 24  # 1300 / 24 = 55 connections per address: under the default cap of 64


def connect_from(srv, i, timeout=30):
    """A connection from loopback address 127.0.1.(1 + i % CROWD_ADDRS)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((f"127.0.1.{1 + i % CROWD_ADDRS}", 0))
    s.connect(("127.0.0.1", srv.port))
    return s


def test_crowd(binary, tmp, slow=300, idle=1000, n=200):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    check(hard > slow + idle + 100, f"fd limit {hard} too low")
    model_dir, _ = H.export_model(tmp)
    srv = H.Server(binary, ["--model", model_dir, "--log-level", "info",
                            "--max-connections", str(slow + idle + 200),
                            "--connection-timeout-s", "120"])
    try:
        png = H.png_bytes()
        p50(srv, png, 20)  # warm-up
        result = None
        for attempt in range(3):
            quiet1 = p50(srv, png, n)
            socks, stop = [], threading.Event()
            for i in range(idle):
                socks.append(connect_from(srv, i))
            loris = []
            for i in range(slow):
                s = connect_from(srv, idle + i)
                s.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                loris.append(s)

            def drip():
                while not stop.is_set():
                    for s in loris:
                        try:
                            s.send(b"a")
                        except OSError:
                            pass
                    stop.wait(2.0)
            t = threading.Thread(target=drip, daemon=True)
            t.start()
            time.sleep(1)
            crowded = p50(srv, png, n)
            st = srv.proc_status()
            stop.set()
            t.join()
            # still connected? (the server must not have shed them to look good)
            alive = 0
            for s in socks + loris:
                s.setblocking(False)
                try:
                    alive += s.recv(1) != b""
                except BlockingIOError:
                    alive += 1
                except OSError:
                    pass
                s.close()
            time.sleep(1)
            quiet2 = p50(srv, png, n)
            ref = (quiet1 + quiet2) / 2
            result = {"attempt": attempt + 1, "quiet_p50_ms": round(ref * 1e3, 3),
                      "quiet1_ms": round(quiet1 * 1e3, 3), "quiet2_ms": round(quiet2 * 1e3, 3),
                      "crowded_p50_ms": round(crowded * 1e3, 3),
                      "ratio": round(crowded / ref, 3), "slowloris": slow, "idle": idle,
                      "still_open_at_end": alive, "server_fds": st["fds"],
                      "server_threads": st["Threads"], "server_rss_mb": st["VmRSS"] >> 20}
            print(json.dumps(result), flush=True)
            check(alive >= (slow + idle) * 0.95, f"connections were dropped: {result}")
            if crowded <= 2 * ref:
                break
        check(result["ratio"] <= 2.0, f"p50 with hostile crowd over 2x quiet: {result}")
        healthy(srv, "crowd")
        check(srv.stop() == 0, "server did not exit cleanly")
    finally:
        srv.cleanup()


def test_perip(binary, tmp, limit=20):
    """--max-connections-per-ip: one address cannot hold more than its share."""
    model_dir, _ = H.export_model(tmp)
    srv = H.Server(binary, ["--model", model_dir, "--log-level", "info",
                            "--max-connections-per-ip", str(limit)])
    try:
        time.sleep(0.5)  # the readiness probe's connection is gone
        held = [srv.connect(10) for _ in range(limit)]
        for s in held:  # half a request each: a slow client
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.5)
        try:
            r = srv.get("/healthz")
        except OSError:
            r = (None, {}, b"")
        check(r[0] is None, f"connection {limit + 1} from one address was served: {r[0]}")
        for s in held:
            s.close()
        time.sleep(0.5)
        check(srv.get("/healthz")[0] == 200, "served again once the address is under its limit")
        check(srv.stop() == 0, "server did not exit cleanly")
    finally:
        srv.cleanup()


def healthz_ms(srv):
    """/healthz from 127.0.0.1 (not the attacker's address): ms, or None."""
    t0 = time.perf_counter()
    try:
        r = srv.request(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        timeout=10)
    except OSError:
        return None
    return (time.perf_counter() - t0) * 1e3 if r[0] == 200 else None


def test_lockout(binary, tmp, half_headers=1030, uploads=24):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    model_dir, _ = H.export_model(tmp)
    srv = H.Server(binary, ["--model", model_dir])  # the default limits
    attacker = "127.0.2.1"

    def from_attacker():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        s.bind((attacker, 0))
        s.connect(("127.0.0.1", srv.port))
        return s

    try:
        time.sleep(0.3)
        idle_rss = srv.proc_status()["VmRSS"]
        # 1) half-sent headers: the address is held to max_connections_per_ip
        held = []
        for _ in range(half_headers):
            try:
                s = from_attacker()
                s.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                held.append(s)
            except OSError:
                pass
        time.sleep(0.5)
        worst = max((healthz_ms(srv) or 1e9) for _ in range(20))
        print(json.dumps({"case": "1030 half-sent headers", "healthz_worst_ms": round(worst, 1),
                          "server_fds": srv.proc_status()["fds"]}), flush=True)
        check(worst < 100, f"/healthz took {worst:.0f} ms with {half_headers} half-sent headers")
        for s in held:
            s.close()
        time.sleep(1)
        # 2) uploads of max_body_bytes with the last byte held back
        body = b"\0" * (MAX_BODY - 1)
        ups, codes = [], []
        for i in range(uploads):
            s = from_attacker()
            s.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                      b"Content-Length: %d\r\n\r\n" % MAX_BODY)
            try:
                s.sendall(body)
            except OSError:
                pass
            s.settimeout(0.3)
            try:  # refused at once: 503 over_budget before the body is read
                r = H.read_response(s)
            except OSError:
                r = (None, {}, b"")
            codes.append(r[0])
            if r[0] == 503:
                check(H.json_error(*r, "over_budget") and r[1].get("retry-after") == "1",
                      f"upload {i}: {r}")
            ups.append(s)
        time.sleep(0.5)
        st = srv.proc_status()
        worst = max((healthz_ms(srv) or 1e9) for _ in range(20))
        held_ok = codes.count(None)
        budget = 256 << 20
        result = {"case": f"{uploads} x 20 MiB, last byte held", "held": held_ok,
                  "refused_503": codes.count(503), "healthz_worst_ms": round(worst, 1),
                  "idle_rss_mb": idle_rss >> 20, "rss_mb": st["VmRSS"] >> 20,
                  "peak_rss_mb": st["VmHWM"] >> 20}
        print(json.dumps(result), flush=True)
        check(held_ok == budget // MAX_BODY, f"uploads held: {held_ok}, want {budget // MAX_BODY}")
        check(codes.count(503) == uploads - held_ok, f"the others were not 503: {codes}")
        check(worst < 100, f"/healthz took {worst:.0f} ms with uploads held")
        bound = idle_rss + budget + (64 << 20)
        check(st["VmHWM"] < bound * (4 if sanitized(binary) else 1),
              f"peak RSS {st['VmHWM'] >> 20} MiB over {bound >> 20} MiB")
        for s in ups:
            s.close()
        healthy(srv, "lockout")
        check(srv.stop() == 0, "server did not exit cleanly")
    finally:
        srv.cleanup()


def main():
    binary, which = sys.argv[1], sys.argv[2]
    random.seed(0)
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        {"abuse": test_abuse, "crowd": test_crowd, "perip": test_perip,
         "lockout": test_lockout}[which](binary, tmp)
    print(f"hostile {which}: ok")


if __name__ == "__main__":
    main()
