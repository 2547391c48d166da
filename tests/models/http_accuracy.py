#!/usr/bin/python3
"""Accuracy over HTTP: the bundled Fashion-MNIST model, served by the real
`resnetd serve` with no --model (the default model), classifies all 10,000
test images sent as PNG files in multipart batches.

Asserts:
  - accuracy against the data set's labels >= 93.0 %;
  - >= 99.9 % of top-1 predictions equal PyTorch's predictions for the same
    trained model (models/fashion-mnist/test_predictions.txt, written by
    tools/train_fashion_mnist.py from the PyTorch model before export);
  - one result per file, named after it, top_k honoured, probabilities in
    [0,1] and sorted, labels from labels.txt;
  - GET /v1/models lists the default model by its name, fashion-mnist.

    http_accuracy.py RESNETD MODEL_DIR [--data DIR] [--batch 32] [--clients 2]
"""

import argparse
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))

from resnetd_server import ResnetdServer, multipart  # noqa: E402
from fashion_mnist_images import DATA_DIR, file_name, load_test, png_bytes  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("model_dir")
    ap.add_argument("--data", default=DATA_DIR)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--min-accuracy", type=float, default=0.930)
    ap.add_argument("--min-agreement", type=float, default=0.999)
    args = ap.parse_args()

    x, y = load_test(args.data)
    n = x.shape[0]
    with open(os.path.join(args.model_dir, "test_predictions.txt")) as f:
        ref = [int(c) for c in f.read().strip()]
    with open(os.path.join(args.model_dir, "labels.txt")) as f:
        labels = [line.rstrip("\n") for line in f if line.strip()]
    assert len(ref) == n, f"test_predictions.txt: {len(ref)} entries, want {n}"
    names = [file_name(i, int(y[i])) for i in range(n)]
    index_of = {nm: i for i, nm in enumerate(names)}
    pngs = [png_bytes(x[i]) for i in range(n)]

    got = [None] * n
    errors = []
    batches = [list(range(s, min(s + args.batch, n))) for s in range(0, n, args.batch)]

    with ResnetdServer(args.binary, ["serve"]) as srv:
        status, models = srv.json("GET", "/v1/models")
        assert status == 200, f"GET /v1/models: {status} {models}"
        assert "fashion-mnist" in str(models), f"default model not listed: {models}"
        print(f"/v1/models: {str(models)[:300]}", flush=True)

        def client(k):
            conn = srv.connection()
            try:
                for b in batches[k::args.clients]:
                    body, ctype = multipart([(names[i], pngs[i]) for i in b])
                    status, resp = srv.json("POST", f"/v1/classify?top_k={args.top_k}", body,
                                            {"Content-Type": ctype}, conn=conn)
                    if status != 200:
                        errors.append(f"batch at {b[0]}: HTTP {status}: {resp}")
                        return
                    results = resp.get("results", [])
                    if len(results) != len(b):
                        errors.append(f"batch at {b[0]}: {len(results)} results for {len(b)} files")
                        return
                    for r in results:
                        i = index_of.get(r.get("filename"))
                        if i is None or "predictions" not in r:
                            errors.append(f"batch at {b[0]}: bad result {r}")
                            return
                        got[i] = r["predictions"]
            except Exception as e:  # report, do not hang the other clients
                errors.append(f"client {k}: {type(e).__name__}: {e}")
            finally:
                conn.close()

        t0 = time.monotonic()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        dt = time.monotonic() - t0

    assert not errors, "\n".join(errors[:10])
    missing = [i for i in range(n) if got[i] is None]
    assert not missing, f"{len(missing)} images without a result, e.g. {missing[:5]}"
    correct = agree = 0
    for i, preds in enumerate(got):
        assert len(preds) == args.top_k, f"image {i}: {len(preds)} predictions, top_k={args.top_k}"
        probs = [p["probability"] for p in preds]
        assert all(0.0 <= p <= 1.0 for p in probs), f"image {i}: probabilities {probs}"
        assert probs == sorted(probs, reverse=True), f"image {i}: not sorted: {probs}"
        for p in preds:
            assert p["label"] == labels[p["index"]], f"image {i}: {p} vs labels.txt"
        top = preds[0]["index"]
        correct += top == int(y[i])
        agree += top == ref[i]
    acc, agr = correct / n, agree / n
    print(f"{n} images over HTTP in {dt:.1f} s ({n / dt:.0f} img/s, batches of {args.batch}, "
          f"{args.clients} clients): accuracy {acc:.4f}, agreement with PyTorch {agr:.4f}",
          flush=True)
    assert acc >= args.min_accuracy, f"accuracy {acc:.4f} < {args.min_accuracy}"
    assert agr >= args.min_agreement, f"agreement with PyTorch {agr:.4f} < {args.min_agreement}"
    return 0


if __name__ == "__main__":
    sys.exit(main())
