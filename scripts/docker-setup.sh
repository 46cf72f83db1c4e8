#!/usr/bin/env bash
# Make a Docker engine answer on this machine: install docker.io (and debootstrap, for the base
# image) when missing, start dockerd when nothing answers, wait until it does. Idempotent.
#
# Needs root to install or start anything; an engine that already answers (any user) is enough.
# Env: MLCI_DOCKERD_LOG (default /var/log/mlci-dockerd.log), MLCI_DOCKER_WAIT (seconds, default 60).
set -euo pipefail

log=${MLCI_DOCKERD_LOG:-/var/log/mlci-dockerd.log}
wait_s=${MLCI_DOCKER_WAIT:-60}

say() { echo "docker-setup: $*" >&2; }

answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && answers && command -v debootstrap >/dev/null 2>&1; then
  say "engine answers (server $(docker version --format '{{.Server.Version}}'))"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  if command -v docker >/dev/null 2>&1 && answers; then
    say "engine answers; debootstrap is missing (needed only by scripts/make-base-image.sh)"
    exit 0
  fi
  say "no Docker engine answers and this is not root: run 'sudo $0', or start dockerd, or set DOCKER_HOST"
  exit 1
fi

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if answers; then
  say "engine answers (server $(docker version --format '{{.Server.Version}}'))"
  exit 0
fi

# A pid file left by a dockerd that died makes the next one refuse to start.
pidfile=/var/run/docker.pid
if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  rm -f "$pidfile"
fi

if [ ! -f "$pidfile" ]; then
  say "starting dockerd (log: $log)"
  # setsid: the engine outlives the shell (make, CI step) that started it.
  setsid dockerd >>"$log" 2>&1 < /dev/null &
fi

for _ in $(seq "$wait_s"); do
  if answers; then
    say "engine answers (server $(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
say "dockerd did not answer within ${wait_s}s; last lines of $log:"
tail -n 20 "$log" >&2 || true
exit 1
