#!/usr/bin/env bash
# install-deps.sh -- the one list of Debian packages carepass needs.
# Used by the README quick start, .ci/run and the Dockerfile.
#   deploy/install-deps.sh            build + test + run dependencies
#   deploy/install-deps.sh --runtime  only what the services need at run time
#   deploy/install-deps.sh --podman   also podman + podman-compose for the compose test
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake pkg-config
  libzmq3-dev libprotobuf-c-dev protobuf-c-compiler
  libhiredis-dev libsodium-dev libmicrohttpd-dev
  libcurl4-openssl-dev libjansson-dev
  libcmocka-dev curl
)
RUNTIME_PKGS=(
  libzmq5 libprotobuf-c1 libhiredis0.14 libsodium23 libmicrohttpd12
  libcurl4 libjansson4 redis-server ca-certificates
)
TEST_PKGS=(
  redis-server protobuf-compiler
  python3 python3-zmq python3-protobuf python3-nacl python3-pytest
  golang-go golang-golang-x-mod-dev
  chromium chromium-driver python3-selenium
  clang libfuzzer-14-dev libclang-rt-14-dev
)
PODMAN_PKGS=( podman podman-compose runc debootstrap slirp4netns fuse-overlayfs uidmap )

want=()
case "${1:-}" in
  --runtime) want=("${RUNTIME_PKGS[@]}") ;;
  --podman)  want=("${BUILD_PKGS[@]}" "${RUNTIME_PKGS[@]}" "${TEST_PKGS[@]}" "${PODMAN_PKGS[@]}") ;;
  ""|--all)  want=("${BUILD_PKGS[@]}" "${RUNTIME_PKGS[@]}" "${TEST_PKGS[@]}") ;;
  *) echo "usage: $0 [--all|--runtime|--podman]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#want[@]} packages already installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
