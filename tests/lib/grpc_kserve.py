"""gRPC (KServe v2 / Triton `inference.GRPCInferenceService`) for the Python
tests and benchmarks, shared by tests/protocols/test_grpc_clients.py,
tests/hardening/h2_hostile.py, tests/fuzz/make_grpc_seeds.py and
bench/grpc_vs_http.py.

- stubs(): the message classes and grpcio stub, generated at test time from
  the repository's .proto with Debian's python3-grpc-tools into a directory
  (the build tree, or a temporary one) — nothing generated is committed.
- GrpcServer: tests/lib/resnetd_serve.Server with `--grpc-port 0`; the gRPC
  port is read back from the server's log line (self.grpc_port).
- H2: a small gRPC-over-HTTP/2 client on Python's `h2` (python3-h2) and a
  plain socket — a chosen source address, TLS, several streams at once, and
  the raw frames underneath for the hostile battery (frame(), PREFACE,
  settings(), hpack_block()).
- message()/unframe(): the 5-byte gRPC length-prefixed message framing.

Import it from a sibling test directory with
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
"""

import glob
import importlib
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resnetd_serve  # noqa: E402

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVICE = "inference.GRPCInferenceService"

# grpc-status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html)
OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND = 0, 1, 2, 3, 4, 5
RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, UNAUTHENTICATED = 8, 12, 13, 14, 16


def proto_path():
    """The repository's .proto that declares GRPCInferenceService."""
    for p in sorted(glob.glob(os.path.join(SRC, "server", "**", "*.proto"), recursive=True)):
        with open(p) as f:
            if "service GRPCInferenceService" in f.read():
                return p
    raise RuntimeError("no .proto with service GRPCInferenceService under server/")


_STUBS = {}


def stubs(out_dir=None, proto=None):
    """(pb2 module, pb2_grpc module) generated from the .proto with
    `python3 -m grpc_tools.protoc` into out_dir (a temporary directory when
    None). The same modules on a second call."""
    proto = proto or os.environ.get("RESNETD_GRPC_PROTO") or proto_path()
    if proto in _STUBS:
        return _STUBS[proto]
    if out_dir is None:
        out_dir = tempfile.mkdtemp(prefix="grpc-stubs-")
    os.makedirs(out_dir, exist_ok=True)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", os.path.dirname(proto),
                    "--python_out", out_dir, "--grpc_python_out", out_dir, proto], check=True)
    base = os.path.splitext(os.path.basename(proto))[0]
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)
    pb2 = importlib.import_module(base + "_pb2")
    pb2_grpc = importlib.import_module(base + "_pb2_grpc")
    _STUBS[proto] = (pb2, pb2_grpc)
    return pb2, pb2_grpc


# The gRPC port's log line: {"msg":"grpc listening","detail":"HOST:PORT"} or any
# "listening" line whose message or detail names gRPC.
_GRPC_LISTENING = re.compile(rb'\{[^\n]*"msg":"[^"]*grpc[^"]*listening[^"]*"[^\n]*?'
                             rb'"detail":"[^"]*:(\d+)[^"]*"', re.I)
_GRPC_LISTENING2 = re.compile(rb'\{[^\n]*"msg":"listening"[^\n]*"detail":"[^"]*grpc[^"]*:(\d+)',
                              re.I)


def grpc_port_from_log(data):
    for rx in (_GRPC_LISTENING, _GRPC_LISTENING2):
        m = rx.search(data)
        if m:
            return int(m.group(1))
    return None


class GrpcServer(resnetd_serve.Server):
    """`resnetd serve ARGS --grpc-port 0 --host 127.0.0.1 --port 0`: ready when
    /readyz is 200 (or, with scheme="https", 0.5 s after the listening line)
    and the gRPC port's log line is there (self.grpc_port)."""

    def __init__(self, binary, args, ready_timeout=180.0, **kw):
        kw.setdefault("prefix", "grpctest-")
        super().__init__(binary, list(args) + ["--grpc-port", "0"], ready_timeout=ready_timeout,
                         **kw)
        deadline = time.monotonic() + ready_timeout
        self.grpc_port = None
        while self.grpc_port is None:
            self.grpc_port = grpc_port_from_log(self.logs())
            if self.grpc_port is None:
                if not self.alive() or time.monotonic() > deadline:
                    out = self.logs().decode(errors="replace")
                    self.stop()
                    raise RuntimeError(f"no gRPC listening log line: {' '.join(self.cmd)}\n{out}")
                time.sleep(0.05)

    @property
    def target(self):
        return f"127.0.0.1:{self.grpc_port}"

    def channel(self, **options):
        """A grpcio channel to the gRPC port (no proxy from the environment)."""
        import grpc
        opts = [("grpc.enable_http_proxy", 0)] + list(options.items())
        return grpc.insecure_channel(self.target, options=opts)


# ----------------------------------------------------------------- framing


def message(body, compressed=False):
    """One gRPC length-prefixed message."""
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(body)) + body


def unframe(data):
    """[message bytes] from a DATA stream; raises ValueError when truncated."""
    out, i = [], 0
    while i < len(data):
        if len(data) - i < 5:
            raise ValueError("truncated gRPC message prefix")
        n = struct.unpack(">I", data[i + 1:i + 5])[0]
        if len(data) - i - 5 < n:
            raise ValueError("truncated gRPC message")
        out.append(data[i + 5:i + 5 + n])
        i += 5 + n
    return out


def request_headers(path, authority="127.0.0.1", scheme="http", metadata=(), timeout=None,
                    extra=()):
    h = [(":method", "POST"), (":scheme", scheme), (":path", path), (":authority", authority),
         ("content-type", "application/grpc"), ("te", "trailers")]
    if timeout is not None:
        h.append(("grpc-timeout", timeout))
    return h + list(metadata) + list(extra)


# ----------------------------------------------------------------- raw frames

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT_STREAMS, S_INITIAL_WINDOW_SIZE, \
    S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE = range(1, 7)


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def settings(pairs=(), ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0,
                 b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def hpack_block(headers, encoder=None):
    """A header block (HPACK, huffman off: sizes stay predictable)."""
    import hpack
    enc = encoder or hpack.Encoder()
    return enc.encode([(k.encode() if isinstance(k, str) else k,
                        v.encode() if isinstance(v, str) else v) for k, v in headers],
                      huffman=False)


def read_frame(sock_reader):
    """(type, flags, stream id, payload) from a Reader-like object with take(n)."""
    head = sock_reader.take(9)
    n = struct.unpack(">I", b"\0" + head[:3])[0]
    sid = struct.unpack(">I", head[5:9])[0] & 0x7fffffff
    return head[3], head[4], sid, sock_reader.take(n)


class RawReader:
    """Buffered socket reads with an overall deadline."""

    def __init__(self, sock, deadline):
        self.s, self.buf, self.deadline = sock, bytearray(), deadline

    def take(self, n):
        while len(self.buf) < n:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("deadline")
            self.s.settimeout(min(left, 5.0))
            d = self.s.recv(1 << 20)
            if not d:
                raise EOFError
            self.buf += d
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


# ----------------------------------------------------------------- h2 client


class Call:
    """One stream's outcome: headers, data, trailers; status/message from
    grpc-status/grpc-message (in the trailers, or the headers of a
    Trailers-Only answer); reset = the RST_STREAM error code when reset."""

    def __init__(self):
        self.headers, self.trailers, self.data = {}, {}, bytearray()
        self.ended, self.reset = False, None

    @property
    def status(self):
        v = self.trailers.get("grpc-status", self.headers.get("grpc-status"))
        return None if v is None else int(v)

    @property
    def message_text(self):
        v = self.trailers.get("grpc-message", self.headers.get("grpc-message", ""))
        from urllib.parse import unquote
        return unquote(v)

    @property
    def messages(self):
        return unframe(bytes(self.data))

    @property
    def done(self):
        return self.ended or self.reset is not None


class H2:
    """A gRPC client connection on `h2` over a plain (or TLS) socket.

    c = H2(port); call = c.call("/inference.GRPCInferenceService/ServerLive", b"")
    call.status, call.messages

    src: source address (e.g. "127.0.0.2" so a per-IP limit counts it apart);
    tls: an ssl.SSLContext (ALPN h2 is set); local_settings: extra SETTINGS."""

    def __init__(self, port, host="127.0.0.1", src=None, tls=None, timeout=10.0,
                 local_settings=None, authority="127.0.0.1"):
        import h2.config
        import h2.connection
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(src, 0) if src else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.scheme = "http"
        if tls is not None:
            tls.set_alpn_protocols(["h2"])
            self.sock = tls.wrap_socket(self.sock, server_hostname=host)
            self.scheme = "https"
        self.timeout, self.authority = timeout, authority
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        if local_settings:
            self.conn.update_settings(local_settings)
        self.calls = {}
        self.goaway = None  # (error code, last stream id) once received
        self.closed = False
        self._rbuf = b""  # received bytes not yet a whole frame
        self._flush()

    def _flush(self):
        d = self.conn.data_to_send()
        if d:
            self.sock.sendall(d)

    def start(self, method, body, metadata=(), timeout=None, extra=(), end=True, path=None):
        """Opens a stream for /SERVICE/method (or path) and sends body (a
        framed gRPC message, or raw bytes). Returns the stream id."""
        sid = self.conn.get_next_available_stream_id()
        hdrs = request_headers(path or f"/{SERVICE}/{method}", self.authority, self.scheme,
                               metadata, timeout, extra)
        self.conn.send_headers(sid, hdrs, end_stream=(end and not body))
        self.calls[sid] = Call()
        self._flush()
        if body:
            self.send_data(sid, body, end)
        return sid

    def send_data(self, sid, data, end=True):
        """Sends as flow control allows (waits for WINDOW_UPDATEs)."""
        view = memoryview(data)
        while True:
            n = min(len(view), self.conn.local_flow_control_window(sid),
                    self.conn.max_outbound_frame_size)
            if n > 0 or not len(view):
                self.conn.send_data(sid, bytes(view[:n]), end_stream=end and n == len(view))
                self._flush()
                view = view[n:]
                if not len(view):
                    return
            else:
                self.pump(lambda: self.conn.local_flow_control_window(sid) > 0 or
                          self.calls[sid].done)
                if self.calls[sid].done:
                    return

    def pump(self, until, timeout=None):
        """Reads and handles frames until until() is true; raises socket.timeout."""
        import h2.events
        deadline = time.monotonic() + (timeout or self.timeout)
        while not until():
            if self.closed:
                raise EOFError("connection closed")
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("h2 pump deadline")
            self.sock.settimeout(left)
            d = self.sock.recv(1 << 20)
            if not d:
                self.closed = True
                continue
            for ev in self._frames(d):
                c = self.calls.get(getattr(ev, "stream_id", None))
                if isinstance(ev, h2.events.ResponseReceived) and c:
                    c.headers = dict(ev.headers)
                elif isinstance(ev, h2.events.TrailersReceived) and c:
                    c.trailers = dict(ev.headers)
                elif isinstance(ev, h2.events.DataReceived):
                    if c:
                        c.data += ev.data
                    if ev.flow_controlled_length:
                        self.conn.acknowledge_received_data(ev.flow_controlled_length,
                                                            ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded) and c:
                    c.ended = True
                elif isinstance(ev, h2.events.StreamReset) and c:
                    c.reset = ev.error_code
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.goaway = (ev.error_code, ev.last_stream_id)
            self._flush()

    def _frames(self, d):
        """The events of the whole frames received so far, one frame at a time:
        h2 4.1 treats the connection as closed once a GOAWAY arrives and
        refuses the frames that follow it, but RFC 9113 (6.8) lets the streams
        up to its last-stream-id finish, so after a GOAWAY the state machine
        is put back to open for them."""
        import h2.connection
        import h2.events
        self._rbuf += d
        events = []
        while len(self._rbuf) >= 9:
            n = int.from_bytes(self._rbuf[:3], "big")
            if len(self._rbuf) < 9 + n:
                break
            frame, self._rbuf = self._rbuf[:9 + n], self._rbuf[9 + n:]
            evs = self.conn.receive_data(frame)
            events += evs
            if any(isinstance(e, h2.events.ConnectionTerminated) for e in evs):
                self.conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        return events

    def wait(self, sid, timeout=None):
        self.pump(lambda: self.calls[sid].done, timeout)
        return self.calls[sid]

    def call(self, method, body=b"", metadata=(), timeout=None, grpc_timeout=None, path=None):
        """A unary call: body is the serialized request (framed here)."""
        sid = self.start(method, message(body), metadata, grpc_timeout, path=path)
        return self.wait(sid, timeout)

    def close(self):
        try:
            self.conn.close_connection()
            self._flush()
        except Exception:  # noqa: BLE001 - the peer may be gone already
            pass
        self.sock.close()


def tls_client_context(cafile=None):
    ctx = ssl.create_default_context(cafile=cafile)
    if cafile is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def server_live(port, src=None, timeout=5.0, tls=None):
    """One ServerLive call on a new connection: (grpc-status or None, live or None)."""
    try:
        c = H2(port, src=src, timeout=timeout, tls=tls)
    except OSError:
        return None, None
    try:
        r = c.call("ServerLive", b"", timeout=timeout)
        msgs = r.messages
        # ServerLiveResponse { bool live = 1; }: 08 01 when true, empty when false
        return r.status, (msgs[0] == b"\x08\x01") if msgs else None
    except (OSError, EOFError, ValueError):
        return None, None
    finally:
        c.close()
