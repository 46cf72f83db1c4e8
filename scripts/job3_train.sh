#!/usr/bin/env bash
# Job 3 (train): wait for the trial job 2 started and collect its metrics.
# A failed trial fails this build (exit 5), and the failure triggers job 6 (monitor).
set -euo pipefail
mlci wait --run "${RUN_ID}" ${TRIAL:+--trial "${TRIAL}"} || {
  code=$?
  # A failure that ends the run (trial 0: the model cannot train) is announced here, as `mlci run` does.
  mlci notify --run "${RUN_ID}" --if-ended || true
  exit "${code}"
}
