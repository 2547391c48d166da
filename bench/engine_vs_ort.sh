#!/usr/bin/env bash
# engine_vs_ort.sh — resnetd's engine against ONNX Runtime 1.30, side by side
# in the same run, on the same ResNet-50 ONNX (PERF.md). A report, not a test:
# it never fails for being slow.
#
#   bench/engine_vs_ort.sh [MODEL.onnx]
#
# Env: RESNETD (default build/resnetd), BENCH_SECONDS (default 15 per
# measurement), GFLOP_PER_IMAGE (default 8.18, ResNet-50 at 224x224),
# MODEL_CACHE (where the exported ResNet-50 is kept, default build/bench).
# Without MODEL.onnx it exports torchvision's ResNet-50 (random weights, BN
# folded, opset 13, dynamic batch) with tests/engine/models.py.
#
# Measured, each in its own process (so peak RSS is per configuration):
#   batch 1 and 8, 2 threads: resnetd (1 context x 2 threads) vs ORT (2 intra-op threads)
#   resnetd 2 contexts x 1 thread at batch 1 and 8 (vs the same ORT run)
# Printed: img/s of both, ratio ours/ORT, % of the machine's 2-thread FMA
# peak (peers/peakfma.c), peak RSS of both.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY=/usr/bin/python3
RESNETD="${RESNETD:-$ROOT/build/resnetd}"
SECS="${BENCH_SECONDS:-15}"
GFLOP="${GFLOP_PER_IMAGE:-8.18}"
PEERS="${PEERS:-$ROOT/../shared/peers}"
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

echo "== machine peak (peakfma.c, 2 threads)" >&2
gcc -O2 -mavx2 -mfma -pthread "$PEERS/peakfma.c" -o "$TMP/peakfma"
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
  "$PY" "$ROOT/bench/peak_rss.py" node "$PEERS/bench_ort.js" "$MODEL" "$1" "$2" "$SECS" \
      >"$TMP/out" 2>"$TMP/err" ||
    { echo "engine_vs_ort: ONNX Runtime failed: $(tail -1 "$TMP/err")" >&2; echo "0 0"; return; }
  local ips rss
  ips="$(sed -n 's/.*img\/s=\([0-9.]*\).*/\1/p' "$TMP/out")"
  rss="$(sed -n 's/^peak_rss_bytes \([0-9]*\)/\1/p' "$TMP/out")"
  echo "${ips:-0} ${rss:-0}"
}

echo "model: $MODEL"
echo "$SECS s per measurement; $GFLOP GFLOP/image; % of peak uses the 2-thread FMA peak measured"
echo "before the runs ($PEAK GFLOPS; re-measured at the end, since the machine is shared)"
printf '%-30s %10s %10s %7s %9s %9s %11s %11s\n' configuration "ours img/s" "ORT img/s" ratio \
  "ours %pk" "ORT %pk" "ours RSS MB" "ORT RSS MB"
row() { # label ours_ips ours_rss ort_ips ort_rss
  awk -v l="$1" -v oi="$2" -v orss="$3" -v ri="$4" -v rrss="$5" -v peak="$PEAK" -v g="$GFLOP" \
    'BEGIN { printf "%-30s %10.2f %10.2f %7.3f %8.1f%% %8.1f%% %11.0f %11.0f\n", l, oi, ri,
             (ri > 0 ? oi / ri : 0), (peak > 0 ? 100 * oi * g / peak : 0),
             (peak > 0 ? 100 * ri * g / peak : 0), orss / 1048576, rrss / 1048576 }'
}
for b in 1 8; do
  echo "== batch $b" >&2
  read -r oi orss < <(ours "$b" 1 2)
  read -r ri rrss < <(ort "$b" 2)
  read -r wi wrss < <(ours "$b" 2 1)
  row "batch $b, 1 ctx x 2 threads" "$oi" "$orss" "$ri" "$rrss"
  row "batch $b, 2 ctx x 1 thread" "$wi" "$wrss" "$ri" "$rrss"
done
PEAK_END="$(peak)"
echo "machine peak: $PEAK GFLOPS before, $PEAK_END GFLOPS after (2 threads)"
