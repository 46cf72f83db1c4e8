#!/usr/bin/env bash
# Job 6 (monitor): on a timer and when job 3 fails, restart dead trials from their last checkpoint.
set -euo pipefail
mlci monitor ${RUN_ID:+--run "${RUN_ID}"} --once
