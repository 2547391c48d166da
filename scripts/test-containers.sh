#!/usr/bin/env bash
# CI stage "containers" (scripts/test.sh runs it last): the container image,
# the Debian package, the compose stack and the Kubernetes manifests, tested
# in a real Docker engine that this script starts and stops itself.
#
#   scripts/test-containers.sh          (as root: dockerd needs it)
#
# 1. starts its own dockerd (vfs storage; socket, exec-root and pidfile in a
#    temp dir; data-root in $RESNETD_CI_CACHE/docker so that image layers are
#    reused between runs on the same machine) and stops it by its pid on exit,
#    whatever happens. Bridge networking is used when the kernel allows it,
#    else dockerd runs with --bridge=none --iptables=false; the tests run
#    containers with --network host either way.
# 2. makes debian:bookworm and debian:bookworm-slim with debootstrap from the
#    mirror apt uses when the engine lacks them (tarballs cached in
#    $RESNETD_CI_CACHE; there is no registry to pull from).
# 3. builds the image from the Dockerfile (legacy builder, DOCKER_BUILDKIT=0:
#    BuildKit would fetch a frontend image) and the .deb (cpack -G DEB in
#    build-deb, prefix /usr).
# 4. runs the ctest tests labelled "container" (tests/deploy/) against them.
#
# RESNETD_SKIP_CONTAINERS=1 skips the stage for quick local runs; it is
# refused when CI is set (CI never skips it). The stage's time is printed at
# the end, with each step's.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [[ "${RESNETD_SKIP_CONTAINERS:-0}" == 1 ]]; then
  if [[ -n "${CI:-}" ]]; then
    echo "test-containers: RESNETD_SKIP_CONTAINERS=1 is not allowed in CI" >&2
    exit 1
  fi
  echo "== containers: skipped (RESNETD_SKIP_CONTAINERS=1)"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "test-containers: needs root (it starts dockerd)" >&2
  exit 1
fi

stage_start=$(date +%s)
step_start=$stage_start
timings=()
step() { # NAME: closes the previous step's timing, prints a header
  local now
  now=$(date +%s)
  if [[ -n "${step_name:-}" ]]; then timings+=("$(printf '%-28s %4d s' "$step_name" $((now - step_start)))"); fi
  step_name=$1
  step_start=$now
  [[ -n "$1" ]] && echo "== containers: $1"
  return 0
}

cache=${RESNETD_CI_CACHE:-/var/cache/resnetd-ci}
mkdir -p "$cache"
work=$(mktemp -d /tmp/resnetd-ci.XXXXXX)
export DOCKER_HOST="unix://$work/docker.sock"
dockerd_pid=""

cleanup() {
  local rc=$?
  if [[ -n "$dockerd_pid" ]]; then
    # Containers first (their processes are dockerd's children's children),
    # then the daemon, by its pid; SIGKILL if it does not go within 30 s.
    docker ps -aq 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1 || true
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$dockerd_pid" 2>/dev/null || true
  fi
  # exec-root may hold mounts (netns, shm) if the daemon died hard.
  grep -o " $work/[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || true
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "test-containers: line $LINENO failed: $BASH_COMMAND" >&2' ERR

start_dockerd() { # extra dockerd args...
  dockerd --storage-driver=vfs --data-root "$cache/docker" --exec-root "$work/exec" \
    --host "$DOCKER_HOST" --pidfile "$work/dockerd.pid" "$@" >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 120); do
    if docker version >/dev/null 2>&1; then return 0; fi
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.5
  done
  wait "$dockerd_pid" 2>/dev/null || true
  dockerd_pid=""
  return 1
}

# A debootstrap'd root as an image. slim: dpkg drops docs, man pages and
# locales like the official bookworm-slim (a test that needs man pages says so).
make_base() { # TAG
  local tag=$1 tarball="$cache/$1.tar"
  if docker image inspect "debian:$tag" >/dev/null 2>&1; then return 0; fi
  if [[ ! -s "$tarball" ]]; then
    local root="$work/rootfs-$tag" mirror
    # The mirror apt uses here (deb822 sources first, then sources.list).
    mirror=$( (grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' \
      /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true) |
      grep -oE 'https?://[^ ]+' | head -n1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    echo "containers: debootstrap bookworm ($tag) from $mirror"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap-$tag.log" 2>&1 ||
      { tail -20 "$work/debootstrap-$tag.log"; return 1; }
    # Same suites as the official image: updates and security.
    printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" "${mirror%/debian*}/debian-security" >"$root/etc/apt/sources.list.d/debian.sources"
    rm -f "$root/etc/apt/sources.list"
    if [[ "$tag" == bookworm-slim ]]; then
      printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' 'path-exclude /usr/share/groff/*' \
        'path-exclude /usr/share/info/*' 'path-exclude /usr/share/lintian/*' \
        'path-exclude /usr/share/locale/*' >"$root/etc/dpkg/dpkg.cfg.d/docker-slim"
      find "$root/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
      rm -rf "$root"/usr/share/{man,info,locale,lintian}/*
    fi
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . >"$tarball.tmp" && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  docker import "$tarball" "debian:$tag" >/dev/null
}

step "dockerd"
command -v dockerd >/dev/null || { echo "test-containers: no dockerd (scripts/install-deps.sh --test)" >&2; exit 1; }
if start_dockerd; then
  network=bridge
else
  echo "containers: dockerd failed with bridge networking, retrying with --bridge=none:"
  tail -5 "$work/dockerd.log"
  start_dockerd --bridge=none --iptables=false || { tail -30 "$work/dockerd.log"; exit 1; }
  network=none
fi
# The compose and pod tests need bridge networking (service names, pod IPs);
# they fail saying so when it is unavailable.
export RESNETD_CI_BRIDGE=$network
echo "containers: dockerd pid $dockerd_pid ($(docker version -f '{{.Server.Version}}')), networking: $network"

step "base images"
make_base bookworm
make_base bookworm-slim

step "image build"
image=resnetd:ci
# The build stage is tagged too: untagged, the prune below would delete it
# and with it the cached dependency layer (install-deps.sh, ~1 GB) that the
# next run reuses. The second build takes the first one's layers from cache.
export DOCKER_BUILDKIT=0
{ docker build --network host --target build -t resnetd-ci/build-stage . &&
  docker build --network host -t "$image" .; } >"$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log"; exit 1; }
echo "containers: $(grep -c 'Using cache' "$work/build.log") build steps from cache"
docker image prune -f >/dev/null # the previous run's untagged layers
export RESNETD_CI_IMAGE=$image

step "native build + .deb"
# The native build CI already made (scripts/test.sh), for the reference answers.
BUILD_DIR=build scripts/build.sh -DRESNETD_WERROR=ON >"$work/native.log" 2>&1 ||
  { tail -40 "$work/native.log"; exit 1; }
cmake -S . -B build-deb -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
  -DRESNETD_WERROR=ON >"$work/deb.log" 2>&1 &&
  cmake --build build-deb -j"$(nproc)" >>"$work/deb.log" 2>&1 &&
  rm -f build-deb/resnetd_*.deb &&
  (cd build-deb && cpack -G DEB) >>"$work/deb.log" 2>&1 || { tail -40 "$work/deb.log"; exit 1; }
deb=$(ls "$repo"/build-deb/resnetd_*.deb)
export RESNETD_CI_DEB=$deb

step "container tests"
# Verbose into a log: the tests print their measurements (shown below);
# on a failure the log is shown without the servers' access-log lines.
failed=0
if ! ctest --test-dir build -V -L container >"$work/ctest.log" 2>&1; then
  grep -vE '^[0-9]+: \{"time"' "$work/ctest.log" | tail -200
  failed=1
fi
grep -E '^ *[0-9]+/[0-9]+ Test|tests passed' "$work/ctest.log" || true

step ""
total=$(($(date +%s) - stage_start))
echo "== containers: measurements"
sed -E 's/^[0-9]+: //' "$work/ctest.log" |
  grep -E '^(ok|FAIL) |stack up in|ready .* after SIGKILL|retried|docker stop with|startup probe|preStop |^image |MB; installs|^-rw|^Requests/sec' |
  sed 's/^/  /' || true
echo "== containers: stage times"
printf '  %s\n' "${timings[@]}"
printf '  %-28s %4d s\n' "total" "$total"
echo "  image $image: $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.1f MB", $1/1e6}')"
echo "  package $(basename "$deb"): $(stat -c %s "$deb" | awk '{printf "%.1f MB", $1/1e6}')"
exit $failed
