"""The demo page (GET /) in headless Debian chromium via npm playwright-core:
upload an image, wait for the result, check the top-1 label and the top-5
against the API (/v1) for the same bytes, the server-side time, keyboard
reachability, a clearly shown API error, and that the page makes no request
outside the server. Screenshots are kept in OUT_DIR as test artifacts.
usage: test_demo.py RESNETD_BINARY NODE OUT_DIR [FASHION_MNIST_DATA_DIR]"""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptest  # noqa: E402
from ptest import check  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def test_image(tmp, data_dir):
    """A Fashion-MNIST test image when the model and data set are here, else a
    generated one. Returns (model name, path)."""
    fm = ptest.fashion_mnist_dir()
    if fm and data_dir and os.path.isdir(data_dir):
        out = os.path.join(tmp, "fm")
        subprocess.run([sys.executable, os.path.join(ptest.SRC, "tools", "fashion_mnist_images.py"),
                        out, "--data", data_dir, "--index", "0"], check=True,
                       stdout=subprocess.DEVNULL)
        pngs = sorted(f for f in os.listdir(out) if f.endswith(".png"))
        return "fashion-mnist", os.path.join(out, pngs[0])
    path = os.path.join(tmp, "shirt.jpg")
    with open(path, "wb") as f:
        f.write(ptest.make_image(4, "jpg"))
    return "gray", path


def main():
    binary, node, out_dir = os.path.abspath(sys.argv[1]), sys.argv[2], os.path.abspath(sys.argv[3])
    data_dir = sys.argv[4] if len(sys.argv) > 4 else None
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="proto-demo-") as tmp:
        models = ptest.export_models(tmp)
        args = ["--model", models["rgb"][0], "--model", models["gray"][0]]
        model, image = test_image(tmp, data_dir)
        if model == "fashion-mnist":
            args += ["--model", ptest.fashion_mnist_dir()]
        bad = os.path.join(tmp, "notes.txt")
        with open(bad, "w") as f:
            f.write("this is not an image\n")
        srv = ptest.Server(binary, args)
        try:
            with open(image, "rb") as f:
                s, _, api = srv.json("POST", f"/v1/models/{model}/classify?top_k=5", f.read())
            check(s == 200, f"/v1 {s} {api}")
            r = subprocess.run([node, os.path.join(HERE, "demo_check.js"), srv.url, model, image,
                                bad, out_dir], capture_output=True, timeout=240,
                               env=dict(os.environ, NODE_PATH=os.path.join(ptest.SRC, "tests",
                                                                            "node_modules")))
            if r.returncode != 0:
                raise AssertionError("demo_check.js failed:\n" + r.stderr.decode(errors="replace"))
            page = json.loads(r.stdout)
        except Exception:
            sys.stderr.write(srv.logs().decode(errors="replace")[-3000:])
            raise
        finally:
            rc = srv.stop()
            srv.cleanup()
    check(rc == 0, f"server exit code {rc}")
    print(json.dumps({k: page[k] for k in ("models", "rows", "timing", "errorTitle",
                                           "errorDetail", "tabOrder")}, indent=1))
    check(page["pageStatus"] == 200 and "default-src 'none'" in page["csp"], "page + CSP")
    served = [m for m in (["rgb", "gray"] + (["fashion-mnist"] if model == "fashion-mnist" else []))]
    check(page["models"] == served, f"model chooser {page['models']} vs served {served}")
    check(page["state"] == "done", f"page state {page['state']}")
    want = api["predictions"]
    check(page["rows"][0]["label"] == want[0]["label"],
          f"top-1 on the page {page['rows'][0]} vs the API {want[0]}")
    check([(x["label"], x["index"]) for x in page["rows"]] ==
          [(p["label"], p["index"]) for p in want], f"top-5 {page['rows']} vs {want}")
    for x, p in zip(page["rows"], want):
        check(x["percent"] == f"{p['probability'] * 100:.1f}%", f"percent {x} vs {p}")
        check(abs(float(x["bar"].rstrip("%")) - p["probability"] * 100) < 0.01, f"bar {x}")
    check(page["timing"].startswith("Server time ") and " ms" in page["timing"],
          f"server-side latency shown: {page['timing']!r}")
    check("model" in page["tabOrder"] and "file" in page["tabOrder"] and
          page["tabOrder"].index("model") < page["tabOrder"].index("file"),
          f"keyboard: tab order {page['tabOrder']}")
    check(page["errorVisible"] and "415" in page["errorTitle"] and
          "unsupported_image" in page["errorTitle"] and page["errorDetail"],
          f"API error shown: {page['errorTitle']!r} {page['errorDetail']!r}")
    check(page["rowsAfterError"] == 0, "stale predictions cleared on error")
    check(not page["blocked"], f"the page asked for outside resources: {page['blocked']}")
    check(all(u.split(" ", 1)[1].startswith(srv.url + "/") for u in page["requests"]),
          f"requests {page['requests']}")
    check(not page["consoleErrors"] or all("415" in e for e in page["consoleErrors"]),
          f"console errors {page['consoleErrors']}")
    for f in ("demo.png", "demo-error.png"):
        check(os.path.getsize(os.path.join(out_dir, f)) > 5000, f"screenshot {f}")
    print(f"demo ok: top-1 '{page['rows'][0]['label']}' equals the API's; screenshots in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
