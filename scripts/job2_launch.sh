#!/usr/bin/env bash
# Job 2 (launch): detect the model kind, pick the matching image, start the run's next pending trial.
# Writes TRIAL to mlci.properties for the parameterized trigger of job 3.
set -euo pipefail
rm -f "${WORKSPACE}/mlci.properties"
mlci launch --run "${RUN_ID}" --properties "${WORKSPACE}/mlci.properties"
