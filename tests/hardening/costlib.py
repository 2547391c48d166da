"""Measurement machinery of tests/hardening/hostile_cost.py: a raw-socket HTTP
client with a chosen source address, the server's CPU time and RSS from /proc,
and two background threads per server:

- Sampler: every 10 ms reads VmRSS/VmHWM; keeps the peak of the current case.
  Each case starts by writing 5 to /proc/PID/clear_refs, which resets VmHWM
  (the kernel's own peak RSS) so a case's peak is exact even between samples.
  With rss_cap set (report mode) it SIGKILLs the server past that RSS, so a
  bomb against an unfixed build cannot take the shared machine down.
- Monitor: every 20 ms asks /healthz, /readyz, /metrics in turn, each on a new
  connection from 127.0.0.2 (the per-IP connection limit counts that address
  apart from the attackers'), and keeps the worst latency per path per case.
"""

import json
import os
import signal
import socket
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")


class Resp:
    """One answer: status (None when the server closed without one), headers
    (lower-case names), body, note ('' | 'closed' | 'timeout' | 'reset' |
    'reset while sending'), and more: any extra responses read on the same
    connection (a smuggled request answered)."""

    def __init__(self, status=None, headers=None, body=b"", note=""):
        self.status, self.headers, self.body, self.note = status, headers or {}, body, note
        self.more = []
        self.eof = False  # the server closed the connection after the answer

    def json(self):
        if len(self.body) > (4 << 20):  # an amplified answer: not parsed (it is no error body)
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def code(self):
        """error.code of {"error": {"code", "message"}}; "-" for v2's {"error": "..."}."""
        j = self.json()
        if isinstance(j, dict):
            e = j.get("error")
            if isinstance(e, dict):
                return e.get("code")
            if isinstance(e, str):
                return "-"
        return None

    def is_json_error(self, code=None):
        if not self.status or self.status < 400:
            return False
        if "json" not in self.headers.get("content-type", ""):
            return False
        c = self.code
        return c is not None and (code is None or c == code)

    def summary(self):
        if self.status is None:
            return self.note or "closed"
        s = str(self.status)
        c = self.code
        if c and c != "-":
            s += " " + c
        if len(self.body) > (1 << 20):
            s += f" ({len(self.body) / 2**20:.0f} MB answer)"
        if self.more:
            s += f" +{len(self.more)} more response(s)"
        return s + (f" ({self.note})" if self.note else "")


class Reader:
    """Buffered reads with an overall deadline (a slow or endless answer
    cannot hold a case longer than its timeout)."""

    def __init__(self, sock, deadline=None):
        self.s, self.buf, self.deadline = sock, bytearray(), deadline

    def fill(self):
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise socket.timeout("case deadline")
        d = self.s.recv(1 << 20)
        if not d:
            raise EOFError
        self.buf += d

    def until(self, sep):
        start = 0
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                break
            start = max(0, len(self.buf) - len(sep) + 1)
            self.fill()
        out = bytes(self.buf[:i])
        del self.buf[:i + len(sep)]
        return out

    def take(self, n):
        while len(self.buf) < n:
            self.fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


def read_one(reader):
    """(status, headers, body) of one response; raises EOFError, OSError, socket.timeout."""
    head = reader.until(b"\r\n\r\n").decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = reader.take(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            n = int(reader.until(b"\r\n").split(b";")[0], 16)
            body += reader.take(n)
            reader.until(b"\r\n")
            if n == 0:
                break
    else:
        body = b""
    return status, headers, body


def connect(port, src=None, timeout=10.0):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(src, 0) if src else None)


def exchange(port, raw, src=None, timeout=10.0, read_all=False):
    """Sends raw bytes on a new connection and reads one response (read_all:
    every response until the server closes or `timeout` passes, the first in
    the Resp, the others in .more, .eof True when the server closed).
    A failed send still tries to read what the server answered first."""
    try:
        s = connect(port, src, timeout)
    except OSError as e:
        return Resp(note=f"connect failed: {e}")
    r = Reader(s, time.monotonic() + timeout)
    out = Resp()
    try:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            out.note = "reset while sending"
        try:
            out.status, out.headers, out.body = read_one(r)
            if out.note:
                out.note = "answered early, then reset while sending"
        except EOFError:
            out.note = out.note or "closed"
            out.eof = True
            return out
        except ConnectionResetError:
            out.note = out.note or "reset"
            return out
        except socket.timeout:
            out.note = "timeout"
            return out
        if not read_all:
            return out
        while True:
            try:
                out.more.append(read_one(r))
            except (EOFError, ConnectionResetError):
                out.eof = True
                return out
            except socket.timeout:
                return out
            except (ValueError, IndexError):  # bytes that are not a response
                out.more.append((None, {}, r.buf))
                return out
    finally:
        s.close()


def request(port, method, path, body=b"", headers=None, src=None, timeout=10.0):
    h = [b"%s: %s" % (k.encode(), v.encode()) for k, v in (headers or {}).items()]
    if method != "GET" or body:
        h.append(b"Content-Length: %d" % len(body))
    raw = (method.encode() + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" +
           b"".join(x + b"\r\n" for x in h) + b"\r\n" + body)
    return exchange(port, raw, src, timeout)


# ------------------------------------------------------------------ /proc


def cpu_seconds(pid):
    """utime + stime of the process (all threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TICK


def mem(pid):
    """(VmRSS, VmHWM) in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


def reset_peak(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


class CaseStats:
    def __init__(self):
        self.peak = 0
        self.worst = {}  # path -> worst ms
        self.bad = []  # (path, what) control-plane answers that were not 200

    def note_latency(self, path, ms, status):
        self.worst[path] = max(self.worst.get(path, 0.0), ms)
        if status != 200:
            self.bad.append((path, status))


class Watch:
    """Sampler + monitor threads on one server process; `case` is the
    CaseStats the samples go to (None: nobody is measuring)."""

    PATHS = ("/healthz", "/readyz", "/metrics")

    def __init__(self, pid, port, rss_cap=None, probe_timeout=5.0):
        self.pid, self.port, self.rss_cap, self.probe_timeout = pid, port, rss_cap, probe_timeout
        self.case = None
        self.killed_for_rss = None
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._sample, daemon=True),
                        threading.Thread(target=self._monitor, daemon=True)]
        for t in self.threads:
            t.start()

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=self.probe_timeout + 5)

    def _sample(self):
        while not self.stop.wait(0.01):
            try:
                rss, hwm = mem(self.pid)
            except (OSError, ValueError):
                return
            c = self.case
            if c:
                c.peak = max(c.peak, rss, hwm)
            if self.rss_cap and rss > self.rss_cap and self.killed_for_rss is None:
                self.killed_for_rss = rss
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except OSError:
                    pass

    def _monitor(self):
        i = 0
        while not self.stop.wait(0.02):
            path = self.PATHS[i % len(self.PATHS)]
            i += 1
            t0 = time.monotonic()
            r = request(self.port, "GET", path, src="127.0.0.2", timeout=self.probe_timeout)
            ms = (time.monotonic() - t0) * 1000
            c = self.case
            if c:
                c.note_latency(path, ms, r.status)
