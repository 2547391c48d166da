#!/usr/bin/env bash
# Soak: `resnetd serve` under ~70% of its saturation rate with a mix of valid
# and invalid requests for SOAK_SECONDS (default 600 = 10 minutes), reporting
# RSS over time, open fds, threads and status counts as JSON lines.
#   bench/soak.sh [RESNETD_BINARY] [extra serve flags...]
# Env: SOAK_SECONDS, SOAK_LOAD (0.7), SOAK_SAMPLE_S, SOAK_CLIENTS (8), SOAK_FD_SLACK (clients + 2).
# Pass (exit 0): zero unexpected statuses / 5xx, RSS growth after warm-up
# (first 20%) < 10%, open fds and threads flat. CI runs SOAK_SECONDS=60 (ctest -L slow).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../build/resnetd}"
shift || true
exec /usr/bin/python3 "$here/soak.py" "$bin" "$@"
