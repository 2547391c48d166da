#!/usr/bin/env bash
# classify_vs_bench.sh — `resnetd classify` (files -> decode -> batches -> JSON
# lines) against `resnetd bench` (the engine alone on a ready tensor), side by
# side in the same run, at the same batch, workers and threads. A report, not
# a test: it never fails for being slow.
#
#   bench/classify_vs_bench.sh [fm|resnet50|all]     (default all)
#
# Data (made once, kept in $DATA, default build/bench/classify):
#   fm        2,000 Fashion-MNIST test-set PNGs (tools/fashion_mnist_images.py,
#             Debian's dataset-fashion-mnist) with the bundled models/fashion-mnist
#   resnet50  500 photo-like JPEGs, 640x480 ... 1920x1080 (bench/make_photos.py)
#             with torchvision's ResNet-50 (random weights, tests/engine/models.py)
#             and torchvision's ImageNet preprocessing (no config.json)
#
# Each round runs bench then classify back to back (the machine is shared: the
# two should see the same load); the table gives every round and the median
# of the per-round ratios. classify's img/s is its --stats figure: files /
# seconds from the start of the pipeline (model loaded, contexts made) to the
# last line written, so it includes reading, decoding, building each batch
# size's primitives at first use and writing; "wall" is files / the whole
# process's time, model load included. bench's excludes its warm-up.
# On a shared machine wall time follows the other processes' load; the CPU
# columns (images per CPU-second of each process, user + sys, model load and
# bench's warm-up included) are the load-independent comparison of the work
# each does per image (OpenMP spin-waiting counts as CPU, so contention
# inflates both).
#
# Env: RESNETD (default build/resnetd), ROUNDS (3), BATCH (8), WORKERS (1),
# THREADS (cores / WORKERS), SECONDS_FM (3) and SECONDS_R50 (10) per bench
# run, CLASSIFY_ARGS (more classify flags, e.g. "--decode-threads 2"), DATA,
# MODEL_CACHE (where the ResNet-50 export is cached, default build/bench).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY=/usr/bin/python3
RESNETD="${RESNETD:-$ROOT/build/resnetd}"
ROUNDS="${ROUNDS:-3}"
BATCH="${BATCH:-8}"
WORKERS="${WORKERS:-1}"
THREADS="${THREADS:-$(($(nproc) / WORKERS > 0 ? $(nproc) / WORKERS : 1))}"
DATA="${DATA:-$ROOT/build/bench/classify}"
WHICH="${1:-all}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
[[ -x "$RESNETD" ]] || { echo "classify_vs_bench: $RESNETD not built (scripts/build.sh)" >&2; exit 2; }
case "$WHICH" in fm | resnet50 | all) ;; *) echo "usage: $0 [fm|resnet50|all]" >&2; exit 2 ;; esac

count() { find "$1" -maxdepth 1 -type f -name "$2" 2>/dev/null | wc -l; }
prepare_fm() {
  if [[ "$(count "$DATA/fm" '*.png')" -ne 2000 ]]; then
    echo "== writing 2,000 Fashion-MNIST PNGs to $DATA/fm" >&2
    rm -rf "$DATA/fm"
    "$PY" "$ROOT/tools/fashion_mnist_images.py" "$DATA/fm" --count 2000 >&2
    rm -f "$DATA/fm/labels.csv"
  fi
}
prepare_r50() {
  if [[ "$(count "$DATA/photos" '*.jpg')" -ne 500 ]]; then
    echo "== writing 500 photo-like JPEGs to $DATA/photos" >&2
    rm -rf "$DATA/photos"
    "$PY" "$ROOT/bench/make_photos.py" "$DATA/photos" --count 500 >&2
  fi
  echo "== exporting ResNet-50 (cached)" >&2
  local onnx
  onnx="$("$PY" "$ROOT/tests/engine/models.py" resnet50 13 "${MODEL_CACHE:-$ROOT/build/bench}" \
          2>/dev/null | tail -1)"
  [[ -f "$onnx" ]] || { echo "classify_vs_bench: ResNet-50 export failed" >&2; exit 1; }
  mkdir -p "$DATA/resnet50"
  ln -sf "$onnx" "$DATA/resnet50/model.onnx"
  cp "$ROOT/models/imagenet_labels.txt" "$DATA/resnet50/labels.txt"
}

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
field() { sed -n "s/.*\"$1\": \\([0-9.]*\\).*/\\1/p" | head -1; }

# measure NAME MODEL DIR FILES SECONDS
measure() {
  local name=$1 model=$2 dir=$3 files=$4 secs=$5 r b c w ratios=() cpuratios=()
  local bcpu bimg ccpu cwall cr
  echo "== $name: batch $BATCH, workers $WORKERS, threads $THREADS, $ROUNDS rounds" >&2
  for ((r = 1; r <= ROUNDS; r++)); do
    /usr/bin/time -f "time %e %U %S" -o "$TMP/btime" "$RESNETD" bench --model "$model" \
        --batch "$BATCH" --workers "$WORKERS" --threads "$THREADS" --seconds "$secs" \
        >"$TMP/bench" 2>"$TMP/berr"
    b="$(field images_per_second <"$TMP/bench")"
    # images bench ran: timed runs plus 2 warm-up runs per worker, BATCH each
    bimg=$(( ($(sed -n 's/.* over \([0-9]*\) runs.*/\1/p' "$TMP/berr" | head -1) + 2 * WORKERS) * BATCH ))
    bcpu=$(awk '{print $3 + $4}' "$TMP/btime")
    # shellcheck disable=SC2086
    /usr/bin/time -f "time %e %U %S" -o "$TMP/ctime" "$RESNETD" classify --model "$model" \
        --max-batch "$BATCH" --workers "$WORKERS" --threads-per-worker "$THREADS" --stats \
        --no-progress ${CLASSIFY_ARGS:-} "$dir" >"$TMP/out.jsonl" 2>"$TMP/err" || true
    ccpu=$(awk '{print $3 + $4}' "$TMP/ctime")
    cwall=$(awk '{print $2}' "$TMP/ctime")
    c="$(field images_per_second <"$TMP/err")"
    local n ok
    n=$(wc -l <"$TMP/out.jsonl")
    ok=$(grep -c '"predictions"' "$TMP/out.jsonl" || true)
    [[ "$n" -eq "$files" && "$ok" -eq "$files" ]] ||
      echo "classify_vs_bench: $name: $ok of $n lines classified, want $files: $(tail -1 "$TMP/err")" >&2
    w=$(echo "$files / $cwall" | bc -l)
    ratio=$(echo "${c:-0} / ${b:-1}" | bc -l)
    cr=$(echo "($files / $ccpu) / ($bimg / $bcpu)" | bc -l)
    ratios+=("$ratio")
    cpuratios+=("$cr")
    printf '%-9s round %d: bench %8.2f img/s | classify %8.2f img/s (wall %8.2f) | ratio %.3f | per CPU-s: bench %7.2f classify %7.2f ratio %.3f | load %s\n' \
      "$name" "$r" "${b:-0}" "${c:-0}" "$w" "$ratio" "$(echo "$bimg / $bcpu" | bc -l)" \
      "$(echo "$files / $ccpu" | bc -l)" "$cr" "$(cut -d' ' -f1-3 /proc/loadavg)"
  done
  printf '%-9s median classify/bench ratio over %d rounds: %.3f (img/s); %.3f (img per CPU-second)\n' \
    "$name" "$ROUNDS" "$(printf '%s\n' "${ratios[@]}" | median)" \
    "$(printf '%s\n' "${cpuratios[@]}" | median)"
}

echo "before: $(uptime)"
echo "resnetd $("$RESNETD" --version | cut -d' ' -f2), $(nproc) cores, CLASSIFY_ARGS='${CLASSIFY_ARGS:-}'"
if [[ "$WHICH" != resnet50 ]]; then
  prepare_fm
  measure fm "$ROOT/models/fashion-mnist" "$DATA/fm" 2000 "${SECONDS_FM:-3}"
fi
if [[ "$WHICH" != fm ]]; then
  prepare_r50
  measure resnet50 "$DATA/resnet50" "$DATA/photos" 500 "${SECONDS_R50:-10}"
fi
echo "after: $(uptime)"
