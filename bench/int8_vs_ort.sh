#!/usr/bin/env bash
# int8_vs_ort.sh — resnetd int8 ResNet-50 against ONNX Runtime 1.30 fp32 and
# against resnetd fp32, side by side in the same run. A report, not
# a test: it never fails for being slow.
#
#   bench/int8_vs_ort.sh [MODEL.onnx]
#
# Env: RESNETD (default build/resnetd), BENCH_SECONDS (default 10 per
# measurement), BENCH_ROUNDS (default 3), MODEL_CACHE (default build/bench).
# Without MODEL.onnx it exports torchvision's ResNet-50 (random weights, BN
# statistics from data, opset 13, dynamic batch, 224x224) with
# tests/engine/models.py. The int8 model is made with `resnetd quantize` from
# 32 calibration images drawn like the engine tests' inputs (cached).
# Each measurement runs in its own process, 2 threads: resnetd 1 context x 2
# threads, ONNX Runtime 2 intra-op threads; rounds alternate the three.
# The same ResNet-50 is also quantized in ONNX Runtime's QDQ layout
# (tests/quant/make_qdq.py, same calibration inputs), and that one file is
# run by both resnetd and ONNX Runtime (whose QDQ run is its own int8 path).
# Printed: img/s (median over rounds), int8/ORT and int8/fp32 ratios, and
# resnetd QDQ / ORT QDQ.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY=/usr/bin/python3
RESNETD="${RESNETD:-$ROOT/build/resnetd}"
SECS="${BENCH_SECONDS:-10}"
ROUNDS="${BENCH_ROUNDS:-3}"
CACHE="${MODEL_CACHE:-$ROOT/build/bench}"
export NODE_PATH="${NODE_PATH:-$ROOT/tests/node_modules}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

[[ -x "$RESNETD" ]] || { echo "int8_vs_ort: $RESNETD not built" >&2; exit 2; }
MODEL="${1:-}"
if [[ -z "$MODEL" ]]; then
  echo "== exporting ResNet-50 (cached)" >&2
  MODEL="$($PY "$ROOT/tests/engine/models.py" resnet50 13 "$CACHE" 2>/dev/null | tail -1)"
fi
[[ -f "$MODEL" ]] || { echo "int8_vs_ort: no model at '$MODEL'" >&2; exit 2; }
MODEL="$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")"

# fp32 model directory (preprocessing = the generator below), and its int8 twin
FP32="$TMP/fp32"
mkdir -p "$FP32"
ln -s "$MODEL" "$FP32/model.onnx"
cat >"$FP32/config.json" <<'JSON'
{"input": {"resize": 224, "crop": 224, "scale": 255.0, "mean": [0.5], "std": [0.25]}}
JSON
mkdir -p "$CACHE"
INT8="$CACHE/$(basename "$MODEL" .onnx)_int8"
if [[ ! -f "$INT8/quant.tsv" || "$INT8/quant.tsv" -ot "$MODEL" ]]; then
  echo "== quantizing (32 calibration images)" >&2
  mkdir -p "$TMP/calib"
  "$PY" - "$ROOT/tests/engine" "$TMP/calib" <<'PYEOF'
import sys, numpy as np
from PIL import Image
sys.path.insert(0, sys.argv[1])
import models
x = models.images(32, 224, 4242)
u8 = np.clip(np.round((x * 0.25 + 0.5) * 255), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
for i, im in enumerate(u8):
    Image.fromarray(im).save("%s/%02d.png" % (sys.argv[2], i))
PYEOF
  "$RESNETD" quantize --model "$FP32" --calibration "$TMP/calib" --out "$INT8" >&2
fi
QDQ="$CACHE/$(basename "$MODEL" .onnx)_qdq.onnx"
if [[ ! -f "$QDQ" || "$QDQ" -ot "$MODEL" ]]; then
  echo "== QDQ model in ONNX Runtime's layout (32 calibration inputs)" >&2
  "$PY" -c "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import models
np.save(sys.argv[2], models.images(32, 224, 4242).astype(np.float32))" \
      "$ROOT/tests/engine" "$TMP/calib.npy"
  "$PY" "$ROOT/tests/quant/make_qdq.py" "$MODEL" "$QDQ.tmp" "$TMP/calib.npy" >&2
  mv "$QDQ.tmp" "$QDQ"
fi
QDQDIR="$TMP/qdq"
mkdir -p "$QDQDIR"
ln -s "$QDQ" "$QDQDIR/model.onnx"
cp "$FP32/config.json" "$QDQDIR/"

# ours MODEL_DIR BATCH -> img/s
ours() {
  "$RESNETD" bench --model "$1" --batch "$2" --workers 1 --threads 2 --seconds "$SECS" \
      >"$TMP/out" 2>"$TMP/err" ||
    { echo "int8_vs_ort: resnetd bench failed: $(tail -1 "$TMP/err")" >&2; echo 0; return; }
  local ips
  ips="$(sed -n 's/.*"images_per_second": \([0-9.]*\).*/\1/p' "$TMP/out" | head -1)"
  echo "${ips:-0}"
}
# ort MODEL BATCH -> img/s
ort() {
  node "$ROOT/bench/ort_bench.js" "$1" "$2" 2 "$SECS" >"$TMP/out" 2>"$TMP/err" ||
    { echo "int8_vs_ort: ONNX Runtime failed: $(tail -1 "$TMP/err")" >&2; echo 0; return; }
  local ips
  ips="$(sed -n 's/.*img\/s=\([0-9.]*\).*/\1/p' "$TMP/out")"
  echo "${ips:-0}"
}

: >"$TMP/rows"
for ((r = 1; r <= ROUNDS; r++)); do
  for b in 1 8; do
    echo "== round $r/$ROUNDS, batch $b" >&2
    i8="$(ours "$INT8" "$b")"
    rt="$(ort "$MODEL" "$b")"
    f32="$(ours "$FP32" "$b")"
    q8="$(ours "$QDQDIR" "$b")"
    rq="$(ort "$QDQ" "$b")"
    echo "$b $i8 $rt $f32 $q8 $rq" >>"$TMP/rows"
  done
done
echo "model: $MODEL (int8: $INT8), 2 threads, ${SECS}s per measurement, $ROUNDS rounds"
"$PY" - "$TMP/rows" <<'PYEOF'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
print("| batch | int8 img/s | ORT fp32 img/s | resnetd fp32 img/s | int8/ORT | int8/fp32 "
      "| resnetd QDQ img/s | ORT QDQ img/s | QDQ resnetd/ORT |")
print("|---|---|---|---|---|---|---|---|---|")
for b in ("1", "8"):
    r = [[float(v) for v in x[1:]] for x in rows if x[0] == b]
    med = [st.median(c) for c in zip(*r)]
    ro = st.median(c[0] / c[1] if c[1] else 0 for c in r)
    rf = st.median(c[0] / c[2] if c[2] else 0 for c in r)
    rq = st.median(c[3] / c[4] if c[4] else 0 for c in r)
    print("| %s | %.1f | %.1f | %.1f | %.2f | %.2f | %.1f | %.1f | %.2f |"
          % (b, med[0], med[1], med[2], ro, rf, med[3], med[4], rq))
PYEOF
