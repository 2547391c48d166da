"""A real `resnetd serve` for the Python tests, shared by tests/server/srvtest.py,
tests/protocols/ptest.py, tests/hardening/hardlib.py, tests/models/resnetd_server.py
and tests/quant/test_tuned_plan.py (and the bench scripts that import them).

    srv = Server(binary, ["--model", model_dir])
    try:
        status, headers, body = srv.request("GET", "/v1/models")
        check(srv.stop() == 0, "clean exit")
    finally:
        srv.cleanup()

It runs `BINARY serve ARGS --host 127.0.0.1 --port 0`, with RESNETD_GRPC_PORT=0
in its environment unless the caller's env sets it (the gRPC port then also
is a free one, grpc_port, from {"msg":"grpc listening"}; --grpc-port in ARGS
wins over it): the OS picks a free port
(no race between finding one and binding it), read back from the server's JSON
log line {"msg":"listening","detail":"HOST:PORT"}; then /readyz is polled until
it answers 200. stdout and stderr go to one log file (logs(), log_lines()).
The server runs in a fresh temporary directory unless `cwd` is given. Every
server is killed (SIGKILL) at interpreter exit if still running, so a failing
test never leaves one behind; stop() is the graceful path (SIGTERM, then
SIGKILL after `stop_timeout` seconds) and returns the exit code.

Import it from a sibling test directory with
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
"""

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

_LISTENING = re.compile(rb'"msg":"listening","detail":"[^"]*:(\d+)"')
_GRPC_LISTENING = re.compile(rb'"msg":"grpc listening","detail":"[^"]*:(\d+)"')


class Server:
    """`BINARY COMMAND ARGS [--host HOST] --port 0`, ready when /readyz is 200.

    binary         the resnetd executable (a path is made absolute: the server
                   runs in another directory)
    args           arguments after the subcommand
    command        the subcommand, ("serve",) by default; () runs bare `resnetd`
    env            variables added to (not replacing) os.environ
    cwd            working directory; None: a fresh temporary directory (self.tmp,
                   removed by cleanup()), named with `prefix`
    log_path       where stdout+stderr go; None: stderr.log in that temporary
                   directory, or in cwd when cwd is given
    host           --host value; None passes no --host (the server's default)
    ready_timeout  seconds for the listening line and /readyz together
    probe_timeout  per-request timeout of the /readyz probe
    scheme         "http", or "https": no plain-HTTP probe, ready 0.5 s after
                   the listening line (the caller probes with its own TLS client)
    stop_timeout   stop()'s default wait after SIGTERM before SIGKILL
    show_log_on_failure  stop() prints the log's non-JSON lines (sanitizer
                   reports, crashes) to stderr when the exit code is not 0

    Raises RuntimeError (after stopping the process) when the server exits or
    is not ready within ready_timeout; the message holds the command and log."""

    def __init__(self, binary, args, env=None, cwd=None, log_path=None, command=("serve",),
                 host="127.0.0.1", ready_timeout=120.0, probe_timeout=5.0, scheme="http",
                 stop_timeout=30.0, show_log_on_failure=False, prefix="resnetd-serve-"):
        self.args = list(args)
        self.scheme = scheme
        self.stop_timeout = stop_timeout
        self.show_log_on_failure = show_log_on_failure
        self.tmp = None if cwd else tempfile.TemporaryDirectory(prefix=prefix)
        self.cwd = cwd or self.tmp.name
        self.log_path = log_path or os.path.join(self.cwd, "stderr.log")
        self.log = open(self.log_path, "w+b")
        if os.sep in binary:
            binary = os.path.abspath(binary)
        self.cmd = ([binary] + list(command) + self.args +
                    (["--host", host] if host else []) + ["--port", "0"])
        self.port = None
        self.grpc_port = None  # read with the HTTP port when the server has a gRPC port
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, stdout=self.log, stderr=self.log,
                                     env={**os.environ, "RESNETD_GRPC_PORT": "0", **(env or {})})
        atexit.register(self._kill)  # a failing test must not leave a server behind
        try:
            why = self._wait_ready(ready_timeout, probe_timeout)
        except BaseException:
            self.stop()
            raise
        if why is None:
            return
        out = self.logs().decode(errors="replace")
        self.stop()
        raise RuntimeError(f"resnetd did not become ready ({why}): {' '.join(self.cmd)}\n{out}")

    def _wait_ready(self, ready_timeout, probe_timeout):
        """None when ready, else why not."""
        deadline = time.monotonic() + ready_timeout
        while self.port is None:
            if self.proc.poll() is not None:
                return f"exited with code {self.proc.returncode} before listening"
            if time.monotonic() >= deadline:
                return f"no listening log line within {ready_timeout:g} s"
            m = _LISTENING.search(self.logs())
            if m:
                self.port = int(m.group(1))
            else:
                time.sleep(0.05)
        if self.scheme != "http":
            time.sleep(0.5)
            self._find_grpc_port()
            return None
        while True:
            if self.proc.poll() is not None:
                return f"exited with code {self.proc.returncode} before /readyz said 200"
            if time.monotonic() >= deadline:
                return f"/readyz not 200 within {ready_timeout:g} s"
            try:
                if self.http_request("GET", "/readyz", timeout=probe_timeout)[0] == 200:
                    self._find_grpc_port()
                    return None
            except OSError:
                pass
            time.sleep(0.05)

    def _find_grpc_port(self):
        # written right after the HTTP "listening" line, before the workers start
        g = _GRPC_LISTENING.search(self.logs())
        self.grpc_port = int(g.group(1)) if g else None

    def _kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def alive(self):
        return self.proc.poll() is None

    def logs(self):
        """Everything the server wrote so far (bytes)."""
        with open(self.log_path, "rb") as f:
            return f.read()

    def log_lines(self, msg=None):
        """The JSON log lines as dicts; only those whose "msg" is msg when given."""
        out = []
        for line in self.logs().splitlines():
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if msg is None or (isinstance(o, dict) and o.get("msg") == msg):
                out.append(o)
        return out

    def conn(self, timeout=60):
        """A new keep-alive connection to the server (the caller closes it)."""
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def http_request(self, method, path, body=None, headers=None, timeout=60, conn=None):
        """One request, on conn when given (kept open), else on a new connection.
        Returns (status, headers dict with lower-case names, body bytes)."""
        c = conn or self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            if conn is None:
                c.close()

    def request(self, method, path, body=None, headers=None, timeout=60, conn=None):
        """Same as http_request (modules with another request() override this one)."""
        return self.http_request(method, path, body, headers, timeout, conn)

    def json(self, method, path, body=None, headers=None, conn=None):
        """(status, headers, parsed JSON body)."""
        s, h, b = self.http_request(method, path, body, headers, conn=conn)
        return s, h, json.loads(b)

    def metrics(self):
        """The /metrics text."""
        return self.http_request("GET", "/metrics")[2].decode()

    def metric(self, name, labels):
        """The sum of the samples of /metrics named name whose labels include
        labels (0.0 when none): {"model": "m", "code": "200"} of
        resnetd_requests_total adds its protocol="http" and "grpc" series."""
        total = 0.0
        for line in self.metrics().splitlines():
            m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
            if not m or m.group(1) != name:
                continue
            have = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                   m.group(2) or ""))
            if all(have.get(k) == str(v) for k, v in labels.items()):
                total += float(m.group(3))
        return total

    def stop(self, timeout=None):
        """SIGTERM, then SIGKILL after timeout (default stop_timeout) seconds;
        returns the exit code (negative: the signal that ended it)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        atexit.unregister(self._kill)
        if self.proc.returncode != 0 and self.show_log_on_failure:
            lines = [x for x in self.logs().decode(errors="replace").splitlines()
                     if not x.startswith('{"time"')]
            print("\n".join(lines[-150:]), file=sys.stderr)
        return self.proc.returncode

    def cleanup(self):
        """Stops the server if it still runs and removes its temporary directory."""
        if self.proc.poll() is None:
            self.stop()
        self.log.close()
        atexit.unregister(self._kill)
        if self.tmp:
            self.tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False
