"""POST /v1/models/{m}/explain end to end: the real `resnetd serve` on
127.0.0.1, real image bytes, class activation maps checked against PyTorch
(cam_reference.py: a forward hook on the torch module the ONNX file was
exported from, or the bundled model's ONNX graph evaluated in torch) with
torchvision + PIL preprocessing.

  small       a gray CNN (srvtest), a BGR CNN, the bundled fashion-mnist model
              (when in the tree): JSON map cosine >= 0.9999, default class =
              top-1, probability = softmax, label; ?class=K; the PNG decodes at
              the crop size and matches the reference picture (the map upsampled
              bilinearly, jet, blended over the crop; BGR drawn as RGB, gray as
              gray); multipart with one file; the errors (bad class, bad
              format, a model without GAP -> linear, 405, 404, two files, empty
              and non-image bodies) and nothing run for them; concurrent
              explain and classify requests sharing batches (each map is its
              image's); the budget: a PNG whose picture does not fit
              max_inflight_bytes is 503 over_budget while a classify of the same
              image is answered, and every reserved byte comes back; the
              bundled model quantized to int8: same class, map cosine >= 0.99 to
              the fp32 model's.
  resnet18    torchvision ResNet-18 / ResNet-50 (random weights, BN statistics
  resnet50    from data: tests/engine/models.py, cached in CACHE_DIR), ImageNet
              preprocessing: 7x7 maps (default class and two others) and the
              224x224 PNG against PyTorch.

usage: test_explain.py RESNETD_BINARY MODE [CACHE_DIR]"""

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "engine"))
import cam_reference as ref  # noqa: E402
import srvtest  # noqa: E402
from srvtest import check  # noqa: E402

COS_MIN = 0.9999
INT8_COS_MIN = 0.99  # int8 features and weights against the fp32 model's map


def export(net, shape, d, cfg):
    os.makedirs(d, exist_ok=True)
    torch.onnx.export(net, torch.zeros(*shape), os.path.join(d, "model.onnx"),
                      input_names=["input"], output_names=["logits"], opset_version=13,
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    return d


def bgr_model(tmp):
    """3x32x32 BGR input (resize 36, crop 32), 7 classes, no labels: 16x16 maps."""
    torch.manual_seed(3)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 12, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(12, 7)).eval()
    inp = {"color": "bgr", "resize": 36, "crop": 32, "scale": 255.0,
           "mean": [0.406, 0.456, 0.485], "std": [0.225, 0.224, 0.229]}
    d = export(net, (1, 3, 32, 32), os.path.join(tmp, "bgr"),
               {"name": "bgr", "input": inp, "max_batch": 4})
    return d, net, inp


def nogap_model(tmp):
    """Conv -> ReLU -> Flatten -> Linear: no global average pooling, no CAM."""
    torch.manual_seed(4)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 28 * 28, 10)).eval()
    inp = {"color": "gray", "resize": 28, "crop": 28, "scale": 255.0, "mean": [0.5],
           "std": [0.5]}
    return export(net, (1, 1, 28, 28), os.path.join(tmp, "nogap"),
                  {"name": "nogap", "input": inp, "max_batch": 2})


def twofc_model(tmp):
    """GAP -> Linear -> ReLU -> Linear: pooled, but no single linear classifier."""
    torch.manual_seed(8)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 6), torch.nn.ReLU(),
                              torch.nn.Linear(6, 10)).eval()
    inp = {"color": "gray", "resize": 28, "crop": 28, "scale": 255.0, "mean": [0.5],
           "std": [0.5]}
    return export(net, (1, 1, 28, 28), os.path.join(tmp, "twofc"),
                  {"name": "twofc", "input": inp, "max_batch": 2})


def preprocess(data, inp):
    """torchvision + PIL: (tensor [1,C,H,W] in the model's channel order, the
    crop as RGB uint8 [H,W,3] -- what the PNG is drawn over)."""
    gray = inp["color"] == "gray"
    im = Image.open(io.BytesIO(data)).convert("L" if gray else "RGB")
    crop = T.CenterCrop(inp["crop"])(T.Resize(inp["resize"])(im))
    x = T.ToTensor()(crop)
    if inp["color"] == "bgr":
        x = x.flip(0)
    x = T.Normalize(inp["mean"][:x.shape[0]], inp["std"][:x.shape[0]])(x)
    rgb = np.asarray(crop.convert("RGB"), dtype=np.uint8)
    return x[None], rgb


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def explain(srv, model, data, query="", headers=None):
    return srv.request("POST", f"/v1/models/{model}/explain{query}", data, headers)


def check_json(srv, model, data, want, labels, what, query=""):
    """want = (logits, k, map): the answer's class, label, probability, map."""
    logits, k, cam = want
    s, h, b = explain(srv, model, data, query)
    check(s == 200 and h["content-type"] == "application/json", f"{what}: {s} {b[:300]!r}")
    j = json.loads(b)
    check(j["model"] == model and j["class"] == k, f"{what}: class {j['class']} vs torch's {k}")
    check(j["label"] == (labels[k] if labels else str(k)), f"{what}: label {j['label']!r}")
    p = softmax(logits)[k]
    check(abs(j["probability"] - p) < 1e-4 + 1e-4 * p, f"{what}: p {j['probability']} vs {p}")
    m = j["map"]
    check((m["height"], m["width"]) == cam.shape and len(m["values"]) == cam.size,
          f"{what}: map {m['height']}x{m['width']} vs {cam.shape}")
    got = np.array(m["values"], dtype=np.float64).reshape(cam.shape)
    check(got.min() == 0 and got.max() == 1, f"{what}: scaled to 0..1: {got.min()}..{got.max()}")
    cos = ref.cosine(got, cam)
    check(cos >= COS_MIN, f"{what}: cosine {cos:.6f} < {COS_MIN}\n{got}\n{cam}")
    check(h["x-class"] == str(k), f"{what}: X-Class {h.get('x-class')}")
    return cos


def check_png(srv, model, data, want_cam, crop_rgb, what, query=""):
    s, h, b = explain(srv, model, data, "?format=png" + query)
    check(s == 200 and h["content-type"] == "image/png", f"{what}: {s} {b[:200]!r}")
    im = Image.open(io.BytesIO(b))
    H, W = crop_rgb.shape[:2]
    check(im.format == "PNG" and im.mode == "RGB" and im.size == (W, H),
          f"{what}: {im.format} {im.mode} {im.size}, want RGB {W}x{H}")
    got = np.asarray(im, dtype=np.int16)
    exp = ref.picture(crop_rgb, want_cam).astype(np.int16)
    diff = np.abs(got - exp)
    # the map differs from torch's in the 6th digit: a colour or the blend
    # may round the other way
    check(diff.max() <= 2 and diff.mean() < 0.05,
          f"{what}: PNG vs reference: max {diff.max()}, mean {diff.mean():.4f}")
    return diff.max()


def gauge(srv, name):
    for line in srv.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def is_error(resp, status, code, what, contains=()):
    s, h, b = resp
    check(s == status, f"{what}: {s} != {status}: {b[:300]!r}")
    e = json.loads(b)["error"]
    check(e["code"] == code, f"{what}: code {e['code']} != {code}")
    for c in contains:
        check(c in e["message"], f"{what}: {c!r} not in {e['message']!r}")
    return e["message"]


def test_small(binary, tmp):
    tiny_dir, tiny = srvtest.export_model(tmp, "tiny")
    tiny_in = {"color": "gray", "resize": 28, "crop": 28, "mean": [0.5], "std": [0.5]}
    bgr_dir, bgr, bgr_in = bgr_model(tmp)
    nogap_dir = nogap_model(tmp)
    twofc_dir = twofc_model(tmp)
    fm = os.path.join(SRC, "models", "fashion-mnist")
    has_fm = os.path.isfile(os.path.join(fm, "model.onnx"))
    args = ["--model", tiny_dir, "--model", bgr_dir, "--model", nogap_dir, "--model", twofc_dir]
    if has_fm:
        args += ["--model", fm]
    images = srvtest.make_images(tmp, 4)
    srv = srvtest.Server(binary, args)
    try:
        cosines = []
        for i, path in enumerate(images):
            data = open(path, "rb").read()
            # gray tiny model: hook on the ReLU that feeds the pooling
            x, crop = preprocess(data, tiny_in)
            want = ref.torch_cam(tiny, tiny[-4], tiny[-1], x)
            cosines.append(check_json(srv, "tiny", data, want, srvtest.LABELS, f"tiny img{i}"))
            k = (want[1] + 3) % 10
            w2 = ref.torch_cam(tiny, tiny[-4], tiny[-1], x, k)
            cosines.append(check_json(srv, "tiny", data, w2, srvtest.LABELS,
                                      f"tiny img{i} class {k}", f"?class={k}"))
            check_png(srv, "tiny", data, w2[2], crop, f"tiny png img{i}", f"&class={k}")
            # BGR model: the tensor is BGR, the picture RGB
            x, crop = preprocess(data, bgr_in)
            want = ref.torch_cam(bgr, bgr[-4], bgr[-1], x)
            cosines.append(check_json(srv, "bgr", data, want, None, f"bgr img{i}"))
            check_png(srv, "bgr", data, want[2], crop, f"bgr png img{i}")
        if has_fm:
            labels = open(os.path.join(fm, "labels.txt")).read().splitlines()
            fm_in = json.load(open(os.path.join(fm, "config.json")))["input"]
            ex = os.path.join(SRC, "examples")
            for name in sorted(f for f in os.listdir(ex) if f.endswith(".png")):
                data = open(os.path.join(ex, name), "rb").read()
                x, crop = preprocess(data, fm_in)
                want = ref.onnx_cam(os.path.join(fm, "model.onnx"), x)
                cosines.append(check_json(srv, "fashion-mnist", data, want, labels,
                                          f"fashion-mnist {name}"))
                check_png(srv, "fashion-mnist", data, want[2], crop, f"fashion-mnist png {name}")
                k = (want[1] + 5) % 10
                cosines.append(check_json(srv, "fashion-mnist", data,
                                          ref.onnx_cam(os.path.join(fm, "model.onnx"), x, k),
                                          labels, f"fashion-mnist {name} class {k}",
                                          f"?class={k}&format=json"))
        # multipart with one file: the same answer as the raw body
        data = open(images[0], "rb").read()
        body, ct = srvtest.multipart([("a.png", data)])
        s, _, b1 = explain(srv, "tiny", body, "", {"Content-Type": ct})
        s2, _, b2 = explain(srv, "tiny", data)
        check(s == 200 and json.loads(b1) == json.loads(b2), f"multipart one file: {s} {b1[:200]}")

        # errors, and no image runs for them
        before = srv.metric("resnetd_images_total", {"model": "tiny"})
        for q in ["-1", "10", "1.5", "abc", "", "1e1", "0x1", "%201", "%2B1",
                  "99999999999999999999"]:
            is_error(explain(srv, "tiny", data, f"?class={q}"), 400, "invalid_class",
                     f"class={q!r}", ["[0, 9]"])
        is_error(explain(srv, "bgr", data, "?class=7"), 400, "invalid_class", "bgr class 7",
                 ["[0, 6]"])
        for q in ["xml", "", "PNG", "json,png"]:
            is_error(explain(srv, "tiny", data, f"?format={q}"), 400, "invalid_format",
                     f"format={q!r}", ["json or png"])
        msg = is_error(explain(srv, "nogap", data), 400, "cam_unsupported", "no GAP",
                       ["'nogap'", "global average pool"])
        is_error(explain(srv, "nogap", data, "?format=png"), 400, "cam_unsupported", "no GAP png")
        msg2 = is_error(explain(srv, "twofc", data), 400, "cam_unsupported", "two linear layers",
                        ["'twofc'"])
        s, _, b = srv.request("POST", "/v1/models/twofc/classify", data)
        check(s == 200, f"twofc still classifies: {s}")
        s, h, b = srv.request("GET", "/v1/models/tiny/explain")
        check(s == 405 and h.get("allow") == "POST", f"GET: {s} {h.get('allow')}")
        is_error(explain(srv, "nope", data), 404, "model_not_found", "unknown model")
        body, ct = srvtest.multipart([("a.png", data), ("b.png", data)])
        is_error(explain(srv, "tiny", body, "", {"Content-Type": ct}), 400, "one_image",
                 "two files", ["exactly one image"])
        is_error(explain(srv, "tiny", b""), 400, "empty_image", "empty body")
        is_error(explain(srv, "tiny", b"hello, not an image"), 415, "unsupported_image",
                 "not an image")
        after = srv.metric("resnetd_images_total", {"model": "tiny"})
        check(after == before, f"refused requests ran images: {before} -> {after}")
        s, _, b = srv.request("GET", "/healthz")
        check(s == 200, "healthy after the errors")
        # every reservation (tensors, tap, map, picture, answer) was returned
        # (a request returns them when it completes, just after its answer is out)
        deadline = time.monotonic() + 10
        while True:
            held = gauge(srv, "resnetd_inflight_bytes")
            if held == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        check(held == 0, f"{held} bytes still reserved after every request was answered")
        check(gauge(srv, "resnetd_inflight_bytes_peak") > 0, "the budget saw the requests")
        print(f"explain small: {len(cosines)} maps, min cosine {min(cosines):.7f}; "
              f"no-GAP message: {msg}; two linear layers: {msg2}")
    finally:
        rc = srv.stop()
        srv.cleanup()
    check(rc == 0, f"server exit code {rc}")


def test_concurrent(binary, tmp):
    """Explain and classify at once from 8 clients on a model that batches:
    the features tap of each image goes to its own request."""
    from concurrent.futures import ThreadPoolExecutor
    d, net = srvtest.export_model(tmp, "conc", seed=5)
    inp = {"color": "gray", "resize": 28, "crop": 28, "mean": [0.5], "std": [0.5]}
    images = [open(p, "rb").read() for p in srvtest.make_images(tmp, 6)]
    want = {}
    for i, data in enumerate(images):
        x, _ = preprocess(data, inp)
        for k in range(10):
            want[(i, k)] = ref.torch_cam(net, net[-4], net[-1], x, k)
        want[(i, None)] = ref.torch_cam(net, net[-4], net[-1], x)
    srv = srvtest.Server(binary, ["--model", d, "--max-batch", "8", "--batch-timeout-us", "20000"])
    try:
        def client(c):
            out = []
            conn = srv.conn()
            for r in range(12):
                i, k = (c + r) % len(images), [None, (c + r) % 10, (c + r + 4) % 10][r % 3]
                if (c + r) % 4 == 3:  # a classify in the same batches
                    s, _, b = srv.request("POST", "/v1/models/conc/classify", images[i], conn=conn)
                    check(s == 200, f"classify {s} {b[:200]!r}")
                    continue
                q = "" if k is None else f"?class={k}"
                s, _, b = srv.request("POST", f"/v1/models/conc/explain{q}", images[i], conn=conn)
                out.append((i, k, s, b))
            conn.close()
            return out
        with ThreadPoolExecutor(8) as ex:
            results = [x for f in [ex.submit(client, c) for c in range(8)] for x in f.result()]
        worst = 1.0
        for i, k, s, b in results:
            check(s == 200, f"explain image {i} class {k}: {s} {b[:200]!r}")
            j = json.loads(b)
            logits, kk, cam = want[(i, k)]
            check(j["class"] == kk, f"image {i}: class {j['class']} vs {kk}")
            cos = ref.cosine(np.array(j["map"]["values"]).reshape(cam.shape), cam)
            check(cos >= COS_MIN, f"image {i} class {kk} in a shared batch: cosine {cos}")
            worst = min(worst, cos)
        m = srv.metrics().splitlines()

        def sample(name):
            return [float(x.split()[-1]) for x in m
                    if x.startswith(name + "{") and 'model="conc"' in x][0]
        mean = sample("resnetd_batch_size_sum") / sample("resnetd_batch_size_count")
        print(f"explain concurrent: {len(results)} maps among classifies from 8 clients, "
              f"min cosine {worst:.7f}, mean batch {mean:.2f}")
    finally:
        rc = srv.stop()
        srv.cleanup()
    check(rc == 0, f"server exit code {rc}")


def test_budget(binary, tmp):
    """400x400 gray input, a 400x400 PNG, max_inflight_bytes = 2 MiB: a
    classify's tensor (640 KB) and decode (< 1 MiB) fit; an explain PNG also
    holds the features tap (160 KB), its picture and the encoder's bound
    (~1 MB), and does not."""
    torch.manual_seed(6)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 4, stride=4), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 3)).eval()
    inp = {"color": "gray", "resize": 400, "crop": 400, "scale": 255.0, "mean": [0.5],
           "std": [0.5]}
    d = export(net, (1, 1, 400, 400), os.path.join(tmp, "big"),
               {"name": "big", "input": inp, "max_batch": 1})
    y, x = np.mgrid[0:400, 0:400]
    b = io.BytesIO()
    Image.fromarray(((x + y) % 256).astype(np.uint8)).save(b, "PNG")
    data = b.getvalue()
    srv = srvtest.Server(binary, ["--model", d, "--max-inflight-bytes", str(2 << 20)])
    try:
        s, _, body = srv.request("POST", "/v1/models/big/classify", data)
        check(s == 200, f"classify within the budget: {s} {body[:200]!r}")
        s, h, body = explain(srv, "big", data, "?format=png")
        is_error((s, h, body), 503, "over_budget", "PNG over the budget", ["max_inflight_bytes"])
        check(h.get("retry-after") == "1", "Retry-After on over_budget")
        deadline = time.monotonic() + 10
        while gauge(srv, "resnetd_inflight_bytes") and time.monotonic() < deadline:
            time.sleep(0.05)
        check(gauge(srv, "resnetd_inflight_bytes") == 0, "budget returned")
        print("explain budget: PNG 503 over_budget at 2 MiB while classify answers")
    finally:
        rc = srv.stop()
        srv.cleanup()
    check(rc == 0, f"server exit code {rc}")


def test_int8(binary, tmp):
    """The bundled model quantized to int8 (`resnetd quantize`, the examples
    as calibration): the CAM comes from its int8 features and classifier and
    stays close to the fp32 model's in PyTorch."""
    fm = os.path.join(SRC, "models", "fashion-mnist")
    if not os.path.isfile(os.path.join(fm, "model.onnx")):
        print("explain int8: skipped (no models/fashion-mnist)")
        return
    ex = os.path.join(SRC, "examples")
    cal = os.path.join(tmp, "cal")
    os.makedirs(cal)
    for f in os.listdir(ex):
        if f.endswith(".png"):
            shutil.copy(os.path.join(ex, f), cal)
    q = os.path.join(tmp, "fm8")
    subprocess.run([binary, "quantize", "--model", fm, "--calibration", cal, "--out", q],
                   check=True, stdout=subprocess.DEVNULL)
    fm_in = json.load(open(os.path.join(fm, "config.json")))["input"]
    srv = srvtest.Server(binary, ["--model", q])
    try:
        worst = 1.0
        for name in sorted(os.listdir(cal)):
            data = open(os.path.join(cal, name), "rb").read()
            x, _ = preprocess(data, fm_in)
            logits, k, cam = ref.onnx_cam(os.path.join(fm, "model.onnx"), x)
            s, _, b = explain(srv, "fm8", data)
            check(s == 200, f"int8 {name}: {s} {b[:200]!r}")
            j = json.loads(b)
            check(j["class"] == k, f"int8 {name}: class {j['class']} vs fp32 {k}")
            cos = ref.cosine(np.array(j["map"]["values"]).reshape(cam.shape), cam)
            check(cos >= INT8_COS_MIN, f"int8 {name}: cosine {cos} to the fp32 map")
            worst = min(worst, cos)
        print(f"explain int8: {len(os.listdir(cal))} maps, min cosine to fp32 {worst:.5f}")
    finally:
        rc = srv.stop()
        srv.cleanup()
    check(rc == 0, f"server exit code {rc}")


def photo(i, w, h, fmt):
    """A photo-like test image: smooth colour fields, shapes, noise."""
    rng = np.random.default_rng(50 + i)
    low = rng.uniform(0, 255, size=(6, 8, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(low).resize((w, h), Image.BICUBIC), dtype=np.float64)
    y, x = np.mgrid[0:h, 0:w]
    for _ in range(4):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(15, 60)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 8, img.shape)
    b = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(b, fmt, quality=90)
    return b.getvalue()


def test_resnet(binary, tmp, name, cache):
    import models  # tests/engine/models.py: the same builds the engine tests use
    onnx_path = models.export(name, 13, cache)
    net = models.build(name)
    net.load_state_dict(torch.load(os.path.join(cache, models.cache_key(name, 0)
                                                .replace(".onnx", ".pt"))))
    net.eval()
    d = os.path.join(tmp, name)
    os.makedirs(d)
    shutil.copy(onnx_path, os.path.join(d, "model.onnx"))  # ImageNet defaults, labels 0..N-1
    inp = {"color": "rgb", "resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406],
           "std": [0.229, 0.224, 0.225]}
    srv = srvtest.Server(binary, ["--model", d, "--max-batch", "2"], ready_timeout=600)
    try:
        cosines, diffs = [], []
        for i, (w, h, fmt) in enumerate([(320, 240, "JPEG"), (250, 300, "PNG")]):
            data = photo(i, w, h, fmt)
            x, crop = preprocess(data, inp)
            want = ref.torch_cam(net, net.layer4, net.fc, x)
            cosines.append(check_json(srv, name, data, want, None, f"{name} img{i}"))
            diffs.append(check_png(srv, name, data, want[2], crop, f"{name} png img{i}"))
            for k in [int(np.argsort(want[0])[-2]), (want[1] + 500) % 1000]:
                w2 = ref.torch_cam(net, net.layer4, net.fc, x, k)
                cosines.append(check_json(srv, name, data, w2, None, f"{name} img{i} class {k}",
                                          f"?class={k}"))
        print(f"explain {name}: {len(cosines)} 7x7 maps, min cosine {min(cosines):.7f}; "
              f"224x224 PNGs within {max(diffs)} of the reference")
    finally:
        rc = srv.stop()
        srv.cleanup()
    check(rc == 0, f"server exit code {rc}")


def main():
    binary, mode = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="explain-") as tmp:
        if mode == "small":
            test_small(binary, tmp)
            test_concurrent(binary, tmp)
            test_budget(binary, tmp)
            test_int8(binary, tmp)
        elif mode in ("resnet18", "resnet50"):
            cache = sys.argv[3] if len(sys.argv) > 3 else os.path.join(tmp, "cache")
            test_resnet(binary, tmp, mode, cache)
        else:
            raise SystemExit(f"unknown mode {mode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
