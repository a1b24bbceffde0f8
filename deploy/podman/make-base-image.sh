#!/usr/bin/env bash
# make-base-image.sh -- build docker.io/library/debian:bookworm-slim locally with
# debootstrap, so that `FROM debian:bookworm-slim` resolves without a registry.
#   deploy/podman/make-base-image.sh [--force]
# The Debian mirror is the one apt on this machine already uses
# (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list and *.sources).
# Does nothing if the image already exists (unless --force).
set -euo pipefail

IMAGE=docker.io/library/debian:bookworm-slim
SUITE=bookworm
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(cd "$(dirname "$0")" && pwd)/containers.conf}"

if [ "${1:-}" != "--force" ] && podman image exists "$IMAGE"; then
  echo "make-base-image: $IMAGE already exists"
  exit 0
fi

# The first http(s) Debian URI apt uses for the plain suite (not -security,
# -updates or -backports), in one-line (.list) or deb822 (.sources) format.
find_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk -v s="$SUITE" '$1 == "deb" {
        i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
        if ($(i+1) == s && $i ~ /^https?:\/\//) { print $i; exit } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    # deb822: stanzas separated by blank lines; want Types: deb and our suite.
    awk -v s="$SUITE" 'BEGIN { RS = ""; FS = "\n" }
      { types = ""; uris = ""; suites = ""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/)  types  = " " substr($i, 7) " "
          if ($i ~ /^URIs:/)   uris   = substr($i, 6)
          if ($i ~ /^Suites:/) suites = " " substr($i, 8) " "
        }
        if (types ~ / deb / && suites ~ (" " s " ")) {
          split(uris, u, " "); for (j in u) if (u[j] ~ /^https?:\/\//) { print u[j]; exit }
        } }' "$f"
  done
}
MIRROR="$(find_mirror | head -n 1)"
if [ -z "$MIRROR" ]; then
  echo "make-base-image: no Debian $SUITE mirror found in apt's sources" >&2
  exit 1
fi

DIR="$(mktemp -d /var/tmp/carepass-rootfs.XXXXXX)"
trap 'rm -rf "$DIR"' EXIT
echo "make-base-image: debootstrap $SUITE from $MIRROR into $DIR"
start=$(date +%s)
debootstrap --variant=minbase "$SUITE" "$DIR" "$MIRROR" >"$DIR.log" 2>&1 || {
  tail -n 30 "$DIR.log" >&2; rm -f "$DIR.log"; exit 1; }
rm -f "$DIR.log"
# Slim it like the official image: no apt lists or caches, no docs.
rm -rf "$DIR"/var/lib/apt/lists/* "$DIR"/var/cache/apt/*.bin "$DIR"/var/cache/apt/archives/*.deb \
       "$DIR"/usr/share/doc/* "$DIR"/usr/share/man/* "$DIR"/usr/share/info/*
tar -C "$DIR" --numeric-owner -c . | podman import --quiet \
  --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$IMAGE" >/dev/null
echo "make-base-image: $IMAGE imported in $(( $(date +%s) - start ))s"
