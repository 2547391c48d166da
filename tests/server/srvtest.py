"""Helpers for the server tests: a tiny test model exported with torch.onnx,
test images, and a real `resnetd serve` on 127.0.0.1 with an OS-chosen port
(--port 0; the port is read from the server's "listening" log line)."""

import atexit
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
          "boot"]


def export_model(out_dir, name="tiny", width=8, depth=1, seed=0, max_batch=8):
    """A small gray 28x28 CNN, 10 classes, dynamic batch; writes model.onnx,
    labels.txt and config.json into out_dir/name. Returns (dir, torch module)."""
    torch.manual_seed(seed)
    layers = [torch.nn.Conv2d(1, width, 3, padding=1), torch.nn.ReLU()]
    for _ in range(depth - 1):
        layers += [torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU()]
    layers += [torch.nn.MaxPool2d(2), torch.nn.Conv2d(width, 16, 3, padding=1), torch.nn.ReLU(),
               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10)]
    net = torch.nn.Sequential(*layers).eval()
    with torch.no_grad():  # spread the logits so the top-k order is well defined
        net[-1].weight.mul_(8.0)
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    torch.onnx.export(net, torch.zeros(1, 1, 28, 28), os.path.join(d, "model.onnx"),
                      input_names=["input"], output_names=["logits"], opset_version=13,
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    with open(os.path.join(d, "labels.txt"), "w") as f:
        f.write("\n".join(LABELS) + "\n")
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"name": name, "input": {"color": "gray", "resize": 28, "crop": 28,
                                           "scale": 255.0, "mean": [0.5], "std": [0.5]},
                   "max_batch": max_batch}, f)
    return d, net


def make_images(out_dir, n=6):
    """n small varied JPEG/PNG images (shapes on gradients); returns their paths."""
    rng = np.random.default_rng(7)
    paths = []
    for i in range(n):
        h, w = int(rng.integers(30, 90)), int(rng.integers(30, 90))
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([(x * (i + 1) * 3) % 256, (y * 5 + i * 40) % 256,
                        ((x + y) * (7 - i % 5)) % 256], -1).astype(np.uint8)
        img[h // 4:h // 2, w // 3:w // 2] = 255 - 40 * (i % 6)
        p = os.path.join(out_dir, f"img{i}.{'jpg' if i % 2 else 'png'}")
        Image.fromarray(img).save(p, quality=92) if i % 2 else Image.fromarray(img).save(p)
        paths.append(p)
    return paths


def reference(net, path, k):
    """The independent reference: PIL + torchvision preprocessing (gray, Resize 28,
    CenterCrop 28, Normalize 0.5/0.5), the torch model, softmax, top-k."""
    import torchvision.transforms as T
    tf = T.Compose([T.Resize(28), T.CenterCrop(28), T.ToTensor(), T.Normalize([0.5], [0.5])])
    x = tf(Image.open(path).convert("L"))
    with torch.no_grad():
        p = torch.softmax(net(x[None]).double(), 1)[0]
    v, i = torch.topk(p, k)
    return [(int(a), float(b)) for a, b in zip(i, v)]


def multipart(files, field="file"):
    """files: list of (filename, bytes) -> (body, content_type)."""
    b = "srvtest" + os.urandom(8).hex()
    out = []
    for name, data in files:
        out.append(f"--{b}\r\nContent-Disposition: form-data; name=\"{field}\"; "
                   f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                   .encode())
        out += [data, b"\r\n"]
    out.append(f"--{b}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={b}"


class Server:
    """`resnetd serve ARGS --host 127.0.0.1 --port 0`, stderr kept in a file."""

    def __init__(self, binary, args, ready_timeout=120.0):
        self.tmp = tempfile.TemporaryDirectory(prefix="srvtest-")
        self.log_path = os.path.join(self.tmp.name, "stderr.log")
        self.log = open(self.log_path, "w+b")
        self.proc = subprocess.Popen([binary, "serve"] + list(args) +
                                     ["--host", "127.0.0.1", "--port", "0"],
                                     cwd=self.tmp.name, stdout=self.log, stderr=self.log)
        self.port = None
        atexit.register(self._kill)  # a failing test must not leave a server behind
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            m = re.search(rb'"msg":"listening","detail":"[^"]*:(\d+)"', self.logs())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        while self.port and time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if self.request("GET", "/readyz", timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        out = self.logs().decode(errors="replace")
        self.stop()
        raise RuntimeError(f"resnetd serve {args} did not become ready:\n{out}")

    def _kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read()

    def log_lines(self):
        out = []
        for line in self.logs().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=60, conn=None):
        """Returns (status, headers dict (lower-case names), body bytes)."""
        c = conn or self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            if conn is None:
                c.close()

    def json(self, method, path, body=None, headers=None, conn=None):
        s, h, b = self.request(method, path, body, headers, conn=conn)
        return s, h, json.loads(b)

    def metrics(self):
        return self.request("GET", "/metrics")[2].decode()

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if self.proc.returncode != 0:  # show why (a sanitizer report, a crash...)
            lines = [x for x in self.logs().decode(errors="replace").splitlines()
                     if not x.startswith('{"time"')]
            print("\n".join(lines[-150:]), file=sys.stderr)
        return self.proc.returncode

    def cleanup(self):
        if self.proc.poll() is None:
            self.stop()
        self.tmp.cleanup()


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
