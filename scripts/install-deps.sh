#!/usr/bin/env bash
# Installs the Debian 12 packages resnetd needs. Idempotent: packages already
# present are skipped, so a second run is quick and changes nothing.
#   scripts/install-deps.sh          build + runtime dependencies
#   scripts/install-deps.sh --test   also everything the test suite uses
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config clang clang-format
  libdnnl-dev libmicrohttpd-dev libjansson-dev libjpeg-dev
  libpng-dev libwebp-dev libprotobuf-c-dev protobuf-c-compiler libonnx-dev libnghttp2-dev)
test_pkgs=(python3 python3-numpy python3-pil python3-yaml python3-torch python3-torchvision
  python3-onnx python3-prometheus-client python3-grpcio python3-grpc-tools python3-h2
  libonnx-testdata dataset-fashion-mnist
  curl wrk nginx haproxy prometheus libclang-rt-14-dev
  chromium gnuplot-nox openssl gnutls-bin
  python3-protobuf nghttp2-client  # gRPC tests (protobuf runtime), bench/grpc_vs_http.sh (h2load)
  docker.io debootstrap docker-compose systemd man-db)  # the containers stage

want=("${build_pkgs[@]}")
if [[ "${1:-}" == "--test" ]]; then
  want+=("${test_pkgs[@]}")
  # Node.js for ONNX Runtime: use the machine's own if it has one.
  command -v npm >/dev/null 2>&1 || want+=(nodejs npm)
  # kubectl (kustomize) renders deploy/k8s: Debian's unless the machine has one.
  command -v kubectl >/dev/null 2>&1 || want+=(kubernetes-client)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all Debian packages present" >&2
fi

# ONNX Runtime (the numerical and speed reference) comes from npm; its install
# script fetches GPU extras, which --ignore-scripts skips.
if [[ "${1:-}" == "--test" ]]; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  if [[ ! -d "$here/tests/node_modules/onnxruntime-node" || ! -d "$here/tests/node_modules/playwright-core" ||
        ! -d "$here/tests/node_modules/kubernetes-models" || ! -d "$here/tests/node_modules/@grpc/grpc-js" ]]; then
    echo "install-deps: npm install in tests/" >&2
    (cd "$here/tests" && npm install --ignore-scripts --no-audit --no-fund --silent)
  fi
fi
