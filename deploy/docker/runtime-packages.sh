#!/usr/bin/env bash
# Prints, one per line, the Debian packages that own the shared libraries a
# binary loads (as `ldd` resolves them). The Dockerfile's runtime stage installs
# exactly these, so the runtime image follows the build's real link line
# instead of a hand-kept list that could drift.
#   deploy/docker/runtime-packages.sh build/resnetd
# Exit 1 if a library belongs to no package (a copy built by hand, say).
set -euo pipefail
bin=${1:?usage: runtime-packages.sh BINARY}

owner() { # PATH -> package name, or nothing
  dpkg-query -S "$1" 2>/dev/null | grep -v '^diversion' | head -n1 | cut -d: -f1 || true
}

ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u |
  while read -r lib; do
    pkg=""
    real=$(readlink -f "$lib")
    # Debian 12 is merged-/usr: ldd may name /lib/... for a file dpkg knows as
    # /usr/lib/... (or the reverse), and a symlink for the real file.
    for p in "$lib" "$real" "${lib#/usr}" "/usr${lib}" "${real#/usr}" "/usr${real}"; do
      pkg=$(owner "$p")
      [[ -n "$pkg" ]] && break
    done
    if [[ -z "$pkg" ]]; then
      echo "runtime-packages: no Debian package owns $lib" >&2
      exit 1
    fi
    echo "$pkg"
  done | sort -u
