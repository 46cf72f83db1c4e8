#!/usr/bin/env bash
# Job 5 (retrain or notify): budget left -> mlci-retrain.properties, which makes the parameterized
# trigger start job 2 again; threshold met or budget spent -> `mlci notify` (and email-ext mails).
set -euo pipefail
rm -f "${WORKSPACE}/mlci-retrain.properties"
mlci status --run "${RUN_ID}" --json > "${WORKSPACE}/mlci-status.json"
event="$(mlci jenkins decide "${WORKSPACE}/mlci-status.json" --retrain "${WORKSPACE}/mlci-retrain.properties")"
if [ -n "${event}" ]; then
  mlci notify --run "${RUN_ID}" --event "${event}"
fi
