"""deploylib.py — helpers for tests/deploy/: run the deploy/ topology natively.

No Docker engine runs on the CI machines, so the tests start the same
programs the compose stack runs (resnetd, Debian's nginx, Debian's Prometheus)
as child processes on 127.0.0.1, with deploy/'s configuration files. The only
changes made to those files are rendered into a temporary directory:

  nginx:      deploy/nginx/nginx.conf, with its single `listen 8080;` line
              bound to 127.0.0.1:<free port>; upstream-servers.conf with each
              `resnetd-N:8080` replaced by 127.0.0.1:<port of replica N>
              (max_fails/fail_timeout untouched). pid file and error log go to
              the temp dir through nginx's -g and -e options.
  Prometheus: deploy/prometheus/prometheus.yml, optionally with shorter
              global scrape/evaluation intervals (the topology test uses 1 s
              so that 30 s of load gives enough samples); targets/ holds a
              file_sd file with the replicas' loopback addresses instead of
              targets/compose.json; rules/ is deploy/prometheus/rules/.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(REPO, "deploy")


def free_port():
    """Returns a TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=10):
    """One HTTP request; returns (status, headers, body bytes). Never raises
    for an HTTP error status; raises OSError when no answer comes."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def wait_until(pred, timeout, what, interval=0.2):
    """Calls pred() until it returns a truthy value (returned) or timeout s
    pass (AssertionError naming `what`). Exceptions from pred count as not yet."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except (OSError, ValueError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last})")


def wait_ready(proc, url, timeout, what):
    """Waits until GET url answers 200; fails at once, with the end of the
    process's log, if proc exits first."""
    def pred():
        if not proc.alive():
            raise AssertionError(f"{what}: {proc.name} exited with {proc.p.returncode}:\n{proc.tail()}")
        return http_ok(url)
    return wait_until(pred, timeout, what)


def http_ok(url):
    try:
        return http("GET", url, timeout=2)[0] == 200
    except OSError:
        return False


class Proc:
    """A child process with its output in a log file; stop() ends it."""

    def __init__(self, name, argv, logdir, env=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(logdir, name + ".log")
        self.log = open(self.log_path, "ab")
        try:
            self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env)
        except OSError:
            self.log.close()
            raise

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def send(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def wait(self, timeout):
        """Exit code, or None if still running after timeout s."""
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Signals, waits, SIGKILLs after timeout s. Returns the exit code."""
        if self.alive():
            self.p.send_signal(sig)
            if self.wait(timeout) is None:
                self.p.kill()
                self.p.wait()
        self.log.close()
        return self.p.returncode

    def tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""


# ---------------------------------------------------------------- nginx


def render_nginx(tmp, listen_port, replica_addrs):
    """Writes deploy/nginx/ into tmp/conf/ for loopback use (see module doc).
    replica_addrs: ["127.0.0.1:port", ...] in the order of resnetd-1, -2, ...
    Returns the path of the rendered nginx.conf."""
    conf = os.path.join(tmp, "conf")
    os.makedirs(conf, exist_ok=True)
    with open(os.path.join(DEPLOY, "nginx", "nginx.conf")) as f:
        main = f.read()
    main, n = re.subn(r"(?m)^(\s*)listen 8080;", rf"\g<1>listen 127.0.0.1:{listen_port};", main)
    if n != 1:
        raise AssertionError(f"deploy/nginx/nginx.conf: expected one 'listen 8080;' line, found {n}")
    with open(os.path.join(DEPLOY, "nginx", "upstream-servers.conf")) as f:
        servers = f.read()

    def repl(m):
        i = int(m.group(1)) - 1
        if i >= len(replica_addrs):
            raise AssertionError(f"upstream-servers.conf names resnetd-{i + 1}, "
                                 f"only {len(replica_addrs)} replicas started")
        return replica_addrs[i]

    servers, n = re.subn(r"\bresnetd-(\d+):8080\b", repl, servers)
    if n != len(replica_addrs):
        raise AssertionError(f"upstream-servers.conf: {n} servers for {len(replica_addrs)} replicas")
    out = os.path.join(conf, "nginx.conf")
    with open(out, "w") as f:
        f.write(main)
    with open(os.path.join(conf, "upstream-servers.conf"), "w") as f:
        f.write(servers)
    return out


def nginx_argv(tmp, conf_path, test_only=False):
    """Debian's nginx in the foreground with prefix, pid and error log in tmp."""
    argv = ["nginx", "-p", tmp + "/", "-c", conf_path, "-e", os.path.join(tmp, "nginx-error.log"),
            "-g", f"daemon off; pid {os.path.join(tmp, 'nginx.pid')};"]
    if test_only:
        argv.insert(1, "-t")
    return argv


# ---------------------------------------------------------------- Prometheus


def render_prometheus(tmp, targets, interval=None):
    """Writes deploy/prometheus/ into tmp/prometheus/ (see module doc).
    targets: ["127.0.0.1:port", ...]. interval: e.g. "1s" to override the
    global scrape/evaluation interval, None to keep deploy's.
    Returns the path of the rendered prometheus.yml."""
    import yaml  # python3-yaml (scripts/install-deps.sh --test)

    d = os.path.join(tmp, "prometheus")
    os.makedirs(os.path.join(d, "targets"), exist_ok=True)
    with open(os.path.join(DEPLOY, "prometheus", "prometheus.yml")) as f:
        cfg = yaml.safe_load(f)
    if interval:
        g = cfg.setdefault("global", {})
        g["scrape_interval"] = interval
        g["scrape_timeout"] = interval
        g["evaluation_interval"] = interval
    path = os.path.join(d, "prometheus.yml")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    with open(os.path.join(d, "targets", "loopback.json"), "w") as f:
        json.dump([{"targets": targets, "labels": {"env": "test"}}], f)
    rules = os.path.join(d, "rules")
    if os.path.lexists(rules):
        os.remove(rules)
    os.symlink(os.path.join(DEPLOY, "prometheus", "rules"), rules)
    return path


def prometheus_argv(tmp, conf_path, port):
    return ["prometheus", f"--config.file={conf_path}",
            f"--storage.tsdb.path={os.path.join(tmp, 'prometheus-data')}",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]


def prom_query(port, expr, at=None):
    """Instant query; returns the result list. Raises AssertionError on an
    API error."""
    q = {"query": expr}
    if at is not None:
        q["time"] = f"{at:.3f}"
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode(q)
    status, _, body = http("GET", url)
    doc = json.loads(body)
    if status != 200 or doc.get("status") != "success":
        raise AssertionError(f"Prometheus query {expr!r}: HTTP {status} {body[:300]!r}")
    return doc["data"]["result"]


def prom_get(port, path):
    status, _, body = http("GET", f"http://127.0.0.1:{port}{path}")
    doc = json.loads(body)
    if status != 200 or doc.get("status") != "success":
        raise AssertionError(f"Prometheus {path}: HTTP {status} {body[:300]!r}")
    return doc["data"]


# ---------------------------------------------------------------- resnetd


def resnetd_argv(binary, port, model=None, extra=()):
    argv = [binary, "serve", "--host", "127.0.0.1", "--port", str(port), "--grpc-port", "0"]
    if model:
        argv += ["--model", model]
    return argv + list(extra)


def parse_exposition(text):
    """Prometheus text format -> list of (name, labels dict, value float),
    plus {family: type} from the # TYPE lines."""
    samples, types = [], {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3]
            continue
        m = line_re.match(line)
        if not m:
            raise AssertionError(f"unparsable exposition line: {line!r}")
        labels = dict(label_re.findall(m.group(3) or ""))
        samples.append((m.group(1), labels, float(m.group(4))))
    return samples, types


def make_png(path, size=64):
    """A deterministic RGB test image (gradient + shapes), written with PIL."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size))
    px = img.load()
    for y in range(size):
        for x in range(size):
            px[x, y] = ((x * 255) // size, (y * 255) // size, ((x ^ y) * 7) % 256)
    d = ImageDraw.Draw(img)
    d.ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=(240, 240, 240))
    img.save(path, format="PNG")
    return path


def cleanup_dir(path):
    shutil.rmtree(path, ignore_errors=True)



def model_dir(preferred, tmp):
    """preferred (the bundled models/fashion-mnist) when it holds a model;
    otherwise a tiny random-weight gray 28x28 -> 10 classes ONNX model written
    to tmp with torch, so that the deployment tests do not depend on the
    bundled model's presence (its content does not matter to them)."""
    if os.path.exists(os.path.join(preferred, "model.onnx")):
        return preferred
    import torch  # python3-torch (scripts/install-deps.sh --test)

    d = os.path.join(tmp, "tiny-model")
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                            torch.nn.Linear(8, 10)).eval()
    torch.onnx.export(m, torch.zeros(1, 1, 28, 28), os.path.join(d, "model.onnx"), opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"name": "tiny", "input": {"color": "gray", "resize": 28, "crop": 28, "scale": 255.0,
                                             "mean": [0.5], "std": [0.5]}, "max_batch": 8}, f)
    print(f"note: {preferred} has no model.onnx; using a generated tiny model", flush=True)
    return d
