#!/usr/bin/python3
"""Write Fashion-MNIST test-set images as PNG files (28x28, 8-bit gray).

    /usr/bin/python3 tools/fashion_mnist_images.py OUT_DIR [--count N | --all | --index I ...]

File names are <index>_<label>.png with the test-set index zero-padded to five
digits and the label made file-name safe ("T-shirt/top" -> "T-shirt-top"),
e.g. 00042_Sneaker.png. OUT_DIR/labels.csv lists index,file,class,label for
every image written. The pixels are the data set's bytes unchanged (PNG is
lossless), so resnetd sees exactly the tensor the model was tested on.

Reads /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist) or
--data DIR. Exit codes: 0 ok, 1 unreadable data set, 2 bad usage.
"""

import argparse
import csv
import gzip
import io
import os
import struct
import sys

import numpy as np
from PIL import Image

DATA_DIR = "/usr/share/datasets/fashion-mnist"
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path):
    """Returns the gzip'd idx file at PATH as a numpy uint8 array; raises
    ValueError for a file that is not an unsigned-byte idx file."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {arr.size} bytes of data, header says {dims}")
    return arr.reshape(dims)


def load_test(data_dir=DATA_DIR):
    """Returns (images uint8 [10000,28,28], labels uint8 [10000])."""
    x = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz"))
    return x, y


def file_name(index, cls):
    """The PNG name for test image INDEX of class CLS, e.g. 00042_Sneaker.png."""
    return f"{index:05d}_{LABELS[cls].replace('/', '-').replace(' ', '-')}.png"


def png_bytes(img):
    """Encodes a uint8 [28,28] array as a gray PNG; returns the bytes."""
    buf = io.BytesIO()
    Image.fromarray(img, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--data", default=DATA_DIR)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--count", type=int, default=10, help="the first N images (default 10)")
    g.add_argument("--all", action="store_true", help="all 10,000 images")
    g.add_argument("--index", type=int, nargs="+", help="these test-set indices")
    args = ap.parse_args()
    try:
        x, y = load_test(args.data)
    except (OSError, ValueError) as e:
        print(f"fashion_mnist_images: {e}", file=sys.stderr)
        return 1
    if args.index:
        idx = args.index
    else:
        idx = range(x.shape[0] if args.all else min(args.count, x.shape[0]))
    bad = [i for i in idx if not 0 <= i < x.shape[0]]
    if bad:
        print(f"fashion_mnist_images: index {bad[0]} out of range 0..{x.shape[0] - 1}",
              file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "labels.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "file", "class", "label"])
        for i in idx:
            name = file_name(i, int(y[i]))
            with open(os.path.join(args.out, name), "wb") as img:
                img.write(png_bytes(x[i]))
            w.writerow([i, name, int(y[i]), LABELS[y[i]]])
    print(f"fashion_mnist_images: wrote {len(idx)} images to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
