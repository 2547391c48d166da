#!/usr/bin/env python3
"""The model registry (issue 14), in-tree checks of the server side:

  * a versioned repository (NAME/<N>/model.onnx): the default policy serves the
    latest version only; FP32 v2 infer answers equal PyTorch's logits of the
    version asked for; an unknown version is 404;
  * poll mode: a version dropped in (renamed into place) is swapped in and
    answers with its own logits; a truncated version after it stays
    UNAVAILABLE with a reason naming the ONNX problem, counted as a failed
    load, while the previous version keeps serving;
  * version_policy all and specific route each version to its own model;
  * explicit mode: unload -> 404 on infer and classify, UNAVAILABLE in the
    index; load -> 200 again; load/unload in none mode -> 400;
  * start-up with one good and one bad model: exit 1 with exit_on_error, else
    the good one serves, /readyz follows strict_readiness.

usage: test_registry.py RESNETD_BIN
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srvtest  # noqa: E402
from srvtest import check  # noqa: E402

BIN = sys.argv[1]
X = np.random.default_rng(5).standard_normal((2, 1, 28, 28)).astype(np.float32)


def add_version(repo_model, v, seed, tmp):
    """Builds version v of a model in tmp, then renames it into place (a
    version folder appears whole). Returns its torch module."""
    d, net = srvtest.export_model(tmp, f"v{v}-{seed}", seed=seed)
    os.rename(d, os.path.join(repo_model, str(v)))
    return net


def logits(s, path):
    body = json.dumps({"inputs": [{"name": "input", "shape": list(X.shape), "datatype": "FP32",
                                   "data": X.ravel().tolist()}]}).encode()
    st, _, b = s.http_request("POST", path, body, {"Content-Type": "application/json"})
    if st != 200:
        return st, None
    return st, np.array(json.loads(b)["outputs"][0]["data"], np.float32).reshape(2, 10)


def same(got, net):
    with torch.no_grad():
        want = net(torch.from_numpy(X)).numpy()
    return got is not None and np.allclose(got, want, atol=1e-4, rtol=1e-4)


def index(s):
    st, _, j = s.json("GET", "/v2/repository/index")
    check(st == 200, f"index {st}")
    return {(e["name"], e["version"]): e for e in j}


def wait(cond, what, timeout=60.0):
    """Bounded wait for a background load (not a timing assertion)."""
    t0 = time.monotonic()
    while not cond():
        check(time.monotonic() - t0 < timeout, f"{what} within {timeout:g} s")
        time.sleep(0.1)


def test_poll(tmp):
    repo = os.path.join(tmp, "repo")
    m = os.path.join(repo, "m")
    os.makedirs(m)
    nets = {1: add_version(m, 1, 11, tmp), 2: add_version(m, 2, 12, tmp)}
    s = srvtest.Server(BIN, ["--model-repository", repo, "--model-control-mode", "poll",
                             "--repository-poll-secs", "1"])
    try:
        idx = index(s)
        check(idx[("m", "2")]["state"] == "READY" and ("m", "1") not in idx, f"latest 1: {idx}")
        st, got = logits(s, "/v2/models/m/infer")
        check(st == 200 and same(got, nets[2]), "unversioned -> v2's logits")
        st, got = logits(s, "/v2/models/m/versions/2/infer")
        check(st == 200 and same(got, nets[2]), "v2 by number")
        check(logits(s, "/v2/models/m/versions/1/infer")[0] == 404, "v1 not served: 404")
        ok2 = {"model": "m", "version": "2", "code": "200"}
        check(s.metric("resnetd_requests_total", ok2) == 2, "v2's own series counts its two 200s")
        nets[3] = add_version(m, 3, 13, tmp)
        wait(lambda: index(s).get(("m", "3"), {}).get("state") == "READY", "v3 swapped in")
        wait(lambda: index(s).get(("m", "2"), {}).get("state") == "UNAVAILABLE", "v2 retired")
        st, got = logits(s, "/v2/models/m/infer")
        check(st == 200 and same(got, nets[3]), "after the swap: v3's logits")
        check(s.metric("resnetd_model_ready", {"model": "m", "version": "3"}) == 1, "ready gauge")
        check(s.metric("resnetd_requests_total", dict(ok2, version="3")) == 1, "v3's series")
        # v2 freed: its per-version series leave /metrics (its slot is reused)
        wait(lambda: not re.search(r'^resnetd_(requests|images)_total\{model="m",version="2"',
                                   s.metrics(), re.M), "v2's series gone")
        # a truncated version 4: v3 keeps serving
        bad = os.path.join(tmp, "bad4")
        shutil.copytree(os.path.join(m, "3"), bad)
        onnx = os.path.join(bad, "model.onnx")
        data = open(onnx, "rb").read()
        open(onnx, "wb").write(data[:len(data) // 3])
        os.utime(onnx, (time.time() - 60, time.time() - 60))  # written a while ago
        os.rename(bad, os.path.join(m, "4"))
        wait(lambda: s.metric("resnetd_model_loads_total",
                              {"model": "m", "version": "4", "result": "failure"}) == 1,
             "v4's failed load counted")
        e = index(s)[("m", "4")]
        check(e["state"] == "UNAVAILABLE" and "ONNX" in e["reason"], f"v4 {e}")
        st, got = logits(s, "/v2/models/m/infer")
        check(st == 200 and same(got, nets[3]), "v3 still serves")
        check(s.http_request("POST", "/v2/repository/models/m/unload")[0] == 400,
              "model control disabled in poll mode")
        rc = s.stop()  # retired versions freed: a sanitizer build reports no leak
        check(rc == 0, f"exit code {rc}")
    finally:
        s.stop()
    return repo, nets


def test_policies(tmp, repo, nets):
    m = os.path.join(repo, "m")
    shutil.rmtree(os.path.join(m, "4"))
    for policy, served in (({"all": {}}, [1, 2, 3]), ({"specific": {"versions": [1, 3]}}, [1, 3]),
                           ({"latest": {"num_versions": 2}}, [2, 3])):
        with open(os.path.join(m, "config.json"), "w") as f:
            json.dump({"version_policy": policy}, f)
        s = srvtest.Server(BIN, ["--model-repository", repo])
        try:
            for v in (1, 2, 3):
                st, got = logits(s, f"/v2/models/m/versions/{v}/infer")
                if v in served:
                    check(st == 200 and same(got, nets[v]), f"{policy}: v{v} answers")
                else:
                    check(st == 404, f"{policy}: v{v} is 404")
            st, got = logits(s, "/v2/models/m/infer")
            check(st == 200 and same(got, nets[max(served)]), f"{policy}: highest serves")
            st, _, meta = s.json("GET", "/v2/models/m")
            check(sorted(meta["versions"]) == sorted(str(v) for v in served), f"{meta['versions']}")
        finally:
            s.stop()
    os.unlink(os.path.join(m, "config.json"))


def test_explicit(tmp, repo, nets):
    img = srvtest.make_images(tmp, 1)[0]
    s = srvtest.Server(BIN, ["--model-repository", repo, "--model-control-mode", "explicit",
                             "--load-model", "m"])
    try:
        check(logits(s, "/v2/models/m/infer")[0] == 200, "loaded at start")
        st, _, _ = s.http_request("POST", "/v2/repository/models/m/unload")
        check(st == 200, f"unload {st}")
        check(logits(s, "/v2/models/m/infer")[0] == 404, "infer after unload: 404")
        mp, ctype = srvtest.multipart([("a.png", open(img, "rb").read())])
        st, _, _ = s.http_request("POST", "/v1/models/m/classify", mp, {"Content-Type": ctype})
        check(st == 404, f"classify after unload: {st}")
        check(index(s)[("m", "3")]["state"] == "UNAVAILABLE", "index after unload")
        check(s.http_request("POST", "/v2/repository/models/nope/load")[0] == 404, "unknown: 404")
        st, _, _ = s.http_request("POST", "/v2/repository/models/m/load", b'{"parameters":{}}')
        check(st == 200, f"load {st}")
        st, got = logits(s, "/v2/models/m/infer")
        check(st == 200 and same(got, nets[3]), "after load: v3's logits")
        st, _, _ = s.http_request("POST", "/v1/models/m/versions/3/classify", mp,
                                  {"Content-Type": ctype})
        check(st == 200, f"versioned classify {st}")
        for _ in range(5):  # unload/load cycles: nothing leaks (sanitizer builds)
            check(s.http_request("POST", "/v2/repository/models/m/unload")[0] == 200, "unload")
            check(s.http_request("POST", "/v2/repository/models/m/load")[0] == 200, "load")
        check(same(logits(s, "/v2/models/m/infer")[1], nets[3]), "after the cycles")
        rc = s.stop()
        check(rc == 0, f"exit code {rc}")
    finally:
        s.stop()
    s = srvtest.Server(BIN, ["--model-repository", repo])
    try:
        check(s.http_request("POST", "/v2/repository/models/m/load")[0] == 400, "none mode: 400")
    finally:
        s.stop()


def test_startup(tmp, repo):
    bad = os.path.join(repo, "bad")
    os.makedirs(bad)
    with open(os.path.join(bad, "model.onnx"), "wb") as f:
        f.write(b"not an onnx file")
    r = subprocess.run([BIN, "serve", "--model-repository", repo, "--port", "0",
                        "--grpc-port", "-1"], capture_output=True, timeout=120)
    check(r.returncode == 1 and b"bad" in r.stderr, f"exit_on_error: {r.returncode}")
    s = srvtest.Server(BIN, ["--model-repository", repo, "--exit-on-error=false",
                             "--strict-readiness=false"])
    try:
        check(logits(s, "/v2/models/m/infer")[0] == 200, "the good model serves")
        e = index(s)[("bad", "1")]
        check(e["state"] == "UNAVAILABLE" and "ONNX" in e["reason"], f"bad: {e}")
        check(s.http_request("GET", "/v2/models/bad/ready")[0] == 404, "bad model not ready")
    finally:
        s.stop()
    # strict readiness: never ready while a wanted model is not (checked on the
    # running process, so the probe of srvtest.Server is not used)
    p = subprocess.Popen([BIN, "serve", "--model-repository", repo, "--port", "0",
                          "--grpc-port", "-1", "--exit-on-error=false"],
                         stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in p.stderr:
            if '"listening"' in line:
                port = int(json.loads(line)["detail"].rsplit(":", 1)[1])
            if '"ready"' in line:
                break
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/readyz")
        r = c.getresponse()
        body = r.read()
        check(r.status == 503 and b"bad" in body, f"strict readiness: {r.status} {body!r}")
    finally:
        p.terminate()
        p.wait(timeout=60)


def main():
    with tempfile.TemporaryDirectory(prefix="registry-") as tmp:
        repo, nets = test_poll(tmp)
        test_policies(tmp, repo, nets)
        test_explicit(tmp, repo, nets)
        test_startup(tmp, repo)
    print("ok")


if __name__ == "__main__":
    main()
