"""The demo page (GET /) in headless Debian chromium via npm playwright-core:
upload an image, wait for the result, check the top-1 label and the top-5
against the API (/v1) for the same bytes, the server-side time, keyboard
reachability, a clearly shown API error, and that the page makes no request
outside the server. Screenshots are kept in OUT_DIR as test artifacts.
With --auth the server runs with an api_key: the page still loads without
one, asks for the key (401 shown), refuses a wrong one, lists the models and
classifies with the right one (same top-1 as the API with the key), keeps it
over a reload (sessionStorage) and forgets it on request. Without --auth the
"why?" toggle is checked too: by keyboard it shows the class activation map of
the top-1 class (the very PNG /v1/models/{m}/explain gives for it) over the
part of the picture the model saw (a non-square picture on the rgb model:
the box is torchvision's Resize + CenterCrop), and hides it again.
usage: test_demo.py RESNETD_BINARY NODE OUT_DIR [FASHION_MNIST_DATA_DIR] [--auth]"""

import hashlib
import io
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


def check_screenshots(out_dir, names):
    for f in names:
        check(os.path.getsize(os.path.join(out_dir, f)) > 5000, f"screenshot {f}")


def crop_box(path, resize, crop):
    """Where torchvision's Resize(resize) + CenterCrop(crop) lie in the
    picture, in percent: [left, top, width, height]."""
    import torchvision.transforms as T
    from PIL import Image
    im = Image.open(path)
    w, h = im.size
    rw, rh = T.Resize(resize)(im).size
    s = resize / min(w, h)
    left, top = int(round((rw - crop) / 2.0)), int(round((rh - crop) / 2.0))
    return [left / s / w * 100, top / s / h * 100, crop / s / w * 100, crop / s / h * 100]


def check_why(page, apis, model, want):
    """The "why?" toggle: off and enabled after a classification, the map of
    the top-1 class shown by keyboard over the model's crop, hidden again."""
    print(json.dumps({k: page[k] for k in ("whyBefore", "why", "whyOff", "why2")}, indent=1))
    v = page["whyBefore"]
    check(v["state"] == "off" and v["pressed"] == "false" and not v["disabled"] and
          v["camHidden"], f"why? before: off, enabled: {v}")
    crop = 28  # the gray and fashion-mnist models
    for w, api, rows, m, size in [(page["why"], apis[0], page["rows"], model, (crop, crop)),
                                  (page["why2"], apis[1], page["rows2"], "rgb", (32, 32))]:
        v = w["view"]
        check(w["status"] == 200 and w["type"] == "image/png" and
              w["url"].endswith(f"/v1/models/{m}/explain?format=png&class={rows[0]['index']}"),
              f"why? asked for the top-1 class's PNG: {w['url']} {w['status']}")
        check(w["sha256"] == api, f"why? on {m}: the page shows the API's PNG, pixel for pixel")
        check(v["state"] == "shown" and v["pressed"] == "true" and not v["camHidden"] and
              tuple(v["camSize"]) == size, f"why? on {m}: the map is shown: {v}")
        check(rows[0]["label"] in v["note"] and rows[0]["label"] in v["camAlt"],
              f"why? names the class: {v['note']!r}")
        check(not v["camOnly"], f"why? on {m}: laid over the picture")
    if model == "fashion-mnist":  # a 28x28 picture: the map covers it
        check(all(abs(a - 100 * (i >= 2)) < 1e-3
                  for i, a in enumerate(page["why"]["view"]["box"])),
              f"why? a square picture: the map covers it: {page['why']['view']['box']}")
    got = page["why2"]["view"]["box"]
    check(all(abs(a - b) < 1e-3 for a, b in zip(got, want)),
          f"why? on a {page['why2']['view']['previewSize']} picture: box {got} vs {want}")
    check(want[2] < 100 or want[3] < 100, f"the second picture is not square: {want}")
    v = page["whyOff"]
    check(v["state"] == "off" and v["pressed"] == "false" and v["camHidden"],
          f"why? off again: {v}")


def check_auth_page(page, api, served, model, key, base):
    """The key prompt's walk-through (demo_check.js with a key)."""
    print(json.dumps({k: page[k] for k in ("noKey", "wrongKey", "rightKey", "forgotten", "rows",
                                           "api")}, indent=1).replace(key, "<key>"))
    check(page["pageStatus"] == 200 and "default-src 'none'" in page["csp"],
          "page + CSP without a key")
    v = page["noKey"]
    check(v["auth"] == "needed" and v["panelVisible"] and not v["statusVisible"],
          f"no key: the key field shows: {v}")
    check(v["alertRole"] == "alert" and "401" in v["alert"] and "needs an API key" in v["alert"],
          f"no key: the alert says the server needs a key: {v['alert']!r}")
    check(v["inputType"] == "password" and v["labelFor"] == ["API key"],
          f"a labelled password field: {v}")
    check(v["focused"] == "api-key" and page["afterInputTab"] == "key-submit",
          f"keyboard: field focused ({v['focused']}), Tab reaches the button "
          f"({page['afterInputTab']})")
    check(v["modelsLoaded"] is None and v["session"] is None, f"no key: nothing loaded: {v}")
    v = page["wrongKey"]
    check(v["auth"] == "needed" and v["fails"] == 2 and v["panelVisible"],
          f"wrong key: the field stays: {v}")
    check("401" in v["alert"] and "not accepted" in v["alert"] and
          "invalid bearer token" in v["alert"], f"wrong key: the 401 shown: {v['alert']!r}")
    check(v["inputValue"] == key + "-wrong" and v["focused"] == "api-key",
          "wrong key: the typed key stays in the focused field to correct")
    check(v["session"] is None and v["modelsLoaded"] is None, f"wrong key not kept: {v}")
    v = page["rightKey"]
    check(v["auth"] == "key" and not v["panelVisible"] and v["statusVisible"],
          f"right key: the field hides, 'Forget key' shows: {v}")
    check(v["session"] == key and v["localKeys"] == [] and v["inputValue"] == "",
          "right key: kept in sessionStorage only, not left in the field")
    check(page["models"] == served, f"model chooser {page['models']} vs served {served}")
    check(page["state"] == "done", f"page state {page['state']}")
    want = api["predictions"]
    check(page["rows"][0]["label"] == want[0]["label"],
          f"top-1 on the page {page['rows'][0]} vs the API with the key {want[0]}")
    check([(x["label"], x["index"]) for x in page["rows"]] ==
          [(p["label"], p["index"]) for p in want], f"top-5 {page['rows']} vs {want}")
    v = page["reloaded"]
    check(v["auth"] == "key" and not v["panelVisible"] and v["session"] == key and
          v["modelsLoaded"] == str(len(served)), f"reload: the tab keeps the key: {v}")
    v = page["forgotten"]
    check(v["auth"] == "needed" and v["panelVisible"] and not v["statusVisible"] and
          v["session"] is None and "401" in v["alert"], f"forget key: {v}")
    check(not set(page["modelsAfterForget"]) & set(served) and page["rowsAfterForget"] == 0,
          f"forget key: models {page['modelsAfterForget']}, {page['rowsAfterForget']} rows left")
    bearer = f"Bearer {key}"
    want_api = [["/v1/models", None], ["/v1/models", bearer + "-wrong"], ["/v1/models", bearer],
                [f"/v1/models/{model}/classify", bearer], ["/v1/models", bearer],
                ["/v1/models", None]]
    check(page["api"] == want_api, "the key on every API request, and only the key: "
          f"{json.dumps(page['api']).replace(key, '<key>')}")
    check(not page["blocked"], f"the page asked for outside resources: {page['blocked']}")
    check(all(u.split(" ", 1)[1].startswith(base + "/") for u in page["requests"]),
          f"requests {page['requests']}")
    check(all("401" in e for e in page["consoleErrors"]), f"console errors {page['consoleErrors']}")


def main():
    auth = "--auth" in sys.argv[1:]
    argv = [a for a in sys.argv[1:] if a != "--auth"]
    binary, node, out_dir = os.path.abspath(argv[0]), argv[1], os.path.abspath(argv[2])
    data_dir = argv[3] if len(argv) > 3 else None
    key = "d3mo-" + os.urandom(9).hex() + "+/=" if auth else None
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
        if key:
            args += ["--api-key", key]
        wide = os.path.join(tmp, "wide.jpg")  # a non-square picture for the rgb model
        with open(wide, "wb") as f:
            f.write(ptest.make_image(4, "jpg"))
        srv = ptest.Server(binary, args)
        with srv.session():
            with open(image, "rb") as f:
                data = f.read()
            hdr = {"Authorization": f"Bearer {key}"} if key else {}
            s, _, api = srv.json("POST", f"/v1/models/{model}/classify?top_k=5", data, hdr)
            check(s == 200, f"/v1 {s} {api}")
            if key:  # the server really is gated, except the page's files
                s = srv.request("POST", f"/v1/models/{model}/classify?top_k=5", data)[0]
                check(s == 401, f"/v1 classify without the key: {s}")
                for path in ["/", "/demo/app.js", "/demo/style.css"]:
                    s = srv.request("GET", path)[0]
                    check(s == 200, f"{path} without the key: {s}")
            r = subprocess.run([node, os.path.join(HERE, "demo_check.js"), srv.url, model, image,
                                bad, out_dir] + ([key] if key else []), capture_output=True,
                               timeout=240,
                               env=dict(os.environ, DEMO_WHY_IMAGE=f"rgb:{wide}",
                                        NODE_PATH=os.path.join(ptest.SRC, "tests",
                                                               "node_modules")))
            if r.returncode != 0:
                raise AssertionError("demo_check.js failed:\n" + r.stderr.decode(errors="replace"))
            page = json.loads(r.stdout)
            if not key:  # the PNGs the API gives for the classes the page explained
                apis = []
                for m, path, rows in [(model, image, page["rows"]), ("rgb", wide, page["rows2"])]:
                    with open(path, "rb") as f:
                        s, h, png = srv.request(
                            "POST", f"/v1/models/{m}/explain?format=png&class={rows[0]['index']}",
                            f.read())
                    check(s == 200, f"explain {m}: {s}")
                    from PIL import Image
                    px = Image.open(io.BytesIO(png)).convert("RGB").tobytes()
                    apis.append(hashlib.sha256(px).hexdigest())
                wide_box = crop_box(wide, 36, 32)
        rc = srv.rc
    check(rc == 0, f"server exit code {rc}")
    served = ["rgb", "gray"] + (["fashion-mnist"] if model == "fashion-mnist" else [])
    if key:
        check_auth_page(page, api, served, model, key, srv.url)
        check_screenshots(out_dir, ["demo-key.png", "demo-key-wrong.png", "demo-key-done.png"])
        print(f"demo with api_key ok: prompt, 401 on a wrong key, top-1 '{page['rows'][0]['label']}'"
              f" equals the API's; screenshots in {out_dir}")
        return 0
    print(json.dumps({k: page[k] for k in ("models", "rows", "timing", "errorTitle",
                                           "errorDetail", "tabOrder")}, indent=1))
    check(page["pageStatus"] == 200 and "default-src 'none'" in page["csp"], "page + CSP")
    check(page["models"] == served, f"model chooser {page['models']} vs served {served}")
    v = page["keyPrompt"]
    check(v["auth"] == "open" and not v["panelVisible"] and not v["statusVisible"],
          f"no api_key: nothing of the key prompt shows: {v}")
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
    check_why(page, apis, model, wide_box)
    check_screenshots(out_dir, ["demo.png", "demo-error.png", "demo-why.png", "demo-why-2.png"])
    print(f"demo ok: top-1 '{page['rows'][0]['label']}' equals the API's; screenshots in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
