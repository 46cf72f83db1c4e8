#!/usr/bin/env bash
# Job 4 (check / tweak): metric >= threshold -> done; below (exit 3) -> write the next trial's hparams.
# Both outcomes pass the build on to job 5; tweak's exit 3 (budget spent) is an outcome, not a failure.
set -euo pipefail
mlci check --run "${RUN_ID}" ${TRIAL:+--trial "${TRIAL}"} || {
  code=$?
  [ "${code}" -eq 3 ] || exit "${code}"
  mlci tweak --run "${RUN_ID}" || [ $? -eq 3 ]
}
