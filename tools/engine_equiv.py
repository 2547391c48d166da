#!/usr/bin/env python3
"""engine_equiv.py MODEL BATCH OUT.npy: a deterministic float32 input for the
model's first graph input (batch dimension = BATCH), for tools/engine_equiv.sh.
MODEL is a .onnx file or a directory holding model.onnx. Needs python3-onnx and
numpy (Debian's /usr/bin/python3 has both)."""
import os
import sys

import numpy as np
import onnx


def main():
    model, batch, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if os.path.isdir(model):
        model = os.path.join(model, "model.onnx")
    g = onnx.load(model, load_external_data=False).graph
    inits = {i.name for i in g.initializer}
    x = next(i for i in g.input if i.name not in inits)
    dims = [d.dim_value if d.dim_value > 0 else batch for d in x.type.tensor_type.shape.dim]
    dims[0] = dims[0] if x.type.tensor_type.shape.dim[0].dim_value > 0 else batch
    rng = np.random.default_rng(19)
    np.save(out, rng.standard_normal(dims).astype(np.float32))


main()
