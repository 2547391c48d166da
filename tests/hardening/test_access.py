#!/usr/bin/env python3
"""Access control and TLS against the real `resnetd serve` on 127.0.0.1.

    test_access.py RESNETD auth    bearer token from env, flag and config file
    test_access.py RESNETD tls     HTTPS with a certificate made here (openssl
                                   req), checked with curl; plus token over TLS
    test_access.py RESNETD defaults  secure defaults (bind, redaction)
"""

import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hardlib as H  # noqa: E402
from hardlib import check  # noqa: E402

KEY = "k3y-" + os.urandom(12).hex()


def expect_401(resp, what, invalid):
    status, headers, body = resp
    check(status == 401, f"{what}: status {status}: {body[:200]!r}")
    check(H.json_error(status, headers, body, "unauthorized"), f"{what}: body {body!r}")
    www = headers.get("www-authenticate", "")
    check(www.startswith("Bearer"), f"{what}: WWW-Authenticate {www!r}")
    check(('error="invalid_token"' in www) == invalid, f"{what}: WWW-Authenticate {www!r}")
    check(KEY.encode() not in body, f"{what}: body leaks the key")
    # a 401 is an answer like any other: its own request id (and access-log line)
    check(headers.get("x-request-id"), f"{what}: no X-Request-Id")


def auth_checks(srv, png, metrics_protected):
    bearer = b"Authorization: Bearer " + KEY.encode() + b"\r\n"
    for path in ["/healthz", "/readyz"]:
        check(srv.get(path)[0] == 200, f"{path} must stay open")
    expect_401(srv.get("/v1/models"), "/v1/models without token", False)
    expect_401(srv.get("/v1/models", b"Authorization: Bearer wrong\r\n"), "wrong token", True)
    expect_401(srv.get("/v1/models", b"Authorization: Bearer " + KEY[:-1].encode() + b"\r\n"),
               "key prefix", True)
    expect_401(srv.get("/v1/models", b"Authorization: Bearer " + KEY.encode() + b"x\r\n"),
               "key + 1 byte", True)
    expect_401(srv.get("/v1/models", b"Authorization: Basic " + KEY.encode() + b"\r\n"),
               "Basic scheme", True)
    check(srv.get("/v1/models", bearer)[0] == 200, "/v1/models with token")
    check(srv.get("/v1/models", b"Authorization: bearer " + KEY.encode() + b"\r\n")[0] == 200,
          "scheme is case-insensitive")
    expect_401(srv.post("/v1/classify", png), "classify without token", False)
    r = srv.post("/v1/classify", png, headers=bearer)
    check(r[0] == 200 and "predictions" in json.loads(r[2]), f"classify with token: {r[0]}")
    expect_401(srv.get("/nope"), "unknown path without token", False)
    check(srv.get("/nope", bearer)[0] == 404, "unknown path with token")
    # the other protocol families are behind the same gate
    for path in ["/v2/models/tiny", "/demo/other.js", "/demo/", "/index.html"]:
        r = srv.get(path)
        check(r[0] == 401, f"{path} without token: {r[0]}")
    # ...except the demo page's static files: the same bytes for everyone, no
    # data; the page then asks for the key for its /v1 calls (still 401 above)
    for path, ctype in [("/", "text/html"), ("/demo/app.js", "text/javascript"),
                        ("/demo/style.css", "text/css")]:
        r = srv.get(path)
        check(r[0] == 200 and r[1].get("content-type", "").startswith(ctype) and r[2],
              f"{path} without token: {r[0]} {r[1].get('content-type')}")
        check("default-src 'none'" in r[1].get("content-security-policy", ""),
              f"{path}: CSP {r[1].get('content-security-policy')!r}")
        check(srv.get(path, bearer)[2] == r[2], f"{path}: same bytes with the token")
        check(srv.get(path, b"Authorization: Bearer wrong\r\n")[0] == 200,
              f"{path} with a wrong token")
    check(srv.get("/?model=tiny")[0] == 200, "/ with a query (the page's ?model=) without token")
    expect_401(srv.get("/v1/models"), "/v1/models (the demo's model list) without token", False)
    if metrics_protected:
        expect_401(srv.get("/metrics"), "/metrics (metrics_auth)", False)
        check(srv.get("/metrics", bearer)[0] == 200, "/metrics with token")
    else:
        check(srv.get("/metrics")[0] == 200, "/metrics open by default")
    m = srv.get("/metrics", bearer)[2].decode()
    n401 = sum(float(line.split()[-1]) for line in m.splitlines()
               if line.startswith("resnetd_requests_total{") and 'code="401"' in line)
    check(n401 >= 7, f"401s counted in resnetd_requests_total: {n401}")
    check(srv.get("/metrics", bearer)[1].get("x-request-id"), "/metrics without X-Request-Id")
    st, hd, _ = srv.request(b"DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    check(st == 405 and hd.get("x-request-id") and hd.get("allow"), f"405: {st} {hd}")
    denied = [x for x in srv.log_lines() if x.get("status") == 401]
    check(len(denied) >= 7 and all(x.get("id") for x in denied),
          f"401s in the access log, with their ids: {len(denied)}")
    check(KEY not in srv.logs().decode(errors="replace"), "the key appears in the log")


def test_auth(binary, tmp):
    model_dir, _ = H.export_model(tmp)
    png = H.png_bytes()
    base = ["--model", model_dir, "--log-level", "info"]
    # env, metrics open
    srv = H.Server(binary, base, env={"RESNETD_API_KEY": KEY})
    try:
        auth_checks(srv, png, False)
        check(srv.stop() == 0, "clean exit")
    finally:
        srv.cleanup()
    # config file with metrics_auth
    cfg = os.path.join(tmp, "cfg.json")
    with open(cfg, "w") as f:
        json.dump({"api_key": KEY, "metrics_auth": 1}, f)
    srv = H.Server(binary, base + ["--config", cfg])
    try:
        auth_checks(srv, png, True)
    finally:
        srv.cleanup()
    # flag (overrides env)
    srv = H.Server(binary, base + ["--api-key", KEY], env={"RESNETD_API_KEY": "other"})
    try:
        auth_checks(srv, png, False)
    finally:
        srv.cleanup()
    # without a key nothing is gated
    srv = H.Server(binary, base)
    try:
        check(srv.post("/v1/classify", png)[0] == 200, "no key: classify open")
    finally:
        srv.cleanup()


def curl(args, timeout=30):
    p = subprocess.run(["curl", "-sS", "--max-time", "20"] + args, capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def make_cert(tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


# (openssl s_client arguments, handshake accepted?) against the default
# tls_priorities; SECLEVEL=0 lets the client offer TLS 1.0/1.1 at all.
TLS_PROBES = [
    (["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"], False),
    (["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], False),
    (["-tls1_2", "-cipher", "AES128-GCM-SHA256"], False),      # static RSA: no forward secrecy
    (["-tls1_2", "-cipher", "AES256-SHA256"], False),          # static RSA, CBC
    (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA"], False),   # forward secret but CBC
    (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"], True),
    (["-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"], True),
    (["-tls1_3"], True),
]


def test_tls(binary, tmp):
    model_dir, _ = H.export_model(tmp)
    png_path = os.path.join(tmp, "x.png")
    with open(png_path, "wb") as f:
        f.write(H.png_bytes())
    cert, key = make_cert(tmp)
    base = ["--model", model_dir, "--log-level", "info"]

    # one of the two files only: refused at start, the message names the key
    p = subprocess.run([binary, "serve"] + base + ["--port", "0", "--tls-cert", cert],
                       capture_output=True, timeout=60)
    check(p.returncode != 0 and b"tls_key" in p.stderr, f"tls_cert alone: {p.returncode} "
          f"{p.stderr[-300:]!r}")
    p = subprocess.run([binary, "serve"] + base + ["--port", "0", "--tls-cert", cert,
                                                   "--tls-key", os.path.join(tmp, "nope.pem")],
                       capture_output=True, timeout=60)
    check(p.returncode != 0 and b"tls_key" in p.stderr, f"missing key file: {p.stderr[-300:]!r}")

    # a bad priority string: exit 2 at start-up, naming the key
    p = subprocess.run([binary, "serve"] + base + ["--port", "0", "--tls-cert", cert,
                                                   "--tls-key", key, "--tls-priorities",
                                                   "NORMAL:+NO-SUCH-THING"],
                       capture_output=True, timeout=60)
    check(p.returncode == 2 and b"tls_priorities" in p.stderr,
          f"bad tls_priorities: {p.returncode} {p.stderr[-300:]!r}")

    srv = H.Server(binary, base + ["--tls-cert", cert, "--tls-key", key, "--api-key", KEY],
                   scheme="https")
    try:
        url = f"https://127.0.0.1:{srv.port}"
        deadline = time.monotonic() + 120
        while True:
            rc, out, err = curl(["--cacert", cert, url + "/readyz"])
            if rc == 0 and b"ready" in out:
                break
            check(time.monotonic() < deadline and srv.alive(), f"HTTPS never ready: {err}")
            time.sleep(0.2)
        rc, out, err = curl(["--cacert", cert, "-w", "\n%{http_code}", url + "/healthz"])
        check(rc == 0 and out.endswith(b"\n200"), f"healthz over TLS: {rc} {out!r} {err}")
        rc, out, err = curl(["--cacert", cert, "-w", "\n%{http_code}", "--data-binary",
                             "@" + png_path, url + "/v1/classify"])
        check(rc == 0 and out.endswith(b"\n401"), f"classify without token over TLS: {out!r}")
        rc, out, err = curl(["--cacert", cert, "-H", "Authorization: Bearer " + KEY,
                             "--data-binary", "@" + png_path, url + "/v1/classify?top_k=3"])
        check(rc == 0 and len(json.loads(out)["predictions"]) == 3,
              f"classify over TLS: {rc} {out[:200]!r} {err}")
        # the certificate is really checked: without the CA curl refuses it
        rc, out, err = curl([url + "/healthz"])
        check(rc == 60, f"unverified certificate accepted? rc={rc} {err}")
        # plain HTTP on the TLS port gets no HTTP answer
        try:
            r = srv.get("/healthz")
            check(r[0] is None, f"plain HTTP answered on the TLS port: {r[0]}")
        except OSError:
            pass
        check(srv.alive(), "server died after plain HTTP on the TLS port")
        rc, _, err = curl(["--cacert", cert, url + "/healthz"])
        check(rc == 0, f"TLS after plain HTTP attempt: {err}")
        # tls_priorities (default): TLS 1.2+ with forward-secret AEAD suites only
        for args, ok in TLS_PROBES:
            p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}"] + args,
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
            got = p.returncode == 0 and b"Cipher is (NONE)" not in p.stdout
            check(got == ok, f"openssl s_client {' '.join(args)}: handshake "
                  f"{'accepted' if got else 'refused'}, want {'accepted' if ok else 'refused'}")
        p = subprocess.run(["gnutls-cli", "--x509cafile", cert, "-p", str(srv.port), "127.0.0.1",
                            "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.1"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        check(p.returncode != 0, f"gnutls-cli TLS 1.1 accepted: {p.stdout[-300:]!r}")
        p = subprocess.run(["gnutls-cli", "--x509cafile", cert, "-p", str(srv.port), "127.0.0.1",
                            "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.2"],
                           input=b"", capture_output=True, timeout=30)
        check(p.returncode == 0 and b"TLS1.2" in p.stdout, f"gnutls-cli TLS 1.2: {p.stdout[-300:]!r}")
        # lingering close over TLS: a body over max_body_bytes sent whole
        # before reading still gets its JSON 413 (and 401 without a token)
        ctx = ssl.create_default_context(cafile=cert)
        big = os.urandom(28 << 20)
        for hdrs, want in (({"Authorization": "Bearer " + KEY}, 413), ({}, 401)):
            req = urllib.request.Request(url + "/v1/classify", data=big, headers=hdrs)
            try:
                urllib.request.urlopen(req, context=ctx, timeout=30)
                got, body = 200, b""
            except urllib.error.HTTPError as e:
                got, body = e.code, e.read()
            check(got == want and b'"error"' in body, f"HTTPS 28 MiB body: {got} {body[:200]!r}")
        check(srv.stop() == 0, "clean exit")
    finally:
        srv.cleanup()


def test_defaults(binary, tmp):
    p = subprocess.run([binary, "serve", "--print-config"], capture_output=True, timeout=30,
                       env={k: v for k, v in os.environ.items() if not k.startswith("RESNETD_")})
    cfg = json.loads(p.stdout)
    check(cfg["host"] == "127.0.0.1", f"default bind {cfg['host']}")
    check(cfg["api_key"] == "" and cfg["metrics_auth"] == 0 and cfg["tls_cert"] == "",
          f"auth/TLS defaults: {cfg}")
    p = subprocess.run([binary, "serve", "--print-config"], capture_output=True, timeout=30,
                       env=dict(os.environ, RESNETD_API_KEY=KEY))
    check(KEY.encode() not in p.stdout and json.loads(p.stdout)["api_key"] == "<redacted>",
          f"--print-config shows the key: {p.stdout!r}")
    p = subprocess.run([binary, "serve", "--metrics-auth", "2"], capture_output=True, timeout=30)
    check(p.returncode == 2 and b"metrics_auth" in p.stderr, "bad metrics_auth value")


def main():
    binary, which = os.path.abspath(sys.argv[1]), sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="access-") as tmp:
        {"auth": test_auth, "tls": test_tls, "defaults": test_defaults}[which](binary, tmp)
    print(f"access {which}: ok")


if __name__ == "__main__":
    main()
