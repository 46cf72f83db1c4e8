#!/usr/bin/env bash
# Get the browser tests their browser: Debian's chromium (headless), which Playwright drives.
# As root a missing chromium is installed with apt-get; with CI=true a missing browser fails the build,
# elsewhere it is a one-line notice and the browser tests skip.
set -uo pipefail
ci=false
case "${CI:-}" in 1|true|TRUE|True) ci=true ;; esac

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  started=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive
  if apt-get install -y -q chromium >/dev/null 2>&1 \
     || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; then
    echo "browser-ready: chromium installed in $(( $(date +%s) - started ))s" >&2
    exit 0
  fi
fi
if $ci; then
  echo "browser-ready: no chromium and it could not be installed (CI=true: failing the build)" >&2
  exit 1
fi
echo "browser-ready: no chromium; the browser tests will be skipped (run 'sudo scripts/browser-ready.sh' to enable them)" >&2
exit 0
