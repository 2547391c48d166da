#!/usr/bin/python3
"""/v1 against hostile-but-valid uploads (issue 13), the real binary on
loopback, real bytes, exact answers:

  v1       class 5: a multipart request with more parts than queue_capacity is
           413 too_many_images at once, before any part is decoded (the
           preprocess histogram does not move), and is not counted as a
           "draining" rejection; the budget (max_inflight_bytes): an image
           whose decode does not fit is 503 over_budget + Retry-After, counted
           in resnetd_rejected_total{reason="over_budget"}, nothing decoded,
           and the budget is back to 0 after every request; class 10: a
           labels.txt line or a model directory name that is not UTF-8 stops
           the start with exit 2 and a message naming the file and line.
  control  decoding never starves the control plane: while 6 clients upload
           multipart requests of 20 large PNGs each (4000x4000, ~0.15 s of
           decode per part, several seconds of decode in all), /healthz,
           /readyz and /metrics on fresh connections each answer in < 100 ms.

  drain    SIGTERM while decode jobs are queued and running, drain_timeout_ms
           300: every upload is answered (200, or 503 draining for the jobs the
           drain did not wait for) and the server exits 0. Before that, the
           decode pool's bound: with one decode thread and queue_capacity 4,
           12 concurrent uploads get 200 or 503 queue_full + Retry-After at
           once ("decode queue"), some of each.

usage: test_limits.py RESNETD_BINARY {v1|control|drain}
"""

import http.client
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from PIL import Image

import srvtest
from srvtest import check

BIN = None


def png(w, h):
    """A w x h RGB gradient PNG: large in pixels, small in bytes."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 3) % 256, (y * 5) % 256, ((x + y) * 7) % 256], -1).astype(np.uint8)
    b = io.BytesIO()
    Image.fromarray(img).save(b, "PNG", compress_level=1)
    return b.getvalue()


def solid_png(w, h):
    """A w x h one-colour PNG: many pixels in a few KB."""
    b = io.BytesIO()
    Image.new("RGB", (w, h), (90, 120, 200)).save(b, "PNG", optimize=True)
    return b.getvalue()


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def budget_back(s, timeout=5.0):
    """resnetd_inflight_bytes returns to 0: the last answer's bytes are
    released when its request completes, just after the client has read it."""
    t0 = time.monotonic()
    while metric(s.metrics(), "resnetd_inflight_bytes") != 0:
        if time.monotonic() - t0 > timeout:
            return False
        time.sleep(0.01)
    return True


def test_v1(tmp):
    tiny, _ = srvtest.export_model(tmp, "tiny", seed=1)
    small = open(srvtest.make_images(tmp, 1)[0], "rb").read()
    big = png(4000, 2000)  # 8 M pixels: its decode needs well over 4 MiB
    s = srvtest.Server(BIN, ["--model", tiny, "--queue-capacity", "4",
                             "--max-inflight-bytes", str(4 << 20)])
    try:
        pre = 'resnetd_preprocess_duration_seconds_count{model="tiny",version="1"}'
        m0 = s.metrics()
        # class 5: 40 parts of a large PNG against a queue of 4 (the body, ~1 MB,
        # fits the 4 MiB budget: the count is what is refused)
        solid = solid_png(4000, 2000)
        mp, ct = srvtest.multipart([(f"p{i}.png", solid) for i in range(40)])
        t0 = time.monotonic()
        st, h, b = s.request("POST", "/v1/classify", mp, {"Content-Type": ct})
        dt = time.monotonic() - t0
        e = json.loads(b)["error"]
        check(st == 413 and e["code"] == "too_many_images" and "40 images" in e["message"],
              f"{st} {b[:300]}")
        check(dt < 1.0, f"too_many_images took {dt:.2f} s")
        m1 = s.metrics()
        check(metric(m1, pre) == metric(m0, pre), "parts were decoded before the 413")
        check(metric(m1, 'resnetd_rejected_total{reason="draining"}') == 0,
              "too_many_images counted as draining")
        # exactly queue_capacity parts is fine
        mp, ct = srvtest.multipart([(f"s{i}.jpg", small) for i in range(4)])
        st, h, b = s.request("POST", "/v1/classify", mp, {"Content-Type": ct})
        check(st == 200 and len(json.loads(b)["results"]) == 4, f"{st} {b[:300]}")
        # the budget: an image whose decode needs more than the whole budget
        # (4 MiB) is refused before it starts, as too complex (no retry helps)
        m0 = s.metrics()
        mixed, ct = srvtest.multipart([("a.jpg", small), ("b.png", big)])
        st, h, b = s.request("POST", "/v1/classify", big)
        e = json.loads(b)["error"]
        check(st == 400 and e["code"] == "image_too_complex" and "max_inflight_bytes" in
              e["message"], f"{st} {b[:300]}")
        st, h, b = s.request("POST", "/v1/classify", mixed, {"Content-Type": ct})
        r = json.loads(b)["results"]
        check(st == 200 and "predictions" in r[0] and r[1]["error"]["code"] ==
              "image_too_complex", f"{st} {b[:400]}")
        m1 = s.metrics()
        check(metric(m1, pre) - metric(m0, pre) == 1, "the too-complex image was decoded")
        check(budget_back(s), "budget not returned")
        check(metric(m1, "resnetd_inflight_bytes_limit") == 4 << 20, "budget limit")
        check(metric(m1, "resnetd_inflight_bytes_peak") <= 4 << 20, "budget peak over limit")
        rc = s.stop()
        check(rc == 0, f"exit code {rc}")
    finally:
        s.cleanup()

    over_budget(tmp)

    # class 10: operator data that is not UTF-8 is refused at start, naming the place
    bad = os.path.join(tmp, "latin1")
    os.makedirs(bad)
    for f in ("model.onnx", "config.json"):
        data = open(os.path.join(tiny, f), "rb").read()
        if f == "config.json":
            cfg = json.loads(data)
            cfg["name"] = "latin1"
            data = json.dumps(cfg).encode()
        open(os.path.join(bad, f), "wb").write(data)
    open(os.path.join(bad, "labels.txt"), "wb").write(b"t-shirt\ntrouser\npull\xe9ver\n")
    p = subprocess.run([BIN, "serve", "--model", bad, "--port", "0"], capture_output=True,
                       timeout=60)
    err = p.stderr.decode()
    check(p.returncode == 2 and "labels.txt:3" in err and "not valid UTF-8" in err,
          f"latin-1 labels: {p.returncode} {err[-400:]}")
    repo = os.path.join(tmp, "repo").encode()
    odd = os.path.join(repo, b"caf\xe9")
    os.makedirs(odd)
    for f in ("model.onnx", "labels.txt"):
        open(os.path.join(odd, f.encode()), "wb").write(open(os.path.join(tiny, f), "rb").read())
    p = subprocess.run([BIN.encode(), b"serve", b"--model-repository", repo, b"--port", b"0"],
                       capture_output=True, timeout=60)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 2 and "model name" in err and "not valid UTF-8" in err,
          f"latin-1 directory name: {p.returncode} {err[-400:]}")


def export_wide(out_dir):
    """A model with a 3x224x224 input (602 KB per tensor), tiny otherwise."""
    import torch
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 10)).eval()
    d = os.path.join(out_dir, "wide")
    os.makedirs(d, exist_ok=True)
    torch.onnx.export(net, torch.zeros(1, 3, 224, 224), os.path.join(d, "model.onnx"),
                      input_names=["input"], output_names=["logits"], opset_version=13,
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    return d


def over_budget(tmp):
    """A request whose tensors do not fit what is left of the budget while
    another one waits in the queue: 503 (v2: {"error": "...max_inflight_bytes
    ..."}) + Retry-After, counted as over_budget,
    nothing run; the waiting one still completes."""
    wide = export_wide(tmp)
    s = srvtest.Server(BIN, ["--model", wide, "--max-inflight-bytes", str(2 << 20),
                             "--max-batch", "8", "--batch-timeout-us", "5000000"])
    try:
        one = np.zeros((1, 3, 224, 224), np.float32).tobytes()  # 0.6 MB: fits 2 MiB
        three = one * 3  # 1.8 MB: fits alone, not beside the first

        def v2(n, data):
            js = json.dumps({"inputs": [{"name": "input", "shape": [n, 3, 224, 224],
                                         "datatype": "FP32",
                                         "parameters": {"binary_data_size": len(data)}}]})
            return s.request("POST", "/v2/models/wide/infer", js.encode() + data,
                             {"Inference-Header-Content-Length": str(len(js))}, timeout=60)
        # a half-sent upload keeps the batch waiting (up to 5 s) for company
        slow = socket.create_connection(("127.0.0.1", s.port), timeout=60)
        slow.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\nxx")
        first = []
        t = threading.Thread(target=lambda: first.append(v2(1, one)))
        t.start()
        t0 = time.monotonic()
        while (metric(s.metrics(), 'resnetd_queue_depth{model="wide",version="1"}') != 1 and
               time.monotonic() - t0 < 30):
            time.sleep(0.01)
        m0 = s.metrics()
        st, h, b = v2(3, three)
        # refused for its tensors, or already for its body (http.c's share of the budget)
        check(st == 503 and b"max_inflight_bytes" in b and h.get("retry-after") == "1",
              f"{st} {h} {b[:300]}")
        jpg = open(srvtest.make_images(tmp, 1)[0], "rb").read()
        mp, ct = srvtest.multipart([(f"{i}.jpg", jpg) for i in range(3)])
        st, h, b = s.request("POST", "/v1/classify", mp, {"Content-Type": ct})
        check(st == 503 and json.loads(b)["error"]["code"] == "over_budget" and
              h.get("retry-after") == "1", f"/v1: {st} {h} {b[:300]}")
        m1 = s.metrics()
        check(metric(m1, 'resnetd_rejected_total{reason="over_budget"}') -
              metric(m0, 'resnetd_rejected_total{reason="over_budget"}') == 2, "not counted")
        check(metric(m1, 'resnetd_queue_depth{model="wide",version="1"}') == 1, "the 3 images were queued")
        slow.close()
        t.join()
        check(first and first[0][0] == 200, f"the waiting request: {first}")
        m2 = s.metrics()
        check(metric(m2, 'resnetd_images_total{model="wide",version="1"}') == 1, "images run")
        check(budget_back(s), "budget not returned")
        rc = s.stop()
        check(rc == 0, f"exit code {rc}")
    finally:
        s.cleanup()


def probe(port, path):
    """Seconds for one GET on a fresh connection (each may land on any HTTP thread)."""
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    c.close()
    return time.monotonic() - t0, r.status


def control_round(s, mp, ct, pre):
    """One round: 6 staggered uploads, probes until they are done. Returns
    the worst latency (ms) of each path."""
    codes, lock = [], threading.Lock()

    def upload():
        st, _, b = s.request("POST", "/v1/classify", mp, {"Content-Type": ct}, timeout=300)
        with lock:
            codes.append((st, b[:200]))

    before = metric(s.metrics(), pre)
    ups = [threading.Thread(target=upload) for _ in range(6)]
    for t in ups:  # staggered: each connection lands on an HTTP thread not yet busy
        t.start()
        time.sleep(0.1)
    # wait until decoding has begun, then probe until the uploads are done
    t0 = time.monotonic()
    while metric(s.metrics(), pre) == before and time.monotonic() - t0 < 30:
        time.sleep(0.02)
    lat = {"/healthz": [], "/readyz": [], "/metrics": []}
    while any(t.is_alive() for t in ups):
        for path in lat:
            dt, st = probe(s.port, path)
            check(st == 200, f"{path}: {st}")
            lat[path].append(dt)
        time.sleep(0.02)
    for t in ups:
        t.join()
    check(all(st == 200 for st, _ in codes), f"uploads: {codes}")
    decoded = metric(s.metrics(), pre) - before
    check(decoded == 48, f"{decoded} parts decoded, want 48")
    n = sum(len(v) for v in lat.values())
    worst = {k: round(max(v) * 1e3, 1) if v else 0 for k, v in lat.items()}
    with open(f"/proc/{s.proc.pid}/status") as f:
        hwm = [int(x.split()[1]) >> 10 for x in f if x.startswith("VmHWM:")][0]
    print(f"control: {n} probes during {decoded:.0f} decodes; max ms {worst}; "
          f"server peak RSS {hwm} MB")
    check(len(lat["/healthz"]) >= 5, f"only {n} probes while decoding")
    return worst


def test_control(tmp):
    tiny, _ = srvtest.export_model(tmp, "tiny", seed=1)
    big = png(4000, 4000)
    # a budget large enough that the uploads decode side by side whatever the
    # cost model says: the test is about the control plane, not the budget
    s = srvtest.Server(BIN, ["--model", tiny, "--max-inflight-bytes", str(4 << 30),
                             "--request-timeout-ms", "300000"])
    try:
        mp, ct = srvtest.multipart([(f"p{i}.png", big) for i in range(8)])
        pre = 'resnetd_preprocess_duration_seconds_count{model="tiny",version="1"}'
        # The build box is a shared 2-core VM where a whole-machine stall of a
        # few hundred ms happens now and then: a round over the limit is run
        # once more, and the second must pass. Decoding on the HTTP threads
        # (before the decode pool) stalls the probes for the length of a
        # multipart decode (~1 s) in most rounds, so it still fails.
        worst = control_round(s, mp, ct, pre)
        if max(worst.values()) >= 100:
            worst = control_round(s, mp, ct, pre)
        for k, v in worst.items():
            check(v < 100, f"{k} took {v:.0f} ms while decoding (limit 100 ms)")
        rc = s.stop()
        check(rc == 0, f"exit code {rc}")
    finally:
        s.cleanup()


def pool_full(tiny, big):
    s = srvtest.Server(BIN, ["--model", tiny, "--decode-threads", "1", "--queue-capacity", "4"])
    try:
        mp, ct = srvtest.multipart([(f"p{i}.png", big) for i in range(4)])
        results, lock = [], threading.Lock()

        def upload():
            st, h, b = s.request("POST", "/v1/classify", mp, {"Content-Type": ct}, timeout=120)
            with lock:
                results.append((st, h, b))

        ups = [threading.Thread(target=upload) for _ in range(12)]
        for t in ups:
            t.start()
        for t in ups:
            t.join()
        codes = sorted(r[0] for r in results)
        check(set(codes) == {200, 503}, f"want some 200 and some 503: {codes}")
        for st, h, b in results:
            if st == 503:
                e = json.loads(b)["error"]
                check(e["code"] == "queue_full" and "decode queue" in e["message"] and
                      h.get("retry-after") == "1", f"{st} {h} {b[:200]}")
        n503 = codes.count(503)
        check(metric(s.metrics(), 'resnetd_rejected_total{reason="queue_full"}') == n503,
              "queue_full not counted")
        print(f"pool: answers {codes}")
        check(s.stop() == 0, "exit code")
    finally:
        s.cleanup()


def test_drain(tmp):
    tiny, _ = srvtest.export_model(tmp, "tiny", seed=1)
    big = png(2000, 2000)
    pool_full(tiny, big)
    # one decode thread, 48 parts of ~40 ms each, and a drain of 300 ms: at
    # SIGTERM jobs are running and waiting, and the drain ends before them
    s = srvtest.Server(BIN, ["--model", tiny, "--decode-threads", "1",
                             "--drain-timeout-ms", "300"])
    try:
        mp, ct = srvtest.multipart([(f"p{i}.png", big) for i in range(8)])
        results, lock = [], threading.Lock()

        def upload():
            try:
                st, _, b = s.request("POST", "/v1/classify", mp, {"Content-Type": ct},
                                     timeout=120)
            except Exception as e:  # noqa: BLE001
                st, b = -1, repr(e).encode()
            with lock:
                results.append((st, b))

        ups = [threading.Thread(target=upload) for _ in range(6)]
        for t in ups:
            t.start()
        pre = 'resnetd_preprocess_duration_seconds_count{model="tiny",version="1"}'
        t0 = time.monotonic()
        while metric(s.metrics(), pre) == 0 and time.monotonic() - t0 < 60:
            time.sleep(0.01)
        rc = s.stop()  # one decode running, others waiting for the decode thread
        for t in ups:
            t.join()
        codes = sorted(st for st, _ in results)
        check(rc == 0, f"exit code {rc}")
        check(len(results) == 6 and set(codes) <= {200, 503}, f"answers {results}")
        check(503 in codes, f"no upload was still waiting at the drain's end: {codes}")
        for st, b in results:
            if st == 503:
                check(json.loads(b)["error"]["code"] == "draining", b)
        print(f"drain: answers {codes}, exit 0")
    finally:
        s.cleanup()


def main():
    global BIN
    BIN = os.path.abspath(sys.argv[1])
    test = {"v1": test_v1, "control": test_control, "drain": test_drain}[sys.argv[2]]
    with tempfile.TemporaryDirectory(prefix="srvlimits-") as tmp:
        test(tmp)
    print(f"{sys.argv[2]}: ok")


if __name__ == "__main__":
    main()
