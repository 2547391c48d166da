#!/usr/bin/python3
"""`resnetd classify` (bulk mode) end to end.

    classify_cli.py RESNETD MODEL_DIR CASE [FASHION_MNIST_DIR]
                    CASE: inputs | formats | server | reference

inputs     a directory tree (nested folders, a hidden file, a non-image file,
           a bad image, a symbolic-link loop), @LIST (CRLF, blank lines, a
           directory), stdin "-" and a missing file: the lines come in the
           order the inputs name them (directories sorted by name, -r
           descending), failed files get error lines with the right codes, the
           others predictions, exit code 1; without -r sub-directories are
           skipped; only good files: exit 0; bad usage: exit 2.
formats    --format csv parses with Python's csv module and says what the JSON
           lines say; --output FILE holds what stdout would; a file over
           --max-body-bytes and an image over --max-image-pixels are error
           lines; a progress bar appears on a terminal (a pty) and not on a pipe.
server     the bundled model on 60 Fashion-MNIST test images plus the examples
           and a small RGB model on JPEG/PNG/WebP photos of several sizes: every
           file's predictions equal what a live `resnetd serve` answers on POST
           /v1/models/{m}/classify for the same bytes, byte for byte as JSON with
           --max-batch 1 on both sides (the same engine plans),
           to the printed precision in batches (same_preds).
reference  the RGB model's top-1 and probabilities agree with PIL + torchvision
           preprocessing and the torch model (the independent reference).
"""

import csv
import io
import json
import math
import os
import pty
import select
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from resnetd_server import ResnetdServer  # noqa: E402

BIN = MODEL = None
DATA = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
IMAGE_EXT = (".jpg", ".jpeg", ".jpe", ".png", ".webp")


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def classify(args, stdin=None, expect=None, env=None):
    """Runs `resnetd classify ARGS`; returns (exit code, stdout, stderr)."""
    p = subprocess.run([BIN, "classify"] + args, input=stdin, capture_output=True, timeout=300,
                       env=dict(os.environ, **(env or {})))
    out, err = p.stdout.decode(), p.stderr.decode()
    if expect is not None:
        check(p.returncode == expect, f"classify {args}: exit {p.returncode}, want {expect}\n{err}")
    return p.returncode, out, err


def ulp6(p):
    """One unit in the 6th significant digit of p (the printed precision)."""
    return 10.0 ** (math.floor(math.log10(p)) - 5) if p > 0 else 1e-300


def close(p, q):
    """Equal up to float32 kernel differences (1e-5 relative) plus the rounding
    to 6 significant digits."""
    m = max(p, q)
    return abs(p - q) <= 1e-5 * m + 1.01 * ulp6(m)


def same_preds(a, b):
    """Two prediction lists agree to float32 precision: the same classes and
    labels in the same order, probabilities close(). oneDNN picks its kernels
    per batch size, so one image run in a batch of 8 or of 1 can differ in the
    last bits of its logits, hence in the last printed digit; two classes may
    swap only where they tie to that precision."""
    if len(a) != len(b):
        return False
    for i, (x, y) in enumerate(zip(a, b)):
        if not close(x["probability"], y["probability"]):
            return False
        if (x["index"], x["label"]) != (y["index"], y["label"]):
            if not any(close(a[j]["probability"], x["probability"])
                       for j in (i - 1, i + 1) if 0 <= j < len(a)):
                return False
    return True


def lines(out):
    return [json.loads(x) for x in out.splitlines()]


def fashion_images(out_dir, n):
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "fashion_mnist_images.py"), out_dir,
                    "--count", str(n), "--data", DATA], check=True, capture_output=True,
                   timeout=120)
    return sorted(os.path.join(out_dir, f) for f in os.listdir(out_dir) if f.endswith(".png"))


def walk(d, recursive):
    """The expected expansion of a directory (classify_inputs.h), computed
    here independently: sorted by name (bytes), hidden names skipped, image
    extensions only, sub-directories in place with -r."""
    out = []
    for name in sorted(os.listdir(d), key=os.fsencode):
        if name.startswith("."):
            continue
        p = os.path.join(d, name)
        if os.path.isdir(p):
            if recursive:
                out += walk(p, True)
        elif name.lower().endswith(IMAGE_EXT):
            out.append(p)
    return out


def test_inputs(tmp):
    src = fashion_images(os.path.join(tmp, "src"), 8)
    t = os.path.join(tmp, "tree")
    for d in ("a/z", "b", ".git"):
        os.makedirs(os.path.join(t, d))

    def put(rel, i):
        with open(src[i], "rb") as f, open(os.path.join(t, rel), "wb") as g:
            g.write(f.read())

    put("b.png", 0)
    put("a/c.PNG", 1)
    put("a/z/d.png", 2)
    put("a/z/e.jpg", 3)  # PNG bytes under a .jpg name: the format comes from the bytes
    put("a/.hidden.png", 4)
    put(".git/x.png", 4)
    put("b/f.webp", 5)
    with open(os.path.join(t, "notes.txt"), "w") as f:  # not an image name: skipped
        f.write("not an image\n")
    with open(os.path.join(t, "bad.png"), "w") as f:  # an image name, not an image
        f.write("not an image either\n")
    os.symlink("..", os.path.join(t, "a", "z", "up"))  # a loop under -r
    # expected: the tree walk without the loop, then the loop's error at its place
    exp_tree = ([os.path.join(t, "a", "c.PNG"), os.path.join(t, "a", "z", "d.png"),
                 os.path.join(t, "a", "z", "e.jpg"), os.path.join(t, "a", "z", "up"),
                 os.path.join(t, "b", "f.webp"), os.path.join(t, "b.png"),
                 os.path.join(t, "bad.png")])
    check([p for p in walk(t, True) if "/up/" not in p] ==
          [p for p in exp_tree if not p.endswith("/up")], walk(t, True))

    lst = os.path.join(tmp, "list.txt")
    with open(lst, "wb") as f:  # CRLF, a blank line, a directory, names that look like args
        f.write(f"{src[6]}\r\n\n{os.path.join(t, 'b')}\n{src[7]}".encode())
    missing = os.path.join(tmp, "missing.png")
    stdin = f"{src[5]}\n{os.path.join(t, 'a', 'c.PNG')}\n".encode()
    rc, out, err = classify(["--model", MODEL, "--top-k", "3", "-r", t, "@" + lst, "-", missing,
                             src[0]], stdin=stdin)
    got = lines(out)
    files = [x["file"] for x in got]
    want = exp_tree + [src[6], os.path.join(t, "b", "f.webp"), src[7], src[5],
                       os.path.join(t, "a", "c.PNG"), missing, src[0]]
    check(files == want, f"order:\n{files}\nwant\n{want}")
    check(rc == 1, f"exit {rc} with failed files, want 1: {err}")
    by = {x["file"]: x for x in got}
    check(by[os.path.join(t, "bad.png")]["error"]["code"] == "unsupported_image", by)
    check(by[missing]["error"]["code"] == "io_error" and "No such file" in
          by[missing]["error"]["message"], by[missing])
    loop = by[os.path.join(t, "a", "z", "up")]["error"]
    check(loop["code"] == "symlink_loop" and t in loop["message"], loop)
    ok = [x for x in got if "predictions" in x]
    check(len(ok) == len(got) - 3, got)
    for x in ok:
        check(len(x["predictions"]) == 3 and "error" not in x, x)
    # the same bytes give the same answer wherever they were listed
    for a, b in ((os.path.join(t, "b.png"), src[0]), (os.path.join(t, "b", "f.webp"), src[5])):
        check(same_preds(by[a]["predictions"], by[b]["predictions"]), (by[a], by[b]))

    # the other pipeline shapes give the same lines: decode threads, two
    # workers, small batches, a ring smaller than the input
    for extra in (["--decode-threads", "2"], ["--decode-threads", "1", "--max-batch", "1"],
                  ["--workers", "2", "--threads-per-worker", "1", "--max-batch", "3"],
                  ["--workers", "2", "--decode-threads", "3", "--max-batch", "2"]):
        rc2, out2, _ = classify(["--model", MODEL, "--top-k", "3", "-r", t, "@" + lst, "-",
                                 missing, src[0]] + extra, stdin=stdin)
        got2 = lines(out2)
        check(rc2 == 1 and [x["file"] for x in got2] == want, (extra, out2))
        for x, y in zip(got, got2):
            check(x.get("error") == y.get("error") and
                  same_preds(x.get("predictions", []), y.get("predictions", [])), (extra, x, y))
    # paths typed on stdin one at a time: each one's line comes before the next
    # is sent (no waiting for a full batch)
    for extra in ([], ["--decode-threads", "1"]):
        p = subprocess.Popen([BIN, "classify", "--model", MODEL, "--top-k", "1", "-"] + extra,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            for path in src[:3]:
                p.stdin.write(path.encode() + b"\n")
                p.stdin.flush()
                r, _, _ = select.select([p.stdout], [], [], 60)
                check(r, f"{extra}: no line for {path} within 60 s")
                check(json.loads(p.stdout.readline())["file"] == path, path)
        finally:
            p.stdin.close()
            rc2 = p.wait(timeout=60)
        check(rc2 == 0 and p.stdout.read() == b"", (extra, rc2))
    # without -r: only the directory's own image files
    rc, out, _ = classify(["--model", MODEL, t])
    check([x["file"] for x in lines(out)] == [os.path.join(t, "b.png"), os.path.join(t, "bad.png")],
          out)
    check(rc == 1, rc)
    # --all-files: notes.txt too (an error line)
    rc, out, _ = classify(["--model", MODEL, "--all-files", os.path.join(t, "b"), t])
    check([x["file"] for x in lines(out)] ==
          [os.path.join(t, "b", "f.webp"), os.path.join(t, "b.png"), os.path.join(t, "bad.png"),
           os.path.join(t, "notes.txt")], out)
    # only good files: exit 0, options after inputs, --opt=value
    good = [os.path.join(t, "b"), os.path.join(t, "a", "z", "d.png")]
    rc, out, err = classify([good[0], "--model=" + MODEL, "-r", "--top-k=1", good[1]], expect=0)
    check([x["file"] for x in lines(out)] == [os.path.join(t, "b", "f.webp"), good[1]], out)
    check(all(len(x["predictions"]) == 1 for x in lines(out)), out)
    check(err == "", f"stderr not empty on a pipe: {err!r}")
    # stdin only, an unreadable list, an empty directory
    rc, out, _ = classify(["--model", MODEL, "-"], stdin=b"", expect=0)
    check(out == "", out)
    rc, out, _ = classify(["--model", MODEL, "@" + os.path.join(tmp, "nolist.txt")], expect=1)
    check(lines(out)[0]["error"]["code"] == "io_error", out)
    os.makedirs(os.path.join(tmp, "empty"))
    classify(["--model", MODEL, os.path.join(tmp, "empty")], expect=0)
    # bad usage: exit 2 and one stderr line naming the cause
    for args, key in ((["--model", MODEL], "no input"),
                      (["--model", MODEL, "--format", "xml", t], "--format"),
                      (["--model", MODEL, "--workers", "0", t], "workers"),
                      (["--model", MODEL, "--max-batch", "x", t], "max_batch"),
                      (["--model", MODEL, "--frobnicate", t], "--frobnicate"),
                      (["--model", MODEL, t, "--top-k"], "--top-k"),
                      (["--model", os.path.join(tmp, "nomodel"), t], "nomodel")):
        rc, out, err = classify(args, expect=2)
        check(key in err.splitlines()[0] and out == "", (args, err))
    rc, out, err = classify(["--model", MODEL, t], env={"RESNETD_TOP_K": "0"}, expect=2)
    check("RESNETD_TOP_K" in err, err)
    rc, out, _ = classify(["--model", MODEL, src[0]], env={"RESNETD_TOP_K": "2"}, expect=0)
    check(len(lines(out)[0]["predictions"]) == 2, out)
    rc, out, _ = classify(["--help"], expect=0)
    check(out.startswith("usage: resnetd classify"), out)
    if os.geteuid() != 0:  # root reads any directory
        u = os.path.join(tmp, "locked")
        os.makedirs(u)
        os.chmod(u, 0)
        rc, out, _ = classify(["--model", MODEL, "-r", u, src[0]], expect=1)
        check(lines(out)[0]["error"]["code"] == "io_error" and "predictions" in lines(out)[1], out)
        os.chmod(u, 0o755)
    print(f"inputs: {len(want)} lines in order, error lines and exit codes ok")


def run_pty(args):
    """Runs classify with stderr on a pseudo-terminal; returns (rc, stdout, tty text)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([BIN, "classify"] + args, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    tty = b""
    while True:
        r, _, _ = select.select([master], [], [], 60)
        if not r:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        tty += chunk
    out = p.stdout.read().decode()
    rc = p.wait(timeout=60)
    os.close(master)
    return rc, out, tty.decode(errors="replace")


def test_formats(tmp):
    imgs = fashion_images(os.path.join(tmp, "src"), 12)
    d = os.path.dirname(imgs[0])
    bad = os.path.join(tmp, 'odd, "name".png')
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n truncated")
    args = ["--model", MODEL, "--top-k", "3", d, bad]
    rc, out, _ = classify(args, expect=1)
    want = lines(out)
    rc, csv_out, _ = classify(["--format", "csv"] + args, expect=1)
    rows = list(csv.reader(io.StringIO(csv_out)))
    check(rows[0] == ["file", "rank", "index", "label", "probability", "error", "message"], rows[0])
    got = {}
    for r in rows[1:]:
        check(len(r) == 7, r)
        got.setdefault(r[0], []).append(r)
    check(list(got) == [x["file"] for x in want], (list(got), [x["file"] for x in want]))
    for x in want:
        rs = got[x["file"]]
        if "error" in x:
            check(len(rs) == 1 and rs[0][1:5] == ["", "", "", ""] and
                  rs[0][5] == x["error"]["code"] and rs[0][6] == x["error"]["message"], rs)
            continue
        check([int(r[1]) for r in rs] == [1, 2, 3], rs)
        for r, p in zip(rs, x["predictions"]):
            check(int(r[2]) == p["index"] and r[3] == p["label"] and
                  float(r[4]) == p["probability"] and r[5] == r[6] == "", (r, p))
    # --output FILE: the same bytes as stdout, nothing on stdout
    o = os.path.join(tmp, "out.jsonl")
    rc, out2, _ = classify(["--output", o] + args, expect=1)
    check(out2 == "" and open(o).read() == out, "--output differs from stdout")
    rc, _, err = classify(["-o", os.path.join(tmp, "no", "such", "dir.csv")] + args, expect=1)
    check("dir.csv" in err, err)
    # an output that cannot be written: exit 1 at once with one line, even with a
    # list still open on stdin
    if os.path.exists("/dev/full"):
        with open("/dev/full", "w") as full:
            p = subprocess.Popen([BIN, "classify", "--model", MODEL, "--max-batch", "1", imgs[0],
                                  "-"], stdin=subprocess.PIPE, stdout=full,
                                 stderr=subprocess.PIPE)
            try:
                rc = p.wait(timeout=60)  # stdin stays open: only the write error ends it
            finally:
                p.stdin.close()
        err = p.stderr.read().decode()
        check(rc == 1 and "cannot write the output" in err, (rc, err))
    # cost bounds: a file over max_body_bytes, an image over max_image_pixels
    big = os.path.join(tmp, "big.png")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 300), np.uint8)).save(big)
    rc, out, _ = classify(["--model", MODEL, "--max-body-bytes", "50000", big, imgs[0]], expect=1)
    x = lines(out)
    check(x[0]["error"]["code"] == "file_too_large" and "predictions" in x[1], x)
    rc, out, _ = classify(["--model", MODEL, "--max-image-pixels", "10000", big, imgs[0]], expect=1)
    x = lines(out)
    check(x[0]["error"]["code"] == "image_too_large" and "predictions" in x[1], x)
    # the progress bar: on a terminal by default, never on a pipe (checked in inputs)
    rc, out, tty = run_pty(["--model", MODEL, d])
    check(rc == 0 and len(lines(out)) == 12, (rc, out))
    check("12/12" in tty and "img/s" in tty and "100%" in tty, repr(tty))
    rc, out, tty = run_pty(["--model", MODEL, "--no-progress", d])
    check(rc == 0 and tty == "", repr(tty))
    # a list that is a pipe is read once, by the classification, not by the
    # progress bar's counting pass
    fifo = os.path.join(tmp, "fifo")
    os.mkfifo(fifo)
    feeder = subprocess.Popen(["sh", "-c", f"printf '%s\\n' {d}/*.png > {fifo}"])
    rc, out, tty = run_pty(["--model", MODEL, "--top-k", "1", "@" + fifo])
    feeder.wait(timeout=60)
    check(rc == 0 and [x["file"] for x in lines(out)] == imgs, (rc, out))
    check("12 files" in tty or "12/12" in tty, repr(tty))
    # a tuned.json (bench --tune on this machine) fills what is not set, as for serve
    import shutil
    m = os.path.join(tmp, "tuned-model")
    shutil.copytree(MODEL, m)
    with open(os.path.join(m, "config.json")) as f:
        cfg = json.load(f)
    cfg.pop("max_batch", None)
    with open(os.path.join(m, "config.json"), "w") as f:
        json.dump(cfg, f)
    subprocess.run([BIN, "bench", "--model", m, "--tune", "--batch", "3", "--workers", "1",
                    "--threads", "1", "--seconds", "0.2"], check=True, capture_output=True,
                   timeout=120)
    rc, out, err = classify(["--model", m, "--stats", d], expect=0)
    st = json.loads(err.splitlines()[-1])
    check((st["batch"], st["workers"], st["threads"], st["files"]) == (3, 1, 1, 12), st)
    rc, out, err = classify(["--model", m, "--stats", "--max-batch", "5", d], expect=0,
                            env={"RESNETD_THREADS_PER_WORKER": "2"})
    st = json.loads(err.splitlines()[-1])
    check((st["batch"], st["threads"]) == (5, 2), st)
    print("formats: csv, --output, limits, progress and tuned.json ok")


def rgb_model(tmp):
    """A small RGB CNN (torch), exported with a dynamic batch, preprocessing
    Resize 40 + CenterCrop 32 + ImageNet mean/std. Returns (dir, net)."""
    import torch
    torch.manual_seed(3)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 12)).eval()
    with torch.no_grad():
        net[-1].weight.mul_(6.0)
    d = os.path.join(tmp, "rgb")
    os.makedirs(d)
    torch.onnx.export(net, torch.zeros(1, 3, 32, 32), os.path.join(d, "model.onnx"),
                      input_names=["input"], output_names=["logits"], opset_version=13,
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"name": "rgb", "input": {"color": "rgb", "resize": 40, "crop": 32},
                   "max_batch": 4}, f)
    return d, net


def photos(out_dir, n=14):
    """Photo-like images of several sizes and formats (bench/make_photos.py's
    generator, small sizes)."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import make_photos
    rng = np.random.default_rng(5)
    os.makedirs(out_dir)
    paths = []
    for i in range(n):
        w, h = [(64, 48), (120, 90), (90, 160), (333, 250), (41, 300)][i % 5]
        img = make_photos.photo(rng, w, h)
        ext = ["jpg", "png", "webp", "jpg"][i % 4]
        p = os.path.join(out_dir, f"p{i:02d}.{ext}")
        if ext == "png" and i % 3 == 0:
            img = img.convert("RGBA")
        img.save(p, quality=90) if ext != "png" else img.save(p)
        paths.append(p)
    return paths


def same_as_server(srv, model, files, k, batch, extra=()):
    """POSTs every file to /v1/models/{model}/classify and compares the
    predictions with classify's lines for the same files: byte-identical at
    batch 1, the same to the printed precision otherwise."""
    rc, out, err = classify(["--model", srv.model_dirs[model], "--top-k", str(k),
                             "--max-batch", str(batch)] + list(extra) + files, expect=0)
    got = lines(out)
    check([x["file"] for x in got] == files, got)
    exact = 0
    for x in got:
        with open(x["file"], "rb") as f:
            st, body = srv.json("POST", f"/v1/models/{model}/classify?top_k={k}", f.read())
        check(st == 200, (st, body))
        check(same_preds(body["predictions"], x["predictions"]),
              f"{x['file']}: classify {x['predictions']}\n server {body['predictions']}")
        exact += json.dumps(body["predictions"]) == json.dumps(x["predictions"])
    check(batch > 1 or exact == len(got), f"{len(got) - exact} differ at batch 1")
    print(f"{model} --max-batch {batch} {' '.join(extra)}: {len(got)} files, {exact} byte-identical to the "
          f"server's predictions, the others equal to the printed precision")
    return got


def test_server(tmp):
    fm = fashion_images(os.path.join(tmp, "fm"), 60)
    ex = sorted(os.path.join(ROOT, "examples", f) for f in os.listdir(os.path.join(ROOT, "examples"))
                if f.endswith(".png"))
    rgb, _ = rgb_model(tmp)
    ph = photos(os.path.join(tmp, "photos"))
    # --max-batch 1 on both sides: the same engine plans, so the same bits
    with ResnetdServer(BIN, ["serve", "--model", MODEL, "--model", rgb, "--max-batch", "1"]) as srv:
        srv.model_dirs = {"fashion-mnist": MODEL, "rgb": rgb}
        for batch, extra in ((1, ()), (1, ("--decode-threads", "2")), (8, ()),
                             (8, ("--decode-threads", "2", "--workers", "2"))):
            same_as_server(srv, "fashion-mnist", fm + ex, 5, batch, extra)
            same_as_server(srv, "rgb", ph, 3, batch, extra)
    print(f"server: {len(fm) + len(ex) + len(ph)} files, predictions equal to POST /v1 answers")


def test_reference(tmp):
    import torch
    import torchvision.transforms as T
    rgb, net = rgb_model(tmp)
    ph = photos(os.path.join(tmp, "photos"))
    rc, out, _ = classify(["--model", rgb, "--top-k", "3"] + ph, expect=0)
    tf = T.Compose([T.Resize(40), T.CenterCrop(32), T.ToTensor(),
                    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    worst = 0.0
    for x in lines(out):
        with torch.no_grad():
            p = torch.softmax(net(tf(Image.open(x["file"]).convert("RGB"))[None]).double(), 1)[0]
        v, i = torch.topk(p, 3)
        top = x["predictions"][0]
        if top["index"] != int(i[0]):  # only a near-tie may flip
            check(abs(float(v[0]) - float(v[1])) < 2e-4, (x, v, i))
        for q in x["predictions"]:
            d = abs(q["probability"] - float(p[q["index"]]))
            worst = max(worst, d)
            check(d < 2e-4, (x["file"], q, float(p[q["index"]])))
    print(f"reference: {len(ph)} photos, top-1 equal to PIL + torch, max |dp| = {worst:.1e}")


def main():
    global BIN, MODEL, DATA
    BIN, MODEL, case = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
    if len(sys.argv) > 4:
        DATA = sys.argv[4]
    test = {"inputs": test_inputs, "formats": test_formats, "server": test_server,
            "reference": test_reference}[case]
    with tempfile.TemporaryDirectory(prefix="classify-cli-") as tmp:
        test(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
