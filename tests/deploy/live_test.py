"""live_test.py — deploy/'s files against a live resnetd.

  /usr/bin/python3 tests/deploy/live_test.py RESNETD_BINARY MODEL [BUILD_DIR]

- Every metric the Grafana dashboard and the alert rules query exists in a
  live resnetd's /metrics (after one classification, so that per-model series
  exist), with the label names they select on and, for exact matchers such as
  reason="queue_full", a series with that label value.
- Every RESNETD_* variable set by the Dockerfile, deploy/compose.yaml and the
  Kubernetes ConfigMap is a real configuration key: `resnetd serve
  --print-config` accepts it and reports its value.
- The install tree the Dockerfile copies into the image (cmake --install of
  BUILD_DIR), run with the image's ENV, serves the bundled default model.
"""

import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploylib as dl  # noqa: E402
import static_test  # noqa: E402

BINARY = MODEL = BUILD_DIR = None
PROM_LABELS = {"job", "instance", "env", "stack"}  # added by Prometheus / deploy's config
SYNTHETIC = {"up"}                                  # made by Prometheus, not exported
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan", "atan2"}


def query_exprs():
    """[(where, PromQL)] from the dashboard (targets and template variables)
    and from every alert/recording rule."""
    out = []
    with open(os.path.join(dl.DEPLOY, "grafana", "dashboards", "resnetd.json")) as f:
        dash = json.load(f)
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((f"dashboard panel {p['title']!r}", t["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.match(r"label_values\((.*),\s*(\w+)\)$", q or "")
        if m:  # the metric must exist and carry the label
            out.append((f"dashboard variable {v['name']}", f"count by ({m.group(2)}) ({m.group(1)})"))
    rules_dir = os.path.join(dl.DEPLOY, "prometheus", "rules")
    for fn in sorted(os.listdir(rules_dir)):
        with open(os.path.join(rules_dir, fn)) as f:
            for g in yaml.safe_load(f)["groups"]:
                for r in g["rules"]:
                    out.append((f"rule {r.get('alert') or r.get('record')}", r["expr"]))
    return out


def metric_refs(expr):
    """PromQL -> (metric names, [(name, label, op, value)] matchers,
    labels named in by/without/on/ignoring clauses)."""
    matchers, grouping = [], set()
    for m in re.finditer(r'([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}', expr):
        for lm in re.finditer(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', m.group(2)):
            matchers.append((m.group(1), lm.group(1), lm.group(2), lm.group(3)))
    for m in re.finditer(r'\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)', expr):
        grouping.update(x.strip() for x in m.group(1).split(",") if x.strip())
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r'\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)', " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", s):
        if m.group(2) or m.group(1) in KEYWORDS:
            continue
        names.add(m.group(1))
    return names, matchers, grouping


class LiveMetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="resnetd-live-")
        port = dl.free_port()
        cls.model = dl.model_dir(MODEL, cls.tmp)
        cls.proc = dl.Proc("resnetd", dl.resnetd_argv(BINARY, port, cls.model), cls.tmp)
        base = f"http://127.0.0.1:{port}"
        try:
            dl.wait_ready(cls.proc, base + "/readyz", 120, "resnetd ready")
        except AssertionError:
            cls.proc.stop()
            raise AssertionError("resnetd did not get ready:\n" + cls.proc.tail())
        img = dl.make_png(os.path.join(cls.tmp, "img.png"))
        with open(img, "rb") as f:
            st, _, body = dl.http("POST", base + "/v1/classify", f.read(), {"Content-Type": "image/png"})
        assert st == 200, body
        _, _, text = dl.http("GET", base + "/metrics")
        cls.samples, cls.types = dl.parse_exposition(text.decode())
        cls.proc.stop()

    @classmethod
    def tearDownClass(cls):
        dl.cleanup_dir(cls.tmp)

    def labels_of(self, name):
        return [lab for n, lab, _ in self.samples if n == name]

    def test_names_exist(self):
        exported = {n for n, _, _ in self.samples}
        checked = 0
        for where, expr in query_exprs():
            names, matchers, grouping = metric_refs(expr)
            for n in names - SYNTHETIC:
                checked += 1
                self.assertIn(n, exported, f"{where}: metric {n} is not in resnetd's /metrics")
            known = set(PROM_LABELS) | {"le"}
            for n in names - SYNTHETIC:
                for lab in self.labels_of(n):
                    known |= set(lab)
            for lbl in grouping:
                self.assertIn(lbl, known, f"{where}: groups by label {lbl!r} no metric in it has")
            for n, lbl, op, val in matchers:
                if not n or n in SYNTHETIC or lbl in PROM_LABELS:
                    continue
                series = self.labels_of(n)
                self.assertTrue(any(lbl in lab for lab in series),
                                f"{where}: {n} has no label {lbl!r}")
                if "$" in val or op in ("!=", "!~"):
                    continue  # Grafana variable or negative matcher
                vals = {lab.get(lbl) for lab in series}
                rx = re.compile(val if op == "=~" else re.escape(val))
                self.assertTrue(any(v is not None and rx.fullmatch(v) for v in vals),
                                f"{where}: no {n} series with {lbl}{op}\"{val}\" (values: {sorted(vals)})")
        self.assertGreater(checked, 20)

    def test_contract_families(self):
        # The families deploy/ relies on, with the type the queries assume.
        want = {"resnetd_requests_total": "counter", "resnetd_images_total": "counter",
                "resnetd_rejected_total": "counter", "resnetd_queue_depth": "gauge",
                "resnetd_request_duration_seconds": "histogram", "resnetd_batch_size": "histogram",
                "resnetd_queue_duration_seconds": "histogram", "process_start_time_seconds": "gauge"}
        for fam, typ in want.items():
            self.assertEqual(self.types.get(fam), typ, fam)



class ExtractorTest(unittest.TestCase):
    def test_extractor(self):
        # The extractor itself: names, not functions, labels or durations.
        names, matchers, grouping = metric_refs(
            'histogram_quantile(0.99, sum by (le, model) (rate(a_bucket{code=~"5..", x="y"}[5m])))'
            ' / on (job) group_left b_total or absent(up{job="r"}) > 0.5')
        self.assertEqual(names, {"a_bucket", "b_total", "up"})
        self.assertIn(("a_bucket", "code", "=~", "5.."), matchers)
        self.assertEqual(grouping, {"le", "model", "job"})


def env_sets():
    """{where: {RESNETD_X: value}} from the Dockerfile, compose and the ConfigMap."""
    sets = {}
    rt = static_test.stages(static_test.dockerfile_instructions(static_test.read("Dockerfile")))[-1][1]
    d = {}
    for ins, arg in rt:
        if ins == "ENV":
            d.update(dict(re.findall(r"(RESNETD_\w+)=(\S+)", arg)))
    sets["Dockerfile"] = d
    with open(os.path.join(dl.DEPLOY, "compose.yaml")) as f:
        comp = yaml.safe_load(f)
    sets["compose.yaml"] = {k: str(v) for k, v in comp["services"]["resnetd-1"]["environment"].items()
                            if k.startswith("RESNETD_")}
    cm = static_test.k8s_docs()["ConfigMap"][0][1]
    sets["k8s configmap"] = {k: str(v) for k, v in cm["data"].items() if k.startswith("RESNETD_")}
    return sets


class EnvConfigTest(unittest.TestCase):
    def test_env_keys_are_config_keys(self):
        tmp = tempfile.mkdtemp(prefix="resnetd-live-env-")
        self.addCleanup(dl.cleanup_dir, tmp)
        model = dl.model_dir(MODEL, tmp)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("RESNETD_")}
        for where, env in env_sets().items():
            self.assertTrue(env, where)
            r = subprocess.run([BINARY, "serve", "--model", model, "--print-config"],
                               env={**base_env, **env}, capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, f"{where}: --print-config rejected {env}: {r.stderr}")
            cfg = json.loads(r.stdout)
            for k, v in env.items():
                key = k[len("RESNETD_"):].lower()
                self.assertIn(key, cfg, f"{where}: {k} is not a config key")
                got = cfg[key]
                if isinstance(got, bool):
                    self.assertEqual(got, v.lower() in ("1", "true", "yes", "on"), f"{where}: {k}")
                elif isinstance(got, (int, float)):
                    self.assertEqual(got, float(v), f"{where}: {k}")
                else:
                    self.assertEqual(str(got), v, f"{where}: {k}")


class ImageEnvTest(unittest.TestCase):
    def test_installed_tree_with_image_env(self):
        """The image's layout and environment, natively: `cmake --install` into
        a staging tree (as the Dockerfile's build stage does), then the
        installed binary with the Dockerfile's ENV, an empty directory standing
        in for /models. It must serve the bundled default model (found under
        ../share/resnetd/models), classify, and exit 0 on SIGTERM (it is the
        container's PID 1)."""
        if not BUILD_DIR:
            self.skipTest("no build directory given")
        env = dict(env_sets()["Dockerfile"])
        self.assertIn("RESNETD_MODEL_REPOSITORY", env)
        with tempfile.TemporaryDirectory() as tmp:
            stage = os.path.join(tmp, "stage")
            r = subprocess.run(["cmake", "--install", BUILD_DIR, "--prefix", "/usr/local"],
                               env={**os.environ, "DESTDIR": stage}, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            binary = os.path.join(stage, "usr", "local", "bin", "resnetd")
            self.assertTrue(os.access(binary, os.X_OK), binary)
            models = os.path.join(stage, "usr", "local", "share", "resnetd", "models")
            self.assertTrue(glob.glob(os.path.join(models, "*", "model.onnx")),
                            f"no model installed under {models}")
            repo = os.path.join(tmp, "models")
            os.mkdir(repo)
            port = dl.free_port()
            env.update(RESNETD_MODEL_REPOSITORY=repo, RESNETD_HOST="127.0.0.1", RESNETD_PORT=str(port),
                       RESNETD_GRPC_PORT="0")
            full = {k: v for k, v in os.environ.items() if not k.startswith("RESNETD_")}
            p = dl.Proc("resnetd-installed", [binary, "serve"], tmp, env={**full, **env})
            try:
                base = f"http://127.0.0.1:{port}"
                dl.wait_ready(p, base + "/readyz", 120, "installed resnetd, empty model repository")
                _, _, body = dl.http("GET", base + "/v1/models")
                served = [m["name"] for m in json.loads(body)["models"]]
                self.assertEqual(len(served), 1, body)
                img = dl.make_png(os.path.join(tmp, "img.png"))
                with open(img, "rb") as f:
                    st, _, body = dl.http("POST", base + "/v1/classify", f.read())
                self.assertEqual(st, 200, body)
                self.assertEqual(json.loads(body)["model"], served[0])
                # The image's HEALTHCHECK command, run by /bin/sh as Docker does.
                self.assertEqual(self.healthcheck(env), 0, "HEALTHCHECK fails on a healthy server")
            finally:
                code = p.stop(timeout=15)
            self.assertEqual(code, 0, "exit code after SIGTERM:\n" + p.tail())
            self.assertNotEqual(self.healthcheck(env), 0, "HEALTHCHECK passes with no server")

    @staticmethod
    def healthcheck(env):
        rt = static_test.stages(static_test.dockerfile_instructions(static_test.read("Dockerfile")))[-1][1]
        hc = [a for i, a in rt if i == "HEALTHCHECK"][-1]
        cmd = hc[hc.index(" CMD ") + 5:].strip()
        full = {k: v for k, v in os.environ.items() if not k.startswith("RESNETD_")}
        return subprocess.run(["/bin/sh", "-c", cmd], env={**full, **env}, capture_output=True,
                              timeout=30).returncode


if __name__ == "__main__":
    BINARY, MODEL = sys.argv[1], sys.argv[2]
    BUILD_DIR = sys.argv[3] if len(sys.argv) > 3 and not sys.argv[3].startswith("-") else None
    del sys.argv[1:4 if BUILD_DIR else 3]
    unittest.main(verbosity=2)
