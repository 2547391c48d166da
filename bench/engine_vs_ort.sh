#!/usr/bin/env bash
# engine_vs_ort.sh — resnetd's engine against ONNX Runtime 1.30, side by side
# in the same run, on the same ResNet-50 ONNX. A report, not a test:
# it never fails for being slow.
#
#   bench/engine_vs_ort.sh [MODEL.onnx]
#
# Env: RESNETD (default build/resnetd), BENCH_SECONDS (default 10 per
# measurement), GFLOP_PER_IMAGE (default 8.18, ResNet-50 at 224x224),
# MODEL_CACHE (where the exported ResNet-50 is kept, default build/bench).
# Without MODEL.onnx it exports torchvision's ResNet-50 (random weights, BN
# folded, opset 13, dynamic batch) with tests/engine/models.py.
#
# Measured, each in its own process (so peak RSS is per configuration), in
# BENCH_ROUNDS rounds (default 3) that alternate ours and ORT:
#   batch 1 and 8, 2 threads: resnetd (1 context x 2 threads) vs ORT (2 intra-op threads)
#   resnetd 2 contexts x 1 thread at batch 1 and 8 (vs the same ORT run)
# Printed: img/s of both, ratio ours/ORT, % of the machine's 2-thread FMA
# peak (bench/peak_fma.c), peak RSS of both.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY=/usr/bin/python3
RESNETD="${RESNETD:-$ROOT/build/resnetd}"
SECS="${BENCH_SECONDS:-10}"
GFLOP="${GFLOP_PER_IMAGE:-8.18}"
export NODE_PATH="${NODE_PATH:-$ROOT/tests/node_modules}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

[[ -x "$RESNETD" ]] || { echo "engine_vs_ort: $RESNETD not built (scripts/build.sh)" >&2; exit 2; }
MODEL="${1:-}"
if [[ -z "$MODEL" ]]; then
  echo "== exporting ResNet-50 (cached)" >&2
  MODEL="$($PY "$ROOT/tests/engine/models.py" resnet50 13 "${MODEL_CACHE:-$ROOT/build/bench}" 2>/dev/null | tail -1)"
fi
[[ -f "$MODEL" ]] || { echo "engine_vs_ort: no model at '$MODEL'" >&2; exit 2; }

echo "== machine peak (peak_fma.c, 2 threads)" >&2
gcc -O3 -pthread "$ROOT/bench/peak_fma.c" -o "$TMP/peakfma"
peak() { "$TMP/peakfma" 2 | sed -n 's/.*GFLOPS=\([0-9.]*\).*/\1/p'; }
PEAK="$(peak)"

# ours BATCH WORKERS THREADS -> "img/s rss"
ours() {
  "$PY" "$ROOT/bench/peak_rss.py" "$RESNETD" bench --model "$MODEL" --batch "$1" \
      --workers "$2" --threads "$3" --seconds "$SECS" >"$TMP/out" 2>"$TMP/err" ||
    { echo "engine_vs_ort: resnetd bench failed: $(tail -1 "$TMP/err")" >&2; echo "0 0"; return; }
  local ips rss
  ips="$(sed -n 's/.*"images_per_second": \([0-9.]*\).*/\1/p' "$TMP/out" | head -1)"
  rss="$(sed -n 's/^peak_rss_bytes \([0-9]*\)/\1/p' "$TMP/out")"
  echo "${ips:-0} ${rss:-0}"
}
# ort BATCH THREADS -> "img/s rss"
ort() {
  "$PY" "$ROOT/bench/peak_rss.py" node "$ROOT/bench/ort_bench.js" "$MODEL" "$1" "$2" "$SECS" \
      >"$TMP/out" 2>"$TMP/err" ||
    { echo "engine_vs_ort: ONNX Runtime failed: $(tail -1 "$TMP/err")" >&2; echo "0 0"; return; }
  local ips rss
  ips="$(sed -n 's/.*img\/s=\([0-9.]*\).*/\1/p' "$TMP/out")"
  rss="$(sed -n 's/^peak_rss_bytes \([0-9]*\)/\1/p' "$TMP/out")"
  echo "${ips:-0} ${rss:-0}"
}

# Rounds alternate ours and ORT back to back so both see the same machine load;
# the table reports medians over rounds and the median of per-round ratios.
ROUNDS="${BENCH_ROUNDS:-3}"
: >"$TMP/rows"
for ((r = 1; r <= ROUNDS; r++)); do
  for b in 1 8; do
    echo "== round $r/$ROUNDS, batch $b" >&2
    read -r oi orss < <(ours "$b" 1 2)
    read -r ri rrss < <(ort "$b" 2)
    read -r wi wrss < <(ours "$b" 2 1)
    echo "batch $b, 1 ctx x 2 threads|$oi|$orss|$ri|$rrss" >>"$TMP/rows"
    echo "batch $b, 2 ctx x 1 thread|$wi|$wrss|$ri|$rrss" >>"$TMP/rows"
  done
  echo "peak $(peak)" >>"$TMP/peaks"
done
echo "model: $MODEL"
echo "$ROUNDS rounds x $SECS s per measurement; $GFLOP GFLOP/image"
"$PY" - "$TMP/rows" "$TMP/peaks" "$PEAK" "$GFLOP" <<'PYEOF'
import statistics as st
import sys

rows, peaks, peak0, gflop = sys.argv[1], sys.argv[2], float(sys.argv[3] or 0), float(sys.argv[4])
peak_all = [peak0] + [float(l.split()[1]) for l in open(peaks) if l.split()[1:]]
peak = max(peak_all)
print("machine peak (peak_fma.c, 2 threads): max %.1f GFLOPS of %s" %
      (peak, ", ".join("%.1f" % p for p in peak_all)))
cfgs = {}
for line in open(rows):
    label, oi, orss, ri, rrss = line.rstrip("\n").split("|")
    cfgs.setdefault(label, []).append((float(oi), int(orss), float(ri), int(rrss)))
print("%-28s %10s %10s %7s %15s %9s %9s %11s %11s" % (
    "configuration", "ours img/s", "ORT img/s", "ratio", "ratio per round", "ours %pk",
    "ORT %pk", "ours RSS MB", "ORT RSS MB"))
for label, v in cfgs.items():
    oi = st.median(x[0] for x in v)
    ri = st.median(x[2] for x in v)
    ratios = [x[0] / x[2] if x[2] else 0 for x in v]
    print("%-28s %10.2f %10.2f %7.3f %15s %8.1f%% %8.1f%% %11.0f %11.0f" % (
        label, oi, ri, st.median(ratios), ",".join("%.2f" % q for q in ratios),
        100 * oi * gflop / peak if peak else 0, 100 * ri * gflop / peak if peak else 0,
        max(x[1] for x in v) / 2**20, max(x[3] for x in v) / 2**20))
PYEOF
