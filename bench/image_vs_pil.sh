#!/usr/bin/env bash
# Image pipeline benchmark: bytes -> [3,224,224] tensor per image, resnetd
# (exact and fast path) vs PIL + torchvision, single core, same run.
# usage: bench/image_vs_pil.sh [RESNETD_BINARY] [SECONDS_PER_ROUND] [ROUNDS]
# Reports ratios; never fails for being slow.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/resnetd}
secs=${2:-1}
rounds=${3:-5}
[[ -x "$bin" ]] || { echo "no resnetd binary at $bin (run scripts/build.sh)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One core for both sides: the comparison is per-core work.
OMP_NUM_THREADS=1 taskset -c 0 /usr/bin/python3 bench/image_vs_pil.py "$bin" "$work" "$secs" "$rounds"
