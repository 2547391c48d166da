#!/usr/bin/env python3
"""layer_profile.py — where one batch's time goes, layer by layer: resnetd's
oneDNN primitives (ONEDNN_VERBOSE=1 exec lines) next to ONNX Runtime's
per-node profile of the same .onnx (bench/ort_profile.js), with GFLOP/s and %
of the machine's peak (bench/peak_fma.c: fp32 FMA for fp32 layers, the int8
MAC peak for u8/s8 layers: AMX's for oneDNN's *amx* kernels, else VNNI's or
AVX2's). A report, not a test.

  bench/layer_profile.py --model DIR_OR_ONNX [--batch 1] [--threads 2]
        [--seconds 3] [--ort MODEL.onnx] [--isa avx2] [--resnetd build/resnetd]

DIR_OR_ONNX is what `resnetd bench --model` takes (a model directory: an
int8 one has quant.tsv; a QDQ .onnx runs in int8 by itself). --isa avx2 sets
ONEDNN_MAX_CPU_ISA=AVX2 for resnetd and uses the AVX2 peaks (ONNX Runtime has
no such switch: its column stays native). Each layer's time is the median
(and minimum: on a loaded machine the better estimate of the quiet time) over
the steady-state runs; rows are matched to ONNX Runtime's nodes by
convolution size (MACs) in execution order. The summary groups layers by kind
and map size, and compares the sum of the primitives with the run's wall time
measured without verbose output (the difference is resnetd's own overhead
between primitives).
"""
import argparse
import collections
import json
import os
import re
import statistics as st
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def peaks(threads, avx2, tmp):
    exe = os.path.join(tmp, "peak_fma")
    subprocess.run(["gcc", "-O3", "-pthread", os.path.join(ROOT, "bench", "peak_fma.c"), "-o", exe],
                   check=True)
    out = {}
    for kind in ("fp32", "int8", "amx"):
        if kind == "amx" and avx2:
            out[kind] = 0.0
            continue
        args = [exe, str(threads)] + (["avx2"] if avx2 else []) + ([kind] if kind != "fp32" else [])
        best = 0.0
        for _ in range(3):  # the best of three: other processes only lower it
            m = re.search(r"G(?:FL)?OPS=([0-9.]+)", subprocess.run(args, capture_output=True, text=True).stdout)
            best = max(best, float(m.group(1)) if m else 0.0)
        out[kind] = best
    return out


CONV = re.compile(r"mb(\d+)(?:_g(\d+))?_ic(\d+)oc(\d+)(?:_id\d+od\d+kd\d+sd\d+dd\d+pd\d+)?"
                  r"_ih(\d+)oh(\d+)kh(\d+)sh(\d+)dh\d+ph\d+_iw(\d+)ow(\d+)kw(\d+)sw(\d+)")
MATMUL = re.compile(r"^(?:(\d+)x)?(\d+)x(\d+):(?:\d+x)?(\d+)x(\d+)")


def layer_of(fields):
    """(kind, impl, dtype, desc, flops, label) of an exec line's fields."""
    kind, impl, mds, desc = fields[3], fields[4], fields[6], fields[9]
    dt = "int8" if re.search(r"src_[us]8", mds) else "fp32"
    flops, label = 0, kind
    if kind == "convolution":
        m = CONV.search(desc)
        if m:
            mb, g, ic, oc, ih, oh, kh, sh, iw, ow, kw, sw = (int(x) if x else 1 for x in m.groups())
            flops = 2 * mb * oc * oh * ow * (ic // g) * kh * kw
            label = "conv%dx%d/%d %d->%d %dx%d" % (kh, kw, sh, ic, oc, oh, ow)
            if ic <= 4:
                label = "stem " + label
    elif kind in ("matmul", "inner_product"):
        m = MATMUL.search(desc)
        if m:
            b = int(m.group(1) or 1)
            flops = 2 * b * int(m.group(2)) * int(m.group(3)) * int(m.group(5))
            label = "fc %sx%s" % (m.group(3), m.group(5))
    elif kind.startswith("pooling"):
        m = re.search(r"ic(\d+)_ih(\d+)oh(\d+)kh(\d+)", desc)
        label = "pool %sx%s %s->%s" % ((m.group(4), m.group(4), m.group(2), m.group(3)) if m else ("?",) * 4)
    elif kind == "reorder":
        label = "reorder " + desc
    return kind, impl, dt, desc, flops, label


def resnetd_runs(a, env, tmp):
    """Per-run lists of (layer, ms) from the exec lines of the steady state."""
    out = os.path.join(tmp, "verbose.txt")
    with open(out, "w") as f:
        subprocess.run([a.resnetd, "bench", "--model", a.model, "--batch", str(a.batch), "--workers", "1",
                        "--threads", str(a.threads), "--seconds", str(a.seconds)],
                       env=dict(env, ONEDNN_VERBOSE="1"), stdout=f, stderr=subprocess.STDOUT, check=True)
    lines, isa = [], ""
    for line in open(out):
        if line.startswith("onednn_verbose,info,cpu,isa:"):
            isa = line.strip().split("isa:", 1)[1]
        if line.startswith("onednn_verbose,exec,cpu,"):
            fl = line.rstrip("\n").split(",")
            if len(fl) >= 11:
                lines.append((layer_of(fl), float(fl[10])))
    if not lines:
        sys.exit("layer_profile: no oneDNN exec lines (is resnetd linked to oneDNN with verbose support?)")
    # a run ends with the model's last primitive: split there, keep the runs of the modal shape
    last = lines[-1][0][:4]
    runs, cur = [], []
    for lay, ms in lines:
        cur.append((lay, ms))
        if lay[:4] == last:
            runs.append(cur)
            cur = []
    sig = collections.Counter(tuple(l[:4] for l, _ in r) for r in runs).most_common(1)[0][0]
    runs = [r for r in runs[1:] if tuple(l[:4] for l, _ in r) == sig]  # [1:]: load + warm-up
    return runs, isa


def wall_ms(a, env):
    r = subprocess.run([a.resnetd, "bench", "--model", a.model, "--batch", str(a.batch), "--workers", "1",
                        "--threads", str(a.threads), "--seconds", str(a.seconds)], env=env,
                       capture_output=True, text=True)
    m = re.search(r'"latency_ms_p50": ([0-9.]+)', r.stdout)
    return float(m.group(1)) if m else 0.0


def ort_nodes(a, env, tmp):
    """Per-node (name, op, flops, median ms, min ms) in execution order."""
    out = os.path.join(tmp, "ort.json")
    runs = 20
    subprocess.run(["node", os.path.join(ROOT, "bench", "ort_profile.js"), a.ort, str(a.batch),
                    str(a.threads), str(runs), out], env=env, check=True, stdout=subprocess.DEVNULL)
    ev = [e for e in json.load(open(out)) if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    per = collections.OrderedDict()
    for e in ev:
        per.setdefault(e["name"], []).append(e)
    nodes = []
    for name, es in per.items():
        es = es[3:] if len(es) > 3 else es  # the warm-up runs
        args = es[0]["args"]
        op = args.get("op_name", "?")
        flops = 0
        shapes = [list(s.values())[0] for s in args.get("input_type_shape", [])]
        outs = [list(s.values())[0] for s in args.get("output_type_shape", [])]
        if "Conv" in op and shapes and outs:
            w = next((s for s in shapes[1:] if len(s) >= 4), None)
            if w:
                sp = 1
                for d in outs[0][2:4]:
                    sp *= d
                wn = 1
                for d in w:
                    wn *= d
                flops = 2 * outs[0][0] * sp * wn
        elif op in ("Gemm", "MatMul", "QGemm") and outs:
            w = next((s for s in shapes[1:] if len(s) == 2), None)
            if w:
                flops = 2 * outs[0][0] * w[0] * w[1]
        d = [x["dur"] / 1000.0 for x in es]
        nodes.append((name.replace("_kernel_time", ""), op, flops, st.median(d), min(d)))
    return nodes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--ort", help="the .onnx ONNX Runtime profiles (the same file, or its fp32 source)")
    ap.add_argument("--isa", choices=("native", "avx2"), default="native")
    ap.add_argument("--resnetd", default=os.environ.get("RESNETD", os.path.join(ROOT, "build", "resnetd")))
    a = ap.parse_args()
    env = dict(os.environ)
    env.setdefault("NODE_PATH", os.path.join(ROOT, "tests", "node_modules"))
    if a.isa == "avx2":
        env["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    with tempfile.TemporaryDirectory() as tmp:
        pk = peaks(a.threads, a.isa == "avx2", tmp)
        runs, isa = resnetd_runs(a, env, tmp)
        wall = wall_ms(a, env)
        ort = ort_nodes(a, env, tmp) if a.ort else []
    n = len(runs[0])
    rows = []
    for i in range(n):
        lay = runs[0][i][0]
        t = [r[i][1] for r in runs]
        rows.append((lay, st.median(t), min(t)))
    # match ORT nodes with FLOPs to ours by FLOPs, in order
    pool = collections.defaultdict(list)
    for nd in ort:
        if nd[2]:
            pool[nd[2]].append(nd)
    print("## %s, batch %d, %d threads, ISA: %s" % (a.model, a.batch, a.threads, isa))
    print("peaks (%d threads, bench/peak_fma.c): fp32 %.0f GFLOP/s, int8 %.0f GOP/s, AMX int8 %.0f GOP/s "
          "(%% peak of an *amx* kernel is of AMX's); %d steady runs; load: %s"
          % (a.threads, pk["fp32"], pk["int8"], pk["amx"], len(runs), os.getloadavg()))
    print()
    hdr = "| # | layer | kernel | ms med | ms min | GFLOP/s (min) | % peak |"
    if ort:
        hdr += " ORT node | ORT ms med | ORT ms min | ours/ORT (min) |"
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    groups = collections.OrderedDict()
    ours_tot = [0.0, 0.0]
    for i, (lay, med, mn) in enumerate(rows):
        kind, impl, dt, desc, flops, label = lay
        gf = flops / mn / 1e6 if mn > 0 else 0
        pkl = pk["amx"] if dt == "int8" and "amx" in impl and pk["amx"] else pk[dt]
        pct = 100 * gf / pkl if flops and pkl else 0
        line = "| %d | %s %s | %s | %.3f | %.3f | %s | %s |" % (
            i + 1, label, dt, impl, med, mn, "%.0f" % gf if flops else "", "%.0f" % pct if flops else "")
        if ort:
            m = pool[flops].pop(0) if flops and pool.get(flops) else None
            if m:
                line += " %s %s | %.3f | %.3f | %.2f |" % (m[1], m[0][-40:], m[3], m[4], mn / m[4] if m[4] else 0)
            else:
                line += " | | | |"
        print(line)
        g = label.split(" ")[0] if not label.startswith("conv") else label.split(" ")[0] + " " + label.split(" ")[-1]
        if label.startswith("stem"):
            g = "stem conv7x7"
        gg = groups.setdefault(g, [0, 0.0, 0.0, 0])
        gg[0] += 1
        gg[1] += med
        gg[2] += mn
        gg[3] += flops
        ours_tot[0] += med
        ours_tot[1] += mn
    print()
    print("| group | layers | ms med | ms min | share (min) | GFLOP/s (min) |")
    print("|---|---|---|---|---|---|")
    for g, (k, med, mn, fl) in groups.items():
        print("| %s | %d | %.2f | %.2f | %.0f%% | %s |" % (g, k, med, mn, 100 * mn / ours_tot[1],
                                                      "%.0f" % (fl / mn / 1e6) if fl and mn else ""))
    flops = sum(r[0][4] for r in rows)
    print()
    print("resnetd: %d primitives per run (%d reorders), sum of layer medians %.2f ms, of minima %.2f ms "
          "(%.0f GFLOP/s, %.0f%% of the fp32 peak); wall p50 without verbose %.2f ms"
          % (n, sum(1 for r in rows if r[0][0] == "reorder"), ours_tot[0], ours_tot[1],
             flops / ours_tot[1] / 1e6, 100 * flops / ours_tot[1] / 1e6 / pk["fp32"], wall))
    if ort:
        byop = collections.OrderedDict()
        for nd in ort:
            b = byop.setdefault(nd[1], [0, 0.0, 0.0])
            b[0] += 1
            b[1] += nd[3]
            b[2] += nd[4]
        print("ORT: %d nodes per run, sum of medians %.2f ms, of minima %.2f ms; by op: %s"
              % (len(ort), sum(x[3] for x in ort), sum(x[4] for x in ort),
                 ", ".join("%s %d x %.2f ms (min %.2f)" % (k, v[0], v[1], v[2]) for k, v in byop.items())))


if __name__ == "__main__":
    main()
