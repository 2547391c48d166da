#!/usr/bin/env bash
# Configures and builds resnetd into build/ (or $BUILD_DIR). Extra arguments go
# to cmake's configure step, e.g. scripts/build.sh -DRESNETD_ASAN=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BUILD_DIR:-build}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
