"""Embeddings and internal tensors ("taps", issue 16) over real HTTP, checked
against PyTorch forward hooks.

    test_embed.py RESNETD fmnist            the bundled model (models/fashion-mnist)
    test_embed.py RESNETD resnet50 CACHE    torchvision ResNet-50, random weights
                                            (tests/engine/models.py, cached in CACHE)
    test_embed.py RESNETD ort CACHE         every listed tensor of four models vs ONNX Runtime

fmnist: the shipped ONNX file's folded weights loaded into the training
script's module (tools/train_fashion_mnist.py, BatchNorm replaced by the
folded conv bias), so hooks on it give the ONNX tensors; /v1/embed raw and
multipart (default embedding, two stage outputs, pool avg/max/none,
normalize=l2), the metadata of /v1/models and /v2/models/{m}, taps as /v2
infer outputs (JSON and binary), every error (unknown tensor, bad pool,
bad normalize, the answer bound, two taps in one v2 request), concurrent
mixed requests sharing batches, and the same model quantized to int8.

resnet50: /v2 infer with FP32 inputs asks for the default embedding and the
outputs of layer2 and layer3 (the ONNX tensors those modules produce, found
in the exported graph as the last node output of each module's scope), each
within 1e-4 relative error of the hooks, then concurrent mixed requests.

ort: every tensor the metadata lists, of the bundled model, ResNet-50 (BN
folded by the exporter), a pre-activation ResNet-18 (BN after the residual
Add, not foldable) and a CIFAR ResNet-20 at opset 11 (BN folded by the
engine), asked for through /v2 and compared with ONNX Runtime's value of
the same ONNX name (tests/server/ort_outputs.js): the fused, aliased and
in-place tensors all have their ONNX meaning.
"""

import concurrent.futures as cf
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, HERE)
import srvtest  # noqa: E402
from srvtest import check  # noqa: E402

TOL = 1e-4


def rel_err(got, want):
    got = np.asarray(got, dtype=np.float64).ravel()
    want = np.asarray(want, dtype=np.float64).ravel()
    check(got.shape == want.shape, f"shape {got.shape} != {want.shape}")
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-12))


def close(got, want, what, tol=TOL):
    e = rel_err(got, want)
    check(e <= tol, f"{what}: relative error {e:.3g} > {tol}")
    return e


def last_output_of_scope(model_path, scope):
    """The output of the last node (graph order) whose name is inside scope
    ("/layer2/"): the tensor the module produces."""
    g = onnx.load(model_path).graph
    outs = [n.output[0] for n in g.node if n.name.startswith(scope)]
    check(outs, f"no node in scope {scope}")
    return outs[-1]


def v2_infer(srv, model, x, outputs, binary=True):
    """POST /v2/models/{model}/infer with FP32 x (binary input); returns
    (status, {output name: array}) or (status, error JSON)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    hdr = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                       "parameters": {"binary_data_size": x.nbytes}}],
           "outputs": [{"name": o, "parameters": {"binary_data": binary}} for o in outputs]}
    j = json.dumps(hdr).encode()
    s, h, body = srv.request("POST", f"/v2/models/{model}/infer", j + x.tobytes(),
                             {"Inference-Header-Content-Length": str(len(j)),
                              "Content-Type": "application/octet-stream"})
    if s != 200:
        return s, json.loads(body)
    hl = int(h.get("inference-header-content-length", len(body)))
    meta = json.loads(body[:hl])
    res, off = {}, hl
    for o in meta["outputs"]:
        shape = o["shape"]
        if "parameters" in o and "binary_data_size" in o["parameters"]:
            n = o["parameters"]["binary_data_size"]
            res[o["name"]] = np.frombuffer(body[off:off + n], dtype=np.float32).reshape(shape)
            off += n
        else:
            res[o["name"]] = np.asarray(o["data"], dtype=np.float32).reshape(shape)
    return s, res


def pool(t, how):
    """PyTorch-side pooling of one image's [C, ...] tensor."""
    t = np.asarray(t, dtype=np.float64)
    if how == "none" or t.ndim == 1:
        return t.ravel()
    flat = t.reshape(t.shape[0], -1)
    return flat.mean(axis=1) if how == "avg" else flat.max(axis=1)


# ---------------------------------------------------------------- fashion-mnist

def fmnist_module(model_path):
    """The training script's ResNetFM with the ONNX file's weights: every
    Conv gets the file's (BN-folded) weight and bias and its BatchNorm
    becomes Identity, so the module computes the ONNX graph's tensors."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import train_fashion_mnist as tfm
    net = tfm.ResNetFM().eval()
    g = onnx.load(model_path).graph
    init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    mods = dict(net.named_modules())
    for n in g.node:
        if n.op_type == "Conv":
            # "/stages/stages.1/shortcut/shortcut.0/Conv" -> "stages.1.shortcut.0"
            parts = []
            for c in n.name.strip("/").split("/")[:-1]:
                if parts and c.startswith(parts[-1] + "."):
                    parts[-1] = c
                else:
                    parts.append(c)
            conv = mods[".".join(parts)]
            conv.weight = nn.Parameter(torch.from_numpy(init[n.input[1]].copy()))
            conv.bias = nn.Parameter(torch.from_numpy(init[n.input[2]].copy()))
    for name, m in list(net.named_modules()):
        for cname, c in list(m.named_children()):
            if isinstance(c, nn.BatchNorm2d):
                setattr(m, cname, nn.Identity())
    net.fc.weight = nn.Parameter(torch.from_numpy(init["fc.weight"].copy()))
    net.fc.bias = nn.Parameter(torch.from_numpy(init["fc.bias"].copy()))
    return net


def hooked(net, x, modules):
    """Runs net on x with forward hooks on modules (name -> module); returns
    (logits, {name: output}) and the fc's input under "fc_in"."""
    got = {}
    hs = [m.register_forward_hook(lambda mod, i, o, k=k: got.__setitem__(k, o.detach().numpy()))
          for k, m in modules.items()]
    hs.append(net.fc.register_forward_pre_hook(
        lambda mod, i: got.__setitem__("fc_in", i[0].detach().numpy())))
    with torch.no_grad():
        logits = net(torch.from_numpy(x)).numpy()
    for h in hs:
        h.remove()
    return logits, got


def gray_images(n, seed=3):
    rng = np.random.default_rng(seed)
    imgs = []
    for i in range(n):
        yy, xx = np.mgrid[0:28, 0:28]
        base = 127 + 100 * np.sin(xx / (2 + i) + yy / (3 + i))
        a = np.clip(base + rng.normal(scale=30, size=(28, 28)), 0, 255).astype(np.uint8)
        imgs.append(a)
    return imgs


def png(a):
    import io
    b = io.BytesIO()
    Image.fromarray(a, "L").save(b, "PNG")
    return b.getvalue()


def fmnist_input(a):
    """config.json's preprocessing of a 28x28 gray image (no resize at 28)."""
    return ((a.astype(np.float32) / 255.0 - 0.286041) / 0.353024).reshape(1, 1, 28, 28)


def test_fmnist(binary):
    model_dir = os.path.join(ROOT, "models", "fashion-mnist")
    onnx_path = os.path.join(model_dir, "model.onnx")
    net = fmnist_module(onnx_path)
    names = {"stage0": "/stages/stages.0/Relu_1_output_0",
             "stage1": "/stages/stages.1/Relu_1_output_0",
             "stage2": "/stages/stages.2/Relu_1_output_0"}
    mods = {"stage0": net.stages[0], "stage1": net.stages[1], "stage2": net.stages[2]}
    imgs = gray_images(6)
    refs = [hooked(net, fmnist_input(a), mods) for a in imgs]

    srv = srvtest.Server(binary, ["--model", model_dir, "--batch-timeout-us", "50000",
                                  "--workers", "1"])
    try:
        # metadata: /v1/models and /v2/models/{m}
        s, _, j = srv.json("GET", "/v1/models")
        check(s == 200, f"/v1/models {s}")
        m = j["models"][0]
        check(m["embedding"] == "/Flatten_output_0", f"embedding {m['embedding']}")
        tensors = {t["name"]: t["shape"] for t in m["tensors"]}
        for k, v in names.items():
            check(v in tensors, f"{v} not listed")
        check(tensors[names["stage1"]] == [64, 14, 14], f"shape {tensors[names['stage1']]}")
        check(tensors["/Flatten_output_0"] == [128], "flatten shape")
        # a tensor the plan fuses away is not listed (its ONNX meaning would be wrong)
        check("/stages/stages.0/Add_output_0" not in tensors, "fused Add listed")
        s, _, j = srv.json("GET", "/v2/models/fashion-mnist")
        check(s == 200 and j["embedding"] == "/Flatten_output_0", f"/v2 metadata {s}")
        v2t = {t["name"]: t["shape"] for t in j["tensors"]}
        check(v2t[names["stage1"]] == [-1, 64, 14, 14], f"v2 shape {v2t[names['stage1']]}")

        # the preprocessing matches: classify's top class is PyTorch's
        s, _, j = srv.json("POST", "/v1/classify?top_k=1", png(imgs[0]))
        check(s == 200 and j["predictions"][0]["index"] == int(np.argmax(refs[0][0])),
              f"classify {s} {j}")

        # raw body: default embedding = fc input (GAP output)
        worst = 0.0
        for a, (logits, got) in zip(imgs, refs):
            s, _, j = srv.json("POST", "/v1/embed", png(a))
            check(s == 200, f"embed {s} {j}")
            check(j["model"] == "fashion-mnist" and j["version"] == "1" and
                  j["tensor"] == "/Flatten_output_0" and j["dim"] == 128, f"header {j}")
            worst = max(worst, close(j["embedding"], got["fc_in"][0], "default embedding"))
        # intermediate tensors, every pooling, normalize
        for key in ("stage0", "stage1", "stage2"):
            for how in ("avg", "max", "none"):
                for norm in ("", "&normalize=l2"):
                    q = f"/v1/models/fashion-mnist/embed?tensor={names[key]}&pool={how}{norm}"
                    s, _, j = srv.json("POST", q, png(imgs[1]))
                    check(s == 200, f"{q}: {s} {j}")
                    want = pool(refs[1][1][key][0], how)
                    if norm:
                        want = want / np.linalg.norm(want)
                        check(abs(np.linalg.norm(j["embedding"]) - 1) < 1e-5, "l2 norm")
                    check(j["dim"] == want.size and j["tensor"] == names[key], f"dim {j['dim']}")
                    if how == "none":
                        check(j["shape"] == list(refs[1][1][key].shape[1:]), f"shape {j['shape']}")
                    worst = max(worst, close(j["embedding"], want, q))
        # multipart: one result per file, a bad part answered in its own entry
        files = [("a.png", png(imgs[2])), ("bad.png", b"not an image"), ("c.png", png(imgs[3]))]
        body, ct = srvtest.multipart(files)
        s, _, j = srv.json("POST", f"/v1/embed?tensor={names['stage2']}", body,
                           {"Content-Type": ct})
        check(s == 200 and len(j["results"]) == 3, f"multipart {s} {j}")
        check(j["results"][0]["filename"] == "a.png" and "error" in j["results"][1], "entries")
        worst = max(worst, close(j["results"][0]["embedding"], pool(refs[2][1]["stage2"][0], "avg"),
                                 "multipart 0"))
        worst = max(worst, close(j["results"][2]["embedding"], pool(refs[3][1]["stage2"][0], "avg"),
                                 "multipart 2"))
        print(f"fmnist /v1/embed: worst relative error {worst:.2e}")

        # errors: 400 naming the tensor, bad pool/normalize, the answer bound
        s, _, j = srv.json("POST", "/v1/embed?tensor=/no/such", png(imgs[0]))
        check(s == 400 and j["error"]["code"] == "unknown_tensor" and
              "/no/such" in j["error"]["message"], f"unknown tensor {s} {j}")
        # fused away: not offered, and said so
        s, _, j = srv.json("POST", "/v1/embed?tensor=/stages/stages.0/Add_output_0", png(imgs[0]))
        check(s == 400 and j["error"]["code"] == "unknown_tensor", f"fused {s} {j}")
        s, _, j = srv.json("POST", "/v1/embed?pool=sum", png(imgs[0]))
        check(s == 400 and j["error"]["code"] == "invalid_pool", f"pool {s} {j}")
        s, _, j = srv.json("POST", "/v1/embed?normalize=l1", png(imgs[0]))
        check(s == 400 and j["error"]["code"] == "invalid_normalize", f"normalize {s} {j}")
        # 32x28x28 floats per image: 42 images pass 2^20 floats with pool=none
        big = [("x%d.png" % i, png(imgs[0])) for i in range(42)]
        body, ct = srvtest.multipart(big)
        s, _, j = srv.json("POST", f"/v1/embed?tensor={names['stage0']}&pool=none", body,
                           {"Content-Type": ct})
        check(s == 413 and j["error"]["code"] == "answer_too_large", f"bound {s} {j}")
        # ...the same images pooled are fine
        s, _, j = srv.json("POST", f"/v1/embed?tensor={names['stage0']}", body,
                           {"Content-Type": ct})
        check(s == 200 and len(j["results"]) == 42, f"pooled many {s}")
        for r in j["results"]:
            close(r["embedding"], pool(refs[0][1]["stage0"][0], "avg"), "pooled many")

        # /v2 infer: a tap as a requested output, with the logits, JSON and binary
        x = np.concatenate([fmnist_input(a) for a in imgs[:3]])
        for bin_ in (False, True):
            s, r = v2_infer(srv, "fashion-mnist", x, ["logits", names["stage1"]], binary=bin_)
            check(s == 200, f"v2 {s} {r}")
            check(r[names["stage1"]].shape == (3, 64, 14, 14), f"v2 shape {r[names['stage1']].shape}")
            for i in range(3):
                close(r[names["stage1"]][i], refs[i][1]["stage1"][0], "v2 tap")
                close(r["logits"][i], refs[i][0][0], "v2 logits")
        s, r = v2_infer(srv, "fashion-mnist", x, ["/Flatten_output_0"])
        check(s == 200 and list(r) == ["/Flatten_output_0"], f"v2 only tap {s}")
        for i in range(3):
            close(r["/Flatten_output_0"][i], refs[i][1]["fc_in"][0], "v2 flatten")
        s, r = v2_infer(srv, "fashion-mnist", x, [names["stage1"], names["stage2"]])
        check(s == 400 and "at most one" in r["error"], f"two taps {s} {r}")
        s, r = v2_infer(srv, "fashion-mnist", x, ["/nope"])
        check(s == 400 and "/nope" in r["error"], f"v2 unknown {s} {r}")
        # the JSON bound: 2^18 floats; stage0 is 25088 per image -> 11 images pass it
        x11 = np.repeat(x[:1], 11, axis=0)
        s, r = v2_infer(srv, "fashion-mnist", x11, [names["stage0"]], binary=False)
        check(s == 413, f"v2 JSON bound {s} {r}")
        s, r = v2_infer(srv, "fashion-mnist", x11, [names["stage0"]], binary=True)
        check(s == 200, f"v2 binary under the bound {s}")

        mixed_fmnist(srv, imgs, refs, names)
        check(srv.stop() == 0, "clean exit")
    finally:
        srv.cleanup()
    test_fmnist_int8(binary, model_dir, imgs, refs, names)


def mixed_fmnist(srv, imgs, refs, names):
    """Concurrent requests of four kinds share batches; each gets its own answer."""
    kinds = []
    for i in range(48):
        k = i % 4
        a = i % len(imgs)
        kinds.append((k, a))

    def one(job):
        k, a = job
        if k == 0:
            s, _, j = srv.json("POST", "/v1/classify?top_k=1", png(imgs[a]))
            check(s == 200 and j["predictions"][0]["index"] == int(np.argmax(refs[a][0])),
                  f"mixed classify {s}")
        elif k == 1:
            s, _, j = srv.json("POST", "/v1/embed", png(imgs[a]))
            check(s == 200, f"mixed embed {s}")
            close(j["embedding"], refs[a][1]["fc_in"][0], "mixed default")
        elif k == 2:
            s, _, j = srv.json("POST", f"/v1/embed?tensor={names['stage1']}&pool=none", png(imgs[a]))
            check(s == 200, f"mixed stage1 {s}")
            close(j["embedding"], refs[a][1]["stage1"][0], "mixed stage1")
        else:
            s, r = v2_infer(srv, "fashion-mnist", fmnist_input(imgs[a]), ["logits", names["stage2"]])
            check(s == 200, f"mixed v2 {s}")
            close(r[names["stage2"]][0], refs[a][1]["stage2"][0], "mixed v2 stage2")
            close(r["logits"][0], refs[a][0][0], "mixed v2 logits")
        return k

    before = batches(srv)
    with cf.ThreadPoolExecutor(8) as ex:
        list(ex.map(one, kinds))
    after = batches(srv)
    print(f"fmnist mixed: 48 requests ran in {after[0] - before[0]:.0f} batches "
          f"({after[1] - before[1]:.0f} images)")


def batches(srv):
    """(engine runs, images) from resnetd_batch_size."""
    runs = imgs = 0.0
    for line in srv.metrics().splitlines():
        if line.startswith("resnetd_batch_size_count"):
            runs += float(line.split()[-1])
        if line.startswith("resnetd_batch_size_sum"):
            imgs += float(line.split()[-1])
    return runs, imgs


def test_fmnist_int8(binary, model_dir, imgs, refs, names):
    """The bundled model quantized (resnetd quantize): taps are offered and
    dequantized; they follow the fp32 hooks within int8's precision."""
    tmp = tempfile.mkdtemp(prefix="embed-int8-")
    try:
        cal = os.path.join(tmp, "cal")
        os.makedirs(cal)
        for i, a in enumerate(gray_images(16, seed=11)):
            with open(os.path.join(cal, "c%02d.png" % i), "wb") as f:
                f.write(png(a))
        q = os.path.join(tmp, "fm-int8")
        r = subprocess.run([binary, "quantize", "--model", model_dir, "--calibration", cal,
                            "--out", q], capture_output=True, text=True)
        check(r.returncode == 0, f"quantize: {r.stderr}")
        srv = srvtest.Server(binary, ["--model", q])
        try:
            s, _, j = srv.json("GET", "/v1/models")
            check(s == 200 and names["stage1"] in [t["name"] for t in j["models"][0]["tensors"]],
                  "int8 taps listed")
            worst = 0.0
            for a, (logits, got) in zip(imgs, refs):
                for key, want in (("fc_in", got["fc_in"][0]),
                                  (names["stage1"], pool(got["stage1"][0], "none"))):
                    qs = "" if key == "fc_in" else f"?tensor={key}&pool=none"
                    s, _, j = srv.json("POST", "/v1/embed" + qs, png(a))
                    check(s == 200, f"int8 embed {s} {j}")
                    e = np.asarray(j["embedding"]) - want
                    rel = float(np.linalg.norm(e) / np.linalg.norm(want))
                    worst = max(worst, rel)
                    check(rel < 0.05, f"int8 {key}: relative L2 error {rel:.3g}")
            print(f"fmnist int8 taps: worst relative L2 error vs fp32 PyTorch {worst:.3g}")
            check(srv.stop() == 0, "clean exit")
        finally:
            srv.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- every tap vs ONNX Runtime

def ort_all(onnx_path, names, x, tmp):
    """{name: ORT's value} for the given tensors of the model (each made a
    graph output of a copy of it) on input x."""
    m = onnx.load(onnx_path)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT,
                                                                      None))
    mp = os.path.join(tmp, "all_outputs.onnx")
    onnx.save(m, mp)
    xp = os.path.join(tmp, "x.npy")
    np.save(xp, np.ascontiguousarray(x, dtype=np.float32))
    od = os.path.join(tmp, "ort")
    os.makedirs(od, exist_ok=True)
    r = subprocess.run(["node", os.path.join(HERE, "ort_outputs.js"), mp, xp, od],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"ort_outputs: {r.stderr}")
    with open(os.path.join(od, "names.json")) as f:
        got = json.load(f)
    return {n: np.load(os.path.join(od, "%d.npy" % k)) for k, n in enumerate(got) if n}


def every_tap_vs_ort(srv, model, onnx_path, x, tmp, most=1 << 20):
    """Asks /v2 for every tensor the model lists (one per request, both
    images when the answer bound allows) and compares each with ONNX
    Runtime's value of the same name. Returns the count checked."""
    s, _, j = srv.json("GET", f"/v2/models/{model}")
    check(s == 200, f"metadata {s}")
    taps = [(t["name"], t["shape"]) for t in j["tensors"]]
    ref = ort_all(onnx_path, [n for n, _ in taps], x, tmp)
    worst, per_tap = 0.0, []
    for name, shape in taps:
        check(name in ref, f"ORT has no tensor {name}")
        per = int(np.prod(shape[1:]))
        step = len(x) if per * len(x) <= most else 1
        for i0 in range(0, len(x), step):
            s, r = v2_infer(srv, model, x[i0:i0 + step], [name])
            check(s == 200, f"v2 {name}: {s} {r}")
            check(list(r[name].shape) == [step] + shape[1:], f"{name} shape {r[name].shape}")
            # two float32 implementations summing in different orders: 2e-4 of
            # the tensor's largest value through 50 layers of ResNet-50
            e = close(r[name], ref[name][i0:i0 + step], f"{model} {name} vs ORT", tol=2e-4)
            worst = max(worst, e)
        per_tap.append(name)
    print(f"{model}: all {len(per_tap)} listed tensors match ONNX Runtime, worst relative "
          f"error {worst:.2e}")
    return len(per_tap)


def test_all_taps(binary, cache):
    tmp = tempfile.mkdtemp(prefix="embed-ort-")
    try:
        model_dir = os.path.join(ROOT, "models", "fashion-mnist")
        x = np.random.default_rng(5).normal(size=(3, 1, 28, 28)).astype(np.float32)
        srv = srvtest.Server(binary, ["--model", model_dir])
        try:
            check(every_tap_vs_ort(srv, "fashion-mnist", os.path.join(model_dir, "model.onnx"),
                                   x, tmp) >= 10, "fashion-mnist lists its stages")
            check(srv.stop() == 0, "clean exit")
        finally:
            srv.cleanup()
        sys.path.insert(0, os.path.join(ROOT, "tests", "engine"))
        import models
        for name, opset in (("resnet50", 13), ("preact_resnet18", 13), ("cifar_resnet20", 11)):
            onnx_path = models.export(name, opset, cache)
            d = os.path.join(tmp, name)
            os.makedirs(d)
            shutil.copy(onnx_path, os.path.join(d, "model.onnx"))
            size = models.input_size(name)
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump({"name": name, "input": {"color": "rgb", "resize": size, "crop": size},
                           "max_batch": 2}, f)
            x = models.images(2, size, 9)
            srv = srvtest.Server(binary, ["--model", d], ready_timeout=600)
            try:
                every_tap_vs_ort(srv, name, onnx_path, x, tmp)
                check(srv.stop() == 0, "clean exit")
            finally:
                srv.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- ResNet-50

def test_resnet50(binary, cache):
    sys.path.insert(0, os.path.join(ROOT, "tests", "engine"))
    import models
    onnx_path = models.export("resnet50", 13, cache)
    net = models.build("resnet50")
    net.load_state_dict(torch.load(os.path.join(cache, models.cache_key("resnet50", 0)
                                                .replace(".onnx", ".pt"))))
    net.eval()
    l2 = last_output_of_scope(onnx_path, "/layer2/")
    l3 = last_output_of_scope(onnx_path, "/layer3/")
    print(f"resnet50: layer2 -> {l2}, layer3 -> {l3}")
    x = models.images(4, 224, 5)
    got = {}
    hs = [net.layer2.register_forward_hook(lambda m, i, o: got.__setitem__("l2", o.numpy())),
          net.layer3.register_forward_hook(lambda m, i, o: got.__setitem__("l3", o.numpy())),
          net.avgpool.register_forward_hook(lambda m, i, o: got.__setitem__("gap", o.numpy()))]
    with torch.no_grad():
        logits = net(torch.from_numpy(x)).numpy()
    for h in hs:
        h.remove()

    tmp = tempfile.mkdtemp(prefix="embed-r50-")
    try:
        d = os.path.join(tmp, "r50")
        os.makedirs(d)
        shutil.copy(onnx_path, os.path.join(d, "model.onnx"))
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump({"name": "r50", "input": {"color": "rgb", "resize": 256, "crop": 224,
                                                "scale": 255.0, "mean": [0.485, 0.456, 0.406],
                                                "std": [0.229, 0.224, 0.225]},
                       "max_batch": 4}, f)
        srv = srvtest.Server(binary, ["--model", d, "--workers", "1",
                                      "--batch-timeout-us", "100000"], ready_timeout=600)
        try:
            s, _, j = srv.json("GET", "/v1/models")
            m = j["models"][0]
            emb = m["embedding"]
            shapes = {t["name"]: t["shape"] for t in m["tensors"]}
            check(shapes[emb] == [2048], f"embedding {emb} {shapes.get(emb)}")
            check(shapes[l2] == [512, 28, 28] and shapes[l3] == [1024, 14, 14],
                  f"shapes {shapes[l2]} {shapes[l3]}")
            worst = {}
            # layer2 is 401408 floats an image: two images per request stay
            # under the 2^20-float answer bound
            for outs in (["logits", emb], [l2], [l3, "logits"]):
                for i0 in (0, 2):
                    s, r = v2_infer(srv, "r50", x[i0:i0 + 2], outs)
                    check(s == 200, f"v2 {outs}: {s} {r}")
                    for i in range(2):
                        for name, want in ((emb, got["gap"][i0 + i].ravel()),
                                           (l2, got["l2"][i0 + i]), (l3, got["l3"][i0 + i]),
                                           ("logits", logits[i0 + i])):
                            if name in r:
                                e = close(r[name][i], want, f"resnet50 {name} image {i0 + i}")
                                worst[name] = max(worst.get(name, 0), e)
            for name, e in worst.items():
                print(f"resnet50 {name}: worst relative error {e:.2e}")

            # concurrent mixed requests (one image each) sharing batches
            def one(i):
                k, a = i % 4, i % 4
                outs = [["logits"], [emb], [l2], [l3]][k]
                s, r = v2_infer(srv, "r50", x[a:a + 1], outs)
                check(s == 200, f"mixed {s}")
                want = [logits[a], got["gap"][a].ravel(), got["l2"][a], got["l3"][a]][k]
                close(r[outs[0]][0], want, f"mixed resnet50 {outs[0]}")
            before = batches(srv)
            with cf.ThreadPoolExecutor(4) as ex:
                list(ex.map(one, range(16)))
            after = batches(srv)
            print(f"resnet50 mixed: 16 requests ran in {after[0] - before[0]:.0f} batches")
            # the answer bounds: layer2 as JSON (2^18 floats) and 3 images of it
            # in binary (2^20 floats) are refused before anything runs
            s, r = v2_infer(srv, "r50", x[:1], [l2], binary=False)
            check(s == 413, f"JSON bound {s}")
            s, r = v2_infer(srv, "r50", x[:3], [l2], binary=True)
            check(s == 413, f"binary bound {s}")
            # /v1/embed with an image: layer2 pooled is 512 floats
            import io
            b = io.BytesIO()
            Image.fromarray((np.random.default_rng(1).random((240, 260, 3)) * 255)
                            .astype(np.uint8)).save(b, "PNG")
            s, _, j = srv.json("POST", f"/v1/embed?tensor={l2}&normalize=l2", b.getvalue())
            check(s == 200 and j["dim"] == 512 and abs(np.linalg.norm(j["embedding"]) - 1) < 1e-5,
                  f"/v1/embed r50 {s}")
            check(srv.stop() == 0, "clean exit")
        finally:
            srv.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    binary, mode = sys.argv[1], sys.argv[2]
    if mode == "fmnist":
        test_fmnist(binary)
    elif mode == "resnet50":
        test_resnet50(binary, sys.argv[3])
    elif mode == "ort":
        test_all_taps(binary, sys.argv[3])
    else:
        sys.exit("unknown mode " + mode)
    print("test_embed %s: ok" % mode)
