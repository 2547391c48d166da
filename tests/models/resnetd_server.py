"""Start and stop a real `resnetd` on a free loopback port (--port 0, read
from its "listening" log line), for the tests in tests/models/. Used as a
context manager:

    with ResnetdServer(binary, ["serve"]) as srv:
        status, body = srv.request("GET", "/v1/models")

The server runs in a fresh temporary working directory (the default model must
be found relative to the executable, not the working directory); its stderr is
kept in a file and printed when it fails to become ready. The process handling
is tests/lib/resnetd_serve.py's.
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import resnetd_serve  # noqa: E402


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


class ResnetdServer(resnetd_serve.Server):
    """`BINARY ARGS --host 127.0.0.1 --port 0` (ARGS starts with the subcommand,
    if any), ready when /readyz is 200 (tests/lib/resnetd_serve.py). request()
    and json() here return (status, body) without the headers."""

    def __init__(self, binary, args, ready_timeout=60.0, env=None):
        super().__init__(binary, args, env=env, command=(), ready_timeout=ready_timeout,
                         probe_timeout=2, stop_timeout=15, prefix="resnetd-test-")

    def connection(self, timeout=60):
        return self.conn(timeout)

    def request(self, method, path, body=None, headers=None, timeout=60, conn=None):
        """Sends one request; returns (status, body bytes). Uses CONN if given
        (keep-alive), otherwise a fresh connection."""
        status, _, data = self.http_request(method, path, body, headers, timeout, conn)
        return status, data

    def json(self, method, path, body=None, headers=None, conn=None):
        status, data = self.request(method, path, body, headers, conn=conn)
        try:
            return status, json.loads(data)
        except ValueError:
            raise AssertionError(f"{method} {path}: {status}, body is not JSON: {data[:200]!r}")
