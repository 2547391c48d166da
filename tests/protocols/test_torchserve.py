"""TorchServe-compatible inference API against the real `resnetd serve`:
GET /ping, POST/PUT /predictions/{m} with a raw body or multipart field
"data" (sent with curl as TorchServe's docs do, and with http.client), top-5
{"label": probability} equal to /v1's and to torch + torchvision/PIL, and
TorchServe-shaped errors. usage: test_torchserve.py RESNETD_BINARY"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptest  # noqa: E402
from ptest import check  # noqa: E402


def curl(*args):
    r = subprocess.run(["curl", "-sS", "--max-time", "60", "-w", "\n%{http_code}"] + list(args),
                       check=True, capture_output=True)
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code), json.loads(body)


def pairs(body):
    """The response object as an ordered list of (label, probability)."""
    return list(json.loads(body, object_pairs_hook=lambda kv: kv))


def main():
    binary = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="proto-ts-") as tmp:
        models = ptest.export_models(tmp)
        srv = ptest.Server(binary, ["--model", models["gray"][0], "--model", models["rgb"][0]])
        with srv.session():
            code, j = curl(srv.url + "/ping")
            check(code == 200 and j == {"status": "Healthy"}, f"/ping {code} {j}")
            checked = 0
            for name in ("gray", "rgb"):
                _, net, inp = models[name]
                for i, fmt in enumerate(["jpg", "png", "webp"]):
                    data = ptest.make_image(10 + i, fmt)
                    path = os.path.join(tmp, f"img{i}.{fmt}")
                    with open(path, "wb") as f:
                        f.write(data)
                    s, _, v1 = srv.json("POST", f"/v1/models/{name}/classify?top_k=5", data)
                    check(s == 200, f"/v1 {s}")
                    want = [(p["label"], p["probability"]) for p in v1["predictions"]]
                    # raw body (POST), curl -T (PUT), multipart field "data", versioned path
                    s, h, b = srv.request("POST", f"/predictions/{name}", data)
                    check(s == 200 and h["content-type"] == "application/json", f"{s} {b}")
                    got = pairs(b)
                    check(got == want, f"{name} {fmt}: {got} vs /v1 {want}")
                    code, j = curl("-T", path, srv.url + f"/predictions/{name}")
                    check(code == 200 and list(j.items()) == want, f"curl -T {code} {j}")
                    code, j = curl("-X", "POST", srv.url + f"/predictions/{name}/1.0", "-F",
                                   f"data=@{path}")
                    check(code == 200 and list(j.items()) == want, f"curl -F {code} {j}")
                    # independent reference: torchvision/PIL + torch, softmax, top 5
                    t = ptest.torch_reference(net, inp, data)
                    p = np.exp(t - t.max())
                    p /= p.sum()
                    order = np.argsort(-p, kind="stable")[:5]
                    labels = [ptest.GRAY_LABELS[k] if name == "gray" else str(k) for k in order]
                    check([g[0] for g in got] == labels, f"{name} {fmt}: {got} vs torch {labels}")
                    check(np.allclose([g[1] for g in got], p[order], atol=2e-4),
                          f"probabilities {got} vs torch {p[order]}")
                    checked += 1
            # errors, TorchServe's shape
            code, j = curl("-X", "POST", "--data-binary", "@" + path, srv.url + "/predictions/nope")
            check(code == 404 and j["code"] == 404 and j["type"] == "ModelNotFoundException" and
                  "nope" in j["message"], f"unknown model {code} {j}")
            code, j = curl("-X", "POST", "--data-binary", "not an image",
                           srv.url + "/predictions/gray")
            check(code == 415 and j["code"] == 415 and j["message"], f"not an image {code} {j}")
            code, j = curl("-X", "POST", "--data-binary", "@" + path,
                           srv.url + "/predictions/gray/9.9")
            check(code == 404 and "version" in j["message"], f"bad version {code} {j}")
            code, j = curl(srv.url + "/predictions/gray")
            check(code == 405 and j["code"] == 405, f"GET predictions {code} {j}")
            code, j = curl("-X", "POST", "-F", "other=plain text", srv.url + "/predictions/gray")
            check(code == 400 and "data" in j["message"], f"multipart without file {code} {j}")
            n = srv.metric("resnetd_images_total", {"model": "gray"})
            check(n >= 9, f"TorchServe requests count in resnetd_images_total: {n}")
        rc = srv.rc
        check(rc == 0, f"server exit code {rc}")
    print(f"torchserve ok: {checked} images agree with /v1 and torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
