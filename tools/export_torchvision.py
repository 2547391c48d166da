#!/usr/bin/python3
"""Export a torchvision ImageNet classifier with pretrained weights to a
resnetd model directory.

    /usr/bin/python3 tools/export_torchvision.py ARCH [--weights NAME] [--out DIR]

    ARCH     a torchvision model name, e.g. resnet18, resnet50, resnet101,
             wide_resnet50_2, resnext50_32x4d
    --weights  a weights enum member, e.g. IMAGENET1K_V1 (default: DEFAULT,
             torchvision's best weights for ARCH)
    --out    default models/<ARCH> in this repository

Writes DIR/model.onnx (opset 13, input "input" [N,3,H,W] with a dynamic batch
axis, output "logits"), DIR/labels.txt (the weights' category list, which for
ImageNet is the same list as models/imagenet_labels.txt) and DIR/config.json
with the weights' own preprocessing (resize, crop, mean, std).

The weights come from download.pytorch.org, unless a checkpoint for ARCH is
already in torch's hub cache ($TORCH_HOME/hub/checkpoints, by default
~/.cache/torch/hub/checkpoints). When none is cached and the host is
unreachable, it exits 1 at once (a 5 s connection check, before torch is even
imported) with a message saying so. Exit codes: 0 ok, 1 runtime failure or offline, 2 bad usage.
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.request


WEIGHTS_HOST = "https://download.pytorch.org/"


def die(code, msg):
    print(f"export_torchvision: {msg}", file=sys.stderr)
    return code


def online(url, timeout):
    """True if URL's host answers an HTTP HEAD request within TIMEOUT seconds."""
    try:
        req = urllib.request.Request(url, method="HEAD")
        urllib.request.urlopen(req, timeout=timeout).close()
        return True
    except urllib.error.HTTPError:
        return True  # the server answered, so we are online
    except (urllib.error.URLError, OSError):
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("arch")
    ap.add_argument("--weights", default="DEFAULT")
    ap.add_argument("--out")
    ap.add_argument("--timeout", type=float, default=5.0,
                    help="seconds for the connectivity check (default 5)")
    args = ap.parse_args()

    # Importing torch takes seconds, so an offline host is detected first:
    # unless a checkpoint for ARCH is already cached, download.pytorch.org
    # must answer within --timeout seconds.
    hub = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    ckpt_dir = os.path.join(hub, "hub", "checkpoints")
    have = os.path.isdir(ckpt_dir) and any(
        f.startswith(args.arch + "-") for f in os.listdir(ckpt_dir))
    if not have and not online(WEIGHTS_HOST, args.timeout):
        return die(1, f"cannot reach {WEIGHTS_HOST} (offline?) and no {args.arch} "
                      f"checkpoint is in {ckpt_dir}: exporting {args.arch} needs the "
                      "internet (or its .pth copied there by hand)")

    import torch
    import torchvision.models as tvm

    try:
        weights_enum = tvm.get_model_weights(args.arch)
    except (ValueError, KeyError):
        return die(2, f"unknown torchvision model '{args.arch}'")
    try:
        weights = weights_enum[args.weights] if args.weights != "DEFAULT" else weights_enum.DEFAULT
    except KeyError:
        names = ", ".join(w.name for w in weights_enum)
        return die(2, f"'{args.weights}' is not a weights name of {args.arch} (known: {names})")

    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.abspath(args.out or os.path.join(here, "..", "models", args.arch))
    try:
        model = tvm.get_model(args.arch, weights=weights).eval()
    except Exception as e:  # download or checksum failure: torch raises several types
        return die(1, f"loading {args.arch} weights {weights.name} failed: {e}")

    tf = weights.transforms()
    crop = int(tf.crop_size[0])
    resize = int(tf.resize_size[0])
    categories = weights.meta.get("categories")
    os.makedirs(out, exist_ok=True)
    torch.onnx.export(model, torch.zeros(1, 3, crop, crop), os.path.join(out, "model.onnx"),
                      opset_version=13, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=True)
    if categories:
        with open(os.path.join(out, "labels.txt"), "w") as f:
            f.write("\n".join(categories) + "\n")
    cfg = {"name": args.arch,
           "input": {"color": "rgb", "resize": resize, "crop": crop, "scale": 255.0,
                     "mean": list(tf.mean), "std": list(tf.std)},
           "max_batch": 8}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    print(f"export_torchvision: wrote {out} ({args.arch}, {weights.name})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
