"""Whole-model fixtures for the engine tests: build a ResNet, give its
BatchNorm layers statistics measured on data (so the logits depend on the
input), export it to ONNX with a dynamic batch axis, cache the file.

Random weights with BatchNorm at its defaults (mean 0, var 1) give nearly the
same logits for every image, which would hide engine errors; running a few
batches in train mode with momentum=None sets running_mean/var to the true
activation statistics, as a trained network has them.
"""
import hashlib
import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

# name -> (constructor, input H=W, classes)
TORCHVISION = {
    "resnet18": torchvision.models.resnet18,
    "resnet34": torchvision.models.resnet34,
    "resnet50": torchvision.models.resnet50,
    "resnet101": torchvision.models.resnet101,
    "resnet152": torchvision.models.resnet152,
    "wide_resnet50_2": torchvision.models.wide_resnet50_2,
    "resnext50_32x4d": torchvision.models.resnext50_32x4d,
}


class PreActBlock(nn.Module):
    """ResNet v2 basic block (He et al. 2016, "Identity Mappings"): BN-ReLU
    before each conv, so the first BN follows an Add and cannot be folded."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        sc = self.shortcut(pre) if self.shortcut is not None else x
        out = self.conv1(pre)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + sc


class PreActResNet18(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.pool = nn.MaxPool2d(3, 2, 1)
        layers, cin = [], 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [PreActBlock(cin, cout, stride), PreActBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(512)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.layers(self.pool(self.conv1(x)))
        x = F.adaptive_avg_pool2d(F.relu(self.bn(x)), 1)
        # view(size(0), -1): older exports compute this Reshape's target with
        # Shape/Gather/Unsqueeze/Concat, which the engine must fold.
        return self.fc(x.view(x.size(0), -1))


class CifarBlock(nn.Module):
    """ResNet-20 basic block with the paper's option-A shortcut: subsample by
    a strided slice and zero-pad the new channels (no parameters)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2 if (stride != 1 or cin != cout) else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.pad is None:
            sc = x
        else:
            sc = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + sc)


class CifarResNet20(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for cout, stride in [(16, 1), (32, 2), (64, 2)]:
            for i in range(3):
                layers.append(CifarBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


def model_names():
    return list(TORCHVISION) + ["preact_resnet18", "cifar_resnet20"]


def input_size(name):
    return 32 if name == "cifar_resnet20" else 224


def build(name):
    torch.manual_seed(20240601)
    if name in TORCHVISION:
        return TORCHVISION[name](weights=None)
    if name == "preact_resnet18":
        return PreActResNet18()
    if name == "cifar_resnet20":
        return CifarResNet20()
    raise ValueError("unknown model " + name)


def images(n, size, seed):
    """Test/calibration images: per-image colour offsets and contrast plus
    smooth structure plus noise, roughly the range of normalised photos."""
    rng = np.random.default_rng(seed)
    low = rng.normal(size=(n, 3, 8, 8)).astype(np.float32)
    smooth = F.interpolate(torch.from_numpy(low), size=(size, size), mode="bilinear",
                           align_corners=False).numpy()
    noise = rng.normal(size=(n, 3, size, size)).astype(np.float32)
    gain = rng.uniform(0.3, 1.5, size=(n, 1, 1, 1)).astype(np.float32)
    offset = rng.normal(scale=0.5, size=(n, 3, 1, 1)).astype(np.float32)
    return np.ascontiguousarray((smooth + 0.5 * noise) * gain + offset, dtype=np.float32)


def calibrate(model, size):
    """Random affine BN parameters, then running statistics from data.
    Calibration runs at half resolution (at least 32): train-mode passes of
    the big models at 224x224 dominate the export time, and statistics of
    these images change little with scale."""
    size = max(32, size // 2)
    gen = torch.Generator().manual_seed(7)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
    model.train()
    with torch.no_grad():
        for i in range(3):
            model(torch.from_numpy(images(4, size, 1000 + i)))
    model.eval()


def cache_key(name, opset):
    with open(__file__, "rb") as f:
        h = hashlib.sha1(f.read() + torch.__version__.encode()).hexdigest()[:10]
    return "%s_op%d_%s.onnx" % (name, opset, h)


def export(name, opset, cache_dir):
    """Returns the path of the cached ONNX export of (name, opset), making it
    first if needed. Opset 13 uses the exporter's defaults (BN folded into the
    convs); other opsets keep BatchNormalization nodes (TrainingMode.PRESERVE,
    no constant folding)."""
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, cache_key(name, opset))
    if os.path.exists(path):
        return path
    model = build(name)
    size = input_size(name)
    # Both opsets of a model share one calibration (cached next to the exports).
    state = os.path.join(cache_dir, cache_key(name, 0).replace(".onnx", ".pt"))
    if os.path.exists(state):
        model.load_state_dict(torch.load(state))
        model.eval()
    else:
        calibrate(model, size)
        fd, tmp = tempfile.mkstemp(suffix=".pt", dir=cache_dir)
        os.close(fd)
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, state)
    x = torch.from_numpy(images(2, size, 1))
    kw = dict(opset_version=opset, input_names=["input"], output_names=["logits"],
              dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    if opset != 13:
        kw.update(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=cache_dir)
    os.close(fd)
    try:
        torch.onnx.export(model, x, tmp, **kw)
        os.replace(tmp, path)  # atomic: parallel tests never see half a file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


if __name__ == "__main__":
    # models.py NAME OPSET CACHE_DIR [CMD ARGS...]: export (cached), then run
    # CMD with every "{onnx}" argument replaced by the model's path; without
    # CMD, print the path.
    import subprocess
    import sys

    onnx_path = export(sys.argv[1], int(sys.argv[2]), sys.argv[3])
    cmd = [onnx_path if s == "{onnx}" else s for s in sys.argv[4:]]
    if not cmd:
        print(onnx_path)
    sys.exit(subprocess.run(cmd).returncode if cmd else 0)
