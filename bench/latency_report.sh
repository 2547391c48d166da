#!/usr/bin/env bash
# latency_report.sh — the whole batch-1 / batch-8 picture against ONNX Runtime
# in one run (issue 17): ResNet-50 fp32 and int8 (one QDQ file run by both
# engines), batch 1 and 8, oneDNN at the CPU's native ISA and at
# ONEDNN_MAX_CPU_ISA=AVX2, with % of the machine's peak (bench/peak_fma.c:
# the fp32 FMA peak for fp32, the int8 MAC peak — VNNI, or AVX2's
# vpmaddubsw path — for int8). A report, not a test: it never fails for being
# slow. About 4 minutes with the defaults (plus a one-time model export).
#
#   bench/latency_report.sh [MODEL.onnx]
#
# Env: RESNETD (default build/resnetd), RESNETD_BASE (a second resnetd
# binary, e.g. a build of main: every resnetd measurement is repeated with it
# in the same rounds and the table gets a new/base column), BENCH_SECONDS
# (default 4 per measurement), BENCH_ROUNDS (default 2), THREADS (default 2),
# MODEL_CACHE (default build/bench), GFLOP_PER_IMAGE (default 8.18: 2 x the
# MACs of ResNet-50 at 224x224; the int8 rows count the same operations).
# Without MODEL.onnx it exports torchvision's ResNet-50 (random weights, BN
# statistics from data, opset 13, dynamic batch) with tests/engine/models.py
# and makes its QDQ twin with tests/quant/make_qdq.py (32 calibration inputs
# drawn like the engine tests'); both are cached. Nothing is downloaded.
#
# Each measurement is its own process: resnetd 1 context x THREADS threads
# (`resnetd bench`), ONNX Runtime THREADS intra-op threads (bench/ort_bench.js).
# Rounds alternate every configuration back to back so all see the same
# load; the table shows medians over rounds and the median of the per-round
# ratios. ONNX Runtime has no switch like ONEDNN_MAX_CPU_ISA: the AVX2 rows
# compare with its native run. GOMP_SPINCOUNT / OMP_WAIT_POLICY are left as
# given: unset, resnetd uses its own spin count (cli/main.c); set
# GOMP_SPINCOUNT=N to measure another.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY=/usr/bin/python3
RESNETD="${RESNETD:-$ROOT/build/resnetd}"
BASE="${RESNETD_BASE:-}"
SECS="${BENCH_SECONDS:-4}"
ROUNDS="${BENCH_ROUNDS:-2}"
THREADS="${THREADS:-2}"
GFLOP="${GFLOP_PER_IMAGE:-8.18}"
CACHE="${MODEL_CACHE:-$ROOT/build/bench}"
export NODE_PATH="${NODE_PATH:-$ROOT/tests/node_modules}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
T0=$(date +%s)

[[ -x "$RESNETD" ]] || { echo "latency_report: $RESNETD not built (scripts/build.sh)" >&2; exit 2; }
[[ -z "$BASE" || -x "$BASE" ]] || { echo "latency_report: RESNETD_BASE=$BASE is not executable" >&2; exit 2; }
MODEL="${1:-}"
if [[ -z "$MODEL" ]]; then
  echo "== exporting ResNet-50 (cached)" >&2
  MODEL="$($PY "$ROOT/tests/engine/models.py" resnet50 13 "$CACHE" 2>/dev/null | tail -1)"
fi
[[ -f "$MODEL" ]] || { echo "latency_report: no model at '$MODEL'" >&2; exit 2; }
MODEL="$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")"
mkdir -p "$CACHE"
QDQ="$CACHE/$(basename "$MODEL" .onnx)_qdq.onnx"
if [[ ! -f "$QDQ" || "$QDQ" -ot "$MODEL" ]]; then
  echo "== QDQ model in ONNX Runtime's layout (32 calibration inputs, cached)" >&2
  "$PY" -c "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import models
np.save(sys.argv[2], models.images(32, 224, 4242).astype(np.float32))" \
      "$ROOT/tests/engine" "$TMP/calib.npy"
  "$PY" "$ROOT/tests/quant/make_qdq.py" "$MODEL" "$QDQ.tmp" "$TMP/calib.npy" >&2
  mv "$QDQ.tmp" "$QDQ"
fi
# model directories for `resnetd bench` (preprocessing is not measured)
for p in fp32 int8; do
  mkdir -p "$TMP/$p"
  if [[ $p == fp32 ]]; then ln -s "$MODEL" "$TMP/$p/model.onnx"; else ln -s "$QDQ" "$TMP/$p/model.onnx"; fi
  echo '{"input": {"resize": 224, "crop": 224, "scale": 255.0, "mean": [0.5], "std": [0.25]}}' \
      >"$TMP/$p/config.json"
done
onnx_of() { if [[ $1 == fp32 ]]; then echo "$MODEL"; else echo "$QDQ"; fi; }

echo "== machine peaks (bench/peak_fma.c, $THREADS threads, best of 3)" >&2
gcc -O3 -pthread "$ROOT/bench/peak_fma.c" -o "$TMP/peakfma"
peak() { # ARGS -> best of three (per-thread CPU-time rates: meaningful on a busy machine too)
  local best=0 v
  for _ in 1 2 3; do
    v="$("$TMP/peakfma" "$THREADS" "$@" 2>/dev/null | sed -n 's/.*G\(FL\)\{0,1\}OPS=\([0-9.]*\).*/\2/p')"
    best="$($PY -c "print(max($best, ${v:-0}))")"
  done
  echo "$best"
}
PEAK_native_fp32="$(peak)"
PEAK_native_int8="$(peak int8)"
# oneDNN 2.6 runs int8 convs on AMX where the CPU has it (kernel names *amx*)
PEAK_amx="$("$TMP/peakfma" 1 amx >/dev/null 2>&1 && peak amx || echo 0)"
PEAK_avx2_fp32="$(peak avx2)"
PEAK_avx2_int8="$(peak avx2 int8)"

# ours BIN ISA PREC BATCH -> "img/s p50_ms"
ours() {
  local envisa=()
  [[ $2 == avx2 ]] && envisa=(ONEDNN_MAX_CPU_ISA=AVX2)
  env "${envisa[@]}" "$1" bench --model "$TMP/$3" --batch "$4" --workers 1 --threads "$THREADS" \
      --seconds "$SECS" >"$TMP/out" 2>"$TMP/err" ||
    { echo "latency_report: resnetd bench failed: $(tail -1 "$TMP/err")" >&2; echo "0 0"; return; }
  local ips p50
  ips="$(sed -n 's/.*"images_per_second": \([0-9.]*\).*/\1/p' "$TMP/out" | head -1)"
  p50="$(sed -n 's/.*"latency_ms_p50": \([0-9.]*\).*/\1/p' "$TMP/out" | head -1)"
  echo "${ips:-0} ${p50:-0}"
}
# ort PREC BATCH -> "img/s ms_per_batch"
ort() {
  node "$ROOT/bench/ort_bench.js" "$(onnx_of "$1")" "$2" "$THREADS" "$SECS" >"$TMP/out" 2>"$TMP/err" ||
    { echo "latency_report: ONNX Runtime failed: $(tail -1 "$TMP/err")" >&2; echo "0 0"; return; }
  local ips ms
  ips="$(sed -n 's/.*img\/s=\([0-9.]*\).*/\1/p' "$TMP/out")"
  ms="$(sed -n 's/.*ms\/batch=\([0-9.]*\).*/\1/p' "$TMP/out")"
  echo "${ips:-0} ${ms:-0}"
}

: >"$TMP/rows"
for ((r = 1; r <= ROUNDS; r++)); do
  for b in 1 8; do
    for p in fp32 int8; do
      echo "== round $r/$ROUNDS, batch $b, $p (load $(cut -d' ' -f1 /proc/loadavg))" >&2
      read -r ri rms < <(ort "$p" "$b")
      for isa in native avx2; do
        read -r oi oms < <(ours "$RESNETD" "$isa" "$p" "$b")
        bi=0
        [[ -n "$BASE" ]] && read -r bi _ < <(ours "$BASE" "$isa" "$p" "$b")
        echo "$p $b $isa $oi $oms $ri $rms $bi" >>"$TMP/rows"
      done
    done
  done
done
LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"
ISA_LINE="$(ONEDNN_VERBOSE=1 "$RESNETD" bench --model "$TMP/fp32" --batch 1 --seconds 0.1 2>/dev/null |
  sed -n 's/^onednn_verbose,info,cpu,isa://p' | head -1)"
echo "model: $MODEL, int8: $QDQ (the same QDQ file in both engines)"
echo "$("$RESNETD" --version 2>/dev/null | head -1)${BASE:+, base: $BASE}; oneDNN native ISA: ${ISA_LINE:-?}"
echo "ONNX Runtime $(node -e "console.log(require('onnxruntime-node/package.json').version)" 2>/dev/null)," \
     "$THREADS threads each, ${SECS}s per measurement, $ROUNDS rounds; GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-(resnetd default)} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-(unset)}"
echo "peaks ($THREADS threads): native fp32 $PEAK_native_fp32 GFLOP/s, int8 VNNI $PEAK_native_int8 GOP/s," \
     "AMX int8 $PEAK_amx GOP/s (0: none); AVX2 fp32 $PEAK_avx2_fp32 GFLOP/s, int8 $PEAK_avx2_int8 GOP/s"
echo "load average at the end: $LOAD; $(($(date +%s) - T0)) s in all"
"$PY" - "$TMP/rows" "$GFLOP" "$PEAK_native_fp32" "$PEAK_native_int8" "$PEAK_avx2_fp32" "$PEAK_avx2_int8" \
    "${BASE:+1}" "$PEAK_amx" <<'PYEOF'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
gflop = float(sys.argv[2])
peak = {("native", "fp32"): float(sys.argv[3]), ("native", "int8"): float(sys.argv[4]),
        ("avx2", "fp32"): float(sys.argv[5]), ("avx2", "int8"): float(sys.argv[6])}
base = sys.argv[7] == "1"
amx = float(sys.argv[8])
print()
print("| precision | batch | oneDNN ISA | resnetd img/s | resnetd p50 ms/batch | ORT img/s | ORT ms/batch "
      "| resnetd/ORT | resnetd % of peak | ORT % of peak |" + (" resnetd new/base |" if base else ""))
print("|---|---|---|---|---|---|---|---|---|---|" + ("---|" if base else ""))
for p in ("fp32", "int8"):
    for b in ("1", "8"):
        for isa in ("native", "avx2"):
            r = [[float(v) for v in x[3:]] for x in rows if x[0] == p and x[1] == b and x[2] == isa]
            if not r:
                continue
            oi, oms, ri, rms, bi = (st.median(c) for c in zip(*r))
            ratio = st.median(c[0] / c[2] if c[2] else 0 for c in r)
            pk = peak[(isa, p)]
            pko = peak[("native", p)]  # ORT always runs its native kernels
            pct = "%.0f%%" % (100 * oi * gflop / pk) if pk else "?"
            if p == "int8" and isa == "native" and amx > 0:
                pct += " VNNI, %.0f%% AMX" % (100 * oi * gflop / amx)
            line = "| %s | %s | %s | %.1f | %.2f | %.1f | %.2f | %.2f | %s | %.0f%% |" % (
                p + (" (QDQ)" if p == "int8" else ""), b, isa, oi, oms, ri, rms, ratio, pct,
                100 * ri * gflop / pko if pko else 0)
            if base:
                line += " %.2f |" % st.median(c[0] / c[4] if c[4] else 0 for c in r)
            print(line)
PYEOF
