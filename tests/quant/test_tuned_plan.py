#!/usr/bin/python3
"""The tuned plan end to end: `resnetd bench --tune` saves tuned.json beside
the model (both picks + this machine's fingerprint), and `serve` uses its
workers / threads_per_worker / max_batch for exactly the options the user did
not set (flag, env, config file, or the model's config.json max_batch).
A foreign or malformed tuned.json is ignored with one warning and the server
still serves; an unwritable model directory is a warning, not a failure.
Each pick also holds "conv_algorithms" (per Conv node the algorithm timed
fastest); serve passes the pick's to the engine (logged as conv_algorithms=N)
and a value outside the known set makes the file ignored.

usage: test_tuned_plan.py RESNETD MODEL_DIR"""
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from quant_common import run, save_png, write_config

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import resnetd_serve  # noqa: E402


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


class Server(resnetd_serve.Server):
    """`resnetd serve ARGS` on 127.0.0.1 with an OS-chosen port (tests/lib/
    resnetd_serve.py); runs in `work`, its log kept there."""

    def __init__(self, resnetd, args, work, env=None):
        super().__init__(resnetd, args, env=env, cwd=work, ready_timeout=60, probe_timeout=30,
                         stop_timeout=20,
                         log_path=os.path.join(work, "serve-%d.log" % time.monotonic_ns()))

    def model(self):
        st, _, body = self.request("GET", "/v1/models")
        check(st == 200, "/v1/models: %d" % st)
        return json.loads(body)["models"][0]


def serve(resnetd, model, work, args=(), env=None):
    """Starts a server, returns (its model entry of /v1/models, the server)
    after checking that it classifies; the caller stops it."""
    s = Server(resnetd, ["--model", model] + list(args), work, env)
    try:
        st, _, body = s.request("POST", "/v1/classify", IMAGE)
        check(st == 200 and len(json.loads(body)["predictions"]) == 5,
              "classify: %d %r" % (st, body[:200]))
        return s.model(), s
    except BaseException:
        s.stop()
        raise


def effective(m):
    c = m["config"]
    return c["workers"], c["threads_per_worker"], c["max_batch"]


ALGOS = ("direct", "channels_last", "winograd")


def expect(resnetd, model, work, want, applied, args=(), env=None, warn=None, convs=None):
    """Serves model and checks (workers, threads, max_batch) in effect, which of
    them came from tuned.json, and the startup log (one info line when any
    tuned value applies; one warning containing `warn` when given)."""
    m, s = serve(resnetd, model, work, args, env)
    try:
        check(effective(m) == want, "%s %s: in effect %s, want %s" %
              (args, env, effective(m), want))
        check(m["workers"] == want[0] and m["max_batch"] == want[2], m)
        info = s.log_lines("tuned plan applied")
        warns = s.log_lines("tuned.json ignored")
        if applied:
            t = m["config"]["tuned"]
            check(isinstance(t, dict) and t["applied"] == applied and
                  os.path.samefile(t["file"], os.path.join(model, "tuned.json")),
                  "%s: tuned %s, want %s" % (args, t, applied))
            check(len(info) == 1 and "tuned.json" in info[0]["detail"], info)
            for k in applied:
                v = {"workers": want[0], "threads_per_worker": want[1], "max_batch": want[2]}[k]
                check("%s=%d" % (k, v) in info[0]["detail"], (k, info))
            if convs is not None:
                check("conv_algorithms=%d" % convs in info[0]["detail"], (convs, info))
        else:
            check(m["config"]["tuned"] is False, m["config"])
            check(not info, info)
        if warn:
            check(len(warns) == 1 and warn in warns[0]["detail"] and
                  "tuned.json" in warns[0]["detail"], "want one warning with %r: %s" %
                  (warn, warns))
        else:
            check(not warns, warns)
    finally:
        s.stop()
    check(s.proc.returncode == 0, "serve exit %s" % s.proc.returncode)


def cpu_model_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def rewrite(path, fn):
    with open(path) as f:
        t = json.load(f)
    fn(t)
    with open(path, "w") as f:
        json.dump(t, f)


def main():
    global IMAGE
    resnetd, src = os.path.abspath(sys.argv[1]), sys.argv[2]
    work = tempfile.mkdtemp(prefix="tuned-plan-")
    try:
        rng = np.random.default_rng(3)
        save_png(os.path.join(work, "x.png"), rng.integers(0, 256, (28, 28), dtype=np.uint8))
        with open(os.path.join(work, "x.png"), "rb") as f:
            IMAGE = f.read()
        model = os.path.join(work, "fm")
        shutil.copytree(src, model)
        with open(os.path.join(model, "config.json")) as f:
            mcfg = json.load(f)
        mcfg.pop("max_batch", None)  # so max_batch is the tuned plan's to set
        write_config(model, mcfg)
        cores = os.sysconf("SC_NPROCESSORS_ONLN")
        version = run([resnetd, "--version"]).stdout.split()[-1]

        # 1. bench --tune saves what it prints.
        p = run([resnetd, "bench", "--model", model, "--tune", "--seconds", "0.2"])
        lines = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
        printed = {l["tuned"]: l for l in lines if "tuned" in l}
        tpath = os.path.join(model, "tuned.json")
        check(os.path.isfile(tpath), "no tuned.json: " + p.stderr[-500:])
        check(not [f for f in os.listdir(model) if f.startswith("tuned.json.")],
              "temporary file left: %s" % os.listdir(model))
        with open(tpath) as f:
            saved = json.load(f)
        for goal in ("throughput", "latency"):
            a, b = printed[goal], saved[goal]
            for k in ("batch", "workers", "threads"):
                check(a[k] == b[k], "%s.%s: printed %s, saved %s" % (goal, k, a[k], b[k]))
            for k in ("images_per_second", "latency_ms_p50"):
                check(abs(a[k] - b[k]) <= 0.0051, "%s.%s: %s vs %s" % (goal, k, a[k], b[k]))
        fp = saved["fingerprint"]
        check(fp["cores"] == cores and fp["cpu_model"] == cpu_model_name() and
              fp["precision"] == "fp32" and fp["version"] == version and fp["isa"],
              "fingerprint %s" % fp)
        check(saved["model_file"] == "model.onnx", saved)
        # conv algorithms: timed at each pick's batch and threads, printed and saved alike
        timed = {l["tuned_convs"]: l for l in lines if "tuned_convs" in l}
        for goal in ("throughput", "latency"):
            ca = saved[goal]["conv_algorithms"]
            check(isinstance(ca, dict) and all(v in ALGOS for v in ca.values()), ca)
            check(timed[goal]["conv_algorithms"] == ca and
                  timed[goal]["batch"] == saved[goal]["batch"] and
                  timed[goal]["threads"] == saved[goal]["threads"], (timed[goal], ca))
            check(sum(timed[goal]["nodes"].values()) == len(ca) and
                  timed[goal]["chosen_ms"] <= timed[goal]["default_ms"] + 1e-9, timed[goal])
        print("saved:", saved["throughput"], saved["latency"])

        # 2. serve uses the measured throughput pick for all three options.
        t = saved["throughput"]
        expect(resnetd, model, work, (t["workers"], t["threads"], t["batch"]),
               ["workers", "threads_per_worker", "max_batch"], convs=len(t["conv_algorithms"]))
        # every algorithm forced on every conv (where available), plus a name the
        # model does not have: still classifies; the entries are passed on
        for algo in ALGOS:
            def force(t, algo=algo):
                for g in ("throughput", "latency"):
                    t[g]["conv_algorithms"] = dict(
                        {n: algo for n in t[g]["conv_algorithms"]}, **{"no/such/node": algo})
            rewrite(tpath, force)
            expect(resnetd, model, work, (t["workers"], t["threads"], t["batch"]),
                   ["workers", "threads_per_worker", "max_batch"],
                   convs=len(t["conv_algorithms"]) + 1)

        # A plan unlike the defaults (1 worker, cores threads, max_batch 8), so
        # every check below can tell a tuned value from a default one.
        def plant(t):
            t["throughput"].update(workers=2, threads=1, batch=4)
            t["latency"].update(workers=1, threads=1, batch=1)
        rewrite(tpath, plant)
        all3 = ["workers", "threads_per_worker", "max_batch"]
        expect(resnetd, model, work, (2, 1, 4), all3)
        # 3. explicit values win, even when equal to the default; the rest stays tuned.
        expect(resnetd, model, work, (1, 1, 4), ["threads_per_worker", "max_batch"],
               args=["--workers", "1"])
        cfile = os.path.join(work, "serve.json")
        with open(cfile, "w") as f:
            json.dump({"max_batch": 2}, f)
        expect(resnetd, model, work, (2, 2, 2), ["workers"], args=["--config", cfile],
               env={"RESNETD_THREADS_PER_WORKER": "2"})
        expect(resnetd, model, work, (2, 1, 8), ["workers", "threads_per_worker"],
               env={"RESNETD_MAX_BATCH": "8"})
        write_config(model, dict(mcfg, max_batch=3))  # the model's own max_batch
        expect(resnetd, model, work, (2, 1, 3), ["workers", "threads_per_worker"])
        write_config(model, mcfg)
        # 4. tune_goal: latency pick, or off.
        expect(resnetd, model, work, (1, 1, 1), all3, args=["--tune-goal", "latency"])
        expect(resnetd, model, work, (2, 1, 4), all3, env={"RESNETD_TUNE_GOAL": "throughput"})
        expect(resnetd, model, work, (1, cores, 8), None, args=["--tune-goal", "off"])
        with open(cfile, "w") as f:
            json.dump({"tune_goal": "off"}, f)
        expect(resnetd, model, work, (1, cores, 8), None, args=["--config", cfile])
        bad = run([resnetd, "serve", "--tune-goal", "fast", "--print-config"], expect=2)
        check("tune_goal" in bad.stderr, bad.stderr)
        check("--tune-goal" in run([resnetd, "serve", "--help"]).stdout, "--help")
        pc = json.loads(run([resnetd, "serve", "--print-config"]).stdout)
        check(pc["tune_goal"] == "throughput", pc)

        # 5. a foreign, malformed or out-of-range tuned.json: one warning, defaults, serves.
        good = open(tpath).read()
        rewrite(tpath, lambda t: t["fingerprint"].update(cpu_model="Another CPU 9000"))
        expect(resnetd, model, work, (1, cores, 8), None, warn="fingerprint mismatch")
        rewrite(tpath, lambda t: t["fingerprint"].update(cpu_model=cpu_model_name(),
                                                         cores=cores + 1))
        expect(resnetd, model, work, (1, cores, 8), None, warn="cores")
        with open(tpath, "w") as f:
            f.write('{"format": 1, "throughput": {"batch": 8,')
        expect(resnetd, model, work, (1, cores, 8), None, warn=tpath)
        with open(tpath, "w") as f:
            f.write(good.replace('"workers": 2', '"workers": 0'))
        expect(resnetd, model, work, (1, cores, 8), None, warn="workers")
        with open(tpath, "w") as f:  # an algorithm outside the known set
            f.write(good)
        rewrite(tpath, lambda t: t["throughput"].update(conv_algorithms={"x": "fft"}))
        expect(resnetd, model, work, (1, cores, 8), None, warn="conv_algorithms")
        rewrite(tpath, lambda t: t["throughput"].update(conv_algorithms={"x" * 128: "direct"}))
        expect(resnetd, model, work, (1, cores, 8), None, warn="conv_algorithms")
        rewrite(tpath, lambda t: t["throughput"].update(conv_algorithms=["direct"]))
        expect(resnetd, model, work, (1, cores, 8), None, warn="conv_algorithms")
        rewrite(tpath, lambda t: t["throughput"].pop("conv_algorithms"))  # optional key
        expect(resnetd, model, work, (2, 1, 4), all3)

        # 6. where bench saves: --tune-out, --no-save, an unwritable directory.
        os.remove(tpath)
        quick = ["--seconds", "0.05", "--batch", "1", "--workers", "1", "--threads", "1"]
        out = os.path.join(work, "elsewhere.json")
        run([resnetd, "bench", "--model", model, "--tune", "--tune-out", out] + quick)
        check(os.path.isfile(out) and not os.path.exists(tpath), "--tune-out")
        run([resnetd, "bench", "--model", model, "--tune", "--no-save"] + quick)
        check(not os.path.exists(tpath), "--no-save wrote tuned.json")
        p = run([resnetd, "bench", "--model", model, "--tune", "--tune-out",
                 os.path.join(work, "no-such-dir", "t.json")] + quick)
        check("warning" in p.stderr and "no-such-dir/t.json" in p.stderr, p.stderr)
        os.chmod(work, 0o755)
        os.chmod(model, 0o555)
        drop = None
        if os.geteuid() == 0:  # root writes anywhere: measure as nobody instead
            def drop():
                os.setgid(65534)
                os.setuid(65534)
        p = run([resnetd, "bench", "--model", model, "--tune"] + quick, preexec_fn=drop)
        os.chmod(model, 0o755)
        check("warning" in p.stderr and tpath in p.stderr, p.stderr)
        check(not [f for f in os.listdir(model) if f.startswith("tuned.json")],
              "unwritable directory got %s" % os.listdir(model))
        check(any('"tuned": "throughput"' in l for l in p.stdout.splitlines()), p.stdout)
        print("ok")
    finally:
        for d, _, _ in os.walk(work):
            os.chmod(d, 0o755)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
