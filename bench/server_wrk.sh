#!/usr/bin/env bash
# server_wrk.sh — `resnetd serve` under wrk against the engine alone
# (`resnetd bench`), side by side in the same run. A report, never a test.
#
#   bench/server_wrk.sh [MODEL]          MODEL: directory or .onnx
#
# Without MODEL it exports torchvision's ResNet-50 (random weights, opset 13,
# dynamic batch; ImageNet preprocessing) with tests/engine/models.py.
# Env: RESNETD (default build/resnetd), SECONDS_PER_RUN (default 15),
# CONCURRENCY (default "1 2 4 8 16"), SERVE_ARGS (extra serve flags, e.g.
# "--workers 2 --threads-per-worker 1"), THREADS (engine threads of the
# reference run, default 2 = the server's default budget), OUT (default
# build/bench/server_wrk: results.tsv, server_wrk.png, serve.log).
#
# Steps: (1) a 500x375 JPEG; (2) `resnetd bench` at batch 1 and max_batch
# with the same thread budget, server not running; (3) the server, then wrk
# at each concurrency (POST the JPEG to /v1/classify); img/s, p50, p99, and
# the server's mean preprocess time from /metrics; (4) the server's peak RSS
# (VmHWM); (5) a gnuplot PNG of img/s and latency against concurrency.
# Printed: the table, server saturation img/s / engine img/s (target >= 0.9;
# the engine is measured before and after the server and averaged),
# and p50 at concurrency 1 against engine batch-1 latency + preprocess + 2 ms.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY=/usr/bin/python3
RESNETD="${RESNETD:-$ROOT/build/resnetd}"
SECS="${SECONDS_PER_RUN:-15}"
CONC="${CONCURRENCY:-1 2 4 8 16}"
THREADS="${THREADS:-2}"
OUT="${OUT:-$ROOT/build/bench/server_wrk}"
mkdir -p "$OUT"
TMP="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" || true
  rm -rf "$TMP"
}
trap cleanup EXIT
[[ -x "$RESNETD" ]] || { echo "server_wrk: $RESNETD not built" >&2; exit 2; }
command -v wrk >/dev/null || { echo "server_wrk: wrk not installed" >&2; exit 2; }

MODEL="${1:-}"
if [[ -z "$MODEL" ]]; then
  echo "== exporting ResNet-50 (cached)" >&2
  MODEL="$($PY "$ROOT/tests/engine/models.py" resnet50 13 "$ROOT/build/bench" 2>/dev/null | tail -1)"
fi
MAXB="$($PY -c 'import json,os,sys; p=sys.argv[1]; c=os.path.join(p,"config.json")
print(json.load(open(c)).get("max_batch", 8) if os.path.isdir(p) and os.path.exists(c) else 8)' "$MODEL")"

# (1) a 500x375 photo-like JPEG (smooth gradients + shapes + noise)
IMAGE="$TMP/bench.jpg"
$PY - "$IMAGE" <<'PYEOF'
import sys, numpy as np
from PIL import Image, ImageDraw
rng = np.random.default_rng(1)
y, x = np.mgrid[0:375, 0:500]
a = np.stack([(x * 0.5 + 40) % 256, (y * 0.6 + 20) % 256, ((x + y) * 0.3) % 256], -1)
a = np.clip(a + rng.normal(0, 12, a.shape), 0, 255).astype(np.uint8)
im = Image.fromarray(a)
d = ImageDraw.Draw(im)
d.ellipse((150, 90, 350, 290), fill=(200, 120, 60))
d.rectangle((30, 250, 140, 360), fill=(40, 90, 200))
im.save(sys.argv[1], quality=90)
PYEOF
export IMAGE

# (2) the engine alone, same thread budget, nothing else running
echo "== resnetd bench --batch 1,$MAXB --threads $THREADS" >&2
"$RESNETD" bench --model "$MODEL" --batch "1,$MAXB" --threads "$THREADS" --seconds "$SECS" \
  2>/dev/null | grep '^{' > "$TMP/engine.jsonl"
cat "$TMP/engine.jsonl"

# (3) the server
"$RESNETD" serve --model "$MODEL" --host 127.0.0.1 --port 0 --grpc-port 0 --log-level info \
  --queue-capacity 256 ${SERVE_ARGS:-} 2> "$OUT/serve.log" &
SERVER_PID=$!
PORT=""
for _ in $(seq 600); do
  PORT="$(grep -o '"msg":"listening","detail":"[^"]*' "$OUT/serve.log" 2>/dev/null | sed 's/.*://' || true)"
  [[ -n "$PORT" ]] && curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/serve.log" >&2; exit 1; }
  sleep 0.2
done
URL="http://127.0.0.1:$PORT/v1/classify"
curl -sf --data-binary @"$IMAGE" "$URL" >/dev/null || { echo "server_wrk: classify failed" >&2; exit 1; }
printf 'concurrency\timg_per_s\tp50_ms\tp90_ms\tp99_ms\terrors\n' > "$OUT/results.tsv"
for c in $CONC; do
  t=$(( c < 2 ? c : 2 ))
  line="$(wrk -t "$t" -c "$c" -d "${SECS}s" --timeout 30s -s "$ROOT/bench/server_wrk.lua" "$URL" \
          | grep '^WRKJSON' | sed 's/^WRKJSON //')"
  $PY -c 'import json,sys; r=json.loads(sys.argv[1]); print("%s\t%.2f\t%.1f\t%.1f\t%.1f\t%d" % (sys.argv[2], r["rps"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["errors"]))' \
    "$line" "$c" >> "$OUT/results.tsv"
  tail -1 "$OUT/results.tsv" >&2
done
METRICS="$(curl -sf "http://127.0.0.1:$PORT/metrics")"
HWM_KB="$(awk '/VmHWM/ {print $2}' /proc/$SERVER_PID/status)"
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""
# the engine again: on a shared, noisy machine the mean of before and after is fairer
echo "== resnetd bench again (after the server runs)" >&2
"$RESNETD" bench --model "$MODEL" --batch "1,$MAXB" --threads "$THREADS" --seconds "$SECS" \
  2>/dev/null | grep '^{' > "$TMP/engine2.jsonl"
cat "$TMP/engine2.jsonl"

# (4) the report
$PY - "$TMP/engine.jsonl" "$OUT/results.tsv" "$HWM_KB" "$MAXB" "$TMP/engine2.jsonl" <<PYEOF
import json, re, sys
eng = {r["batch"]: r for r in map(json.loads, open(sys.argv[1]))}
for r in map(json.loads, open(sys.argv[5])):  # mean of the two engine runs
    e = eng[r["batch"]]
    for k in ("images_per_second", "latency_ms_p50", "latency_ms_p99"):
        e[k] = (e[k] + r[k]) / 2
    e["peak_rss_bytes"] = max(e["peak_rss_bytes"], r["peak_rss_bytes"])
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[2])][1:]
hwm, maxb = int(sys.argv[3]) * 1024, int(sys.argv[4])
m = """$METRICS"""
def hsum(name):
    s = re.search(rf"^{name}_sum{{[^}}]*}} (\S+)", m, re.M)
    c = re.search(rf"^{name}_count{{[^}}]*}} (\S+)", m, re.M)
    return float(s.group(1)) / max(1.0, float(c.group(1)))
pre_ms = hsum("resnetd_preprocess_duration_seconds") * 1e3
bmean = hsum("resnetd_batch_size")
best = max(float(r[1]) for r in rows)
e_sat = max(r["images_per_second"] for r in eng.values())
e1 = eng[1]
print(f"server: {' '.join(r[0] + ':' + r[1] for r in rows)} img/s by concurrency")
print(f"server saturation {best:.2f} img/s vs engine best {e_sat:.2f} img/s "
      f"(batch {max(eng, key=lambda b: eng[b]['images_per_second'])}): ratio {best / e_sat:.3f} (target >= 0.9)")
p50_1 = float(rows[0][2])
budget = e1["latency_ms_p50"] + pre_ms + 2
print(f"p50 at concurrency {rows[0][0]}: {p50_1:.1f} ms vs engine batch-1 p50 {e1['latency_ms_p50']:.1f} ms"
      f" + preprocess {pre_ms:.1f} ms + 2 ms = {budget:.1f} ms ({'met' if p50_1 <= budget else 'missed'})")
print(f"mean batch size under load {bmean:.2f} (max_batch {maxb}); server peak RSS {hwm / 2**20:.0f} MiB;"
      f" engine-only peak RSS {max(r['peak_rss_bytes'] for r in eng.values()) / 2**20:.0f} MiB")
PYEOF

# (5) the plot
if command -v gnuplot >/dev/null; then
  gnuplot <<GPEOF
set terminal pngcairo size 900,500
set output "$OUT/server_wrk.png"
set title "resnetd serve under wrk (500x375 JPEG)"
set xlabel "concurrent connections"
set logscale x 2
set ylabel "images / s"
set y2label "latency (ms)"
set ytics nomirror
set y2tics
set key top left
plot "$OUT/results.tsv" using 1:2 skip 1 with linespoints lw 2 title "img/s", \
     "" using 1:3 skip 1 axes x1y2 with linespoints title "p50 ms", \
     "" using 1:5 skip 1 axes x1y2 with linespoints title "p99 ms"
GPEOF
  echo "plot: $OUT/server_wrk.png"
fi
echo "table: $OUT/results.tsv"
