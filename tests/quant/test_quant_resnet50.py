#!/usr/bin/python3
"""int8 ResNet-50: `resnetd quantize` on calibration images, then the int8
model vs the fp32 model (both run by resnetd) on held-apart inputs: top-1
agreement >= 95% and cosine similarity of the logits >= 0.99 on every input.

The network is torchvision's ResNet-50 (weights=None, seeded) with BatchNorm
statistics measured on data (tests/engine/models.py), exported at 112x112 to
keep the test short (the net is fully convolutional up to its global pool).
Calibration and held-apart inputs come from the same generator with
different seeds, written as 8-bit PNGs (calibration goes through the image
pipeline) and fed as the same tensors to `resnetd infer`.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "engine"))
import models  # noqa: E402  (tests/engine/models.py)
from quant_common import cosine, infer, run, save_png, write_config  # noqa: E402

SIZE = 112
MEAN, STD = 0.5, 0.25
# Few classes, as in a task where the top-1 is meaningful: with 1000 random
# classes the top two logits of a random network are ~1% apart.
CLASSES = 10


def u8_images(n, seed):
    """Smooth random images as uint8 HWC, and the tensors resnetd makes of them."""
    x = models.images(n, SIZE, seed)  # float, roughly N(0, 1)
    u8 = np.clip(np.round((x * STD + MEAN) * 255.0), 0, 255).astype(np.uint8)
    t = ((u8.astype(np.float32) / 255.0) - MEAN) / STD
    return u8.transpose(0, 2, 3, 1), t.astype(np.float32)


def calibrate_bn(net):
    """As tests/engine/models.py, but statistics at the test resolution and
    from more batches: BN then normalises what the test feeds."""
    models.calibrate(net, 2 * SIZE)  # random BN affine, first statistics
    # Trained ResNets keep the residual branches small next to the identity
    # path (the last BN of a block has small gammas; cf. zero_init_residual).
    # With gammas ~1 everywhere, 16 random branches drown the input's signal
    # (the logits barely depend on the image), which no real model does.
    with torch.no_grad():
        for blk in net.modules():
            if isinstance(blk, torchvision.models.resnet.Bottleneck):
                blk.bn3.weight.mul_(0.2)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
    net.train()
    with torch.no_grad():
        for i in range(6):
            net(torch.from_numpy(u8_images(8, 3000 + i)[1]))
    net.eval()


def export(path):
    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None, num_classes=CLASSES)
    calibrate_bn(net)
    x = torch.from_numpy(u8_images(2, 1)[1])
    torch.onnx.export(net, x, path, opset_version=13, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--resnetd", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--calib", type=int, default=48)
    ap.add_argument("--held", type=int, default=100)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    fp32 = os.path.join(a.work, "resnet50_112")
    os.makedirs(fp32, exist_ok=True)
    onnx = os.path.join(fp32, "model.onnx")
    if not os.path.exists(onnx):
        export(onnx + ".tmp")
        os.replace(onnx + ".tmp", onnx)
    write_config(fp32, {"input": {"resize": SIZE, "crop": SIZE, "scale": 255.0,
                                  "mean": [MEAN], "std": [STD]}})
    cal = os.path.join(a.work, "calib")
    os.makedirs(cal, exist_ok=True)
    imgs, _ = u8_images(a.calib, 7000)
    for i, im in enumerate(imgs):
        save_png(os.path.join(cal, "%03d.png" % i), im)
    int8 = os.path.join(a.work, "resnet50_112_int8")
    p = run([a.resnetd, "quantize", "--model", fp32, "--calibration", cal, "--out", int8])
    print(p.stdout.strip())
    for f in ("model.onnx", "config.json", "quant.tsv"):
        assert os.path.exists(os.path.join(int8, f)), f
    _, held = u8_images(a.held, 9000)
    y32 = infer(a.resnetd, fp32, held, a.work, "fp32")
    y8 = infer(a.resnetd, int8, held, a.work, "int8")
    agree = float((y32.argmax(1) == y8.argmax(1)).mean())
    cos = cosine(y32, y8)
    print("top-1 agreement %.3f, cosine min %.5f mean %.5f, max|diff| %.4g of max|fp32| %.4g"
          % (agree, cos.min(), cos.mean(), np.abs(y32 - y8).max(), np.abs(y32).max()))
    assert agree >= 0.95, "top-1 agreement %.3f < 0.95" % agree
    assert cos.min() >= 0.99, "cosine similarity %.5f < 0.99" % cos.min()
    print("ok")


if __name__ == "__main__":
    main()
