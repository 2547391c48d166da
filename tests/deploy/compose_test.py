"""compose_test.py — deploy/compose.yaml brought up with docker-compose, and
the failover test of topology_test.py run against its containers.

  DOCKER_HOST=... RESNETD_CI_IMAGE=resnetd:ci \\
    python3 tests/deploy/compose_test.py NATIVE_RESNETD [SECONDS]

Run by scripts/test-containers.sh (ctest label "container"). The stack is
deploy/compose.yaml itself, on its own bridge network (service names resolve:
nginx's upstream-servers.conf and Prometheus's targets/compose.json are used
unchanged), with only these differences, made in a rendered copy:
  - images that cannot be pulled here (no registry): resnetd is the image the
    stage built (no `build:`); nginx and Prometheus are Debian's nginx and
    Prometheus (tests/deploy/compose/*.Dockerfile) with the same command
    lines and mounts; Grafana (not packaged by Debian) is left out;
  - published ports go to free loopback ports instead of 8080/9090/3000;
  - relative mount paths are made absolute (the copy is not in deploy/).
Needs bridge networking (RESNETD_CI_BRIDGE=bridge): with --bridge=none the
test fails saying so.

Then wrk POSTs an example through nginx for SECONDS (default 25) while
  t =  6 s  `docker-compose stop resnetd-1` (SIGTERM: drains, exits 0, stays down)
  t = 12 s  resnetd-2's process gets SIGKILL (a crash; restart: unless-stopped
            brings it back)
and checks: zero non-2xx and zero socket errors at the client; resnetd-1
exited 0; resnetd-2 restarted and ready again; Prometheus scrapes every
replica (all up before; afterwards resnetd-1 down, the others up) and has
ResnetdReplicaDown pending/firing for resnetd-1 only.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import container_test as ct  # noqa: E402
import deploylib as dl  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = os.environ.get("RESNETD_CI_IMAGE", "resnetd:ci")
T_STOP, T_KILL = 6.0, 12.0
CONNECTIONS = 8

failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg, flush=True)
    if not cond:
        failures.append(msg)
    return cond


def render(tmp, nport, pport):
    """Writes the test's copy of deploy/compose.yaml (see module doc)."""
    with open(os.path.join(dl.DEPLOY, "compose.yaml")) as f:
        doc = yaml.safe_load(f)
    doc.pop("name", None)  # docker-compose 1.29 predates the key: -p names the project
    svcs = doc["services"]
    for name in [n for n in svcs if n.startswith("resnetd-")]:
        svcs[name] = dict(svcs[name])
        svcs[name].pop("build", None)
        svcs[name]["image"] = IMAGE
    svcs["nginx"]["image"] = "resnetd-ci/nginx"
    svcs["nginx"]["ports"] = [f"127.0.0.1:{nport}:8080"]
    svcs["prometheus"]["image"] = "resnetd-ci/prometheus"
    svcs["prometheus"]["ports"] = [f"127.0.0.1:{pport}:9090"]
    svcs.pop("grafana")
    doc.get("volumes", {}).pop("grafana-data", None)
    for s in svcs.values():
        s["volumes"] = [os.path.normpath(os.path.join(dl.DEPLOY, v)) if v.startswith("./") else v
                        for v in s.get("volumes", [])]
    path = os.path.join(tmp, "compose.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    return path


def build_stand_ins():
    for what in ("nginx", "prometheus"):
        p = subprocess.run(["docker", "build", "-q", "--network", "host", "-t", f"resnetd-ci/{what}",
                            "-f", os.path.join(HERE, "compose", f"{what}.Dockerfile"),
                            os.path.join(HERE, "compose")],
                           env=dict(os.environ, DOCKER_BUILDKIT="0"), capture_output=True, text=True,
                           timeout=600)
        if p.returncode:
            raise AssertionError(f"building the {what} stand-in: {p.stderr}{p.stdout}")


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 25
    if os.environ.get("RESNETD_CI_BRIDGE", "bridge") != "bridge":
        print("FAIL dockerd runs without bridge networking: the compose stack needs it")
        sys.exit(1)
    tmp = tempfile.mkdtemp(prefix="resnetd-compose-")
    nport, pport = dl.free_port(), dl.free_port()
    project = f"resnetdci{nport}"
    compose = ["docker-compose", "-p", project, "-f", render(tmp, nport, pport)]
    build_stand_ins()
    t_up = time.monotonic()
    ok = False
    try:
        # depends_on: condition: service_healthy -> returns once nginx started
        # after the three replicas turned healthy on /readyz.
        subprocess.run(compose + ["up", "-d"], check=True, timeout=300)
        up_s = time.monotonic() - t_up
        cid = {s: subprocess.run(compose + ["ps", "-q", s], capture_output=True, text=True,
                                 check=True).stdout.strip() for s in ("resnetd-1", "resnetd-2",
                                                                     "resnetd-3")}
        lb = f"http://127.0.0.1:{nport}"
        dl.wait_until(lambda: dl.http_ok(lb + "/lb-healthz"), 30, "nginx")
        print(f"stack up in {up_s:.1f} s (3 replicas healthy, nginx, Prometheus)", flush=True)

        # Through nginx, the native build's answer.
        want = ct.native_answers()
        f0 = ct.IMAGES[0]
        with open(os.path.join(ct.EXAMPLES, f0), "rb") as f:
            image = f.read()
        st, _, body = dl.http("POST", lb + "/v1/classify", image)
        check(st == 200 and [p["index"] for p in json.loads(body)["predictions"]]
              == [p["index"] for p in want[f0]], f"classify through nginx: {st}")

        def up_state():
            return {r["metric"]["instance"]: r["value"][1]
                    for r in dl.prom_query(pport, 'up{job="resnetd"}')}
        all_up = {f"resnetd-{i}:8080": "1" for i in (1, 2, 3)}
        try:
            dl.wait_until(lambda: up_state() == all_up, 40, "Prometheus scraping all replicas")
        except AssertionError:
            pass
        check(up_state() == all_up, f"Prometheus scrapes every replica: {up_state()}")

        # ---- load with failures
        image_path = os.path.join(ct.EXAMPLES, f0)
        wrk = subprocess.Popen(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s",
                                "-s", os.path.join(HERE, "post_image.lua"), lb + "/v1/classify"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=dict(os.environ, RESNETD_WRK_IMAGE=image_path))
        t0 = time.monotonic()

        def at(t):
            time.sleep(max(0.0, t0 + t - time.monotonic()))

        at(T_STOP)
        ts = time.monotonic()
        subprocess.run(compose + ["stop", "-t", "30", "resnetd-1"], check=True, timeout=60,
                       capture_output=True)
        stop_s = time.monotonic() - ts
        s1 = json.loads(ct.docker("inspect", cid["resnetd-1"]))[0]["State"]
        check(s1["Status"] == "exited" and s1["ExitCode"] == 0,
              f"resnetd-1 stopped (SIGTERM) in {stop_s:.2f} s, exit code {s1['ExitCode']}")

        at(T_KILL)
        pid2 = json.loads(ct.docker("inspect", cid["resnetd-2"]))[0]["State"]["Pid"]
        tk = time.monotonic()
        os.kill(pid2, signal.SIGKILL)
        def b_back():
            # Restarted by the policy, and its new process ready: asked from
            # inside its container (the replicas publish no port).
            if json.loads(ct.docker("inspect", cid["resnetd-2"]))[0]["RestartCount"] < 1:
                return False
            return subprocess.run(["docker", "exec", cid["resnetd-2"], "curl", "-fsS", "-o",
                                   "/dev/null", "http://127.0.0.1:8080/readyz"],
                                  capture_output=True).returncode == 0
        dl.wait_until(b_back, 60, "resnetd-2 restarted and ready")
        print(f"resnetd-2 restarted and ready {time.monotonic() - tk:.1f} s after SIGKILL",
              flush=True)

        out, _ = wrk.communicate(timeout=seconds + 60)
        print(out, flush=True)
        m = re.search(r"^RESULT (\{.*\})$", out, re.M)
        if not check(m is not None, "wrk printed its RESULT line"):
            return
        res = json.loads(m.group(1))
        statuses = {int(k): v for k, v in res["statuses"].items()}
        non2xx = sum(v for k, v in statuses.items() if not 200 <= k < 300)
        check(res["requests"] >= 100, f"wrk completed {res['requests']} requests "
                                      f"({res['requests'] / (res['duration_us'] / 1e6):.0f}/s, "
                                      f"p50 {res['latency_p50_us'] / 1000:.1f} ms, "
                                      f"p99 {res['latency_p99_us'] / 1000:.1f} ms)")
        check(non2xx == 0 and res["errors"]["status"] == 0,
              f"zero non-2xx responses through nginx (statuses {statuses})")
        sock = {k: res["errors"][k] for k in ("connect", "read", "write", "timeout")}
        check(sum(sock.values()) == 0, f"zero socket errors {sock}")
        check(res["bad_body"] == 0, f"every 200 carries predictions ({res['bad_body']} did not)")
        logs = subprocess.run(compose + ["logs", "--no-color", "nginx"], capture_output=True,
                              text=True).stdout
        retried = sum(1 for line in logs.splitlines()
                      if "POST /v1/classify" in line and re.search(r"upstream=\S+, ", line))
        print(f"nginx retried {retried} requests on another replica", flush=True)

        # ---- Prometheus's view after the failures
        want_up = {"resnetd-1:8080": "0", "resnetd-2:8080": "1", "resnetd-3:8080": "1"}
        try:
            dl.wait_until(lambda: up_state() == want_up, 30, "up{job=resnetd} as expected")
        except AssertionError:
            pass
        check(up_state() == want_up, f"Prometheus up: {up_state()} (want {want_up})")

        def down_alerts():
            return [(a["labels"].get("instance"), a["state"])
                    for a in dl.prom_get(pport, "/api/v1/alerts")["alerts"]
                    if a["labels"].get("alertname") == "ResnetdReplicaDown"]
        try:
            dl.wait_until(lambda: down_alerts(), 20, "ResnetdReplicaDown")
        except AssertionError:
            pass
        check([i for i, _ in down_alerts()] == ["resnetd-1:8080"],
              f"ResnetdReplicaDown pending/firing for resnetd-1 only: {down_alerts()}")
        ok = not failures
    finally:
        if not ok:
            print(subprocess.run(compose + ["logs", "--no-color", "--tail", "15"],
                                 capture_output=True, text=True).stdout[-6000:])
        subprocess.run(compose + ["down", "-v", "-t", "30"], capture_output=True, timeout=180)
        dl.cleanup_dir(tmp)
    print(f"{'all passed' if ok else f'{len(failures)} failed'}; "
          f"compose stage {time.monotonic() - t_up:.0f} s")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    ct.NATIVE = os.path.abspath(sys.argv.pop(1))
    main()
