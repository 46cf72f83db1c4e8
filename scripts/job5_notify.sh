#!/usr/bin/env bash
# Job 5 (retrain or notify): budget left -> mlci-retrain.properties, which makes the parameterized
# trigger start job 2 again; threshold met or budget spent -> `mlci notify`, then mlci-results/ for the
# publishers (report.html, best model, metric trend, the mail body that email-ext sends).
set -euo pipefail
rm -rf "${WORKSPACE}/mlci-retrain.properties" "${WORKSPACE}/mlci-results"
mlci status --run "${RUN_ID}" --json > "${WORKSPACE}/mlci-status.json"
event="$(mlci jenkins decide "${WORKSPACE}/mlci-status.json" --retrain "${WORKSPACE}/mlci-retrain.properties")"
notified=0
if [ -n "${event}" ]; then
  mlci notify --run "${RUN_ID}" --event "${event}" || notified=$?
fi
code=0
mlci jenkins result --run "${RUN_ID}" ${event:+--publish "${WORKSPACE}/mlci-results"} || code=$?
# a notification not delivered (exit 8, kept in the outbox) fails the build once the results are published
[ "${notified}" -eq 0 ] || exit "${notified}"
exit "${code}"
