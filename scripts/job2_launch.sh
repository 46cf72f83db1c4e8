#!/usr/bin/env bash
# Job 2 (launch): detect the model kind, pick the matching image, start the run's next pending trial.
# Writes TRIAL to mlci.properties for the parameterized trigger of job 3. A run that has ended launches
# nothing and exits with its outcome: 3 (budget spent: UNSTABLE, the job's unstable-return) or 5 (FAILURE).
set -euo pipefail
rm -f "${WORKSPACE}/mlci.properties"
mlci launch --run "${RUN_ID}" --properties "${WORKSPACE}/mlci.properties"
TRIAL="$(sed -n 's/^TRIAL=//p' "${WORKSPACE}/mlci.properties" 2>/dev/null)" || TRIAL=""
# the build's result and description line are the run oracle's verdict (0 SUCCESS, 3 UNSTABLE, 5 FAILURE)
exec mlci jenkins result --run "${RUN_ID}" ${TRIAL:+--trial "${TRIAL}"}
