#!/usr/bin/python3
"""gRPC ModelInfer against the HTTP /v2 infer route, same server, same model,
same image, same tool (h2load: HTTP/2 for gRPC, --h1 for HTTP). A report,
never a test. Run through bench/grpc_vs_http.sh.

    /usr/bin/python3 bench/grpc_vs_http.py RESNETD MODEL_DIR [IMAGE]

Requests: one image as a BYTES tensor (Triton's 4-byte length + file bytes),
output as raw bytes — gRPC: ModelInferRequest.raw_input_contents, answer in
raw_output_contents; HTTP: the binary tensor extension both ways
(Inference-Header-Content-Length). Both answers are checked equal once
(python3-grpcio) before timing, and after each gRPC run the server's
resnetd_requests_total{code="200",protocol="grpc"} must have grown by the
run's request count (h2load sees HTTP 200, not grpc-status).

Throughput: REQUESTS requests (env, default 2000) at 8 streams on one
gRPC connection (h2load -c1 -m8) and at 8 HTTP/1.1 connections (h2load --h1
-c8), alternated ROUNDS times (env, default 5; the order swapped every round)
so machine noise hits both; the median img/s of each and the median of the
per-round ratios. Latency: LATENCY_REQUESTS (default 200) at concurrency 1
(-c1 -m1) per round, alternated the same way; p50 and p99 of h2load's
per-request logs (--log-file) pooled over the rounds. Prints a table and one
JSON line."""

import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
import grpc_kserve as gk  # noqa: E402


def h2load(args, log=None):
    cmd = ["h2load"] + args + (["--log-file", log] if log else [])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    out = p.stdout
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    st = re.search(r"status codes: (\d+) 2xx", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if not (m and st and done) or p.returncode != 0:
        raise RuntimeError(f"h2load failed: {' '.join(cmd)}\n{out}\n{p.stderr}")
    return float(m.group(3)), int(st.group(1)), int(done.group(2))


def percentiles(logs):
    us = []
    for log in logs:
        with open(log) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1].startswith("2"):
                    us.append(int(parts[2]))
    us.sort()
    return us[len(us) // 2] / 1000, us[int(len(us) * 0.99)] / 1000, len(us)


def grpc_ok(srv, model):
    return srv.metric("resnetd_requests_total", {"model": model, "code": "200",
                                                 "protocol": "grpc"})


def main():
    binary, model_dir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    n = int(os.environ.get("REQUESTS", "2000"))
    rounds = int(os.environ.get("ROUNDS", "5"))
    nlat = int(os.environ.get("LATENCY_REQUESTS", "200"))
    serve_args = os.environ.get("SERVE_ARGS", "").split()
    if shutil.which("h2load") is None:
        sys.exit("grpc_vs_http: h2load not installed (Debian nghttp2-client)")
    tmp = tempfile.mkdtemp(prefix="grpc-bench-")
    pb2, pb2_grpc = gk.stubs(os.path.join(tmp, "stubs"))
    if len(sys.argv) > 3:
        with open(sys.argv[3], "rb") as f:
            img = f.read()
    else:
        import io
        from PIL import Image
        rng = np.random.default_rng(1)
        y, x = np.mgrid[0:375, 0:500]
        a = np.stack([(x * 0.5 + 40) % 256, (y * 0.6 + 20) % 256, ((x + y) * 0.3) % 256], -1)
        a = np.clip(a + rng.normal(0, 12, a.shape), 0, 255).astype(np.uint8)
        b = io.BytesIO()
        Image.fromarray(a).save(b, "JPEG", quality=90)
        img = b.getvalue()
    srv = gk.GrpcServer(binary, ["--model", model_dir] + serve_args,
                        prefix="grpc-bench-")
    try:
        s, _, idx = srv.json("POST", "/v2/repository/index", b"{}")
        model = idx[0]["name"]
        blob = struct.pack("<I", len(img)) + img
        # gRPC body: one length-prefixed ModelInferRequest
        r = pb2.ModelInferRequest(model_name=model)
        r.inputs.add(name="image", datatype="BYTES", shape=[1])
        r.raw_input_contents.append(blob)
        gbody = os.path.join(tmp, "grpc.bin")
        with open(gbody, "wb") as f:
            f.write(gk.message(r.SerializeToString()))
        # HTTP body: JSON header + the same BYTES tensor, binary output
        hdr = json.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                      "parameters": {"binary_data_size": len(blob)}}],
                          "parameters": {"binary_data_output": True}}).encode()
        hbody = os.path.join(tmp, "http.bin")
        with open(hbody, "wb") as f:
            f.write(hdr + blob)
        # the two answers agree
        with srv.channel() as ch:
            g = pb2_grpc.GRPCInferenceServiceStub(ch).ModelInfer(r, timeout=60)
        st, h, body = srv.http_request("POST", f"/v2/models/{model}/infer", hdr + blob,
                                       {"Inference-Header-Content-Length": str(len(hdr))})
        tail = body[int(h["inference-header-content-length"]):]
        if st != 200 or g.raw_output_contents[0] != tail:
            sys.exit(f"grpc_vs_http: answers differ (HTTP {st})")
        gurl = f"http://127.0.0.1:{srv.grpc_port}/inference.GRPCInferenceService/ModelInfer"
        hurl = f"http://127.0.0.1:{srv.port}/v2/models/{model}/infer"
        gargs = ["-d", gbody, "-H", "content-type: application/grpc", "-H", "te: trailers", gurl]
        hargs = ["--h1", "-d", hbody, "-H", f"Inference-Header-Content-Length: {len(hdr)}",
                 "-H", "content-type: application/octet-stream", hurl]

        def grpc_run(extra, log=None):
            before = grpc_ok(srv, model)
            rps, n2xx, ok = h2load(extra + gargs, log)
            got = grpc_ok(srv, model) - before
            if got != ok:
                raise RuntimeError(f"gRPC: h2load saw {ok} succeed, the server counted {got} OK")
            return rps

        # warm up both
        grpc_run(["-n", "200", "-c", "1", "-m", "8"])
        h2load(["-n", "200", "-c", "8"] + hargs)
        g_rps, h_rps, ratios = [], [], []
        for k in range(rounds):  # alternated, the order swapped every round
            order = ("g", "h") if k % 2 == 0 else ("h", "g")
            got = {}
            for w in order:
                if w == "g":
                    got[w] = grpc_run(["-n", str(n), "-c", "1", "-m", "8"])
                else:
                    got[w] = h2load(["-n", str(n), "-c", "8"] + hargs)[0]
            g_rps.append(got["g"])
            h_rps.append(got["h"])
            ratios.append(got["g"] / got["h"])
        # latency at concurrency 1: the same alternation, per-request times pooled
        logs = {"grpc": [], "http": []}
        for k in range(rounds):
            glog, hlog = os.path.join(tmp, f"g{k}.log"), os.path.join(tmp, f"h{k}.log")
            for w in (("g", "h") if k % 2 == 0 else ("h", "g")):
                if w == "g":
                    grpc_run(["-n", str(nlat), "-c", "1", "-m", "1"], glog)
                else:
                    h2load(["-n", str(nlat), "-c", "1"] + hargs, hlog)
            logs["grpc"].append(glog)
            logs["http"].append(hlog)
        lat = {name: percentiles(ls) for name, ls in logs.items()}
        gm, hm = statistics.median(g_rps), statistics.median(h_rps)
        print(f"model {model}, image {len(img)} bytes, {n} requests x {rounds} rounds")
        print(f"| route | img/s at 8 (median of {rounds}) | runs | p50 c=1 ms | p99 c=1 ms |")
        print("|---|---|---|---|---|")
        print(f"| gRPC ModelInfer, 8 streams / 1 conn | {gm:.0f} | "
              f"{', '.join(f'{v:.0f}' for v in g_rps)} | {lat['grpc'][0]:.3f} | "
              f"{lat['grpc'][1]:.3f} |")
        print(f"| HTTP /v2 infer, 8 connections | {hm:.0f} | "
              f"{', '.join(f'{v:.0f}' for v in h_rps)} | {lat['http'][0]:.3f} | "
              f"{lat['http'][1]:.3f} |")
        print(f"gRPC/HTTP throughput {gm / hm:.3f}x (medians; median of the per-round ratios "
              f"{statistics.median(ratios):.3f}x; target >= 1.0); p50 c=1 gRPC - HTTP "
              f"{lat['grpc'][0] - lat['http'][0]:+.3f} ms (target <= 1 ms)")
        print(json.dumps({"model": model, "grpc_img_s": gm, "http_img_s": hm,
                          "ratio": gm / hm, "round_ratios": ratios, "grpc_p50_ms": lat["grpc"][0],
                          "http_p50_ms": lat["http"][0], "grpc_runs": g_rps,
                          "http_runs": h_rps}))
    finally:
        srv.stop()
        srv.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
