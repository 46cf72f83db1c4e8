#!/usr/bin/env bash
# Lint a Jenkinsfile with npm-groovy-lint (CodeNarc; needs Node >= 20 and Java >= 17): exit 0 clean,
# non-zero on a Groovy syntax error or a warning. Installs npm-groovy-lint 15 into .cache/ on first use.
# Usage: scripts/lint-jenkinsfile.sh [JENKINSFILE]   (default: the repository's Jenkinsfile)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${root}/.cache/npm-groovy-lint"
lint="${prefix}/node_modules/.bin/npm-groovy-lint"
if [ ! -x "${lint}" ]; then
  # version 15 is the last that runs on Node 20 (16+ needs Node 22)
  npm install --silent --no-audit --no-fund --prefix "${prefix}" npm-groovy-lint@15 >&2
fi
file="$(realpath "${1:-${root}/Jenkinsfile}")"
# --noserver: no CodeNarc server left running after the lint
exec "${lint}" --noserver --config "${root}/.groovylintrc.json" --failon warning --output txt "${file}"
