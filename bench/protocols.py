#!/usr/bin/python3
"""Server-side cost of each input form of the same image, side by side.

    /usr/bin/python3 bench/protocols.py RESNETD MODEL_DIR [ROUNDS]

Starts `resnetd serve --model MODEL_DIR` on 127.0.0.1 and, ROUNDS times (default
20), sends one request of every form in turn (interleaved, so machine noise
hits all forms alike): /v1 raw JPEG, TorchServe raw JPEG, v2 BYTES as base64
JSON and as Triton binary, v2 FP32 tensor as binary and as JSON. Prints one
JSON line per form: median wall and server time (Server-Timing) in ms and the
ratio of its server time to /v1's. A benchmark: it reports, it never fails for
being slow. The model's input name is read from /v2/models/{m}."""

import base64
import http.client
import io
import json
import os
import statistics
import struct
import sys
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "protocols"))
import ptest  # noqa: E402


def main():
    binary, model_dir = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    rng = np.random.default_rng(0)
    b = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), np.uint8)).save(b, "JPEG", quality=90)
    jpg = b.getvalue()
    srv = ptest.Server(binary, ["--model", model_dir, "--workers", "1"])
    try:
        name = srv.json("GET", "/v1/models")[2]["models"][0]["name"]
        meta = srv.json("GET", f"/v2/models/{name}")[2]
        inp, out = meta["inputs"][0], meta["outputs"][0]["name"]
        shape = [1] + inp["shape"][1:]
        x = rng.standard_normal(shape).astype(np.float32)
        t_json = json.dumps({"inputs": [{"name": inp["name"], "shape": shape, "datatype": "FP32",
                                         "data": x.ravel().tolist()}]}).encode()
        t_hdr = json.dumps({"inputs": [{"name": inp["name"], "shape": shape, "datatype": "FP32",
                                        "parameters": {"binary_data_size": x.nbytes}}],
                            "outputs": [{"name": out, "parameters": {"binary_data": True}}]}).encode()
        cls = [{"name": out, "parameters": {"classification": 5}}]
        i_json = json.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                         "data": [base64.b64encode(jpg).decode()]}],
                             "outputs": cls}).encode()
        i_hdr = json.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                        "parameters": {"binary_data_size": len(jpg) + 4}}],
                            "outputs": cls}).encode()
        v2 = f"/v2/models/{name}/infer"
        forms = {
            "v1 raw JPEG": (f"/v1/models/{name}/classify", jpg, {}),
            "TorchServe raw JPEG": (f"/predictions/{name}", jpg, {}),
            "v2 BYTES base64 JSON": (v2, i_json, {}),
            "v2 BYTES binary": (v2, i_hdr + struct.pack("<I", len(jpg)) + jpg,
                                {"Inference-Header-Content-Length": str(len(i_hdr))}),
            "v2 FP32 binary": (v2, t_hdr + x.tobytes(),
                               {"Inference-Header-Content-Length": str(len(t_hdr))}),
            "v2 FP32 JSON": (v2, t_json, {}),
        }
        times = {k: [] for k in forms}
        for r in range(rounds + 1):
            for k, (path, body, h) in forms.items():
                t0 = time.perf_counter()
                s, rh, _ = srv.request("POST", path, body, h)
                wall = (time.perf_counter() - t0) * 1e3
                if s != 200:
                    raise RuntimeError(f"{k}: HTTP {s}")
                if r:  # round 0 warms up
                    times[k].append((wall, float(rh["server-timing"].split("dur=")[1])))
        base = statistics.median(s for _, s in times["v1 raw JPEG"])
        for k, t in times.items():
            srv_ms = statistics.median(s for _, s in t)
            print(json.dumps({"form": k, "model": name, "body_bytes": len(forms[k][1]),
                              "wall_ms_p50": round(statistics.median(w for w, _ in t), 2),
                              "server_ms_p50": round(srv_ms, 2),
                              "server_vs_v1": round(srv_ms / base, 3)}))
    finally:
        srv.stop()
        srv.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
