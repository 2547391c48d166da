"""External initializer data (data_location EXTERNAL) through the engine.

A small conv net from torch is exported to ONNX, its initializers moved to a
side file with onnx's external_data_helper, and the engine's output (via
engine_timing IN.npy OUT.npy) is compared with torch's. Then the side file
is damaged: an offset past its end, a location escaping the model directory
and a missing file must each fail the load with exit 1 and a message naming
the initializer, never a crash.

    external_data_test.py ENGINE_TIMING
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import torch
from onnx.external_data_helper import convert_model_to_external_data


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        x = torch.relu(self.conv2(x))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


def run(tool, model, inp, out):
    return subprocess.run([tool, model, "1", "1", "0", inp, out], capture_output=True,
                          text=True, errors="replace", timeout=300)


def main():
    tool = sys.argv[1]
    torch.manual_seed(0)
    net = Net().eval()
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        ref = net(x).numpy()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.onnx")
        torch.onnx.export(net, x, path, opset_version=13, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
        m = onnx.load(path)
        convert_model_to_external_data(m, all_tensors_to_one_file=True, location="w.bin",
                                       size_threshold=0)
        onnx.save(m, path)
        assert os.path.getsize(os.path.join(d, "w.bin")) > 4 * 16 * 16 * 9
        inp, out = os.path.join(d, "x.npy"), os.path.join(d, "y.npy")
        np.save(inp, x.numpy())
        r = run(tool, path, inp, out)
        assert r.returncode == 0, r.stderr
        got = np.load(out)
        err = np.abs(got - ref).max() / np.abs(ref).max()
        print(f"external data: max rel diff vs torch {err:.2e}")
        assert got.shape == ref.shape and err < 1e-4, err

        def damaged(name, edit):
            bad = onnx.load(path, load_external_data=False)
            edit(bad.graph.initializer[0])
            p = os.path.join(d, name + ".onnx")
            onnx.save(bad, p)
            r = run(tool, p, inp, out)
            print(f"{name}: exit {r.returncode}: {r.stderr.strip()}")
            assert r.returncode == 1, r.stderr
            assert bad.graph.initializer[0].name in r.stderr, r.stderr
            assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr

        def set_key(t, key, value):
            for e in t.external_data:
                if e.key == key:
                    e.value = value
                    return
            t.external_data.add(key=key, value=value)

        damaged("offset_past_end", lambda t: set_key(t, "offset", str(10**9)))
        damaged("escaping_location", lambda t: set_key(t, "location", "../w.bin"))
        damaged("missing_file", lambda t: set_key(t, "location", "nope.bin"))
        damaged("wrong_length", lambda t: set_key(t, "length", "4"))
    print("ok")


if __name__ == "__main__":
    main()
