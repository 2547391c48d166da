"""k8s_test.py — deploy/k8s rendered, schema-checked and run as its pod would.

  python3 tests/deploy/k8s_test.py RESNETD_BINARY Render   (native, ctest deploy_k8s)
  DOCKER_HOST=... RESNETD_CI_IMAGE=resnetd:ci \\
    python3 tests/deploy/k8s_test.py RESNETD_BINARY Pod    (ctest deploy_k8s_pod, label container)

Render: `kubectl kustomize deploy/k8s` (kubectl's built-in kustomize; Debian's
kubernetes-client where the machine has no kubectl) renders the five
objects, every one valid against the Kubernetes API's OpenAPI schemas
(kubernetes-models from npm, offline: k8s_validate.mjs), the image is the
Dockerfile's version, and the container's env, args, ports and probes agree
with the server's real flags: `resnetd serve --print-config` with the
ConfigMap's environment listens on the containerPort the probes, the Service
and the Prometheus annotations name.

Pod: the image run the way the Deployment runs it — the ConfigMap as env,
its args, runAsUser/runAsGroup, readOnlyRootFilesystem, capabilities dropped,
no privilege escalation, the emptyDir volumes as tmpfs at their mountPaths,
the CPU/memory limits — on a bridge network, probed like the kubelet does at
the pod's IP and containerPort: startup/readiness (/readyz) and liveness
(/healthz) answer 200 within their timeoutSeconds, the prometheus.io
annotations point at real metrics, the preStop command exists and runs in the
image, and after SIGTERM readiness fails at once and the container exits 0
within terminationGracePeriodSeconds minus the preStop time.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402

BINARY = None
HERE = os.path.dirname(os.path.abspath(__file__))
IMAGE = os.environ.get("RESNETD_CI_IMAGE", "resnetd:ci")


def render():
    """The kustomization rendered by kubectl: {kind: object}."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise AssertionError("kubectl not installed (scripts/install-deps.sh --test)")
    out = subprocess.run([kubectl, "kustomize", os.path.join(dl.DEPLOY, "k8s")], capture_output=True,
                         text=True, timeout=60)
    if out.returncode:
        raise AssertionError(f"kubectl kustomize: {out.stderr}")
    return {d["kind"]: d for d in yaml.safe_load_all(out.stdout) if d}


def container(objs):
    return objs["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def port_of(c, ref):
    """A probe's or Service's port (name or number) -> the containerPort."""
    for p in c["ports"]:
        if ref in (p.get("name"), p["containerPort"]):
            return p["containerPort"]
    raise AssertionError(f"port {ref!r} is not a containerPort of {c['name']}")


class Render(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.objs = render()
        cls.c = container(cls.objs)
        cls.env = {k: str(v) for k, v in cls.objs["ConfigMap"]["data"].items()}

    def test_schemas(self):
        node_modules = os.path.join(HERE, "..", "node_modules", "kubernetes-models")
        self.assertTrue(os.path.isdir(node_modules),
                        "tests/node_modules/kubernetes-models missing (scripts/install-deps.sh --test)")
        p = subprocess.run(["node", os.path.join(HERE, "k8s_validate.mjs")],
                           input=json.dumps(list(self.objs.values())), capture_output=True, text=True,
                           timeout=120)
        print(p.stdout, file=sys.stderr)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(sorted(self.objs), ["ConfigMap", "Deployment", "HorizontalPodAutoscaler",
                                             "PodDisruptionBudget", "Service"])

    def test_image_is_the_dockerfiles(self):
        with open(os.path.join(dl.REPO, "Dockerfile")) as f:
            version = re.search(r'org\.opencontainers\.image\.version="([^"]+)"', f.read()).group(1)
        self.assertEqual(self.c["image"], f"resnetd:{version}")

    def test_flags_env_ports_probes(self):
        # The server as the pod starts it: the image's ENTRYPOINT + args, the
        # ConfigMap as its environment.
        self.assertEqual(self.c["args"][0], "serve")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESNETD_")}
        env.update(self.env)
        p = subprocess.run([BINARY] + self.c["args"] + ["--print-config"], env=env,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        cfg = json.loads(p.stdout)
        for k, v in self.env.items():  # each RESNETD_X is a real key, with that value
            key = k[len("RESNETD_"):].lower()
            self.assertIn(key, cfg, k)
            self.assertEqual(str(cfg[key]), v, k)
        listen = cfg["port"]
        self.assertEqual(cfg["host"], "0.0.0.0", "a pod must listen on every address")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            self.assertEqual(port_of(self.c, self.c[probe]["httpGet"]["port"]), listen, probe)
        svc = self.objs["Service"]["spec"]["ports"][0]
        self.assertEqual(port_of(self.c, svc["targetPort"]), listen)
        # the gRPC port: the Service's "grpc" port reaches what the server listens on
        grpc_svc = [p for p in self.objs["Service"]["spec"]["ports"] if p["name"] == "grpc"]
        self.assertEqual(len(grpc_svc), 1)
        self.assertEqual(port_of(self.c, grpc_svc[0]["targetPort"]), cfg["grpc_port"])
        self.assertNotEqual(cfg["grpc_port"], listen)
        ann = self.objs["Deployment"]["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(int(ann["prometheus.io/port"]), listen)
        # Drain fits in the grace period after the preStop sleep.
        grace = self.objs["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        pre = float(self.c["lifecycle"]["preStop"]["exec"]["command"][1])
        self.assertLess(cfg["drain_timeout_ms"] / 1000 + pre, grace)


class Pod(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.environ.get("RESNETD_CI_BRIDGE", "bridge") != "bridge":
            raise AssertionError("dockerd runs without bridge networking: the pod test needs a pod IP")
        cls.objs = render()
        c = cls.c = container(cls.objs)
        spec = cls.objs["Deployment"]["spec"]["template"]["spec"]
        psc, csc = spec["securityContext"], c["securityContext"]
        cls.name = f"resnetd-pod-{os.getpid()}"
        argv = ["run", "-d", "--name", cls.name,
                "--user", f"{psc['runAsUser']}:{psc['runAsGroup']}",
                "--cpus", str(c["resources"]["limits"]["cpu"]),
                "--memory", c["resources"]["limits"]["memory"].replace("Gi", "g").replace("Mi", "m")]
        for k, v in cls.objs["ConfigMap"]["data"].items():
            argv += ["-e", f"{k}={v}"]
        if csc.get("readOnlyRootFilesystem"):
            argv.append("--read-only")
        if csc.get("allowPrivilegeEscalation") is False:
            argv += ["--security-opt", "no-new-privileges"]
        for cap in csc.get("capabilities", {}).get("drop", []):
            argv += ["--cap-drop", cap]
        vols = {v["name"]: v for v in spec["volumes"]}
        for m in c["volumeMounts"]:
            if "emptyDir" not in vols[m["name"]]:
                raise AssertionError(f"volume {m['name']}: only emptyDir is simulated")
            argv += ["--tmpfs", f"{m['mountPath']}:{'ro,' if m.get('readOnly') else ''}mode=1777"]
        argv += [IMAGE] + c.get("args", [])
        dl_docker(*argv)
        cls.ip = json.loads(dl_docker("inspect", cls.name))[0]["NetworkSettings"]["IPAddress"]
        assert cls.ip, "the container has no bridge IP"

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["docker", "rm", "-f", cls.name], capture_output=True)

    def probe(self, name):
        """GET as the kubelet does; returns (status, seconds)."""
        pr = self.c[name]["httpGet"]
        url = f"http://{self.ip}:{port_of(self.c, pr['port'])}{pr['path']}"
        t = time.monotonic()
        try:
            st = dl.http("GET", url, timeout=self.c[name].get("timeoutSeconds", 1))[0]
        except OSError:
            st = None
        return st, time.monotonic() - t

    def test_1_probes(self):
        st = self.c["startupProbe"]
        budget = st["periodSeconds"] * st["failureThreshold"]
        t0 = time.monotonic()
        dl.wait_until(lambda: self.probe("startupProbe")[0] == 200, budget, "startup probe",
                      interval=st["periodSeconds"])
        print(f"\nstartup probe passed after {time.monotonic() - t0:.1f} s (budget {budget} s)",
              file=sys.stderr)
        for name in ("readinessProbe", "livenessProbe"):
            code, secs = self.probe(name)
            self.assertEqual(code, 200, name)
            self.assertLess(secs, self.c[name].get("timeoutSeconds", 1), name)
        ann = self.objs["Deployment"]["spec"]["template"]["metadata"]["annotations"]
        st, _, body = dl.http("GET", f"http://{self.ip}:{ann['prometheus.io/port']}"
                                     f"{ann['prometheus.io/path']}")
        self.assertEqual(st, 200)
        self.assertIn(b"resnetd_requests_total", body)
        svc = self.objs["Service"]["spec"]["ports"][0]
        with open(os.path.join(dl.REPO, "examples", "00018_Bag.png"), "rb") as f:
            st, _, body = dl.http("POST", f"http://{self.ip}:{port_of(self.c, svc['targetPort'])}"
                                          "/v1/classify", f.read())
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["predictions"][0]["label"], "Bag")

    def test_2_prestop_and_termination(self):
        spec = self.objs["Deployment"]["spec"]["template"]["spec"]
        pre = self.c["lifecycle"]["preStop"]["exec"]["command"]
        t = time.monotonic()
        p = subprocess.run(["docker", "exec", self.name] + pre, capture_output=True, text=True)
        pre_s = time.monotonic() - t
        self.assertEqual(p.returncode, 0, f"preStop {pre} in the image: {p.stderr}")
        # The kubelet's SIGTERM (the image's STOPSIGNAL) after preStop.
        t = time.monotonic()
        dl_docker("kill", "-s", "TERM", self.name)
        period = self.c["readinessProbe"]["periodSeconds"]
        dl.wait_until(lambda: self.probe("readinessProbe")[0] != 200, period, "readiness failing")
        grace = spec["terminationGracePeriodSeconds"] - pre_s
        dl.wait_until(lambda: json.loads(dl_docker("inspect", self.name))[0]["State"]["Status"]
                      == "exited", grace, "exit within the grace period")
        st = json.loads(dl_docker("inspect", self.name))[0]["State"]
        self.assertEqual(st["ExitCode"], 0)
        print(f"\npreStop {pre_s:.1f} s, exit 0 {time.monotonic() - t:.2f} s after SIGTERM "
              f"(grace {spec['terminationGracePeriodSeconds']} s)", file=sys.stderr)


def dl_docker(*args):
    p = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if p.returncode:
        raise AssertionError(f"docker {' '.join(args)}: {p.stderr}")
    return p.stdout


if __name__ == "__main__":
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
