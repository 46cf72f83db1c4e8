#!/usr/bin/env bash
# Job 3 (train): stream the trial job 2 started (each epoch and its metric, restarts) and collect its metrics.
# A failed trial that ends the run (trial 0: the model cannot train) fails this build (exit 5), which triggers
# job 6 (monitor); a later failed trial does not end the run: job 4 proposes the next one, as `mlci run` does.
set -euo pipefail
mlci wait --run "${RUN_ID}" ${TRIAL:+--trial "${TRIAL}"} --keep-going || {
  code=$?
  # A failure that ends the run (trial 0: the model cannot train) is announced here, as `mlci run` does.
  mlci notify --run "${RUN_ID}" --if-ended || true
  mlci jenkins result --run "${RUN_ID}" ${TRIAL:+--trial "${TRIAL}"} || true  # the description line
  exit "${code}"
}
# the build's result and description line are the run oracle's verdict (0 SUCCESS, 3 UNSTABLE, 5 FAILURE)
exec mlci jenkins result --run "${RUN_ID}" ${TRIAL:+--trial "${TRIAL}"}
