"""Small models for test_engine_taps.c's classifier paths, exported with
torch.onnx (random weights, eval mode):

    taps_models.py NAME OUT_DIR TEST_BINARY

NAME: matmul  GAP -> flatten -> x @ W + b (ONNX MatMul [C,K] + Add: the
              classifier's rows are the transposed weight)
      nogap   conv features -> flatten -> Linear (no global average pool:
              a default embedding, but engine_model_cam_info says why not)
Writes OUT_DIR/NAME.onnx, then runs TEST_BINARY on it and exits with its code.
"""
import os
import subprocess
import sys

import torch
import torch.nn as nn


class MatMulHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(16, 24, 3, stride=2, padding=1), nn.ReLU())
        self.w = nn.Parameter(torch.randn(24, 7))
        self.b = nn.Parameter(torch.randn(7))

    def forward(self, x):
        f = torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1)
        return torch.matmul(f, self.w) + self.b


class NoGap(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


def main():
    name, out, binary = sys.argv[1:4]
    torch.manual_seed(3)
    net = {"matmul": MatMulHead, "nogap": NoGap}[name]().eval()
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name + ".onnx")
    torch.onnx.export(net, torch.zeros(1, 3, 16, 16), path, input_names=["input"],
                      output_names=["logits"], opset_version=13,
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    sys.exit(subprocess.run([binary, path]).returncode)


if __name__ == "__main__":
    main()
