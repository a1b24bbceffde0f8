#!/usr/bin/env bash
# run-local.sh -- quick start: install dependencies, build, start Redis and every
# carepass service on this machine, send the sample events, show a passport.
#
#   deploy/run-local.sh               run, then keep running until Ctrl-C
#   deploy/run-local.sh --demo-only   stop after the demo (exit 1 if the outcomes differ
#                                     from data/sample-events.expected.tsv); also
#                                     CAREPASS_DEMO_ONLY=1
#
# Everything the run makes lives in var/ (gitignored): keys (each service makes its
# own at first start; sample provider keys are made here with `carepass keygen`),
# var/providers.json (data/providers.json with those keys), the register, Redis's
# data, health files and logs (var/log/<service>.log). Running it again is safe:
# the same events get the same answers (intake is idempotent).
#
# Environment (all optional): CAREPASS_REDIS_PORT (default 6390, not 6379, so a
# system Redis is left alone), CAREPASS_BUILD_DIR (default build), CAREPASS_VAR_DIR
# (default var), CAREPASS_SKIP_DEPS=1 / CAREPASS_SKIP_BUILD=1 to skip those steps,
# and any CAREPASS_* service setting (see `carepass --help`).
#
# The demo worker whose passport is shown has all 16 Care Certificate standards in
# the sample events (fictional sample data; the NI number is not a real person's):
DEMO_WORKER_NI="AB123456C"
DEMO_WORKER_DOB="1990-04-12"
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DEMO_ONLY=${CAREPASS_DEMO_ONLY:-0}
for arg in "$@"; do
  case "$arg" in
    --demo-only) DEMO_ONLY=1 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-local: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

BUILD=${CAREPASS_BUILD_DIR:-$ROOT/build}
VAR=${CAREPASS_VAR_DIR:-$ROOT/var}
SERVICES=(bus verify signer notify gateway intake)   # start order; stopped in reverse
HEALTH_TIMEOUT_S=30
STOP_TIMEOUT_S=15

say() { printf '\033[1mrun-local:\033[0m %s\n' "$*" >&2; }
die() { printf 'run-local: %s\n' "$*" >&2; exit 1; }

# ---- 1. dependencies and build ---------------------------------------------
if [ "${CAREPASS_SKIP_DEPS:-0}" != 1 ]; then
  say "checking Debian packages (deploy/install-deps.sh)"
  deploy/install-deps.sh
fi
if [ "${CAREPASS_SKIP_BUILD:-0}" != 1 ]; then
  say "building into $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" >/dev/null || cmake --build "$BUILD" -j1
fi
CLI="$BUILD/tools/carepass"
[ -x "$CLI" ] || die "$CLI is missing (build failed?)"
service_bin() {
  local b
  for b in "$BUILD/services/$1/$1" "$BUILD/services/$1/carepass-$1"; do
    [ -x "$b" ] && { echo "$b"; return 0; }
  done
  die "no binary for service $1 under $BUILD/services/$1"
}

# ---- 2. configuration shared by every service and the CLI -------------------
mkdir -p "$VAR"/{keys/providers,register,redis,health,log,demo}
chmod 700 "$VAR/keys" "$VAR/keys/providers"
export CAREPASS_REDIS_HOST=127.0.0.1
export CAREPASS_REDIS_PORT=${CAREPASS_REDIS_PORT:-6390}
export CAREPASS_HEALTH_DIR="$VAR/health"
export CAREPASS_INTAKE_CURVE_KEY=${CAREPASS_INTAKE_CURVE_KEY:-$VAR/keys/intake.curve}
export CAREPASS_PSEUDONYM_SECRET=${CAREPASS_PSEUDONYM_SECRET:-$VAR/keys/pseudonym.secret}
export CAREPASS_AWARD_TAG_SECRET=${CAREPASS_AWARD_TAG_SECRET:-$VAR/keys/award-tag.secret}
export CAREPASS_SIGNING_KEY=${CAREPASS_SIGNING_KEY:-$VAR/keys/signer.key}
export CAREPASS_SUBJECT_KEYS=${CAREPASS_SUBJECT_KEYS:-$VAR/keys/subject-keys}
export CAREPASS_NOTIFY_SIGNING_KEY=${CAREPASS_NOTIFY_SIGNING_KEY:-$VAR/keys/notify.key}
# providers' webhook secrets (carepass webhook-secret); the sample providers have no webhook_url,
# so the demo makes none
export CAREPASS_WEBHOOK_SECRETS=${CAREPASS_WEBHOOK_SECRETS:-$VAR/keys/webhook-secrets}
export CAREPASS_REGISTER_DIR=${CAREPASS_REGISTER_DIR:-$VAR/register}
export CAREPASS_CATALOGUE=${CAREPASS_CATALOGUE:-$ROOT/data/catalogue.json}
export CAREPASS_ROLES=${CAREPASS_ROLES:-$ROOT/data/roles.json}
export CAREPASS_ASCWDS_CATEGORIES=${CAREPASS_ASCWDS_CATEGORIES:-$ROOT/data/asc-wds-categories.json}
export CAREPASS_PROVIDERS="$VAR/providers.json"
export CAREPASS_EMPLOYERS=${CAREPASS_EMPLOYERS:-$ROOT/data/employers.json}
export CAREPASS_TOKEN_SECRET=${CAREPASS_TOKEN_SECRET:-$VAR/keys/token.secret}
export CAREPASS_SHARE_CODE_SECRET=${CAREPASS_SHARE_CODE_SECRET:-$VAR/keys/share-code.secret}
export CAREPASS_REVOKED_TOKENS=${CAREPASS_REVOKED_TOKENS:-$VAR/keys/revoked-tokens}
export CAREPASS_GATEWAY_BIND=${CAREPASS_GATEWAY_BIND:-127.0.0.1:8080}

# ---- 3. sample provider keys and the registry that lists them ----------------
PROVIDERS=$(grep -oE '"id"[[:space:]]*:[[:space:]]*"[^"]+"' data/providers.json | sed -E 's/.*"([^"]+)"$/\1/')
for id in $PROVIDERS; do
  if [ ! -f "$VAR/keys/providers/$id.curve" ]; then
    "$CLI" keygen --out "$VAR/keys/providers/$id.curve" >/dev/null
    say "made a CurveZMQ key for sample provider $id"
  fi
done
"$CLI" registry-keys --in data/providers.json --keys "$VAR/keys/providers" --out "$VAR/providers.json"

# ---- 4. start Redis and the services, stop them all on exit ------------------
declare -A PIDS=()
REDIS_PID=""
cleanup() {
  local rc=$? svc i pid
  trap - EXIT INT TERM
  say "stopping"
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    svc=${SERVICES[$i]}
    pid=${PIDS[$svc]:-}
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
  done
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    svc=${SERVICES[$i]}
    pid=${PIDS[$svc]:-}
    [ -n "$pid" ] || continue
    for ((t = 0; t < STOP_TIMEOUT_S * 10; t++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      say "$svc did not stop within ${STOP_TIMEOUT_S}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$REDIS_PID" ]; then
    kill -TERM "$REDIS_PID" 2>/dev/null || true   # redis-server saves the AOF and exits on SIGTERM
    for ((t = 0; t < STOP_TIMEOUT_S * 10; t++)); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if redis-cli -h 127.0.0.1 -p "$CAREPASS_REDIS_PORT" ping >/dev/null 2>&1; then
  die "something already answers on 127.0.0.1:$CAREPASS_REDIS_PORT (another run-local?); stop it or set CAREPASS_REDIS_PORT"
fi
say "starting redis-server on 127.0.0.1:$CAREPASS_REDIS_PORT (data in $VAR/redis)"
redis-server --port "$CAREPASS_REDIS_PORT" --bind 127.0.0.1 --dir "$VAR/redis" \
  --appendonly yes --save "" --daemonize no --logfile "$VAR/log/redis.log" &
REDIS_PID=$!
for ((t = 0; t < 100; t++)); do
  redis-cli -h 127.0.0.1 -p "$CAREPASS_REDIS_PORT" ping >/dev/null 2>&1 && break
  kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server exited; see $VAR/log/redis.log"
  sleep 0.1
done
redis-cli -h 127.0.0.1 -p "$CAREPASS_REDIS_PORT" ping >/dev/null 2>&1 || die "redis-server did not answer within 10 s"

for svc in "${SERVICES[@]}"; do
  bin=$(service_bin "$svc")
  rm -f "$VAR/health/$svc.health"
  "$bin" >>"$VAR/log/$svc.log" 2>&1 &
  PIDS[$svc]=$!
  for ((t = 0; t < HEALTH_TIMEOUT_S * 10; t++)); do
    [ -f "$VAR/health/$svc.health" ] && break
    kill -0 "${PIDS[$svc]}" 2>/dev/null || { tail -n 20 "$VAR/log/$svc.log" >&2; die "$svc exited during start-up; see $VAR/log/$svc.log"; }
    sleep 0.1
  done
  [ -f "$VAR/health/$svc.health" ] || { tail -n 20 "$VAR/log/$svc.log" >&2; die "$svc wrote no health file within ${HEALTH_TIMEOUT_S}s"; }
  say "$svc is up (pid ${PIDS[$svc]}, log $VAR/log/$svc.log)"
done

# ---- 5. the demo: each provider sends its sample events with its own key ------
OUT="$VAR/demo/outcomes.tsv"
TAB=$'\t'
: >"$OUT"
submit_file() { # submit_file FILE: split by provider_id, send each part with that provider's key
  local file=$1 id part
  for id in $PROVIDERS; do
    part="$VAR/demo/$(basename "$file" .ndjson).$id.ndjson"
    grep -E "\"provider_id\"[[:space:]]*:[[:space:]]*\"$id\"" "$file" >"$part" || true
    [ -s "$part" ] || continue
    say "submitting $(wc -l <"$part") events of $id from $(basename "$file")"
    "$CLI" submit "$part" --provider-key "$VAR/keys/providers/$id.curve" --ack committed >"$part.out" \
      || { cat "$part.out"; die "carepass submit failed for $id"; }
    grep -F "$TAB" "$part.out" | tee -a "$OUT" || true
    grep -v -F "$TAB" "$part.out" >&2 || true   # the summary lines
  done
}
# completions first, then the revocations that refer to them
submit_file data/sample-events.ndjson
[ -f data/sample-revocations.ndjson ] && submit_file data/sample-revocations.ndjson

demo_rc=0
echo
"$CLI" passport "$DEMO_WORKER_NI" || { say "the passport check reported a problem"; demo_rc=1; }
echo

# The worker makes a share code (as their app would, with a worker token) for an
# employer to check on the gateway's page. The date of birth is fictional too.
GATEWAY_URL="http://$CAREPASS_GATEWAY_BIND"
worker_token=$("$CLI" worker-token "$DEMO_WORKER_NI" --days 1)
share=$(curl -sS --max-time 10 -H "Authorization: Bearer $worker_token" -H 'Content-Type: application/json' \
  -d "{\"date_of_birth\": \"$DEMO_WORKER_DOB\", \"valid_days\": 7}" "$GATEWAY_URL/v1/share-codes") ||
  { say "could not create a share code on the gateway"; demo_rc=1; }
code=$(printf '%s' "$share" | sed -n 's/.*"code": *"\([A-Z0-9-]*\)".*/\1/p')
if [ -n "$code" ]; then
  say "employers: open $GATEWAY_URL/ and enter share code $code with date of birth $DEMO_WORKER_DOB"
  check=$(curl -sS --max-time 10 -H 'Content-Type: application/json' \
    -d "{\"share_code\": \"$code\", \"date_of_birth\": \"$DEMO_WORKER_DOB\", \"employer\": \"run-local demo\"}" \
    "$GATEWAY_URL/v1/check") || check=""
  case "$check" in
    *'"records"'*) say "gateway check of that code: ok" ;;
    *) say "gateway check of that code failed: $check"; demo_rc=1 ;;
  esac
else
  say "no share code in the gateway's answer: $share"; demo_rc=1
fi
echo

# compare provider_event_id, outcome and reason code with the expected outcomes
if [ -f data/sample-events.expected.tsv ]; then
  got=$(cut -f1-3 "$OUT" | sort)
  want=$(grep -v '^#' data/sample-events.expected.tsv | cut -f1-3 | sort)
  if [ "$got" = "$want" ]; then
    say "demo: all $(echo "$want" | wc -l) outcomes match data/sample-events.expected.tsv"
  else
    say "demo: outcomes differ from data/sample-events.expected.tsv (< expected, > got):"
    diff <(echo "$want") <(echo "$got") >&2 || true
    demo_rc=1
  fi
fi

if [ "$DEMO_ONLY" = 1 ]; then
  exit "$demo_rc"
fi

say "carepass is running: intake ${CAREPASS_INTAKE_ENDPOINT:-tcp://127.0.0.1:5555}, gateway $GATEWAY_URL/, Redis 127.0.0.1:$CAREPASS_REDIS_PORT, logs in $VAR/log. Ctrl-C stops everything."
while true; do
  for svc in "${SERVICES[@]}"; do
    kill -0 "${PIDS[$svc]}" 2>/dev/null || die "$svc stopped unexpectedly; see $VAR/log/$svc.log"
  done
  kill -0 "$REDIS_PID" 2>/dev/null || die "redis-server stopped unexpectedly; see $VAR/log/redis.log"
  sleep 1
done
