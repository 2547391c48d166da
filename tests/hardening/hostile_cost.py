#!/usr/bin/env python3
"""Hostile-cost battery (issue 13): every class of the issue, several variants
each, against the real `resnetd serve` on loopback, measured from outside.

    hostile_cost.py RESNETD                 test mode: asserts, exit 1 on failure
    hostile_cost.py RESNETD --report        report mode: no asserts, markdown tables
    options: --only 1,7,8 (classes), --match TEXT (cases whose name has TEXT),
             --out FILE (also write the tables there)

The server runs with the bundled models/fashion-mnist and these options
(chosen explicitly; a build that lacks one gets a failure in test mode and a
note in report mode):

    --queue-capacity 64            multipart over 64 images: 413 too_many_images
    --max-body-bytes 20971520      the default 20 MiB
    --max-image-pixels 40000000    the default
    --http-threads 2               the default
    --connection-timeout-s 30      the default (a framing hang shows as a timeout)
    --log-level info               the default ("listening" is an info line)

max_connections, max_connections_per_ip and max_inflight_bytes are left at
their defaults: class 8 checks that the defaults keep one client from locking
others out, and every refusal must be cheap under the default budget. Only
class 8's held uploads restart the server with --max-inflight-bytes 67108864
(64 MiB, under the 128 MiB RSS slack: the default 256 MiB budget would rightly
let twelve 20 MB uploads in), then restart it with the defaults again.

Measured per case: the server's CPU time (utime+stime, /proc/PID/stat) from
the first byte sent until it stops using CPU; wall time; peak RSS (VmHWM reset
per case through /proc/PID/clear_refs, and VmRSS sampled every 10 ms); the
worst latency of /healthz, /readyz and /metrics, polled every 20 ms on new
connections from 127.0.0.2 while the case runs.

Test mode asserts the issue's bounds: each answer is the expected 4xx JSON
(status and code) or a close for framing cases, within 1 s of server CPU per
case; peak RSS over the battery < idle RSS + 128 MiB (idle: after warm-up
requests); /healthz, /readyz, /metrics answer 200 in < 100 ms throughout; the
server is alive at the end and a valid image (and a v2 tensor) still get
byte-identical answers to those before the battery.

Report mode caps each case at ~30 s, kills the server past 3 GiB RSS (1 GiB
in test mode: it is a shared machine), restarts it when it died or hung, and marks each case
"as expected" or not; use it to measure an unfixed build (the "before" column).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, HERE)
import costlib as C  # noqa: E402
import hostile_cases  # noqa: E402
import resnetd_serve  # noqa: E402

MODEL = os.path.join(ROOT, "models", "fashion-mnist")
MAX_BODY = 20 * 1024 * 1024
RSS_SLACK = 128 * 1024 * 1024
CPU_BOUND_S = 1.0
LATENCY_BOUND_MS = 100.0
REPORT_RSS_CAP = 3 << 30
TEST_RSS_CAP = 1 << 30  # far past the bound: a failing build must not take the CI machine with it
SERVER_OPTS = [("--queue-capacity", "64"), ("--max-body-bytes", str(MAX_BODY)),
               ("--max-image-pixels", "40000000"), ("--http-threads", "2"),
               ("--connection-timeout-s", "30"),
               ("--log-level", "info")]

CLASSES = {
    0: "Images from tests/lib/hostile_images.py (classes 1-3, the image module's cases)",
    1: "JPEG: a frame hidden behind FF 00 (header walk vs libjpeg)",
    2: "PNG: ancillary chunks that inflate (zTXt, iTXt, iCCP)",
    3: "JPEG: scan count within the limits",
    4: "KServe v2: outputs amplification",
    5: "/v1 multipart: part count and bomb parts",
    6: "KServe v2: id of 256+ bytes",
    7: "HTTP framing (RFC 9112)",
    8: "Defaults: connections per client, bytes in flight",
    9: "TLS versions and suites",
    10: "Operator data (labels, model names) and FP32 range",
}


def serve_options(binary):
    p = subprocess.run([binary, "serve", "--help"], capture_output=True, timeout=30)
    text = (p.stdout + p.stderr).decode(errors="replace")
    return {w for w in text.split() if w.startswith("--")}


class Row:
    def __init__(self, cls, name):
        self.cls, self.name = cls, name
        self.result, self.cpu, self.wall, self.peak = "", None, None, None
        self.worst, self.bad, self.why = {}, [], []
        self.control = False  # a valid input: not counted in the battery's RSS bound


class Battery:
    def __init__(self, binary, report, tmp, match=""):
        self.match = match
        self.binary, self.report, self.tmp = os.path.abspath(binary), report, tmp
        have = serve_options(self.binary)
        self.notes = []
        self.args = ["--model", MODEL]
        for opt, val in SERVER_OPTS:
            if opt in have:
                self.args += [opt, val]
            else:
                self.notes.append(f"this build has no {opt}: not passed")
        self.have = have
        self.extra = []  # options of the current server beyond self.args (restart_with)
        self.rows = []
        self.timeout = 30.0 if report else 10.0
        self.srv = self.watch = None
        self.start()

    # ---------------------------------------------------------- server life

    def start(self):
        self.srv = resnetd_serve.Server(self.binary, self.args + self.extra, prefix="hostile-cost-",
                                        ready_timeout=120, stop_timeout=10)
        self.watch = C.Watch(self.srv.proc.pid, self.srv.port,
                             REPORT_RSS_CAP if self.report else TEST_RSS_CAP,
                             probe_timeout=30.0 if self.report else 5.0)

    def stop(self):
        if self.watch:
            self.watch.close()
        if self.srv:
            self.srv.stop(timeout=10)
            self.srv.cleanup()

    def restart(self, why):
        self.notes.append(f"server restarted: {why}")
        self.stop()
        self.start()

    def restart_with(self, extra):
        """A planned restart with these options added to the battery's own
        (unsupported ones dropped with a note)."""
        self.extra = []
        for opt, val in zip(extra[::2], extra[1::2]):
            if opt in self.have:
                self.extra += [opt, val]
            else:
                self.notes.append(f"this build has no {opt}: not passed")
        self.stop()
        self.start()

    @property
    def port(self):
        return self.srv.port

    def healthy(self):
        if not self.srv.alive():
            return "server died"
        r = C.request(self.port, "GET", "/healthz", src="127.0.0.4", timeout=10)
        return None if r.status == 200 else f"/healthz after the case: {r.summary()}"

    # ------------------------------------------------------------- one case

    def case(self, cls, name, fn, check, on_main=True):
        """Runs fn() (returns a C.Resp, or a (summary, failure-or-None) pair for
        cases that check themselves), measures it, checks the answer."""
        if self.match and self.match not in name:
            return Row(cls, name)  # not run, not listed
        row = Row(cls, name)
        self.rows.append(row)
        pid = self.srv.proc.pid
        stats = C.CaseStats()
        try:
            C.reset_peak(pid)
            cpu0 = C.cpu_seconds(pid)
        except OSError:
            cpu0 = None
        last_cpu = cpu0
        self.watch.case = stats
        t0 = time.monotonic()
        try:
            out = fn()
        except Exception as e:  # a client-side surprise is a result too
            out = C.Resp(note=f"client error {type(e).__name__}: {e}")
        row.wall = time.monotonic() - t0
        # CPU the server keeps spending after the answer (or after a client timeout) counts
        cap = 30.0 if self.report else 5.0
        busy_until = time.monotonic() + cap
        try:
            while time.monotonic() < busy_until:
                a = C.cpu_seconds(pid)
                time.sleep(0.2)
                last_cpu = C.cpu_seconds(pid)
                if last_cpu - a < 0.03:
                    break
            else:
                row.why.append(f"server still busy {cap:.0f} s after the answer")
        except OSError:
            pass
        self.watch.case = None
        # cases on a server of their own (TLS, model loading) say nothing of this one's cost
        row.cpu = None if cpu0 is None or not on_main else last_cpu - cpu0
        row.peak = stats.peak if on_main else None
        row.worst, row.bad = stats.worst, stats.bad
        if isinstance(out, C.Resp):
            row.result = out.summary()
            why = check(out)
        else:
            row.result, why = out
        if why:
            row.why.append(why)
        if self.watch.killed_for_rss:
            row.why.append(f"killed by the battery at RSS {self.watch.killed_for_rss >> 20} MB")
            row.result = f"killed at {self.watch.killed_for_rss >> 20} MB RSS"
        if on_main:
            if row.cpu is not None and row.cpu > CPU_BOUND_S:
                row.why.append(f"server CPU {row.cpu:.2f} s > {CPU_BOUND_S} s")
            for path, ms in row.worst.items():
                if ms >= LATENCY_BOUND_MS:
                    row.why.append(f"{path} took {ms:.0f} ms")
            if row.bad:
                row.why.append(f"control plane answers not 200: {row.bad[:3]}")
        sick = self.watch.killed_for_rss and "killed at the RSS cap" or self.healthy()
        if not sick and self.report and isinstance(out, C.Resp) and out.note == "timeout":
            sick = "the client gave up: work may be left behind"  # keep the next row clean
        if sick or any("still busy" in w for w in row.why):
            row.why.append(sick or "restarted: still busy")
            self.restart(f"after '{name}': {sick or 'still busy'}")
        return row

    # ---------------------------------------------------------------- table

    def table(self, idle_rss, started):
        out = [f"# Hostile-cost battery ({'report' if self.report else 'test'} mode)", "",
               f"- binary: `{self.binary}`",
               f"- command: `{' '.join([sys.argv[0]] + sys.argv[1:])}`",
               f"- server: `resnetd serve {' '.join(self.args)}`",
               f"- idle RSS (after warm-up): {idle_rss / 2**20:.1f} MB; date "
               f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, "
               f"{time.time() - started:.0f} s",
               "- CPU = server utime+stime for the case; peak RSS = the server's VmHWM "
               "during the case; /healthz, /readyz, /metrics polled every 20 ms from "
               "127.0.0.2 (worst ms)"]
        out += [f"- note: {n}" for n in self.notes]
        for cls in sorted({r.cls for r in self.rows}):
            out += ["", f"## {cls}. {CLASSES[cls]}", "",
                    "| case | status/code | server CPU s | wall s | peak RSS MB "
                    "| worst /healthz ms | worst /readyz, /metrics ms | as expected |",
                    "|---|---|---|---|---|---|---|---|"]
            for r in (r for r in self.rows if r.cls == cls):
                w = r.worst

                def ms(p):
                    return f"{w[p]:.0f}" if p in w else "-"
                ok = "yes" if not r.why else "**no**: " + "; ".join(r.why)
                out.append(f"| {r.name}{' (control)' if r.control else ''} | {r.result} | "
                           f"{'-' if r.cpu is None else f'{r.cpu:.2f}'} | {r.wall:.2f} | "
                           f"{'-' if r.peak is None else f'{r.peak / 2**20:.0f}'} | "
                           f"{ms('/healthz')} | "
                           f"{ms('/readyz')}, {ms('/metrics')} | {ok.replace('|', '/')} |")
        return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("binary")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default="")
    ap.add_argument("--match", default="", help="only the cases whose name contains this")
    a = ap.parse_args()
    only = {int(x) for x in a.only.split(",") if x} or set(CLASSES)
    started = time.time()
    tmp = tempfile.mkdtemp(prefix="hostile-cost-")
    b = None
    try:
        b = Battery(a.binary, a.report, tmp, a.match)
        if hostile_cases.hostile_images is None and 0 in only:
            b.notes.append("tests/lib/hostile_images.py not found: class 0 skipped")
        ref = hostile_cases.reference(b)
        time.sleep(0.5)
        idle = C.mem(b.srv.proc.pid)[0]
        hostile_cases.run(b, only, tmp)
        final = hostile_cases.reference(b)
        problems = []
        if final != ref:
            problems.append("a valid image / tensor no longer gets its exact answer: "
                            f"{ref[0][:120]!r} vs {final[0][:120]!r}")
        peak = max([r.peak for r in b.rows if r.peak and not r.control] + [idle])
        if b.notes and not a.report:
            problems += b.notes
        if peak - idle >= RSS_SLACK:
            problems.append(f"peak RSS {peak >> 20} MB >= idle {idle >> 20} MB + 128 MiB")
        if not b.srv.alive() or b.healthy():
            problems.append("server not healthy at the end")
        text = b.table(idle, started)
        text += (f"\nPeak RSS over the battery: {peak / 2**20:.0f} MB "
                 f"(idle + {(peak - idle) / 2**20:.0f} MB; bound idle + 128 MiB)\n")
        bad = [r for r in b.rows if r.why]
        text += f"\n{len(b.rows) - len(bad)} of {len(b.rows)} cases as expected.\n"
        for p in problems:
            text += f"\n- PROBLEM: {p}"
        print(text, flush=True)
        if a.out:
            with open(a.out, "w") as f:
                f.write(text)
        if a.report:
            return 0
        for r in bad:
            print(f"FAIL [{r.cls}] {r.name}: {'; '.join(r.why)}", file=sys.stderr)
        for p in problems:
            print(f"FAIL {p}", file=sys.stderr)
        return 1 if bad or problems else 0
    finally:
        if b:
            b.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
