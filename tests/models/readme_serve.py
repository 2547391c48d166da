#!/usr/bin/python3
"""The README's commands: `resnetd` started with no subcommand and no model
serves the bundled Fashion-MNIST model, and the README's curl examples work
against it with the images in examples/.

    readme_serve.py RESNETD REPO_ROOT

1. The curl commands the README shows (raw body, multipart with several files,
   top_k, the model list, metrics) are run with curl from REPO_ROOT against
   the server, and their answers checked: each example image's top-1 label is
   its true class (examples/labels.csv; the examples are test-set images the
   model classifies correctly), top_k is honoured, metrics count the requests.
2. Every `curl` line of README.md's code blocks that targets
   127.0.0.1:8080 or localhost:8080 and uses only files from examples/ is run
   too (port rewritten, --fail added) and must succeed (HTTP 2xx, no "error"
   in a JSON answer, each example image's top-1 label its true class; an
   explain answer without ?class= names the true class too); lines for other
   models (e.g. resnet50) are skipped. A line's `-o FILE` is written into a
   temporary directory (not the source tree) and must be a PNG when it ends
   in .png.
"""

import csv
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from resnetd_server import ResnetdServer  # noqa: E402


def curl(root, cmd, port):
    """Runs the shell command CMD (a curl line written for port 8080) from
    ROOT against PORT; returns stdout. Fails the test on a non-zero exit."""
    cmd = re.sub(r"(127\.0\.0\.1|localhost):8080", rf"\g<1>:{port}", cmd)
    cmd = re.sub(r"^curl ", "curl --fail --show-error --max-time 30 ", cmd)
    r = subprocess.run(["bash", "-c", cmd], cwd=root, capture_output=True, timeout=60)
    assert r.returncode == 0, f"`{cmd}` exited {r.returncode}: {r.stderr.decode()}"
    return r.stdout.decode()


def readme_curl_lines(root):
    """The curl lines (joined across backslash continuations) in README.md's
    fenced code blocks that the default server can answer."""
    path = os.path.join(root, "README.md")
    if not os.path.exists(path):
        return []
    lines, in_code, buf = [], False, ""
    with open(path) as f:
        for raw in f:
            s = raw.rstrip("\n")
            if s.lstrip().startswith("```"):
                in_code = not in_code
                continue
            if not in_code:
                continue
            s = re.sub(r"^\s*\$\s+", "", s)
            if buf or s.lstrip().startswith("curl "):
                buf += s.rstrip("\\").strip() + " "
                if not s.endswith("\\"):
                    lines.append(buf.strip())
                    buf = ""
    out = []
    for line in lines:
        if not re.search(r"(127\.0\.0\.1|localhost):8080", line):
            continue
        m = re.search(r"/v1/models/([^/\s'\"]+)/classify", line)
        if m and m.group(1) != "fashion-mnist":
            continue
        files = re.findall(r"@([^\s'\";]+)", line)
        if any(not f.startswith("examples/") or not os.path.exists(os.path.join(root, f))
               for f in files):
            continue
        out.append(line.split(" | ")[0])  # drop pipes to jq and the like
    return out


def main():
    binary, root = sys.argv[1], os.path.abspath(sys.argv[2])
    with open(os.path.join(root, "examples", "labels.csv")) as f:
        samples = [(r["file"], r["label"]) for r in csv.DictReader(f)]
    assert len(samples) >= 3, "examples/labels.csv lists fewer than 3 images"
    truth = dict(samples)
    (f1, l1), (f2, l2), (f3, l3) = samples[:3]

    # No subcommand, no --model: what `scripts/serve.sh` runs.
    with ResnetdServer(binary, []) as srv:
        p = srv.port
        out = json.loads(curl(root, f"curl -s --data-binary @examples/{f1} "
                                    f"http://127.0.0.1:8080/v1/classify", p))
        assert out["model"] == "fashion-mnist", out
        assert len(out["predictions"]) == 5, f"default top_k is 5: {out}"
        assert out["predictions"][0]["label"] == l1, f"{f1}: {out}"

        out = json.loads(curl(root, f"curl -s -H 'Content-Type: image/png' --data-binary "
                                    f"@examples/{f2} 'http://127.0.0.1:8080/v1/classify?top_k=1'", p))
        assert [q["label"] for q in out["predictions"]] == [l2], f"{f2}: {out}"

        out = json.loads(curl(root, f"curl -s -F file=@examples/{f1} -F file=@examples/{f2} "
                                    f"-F file=@examples/{f3} "
                                    f"'http://127.0.0.1:8080/v1/classify?top_k=2'", p))
        res = out["results"]
        assert [r["filename"] for r in res] == [f1, f2, f3], out
        for r, want in zip(res, [l1, l2, l3]):
            assert len(r["predictions"]) == 2 and r["predictions"][0]["label"] == want, r

        out = json.loads(curl(root, "curl -s http://127.0.0.1:8080/v1/models/fashion-mnist"
                                    "/classify --data-binary @examples/" + f3, p))
        assert out["predictions"][0]["label"] == l3, out

        models = curl(root, "curl -s http://127.0.0.1:8080/v1/models", p)
        assert "fashion-mnist" in models, models
        metrics = curl(root, "curl -s http://127.0.0.1:8080/metrics", p)
        m = re.search(r'^resnetd_images_total\{[^}]*model="fashion-mnist"[^}]*\}\s+(\S+)',
                      metrics, re.M)
        assert m and float(m.group(1)) >= 6, f"resnetd_images_total: {m and m.group(0)}"

        extra = readme_curl_lines(root)
        outdir = tempfile.TemporaryDirectory(prefix="readme-")
        for line in extra:
            outs = re.findall(r"-o\s+(\S+)", line)
            run = re.sub(r"-o\s+(\S+)",
                         lambda m: "-o " + os.path.join(outdir.name, os.path.basename(m.group(1))),
                         line)
            body = curl(root, run, p)  # --fail: any HTTP error fails the test
            for o in outs:
                with open(os.path.join(outdir.name, os.path.basename(o)), "rb") as f:
                    data = f.read()
                assert not o.endswith(".png") or data.startswith(b"\x89PNG\r\n\x1a\n"), \
                    f"`{line}`: {o} is not a PNG: {data[:40]!r}"
            if not body.lstrip().startswith("{"):
                continue
            out = json.loads(body)
            assert "error" not in out, f"README line `{line}`: {body[:300]}"
            # Classifications of example images must name their true class.
            files = re.findall(r"@examples/([^\s'\";]+)", line)
            if "predictions" in out and len(files) == 1:
                assert out["predictions"][0]["label"] == truth[files[0]], f"`{line}`: {out}"
            if "map" in out and "class=" not in line and len(files) == 1:  # explain
                assert out["label"] == truth[files[0]], f"`{line}`: {body[:300]}"
            for r in out.get("results", []):
                assert r["predictions"][0]["label"] == truth[r["filename"]], f"`{line}`: {r}"
        print(f"checked {len(samples[:3])} examples, 6 built-in commands and "
              f"{len(extra)} README curl lines: {[shlex.split(x)[-1] for x in extra]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
