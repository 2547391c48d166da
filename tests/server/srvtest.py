"""Helpers for the server tests: a tiny test model exported with torch.onnx,
test images, and a real `resnetd serve` on 127.0.0.1 with an OS-chosen port
(--port 0; the port is read from the server's "listening" log line)."""

import json
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import resnetd_serve  # noqa: E402

LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
          "boot"]


def export_model(out_dir, name="tiny", width=8, depth=1, seed=0, max_batch=8):
    """A small gray 28x28 CNN, 10 classes, dynamic batch; writes model.onnx,
    labels.txt and config.json into out_dir/name. Returns (dir, torch module)."""
    torch.manual_seed(seed)
    layers = [torch.nn.Conv2d(1, width, 3, padding=1), torch.nn.ReLU()]
    for _ in range(depth - 1):
        layers += [torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU()]
    layers += [torch.nn.MaxPool2d(2), torch.nn.Conv2d(width, 16, 3, padding=1), torch.nn.ReLU(),
               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10)]
    net = torch.nn.Sequential(*layers).eval()
    with torch.no_grad():  # spread the logits so the top-k order is well defined
        net[-1].weight.mul_(8.0)
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    torch.onnx.export(net, torch.zeros(1, 1, 28, 28), os.path.join(d, "model.onnx"),
                      input_names=["input"], output_names=["logits"], opset_version=13,
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    with open(os.path.join(d, "labels.txt"), "w") as f:
        f.write("\n".join(LABELS) + "\n")
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"name": name, "input": {"color": "gray", "resize": 28, "crop": 28,
                                           "scale": 255.0, "mean": [0.5], "std": [0.5]},
                   "max_batch": max_batch}, f)
    return d, net


def make_images(out_dir, n=6):
    """n small varied JPEG/PNG images (shapes on gradients); returns their paths."""
    rng = np.random.default_rng(7)
    paths = []
    for i in range(n):
        h, w = int(rng.integers(30, 90)), int(rng.integers(30, 90))
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([(x * (i + 1) * 3) % 256, (y * 5 + i * 40) % 256,
                        ((x + y) * (7 - i % 5)) % 256], -1).astype(np.uint8)
        img[h // 4:h // 2, w // 3:w // 2] = 255 - 40 * (i % 6)
        p = os.path.join(out_dir, f"img{i}.{'jpg' if i % 2 else 'png'}")
        Image.fromarray(img).save(p, quality=92) if i % 2 else Image.fromarray(img).save(p)
        paths.append(p)
    return paths


def reference(net, path, k):
    """The independent reference: PIL + torchvision preprocessing (gray, Resize 28,
    CenterCrop 28, Normalize 0.5/0.5), the torch model, softmax, top-k."""
    import torchvision.transforms as T
    tf = T.Compose([T.Resize(28), T.CenterCrop(28), T.ToTensor(), T.Normalize([0.5], [0.5])])
    x = tf(Image.open(path).convert("L"))
    with torch.no_grad():
        p = torch.softmax(net(x[None]).double(), 1)[0]
    v, i = torch.topk(p, k)
    return [(int(a), float(b)) for a, b in zip(i, v)]


def multipart(files, field="file"):
    """files: list of (filename, bytes) -> (body, content_type)."""
    b = "srvtest" + os.urandom(8).hex()
    out = []
    for name, data in files:
        out.append(f"--{b}\r\nContent-Disposition: form-data; name=\"{field}\"; "
                   f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                   .encode())
        out += [data, b"\r\n"]
    out.append(f"--{b}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={b}"


class Server(resnetd_serve.Server):
    """`resnetd serve ARGS --host 127.0.0.1 --port 0`, stderr kept in a file
    (tests/lib/resnetd_serve.py); stop() prints the log's non-JSON tail when
    the exit code is not 0 (a sanitizer report, a crash...)."""

    def __init__(self, binary, args, ready_timeout=120.0):
        super().__init__(binary, args, ready_timeout=ready_timeout, prefix="srvtest-",
                         show_log_on_failure=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
