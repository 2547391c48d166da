#!/usr/bin/env bash
# tools_offline.sh — the model tools that need the internet fail at once, with
# exit code 1 and a message that says so, when the network is unreachable; bad
# usage exits 2.
#
#   tools_offline.sh REPO_ROOT PYTHON
#
# "Offline" is simulated on any machine (CI may be online) by sending every
# HTTP(S) request to a closed local port through the proxy variables that
# curl and Python's urllib both honour, and by pointing TORCH_HOME at an empty
# directory so no cached checkpoint can stand in for the download.
set -uo pipefail
root=$1
py=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A port with nothing listening: bind one, note it, let it go.
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export http_proxy=http://127.0.0.1:$port https_proxy=http://127.0.0.1:$port
export HTTP_PROXY=$http_proxy HTTPS_PROXY=$https_proxy no_proxy= NO_PROXY=
export TORCH_HOME=$tmp/torch

fail=0
check() { # check NAME WANT_RC MAX_SECONDS PATTERN CMD...
  local name=$1 want=$2 max=$3 pat=$4
  shift 4
  local t0 t1 rc
  t0=$EPOCHREALTIME
  "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  t1=$EPOCHREALTIME
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  if [[ $rc -ne $want ]]; then
    echo "FAIL $name: exit $rc, want $want; stderr: $(cat "$tmp/err")"
    fail=1
  elif ! grep -qiE "$pat" "$tmp/err"; then
    echo "FAIL $name: stderr does not match /$pat/: $(cat "$tmp/err")"
    fail=1
  elif awk -v s="$secs" -v m="$max" 'BEGIN { exit !(s > m) }'; then
    echo "FAIL $name: took ${secs}s, more than ${max}s"
    fail=1
  else
    echo "ok   $name: exit $rc in ${secs}s: $(head -c 200 "$tmp/err")"
  fi
  if [[ -e "$tmp/m/model.onnx" ]]; then
    echo "FAIL $name: wrote a model.onnx although offline"
    fail=1
  fi
}

check "fetch-model v1 offline" 1 10 "offline" "$root/tools/fetch-model.sh" resnet50 v1 "$tmp/m"
check "fetch-model v2 offline" 1 10 "offline" "$root/tools/fetch-model.sh" resnet50 v2 "$tmp/m"
check "fetch-model bad version" 2 5 "unknown version" "$root/tools/fetch-model.sh" resnet50 v9 "$tmp/m"
check "fetch-model bad model" 2 5 "unknown model" "$root/tools/fetch-model.sh" vgg16
check "export_torchvision offline" 1 10 "offline" "$py" "$root/tools/export_torchvision.py" resnet50 --out "$tmp/m"
# Nothing may be left behind in the output directory.
if [[ -n "$(ls -A "$tmp/m" 2>/dev/null)" ]]; then
  echo "FAIL: files left in the output directory: $(ls -A "$tmp/m")"
  fail=1
fi
exit $fail
