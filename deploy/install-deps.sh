#!/usr/bin/env bash
# install-deps.sh -- the one list of Debian packages carepass needs.
# Used by the README quick start, .ci/run and the Dockerfile.
#   deploy/install-deps.sh            build + test + run dependencies
#   deploy/install-deps.sh --runtime  only what the services need at run time
#   deploy/install-deps.sh --build    only what compiling the services needs (the image's build stage)
#   deploy/install-deps.sh --podman   also podman + podman-compose for the compose test
# With the test packages it also installs the npm packages the tests check carepass against,
# pinned in tests/package-lock.json (npm ci into tests/node_modules).
set -euo pipefail
cd "$(dirname "$0")/.."

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
  --build)   want=("${BUILD_PKGS[@]}") ;;
  --podman)  want=("${BUILD_PKGS[@]}" "${RUNTIME_PKGS[@]}" "${TEST_PKGS[@]}" "${PODMAN_PKGS[@]}") ;;
  ""|--all)  want=("${BUILD_PKGS[@]}" "${RUNTIME_PKGS[@]}" "${TEST_PKGS[@]}") ;;
  *) echo "usage: $0 [--all|--runtime|--build|--podman]" >&2; exit 2 ;;
esac

# Node.js and npm for the pinned test packages: the machine's own when it has them (a
# nodejs package that bundles npm), Debian's otherwise.
tests_too=1
case "${1:-}" in --runtime|--build) tests_too=0 ;; esac
if [ $tests_too = 1 ] && ! command -v npm >/dev/null 2>&1; then
  want+=(nodejs npm)
fi

# npm ci of tests/package-lock.json: exactly the versions pinned there, nothing else.
npm_tests() {
  [ $tests_too = 1 ] || return 0
  npm ci --prefix tests --no-audit --no-fund --loglevel=error
}

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#want[@]} packages already installed"
  npm_tests "${1:-}"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
npm_tests "${1:-}"
