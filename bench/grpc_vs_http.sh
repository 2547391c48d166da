#!/usr/bin/env bash
# grpc_vs_http.sh — gRPC ModelInfer vs the HTTP /v2 infer route of the same
# `resnetd serve`, same model and image, same load tool (h2load, Debian
# nghttp2-client: HTTP/2 for gRPC, --h1 for HTTP). A report, never a test.
#
#   bench/grpc_vs_http.sh [MODEL ...]    MODEL: directory; default: the bundled
#                                        models/fashion-mnist, then "resnet50"
#                                        when RESNET50=1
# "resnet50" exports torchvision's ResNet-50 (random weights, opset 13,
# dynamic batch, ImageNet preprocessing) with tests/engine/models.py, offline.
# Env: RESNETD (default build/resnetd), REQUESTS (per throughput run, default
# 2000), ROUNDS (alternating gRPC/HTTP runs, default 5), LATENCY_REQUESTS
# (per round, default 200), SERVE_ARGS (extra serve flags), IMAGE (the image sent; default a
# 500x375 photo-like JPEG made here).
#
# Per model: throughput at 8 gRPC streams on one connection vs 8 HTTP/1.1
# connections (median img/s of the alternated runs; target gRPC >= 1.0x
# HTTP), and p50/p99 at concurrency 1 from h2load's per-request log (target
# gRPC p50 within 1 ms of HTTP's). Every gRPC run is checked against the
# server's own count of OK gRPC requests; the answers of both routes are
# compared once before timing. `uptime` is printed before and after: the
# numbers mean little on a loaded machine.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY=/usr/bin/python3
RESNETD="${RESNETD:-$ROOT/build/resnetd}"
[[ -x "$RESNETD" ]] || { echo "grpc_vs_http: $RESNETD not built" >&2; exit 2; }
command -v h2load >/dev/null || { echo "grpc_vs_http: h2load not installed (nghttp2-client)" >&2; exit 2; }
MODELS=("$@")
if ((${#MODELS[@]} == 0)); then
  MODELS=("$ROOT/models/fashion-mnist")
  [[ "${RESNET50:-0}" == 1 ]] && MODELS+=(resnet50)
fi
echo "== uptime before: $(uptime)"
for m in "${MODELS[@]}"; do
  if [[ "$m" == resnet50 ]]; then
    echo "== exporting ResNet-50 (cached)" >&2
    m="$($PY "$ROOT/tests/engine/models.py" resnet50 13 "$ROOT/build/bench" 2>/dev/null | tail -1)"
  fi
  echo "== $m"
  $PY "$ROOT/bench/grpc_vs_http.py" "$RESNETD" "$m" ${IMAGE:+"$IMAGE"}
done
echo "== uptime after: $(uptime)"
