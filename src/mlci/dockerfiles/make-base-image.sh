#!/usr/bin/env bash
# Make the base image where no registry is reachable: debootstrap a minimal Debian (bookworm: its
# python3 is 3.11, like python:3.11-slim) and `docker import` it. Idempotent: skips an existing image.
#
# Usage: make-base-image.sh [IMAGE]   (`sudo mlci images make-base [IMAGE]`; a checkout: scripts/make-base-image.sh)
# IMAGE: default mlci/bookworm-python:3.11 (env MLCI_BASE_IMAGE).
# Env: MLCI_DEBIAN_MIRROR (default http://deb.debian.org/debian), MLCI_DEBIAN_SUITE (default bookworm).
# Needs root (debootstrap) and a Docker engine (scripts/docker-setup.sh).
set -euo pipefail

image=${1:-${MLCI_BASE_IMAGE:-mlci/bookworm-python:3.11}}
mirror=${MLCI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=${MLCI_DEBIAN_SUITE:-bookworm}

say() { echo "make-base-image: $*" >&2; }

if docker image inspect "$image" >/dev/null 2>&1; then
  say "$image exists; nothing to do"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  say "debootstrap needs root: run 'sudo $0' (or build with --base python:3.11-slim where a registry is reachable)"
  exit 1
fi
command -v debootstrap >/dev/null 2>&1 || { say "debootstrap is missing: run scripts/docker-setup.sh"; exit 1; }

root=$(mktemp -d /var/tmp/mlci-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT

started=$(date +%s)
say "debootstrap $suite from $mirror into $root"
# minbase + python3 only: no compilers, no pip (wheels are installed by a pip wheel run in place).
debootstrap --variant=minbase --include=python3,ca-certificates "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
  say "debootstrap failed; last lines of $root.log:"; tail -n 20 "$root.log" >&2; exit 1; }
rm -f "$root.log"

# What a training container never reads: package lists and caches, docs, man pages, locales.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
       "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
       "$root"/var/log/* "$root"/tmp/* "$root"/root/.cache
find "$root"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
# The standard library's __pycache__ stays: containers run with a read-only root file system, so
# without it every start would compile the modules it imports again.

say "importing as $image"
tar --numeric-owner -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --message "debootstrap --variant=minbase $suite + python3 (make-base-image.sh)" \
  - "$image" >/dev/null
say "$image made in $(( $(date +%s) - started ))s, $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')"
