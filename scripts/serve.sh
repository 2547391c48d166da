#!/usr/bin/env bash
# README command 1: install build dependencies, build, and serve the bundled
# default model on 127.0.0.1:8080. Arguments go to `resnetd serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec ./build/resnetd serve "$@"
