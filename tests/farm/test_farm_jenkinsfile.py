"""The Jenkinsfile's farm stage: N `mlci worker` branches on agents with the label, the password from a
Jenkins credential (the Jenkinsfile itself passes npm-groovy-lint: tests/integrations/test_jenkins.py)."""
from __future__ import annotations

import re

from conftest import ROOT


def test_the_jenkinsfile_runs_n_workers_in_parallel_on_labelled_agents_with_the_password_from_credentials():
    text = (ROOT / "Jenkinsfile").read_text()
    assert "string(name: 'FARM_WORKERS', defaultValue: '0'" in text
    assert "parallel(farmWorkers(farmSize()))" in text
    branch = text[text.index("Map farmWorkers"):]
    assert "node(params.AGENT_LABEL)" in branch
    assert "withCredentials([string(credentialsId: 'mlci-postgres', variable: 'PGPASSWORD')])" in branch
    assert 'mlci worker --run "$RUN_ID"' in branch
    # the stage-by-stage chain runs only without a farm, and no URL carries a password
    assert "when { expression { farmSize() == 0 } }" in text
    assert not re.search(r"postgres(ql)?://[^@\s'\"]*:[^@\s'\"]*@", text)
