#!/usr/bin/env bash
# test.sh -- quick-start command 2: install dependencies, build, run every test.
#   deploy/test.sh            unit + integration tests (real redis-server, real services)
#   deploy/test.sh --podman   also the docker-compose deployment test under podman-compose
# Environment: BUILD_DIR (default build-test), CAREPASS_SANITIZE=1 for ASan+UBSan,
# CTEST_ARGS (extra ctest arguments, e.g. "-R unit"), CAREPASS_FUZZ_SECONDS (per fuzz target in
# the fuzz stage, default 30), CAREPASS_SKIP_FUZZ=1 to skip that stage.
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
# shellcheck disable=SC2086
(cd "$BUILD_DIR" && ctest --output-on-failure --timeout 3000 ${CTEST_ARGS:-})

# Fuzz stage: every libFuzzer target of tests/fuzz (clang, ASan+UBSan) for CAREPASS_FUZZ_SECONDS
# each, two at a time, on copies of the seed corpora; any crash fails (tests/fuzz/README.md).
if [ "${CAREPASS_SKIP_FUZZ:-0}" != 1 ]; then
  CC=clang cmake -S . -B "$BUILD_DIR-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCAREPASS_FUZZ=ON
  cmake --build "$BUILD_DIR-fuzz" -j"$(nproc)" --target fuzz_all
  (cd "$BUILD_DIR-fuzz" && CAREPASS_FUZZ_SECONDS="${CAREPASS_FUZZ_SECONDS:-30}" ctest -L fuzz -j2 --output-on-failure)
fi
