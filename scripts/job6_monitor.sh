#!/usr/bin/env bash
# Job 6 (monitor): on a timer and when job 3 fails, restart dead trials from their last checkpoint.
# Started for one run (by job 3), its result and description line are that run's verdict.
set -euo pipefail
mlci monitor ${RUN_ID:+--run "${RUN_ID}"} --once
if [ -n "${RUN_ID:-}" ]; then
  exec mlci jenkins result --run "${RUN_ID}"
fi
