#!/usr/bin/env bash
# Job 1 (fetch): snapshot the commit Jenkins checked out into a new run of the run store.
# Writes RUN_ID, COMMIT, MODEL to mlci.properties for the parameterized trigger of job 2; the RUN_ID=
# line it prints is the build's description ("run <id>").
set -euo pipefail
rm -f "${WORKSPACE}/mlci.properties"
mlci fetch "${WORKSPACE}" --ref "${GIT_COMMIT:-HEAD}" ${MODEL:+--model "${MODEL}"} \
  ${THRESHOLD:+--threshold "${THRESHOLD}"} --properties "${WORKSPACE}/mlci.properties"
