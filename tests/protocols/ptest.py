"""Helpers for the protocol tests (KServe v2 / Triton, TorchServe, demo page):
two small models exported with torch.onnx (plus the bundled Fashion-MNIST
model when it is in the tree), test images, and a real `resnetd serve` on
127.0.0.1 with an OS-chosen port (--port 0, read from the "listening" log)."""

import contextlib
import io
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import resnetd_serve  # noqa: E402

GRAY_LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
               "bag", "boot"]
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _export(net, shape, path, in_name, out_name):
    torch.onnx.export(net, torch.zeros(*shape), path, input_names=[in_name],
                      output_names=[out_name], opset_version=13,
                      dynamic_axes={in_name: {0: "n"}, out_name: {0: "n"}})


def export_models(out_dir):
    """Writes two model directories into out_dir and returns
    {name: (dir, torch module, torchvision-style preprocessing description)}:
      gray: 1x28x28, 10 classes, labels.txt, input "input", output "logits";
      rgb:  3x32x32 (resize 36, crop 32, ImageNet mean/std), 7 classes, NO labels.txt,
            input "pixel_values", output "scores"."""
    torch.manual_seed(0)
    gray = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(16, 10)).eval()
    rgb = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(16, 7)).eval()
    with torch.no_grad():  # spread the scores so top-k orders are well defined
        gray[-1].weight.mul_(8.0)
        rgb[-1].weight.mul_(8.0)
    out = {}
    d = os.path.join(out_dir, "gray")
    os.makedirs(d, exist_ok=True)
    _export(gray, (1, 1, 28, 28), os.path.join(d, "model.onnx"), "input", "logits")
    with open(os.path.join(d, "labels.txt"), "w") as f:
        f.write("\n".join(GRAY_LABELS) + "\n")
    gray_in = {"color": "gray", "resize": 28, "crop": 28, "scale": 255.0, "mean": [0.5],
               "std": [0.5]}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"name": "gray", "input": gray_in, "max_batch": 8}, f)
    out["gray"] = (d, gray, gray_in)
    d = os.path.join(out_dir, "rgb")
    os.makedirs(d, exist_ok=True)
    _export(rgb, (1, 3, 32, 32), os.path.join(d, "model.onnx"), "pixel_values", "scores")
    rgb_in = {"color": "rgb", "resize": 36, "crop": 32, "scale": 255.0,
              "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"name": "rgb", "input": rgb_in, "max_batch": 4}, f)
    out["rgb"] = (d, rgb, rgb_in)
    return out


def fashion_mnist_dir():
    """The bundled models/fashion-mnist when it is in the tree, else None."""
    d = os.path.join(SRC, "models", "fashion-mnist")
    return d if os.path.isfile(os.path.join(d, "model.onnx")) else None


def make_image(i, fmt):
    """A varied test image (shapes on gradients) as encoded bytes."""
    rng = np.random.default_rng(100 + i)
    h, w = int(rng.integers(30, 90)), int(rng.integers(30, 90))
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * (i + 2) * 3) % 256, (y * 5 + i * 40) % 256,
                    ((x + y) * (7 - i % 5)) % 256], -1).astype(np.uint8)
    img[h // 4:h // 2, w // 3:w // 2] = 255 - 37 * (i % 7)
    b = io.BytesIO()
    Image.fromarray(img).save(b, {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt],
                              **({"quality": 92} if fmt != "png" else {}))
    return b.getvalue()


def torch_reference(net, inp, data):
    """Independent reference: PIL + torchvision preprocessing, then the torch
    model. Returns the raw output row (float64 numpy)."""
    import torchvision.transforms as T
    tf = T.Compose([T.Resize(inp["resize"]), T.CenterCrop(inp["crop"]), T.ToTensor(),
                    T.Normalize(inp["mean"], inp["std"])])
    im = Image.open(io.BytesIO(data)).convert("L" if inp["color"] == "gray" else "RGB")
    with torch.no_grad():
        return net(tf(im)[None]).double().numpy()[0]


class Server(resnetd_serve.Server):
    """`resnetd serve ARGS --host 127.0.0.1 --port 0`; stderr kept in a file
    (tests/lib/resnetd_serve.py: request, json, metric, url, logs, stop, cleanup)."""

    def __init__(self, binary, args, ready_timeout=180.0):
        super().__init__(binary, args, ready_timeout=ready_timeout, prefix="ptest-")
        self.rc = None

    @contextlib.contextmanager
    def session(self):
        """Runs the with-block against the server: on an error the tail of its
        log goes to stderr; it is always stopped (exit code in self.rc) and its
        files removed."""
        try:
            yield self
        except Exception:
            sys.stderr.write(self.logs().decode(errors="replace")[-3000:])
            raise
        finally:
            self.rc = self.stop()
            self.cleanup()


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
