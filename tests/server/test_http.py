#!/usr/bin/python3
"""End-to-end tests of `resnetd serve` (real binary, loopback, real bytes).

usage: test_http.py RESNETD_BINARY {api|concurrency|overload|drain|metrics}

References are independent: torchvision preprocessing + the torch model the
ONNX file was exported from, and `resnetd classify` for bit-identical output.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

import srvtest
from srvtest import check

BIN = None


def is_error(status, headers, body, code=None):
    check(headers.get("content-type", "").startswith("application/json"),
          f"{status}: error not JSON: {headers}")
    e = json.loads(body)["error"]
    check(isinstance(e["code"], str) and isinstance(e["message"], str), e)
    if code:
        check(e["code"] == code, f"want code {code}, got {e}")
    return e


def close_enough(preds, ref, tol=2e-4):
    """Predictions (index, probability) agree with the torch reference."""
    check(len(preds) == len(ref), (preds, ref))
    for p, (i, prob) in zip(preds, ref):
        check(abs(p["probability"] - prob) < tol, f"probability {p} vs {(i, prob)}")
    # indices: equal, except where the reference itself has a near tie
    for k, (p, (i, prob)) in enumerate(zip(preds, ref)):
        if p["index"] != i:
            check(abs(prob - ref[min(k + 1, len(ref) - 1)][1]) < tol or
                  abs(prob - ref[max(k - 1, 0)][1]) < tol, f"index {p} vs {(i, prob)}")
        check(p["label"] == srvtest.LABELS[p["index"]], p)


def classify_cli(model_dir, files, k=5):
    out = subprocess.run([BIN, "classify", "--model", model_dir, "--top-k", str(k)] + files,
                         capture_output=True, check=True, text=True).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    check([x["file"] for x in lines] == files, lines)
    return {x["file"]: x["predictions"] for x in lines}


def test_api(tmp):
    tiny, net = srvtest.export_model(tmp, "tiny", seed=1)
    second, net2 = srvtest.export_model(tmp, "second", seed=2)
    imgs = srvtest.make_images(tmp)
    s = srvtest.Server(BIN, ["--model", tiny, "--model", second, "--max-body-bytes", "300000",
                             "--allow-chunked", "1"])
    sent = 0
    try:
        st, h, body = s.json("GET", "/healthz")
        check(st == 200 and body == {"status": "ok"}, body)
        st, h, body = s.json("GET", "/readyz")
        check(st == 200, body)
        st, h, body = s.json("GET", "/v1/models")
        check(st == 200 and [m["name"] for m in body["models"]] == ["tiny", "second"], body)
        for m in body["models"]:
            check(m["input_shape"] == [1, 28, 28] and m["classes"] == 10, m)
            check(m["config"]["input"]["color"] == "gray", m)
        sent += 2  # /readyz is not counted: the start-up polling adds its own
        # raw bodies, default top_k and several values, against torch
        for p in imgs:
            data = open(p, "rb").read()
            st, h, body = s.json("POST", "/v1/classify", data)
            check(st == 200 and body["model"] == "tiny", body)
            close_enough(body["predictions"], srvtest.reference(net, p, 5))
            sent += 1
        data = open(imgs[0], "rb").read()
        for k, want in ((1, 1), (3, 3), (10, 10), (50, 10)):
            st, h, body = s.json("POST", f"/v1/classify?top_k={k}", data,
                                 {"Content-Type": "image/png"})
            check(st == 200 and len(body["predictions"]) == want, (k, body))
            close_enough(body["predictions"], srvtest.reference(net, imgs[0], want))
            sent += 1
        # a named model
        st, h, body = s.json("POST", "/v1/models/second/classify?top_k=3", data)
        check(st == 200 and body["model"] == "second", body)
        close_enough(body["predictions"], srvtest.reference(net2, imgs[0], 3))
        sent += 1
        # multipart: two images and one non-image part
        files = [(os.path.basename(imgs[1]), open(imgs[1], "rb").read()),
                 (os.path.basename(imgs[2]), open(imgs[2], "rb").read()),
                 ("notes.txt", b"hello, not an image")]
        mp, ct = srvtest.multipart(files)
        st, h, body = s.json("POST", "/v1/classify?top_k=4", mp, {"Content-Type": ct})
        check(st == 200 and len(body["results"]) == 3, body)
        for r, (name, _), p in zip(body["results"], files, imgs[1:3]):
            check(r["filename"] == name, r)
            close_enough(r["predictions"], srvtest.reference(net, p, 4))
        check(body["results"][2]["filename"] == "notes.txt", body)
        check(body["results"][2]["error"]["code"] == "unsupported_image", body)
        sent += 1
        # a multipart request with more images than max_batch (8) spans batches
        many = [(f"p{i}_{os.path.basename(p)}", open(p, "rb").read()) for i, p in
                enumerate(imgs + imgs)]
        mp, ct = srvtest.multipart(many)
        st, h, body = s.json("POST", "/v1/classify?top_k=2", mp, {"Content-Type": ct})
        check(st == 200 and len(body["results"]) == 12, body)
        for r, (name, _), p in zip(body["results"], many, imgs + imgs):
            check(r["filename"] == name, r)
            close_enough(r["predictions"], srvtest.reference(net, p, 2))
        sent += 1
        # X-Request-Id echoed, or generated and unique
        st, h, _ = s.request("GET", "/healthz", headers={"X-Request-Id": "abc-123"})
        check(h.get("x-request-id") == "abc-123", h)
        ids = {s.request("GET", "/healthz")[1]["x-request-id"] for _ in range(3)}
        check(len(ids) == 3 and all(ids), ids)
        sent += 4
        # every error code, provoked for real
        jpeg = open(imgs[1], "rb").read()
        cases = [
            ("POST", "/v1/classify?top_k=0", data, {}, 400, "invalid_top_k"),
            ("POST", "/v1/classify?top_k=x", data, {}, 400, "invalid_top_k"),
            ("POST", "/v1/classify", jpeg[:200], {}, 400, "invalid_image"),
            ("POST", "/v1/classify", b"", {}, 400, None),
            ("GET", "/nope", None, {}, 404, "not_found"),
            ("POST", "/v1/models/nope/classify", data, {}, 404, "model_not_found"),
            ("GET", "/v1/classify", None, {}, 405, "method_not_allowed"),
            ("POST", "/healthz", b"x", {}, 405, "method_not_allowed"),
            ("POST", "/v1/classify", b"\0" * 400000, {}, 413, "body_too_large"),
            ("POST", "/v1/classify", b"just some text", {}, 415, "unsupported_image"),
            ("POST", "/v1/classify", data, {"X-Request-Timeout-Ms": "0"}, 504,
             "deadline_exceeded"),
        ]
        for method, path, body_, hdrs, want, code in cases:
            st, h, b = s.request(method, path, body_, hdrs)
            check(st == want, f"{method} {path}: want {want}, got {st} {b[:200]}")
            is_error(st, h, b, code)
            if want == 405:
                check("allow" in h, h)
            sent += 1
        # a chunked upload over the limit is held to max_body_bytes too
        c = s.conn()
        c.request("POST", "/v1/classify", body=iter([b"\xff" * 100000] * 4),
                  encode_chunked=True)
        r = c.getresponse()
        st, b = r.status, r.read()
        c.close()
        check(st == 413, f"chunked: {st} {b}")
        is_error(st, {"content-type": r.getheader("Content-Type")}, b, "body_too_large")
        sent += 1
        # a chunked upload under the limit works
        c = s.conn()
        c.request("POST", "/v1/classify", body=iter([data[:100], data[100:]]), encode_chunked=True)
        r = c.getresponse()
        check(r.status == 200, r.status)
        close_enough(json.loads(r.read())["predictions"], srvtest.reference(net, imgs[0], 5))
        c.close()
        sent += 1
    finally:
        rc = s.stop()
    check(rc == 0, f"exit code {rc}")
    log = [x for x in s.log_lines() if "method" in x and x["path"] != "/readyz"]
    check(len(log) == sent, f"{len(log)} access-log lines for {sent} requests")
    for x in log:
        for key in ("time", "id", "method", "path", "status", "bytes", "ms", "model", "images"):
            check(key in x, f"access log misses {key}: {x}")
    check(any(x["id"] == "abc-123" for x in log), "request id not logged")
    s.cleanup()


def test_concurrency(tmp):
    tiny, net = srvtest.export_model(tmp, "tiny", seed=3)
    imgs = srvtest.make_images(tmp, 8)
    want = classify_cli(tiny, imgs)
    for p in imgs:
        close_enough(want[p], srvtest.reference(net, p, 5))
    s = srvtest.Server(BIN, ["--model", tiny, "--queue-capacity", "1024"])
    bodies = {p: open(p, "rb").read() for p in imgs}
    failures, done = [], [0]
    lock = threading.Lock()

    def client(n):
        c = s.conn()
        try:
            for j in range(len(imgs)):
                p = imgs[(n + j) % len(imgs)]
                c.request("POST", "/v1/classify", body=bodies[p])
                r = c.getresponse()
                body = json.loads(r.read())
                with lock:
                    done[0] += 1
                    if r.status != 200 or body["predictions"] != want[p]:
                        failures.append((p, r.status, body))
        except Exception as e:  # noqa: BLE001 - any failure fails the test
            with lock:
                failures.append(repr(e))
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not failures, f"{len(failures)} bad answers, first: {failures[:2]}")
    check(done[0] == 64 * len(imgs), done)
    rc = s.stop()
    check(rc == 0, f"exit code {rc}")
    s.cleanup()


def test_overload(tmp):
    # A queue of 2 images with batches of 8 that wait up to 300 ms to fill: the
    # queue is full most of the time whatever the engine's speed.
    heavy, net = srvtest.export_model(tmp, "heavy", seed=4)
    imgs = srvtest.make_images(tmp, 4)
    want = classify_cli(heavy, imgs)
    s = srvtest.Server(BIN, ["--model", heavy, "--workers", "1", "--max-batch", "8",
                             "--queue-capacity", "2", "--batch-timeout-us", "300000"])
    bodies = {p: open(p, "rb").read() for p in imgs}
    results, lock = [], threading.Lock()

    def client(n):
        for j in range(4):
            p = imgs[(n + j) % len(imgs)]
            try:
                st, h, b = s.request("POST", "/v1/classify", bodies[p])
                with lock:
                    results.append((p, st, h, b))
            except Exception as e:  # noqa: BLE001
                with lock:
                    results.append((p, -1, {}, repr(e).encode()))

    # an upload left half-sent keeps batches waiting their full 300 ms for it
    slow = socket.create_connection(("127.0.0.1", s.port), timeout=60)
    slow.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nxx")
    threads = [threading.Thread(target=client, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    slow.close()
    codes = [r[1] for r in results]
    check(len(results) == 128, len(results))
    check(set(codes) <= {200, 503}, f"unexpected codes {set(codes)}: "
          f"{[r for r in results if r[1] not in (200, 503)][:2]}")
    n503 = codes.count(503)
    check(n503 > 0, "no request was refused with a queue of 2")
    check(codes.count(200) > 0, "nothing was served")
    for p, st, h, b in results:
        if st == 503:
            check(h.get("retry-after", "").isdigit(), h)
            is_error(st, h, b, "queue_full")
        else:
            check(json.loads(b)["predictions"] == want[p], b)
    st, _, _ = s.request("GET", "/healthz")
    check(st == 200, "server died")
    m = s.metrics()
    check('resnetd_queue_depth{model="heavy",version="1"} 0' in m, "queue depth did not return to 0")
    check(f'resnetd_rejected_total{{reason="queue_full"}} {n503}' in m, "rejected_total wrong")
    check(f'resnetd_requests_total{{model="heavy",version="1",code="503",protocol="http"}} {n503}' in m, "503 count")
    rc = s.stop()
    check(rc == 0, f"exit code {rc}")
    s.cleanup()
    print(f"overload: {n503} of 128 refused with 503")


def test_drain(tmp):
    # Batches wait up to 5 s to fill: requests are surely in flight at SIGTERM,
    # and the drain must flush them at once rather than wait out the timer.
    heavy, net = srvtest.export_model(tmp, "heavy", seed=4, max_batch=16)
    imgs = srvtest.make_images(tmp, 4)
    want = classify_cli(heavy, imgs)
    drain_ms = 20000
    s = srvtest.Server(BIN, ["--model", heavy, "--workers", "1", "--batch-timeout-us", "5000000",
                             "--queue-capacity", "256", "--drain-timeout-ms", str(drain_ms)])
    keep = s.conn()
    st, _, _ = s.request("GET", "/readyz", conn=keep)
    check(st == 200, st)
    bodies = {p: open(p, "rb").read() for p in imgs}
    results, lock = [], threading.Lock()

    def client(n):
        p = imgs[n % len(imgs)]
        try:
            st, h, b = s.request("POST", "/v1/classify", bodies[p], timeout=120)
        except Exception as e:  # noqa: BLE001
            st, h, b = -1, {}, repr(e).encode()
        with lock:
            results.append((p, st, b))

    # one accepted request whose body is still uploading at SIGTERM; while it
    # is announced, the batch of the others waits for it (up to 5 s)
    slow = socket.create_connection(("127.0.0.1", s.port), timeout=60)
    slow_body = bodies[imgs[1]]
    half = len(slow_body) // 2
    slow.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(slow_body) + slow_body[:half])
    n = 12
    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    # wait until every request is accepted (in flight), then SIGTERM
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = s.request("GET", "/metrics", conn=keep)[2].decode()
        inflight = int(re.search(r"^resnetd_inflight_requests (\d+)", m, re.M).group(1))
        if inflight >= n + 2 or len(results) > 0:
            break
        time.sleep(0.01)
    print(f"drain: {inflight} in flight at SIGTERM")
    check(not results, "requests finished before SIGTERM: batches did not wait")
    t0 = time.monotonic()
    s.proc.send_signal(15)
    for _ in range(100):  # the signal is taken asynchronously: allow it a moment
        st, h, b = s.request("GET", "/readyz")
        if st == 503:
            break
        time.sleep(0.01)
    check(st == 503, f"/readyz after SIGTERM: {st}")
    is_error(st, h, b, "draining")
    # no new work is accepted while draining
    st, h, b = s.request("POST", "/v1/classify", bodies[imgs[0]])
    check(st == 503 and h.get("retry-after"), f"classify while draining: {st}")
    is_error(st, h, b, "draining")
    keep.close()
    # the accepted upload completes and is answered
    slow.sendall(slow_body[half:])
    resp = b""
    while True:
        chunk = slow.recv(65536)
        if not chunk:
            break
        resp += chunk
    slow.close()
    head, _, body = resp.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 200"), f"slow upload during drain: {head[:80]}")
    check(json.loads(body)["predictions"] == want[imgs[1]], body)
    for t in threads:
        t.join()
    rc = s.proc.wait(timeout=drain_ms / 1000 + 30)
    elapsed = time.monotonic() - t0
    check(rc == 0, f"exit code {rc}")
    check(elapsed < 4.5, f"drain took {elapsed:.1f}s: the forming batch was not flushed")
    check(elapsed < drain_ms / 1000, f"drain took {elapsed:.1f}s")
    bad = [r for r in results if r[1] != 200 or json.loads(r[2])["predictions"] != want[r[0]]]
    check(len(results) == n and not bad, f"accepted requests failed: {bad[:2]}")
    s.stop()
    s.cleanup()
    print(f"drain: {n} accepted requests completed, exit 0 after {elapsed:.2f}s")


def test_metrics(tmp):
    from prometheus_client.parser import text_string_to_metric_families
    tiny, net = srvtest.export_model(tmp, "tiny", seed=5)
    imgs = srvtest.make_images(tmp, 4)
    s = srvtest.Server(BIN, ["--model", tiny])
    sent = {}

    def send(method, path, body=None, hdrs=None):
        st = s.request(method, path, body, hdrs)[0]
        sent[st] = sent.get(st, 0) + 1

    for i in range(10):
        send("POST", "/v1/classify", open(imgs[i % 4], "rb").read())
    mp, ct = srvtest.multipart([("a.png", open(imgs[0], "rb").read()),
                                ("b.jpg", open(imgs[1], "rb").read())])
    send("POST", "/v1/classify", mp, {"Content-Type": ct})
    for _ in range(3):
        send("GET", "/nope")
    for _ in range(2):
        send("POST", "/v1/classify", b"not an image")
    send("DELETE", "/v1/classify")
    send("GET", "/healthz")
    send("POST", "/v1/classify", open(imgs[0], "rb").read(), {"X-Request-Timeout-Ms": "0"})
    check(sent == {200: 12, 404: 3, 415: 2, 405: 1, 504: 1}, sent)
    for x in s.log_lines():  # the start-up /readyz polling counts too
        if x.get("path") == "/readyz":
            sent[x["status"]] = sent.get(x["status"], 0) + 1
    text = s.metrics()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("resnetd_requests", "resnetd_images", "resnetd_rejected",
                 "resnetd_request_duration_seconds", "resnetd_queue_duration_seconds",
                 "resnetd_preprocess_duration_seconds", "resnetd_inference_duration_seconds",
                 "resnetd_batch_size", "resnetd_queue_depth", "resnetd_inflight_requests",
                 "resnetd_build_info", "process_resident_memory_bytes", "process_cpu_seconds",
                 "process_start_time_seconds", "process_open_fds"):
        check(name in fams, f"missing metric family {name}")

    def samples(fam, suffix=""):
        return [x for x in fams[fam].samples if x.name == fam + suffix]

    req = samples("resnetd_requests", "_total")
    check(sum(x.value for x in req) == sum(sent.values()), f"requests_total {req} vs {sent}")
    by_code = {}
    for x in req:
        if x.labels["code"] != "other":
            c = int(x.labels["code"])
            by_code[c] = by_code.get(c, 0) + x.value
    for code, n in sent.items():
        check(by_code.get(code) == n, f"code {code}: {by_code.get(code)} != {n}")
    check(sum(x.value for x in req if x.labels["model"] == "tiny" and x.labels["code"] == "200")
          == 11, "classify 200s")
    images = samples("resnetd_images", "_total")
    check(len(images) == 1 and images[0].value == 12, images)  # 10 raw + 2 multipart
    bs_sum = samples("resnetd_batch_size", "_sum")[0].value
    bs_count = samples("resnetd_batch_size", "_count")[0].value
    inf_count = samples("resnetd_inference_duration_seconds", "_count")[0].value
    check(bs_sum == 12 and bs_count == inf_count and 1 <= bs_count <= 12, (bs_sum, bs_count))
    def http_only(xs):  # the protocol="http" series (this test sends no gRPC)
        return [x for x in xs if x.labels.get("protocol") == "http"]

    rd = http_only(samples("resnetd_request_duration_seconds", "_count"))[0].value
    model_reqs = sum(x.value for x in req if x.labels["model"] == "tiny")
    check(rd == model_reqs, (rd, model_reqs))
    buckets = http_only(samples("resnetd_request_duration_seconds", "_bucket"))
    check(buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == rd, buckets[-1])
    check([b.value for b in buckets] == sorted(b.value for b in buckets), "buckets not cumulative")
    check(samples("process_resident_memory_bytes")[0].value > 1e6, "rss")
    check(abs(samples("process_start_time_seconds")[0].value - time.time()) < 600, "start time")
    dl = [x for x in samples("resnetd_rejected", "_total") if x.labels["reason"] == "deadline"]
    check(dl[0].value == 1, dl)
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True)
    check(p.returncode == 0, f"promtool: {p.stdout} {p.stderr}")
    rc = s.stop()
    check(rc == 0, f"exit code {rc}")
    s.cleanup()


def test_config(tmp):
    """The schema through the real binary: --print-config, precedence, exit 2
    naming the key; and the default model found next to the executable (build
    tree ../models, install ../share/resnetd/models), never in the cwd."""
    def run(args, env=None):
        e = {k: v for k, v in os.environ.items() if not k.startswith("RESNETD_")}
        e.update(env or {})
        return subprocess.run([BIN, "serve"] + args, capture_output=True, text=True, env=e,
                              cwd=tmp)
    p = run(["--print-config"])
    check(p.returncode == 0, p.stderr)
    cfg = json.loads(p.stdout)
    for key in ("host", "port", "model", "model_repository", "workers", "threads_per_worker",
                "max_batch", "batch_timeout_us", "queue_capacity", "max_body_bytes",
                "max_image_pixels", "request_timeout_ms", "drain_timeout_ms", "top_k",
                "log_level"):
        check(key in cfg, f"--print-config misses {key}")
    check(cfg["host"] == "127.0.0.1" and cfg["port"] == 8080, cfg)
    f = os.path.join(tmp, "c.json")
    with open(f, "w") as fh:
        json.dump({"max_batch": 4, "top_k": 3, "queue_capacity": 10}, fh)
    p = run(["--config", f, "--top-k", "2", "--print-config"],
            {"RESNETD_MAX_BATCH": "6", "RESNETD_TOP_K": "9"})
    cfg = json.loads(p.stdout)
    check((cfg["max_batch"], cfg["top_k"], cfg["queue_capacity"]) == (6, 2, 10), cfg)
    for args, env, key in ((["--workers", "0"], {}, "workers"),
                           ([], {"RESNETD_PORT": "http"}, "port"),
                           (["--log-level", "chatty"], {}, "log_level"),
                           (["--no-such-flag"], {}, "--no-such-flag")):
        p = run(args, env)
        check(p.returncode == 2 and key in p.stderr, (args, env, p.returncode, p.stderr))
    p = run(["--help"])
    check(p.returncode == 0 and "--max-batch" in p.stdout and "RESNETD_MAX_BATCH" in p.stdout,
          p.stdout[:300])
    # default model relative to the executable
    import shutil
    for layout in ("models", "share/resnetd/models"):
        root = os.path.join(tmp, layout.replace("/", "_") + "_tree")
        os.makedirs(os.path.join(root, "bin"))
        exe = os.path.join(root, "bin", "resnetd")
        shutil.copy(BIN, exe)
        d, _ = srvtest.export_model(os.path.join(root, layout), "fashion-mnist", seed=9)
        s = srvtest.Server(exe, [])
        st, h, body = s.json("GET", "/v1/models")
        check(st == 200 and body["models"][0]["name"] == "fashion-mnist", body)
        check(s.stop() == 0, "exit code")
        s.cleanup()
    p = subprocess.run([os.path.join(tmp, "models_tree", "bin", "resnetd"), "classify",
                        srvtest.make_images(tmp, 1)[0]], capture_output=True, text=True)
    check(p.returncode == 0 and json.loads(p.stdout)["predictions"], p.stderr)


def main():
    global BIN
    BIN = sys.argv[1]
    test = {"api": test_api, "concurrency": test_concurrency, "overload": test_overload,
            "drain": test_drain, "metrics": test_metrics, "config": test_config}[sys.argv[2]]
    with tempfile.TemporaryDirectory(prefix="srvtest-") as tmp:
        test(tmp)
    print(f"{sys.argv[2]}: ok")


if __name__ == "__main__":
    main()
