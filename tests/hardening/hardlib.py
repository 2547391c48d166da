"""Helpers for the hardening tests: a tiny torch-exported model (models/ has
no committed default model), images, a real `resnetd serve` on 127.0.0.1
(--port 0, the port read from its "listening" log line), raw-socket HTTP and
the server's RSS / fd / thread counts from /proc."""

import io
import json
import os
import socket
import struct
import sys
import zlib

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import resnetd_serve  # noqa: E402


def export_model(out_dir, name="tiny"):
    """Gray 28x28 CNN, 10 classes, dynamic batch: model.onnx + config.json."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(16, 10)).eval()
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    torch.onnx.export(net, torch.zeros(1, 1, 28, 28), os.path.join(d, "model.onnx"),
                      input_names=["input"], output_names=["logits"], opset_version=13,
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"name": name, "input": {"color": "gray", "resize": 28, "crop": 28,
                                           "scale": 255.0, "mean": [0.5], "std": [0.5]},
                   "max_batch": 8}, f)
    return d, net


def png_bytes(w=40, h=30, seed=0):
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(w=40, h=30, seed=0):
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data +
            struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))


def huge_zero_png(w, h):
    """A valid gray PNG of w x h zeros: a few hundred KB for 30000 x 30000."""
    z = zlib.compressobj(9)
    row = b"\0" * (w + 1)
    rows = row * 64
    parts = [z.compress(rows) for _ in range(h // 64)]
    parts.append(z.compress(row * (h % 64)))
    parts.append(z.flush())
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b""))


def jpeg_claiming(w, h):
    """A small real JPEG whose SOF header is patched to claim w x h."""
    data = bytearray(jpeg_bytes(16, 16))
    i = 2
    while i < len(data):
        marker, seglen = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xc0, 0xc1, 0xc2):
            data[i + 5:i + 9] = struct.pack(">HH", h, w)
            return bytes(data)
        i += 2 + seglen
    raise AssertionError("no SOF marker")


def multipart(files, boundary="hardtestboundary"):
    """files: [(filename bytes, data bytes)] -> (body, content type)."""
    out = []
    for name, data in files:
        out.append(b"--" + boundary.encode() + b"\r\nContent-Disposition: form-data; name=\"file\"; "
                   b"filename=\"" + name + b"\"\r\nContent-Type: application/octet-stream\r\n\r\n")
        out += [data, b"\r\n"]
    out.append(b"--" + boundary.encode() + b"--\r\n")
    return b"".join(out), "multipart/form-data; boundary=" + boundary


class Server(resnetd_serve.Server):
    """`resnetd serve ARGS --port 0` (no --host: the server's default, 127.0.0.1);
    stderr kept in a file (tests/lib/resnetd_serve.py). request/get/post here
    speak raw HTTP over a socket; scheme="https" skips the plain-HTTP readiness
    probe (the caller probes with curl)."""

    def __init__(self, binary, args, env=None, ready_timeout=120.0, scheme="http"):
        super().__init__(binary, args, env=env, host=None, ready_timeout=ready_timeout,
                         probe_timeout=30, scheme=scheme, prefix="hardtest-")

    def connect(self, timeout=30):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def request(self, raw, timeout=30, sock=None):
        """Sends raw bytes, reads ONE response. Returns (status, headers, body)
        or (None, {}, b"") when the server closed without answering."""
        s = sock or self.connect(timeout)
        try:
            s.sendall(raw)
            return read_response(s)
        finally:
            if sock is None:
                s.close()

    def get(self, path, headers=b""):
        return self.request(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + headers +
                            b"\r\n")

    def post(self, path, body, ctype="application/octet-stream", headers=b""):
        return self.request(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: " +
                            ctype.encode() + b"\r\nContent-Length: " + str(len(body)).encode() +
                            b"\r\n" + headers + b"\r\n" + body)

    def proc_status(self):
        """{VmRSS, VmHWM (peak RSS), Threads} in bytes / count, plus open fds."""
        out = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0]) * 1024
                elif k == "Threads":
                    out[k] = int(v)
        out["fds"] = len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        return out


class _Reader:
    def __init__(self, sock):
        self.s, self.buf = sock, b""

    def fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def until(self, sep):
        while sep not in self.buf:
            self.fill()
        i = self.buf.index(sep)
        out, self.buf = self.buf[:i], self.buf[i + len(sep):]
        return out

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def read_response(sock, reader=None):
    """One HTTP/1.1 response (Content-Length or chunked body)."""
    r = reader or _Reader(sock)
    try:
        head = r.until(b"\r\n\r\n").decode("latin-1").split("\r\n")
    except (EOFError, ConnectionResetError, socket.timeout):
        return None, {}, b""
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = r.take(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            n = int(r.until(b"\r\n").split(b";")[0], 16)
            body += r.take(n)
            r.until(b"\r\n")
            if n == 0:
                break
    else:
        body = b""
    return status, headers, body


def json_error(status, headers, body, code=None):
    """True when this is a JSON error body {"error": {"code", "message"}}."""
    if not status or status < 400 or "json" not in headers.get("content-type", ""):
        return False
    try:
        e = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(e.get("code"), str) and isinstance(e.get("message"), str) and \
        (code is None or e["code"] == code)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
