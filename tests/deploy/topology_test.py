"""topology_test.py — the compose topology, natively on loopback, under failure.

  /usr/bin/python3 tests/deploy/topology_test.py RESNETD_BINARY MODEL [SECONDS]

Starts three `resnetd serve` replicas, Debian's nginx with deploy/nginx/ and
Debian's Prometheus with deploy/prometheus/ (see deploylib.py for the only
things rendered differently: addresses, ports, a 1 s scrape interval). Then
wrk POSTs an image through nginx for SECONDS (default 30) while:
  t =  8 s  replica A gets SIGTERM (drains, must exit 0 within its drain timeout)
  t = 14 s  replica B gets SIGKILL
  t = 17 s  replica B is started again on the same port
Checks:
  - the client saw only 200s with a classification body, and no socket errors;
  - nginx's access log agrees with the client (every request logged 200);
  - Prometheus reports B and C up and A down, evaluates every rule without
    error, and has ResnetdReplicaDown pending/firing for A;
  - resnetd_requests_total{code="200"} as scraped by Prometheus, summed over
    replicas and process incarnations (process_start_time_seconds), accounts
    for the client's requests: exactly for the replica never stopped (and the
    restarted B's new incarnation), and for A and B's first incarnation up to
    the requests nginx logged for them in the last scrape window before they
    stopped (counters that died with the process).
"""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SCRAPE = 1.0            # seconds, the test's scrape/evaluation interval
DRAIN_MS = 10000        # RESNETD_DRAIN_TIMEOUT_MS for the replicas
T_TERM, T_KILL, T_RESTART = 8.0, 14.0, 17.0
CONNECTIONS = 8

failures = []
passes = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    (passes if cond else failures).append(msg)
    return cond


def replica_env():
    env = dict(os.environ)
    env.update({"RESNETD_DRAIN_TIMEOUT_MS": str(DRAIN_MS), "RESNETD_WORKERS": "1",
                "RESNETD_THREADS_PER_WORKER": "1", "RESNETD_LOG_LEVEL": "info"})
    return env


def counter(port, model, code="200"):
    """resnetd_requests_total{model,code} read directly from a replica."""
    _, _, body = dl.http("GET", f"http://127.0.0.1:{port}/metrics")
    samples, _ = dl.parse_exposition(body.decode())
    return sum(v for n, lab, v in samples
               if n == "resnetd_requests_total" and lab.get("model") == model
               and lab.get("code") == code)


def parse_nginx_log(path):
    """-> list of (t, method, path, status, [(upstream addr, upstream status)])."""
    rx = re.compile(r't=(\S+) "(\S+) (\S+) [^"]*" (\d+) .* upstream=(.*?) ustatus=(.*?) urt=')
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            m = rx.search(line)
            if not m:
                continue
            # Several replicas tried: "a, b"; an internal redirect: "a : b".
            addrs = [a.strip() for a in m.group(5).replace(" : ", ", ").split(",")]
            codes = [c.strip() for c in m.group(6).replace(" : ", ", ").split(",")]
            out.append((float(m.group(1)), m.group(2), m.group(3), int(m.group(4)),
                        list(zip(addrs, codes))))
    return out


def prom_incarnation_totals(pport, model):
    """{instance: [per-incarnation last value of resnetd_requests_total{code=200}]}
    from Prometheus's raw samples; incarnations are told apart by the
    process_start_time_seconds scraped at the same timestamp."""
    start = {}
    for s in dl.prom_query(pport, 'process_start_time_seconds{job="resnetd"}[10m]'):
        inst = s["metric"]["instance"]
        for ts, v in s["values"]:
            start[(inst, ts)] = float(v)
    out = {}
    q = f'resnetd_requests_total{{job="resnetd", code="200", model="{model}"}}[10m]'
    for s in dl.prom_query(pport, q):
        inst = s["metric"]["instance"]
        last = {}
        prev_v, inc = None, 0
        for ts, v in s["values"]:
            v = float(v)
            key = start.get((inst, ts))
            if key is None:  # no start time at this scrape: fall back to resets
                if prev_v is not None and v < prev_v:
                    inc += 1
                key = ("reset", inc)
            last[key] = v
            prev_v = v
        out.setdefault(inst, []).extend(last.values())
    return out


def main():
    binary, model_path = sys.argv[1], sys.argv[2]
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    tmp = tempfile.mkdtemp(prefix="resnetd-topology-")
    procs = {}
    ok = False
    try:
        model_path = dl.model_dir(model_path, tmp)
        # A real example image if the repository has one, else a generated PNG.
        examples = sorted(glob.glob(os.path.join(dl.REPO, "examples", "*.png")))
        image = examples[0] if examples else dl.make_png(os.path.join(tmp, "image.png"))
        with open(image, "rb") as f:
            image_bytes = f.read()
        ports = [dl.free_port() for _ in range(3)]
        addrs = [f"127.0.0.1:{p}" for p in ports]
        env = replica_env()

        def start_replica(i):
            procs[f"r{i}"] = dl.Proc(f"resnetd-{i + 1}", dl.resnetd_argv(binary, ports[i], model_path),
                                     tmp, env=env)

        for i in range(3):
            start_replica(i)
        for i in range(3):
            dl.wait_ready(procs[f"r{i}"], f"http://{addrs[i]}/readyz", 120, f"replica {i + 1} ready")
        _, _, body = dl.http("GET", f"http://{addrs[0]}/v1/models")
        models = json.loads(body)
        model = (models.get("models") or models)[0]["name"] if isinstance(models, dict) \
            else models[0]["name"]
        print(f"replicas on {addrs}, model {model!r}", flush=True)

        nport, pport = dl.free_port(), dl.free_port()
        conf = dl.render_nginx(tmp, nport, addrs)
        procs["nginx"] = dl.Proc("nginx", dl.nginx_argv(tmp, conf), tmp)
        dl.wait_ready(procs["nginx"], f"http://127.0.0.1:{nport}/lb-healthz", 20, "nginx")
        pconf = dl.render_prometheus(tmp, addrs, interval=f"{SCRAPE:g}s")
        procs["prom"] = dl.Proc("prometheus", dl.prometheus_argv(tmp, pconf, pport), tmp)
        dl.wait_ready(procs["prom"], f"http://127.0.0.1:{pport}/-/ready", 60, "prometheus")
        dl.wait_until(lambda: len([r for r in dl.prom_query(pport, 'up{job="resnetd"} == 1')]) == 3,
                      30, "Prometheus scraping all three replicas")

        # Through the LB, the answer is the replica's own answer.
        lb = f"http://127.0.0.1:{nport}/v1/classify"
        st, _, via_lb = dl.http("POST", lb, image_bytes, {"Content-Type": "image/png"})
        st2, _, direct = dl.http("POST", f"http://{addrs[2]}/v1/classify", image_bytes,
                                 {"Content-Type": "image/png"})
        check(st == 200 and st2 == 200, f"classify through nginx {st}, direct {st2}")
        check(json.loads(via_lb)["predictions"] == json.loads(direct)["predictions"],
              "nginx passes the classification through unchanged")
        direct_requests = {addrs[2]: 1}

        # ---- load with failures
        wrk_env = dict(os.environ, RESNETD_WRK_IMAGE=image)
        wrk = subprocess.Popen(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s",
                                "-s", os.path.join(HERE, "post_image.lua"), lb],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=wrk_env, text=True)
        t0 = time.monotonic()
        events = {}

        def at(t):
            time.sleep(max(0.0, t0 + t - time.monotonic()))

        at(T_TERM)
        events["term"] = time.time()
        procs["r0"].send(signal.SIGTERM)
        time.sleep(0.3)
        try:
            rz = dl.http("GET", f"http://{addrs[0]}/readyz", timeout=2)[0]
        except OSError:
            rz = "closed"
        check(rz != 200, f"replica A's /readyz after SIGTERM: {rz} (503 or closed)")
        code_a = procs["r0"].wait(DRAIN_MS / 1000 + 5)
        events["a_exit"] = time.time()
        check(code_a == 0, f"replica A exits 0 after SIGTERM (got {code_a}, "
                           f"{events['a_exit'] - events['term']:.2f} s)")

        at(T_KILL)
        events["kill"] = time.time()
        procs["r1"].send(signal.SIGKILL)
        procs["r1"].wait(5)
        procs["r1"].stop()
        at(T_RESTART)
        start_replica(1)
        dl.wait_ready(procs["r1"], f"http://{addrs[1]}/readyz", 60, "replica B ready again")
        events["b_ready"] = time.time()
        print(f"B ready again {events['b_ready'] - events['kill']:.2f} s after SIGKILL", flush=True)

        out, _ = wrk.communicate(timeout=seconds + 60)
        events["load_end"] = time.time()
        print(out, flush=True)
        m = re.search(r"^RESULT (\{.*\})$", out, re.M)
        if not check(m is not None, "wrk printed its RESULT line"):
            return
        res = json.loads(m.group(1))
        statuses = {int(k): v for k, v in res["statuses"].items()}
        client_ok = statuses.get(200, 0)
        non2xx = sum(v for k, v in statuses.items() if not 200 <= k < 300)
        check(res["requests"] >= 100, f"wrk completed {res['requests']} requests "
                                      f"({res['requests'] / (res['duration_us'] / 1e6):.0f}/s)")
        check(non2xx == 0 and res["errors"]["status"] == 0,
              f"zero non-2xx responses through nginx (statuses {statuses})")
        sock = {k: res["errors"][k] for k in ("connect", "read", "write", "timeout")}
        check(sum(sock.values()) == 0, f"zero socket errors {sock}")
        check(res["bad_body"] == 0, f"every 200 carries predictions ({res['bad_body']} did not)")
        print(f"latency p50 {res['latency_p50_us'] / 1000:.1f} ms, p99 {res['latency_p99_us'] / 1000:.1f} ms")

        # ---- nginx's view
        log = [e for e in dl_log(tmp) if e[1] == "POST" and e[2] == "/v1/classify"]
        lb_200 = sum(1 for e in log if e[3] == 200)
        not_200 = [e for e in log if e[3] != 200 and e[3] != 499]
        check(not not_200, f"nginx answered every classify with 200 ({len(not_200)} did not: "
                           f"{not_200[:3]})")
        # wrk drops the requests in flight when its time is up; nginx logs them.
        check(client_ok + 1 <= lb_200 <= client_ok + 1 + CONNECTIONS,
              f"nginx logged {lb_200} 200s for the client's {client_ok} + 1")
        retried = [e for e in log if len(e[4]) > 1]
        attempts_ok = {}
        for e in log:
            for a, c in e[4]:
                if c == "200":
                    attempts_ok.setdefault(a, []).append(e[0])
        print(f"nginx: {len(retried)} requests retried on another replica; 200s per replica "
              f"{ {a: len(v) for a, v in attempts_ok.items()} }", flush=True)
        # What nginx saw go wrong, per replica (information: every one was retried).
        kinds = {}
        with open(os.path.join(tmp, "nginx.log"), errors="replace") as f:
            for line in f:
                m = re.search(r'\[error\] \S+ \*\d+ (.*?), client: .*upstream: "http://([^/"]+)', line)
                if m:
                    what = re.sub(r"^\S+\(\) failed ", "", m.group(1))
                    kinds.setdefault(m.group(2), {}).setdefault(what, 0)
                    kinds[m.group(2)][what] += 1
        print(f"nginx upstream errors by replica: {kinds}", flush=True)
        # Work done for nobody (information): classifies the replicas ran
        # (access log 200) beyond the answers nginx took from them, and those
        # they dropped because nginx had closed the connection (499).
        ran, dropped = 0, 0
        for i in range(3):
            with open(os.path.join(tmp, f"resnetd-{i + 1}.log"), errors="replace") as f:
                for line in f:
                    if '"path":"/v1/classify"' in line:
                        ran += '"status":200,' in line
                        dropped += '"status":499,' in line
        taken = sum(len(v) for v in attempts_ok.values()) + sum(direct_requests.values())
        print(f"replicas ran {ran} classifies, nginx took {taken} answers from them: "
              f"{ran - taken} run for nobody; {dropped} dropped unrun (499)", flush=True)
        b_new = sum(1 for t in attempts_ok.get(addrs[1], []) if t > events["b_ready"])
        check(b_new > 0, f"the restarted replica B got traffic again ({b_new} requests)")

        # ---- Prometheus's view
        time.sleep(3 * SCRAPE + 1)
        def up_state():
            return {r["metric"]["instance"]: r["value"][1]
                    for r in dl.prom_query(pport, 'up{job="resnetd"}')}
        want_up = {addrs[0]: "0", addrs[1]: "1", addrs[2]: "1"}
        try:
            dl.wait_until(lambda: up_state() == want_up, 15, "up{job=resnetd} as expected")
        except AssertionError:
            pass
        check(up_state() == want_up, f"Prometheus up: {up_state()} (want {want_up})")
        rules = dl.prom_get(pport, "/api/v1/rules")
        bad_rules = [(r["name"], r.get("lastError")) for g in rules["groups"] for r in g["rules"]
                     if r.get("health") != "ok"]
        nrules = sum(len(g["rules"]) for g in rules["groups"])
        check(nrules >= 4 and not bad_rules, f"Prometheus evaluates all {nrules} rules ({bad_rules})")
        alerts = dl.prom_get(pport, "/api/v1/alerts")["alerts"]
        down = [a for a in alerts if a["labels"].get("alertname") == "ResnetdReplicaDown"]
        check([a["labels"]["instance"] for a in down] == [addrs[0]]
              and down[0]["state"] in ("pending", "firing"),
              f"ResnetdReplicaDown pending/firing for A only: "
              f"{[(a['labels'].get('instance'), a['state']) for a in down]}")

        # ---- every dashboard query runs on the real data, with Grafana's
        # variables set to "All" and $__rate_interval to 10 s, at the end of
        # the load; every panel but the rejections (none expected) has data.
        with open(os.path.join(dl.DEPLOY, "grafana", "dashboards", "resnetd.json")) as f:
            dash = json.load(f)
        empty, errors = [], []
        for p in dash["panels"]:
            for t in p.get("targets", []):
                q = (t["expr"].replace("$__rate_interval", "10s").replace("$model", ".*")
                     .replace("$instance", ".*"))
                try:
                    res_q = dl.prom_query(pport, q, at=events["load_end"] - 1)
                except AssertionError as e:
                    errors.append(f"{p['title']}: {e}")
                    continue
                vals = [float(r["value"][1]) for r in res_q]
                if not any(v == v and abs(v) != float("inf") for v in vals) and "Rejected" not in p["title"]:
                    empty.append(f"{p['title']} [{t['legendFormat']}]")
        check(not errors, f"Prometheus accepts every dashboard query {errors}")
        check(not empty, f"every dashboard panel has data after the load (empty: {empty})")
        p99 = dl.prom_query(pport, 'histogram_quantile(0.99, sum by (le) (rate('
                            'resnetd_request_duration_seconds_bucket[10s])))', at=events["load_end"] - 1)
        if p99:
            print(f"server-side p99 from the histogram at the end of the load: "
                  f"{float(p99[0]['value'][1]) * 1000:.1f} ms", flush=True)

        # ---- accounting: scraped counters vs requests sent
        totals = prom_incarnation_totals(pport, model)
        print(f"Prometheus: per-incarnation 200 counts {totals}", flush=True)
        prom_sum = sum(sum(v) for v in totals.values())
        served = {a: len(attempts_ok.get(a, [])) + direct_requests.get(a, 0) for a in addrs}
        window = 2 * SCRAPE + 1.0
        lost_ok = {addrs[0]: sum(1 for t in attempts_ok.get(addrs[0], [])
                                 if t > events["a_exit"] - window),
                   addrs[1]: sum(1 for t in attempts_ok.get(addrs[1], [])
                                 if events["kill"] - window < t <= events["kill"] + 1)}
        c_live = counter(ports[2], model)
        c_prom = totals.get(addrs[2], [0])[-1]
        check(c_prom == c_live, f"replica C: Prometheus {c_prom:.0f} == its /metrics {c_live:.0f}")
        check(abs(c_live - served[addrs[2]]) <= CONNECTIONS,
              f"replica C counted {c_live:.0f} 200s, nginx logged {served[addrs[2]]}")
        b_live = counter(ports[1], model)
        check(abs(b_live - b_prom_last(totals, addrs[1])) < 1,
              f"restarted B: Prometheus {b_prom_last(totals, addrs[1]):.0f} == its /metrics {b_live:.0f}")
        for i in (0, 1):
            a = addrs[i]
            got = sum(totals.get(a, []))
            check(served[a] - lost_ok[a] - CONNECTIONS <= got <= served[a] + CONNECTIONS,
                  f"replica {'AB'[i]}: Prometheus {got:.0f} of {served[a]} logged by nginx "
                  f"(allowing {lost_ok[a]} in its last {window:.0f} s)")
        sent = client_ok + 1 + sum(direct_requests.values())
        lo = sent - sum(lost_ok.values()) - 2 * CONNECTIONS
        hi = sent + len(retried) + 2 * CONNECTIONS
        check(lo <= prom_sum <= hi, f"sum of scraped resnetd_requests_total{{code=200}} {prom_sum:.0f} "
                                    f"accounts for {sent} requests sent (range {lo}..{hi})")
        ok = not failures
    finally:
        for name in ("prom", "nginx", "r0", "r1", "r2"):
            if name in procs:
                procs[name].stop(signal.SIGTERM, timeout=15)
        if not ok:
            for p in procs.values():
                print(f"---- {p.name} log (last lines):\n{p.tail(20)}")
            print(f"logs kept in {tmp}")
        else:
            dl.cleanup_dir(tmp)
    print(f"{len(passes)} passed, {len(failures) + (0 if ok or failures else 1)} failed")
    sys.exit(1 if failures or not ok else 0)


def dl_log(tmp):
    return parse_nginx_log(os.path.join(tmp, "nginx.log"))


def b_prom_last(totals, addr):
    v = totals.get(addr, [])
    return v[-1] if v else 0


if __name__ == "__main__":
    main()
