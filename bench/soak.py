#!/usr/bin/env python3
"""Soak test driver (see soak.sh): finds the request rate the server
saturates at, then runs an open-loop mix of valid and invalid requests at
SOAK_LOAD (default 0.7) of it for SOAK_SECONDS, sampling the server's RSS,
open fds and threads every SOAK_SAMPLE_S seconds. One JSON object per sample
on stdout, then a summary; exit 1 when a pass criterion fails:
  - no unexpected status (any 5xx, or a status other than the one expected
    for that kind of request) and no failed connection on a valid request;
  - RSS growth after warm-up (the first 20% of the run) under 10%;
  - open fds and threads flat after warm-up (within SOAK_FD_SLACK fds, default clients + 2; threads exact)."""

import http.client
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "hardening"))
import hardlib as H  # noqa: E402

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
LOAD = float(os.environ.get("SOAK_LOAD", "0.7"))
SAMPLE_S = float(os.environ.get("SOAK_SAMPLE_S", "10" if SECONDS >= 120 else "5"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "8"))
# Each client holds at most one connection, opened and closed as requests
# come and go (the too-large case closes it), so a sample may see anywhere
# between 0 and CLIENTS of them: only a range beyond that is a leak.
FD_SLACK = int(os.environ.get("SOAK_FD_SLACK", str(CLIENTS + 2)))


def request_mix(png, jpg):
    """(weight, name, method, path, body, headers, expected statuses)."""
    mp, mct = H.multipart([(b"a.png", png), (b"b.jpg", jpg)])
    bad_mp, bad_mct = H.multipart([(b"a.png", png), (b"junk.bin", b"junk" * 10)])
    return [
        (40, "raw_png", "POST", "/v1/classify", png, {}, {200}),
        (15, "raw_jpeg_named", "POST", "/v1/models/tiny/classify?top_k=3", jpg, {}, {200}),
        (10, "multipart", "POST", "/v1/classify", mp, {"Content-Type": mct}, {200}),
        (5, "multipart_partly_bad", "POST", "/v1/classify", bad_mp, {"Content-Type": bad_mct},
         {200}),
        (5, "models", "GET", "/v1/models", None, {}, {200}),
        (5, "not_an_image", "POST", "/v1/classify", b"hello world" * 5, {}, {415}),
        (4, "truncated_png", "POST", "/v1/classify", png[:len(png) // 2], {}, {400}),
        (4, "bad_top_k", "POST", "/v1/classify?top_k=abc", png, {}, {400}),
        (4, "unknown_model", "POST", "/v1/models/nope/classify", png, {}, {404}),
        (4, "wrong_method", "GET", "/v1/classify", None, {}, {405}),
        (2, "too_large", "POST", "/v1/classify", b"\0" * 300000, {}, {413}),
        (2, "metrics", "GET", "/metrics", None, {}, {200}),
    ]


class Client:
    def __init__(self, port):
        self.port, self.c = port, None

    def do(self, method, path, body, headers):
        for attempt in range(2):
            if self.c is None:
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self.c.request(method, path, body=body, headers=headers)
                r = self.c.getresponse()
                r.read()
                if r.will_close:
                    self.c.close()
                    self.c = None
                return r.status
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = None
                if attempt == 1:
                    return None
        return None


def saturation(port, mix, seconds=8.0):
    """Closed loop, CLIENTS threads, valid requests only: requests per second."""
    valid = [m for m in mix if m[6] == {200} and m[2] == "POST"]
    count = [0] * CLIENTS
    stop = time.monotonic() + seconds

    def run(i):
        c = Client(port)
        k = i
        while time.monotonic() < stop:
            m = valid[k % len(valid)]
            k += 1
            if c.do(m[2], m[3], m[4], m[5]) == 200:
                count[i] += 1
    ts = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(count) / (time.monotonic() - t0)


def main():
    binary = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="soak-")
    model_dir, _ = H.export_model(tmp)
    # log level info: the port is read from the "listening" line; the access
    # log goes to a file in the server's scratch directory. A 200 KB body limit
    # makes the "too_large" requests cheap 413s.
    srv = H.Server(binary, ["--model", model_dir, "--log-level", "info",
                            "--max-body-bytes", "200000"] + sys.argv[2:])
    mix = request_mix(H.png_bytes(64, 48), H.jpeg_bytes(50, 40))
    weights = [m[0] for m in mix]
    schedule = []
    for i, w in enumerate(weights):  # a fixed interleaved order with the mix's proportions
        schedule += [i] * w
    schedule = [schedule[(k * 37) % len(schedule)] for k in range(len(schedule))]
    ok = True
    try:
        saturation(srv.port, mix, 3.0)  # warm-up
        sat = saturation(srv.port, mix)
        rate = sat * LOAD
        print(json.dumps({"saturation_rps": round(sat, 1), "target_rps": round(rate, 1),
                          "load": LOAD, "seconds": SECONDS, "clients": CLIENTS}), flush=True)
        counts, unexpected, lock = {}, {}, threading.Lock()
        sent = [0]
        t_start = time.monotonic()
        t_end = t_start + SECONDS

        def worker(i):
            c = Client(srv.port)
            period = CLIENTS / rate
            n = 0
            nxt = t_start + i * period / CLIENTS
            while True:
                now = time.monotonic()
                if nxt > now:
                    time.sleep(nxt - now)
                if time.monotonic() >= t_end:
                    break
                m = mix[schedule[(n * CLIENTS + i) % len(schedule)]]
                n += 1
                nxt += period
                st = c.do(m[2], m[3], m[4], m[5])
                with lock:
                    sent[0] += 1
                    key = f"{m[1]}:{st}"
                    counts[key] = counts.get(key, 0) + 1
                    if st not in m[6] and not (st is None and m[1] == "too_large"):
                        unexpected[key] = unexpected.get(key, 0) + 1
        ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(CLIENTS)]
        for t in ts:
            t.start()
        samples = []
        while time.monotonic() < t_end:
            time.sleep(min(SAMPLE_S, max(0.0, t_end - time.monotonic())))
            st = srv.proc_status()
            el = time.monotonic() - t_start
            with lock:
                done = sent[0]
            s = {"t": round(el, 1), "rss_mb": round(st["VmRSS"] / 2**20, 2), "fds": st["fds"],
                 "threads": st["Threads"], "requests": done,
                 "rps": round(done / el, 1), "unexpected": sum(unexpected.values())}
            samples.append(s)
            print(json.dumps(s), flush=True)
        for t in ts:
            t.join()
        warm = [s for s in samples if s["t"] >= SECONDS * 0.2] or samples[-1:]
        base = warm[0]
        growth = max(s["rss_mb"] for s in warm) / base["rss_mb"] - 1
        fd_range = max(s["fds"] for s in warm) - min(s["fds"] for s in warm)
        thr_range = max(s["threads"] for s in warm) - min(s["threads"] for s in warm)
        fivexx = sum(v for k, v in counts.items() if k.split(":")[1].startswith("5"))
        summary = {"requests": sent[0], "achieved_rps": round(sent[0] / SECONDS, 1),
                   "target_rps": round(rate, 1), "saturation_rps": round(sat, 1),
                   "status_counts": dict(sorted(counts.items())), "unexpected": unexpected,
                   "5xx": fivexx, "rss_after_warmup_mb": base["rss_mb"],
                   "rss_max_mb": max(s["rss_mb"] for s in samples),
                   "rss_growth_after_warmup": round(growth, 4), "fd_range_after_warmup": fd_range,
                   "thread_range_after_warmup": thr_range}
        checks = {"no_unexpected": not unexpected and fivexx == 0,
                  "rss_growth_lt_10pct": growth < 0.10,
                  "fds_flat": fd_range <= FD_SLACK, "threads_flat": thr_range == 0,
                  "server_alive": srv.alive()}
        summary["checks"] = checks
        ok = all(checks.values())
        summary["pass"] = ok
        print(json.dumps(summary), flush=True)
        rc = srv.stop()
        if rc != 0:
            print(json.dumps({"error": f"server exit code {rc}"}))
            ok = False
    finally:
        srv.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
