"""Scaffolding for the live model registry tests (issue 14, test_registry_live.py).

- Versions: small gray 28x28 CNNs exported with torch.onnx (srvtest.export_model)
  with different seeds, so every version has its own known logits; the
  reference of an answer is PyTorch + torchvision preprocessing
  (srvtest.reference). version_of() says which version produced a /v1
  classify answer (or None).
- Broken versions: a truncated model.onnx, a bad config.json, a model whose
  output is not a vector ([N, 10, 14, 14]).
- Repository writers: Triton's layout REPO/NAME/<N>/model.onnx with
  config.json and labels.txt at NAME/; a new version is written atomically
  (built beside the repository, then one rename()), or slowly in pieces
  (a copy in progress).
- Driver: a bounded load of /v1 classify requests from a few threads (a
  request cap and a time cap), every answer kept with its send/receive time.
- RSS: VmRSS of a process from /proc/PID/status.
- LogServer: resnetd_serve.Server that is "started" once it listens and
  /healthz is 200 (readiness is what some tests check, so it is not waited
  for).
"""

import http.client
import json
import os
import re
import shutil
import sys
import threading
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import resnetd_serve  # noqa: E402
import srvtest  # noqa: E402

CONFIG = {"input": {"color": "gray", "resize": 28, "crop": 28, "scale": 255.0, "mean": [0.5],
                    "std": [0.5]}, "max_batch": 4}


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


# ------------------------------------------------------------------ models

class Version:
    """One exported version: .onnx (path of model.onnx), .net (torch module)."""

    def __init__(self, onnx, net):
        self.onnx, self.net = onnx, net
        self._refs = {}

    def ref(self, img, k=5):
        key = (img, k)
        if key not in self._refs:
            self._refs[key] = srvtest.reference(self.net, img, k)
        return self._refs[key]


def build_versions(out_dir, seeds=(0, 1, 2)):
    """{1: Version, 2: Version, ...}: the tiny CNN with seed seeds[i] as version i+1."""
    out = {}
    for i, seed in enumerate(seeds):
        d, net = srvtest.export_model(out_dir, name=f"seed{seed}", seed=seed, max_batch=4)
        out[i + 1] = Version(os.path.join(d, "model.onnx"), net)
    return out


def build_not_vector(out_dir):
    """A model.onnx whose output is [N, 10, 14, 14] (no class vector); its path."""
    torch.manual_seed(5)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 10, 3, padding=1), torch.nn.MaxPool2d(2)).eval()
    d = os.path.join(out_dir, "not-vector")
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "model.onnx")
    torch.onnx.export(net, torch.zeros(1, 1, 28, 28), p, input_names=["input"],
                      output_names=["maps"], opset_version=13,
                      dynamic_axes={"input": {0: "n"}, "maps": {0: "n"}})
    return p


def truncated(src, dst, frac=0.5):
    """dst = the first frac of src's bytes (not a parseable ONNX file)."""
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data[:int(len(data) * frac)])


def version_of(preds, versions, img, tol=2e-4):
    """The version numbers whose reference top-k equals preds (probabilities
    within tol, indices equal); a list (empty: from no known version)."""
    hit = []
    for v, ver in versions.items():
        ref = ver.ref(img, len(preds))
        if len(ref) == len(preds) and all(
                p["index"] == i and abs(p["probability"] - prob) < tol
                for p, (i, prob) in zip(preds, ref)):
            hit.append(v)
    return hit


def distinct(versions, imgs, tol=2e-4):
    """Every pair of versions gives a different top-5 on every image (so an
    answer names its version unambiguously)."""
    for img in imgs:
        for a in versions:
            for b in versions:
                if a < b:
                    ra, rb = versions[a].ref(img), versions[b].ref(img)
                    same = all(x[0] == y[0] and abs(x[1] - y[1]) < tol for x, y in zip(ra, rb))
                    check(not same, f"versions {a} and {b} agree on {img}")


# ------------------------------------------------------------- repository

def write_json(path, obj):
    with open(path, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))


def make_model(repo, name, config=None, labels=True):
    """REPO/NAME/ with config.json (CONFIG + config) and labels.txt; its path."""
    d = os.path.join(repo, name)
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "config.json"), {**CONFIG, "name": name, **(config or {})})
    if labels:
        with open(os.path.join(d, "labels.txt"), "w") as f:
            f.write("\n".join(srvtest.LABELS) + "\n")
    return d


def drop_version(repo, name, v, onnx=None, config=None, staging=None):
    """Version v of NAME appears at once: the folder is built in a staging
    directory on the same file system (beside the repository, not inside it)
    and renamed into REPO/NAME/v. onnx: a model.onnx to copy (None: none);
    config: a config.json override for this version (dict or raw text)."""
    staging = staging or os.path.join(os.path.dirname(os.path.abspath(repo)), "staging")
    os.makedirs(staging, exist_ok=True)
    tmp = os.path.join(staging, f"{name}-{v}-{time.monotonic_ns()}")
    os.makedirs(tmp)
    if onnx:
        shutil.copy(onnx, os.path.join(tmp, "model.onnx"))
    if config is not None:
        write_json(os.path.join(tmp, "config.json"), config)
    dst = os.path.join(repo, name, str(v))
    os.rename(tmp, dst)
    return dst


def remove_version(repo, name, v):
    """Version v's folder leaves the repository at once (renamed out, then removed)."""
    src = os.path.join(repo, name, str(v))
    gone = os.path.join(os.path.dirname(os.path.abspath(repo)), f"gone-{time.monotonic_ns()}")
    os.rename(src, gone)
    shutil.rmtree(gone)


def slow_copy(src, dst, pieces=4, pause=1.0, before_last=None):
    """Copy src to dst in `pieces` appends with `pause` s between them (a
    copy in progress); before_last() runs before the final piece."""
    with open(src, "rb") as f:
        data = f.read()
    step = (len(data) + pieces - 1) // pieces
    with open(dst, "wb") as f:
        for i in range(pieces):
            if i == pieces - 1 and before_last:
                before_last()
            f.write(data[i * step:(i + 1) * step])
            f.flush()
            os.fsync(f.fileno())
            if i < pieces - 1:
                time.sleep(pause)


# ------------------------------------------------------------------ server

class LogServer(resnetd_serve.Server):
    """resnetd serve, started once it listens and /healthz is 200 (not
    waiting for /readyz). need_ready=True waits for /readyz as usual."""

    def __init__(self, binary, args, need_ready=False, ready_timeout=120.0, **kw):
        self._need_ready = need_ready
        super().__init__(binary, args, ready_timeout=ready_timeout, prefix="registry-",
                         show_log_on_failure=True, **kw)

    def _wait_ready(self, ready_timeout, probe_timeout):
        if self._need_ready:
            return super()._wait_ready(ready_timeout, probe_timeout)
        deadline = time.monotonic() + ready_timeout
        while self.port is None:
            if self.proc.poll() is not None:
                return f"exited with code {self.proc.returncode} before listening"
            if time.monotonic() >= deadline:
                return "no listening log line"
            m = resnetd_serve._LISTENING.search(self.logs())
            if m:
                self.port = int(m.group(1))
            else:
                time.sleep(0.05)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"exited with code {self.proc.returncode}"
            try:
                if self.http_request("GET", "/healthz", timeout=probe_timeout)[0] == 200:
                    self._find_grpc_port()
                    return None
            except OSError:
                pass
            time.sleep(0.05)
        return "/healthz not 200"

    def index(self):
        """POST /v2/repository/index as a list of dicts."""
        s, _, b = self.request("POST", "/v2/repository/index", b"{}",
                               {"Content-Type": "application/json"})
        check(s == 200, f"index: {s} {b[:300]}")
        return json.loads(b)

    def entries(self, name):
        """{version string: index entry} of one model."""
        return {str(e.get("version", "")): e for e in self.index() if e.get("name") == name}

    def wait_index(self, pred, what, timeout=60.0):
        """Poll the index until pred(index) is true; the index."""
        deadline = time.monotonic() + timeout
        while True:
            idx = self.index()
            if pred(idx):
                return idx
            check(self.alive(), f"server died waiting for {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; index {idx}")
            time.sleep(0.1)

    def wait_state(self, name, version, state, timeout=60.0):
        def ok(idx):
            return any(e.get("name") == name and str(e.get("version")) == str(version) and
                       e.get("state") == state for e in idx)
        return self.wait_index(ok, f"{name} v{version} {state}", timeout)

    def settled(self, name, timeout=60.0):
        """Wait until no version of NAME is LOADING/UNLOADING; {version: entry}."""
        self.wait_index(lambda idx: not any(
            e.get("name") == name and e.get("state") in ("LOADING", "UNLOADING") for e in idx),
            f"{name} settled", timeout)
        return self.entries(name)

    def classify(self, path, img_bytes, timeout=30.0):
        s, _, b = self.request("POST", path, img_bytes, timeout=timeout)
        return s, (json.loads(b) if b[:1] in (b"{", b"[") else b)

    def metrics(self):
        s, _, b = self.request("GET", "/metrics")
        check(s == 200, f"/metrics {s}")
        return b.decode()

    def rss_kb(self):
        return rss_kb(self.proc.pid)


# ---------------------------------------------------------------- metrics

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)', re.M)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text, name):
    """[(labels dict, value)] of one metric in a Prometheus text exposition."""
    out = []
    for m in _SAMPLE.finditer(text):
        if m.group(1) == name:
            out.append((dict(_LABEL.findall(m.group(3) or "")), float(m.group(4))))
    return out


def metric_sum(text, name, **labels):
    return sum(v for lab, v in samples(text, name)
               if all(lab.get(k) == str(want) for k, want in labels.items()))


FAILURE_RESULTS = ("failure", "failed", "error", "fail")


def failed_loads(text, model):
    return sum(v for lab, v in samples(text, "resnetd_model_loads_total")
               if lab.get("model") == model and lab.get("result") in FAILURE_RESULTS)


# ------------------------------------------------------------------ driver

class Driver:
    """A bounded classify load: `threads` keep-alive connections send
    POST `path` with one of `bodies` (round robin) until `max_requests` were
    sent, `max_seconds` passed or stop() is called; a thread sends at most one
    request every `pace` seconds. Each answer is kept as
    (t_sent, t_received, status, json body or bytes, image index)."""

    def __init__(self, port, path, bodies, threads=4, max_requests=3000, max_seconds=60.0,
                 pace=0.005):
        self.port, self.path, self.bodies, self.pace = port, path, bodies, pace
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.results = []
        self.errors = []
        self._lock = threading.Lock()
        self._sent = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self):
        self.t0 = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(120)
        return self

    def count(self):
        with self._lock:
            return len(self.results)

    def _next(self):
        with self._lock:
            if (self._stop.is_set() or self._sent >= self.max_requests or
                    time.monotonic() - self.t0 > self.max_seconds):
                return None
            self._sent += 1
            return self._sent - 1

    def _run(self):
        conn = None
        while True:
            i = self._next()
            if i is None:
                break
            k = i % len(self.bodies)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                t_sent = time.monotonic()
                conn.request("POST", self.path, body=self.bodies[k])
                r = conn.getresponse()
                body = r.read()
                t_recv = time.monotonic()
                try:
                    body = json.loads(body)
                except ValueError:
                    pass
                with self._lock:
                    self.results.append((t_sent, t_recv, r.status, body, k))
                if t_recv - t_sent < self.pace:
                    time.sleep(self.pace - (t_recv - t_sent))
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                with self._lock:
                    self.errors.append(repr(e))
                if conn:
                    conn.close()
                conn = None
        if conn:
            conn.close()


def rss_kb(pid):
    """VmRSS of a process in kB (/proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")
