#!/usr/bin/env python3
"""Hostile HTTP/2 battery against the gRPC port (--grpc-port) of the real
`resnetd serve` on loopback: raw frames written here (tests/lib/grpc_kserve.py
frame helpers, HPACK by hand so every byte is the attacker's choice), real
ModelInfer messages from the repository's .proto.

    h2_hostile.py RESNETD [--report] [--match TEXT] [--stub-dir DIR]

Cases: rapid reset (thousands of HEADERS+DATA+RST_STREAM), CONTINUATION
flood, a huge header list, HPACK bombs (one big dynamic-table entry
referenced thousands of times; a table-size update past the advertised size;
SETTINGS_HEADER_TABLE_SIZE games), SETTINGS flood (and one SETTINGS frame of
thousands of entries), PING flood, more concurrent streams than advertised
and many held half-sent streams, a peer that never reads (large responses of a
65536-class model stuck behind TCP and behind a zero flow-control window), a
ModelStreamInfer stream flooded with messages (and never read), a
length prefix over max_body_bytes (up to 4 GiB), the compressed flag with an
unsupported grpc-encoding (and a gzip bomb), garbage instead of the preface,
slowloris on the preface.

Measured per case (tests/hardening/costlib.py): the server's CPU time, peak
RSS (VmHWM reset per case), and, polled throughout from other source
addresses, HTTP /healthz + /readyz + /metrics (127.0.0.2) and gRPC ServerLive
(127.0.0.3). Test mode asserts, per case: the expected outcome (a refusal,
a GOAWAY or a close; never a wrong answer), peak RSS < idle + 128 MiB, server
CPU < 10 s, every health probe answered (200 / SERVING) during the case and
after it (a gRPC probe that fails is retried at once; a lone failure is
listed in the case's line, not failed), and the server's open file descriptors back to the idle count once
the attacker hangs up. Latencies are reported, not asserted.

Server options: --max-body-bytes 4 MiB, --max-inflight-bytes 64 MiB (under
the 128 MiB slack), --connection-timeout-s 5 (the idle/preface timeout the
slowloris case waits for), --queue-capacity 64, one worker.
"""

import argparse
import gzip
import json
import os
import socket
import struct
import sys
import tempfile
import threading
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, HERE)
import costlib as C  # noqa: E402
import grpc_kserve as gk  # noqa: E402
import hardlib  # noqa: E402

MAX_BODY = 4 << 20
INFLIGHT = 64 << 20
RSS_SLACK = 128 << 20
CPU_BOUND_S = 10.0
CASE_WALL_S = 30.0
RSS_CAP = 1 << 30  # kill the server past this: a failing build must not take the machine
WIDE = 65536
SVC = "/inference.GRPCInferenceService/"
pb2 = None

# ----------------------------------------------------------------- HPACK by hand


def hint(v, n, first=0):
    """HPACK integer with an n-bit prefix (RFC 7541 5.1)."""
    m = (1 << n) - 1
    if v < m:
        return bytes([first | v])
    out = [first | m]
    v -= m
    while v >= 128:
        out.append((v & 127) | 128)
        v >>= 7
    out.append(v)
    return bytes(out)


def hstr(s):
    s = s.encode() if isinstance(s, str) else s
    return hint(len(s), 7) + s


def lit(name, value, index=False):
    """Literal header field, new name: without indexing, or with incremental indexing."""
    return (b"\x40" if index else b"\x00") + hstr(name) + hstr(value)


def req_block(path=SVC + "ModelInfer", extra=b"", timeout=None, more=()):
    b = b"".join(lit(k, v) for k, v in [(":method", "POST"), (":scheme", "http"),
                                         (":path", path), (":authority", "127.0.0.1"),
                                         ("content-type", "application/grpc"),
                                         ("te", "trailers")] + list(more))
    if timeout:
        b += lit("grpc-timeout", timeout)
    return b + extra


def headers_frame(sid, block, end_stream=False, end_headers=True):
    return gk.frame(gk.HEADERS, (gk.END_HEADERS if end_headers else 0) |
                    (gk.END_STREAM if end_stream else 0), sid, block)


def data_frames(sid, data, end=True, max_frame=16384):
    out = []
    for i in range(0, max(len(data), 1), max_frame):
        chunk = data[i:i + max_frame]
        last = i + max_frame >= len(data)
        out.append(gk.frame(gk.DATA, gk.END_STREAM if (end and last) else 0, sid, chunk))
    return b"".join(out)


def rst(sid, code=8):
    return gk.frame(gk.RST_STREAM, 0, sid, struct.pack(">I", code))


# ----------------------------------------------------------------- raw connection


class Raw:
    """A raw HTTP/2 client connection. With read=True a thread reads and
    parses every frame (decoding header blocks in order with python hpack)
    and acknowledges SETTINGS; with read=False nothing is ever read."""

    def __init__(self, port, src=None, read=True, preface=True, local=(), window=None,
                 timeout=10.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                          source_address=(src, 0) if src else None)
        self.lock = threading.Lock()
        self.goaway = None
        self.rst = {}
        self.headers = {}  # sid -> [dict per HEADERS block]
        self.data = {}
        self.ended = set()
        self.counts = {}
        self.eof = False
        self.send_failed = None
        self.remote = {}
        self.got_settings = threading.Event()
        if preface:
            self.send(gk.PREFACE + gk.settings(list(local)))
            if window:
                self.send(gk.frame(gk.WINDOW_UPDATE, 0, 0, struct.pack(">I", window)))
        self.reader = None
        if read:
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()

    def send(self, data):
        if self.send_failed:
            return False
        try:
            self.s.sendall(data)
            return True
        except OSError as e:
            self.send_failed = repr(e)
            return False

    def _read(self):
        import hpack
        dec = hpack.Decoder()
        dec.max_header_list_size = 1 << 24
        dec.max_allowed_table_size = 1 << 16
        r = gk.RawReader(self.s, time.monotonic() + 3600)
        block, bsid = b"", 0
        try:
            while True:
                t, fl, sid, p = gk.read_frame(r)
                self.counts[t] = self.counts.get(t, 0) + 1
                if t == gk.SETTINGS and not fl & gk.ACK:
                    for i in range(0, len(p) - 5, 6):
                        k, v = struct.unpack(">HI", p[i:i + 6])
                        self.remote[k] = v
                    self.send(gk.settings(ack=True))
                    self.got_settings.set()
                elif t == gk.GOAWAY:
                    last, code = struct.unpack(">II", p[:8])
                    self.goaway = (code, last & 0x7fffffff, p[8:200])
                elif t == gk.RST_STREAM:
                    self.rst[sid] = struct.unpack(">I", p[:4])[0]
                elif t in (gk.HEADERS, gk.CONTINUATION):
                    if t == gk.HEADERS:
                        pad = p[0] if fl & gk.PADDED else 0
                        p = p[(1 if fl & gk.PADDED else 0) + (5 if fl & gk.PRIORITY_FLAG else 0):
                              len(p) - pad]
                        block, bsid = p, sid
                        if fl & gk.END_STREAM:
                            self.ended.add(sid)
                    else:
                        block += p
                    if fl & gk.END_HEADERS:
                        self.headers.setdefault(bsid, []).append(
                            {k.decode() if isinstance(k, bytes) else k:
                             v.decode() if isinstance(v, bytes) else v
                             for k, v in dec.decode(block, raw=True)})
                elif t == gk.DATA:
                    pad = p[0] if fl & gk.PADDED else 0
                    self.data.setdefault(sid, bytearray()).extend(
                        p[1 if fl & gk.PADDED else 0:len(p) - pad])
                    if fl & gk.END_STREAM:
                        self.ended.add(sid)
                    if p:  # give the window back, stream and connection
                        self.send(gk.frame(gk.WINDOW_UPDATE, 0, sid, struct.pack(">I", len(p))) +
                                  gk.frame(gk.WINDOW_UPDATE, 0, 0, struct.pack(">I", len(p))))
                elif t == gk.PING and not fl & gk.ACK:
                    self.send(gk.frame(gk.PING, gk.ACK, 0, p))
        except (EOFError, OSError, ValueError, socket.timeout):
            self.eof = True
        except Exception:  # noqa: BLE001 - an hpack error: the server's block was bad
            self.eof = True
            self.counts["decode_error"] = self.counts.get("decode_error", 0) + 1

    def status(self, sid):
        """grpc-status of a stream (trailers, or Trailers-Only headers), else None."""
        for h in reversed(self.headers.get(sid, [])):
            if "grpc-status" in h:
                return int(h["grpc-status"])
        return None

    def done(self, sid):
        return sid in self.ended or sid in self.rst or self.eof or (
            self.goaway is not None and sid > self.goaway[1])

    def wait(self, cond, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            time.sleep(0.01)
        return cond()

    def closed_by_server(self, timeout):
        """True when the server closed the connection (EOF/reset) within timeout."""
        if self.reader is None:
            self.s.settimeout(timeout)
            end = time.monotonic() + timeout
            try:
                while time.monotonic() < end:
                    if not self.s.recv(1 << 20):
                        return True
            except (OSError, socket.timeout) as e:
                return not isinstance(e, socket.timeout)
            return False
        return self.wait(lambda: self.eof, timeout)

    def close(self):
        try:
            self.s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.s.close()
        if self.reader:
            self.reader.join(timeout=5)


# ----------------------------------------------------------------- requests


def infer_msg(model="tiny", n=1):
    x = np.random.default_rng(n).standard_normal((n, 1, 28, 28)).astype(np.float32)
    r = pb2.ModelInferRequest(model_name=model)
    r.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
    r.raw_input_contents.append(x.tobytes())
    return gk.message(r.SerializeToString())


def stream(sid, body, more=(), extra=b""):
    return headers_frame(sid, req_block(more=more, extra=extra)) + data_frames(sid, body)


# ----------------------------------------------------------------- cases
# Each case: fn(port, ctx) -> (ok, outcome text). ctx: {"idle_fds"}.


def case_rapid_reset(port, ctx):
    """10000 streams: HEADERS + a complete ModelInfer DATA + RST_STREAM(CANCEL),
    written back to back on one connection."""
    c = Raw(port)
    body = infer_msg()
    sent = 0
    for k in range(0, 10000, 100):
        chunk = b"".join(stream(2 * i + 1, body) + rst(2 * i + 1) for i in range(k, k + 100))
        if not c.send(chunk):
            break
        sent = k + 100
    # the connection is still usable afterwards, or was closed with a GOAWAY
    live_sid = 2 * sent + 1
    c.send(headers_frame(live_sid, req_block(path=SVC + "ServerLive")) +
           data_frames(live_sid, gk.message(b"")))
    c.wait(lambda: c.done(live_sid), 20)
    st = c.status(live_sid)
    c.close()
    ok = st == gk.OK or c.goaway is not None or c.eof
    return ok, (f"{sent} streams reset; then ServerLive {st}; goaway {c.goaway and c.goaway[:2]}")


def case_rapid_reset_spread(port, ctx):
    """Under the per-connection reset limit, spread out: 16 connections x 150
    streams of HEADERS + an 8-image ModelInfer + RST_STREAM. Reports how many
    of the 19200 cancelled images still reached the engine."""
    imgs0 = ctx["images"]()
    body = infer_msg("tiny", 8)
    conns = []
    for _ in range(16):
        c = Raw(port)
        c.send(b"".join(stream(2 * i + 1, body) + rst(2 * i + 1) for i in range(150)))
        conns.append(c)
    live = []
    for c in conns:
        c.send(headers_frame(301, req_block(path=SVC + "ServerLive")) +
               data_frames(301, gk.message(b"")))
    for c in conns:
        c.wait(lambda: c.done(301), 20)
        live.append(c.status(301))
        c.close()
    time.sleep(0.5)
    ran = ctx["images"]() - imgs0
    ok = all(s == gk.OK or c.goaway is not None for s, c in zip(live, conns))
    return ok, (f"2400 streams reset; {ran:.0f} of 19200 images inferred; ServerLive after: "
                f"{sorted(set(map(str, live)))}")


def case_continuation_flood(port, ctx):
    """One HEADERS without END_HEADERS, then up to 200000 CONTINUATION frames
    of a 40-byte header each (8 MB), never ending the block."""
    c = Raw(port)
    c.send(headers_frame(1, req_block(), end_headers=False))
    cont = gk.frame(gk.CONTINUATION, 0, 1, lit("x-flood", "v" * 30))
    sent = 0
    for _ in range(2000):
        if c.eof or not c.send(cont * 100):
            break
        sent += 100
    closed = c.closed_by_server(10)
    c.close()
    return closed and sent < 200000, (f"{sent} CONTINUATION frames sent before the server "
                                      f"closed; goaway {c.goaway and c.goaway[:2]}")


def case_huge_header_list(port, ctx):
    """A request whose header list is 4 MB: 40000 distinct 100-byte headers in
    HEADERS + CONTINUATION frames."""
    c = Raw(port)
    block = req_block() + b"".join(lit(f"x-h{i}", "v" * 90) for i in range(40000))
    frames = [headers_frame(1, block[:16384], end_headers=False)]
    for i in range(16384, len(block), 16384):
        last = i + 16384 >= len(block)
        frames.append(gk.frame(gk.CONTINUATION, gk.END_HEADERS if last else 0, 1,
                               block[i:i + 16384]))
    c.send(b"".join(frames) + data_frames(1, infer_msg()))
    c.wait(lambda: c.done(1), 20)
    st = c.status(1)
    c.close()
    return st != gk.OK, f"grpc-status {st}, rst {c.rst.get(1)}, goaway {c.goaway and c.goaway[:2]}"


def case_hpack_bomb(port, ctx):
    """A 4000-byte value put in the server's HPACK dynamic table once, then
    referenced 16000 times per header block (64 MB decoded from 16 KB), on 20
    streams."""
    c = Raw(port)
    first = req_block(extra=lit("x-bomb", "b" * 4000, index=True))
    c.send(headers_frame(1, first) + data_frames(1, gk.message(b""), end=True))
    c.wait(lambda: c.done(1), 10)
    n = 0
    for k in range(20):
        sid = 3 + 2 * k
        # index 62 = the newest dynamic entry: x-bomb
        block = req_block(path=SVC + "ServerLive") + hint(62, 7, 0x80) * 16000
        frames = [headers_frame(sid, block[:16384], end_headers=len(block) <= 16384)]
        for i in range(16384, len(block), 16384):
            last = i + 16384 >= len(block)
            frames.append(gk.frame(gk.CONTINUATION, gk.END_HEADERS if last else 0, sid,
                                   block[i:i + 16384]))
        if not c.send(b"".join(frames) + data_frames(sid, gk.message(b""))):
            break
        n += 1
    last = 3 + 2 * (n - 1)
    c.wait(lambda: c.done(last), 20)
    answered = [s for s in range(3, last + 1, 2) if c.status(s) == gk.OK]
    c.close()
    # answering is allowed (the decoder streams; nothing is kept), refusing too; the
    # cost is what is bounded
    return True, (f"{n} bomb blocks: {len(answered)} answered OK, rst {len(c.rst)}, "
                  f"goaway {c.goaway and c.goaway[:2]}")


def case_table_size_update(port, ctx):
    """A dynamic table size update to 1 GiB, past the 4096 the server allows:
    a compression error (GOAWAY), not a 1 GiB table."""
    c = Raw(port)
    c.send(headers_frame(1, hint(1 << 30, 5, 0x20) + req_block(path=SVC + "ServerLive")) +
           data_frames(1, gk.message(b"")))
    c.wait(lambda: c.done(1), 10)
    st = c.status(1)
    closed = c.closed_by_server(10)
    c.close()
    return st != gk.OK and (c.goaway is not None or closed), \
        f"grpc-status {st}, goaway {c.goaway and c.goaway[:2]}, closed {closed}"


def case_table_size_settings(port, ctx):
    """The client announces SETTINGS_HEADER_TABLE_SIZE 2^32-1 and
    MAX_HEADER_LIST_SIZE 0, then makes 50 normal calls: answered correctly
    (the server's encoder keeps its own cap)."""
    c = Raw(port, local=[(gk.S_HEADER_TABLE_SIZE, 0xffffffff), (gk.S_MAX_HEADER_LIST_SIZE, 1)])
    body = infer_msg()
    c.send(b"".join(stream(2 * i + 1, body) for i in range(50)))
    c.wait(lambda: all(c.done(2 * i + 1) for i in range(50)), 30)
    ok = sum(1 for i in range(50) if c.status(2 * i + 1) == gk.OK)
    c.close()
    return ok == 50 or c.goaway is not None, f"{ok}/50 OK, goaway {c.goaway and c.goaway[:2]}"


def flood(port, fr, total, per=1000):
    """Sends `total` copies of frame fr without ever reading."""
    c = Raw(port, read=False)
    sent = 0
    c.s.settimeout(5)
    while sent < total:
        if not c.send(fr * per):
            break
        sent += per
    closed = c.closed_by_server(10)
    c.close()
    return sent, closed, c.send_failed


def case_settings_flood(port, ctx):
    """200000 SETTINGS frames (each wants an ACK), never reading the ACKs."""
    sent, closed, why = flood(port, gk.settings([(gk.S_INITIAL_WINDOW_SIZE, 65535)]), 200000)
    return True, f"{sent} sent; closed by server {closed} ({why})"


def case_settings_many(port, ctx):
    """One SETTINGS frame of 100000 entries (600 KB), then a call."""
    c = Raw(port)
    c.send(gk.settings([(gk.S_ENABLE_PUSH, 0)] * 100000) +
           stream(1, gk.message(b"")))
    c.wait(lambda: c.done(1), 10)
    st = c.status(1)
    c.close()
    return True, f"grpc-status {st}, goaway {c.goaway and c.goaway[:2]}"


def case_ping_flood(port, ctx):
    """300000 PINGs, never reading the PING ACKs."""
    sent, closed, why = flood(port, gk.frame(gk.PING, 0, 0, b"12345678"), 300000)
    return True, f"{sent} sent; closed by server {closed} ({why})"


def case_too_many_streams(port, ctx):
    """More streams than SETTINGS_MAX_CONCURRENT_STREAMS, all open at once
    (HEADERS and half a message each): the extra ones are refused."""
    c = Raw(port)
    c.got_settings.wait(5)
    mx = c.remote.get(gk.S_MAX_CONCURRENT_STREAMS, 100)
    n = min(mx + 50, 2000)
    body = infer_msg()
    c.send(b"".join(headers_frame(2 * i + 1, req_block()) +
                    gk.frame(gk.DATA, 0, 2 * i + 1, body[:20]) for i in range(n)))
    c.wait(lambda: len(c.rst) >= n - mx or c.goaway is not None or c.eof, 10)
    refused = sum(1 for v in c.rst.values() if v) + (0 if c.goaway is None else n)
    c.close()
    return refused > 0, (f"max_concurrent_streams {mx}; {n} opened: {len(c.rst)} reset "
                         f"(codes {sorted(set(c.rst.values()))}), goaway "
                         f"{c.goaway and c.goaway[:2]}")


def case_held_streams(port, ctx):
    """16 connections x every allowed stream, each announcing a 4 MB message
    (max_body_bytes) and sending 5 bytes of it, held: what the server reserves
    for announced messages must stay bounded."""
    conns, held = [], 0
    for _ in range(16):
        c = Raw(port)
        c.got_settings.wait(5)
        mx = min(c.remote.get(gk.S_MAX_CONCURRENT_STREAMS, 100), 256)
        pre = b"\0" + struct.pack(">I", MAX_BODY - 64)
        c.send(b"".join(headers_frame(2 * i + 1, req_block()) +
                        gk.frame(gk.DATA, 0, 2 * i + 1, pre) for i in range(mx)))
        held += mx
        conns.append(c)
    time.sleep(2)
    refused = sum(len(c.rst) + sum(1 for s in c.headers if c.status(s) not in (None, gk.OK))
                  for c in conns)
    for c in conns:
        c.close()
    return True, f"{held} streams held on 16 connections; {refused} refused or answered early"


def case_never_reads(port, ctx):
    """A client that never reads: 64 streams of ModelInfer on the 65536-class
    model, 8 images each (2 MB answers, 128 MB in all), on 2 connections, the
    socket never read; then the same with SETTINGS_INITIAL_WINDOW_SIZE 0 (no
    DATA may be sent at all). Held 4 s, then hung up."""
    body = infer_msg("wide", 8)
    conns = []
    for local in ((), ((gk.S_INITIAL_WINDOW_SIZE, 0),)):
        c = Raw(port, read=False, local=local)
        c.s.settimeout(5)
        c.send(b"".join(stream(2 * i + 1, body) for i in range(64)))
        conns.append(c)
    time.sleep(4)
    for c in conns:
        c.close()
    return True, "128 MB of answers never read"


def case_stream_flood(port, ctx):
    """ModelStreamInfer: 2000 messages written at once on one stream (the server
    lets 16 wait); then, on a connection never read, 200 messages of 8 images
    for the 65536-class model (400 MB of answers) on 4 streams."""
    c = Raw(port)
    one = infer_msg("tiny", 1)
    c.send(headers_frame(1, req_block(path=SVC + "ModelStreamInfer")) +
           data_frames(1, one * 2000))
    c.wait(lambda: c.done(1), 30)
    st = c.status(1)
    answered = len(gk.unframe(bytes(c.data.get(1, b"")))) if st is not None else -1
    c.close()
    big = infer_msg("wide", 8)
    d = Raw(port, read=False)
    d.s.settimeout(5)
    for k in range(4):
        sid = 2 * k + 1
        d.send(headers_frame(sid, req_block(path=SVC + "ModelStreamInfer")) +
               data_frames(sid, big * 50))
    time.sleep(3)
    d.close()
    return st in (gk.OK, gk.RESOURCE_EXHAUSTED), (f"2000 messages: grpc-status {st} after "
                                                  f"{answered} answers; 200 x 2 MB never read")


def case_oversized_message(port, ctx):
    """Length prefixes over max_body_bytes (4 MiB + 1, 1 GiB, 4 GiB - 1) with
    only a few bytes behind them, 30 streams each: RESOURCE_EXHAUSTED at
    once, nothing allocated for the claimed size."""
    c = Raw(port)
    sids = []
    for k, n in enumerate((MAX_BODY + 1, 1 << 30, 0xffffffff)):
        for i in range(30):
            sid = 1 + 2 * (k * 30 + i)
            c.send(headers_frame(sid, req_block()) +
                   gk.frame(gk.DATA, 0, sid, b"\0" + struct.pack(">I", n) + b"x" * 100))
            sids.append(sid)
    c.wait(lambda: all(c.done(s) for s in sids), 20)
    st = [c.status(s) for s in sids]
    c.close()
    ok = all(s == gk.RESOURCE_EXHAUSTED for s in st)
    return ok, f"statuses {sorted(set(map(str, st)))}"


def case_compressed(port, ctx):
    """1000 streams: the compressed flag with grpc-encoding gzip (a 16 MB
    zero gzip bomb in 16 KB), x-unknown, or none: never decompressed past
    max_body_bytes — UNIMPLEMENTED (or RESOURCE_EXHAUSTED / INTERNAL)."""
    bomb = gzip.compress(b"\0" * (16 << 20), 9)
    c = Raw(port)
    sids = []
    for i in range(1000):
        sid = 2 * i + 1
        enc = ("gzip", "x-unknown", None)[i % 3]
        more = [("grpc-encoding", enc)] if enc else []
        c.send(headers_frame(sid, req_block(more=more)) +
               data_frames(sid, gk.message(bomb if i % 3 == 0 else b"abc", compressed=True)))
        sids.append(sid)
    c.wait(lambda: all(c.done(s) for s in sids), 30)
    st = [c.status(s) for s in sids]
    c.close()
    ok = all(s in (gk.UNIMPLEMENTED, gk.RESOURCE_EXHAUSTED, gk.INTERNAL) for s in st)
    return ok, f"statuses {sorted(set(map(str, st)))}"


GARBAGE = [b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
           b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 500,
           b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + gk.settings(),
           bytes(np.random.default_rng(5).integers(0, 256, 4096, np.uint8)),
           gk.settings() + gk.PREFACE]


def case_garbage_preface(port, ctx):
    """100 connections that start with something else than the preface
    (HTTP/1.1, a TLS ClientHello, a wrong preface tail, random bytes, SETTINGS
    first): each closed by the server."""
    closed = 0
    for i in range(100):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            continue
        try:
            s.sendall(GARBAGE[i % len(GARBAGE)])
        except OSError:
            pass
        s.settimeout(10)
        try:
            while s.recv(65536):
                pass
            closed += 1
        except ConnectionResetError:
            closed += 1
        except OSError:
            pass
        s.close()
    return closed == 100, f"{closed}/100 closed by the server"


def case_slowloris_preface(port, ctx):
    """120 connections from one address, each sending 3 bytes of the preface
    and then one more byte every 2 s for 8 s (never idle): at most
    max_connections_per_ip (64) are held, the health probes from other
    addresses go on; then the attacker goes silent and the server closes every
    one by its idle timeout (connection_timeout_s 5)."""
    socks = []
    for _ in range(120):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(gk.PREFACE[:3])
            socks.append(s)
        except OSError:
            pass

    def still_open(group):
        out = []
        for s in group:  # read what the server sent (its SETTINGS) until EOF or nothing
            try:
                s.settimeout(0.001)
                while s.recv(65536):
                    pass
            except socket.timeout:
                out.append(s)
            except OSError:
                pass
        return out
    open_ = socks
    for pos in range(3, 7):
        time.sleep(2)
        open_ = still_open(open_)
        for s in open_:
            try:
                s.sendall(gk.PREFACE[pos:pos + 1])
            except OSError:
                pass
    held = len(still_open(open_))
    end = time.monotonic() + 20
    while open_ and time.monotonic() < end:
        time.sleep(0.5)
        open_ = still_open(open_)
    for s in socks:
        s.close()
    return held <= 64 and not open_, (f"{len(socks)} connected; {held} held while trickling; "
                                      f"{len(open_)} still open 20 s after going silent")


CASES = [("rapid_reset", case_rapid_reset), ("rapid_reset_spread", case_rapid_reset_spread),
         ("continuation_flood", case_continuation_flood),
         ("huge_header_list", case_huge_header_list), ("hpack_bomb", case_hpack_bomb),
         ("table_size_update", case_table_size_update),
         ("table_size_settings", case_table_size_settings),
         ("settings_flood", case_settings_flood), ("settings_many", case_settings_many),
         ("ping_flood", case_ping_flood), ("too_many_streams", case_too_many_streams),
         ("held_streams", case_held_streams), ("never_reads", case_never_reads),
         ("stream_flood", case_stream_flood),
         ("oversized_message", case_oversized_message), ("compressed", case_compressed),
         ("garbage_preface", case_garbage_preface),
         ("slowloris_preface", case_slowloris_preface)]


# ----------------------------------------------------------------- measuring


class GrpcProbe:
    """ServerLive every 50 ms on a new connection from 127.0.0.3."""

    def __init__(self, port):
        self.port, self.case, self.stop = port, None, threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop.wait(0.05):
            t0 = time.monotonic()
            st, live = gk.server_live(self.port, src="127.0.0.3", timeout=5)
            ms = (time.monotonic() - t0) * 1000
            c = self.case
            if c and not (st == gk.OK and live):
                # a probe that fails is retried at once on a new connection: the case
                # fails only when that fails too; a lone failure is listed (transient)
                st2, live2 = gk.server_live(self.port, src="127.0.0.3", timeout=5)
                if st2 == gk.OK and live2:
                    c.transient = getattr(c, "transient", 0) + 1
                    st, live = st2, live2
            if c:
                c.note_latency("grpc ServerLive", ms, 200 if (st == gk.OK and live) else st)

    def close(self):
        self.stop.set()
        self.t.join(timeout=10)


def export_wide(out_dir):
    """A 1x28x28 model with 65536 outputs: 256 KB of answer per image."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, stride=2), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, WIDE)).eval()
    d = os.path.join(out_dir, "wide")
    os.makedirs(d, exist_ok=True)
    torch.onnx.export(net, torch.zeros(1, 1, 28, 28), os.path.join(d, "model.onnx"),
                      input_names=["input"], output_names=["logits"], opset_version=13,
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"name": "wide", "input": {"color": "gray", "resize": 28, "crop": 28,
                                             "scale": 255.0, "mean": [0.5], "std": [0.5]},
                   "max_batch": 8}, f)
    return d


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def settle(pid, timeout=15.0):
    """Waits until the server stops using CPU (< 20 ms per 250 ms)."""
    end = time.monotonic() + timeout
    last = C.cpu_seconds(pid)
    while time.monotonic() < end:
        time.sleep(0.25)
        now = C.cpu_seconds(pid)
        if now - last < 0.02:
            return
        last = now


def main():
    global pb2
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--match", default="")
    ap.add_argument("--stub-dir")
    a = ap.parse_args()
    pb2, _ = gk.stubs(a.stub_dir)
    problems, rows = [], []
    with tempfile.TemporaryDirectory(prefix="h2-hostile-") as tmp:
        tiny, _ = hardlib.export_model(tmp, "tiny")
        wide = export_wide(tmp)
        srv = gk.GrpcServer(a.binary, ["--model", tiny, "--model", wide, "--workers", "1",
                                       "--max-body-bytes", str(MAX_BODY),
                                       "--max-inflight-bytes", str(INFLIGHT),
                                       "--connection-timeout-s", "5", "--queue-capacity", "64"], prefix="h2-hostile-")
        try:
            pid, port = srv.proc.pid, srv.grpc_port
            # warm up: both models, both protocols
            c = gk.H2(port, timeout=30)
            for m, n in (("tiny", 1), ("wide", 8), ("tiny", 8)):
                r = c.call("ModelInfer", gk.unframe(infer_msg(m, n))[0])
                if r.status != gk.OK:
                    raise AssertionError(f"warm-up {m}: {r.status} {r.message_text}")
            c.close()
            settle(pid)
            idle = C.mem(pid)[0]
            idle_fds = fds(pid)
            watch = C.Watch(pid, srv.port, rss_cap=RSS_CAP, probe_timeout=5.0)
            probe = GrpcProbe(port)
            ctx = {"idle_fds": idle_fds,
                   "images": lambda: srv.metric("resnetd_batch_size_sum", {"model": "tiny"})}
            for name, fn in CASES:
                if a.match and a.match not in name:
                    continue
                st = C.CaseStats()
                C.reset_peak(pid)
                cpu0, t0 = C.cpu_seconds(pid), time.monotonic()
                watch.case = probe.case = st
                try:
                    ok, what = fn(port, ctx)
                except Exception as e:  # noqa: BLE001 - a client error is a finding
                    ok, what = False, f"client error {e!r}"
                wall = time.monotonic() - t0
                settle(pid)
                # the attacker is gone: descriptors back to idle (the server closed its side)
                fd_end = time.monotonic() + 15
                while fds(pid) > idle_fds + 4 and time.monotonic() < fd_end:
                    time.sleep(0.1)
                time.sleep(0.3)  # one more probe round after the case
                watch.case = probe.case = None
                cpu = C.cpu_seconds(pid) - cpu0
                after = (gk.server_live(port, timeout=5), C.request(srv.port, "GET", "/healthz",
                                                                     timeout=5).status)
                if getattr(st, "transient", 0):
                    what += f" [{st.transient} ServerLive probe(s) failed once, then answered]"
                row = dict(name=name, ok=ok, what=what, cpu=cpu, wall=wall,
                           peak=max(st.peak, idle) - idle, worst=st.worst, bad=st.bad,
                           fds=fds(pid) - idle_fds, after=after)
                rows.append(row)
                print(f"{name:20s} {'ok ' if ok else 'BAD'} cpu {cpu:5.2f}s wall {wall:5.1f}s "
                      f"rss +{row['peak'] / 2**20:6.1f}MB fds +{row['fds']} worst "
                      f"{ {k: round(v) for k, v in st.worst.items()} } | {what}", flush=True)
                if not srv.alive():
                    problems.append(f"{name}: the server died (rc {srv.proc.returncode}; killed "
                                    f"for RSS {watch.killed_for_rss})")
                    break
                if not ok:
                    problems.append(f"{name}: unexpected outcome: {what}")
                if row["peak"] >= RSS_SLACK:
                    problems.append(f"{name}: peak RSS idle + {row['peak'] >> 20} MB")
                if cpu >= CPU_BOUND_S:
                    problems.append(f"{name}: server CPU {cpu:.1f} s")
                if st.bad:
                    problems.append(f"{name}: health probes failed during the case: "
                                    f"{st.bad[:5]}")
                if after != ((gk.OK, True), 200):
                    problems.append(f"{name}: health after the case {after}")
                if row["fds"] > 4:
                    problems.append(f"{name}: {row['fds']} descriptors more than idle after the "
                                    f"attacker hung up")
            probe.close()
            watch.close()
        finally:
            rc = srv.stop()
            if rc != 0:
                problems.append(f"exit code {rc}")
            if problems:
                sys.stderr.write(srv.logs().decode(errors="replace")[-4000:])
            srv.cleanup()
    print(f"idle RSS {idle / 2**20:.1f} MB; bound idle + {RSS_SLACK >> 20} MiB, "
          f"CPU < {CPU_BOUND_S:g} s per case")
    if problems:
        print(("NOT AS EXPECTED" if a.report else "FAILED") + ":\n  " + "\n  ".join(problems))
        if not a.report:
            return 1
    print("h2 hostile battery: " + ("report only" if a.report else f"{len(rows)} cases ok"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
