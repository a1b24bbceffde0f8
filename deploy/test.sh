#!/usr/bin/env bash
# test.sh -- quick-start command 2: install dependencies, build, run every test.
#   deploy/test.sh            unit + integration tests (real redis-server, real services)
#   deploy/test.sh --podman   also the docker-compose deployment test under podman-compose
# Environment: BUILD_DIR (default build-test), CAREPASS_SANITIZE=1 for ASan+UBSan,
# CTEST_ARGS (extra ctest arguments, e.g. "-R unit").
set -euo pipefail
cd "$(dirname "$0")/.."

podman=OFF
install_flag=""
if [ "${1:-}" = "--podman" ]; then podman=ON; install_flag="--podman"; fi

bash deploy/install-deps.sh $install_flag

BUILD_DIR=${BUILD_DIR:-build-test}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCAREPASS_WERROR=ON \
  -DCAREPASS_SANITIZE="${CAREPASS_SANITIZE:-OFF}" -DCAREPASS_PODMAN_TEST=$podman
cmake --build "$BUILD_DIR" -j"$(nproc)"
cd "$BUILD_DIR"
# shellcheck disable=SC2086
ctest --output-on-failure --timeout 3000 ${CTEST_ARGS:-}
