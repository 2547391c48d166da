"""timeout_test.py — nginx's retry on timeout, and the work the slow replica
no longer does twice.

  /usr/bin/python3 tests/deploy/timeout_test.py RESNETD_BINARY MODEL

Two `resnetd serve` replicas behind Debian's nginx with deploy/nginx/ (see
deploylib.py; the third upstream server line dropped), with one change:
proxy_read_timeout 1s instead of 60s, so that a timeout happens within the
test. Eight clients POST an image through
nginx for 8 s; at t = 2 s replica A is frozen (SIGSTOP) for 3 s: the kernel
still accepts its connections and buffers the requests nginx sends, nginx
times out after 1 s, closes those connections and retries on B
(`proxy_next_upstream ... timeout`). When A runs again it finds the
requests nginx gave up on, their connections already closed.

Checks:
  - every client request got a 200 with predictions (the retries worked);
  - nginx retried some requests after timing out on A (the test did test it);
  - A's engine ran (resnetd_batch_size_sum) at most the batch it had started
    when it was frozen (one batch: workers 1, max_batch 8) beyond the answers
    nginx took from it: the requests nginx gave up on are dropped unrun
    (resnetd_cancelled_total, access log 499).
Prints how many inferences A ran for nobody and how many it dropped.
"""

import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402
from topology_test import parse_nginx_log  # noqa: E402

CLIENTS, SECONDS, T_STOP, STOP_FOR, MAX_BATCH = 8, 8.0, 2.0, 3.0, 8

failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    if not cond:
        failures.append(msg)
    return cond


def main():
    binary, model_path = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="resnetd-timeout-")
    procs = {}
    ok = False
    try:
        model_path = dl.model_dir(model_path, tmp)
        image = sorted(p for p in os.listdir(os.path.join(dl.REPO, "examples"))
                       if p.endswith(".png"))[0]
        with open(os.path.join(dl.REPO, "examples", image), "rb") as f:
            body = f.read()
        ports = [dl.free_port() for _ in range(2)]
        addrs = [f"127.0.0.1:{p}" for p in ports]
        env = dict(os.environ, RESNETD_WORKERS="1", RESNETD_THREADS_PER_WORKER="1",
                   RESNETD_MAX_BATCH=str(MAX_BATCH), RESNETD_LOG_LEVEL="info")
        for i in range(2):
            procs[f"r{i}"] = dl.Proc(f"resnetd-{i + 1}",
                                     dl.resnetd_argv(binary, ports[i], model_path), tmp, env=env)
        for i in range(2):
            dl.wait_ready(procs[f"r{i}"], f"http://{addrs[i]}/readyz", 120, f"replica {i + 1}")
        nport = dl.free_port()
        # deploy/'s three upstream servers, the third line dropped
        conf = dl.render_nginx(tmp, nport, addrs + ["127.0.0.1:1"])
        ups = os.path.join(os.path.dirname(conf), "upstream-servers.conf")
        with open(ups) as f:
            lines = [x for x in f if "127.0.0.1:1 " not in x]
        with open(ups, "w") as f:
            f.writelines(lines)
        with open(conf) as f:
            text = f.read()
        text, n = re.subn(r"proxy_read_timeout \d+s;", "proxy_read_timeout 1s;", text)
        if not check(n == 1, "nginx.conf has one proxy_read_timeout (set to 1s here)"):
            return
        with open(conf, "w") as f:
            f.write(text)
        procs["nginx"] = dl.Proc("nginx", dl.nginx_argv(tmp, conf), tmp)
        dl.wait_ready(procs["nginx"], f"http://127.0.0.1:{nport}/lb-healthz", 20, "nginx")

        url = f"http://127.0.0.1:{nport}/v1/classify"
        results, lock = [], threading.Lock()
        end = time.monotonic() + SECONDS

        def client():
            while time.monotonic() < end:
                req = urllib.request.Request(url, data=body, method="POST",
                                             headers={"Content-Type": "image/png"})
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        st, b = r.status, r.read()
                except urllib.error.HTTPError as e:
                    st, b = e.code, e.read()
                except OSError as e:
                    st, b = -1, repr(e).encode()
                with lock:
                    results.append((st, b"predictions" in b))

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(T_STOP)
        procs["r0"].send(signal.SIGSTOP)
        time.sleep(STOP_FOR)
        procs["r0"].send(signal.SIGCONT)
        for t in threads:
            t.join()
        bad = [r for r in results if r != (200, True)]
        check(len(results) > 20 and not bad,
              f"{len(results)} requests through nginx, all 200 with predictions ({bad[:3]})")

        # nginx's view: which requests timed out on A and went to B
        log = [e for e in parse_nginx_log(os.path.join(tmp, "nginx.log"))
               if e[1] == "POST" and e[2] == "/v1/classify"]
        timed_out = sum(1 for e in log for a, c in e[4][:-1] if a == addrs[0])
        taken_a = sum(1 for e in log for a, c in e[4] if a == addrs[0] and c == "200")
        check(timed_out > 0, f"nginx retried {timed_out} requests on B after A timed out")

        # A's view, once it has caught up (its access log and counters)
        def a_log():
            out = []
            with open(os.path.join(tmp, "resnetd-1.log"), errors="replace") as f:
                for line in f:
                    if '"path":"/v1/classify"' in line:
                        out.append(json.loads(line)["status"])
            return out

        dl.wait_until(lambda: len(a_log()) >= taken_a + timed_out, 30,
                      "replica A logged every request nginx sent it")
        statuses = a_log()
        dropped = statuses.count(499)
        _, _, m = dl.http("GET", f"http://{addrs[0]}/metrics")
        samples = dl.parse_exposition(m.decode())[0]
        ran = sum(v for n, lab, v in samples if n == "resnetd_batch_size_sum")
        cancelled = sum(v for n, lab, v in samples if n == "resnetd_cancelled_total")
        for_nobody = ran - taken_a
        print(f"replica A: the engine ran {ran:.0f} images, nginx took {taken_a} answers: "
              f"{for_nobody:.0f} run for nobody; {cancelled:.0f} dropped unrun "
              f"(resnetd_cancelled_total), {dropped} logged 499", flush=True)
        check(for_nobody <= MAX_BATCH,
              f"A ran {for_nobody:.0f} requests nginx had given up on: at most the batch it had "
              f"started ({MAX_BATCH})")
        check(cancelled == timed_out - for_nobody and dropped >= cancelled,
              f"the other {timed_out - for_nobody:.0f} were dropped unrun: {cancelled:.0f} "
              f"counted cancelled, {dropped} logged 499")
        ok = not failures
    finally:
        for name in ("nginx", "r0", "r1"):
            if name in procs:
                procs[name].send(signal.SIGCONT)
                procs[name].stop(signal.SIGTERM, timeout=15)
        if not ok:
            for p in procs.values():
                print(f"---- {p.name} log (last lines):\n{p.tail(20)}")
            print(f"logs kept in {tmp}")
        else:
            dl.cleanup_dir(tmp)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
