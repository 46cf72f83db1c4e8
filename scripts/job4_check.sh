#!/usr/bin/env bash
# Job 4 (check / tweak): metric >= threshold -> done; below (exit 3) -> write the next trial's hparams.
# Both outcomes pass the build on to job 5; tweak's exit 3 (budget spent) is an outcome, not a failure:
# the result below turns it into UNSTABLE (the job's unstable-return), which still triggers job 5.
set -euo pipefail
mlci check --run "${RUN_ID}" ${TRIAL:+--trial "${TRIAL}"} || {
  code=$?
  [ "${code}" -eq 3 ] || exit "${code}"
  mlci tweak --run "${RUN_ID}" || [ $? -eq 3 ]
}
# the build's result and description line are the run oracle's verdict (0 SUCCESS, 3 UNSTABLE, 5 FAILURE)
exec mlci jenkins result --run "${RUN_ID}" ${TRIAL:+--trial "${TRIAL}"}
