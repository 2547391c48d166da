"""static_test.py — checks of the deployment files that need no running server.

  /usr/bin/python3 tests/deploy/static_test.py [RESNETD_BINARY]

- The Dockerfile runs the same install and build scripts as CI (.ci/run ->
  scripts/test.sh), so the image cannot drift from what CI tests; its runtime
  stage has the properties issue 6 asks for; .dockerignore keeps every tracked
  file in the build context.
- deploy/docker/runtime-packages.sh maps the built binary's libraries to
  installed, non -dev Debian packages (needs RESNETD_BINARY).
- nginx: the load-balancing policy, and `nginx -t` on the rendered config.
- compose: three replicas, every mounted file exists, mounts match the paths
  the configs name.
- Grafana: provisioning and dashboard agree; the required panels exist.
- Kubernetes: every manifest parses, kustomization lists them all, probes,
  resources, grace period vs drain timeout, selectors, ports.
"""

import fnmatch
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib  # noqa: E402

REPO = deploylib.REPO
DEPLOY = deploylib.DEPLOY
BINARY = None


def read(*parts):
    with open(os.path.join(REPO, *parts)) as f:
        return f.read()


# ------------------------------------------------------------------ Dockerfile


def dockerfile_instructions(text):
    """Dockerfile -> [(INSTRUCTION, argument string)], continuations joined,
    comments dropped."""
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not cur and (not line or line.startswith("#")):
            continue
        if cur and line.startswith("#"):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        word, _, rest = cur.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        cur = ""
    return out


def stages(instrs):
    """Splits instructions at FROM: [(from_arg, [instrs...])]."""
    result = []
    for ins, arg in instrs:
        if ins == "FROM":
            result.append((arg, []))
        elif result:
            result[-1][1].append((ins, arg))
    return result


def normalize(cmd):
    return " ".join(shlex.split(cmd))


def ci_commands():
    """The install and main build commands CI runs, read from .ci/run and
    scripts/test.sh."""
    run = read(".ci", "run")
    if not re.search(r"(?m)^\s*(exec\s+)?(bash\s+)?scripts/test\.sh\b", run):
        raise AssertionError(".ci/run no longer runs scripts/test.sh: update this test")
    test_sh = read("scripts", "test.sh")
    install = [line.strip() for line in test_sh.splitlines()
               if re.match(r"\s*scripts/install-deps\.sh\b", line)]
    build = [line.strip() for line in test_sh.splitlines()
             if re.search(r"(^|\s)scripts/build\.sh\b", line) and not line.strip().startswith("#")]
    return install, build


class DockerfileTest(unittest.TestCase):
    def setUp(self):
        self.instrs = dockerfile_instructions(read("Dockerfile"))
        self.stages = stages(self.instrs)
        self.runs = [a for i, a in self.instrs if i == "RUN"]

    def test_same_scripts_as_ci(self):
        install, build = ci_commands()
        self.assertTrue(install, "scripts/test.sh does not run scripts/install-deps.sh")
        self.assertTrue(build, "scripts/test.sh does not run scripts/build.sh")
        build_stage = self.stages[0][1]
        runs = [normalize(a) for i, a in build_stage if i == "RUN"]
        # Same dependency script (CI adds --test for the test tools only).
        self.assertTrue(any(re.search(r"(^|&&\s*|\s)scripts/install-deps\.sh(\s|$)", r) for r in runs),
                        f"the build stage does not run scripts/install-deps.sh: {runs}")
        # Exactly CI's first (optimised, -Werror) build command.
        want = normalize(build[0])
        self.assertTrue(any(want in r for r in runs),
                        f"the build stage does not run CI's build command {want!r}: {runs}")
        # No second, hand-written way of building.
        for r in runs:
            self.assertNotRegex(r, r"cmake\s+(-S|-B|--build)|\bmake\b|\bninja\b|\bgcc\b|\bcc\b",
                                f"the Dockerfile builds outside scripts/build.sh: {r}")
        # The scripts it runs are copied in from the repository, executable.
        copies = " ".join(a for i, a in build_stage if i == "COPY")
        self.assertIn("scripts/install-deps.sh", copies)
        for script in ["scripts/install-deps.sh", "scripts/build.sh", "deploy/docker/runtime-packages.sh"]:
            self.assertTrue(os.access(os.path.join(REPO, script), os.X_OK), f"{script} not executable")

    def test_stages(self):
        self.assertEqual(len(self.stages), 2, "expected a build and a runtime stage")
        self.assertRegex(self.stages[0][0], r"^debian:bookworm\s+AS\s+build$")
        self.assertEqual(self.stages[1][0], "debian:bookworm-slim")

    def test_copy_sources_exist(self):
        for ins, arg in self.instrs:
            if ins != "COPY" or arg.startswith("--from"):
                continue
            srcs = shlex.split(arg)[:-1]
            for s in srcs:
                self.assertTrue(os.path.exists(os.path.join(REPO, s)), f"COPY source {s} missing")

    def test_runtime_stage(self):
        rt = self.stages[-1][1]
        kinds = {}
        for ins, arg in rt:
            kinds.setdefault(ins, []).append(arg)
        # Non-root, numeric uid (Kubernetes runAsNonRoot needs a number).
        user = kinds["USER"][-1]
        uid = user.split(":")[0]
        self.assertTrue(uid.isdigit() and int(uid) != 0, f"USER {user}")
        self.assertEqual(kinds["EXPOSE"], ["8080 8081"])  # HTTP, gRPC
        self.assertRegex(" ".join(kinds["ENV"]), r"\bRESNETD_GRPC_PORT=8081\b")
        env = " ".join(kinds["ENV"])
        self.assertRegex(env, r"\bRESNETD_HOST=0\.0\.0\.0\b")
        self.assertEqual(kinds["STOPSIGNAL"], ["SIGTERM"])
        hc = kinds["HEALTHCHECK"][-1]
        self.assertIn("/healthz", hc)
        self.assertIn("curl", hc)
        rt_runs = " ".join(kinds["RUN"])
        self.assertRegex(rt_runs, r"install -y --no-install-recommends\s+curl\b",
                         "the HEALTHCHECK's curl is not installed in the runtime image")
        self.assertNotRegex(rt_runs, r"-dev\b|build-essential|install-deps\.sh",
                            "build dependencies in the runtime stage")
        self.assertIn("/models", rt_runs)
        # Exec form: resnetd is PID 1, gets SIGTERM itself.
        ep = json.loads(kinds["ENTRYPOINT"][-1])
        self.assertTrue(ep[0].endswith("/resnetd"), ep)
        self.assertEqual(json.loads(kinds["CMD"][-1]), ["serve"])
        # The runtime libraries come from the build's own link line.
        self.assertIn("runtime-packages.txt", rt_runs)
        # The default model is installed (CMake's install of models/).
        self.assertIn("install(DIRECTORY models/ DESTINATION share/resnetd/models)", read("CMakeLists.txt"))

    def test_dockerignore_keeps_tracked_files(self):
        pats = [p.strip() for p in read(".dockerignore").splitlines()
                if p.strip() and not p.strip().startswith("#")]
        try:
            files = subprocess.run(["git", "-C", REPO, "ls-files"], check=True, capture_output=True,
                                   text=True).stdout.split()
        except (OSError, subprocess.CalledProcessError):
            self.skipTest("not a git checkout")

        def excluded(path):
            parts = path.split("/")
            prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
            for p in pats:
                variants = [p, p[3:]] if p.startswith("**/") else [p]
                if any(fnmatch.fnmatchcase(pre, v) for pre in prefixes for v in variants):
                    return True
            return False

        dropped = [f for f in files if excluded(f)]
        self.assertEqual(dropped, [], "tracked files left out of the Docker build context")
        for needed in ["scripts/install-deps.sh", "scripts/build.sh", "CMakeLists.txt",
                       "deploy/docker/runtime-packages.sh"]:
            self.assertFalse(excluded(needed), needed)

    def test_runtime_packages_script(self):
        if not BINARY:
            self.skipTest("no resnetd binary given")
        out = subprocess.run([os.path.join(DEPLOY, "docker", "runtime-packages.sh"), BINARY],
                             check=True, capture_output=True, text=True).stdout.split()
        self.assertIn("libc6", out)
        for pkg in out:
            self.assertFalse(pkg.endswith("-dev"), pkg)
            st = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True,
                                text=True).stdout
            self.assertIn("install ok installed", st, pkg)
        # Every library the binary loads is covered: ldd's list maps to
        # these packages only (checked by the script failing otherwise).
        libs = subprocess.run(["ldd", BINARY], check=True, capture_output=True, text=True).stdout
        if "libdnnl" in libs:
            self.assertTrue(any(p.startswith("libdnnl") for p in out), out)


# ----------------------------------------------------------------------- nginx


class NginxTest(unittest.TestCase):
    def test_policy(self):
        conf = read("deploy", "nginx", "nginx.conf")
        up = re.search(r"upstream\s+resnetd\s*\{(.*?)\}", conf, re.S).group(1)
        self.assertRegex(up, r"(?m)^\s*least_conn;")
        self.assertRegex(up, r"include\s+upstream-servers\.conf;")
        self.assertRegex(up, r"keepalive\s+\d+;")
        nu = re.search(r"proxy_next_upstream\s+([^;]*);", conf).group(1).split()
        for w in ["error", "timeout", "http_503", "non_idempotent"]:
            self.assertIn(w, nu)
        self.assertRegex(conf, r"proxy_http_version\s+1\.1;")
        self.assertRegex(conf, r'proxy_set_header\s+Connection\s+"";')
        for d in ["proxy_connect_timeout", "proxy_read_timeout", "proxy_send_timeout"]:
            self.assertRegex(conf, d + r"\s+\d+s;")
        # Left to the command line so the test and the image can both set them.
        self.assertNotRegex(conf, r"(?m)^\s*(pid|daemon)\s")
        servers = [line for line in read("deploy", "nginx", "upstream-servers.conf").splitlines()
                   if line.strip().startswith("server ")]
        self.assertEqual(len(servers), 3)
        for s in servers:
            self.assertRegex(s, r"max_fails=\d+")
            self.assertRegex(s, r"fail_timeout=\d+s")

    def test_nginx_t(self):
        with tempfile.TemporaryDirectory() as tmp:
            conf = deploylib.render_nginx(tmp, deploylib.free_port(),
                                          ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"])
            r = subprocess.run(deploylib.nginx_argv(tmp, conf, test_only=True), capture_output=True,
                               text=True)
            self.assertEqual(r.returncode, 0, r.stderr)


# --------------------------------------------------------------------- compose


class ComposeTest(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(DEPLOY, "compose.yaml")) as f:
            self.doc = yaml.safe_load(f)
        self.svc = self.doc["services"]

    def test_replicas(self):
        reps = sorted(n for n in self.svc if re.fullmatch(r"resnetd-\d+", n))
        self.assertEqual(reps, ["resnetd-1", "resnetd-2", "resnetd-3"])
        for n in reps:
            s = self.svc[n]
            self.assertEqual(s["build"]["context"], "..")
            self.assertTrue(os.path.exists(os.path.join(DEPLOY, "..", s["build"]["dockerfile"])))
            self.assertIn("/readyz", " ".join(s["healthcheck"]["test"]))
            self.assertEqual(s["environment"]["RESNETD_HOST"], "0.0.0.0")
            grace = int(s["stop_grace_period"].rstrip("s"))
            drain = int(s["environment"]["RESNETD_DRAIN_TIMEOUT_MS"]) / 1000
            self.assertGreater(grace, drain)
        # The servers nginx and Prometheus name are the compose services.
        names = re.findall(r"\b(resnetd-\d+):8080", read("deploy", "nginx", "upstream-servers.conf"))
        self.assertEqual(sorted(names), reps)
        with open(os.path.join(DEPLOY, "prometheus", "targets", "compose.json")) as f:
            targets = [t for group in json.load(f) for t in group["targets"]]
        self.assertEqual(sorted(targets), [r + ":8080" for r in reps])

    def test_mounts(self):
        for name in ["nginx", "prometheus", "grafana"]:
            self.assertIn(name, self.svc)
        for name, s in self.svc.items():
            for v in s.get("volumes", []):
                src, dst = v.split(":")[:2]
                if src.startswith("."):
                    self.assertTrue(os.path.exists(os.path.join(DEPLOY, src)), f"{name}: {src}")
        ng = [v.split(":")[1] for v in self.svc["nginx"]["volumes"]]
        self.assertIn("/etc/nginx/nginx.conf", ng)
        # nginx resolves `include upstream-servers.conf` next to nginx.conf.
        self.assertIn("/etc/nginx/upstream-servers.conf", ng)
        prom = self.svc["prometheus"]
        self.assertIn("--config.file=/etc/prometheus/prometheus.yml", prom["command"])
        pv = [v.split(":")[1] for v in prom["volumes"]]
        self.assertIn("/etc/prometheus/rules", pv)
        self.assertTrue(any(p.startswith("/etc/prometheus/targets/") for p in pv))

    def test_grafana_provisioning(self):
        g = self.svc["grafana"]
        mounts = dict((v.split(":")[0], v.split(":")[1]) for v in g["volumes"])
        with open(os.path.join(DEPLOY, "grafana", "provisioning", "dashboards", "resnetd.yml")) as f:
            prov = yaml.safe_load(f)
        self.assertEqual(prov["providers"][0]["options"]["path"], mounts["./grafana/dashboards"])
        self.assertEqual(mounts["./grafana/provisioning"], "/etc/grafana/provisioning")
        with open(os.path.join(DEPLOY, "grafana", "provisioning", "datasources", "prometheus.yml")) as f:
            ds = yaml.safe_load(f)["datasources"][0]
        self.assertEqual(ds["url"], "http://prometheus:9090")
        with open(os.path.join(DEPLOY, "grafana", "dashboards", "resnetd.json")) as f:
            dash = json.load(f)
        exprs = []
        for p in dash["panels"]:
            for t in p.get("targets", []):
                self.assertEqual(t["datasource"]["uid"], ds["uid"], p["title"])
                exprs.append(t["expr"])
        joined = "\n".join(exprs)
        for needle in [r"rate\(resnetd_requests_total",                      # request rate
                       r'code=~"5\.\."',                                       # error ratio
                       r"histogram_quantile\(0\.50?, .*resnetd_request_duration_seconds_bucket",
                       r"histogram_quantile\(0\.99, .*resnetd_request_duration_seconds_bucket",
                       r"resnetd_queue_depth",
                       r"resnetd_batch_size_",
                       r"sum by \(instance\) \(rate\(resnetd_images_total"]:  # images/s per replica
            self.assertRegex(joined, needle)
        ids = [p["id"] for p in dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)))


# ------------------------------------------------------------------ Kubernetes


def k8s_docs():
    docs = {}
    for path in sorted(glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml"))):
        with open(path) as f:
            for d in yaml.safe_load_all(f):
                if d:
                    docs.setdefault(d["kind"], []).append((os.path.basename(path), d))
    return docs


class K8sTest(unittest.TestCase):
    def setUp(self):
        self.docs = k8s_docs()
        self.dep = self.docs["Deployment"][0][1]
        self.pod = self.dep["spec"]["template"]
        self.c = self.pod["spec"]["containers"][0]
        self.cm = self.docs["ConfigMap"][0][1]

    def test_kustomization_lists_every_manifest(self):
        kz = self.docs["Kustomization"][0][1]
        files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml"))
                       if os.path.basename(p) != "kustomization.yaml")
        self.assertEqual(sorted(kz["resources"]), files)
        for kind in ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                     "ConfigMap"]:
            self.assertIn(kind, self.docs)

    def test_kustomize_build(self):
        # Optional: only where a kubectl with kustomize is installed.
        import shutil
        if not shutil.which("kubectl"):
            self.skipTest("kubectl not installed")
        r = subprocess.run(["kubectl", "kustomize", os.path.join(DEPLOY, "k8s")], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        kinds = sorted(d["kind"] for d in yaml.safe_load_all(r.stdout) if d)
        self.assertEqual(kinds, sorted(["ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler",
                                        "PodDisruptionBudget"]))

    def test_probes(self):
        port_names = {p["name"]: p["containerPort"] for p in self.c["ports"]}
        expect = {"readinessProbe": "/readyz", "livenessProbe": "/healthz", "startupProbe": "/readyz"}
        for probe, path in expect.items():
            pr = self.c[probe]
            self.assertEqual(pr["httpGet"]["path"], path, probe)
            self.assertIn(pr["httpGet"]["port"], list(port_names) + list(port_names.values()))
        st = self.c["startupProbe"]
        self.assertGreaterEqual(st["periodSeconds"] * st["failureThreshold"], 60,
                                "startup probe allows under a minute for model load")
        self.assertEqual(port_names["http"], int(self.cm["data"]["RESNETD_PORT"]))

    def test_resources(self):
        units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}

        def cpu(v):
            v = str(v)
            return float(v[:-1]) / 1000 if v.endswith("m") else float(v)

        def mem(v):
            v = str(v)
            for u, m in units.items():
                if v.endswith(u):
                    return float(v[:-2]) * m
            return float(v)

        r = self.c["resources"]
        for k in ["cpu", "memory"]:
            self.assertIn(k, r["requests"])
            self.assertIn(k, r["limits"])
        self.assertLessEqual(cpu(r["requests"]["cpu"]), cpu(r["limits"]["cpu"]))
        self.assertLessEqual(mem(r["requests"]["memory"]), mem(r["limits"]["memory"]))
        # Threads match the CPU limit: no throttling by the CFS quota.
        d = self.cm["data"]
        threads = int(d.get("RESNETD_WORKERS", 1)) * int(d.get("RESNETD_THREADS_PER_WORKER", 1))
        self.assertLessEqual(threads, cpu(r["limits"]["cpu"]))

    def test_termination(self):
        grace = self.pod["spec"]["terminationGracePeriodSeconds"]
        drain = int(self.cm["data"]["RESNETD_DRAIN_TIMEOUT_MS"]) / 1000
        pre = self.c["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(pre[0], "sleep")
        self.assertGreater(grace, drain + float(pre[1]))
        self.assertEqual(self.c["envFrom"][0]["configMapRef"]["name"], self.cm["metadata"]["name"])

    def test_selectors_and_security(self):
        labels = self.pod["metadata"]["labels"]
        sel = self.dep["spec"]["selector"]["matchLabels"]
        self.assertTrue(sel.items() <= labels.items())
        svc = self.docs["Service"][0][1]
        self.assertTrue(svc["spec"]["selector"].items() <= labels.items())
        port_names = [p["name"] for p in self.c["ports"]]
        for p in svc["spec"]["ports"]:
            self.assertIn(p["targetPort"], port_names)
        pdb = self.docs["PodDisruptionBudget"][0][1]
        self.assertTrue(pdb["spec"]["selector"]["matchLabels"].items() <= labels.items())
        hpa = self.docs["HorizontalPodAutoscaler"][0][1]
        ref = hpa["spec"]["scaleTargetRef"]
        self.assertEqual((ref["kind"], ref["name"]), ("Deployment", self.dep["metadata"]["name"]))
        self.assertGreaterEqual(hpa["spec"]["minReplicas"], 2, "one replica cannot survive a drain")
        self.assertGreaterEqual(hpa["spec"]["maxReplicas"], hpa["spec"]["minReplicas"])
        sc = self.pod["spec"]["securityContext"]
        self.assertTrue(sc["runAsNonRoot"])
        docker_user = [a for i, a in dockerfile_instructions(read("Dockerfile")) if i == "USER"][-1]
        self.assertEqual(str(sc["runAsUser"]), docker_user.split(":")[0])


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
