#!/usr/bin/env bash
# README command 2: install everything the tests use, then run the whole suite:
#   1. format check (.clang-format) and a warning-free (-Werror) build;
#   2. every ctest test on the optimised build;
#   3. the tests labelled "asan" on an ASan+UBSan build, "tsan" on a TSan build;
#   4. the libFuzzer targets for a bounded time each (label "fuzz"); a new
#      finding fails the suite (RESNETD_FUZZ_GATE=0 only reports it);
#   5. the containers stage (scripts/test-containers.sh, label "container"):
#      the image, the .deb, compose and Kubernetes in a real Docker engine.
# Set RESNETD_TEST_QUICK=1 to skip steps 3 and 4, RESNETD_SKIP_CONTAINERS=1
# to skip step 5 (refused when CI is set: CI always runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test

echo "== format check"
bad=$(git ls-files '*.c' '*.h' | while read -r f; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || echo "$f"; done)
if [[ -n "$bad" ]]; then echo "not clang-formatted:"; echo "$bad"; exit 1; fi

echo "== build (RelWithDebInfo, -Werror)"
BUILD_DIR=build scripts/build.sh -DRESNETD_WERROR=ON
echo "== tests"
ctest --test-dir build --output-on-failure -j2 -LE 'fuzz|container'

if [[ "${RESNETD_TEST_QUICK:-0}" != 1 ]]; then
  echo "== ASan+UBSan build and tests"
  BUILD_DIR=build-asan BUILD_TYPE=Debug scripts/build.sh -DRESNETD_WERROR=ON -DRESNETD_ASAN=ON
  ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j2 -L asan
  echo "== TSan build and tests"
  BUILD_DIR=build-tsan BUILD_TYPE=RelWithDebInfo scripts/build.sh -DRESNETD_WERROR=ON -DRESNETD_TSAN=ON
  ctest --test-dir build-tsan --output-on-failure -j1 -L tsan
  if [[ -n "$(ls tests/fuzz 2>/dev/null)" ]]; then
    echo "== fuzzing"
    BUILD_DIR=build-fuzz BUILD_TYPE=RelWithDebInfo CC=clang scripts/build.sh -DRESNETD_FUZZ=ON
    # A finding is printed with its input saved in build-fuzz/tests/fuzz/
    # (fix it and keep the input in tests/fuzz/regressions/<target>/, whose
    # replays run in the ASan build above). RESNETD_FUZZ_GATE=0 reports
    # findings without failing, for exploratory runs.
    if ! ctest --test-dir build-fuzz --output-on-failure -j2 -L fuzz; then
      echo "fuzzing: NEW FINDINGS (inputs in build-fuzz/tests/fuzz/crash-*)"
      ls build-fuzz/tests/fuzz/crash-* 2>/dev/null || true
      if [[ "${RESNETD_FUZZ_GATE:-1}" != 0 ]]; then exit 1; fi
      echo "== fuzz findings reported only (RESNETD_FUZZ_GATE=0): NOT all tests passed"
      scripts/test-containers.sh
      exit 0
    fi
  fi
fi
scripts/test-containers.sh
echo "== all tests passed"
