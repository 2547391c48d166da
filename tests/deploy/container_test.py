"""container_test.py — the Dockerfile's image in a real Docker engine.

  DOCKER_HOST=... RESNETD_CI_IMAGE=resnetd:ci \\
    python3 tests/deploy/container_test.py NATIVE_RESNETD

Run by scripts/test-containers.sh (ctest label "container"), which starts the
engine and builds the image. Containers use --network host and listen on a
free loopback port.

- The image: runs as uid 10001 (not root), has a HEALTHCHECK, exec-form
  ENTRYPOINT; its size and runtime packages are printed.
- `classify` of examples/ in the container gives the native build's answers.
- One server container with the production hardening (--read-only root
  filesystem, no tmpfs: resnetd writes nothing; --cap-drop ALL,
  no-new-privileges), a model repository mounted read-only on /models and
  RESNETD_* configuration: HEALTHCHECK turns healthy; the process runs as
  uid 10001; the root filesystem refuses writes; the mounted model is served
  (and only it); RESNETD_TOP_K / RESNETD_MAX_BATCH took effect; every example
  classified over HTTP matches the native build; `docker stop` while
  requests wait in a batch: every accepted request gets 200, exit code 0.
- Without a mount, /models is empty and the bundled default model is served.
"""

import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402

NATIVE = None
IMAGE = os.environ.get("RESNETD_CI_IMAGE", "resnetd:ci")
EXAMPLES = os.path.join(dl.REPO, "examples")
MODEL = os.path.join(dl.REPO, "models", "fashion-mnist")
IMAGES = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".png"))
UID = "10001"


def docker(*args, check=True, timeout=120):
    """Runs the docker CLI; returns stdout (str). Raises with stderr on failure."""
    p = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} -> {p.returncode}:\n{p.stderr}{p.stdout}")
    return p.stdout


def native_answers():
    """{file name: predictions} from the native build's `classify`."""
    out = subprocess.run([NATIVE, "classify", "--model", MODEL] +
                         [os.path.join(EXAMPLES, f) for f in IMAGES],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return {os.path.basename(d["file"]): d["predictions"]
            for d in map(json.loads, out.splitlines())}


def assert_same(tc, got, want, what):
    """Same classes in the same order, probabilities equal to print precision."""
    tc.assertEqual([(p["index"], p["label"]) for p in got],
                   [(p["index"], p["label"]) for p in want], what)
    for g, w in zip(got, want):
        tc.assertAlmostEqual(g["probability"], w["probability"], delta=1e-5 + 1e-4 * w["probability"],
                             msg=what)


class Image(unittest.TestCase):
    def test_image_properties(self):
        cfg = json.loads(docker("image", "inspect", IMAGE))[0]
        c = cfg["Config"]
        self.assertEqual(c["User"], f"{UID}:{UID}")
        self.assertEqual(c["Entrypoint"], ["/usr/local/bin/resnetd"])
        self.assertIn("/healthz", " ".join(c["Healthcheck"]["Test"]))
        self.assertEqual(c["StopSignal"], "SIGTERM")
        size = cfg["Size"]
        pkgs = docker("run", "--rm", "--network", "host", "--entrypoint", "sh", IMAGE, "-c",
                      "dpkg-query -W -f '${Package}\\n' | wc -l; "
                      "du -sk /usr/local /usr/lib/x86_64-linux-gnu 2>/dev/null")
        print(f"\nimage {IMAGE}: {size / 1e6:.1f} MB; packages, kB in /usr/local and "
              f"/usr/lib/x86_64-linux-gnu:\n{pkgs}", file=sys.stderr)
        # bookworm-slim (~75 MB) + oneDNN (~80 MB) + the rest: a build stage
        # leaking into the runtime image would be ~1 GB.
        self.assertLess(size, 400e6, "runtime image unexpectedly large")

    def test_classify_cli_matches_native(self):
        want = native_answers()
        out = docker("run", "--rm", "--network", "host", "--read-only",
                     "-v", f"{EXAMPLES}:/examples:ro", IMAGE, "classify", "--model",
                     "/usr/local/share/resnetd/models/fashion-mnist",
                     *[f"/examples/{f}" for f in IMAGES])
        got = {os.path.basename(d["file"]): d["predictions"] for d in map(json.loads, out.splitlines())}
        self.assertEqual(sorted(got), sorted(want))
        for f in IMAGES:
            self.assertEqual(got[f], want[f], f)  # same binary code, same bytes out


class Server(unittest.TestCase):
    """One hardened server container, shared by the tests in order (test_9 stops it)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="resnetd-ct-")
        repo = os.path.join(cls.tmp, "models")
        shutil.copytree(MODEL, os.path.join(repo, "mounted-fmnist"))
        cfg_path = os.path.join(repo, "mounted-fmnist", "config.json")
        with open(cfg_path) as f:
            mcfg = json.load(f)
        mcfg["name"] = "mounted-fmnist"  # the served name: tells it from the bundled model
        with open(cfg_path, "w") as f:
            json.dump(mcfg, f)
        for root, dirs, files in os.walk(cls.tmp):  # readable by uid 10001
            os.chmod(root, 0o755)
            for f in files:
                os.chmod(os.path.join(root, f), 0o644)
        cls.port = dl.free_port()
        cls.base = f"http://127.0.0.1:{cls.port}"
        cls.name = f"resnetd-ct-{cls.port}"
        docker("run", "-d", "--name", cls.name, "--network", "host",
               "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
               "-v", f"{repo}:/models:ro",
               "-e", "RESNETD_HOST=127.0.0.1", "-e", f"RESNETD_PORT={cls.port}",
               "-e", "RESNETD_TOP_K=3", "-e", "RESNETD_MAX_BATCH=32",
               # While an upload is announced, a batch waits up to 5 s for it:
               # requests stay in flight long enough for the drain test to
               # stop the container under them.
               "-e", "RESNETD_BATCH_TIMEOUT_US=5000000",
               "-e", "RESNETD_DRAIN_TIMEOUT_MS=15000",
               "--health-interval", "1s", "--health-start-period", "30s", IMAGE)

    @classmethod
    def tearDownClass(cls):
        logs = subprocess.run(["docker", "logs", "--tail", "20", cls.name], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True).stdout
        docker("rm", "-f", cls.name, check=False)
        shutil.rmtree(cls.tmp, ignore_errors=True)
        print(f"\n{cls.name} log (end):\n{logs}", file=sys.stderr)

    def state(self):
        return json.loads(docker("inspect", self.name))[0]["State"]

    def test_1_healthy(self):
        # --health-interval 1s only shortens the wait; the check is the image's.
        dl.wait_until(lambda: self.state()["Health"]["Status"] == "healthy", 60, "healthy")
        self.assertEqual(dl.http("GET", self.base + "/readyz")[0], 200)

    def test_2_non_root_read_only(self):
        pid = self.state()["Pid"]
        with open(f"/proc/{pid}/status") as f:
            uids = next(l for l in f if l.startswith("Uid:")).split()[1:]
        self.assertEqual(set(uids), {UID}, "resnetd must run as uid 10001")
        with open(f"/proc/{pid}/status") as f:
            capeff = next(l for l in f if l.startswith("CapEff:")).split()[1]
        self.assertEqual(int(capeff, 16), 0)
        p = subprocess.run(["docker", "exec", self.name, "sh", "-c", "echo x > /x"],
                           capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("Read-only file system", p.stderr)

    def test_3_mounted_repository_served(self):
        dl.wait_until(lambda: dl.http_ok(self.base + "/readyz"), 60, "ready")
        st, _, body = dl.http("GET", self.base + "/v1/models")
        self.assertEqual(st, 200)
        self.assertEqual([m["name"] for m in json.loads(body)["models"]], ["mounted-fmnist"])

    def test_4_env_config(self):
        models = json.loads(dl.http("GET", self.base + "/v1/models")[2])["models"]
        self.assertEqual(models[0]["max_batch"], 32)  # RESNETD_MAX_BATCH
        with open(os.path.join(EXAMPLES, IMAGES[0]), "rb") as f:
            st, _, body = dl.http("POST", self.base + "/v1/classify", f.read())
        self.assertEqual(st, 200, body)
        self.assertEqual(len(json.loads(body)["predictions"]), 3)  # RESNETD_TOP_K
        cfg = json.loads(docker("run", "--rm", "--network", "host", "-e", "RESNETD_WORKERS=2",
                                "-e", "RESNETD_LOG_LEVEL=debug", IMAGE, "serve", "--print-config"))
        self.assertEqual((cfg["workers"], cfg["log_level"], cfg["host"], cfg["model_repository"]),
                         (2, "debug", "0.0.0.0", "/models"))

    def test_5_http_matches_native(self):
        want = native_answers()
        for f in IMAGES:
            with open(os.path.join(EXAMPLES, f), "rb") as fh:
                st, _, body = dl.http("POST", self.base + "/v1/models/mounted-fmnist/classify?top_k=5",
                                      fh.read())
            self.assertEqual(st, 200, body)
            assert_same(self, json.loads(body)["predictions"], want[f], f)

    def test_9_stop_drains(self):
        with open(os.path.join(EXAMPLES, IMAGES[0]), "rb") as f:
            img = f.read()
        n = 4
        # One accepted request whose body is still uploading when SIGTERM
        # arrives; while it is announced the others' batch waits for it.
        slow = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        half = len(img) // 2
        slow.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(img) + img[:half])
        with concurrent.futures.ThreadPoolExecutor(n + 1) as ex:
            futs = [ex.submit(dl.http, "POST", self.base + "/v1/classify", img, None, 30)
                    for _ in range(n)]
            dl.wait_until(lambda: in_flight(self.base) >= n + 1, 5, "requests in flight",
                          interval=0.05)
            t0 = time.monotonic()
            stop = ex.submit(docker, "stop", "-t", "30", self.name)
            time.sleep(0.5)  # SIGTERM delivered: the server is draining
            self.assertFalse(stop.done(), "exited with requests in flight")
            slow.sendall(img[half:])
            answer = b""
            while chunk := slow.recv(65536):
                answer += chunk
            slow.close()
            codes = [fu.result()[0] for fu in futs]
            stop.result()
            stop_s = time.monotonic() - t0
        self.assertEqual(codes, [200] * n)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:200])
        st = self.state()
        self.assertEqual((st["Status"], st["ExitCode"], st["OOMKilled"]), ("exited", 0, False))
        self.assertLess(stop_s, 15, "stopped by SIGKILL, not by draining")
        print(f"\ndocker stop with {n + 1} requests in flight (one still uploading): "
              f"{stop_s:.2f} s, all 200, exit 0", file=sys.stderr)


def metrics_text(base):
    return dl.http("GET", base + "/metrics", timeout=2)[2].decode()


def in_flight(base):
    """The server's in-flight request gauge, less this scrape (it counts itself)."""
    for line in metrics_text(base).splitlines():
        if line.startswith("resnetd_inflight_requests "):
            return float(line.split()[-1]) - 1
    return 0


class DefaultModel(unittest.TestCase):
    def test_empty_models_serves_bundled(self):
        port = dl.free_port()
        name = f"resnetd-ct-default-{port}"
        docker("run", "-d", "--name", name, "--network", "host", "--read-only",
               "-e", "RESNETD_HOST=127.0.0.1", "-e", f"RESNETD_PORT={port}", IMAGE)
        try:
            dl.wait_until(lambda: dl.http_ok(f"http://127.0.0.1:{port}/readyz"), 60, "ready")
            models = json.loads(dl.http("GET", f"http://127.0.0.1:{port}/v1/models")[2])["models"]
            self.assertEqual([m["name"] for m in models], ["fashion-mnist"])
        finally:
            docker("rm", "-f", name, check=False)


if __name__ == "__main__":
    NATIVE = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
