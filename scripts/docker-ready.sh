#!/usr/bin/env bash
# Get the Docker tests what they need: an engine (scripts/docker-setup.sh), the base image
# (scripts/make-base-image.sh, where no registry is reachable) and the mlci images (`mlci images build`,
# which reuses what is built). With CI=true any failure fails; elsewhere it is a one-line notice and
# the docker-marked tests skip.
#
# Usage: scripts/docker-ready.sh [MLCI]   (MLCI: the mlci command to build with; default .venv/bin/mlci)
set -uo pipefail
cd "$(dirname "$0")/.."
mlci=${1:-.venv/bin/mlci}
ci=false
case "${CI:-}" in 1|true|TRUE|True) ci=true ;; esac  # the test suite's policy too (tests/skips.py)

give_up() {
  if $ci; then
    echo "docker-ready: $1 (CI=true: failing the build)" >&2
    exit 1
  fi
  echo "docker-ready: $1; the Docker tests will be skipped (run 'sudo scripts/docker-ready.sh' to enable them)" >&2
  exit 0
}

started=$(date +%s)
if ! scripts/docker-setup.sh; then
  give_up "no Docker engine"
fi
base=${MLCI_BASE_IMAGE:-}
if [ -z "$base" ] && [ "$(id -u)" = 0 ] && ! docker image inspect python:3.11-slim >/dev/null 2>&1; then
  # As root, the base image is made from Debian packages: it needs no image registry.
  # (Without root, `mlci images build` pulls python:3.11-slim instead.)
  scripts/make-base-image.sh || give_up "the base image could not be made"
  base=mlci/bookworm-python:3.11
fi
"$mlci" images build ${base:+--base "$base"} || give_up "the mlci images could not be built"
echo "docker-ready: engine and images ready in $(( $(date +%s) - started ))s" >&2
