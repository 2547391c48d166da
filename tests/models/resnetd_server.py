"""Start and stop a real `resnetd` on a free loopback port, for the tests in
tests/models/. Used as a context manager:

    with ResnetdServer(binary, ["serve"]) as srv:
        status, body = srv.request("GET", "/v1/models")

The server runs in a fresh temporary working directory (the default model must
be found relative to the executable, not the working directory); its stderr is
kept in a file and printed when it fails to become ready.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import time


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart(files, field="file"):
    """Encodes FILES, a list of (filename, bytes), as multipart/form-data;
    returns (body, content_type)."""
    boundary = "resnetd-test-" + os.urandom(12).hex()
    parts = []
    for name, data in files:
        parts.append((f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
                      f"filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n").encode())
        parts.append(data)
        parts.append(b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class ResnetdServer:
    def __init__(self, binary, args, ready_timeout=60.0, env=None):
        self.binary = binary
        self.args = list(args)
        self.ready_timeout = ready_timeout
        self.env = env
        self.port = None
        self.proc = None
        self.workdir = None
        self.log = None

    def __enter__(self):
        self.workdir = tempfile.TemporaryDirectory(prefix="resnetd-test-")
        self.log = open(os.path.join(self.workdir.name, "stderr.log"), "w+b")
        for attempt in range(3):  # the free port may be taken between check and bind
            self.port = free_port()
            cmd = [self.binary] + self.args + ["--host", "127.0.0.1", "--port", str(self.port)]
            self.proc = subprocess.Popen(cmd, cwd=self.workdir.name, stdout=self.log,
                                         stderr=self.log, env=self.env)
            if self._wait_ready():
                return self
            self._stop()
        self.log.seek(0)
        out = self.log.read().decode(errors="replace")
        self.__exit__(None, None, None)
        raise RuntimeError(f"resnetd did not become ready: {' '.join(cmd)}\n{out}")

    def _wait_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                status, _ = self.request("GET", "/readyz", timeout=2)
                if status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def _stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __exit__(self, *exc):
        self._stop()
        if self.log:
            self.log.close()
        if self.workdir:
            self.workdir.cleanup()
        return False

    def connection(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=60, conn=None):
        """Sends one request; returns (status, body bytes). Uses CONN if given
        (keep-alive), otherwise a fresh connection."""
        own = conn is None
        c = conn or self.connection(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            if own:
                c.close()

    def json(self, method, path, body=None, headers=None, conn=None):
        status, data = self.request(method, path, body, headers, conn=conn)
        try:
            return status, json.loads(data)
        except ValueError:
            raise AssertionError(f"{method} {path}: {status}, body is not JSON: {data[:200]!r}")
