#!/usr/bin/env bash
# entrypoint.sh -- container start-up for carepass: first-start setup, peer lookup, privilege drop.
#   entrypoint.sh bus|intake|verify|signer|notify|gateway [ARGS]  run that service as user carepass
#   entrypoint.sh redis                                     run redis-server as user redis
#   entrypoint.sh setup                                     first-start setup only, then exit
#   entrypoint.sh health NAME [MAX_AGE_S]                   health check: NAME's heartbeat is fresh
#   entrypoint.sh COMMAND [ARGS]                            anything else (carepass, bash) as is
#
# First start: the provider registry the services read (CAREPASS_PROVIDERS) is
# made from the image's data/providers.json with `carepass registry-keys`; with
# CAREPASS_SAMPLE_PROVIDER_KEYS=1 a key pair is first made for every sample
# provider with `carepass keygen` (demo and tests only: real providers make their
# own key pairs and send only the public key). The secrets that more than one
# container reads (the pseudonym secret: intake and gateway; the token secret:
# every gateway replica and `carepass provider-token`) are made here too, under
# the setup lock, so first start happens in one place (a service that finds one
# missing creates it exclusively too: cp_secret_load links a finished file into
# place, so containers starting at once still agree). Services make their own keys.
#
# Peers: services reach bus, redis and signer by name. Where the container
# network has no DNS (podman with CNI but without the dnsname plugin), each of
# those three writes its address to the shared peers volume when it starts,
# and the others add it to /etc/hosts once it answers on its port.
set -euo pipefail

readonly APP=/opt/carepass
readonly STATE=/var/lib/carepass
readonly PEERS_DIR="${CAREPASS_PEERS_DIR:-/run/carepass-peers}"
readonly PEER_WAIT_S="${CAREPASS_PEER_WAIT_S:-120}"
readonly RUN_USER=carepass

log() { printf '{"level":"%s","service":"entrypoint","msg":"%s"}\n' "$1" "$2" >&2; }

as_user() { setpriv --reuid="$1" --regid="$1" --init-groups --inh-caps=-all -- "${@:2}"; }

# The port each peer listens on inside the compose network.
peer_port() {
  case "$1" in
    bus) echo 5601 ;;
    redis) echo 6379 ;;
    signer) echo 5610 ;;
  esac
}

# Write this container's address for the peers that cannot resolve it by DNS.
announce() {
  local name="$1" ip
  [ -d "$PEERS_DIR" ] || return 0
  ip="$(getent ahostsv4 "$(cat /proc/sys/kernel/hostname)" | awk 'NR == 1 { print $1 }')"
  [ -n "$ip" ] || { log warn "cannot find this container's address to announce"; return 0; }
  printf '%s\n' "$ip" >"$PEERS_DIR/.$name.tmp"
  mv -f "$PEERS_DIR/.$name.tmp" "$PEERS_DIR/$name"
}

# Make NAME resolvable: DNS if the network has it, else the announced address
# once something answers there (a stale file from an earlier run does not).
resolve_peer() {
  local name="$1" port ip deadline
  port="$(peer_port "$name")"
  deadline=$(( $(date +%s) + PEER_WAIT_S ))
  while :; do
    getent hosts "$name" >/dev/null && return 0
    ip="$(cat "$PEERS_DIR/$name" 2>/dev/null || true)"
    if [ -n "$ip" ] && timeout 1 bash -c ">/dev/tcp/$ip/$port" 2>/dev/null; then
      printf '%s\t%s\n' "$ip" "$name" >>/etc/hosts
      log info "peer $name at $ip (from $PEERS_DIR)"
      return 0
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log error "peer $name not reachable after ${PEER_WAIT_S}s (no DNS and no answer at the announced address)"
      return 1
    fi
    sleep 1
  done
}

# Make a deployment secret (64 hex digits, 0600, owned by the service user) if
# it is missing; the format cp_secret_load reads. Called under the setup lock.
make_secret() {
  local path="$1" tmp hex
  [ -e "$path" ] && return 0
  hex="$(od -An -v -tx1 -N32 /dev/urandom | tr -d ' \n')"
  [[ "$hex" =~ ^[0-9a-f]{64}$ ]] || { log error "could not make secret $path"; return 1; }
  tmp="$(dirname "$path")/.$(basename "$path").tmp.$$"
  ( umask 077 && printf '%s\n' "$hex" >"$tmp" )
  chown "$RUN_USER:$RUN_USER" "$tmp"
  mv -f "$tmp" "$path"
  log info "made secret $path"
}

# notify replicas share one webhook signing key (receivers check every delivery
# against the one notify.pub the gateway publishes), but each would make its own
# if it found none. So the first replica to start makes it, and the others wait
# (bounded) until it is there. Called before the privilege drop.
notify_key_turn() {
  local key="${CAREPASS_NOTIFY_SIGNING_KEY:-$STATE/keys/notify.key}" maker deadline
  maker="$(dirname "$key")/.notify-key.maker"
  if [ -e "$key" ]; then rmdir "$maker" 2>/dev/null || true; return 0; fi
  mkdir "$maker" 2>/dev/null && return 0   # this replica makes the key
  deadline=$(( $(date +%s) + PEER_WAIT_S ))
  until [ -e "$key" ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log warn "no $key from the first notify replica after ${PEER_WAIT_S}s; making one here"
      return 0
    fi
    sleep 1
  done
}

# Directories the service writes, owned by the service user (volumes start root-owned).
prepare_dirs() {
  local d
  for d in "$STATE" "$STATE/keys" "${CAREPASS_HEALTH_DIR:-}" "$@"; do
    [ -n "$d" ] || continue
    mkdir -p "$d"
    chown "$RUN_USER:$RUN_USER" "$d"
  done
  chmod 0700 "$STATE/keys"
}

# First-start setup of the provider registry; serialised between containers.
setup() {
  local providers="${CAREPASS_PROVIDERS:-$STATE/providers.json}"
  local keydir="$STATE/keys/providers" tmp id
  prepare_dirs "$keydir"
  exec 9>"$STATE/.setup.lock"
  flock -w 60 9 || { log error "setup lock busy for 60s"; return 1; }
  make_secret "${CAREPASS_PSEUDONYM_SECRET:-$STATE/keys/pseudonym.secret}"
  make_secret "${CAREPASS_TOKEN_SECRET:-$STATE/keys/token.secret}"
  make_secret "${CAREPASS_SHARE_CODE_SECRET:-$STATE/keys/share-code.secret}"
  if [ "${CAREPASS_SAMPLE_PROVIDER_KEYS:-0}" = 1 ]; then
    # The sample registry's ids ("id": "PRV-0001"); the CLI checks them again.
    while read -r id; do
      [ -e "$keydir/$id.curve" ] && continue
      as_user "$RUN_USER" carepass keygen --out "$keydir/$id.curve" >/dev/null
      log info "made sample key pair for provider $id"
    done < <(grep -o '"id": *"[A-Za-z0-9._-]*"' "$APP/data/providers.json" | sed 's/.*"\([^"]*\)"$/\1/')
  fi
  if [ ! -s "$providers" ] || [ -n "$(find "$keydir" -newer "$providers" -name '*.pub' 2>/dev/null)" ]; then
    tmp="$providers.tmp.$$"
    as_user "$RUN_USER" carepass registry-keys --in "$APP/data/providers.json" --keys "$keydir" --out "$tmp"
    mv -f "$tmp" "$providers"
    log info "wrote provider registry $providers"
  fi
  flock -u 9
  exec 9>&-
}

# GET PATH from the gateway in this container; succeeds on HTTP 200.
http_ok() {
  local path="$1" bind="${CAREPASS_GATEWAY_BIND:-127.0.0.1:8080}" host port status
  host="${bind%:*}"
  port="${bind##*:}"
  [ "$host" = 0.0.0.0 ] && host=127.0.0.1
  # $0 $1 $2 of the inner script: host, port, path.
  status="$(timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" "$2" >&3
    IFS= read -r line <&3 && printf "%s" "$line"' "$host" "$port" "$path" 2>/dev/null | tr -d '\r')" || true
  case "$status" in
    "HTTP/1."?" 200"*) return 0 ;;
    "") echo "no HTTP answer from $host:$port$path"; return 1 ;;
    *) echo "$host:$port$path answered: $status"; return 1 ;;
  esac
}

health() {
  local name="$1" max="${2:-15}" dir="${CAREPASS_HEALTH_DIR:-/run/carepass}" t
  t="$(cat "$dir/$name.health" 2>/dev/null)" || { echo "no heartbeat file $dir/$name.health"; return 1; }
  [ $(( $(date +%s) - t )) -le "$max" ] || { echo "$name heartbeat is $(( $(date +%s) - t ))s old"; return 1; }
  # The gateway is healthy when it also answers: Redis reachable, register readable.
  if [ "$name" = gateway ]; then http_ok /healthz || return 1; fi
}

cmd="${1:-}"
case "$cmd" in
  health)
    shift
    health "$@"
    ;;
  setup)
    setup
    ;;
  redis)
    shift
    mkdir -p /data
    chown redis:redis /data
    announce redis
    exec setpriv --reuid=redis --regid=redis --init-groups --inh-caps=-all -- \
      redis-server /etc/carepass/redis.conf "$@"
    ;;
  bus|intake|verify|signer|notify|gateway)
    shift
    case "$cmd" in
      bus) peers="" ;;
      verify) peers="bus redis signer" ;;
      *) peers="bus redis" ;;
    esac
    prepare_dirs
    [ "$cmd" = signer ] && prepare_dirs "${CAREPASS_REGISTER_DIR:-$STATE/register}"
    # The gateway mounts the register read-only: it must not chown it.
    case "$cmd" in intake|verify|notify|gateway) setup ;; esac
    [ "$cmd" = notify ] && notify_key_turn
    for p in $peers; do resolve_peer "$p"; done
    case "$cmd" in bus|signer) announce "$cmd" ;; esac
    exec setpriv --reuid="$RUN_USER" --regid="$RUN_USER" --init-groups --inh-caps=-all -- \
      "$APP/bin/$cmd" "$@"
    ;;
  "")
    echo "usage: entrypoint.sh bus|intake|verify|signer|notify|gateway|redis|setup|health NAME|COMMAND..." >&2
    exit 2
    ;;
  *)
    exec "$@"
    ;;
esac
