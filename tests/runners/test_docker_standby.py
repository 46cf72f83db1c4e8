"""Standby containers (`workers = "warm"` with the Docker runner), against a real Docker engine.

The trials after the first start in a container made while the previous one trained; each is still a container
of its own, mounting its own trial folder only, non-root, with the same results as a container started per trial.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import KNN_SOURCE, mlci, write_model
from skips import require_module

require_module("docker", "docker", module_level=True)

from mlci.core.store import HparamsRecord, MetricsRecord, TrialState, write_json  # noqa: E402
from mlci.runners.base import LaunchSpec  # noqa: E402
from mlci.runners.docker import container_name  # noqa: E402
from mlci.runners.docker_standby import (FOLDER_PREFIX, STANDBY, StandbyDockerRunner, unused_standby,  # noqa: E402
                                         unused_standby_event)


def _run(tmp_path: Path, home: Path, workers: str, docker_runs: list[str]) -> Path:
    model = write_model(tmp_path / f"knn-{workers}", KNN_SOURCE, "digits_knn.py",
                        f'threshold = 1.0\nmax_trials = 3\ndataset = "digits"\nrunner = "docker"\nseed = 7\n'
                        f'workers = "{workers}"\n')
    done = mlci("run", str(model), "--home", str(home))
    assert done.returncode == 3 and "budget spent" in done.stderr, done.stderr  # threshold 1.0: all 3 trials run
    (run_dir,) = [p for p in (home / "runs").iterdir() if (p / "run.json").exists()]
    docker_runs.append(run_dir.name)
    return run_dir


def _results(run_dir: Path) -> list[tuple]:
    results = []
    for number in range(3):
        trial = run_dir / "trials" / str(number)
        metrics = MetricsRecord.model_validate_json((trial / "metrics.json").read_text())
        hparams = json.loads((trial / "hparams.json").read_text())["hparams"]
        results.append((hparams, metrics.metric, metrics.value))
    return results


def _standbys_left(engine, run_dir: Path) -> list:
    containers = engine.containers.list(all=True, filters={"label": [f"mlci.run={run_dir.name}"]})
    return [c.name for c in containers if unused_standby(c)] + \
        [p.name for p in (run_dir / "trials").iterdir() if p.name.startswith(FOLDER_PREFIX)]


@pytest.mark.docker
def test_later_trials_start_in_standby_containers_with_the_same_results(engine, tmp_path, docker_runs):
    run_dir = _run(tmp_path, tmp_path / "warm", "warm", docker_runs)
    sources = set()
    for number in range(3):
        state = TrialState.model_validate_json((run_dir / "trials" / str(number) / "trial.json").read_text())
        assert state.status == "succeeded" and state.user and not state.user.startswith("0")
        container = engine.containers.get(state.container_id)
        # trial 0 has no standby to take; trials 1 and 2 ran in the standby made during the trial before
        assert container.labels["mlci.trial"] == ("0" if number == 0 else STANDBY), number
        assert container.name == container_name(run_dir.name, number)  # renamed at hand-over
        attrs = container.attrs
        assert attrs["Config"]["User"] == state.user and attrs["HostConfig"]["ReadonlyRootfs"]
        assert attrs["HostConfig"]["CapDrop"] == ["ALL"] and attrs["HostConfig"]["NetworkMode"] == "none"
        assert attrs["HostConfig"]["CpuShares"] in (0, 1024)  # a standby's low share ended at hand-over
        (mount,) = attrs["Mounts"]  # its own folder only: the standby folder, which became the trial folder
        assert mount["Destination"] == "/trial" and mount["Type"] == "bind"
        source = Path(mount["Source"])
        if number:
            assert source.parent == run_dir / "trials" and source.name.startswith(FOLDER_PREFIX)
            assert not source.exists()  # exchanged with trials/<n> at hand-over
        else:
            assert source == run_dir / "trials" / "0"
        sources.add(source)
        assert f"trial {number}: accuracy" in (run_dir / "trials" / str(number) / "log.txt").read_text()
    assert len(sources) == 3
    assert _standbys_left(engine, run_dir) == []  # the run's end removed the unused standby and its folder

    fresh = _run(tmp_path, tmp_path / "fresh", "fresh", docker_runs)
    for number in range(3):
        state = TrialState.model_validate_json((fresh / "trials" / str(number) / "trial.json").read_text())
        assert engine.containers.get(state.container_id).labels["mlci.trial"] == str(number)
    assert _results(run_dir) == _results(fresh)


def _spec(run_dir: Path, number: int, model: Path) -> LaunchSpec:
    trial_dir = run_dir / "trials" / str(number)
    trial_dir.mkdir(parents=True, exist_ok=True)
    write_json(trial_dir / "hparams.json", HparamsRecord(trial=number, hparams={"n_neighbors": 5 + number},
                                                         dataset="digits"))
    return LaunchSpec(run_id=f"test-{run_dir.name}", trial=number, model_name=model.stem, model_file=model,
                      source_dir=model.parent, trial_dir=trial_dir, framework="sklearn")


@pytest.mark.docker
def test_a_dead_standby_is_replaced_by_a_container_of_its_own(engine, runner, tmp_path):
    model = write_model(tmp_path / "knn", KNN_SOURCE, "digits_knn.py")
    run_dir = tmp_path / "store" / "runs" / "standby-dies"
    runner = StandbyDockerRunner(engine)  # the `runner` fixture removes the test's containers afterwards
    try:
        first = runner.start(_spec(run_dir, 0, model))
        runner.wait_for_standbys()
        ((standby,),) = runner.standbys.values()
        standby.container.kill()
        standby.container.wait(timeout=60)
        second = runner.start(_spec(run_dir, 1, model))
        assert engine.containers.get(second).labels["mlci.trial"] == "1"  # a container of its own, not the dead one
        assert not standby.folder.exists()
        for number, handle in enumerate((first, second)):
            assert runner.wait(handle, timeout=300).succeeded, runner.logs(handle)
            assert (run_dir / "trials" / str(number) / "metrics.json").exists()  # no trial lost
    finally:
        runner.close()
    assert not [p for p in (run_dir / "trials").iterdir() if p.name.startswith(FOLDER_PREFIX)]
    assert not [c for c in runner.containers(f"test-{run_dir.name}") if unused_standby(c)]


@pytest.mark.docker
def test_a_standby_left_by_a_killed_mlci_is_removed_by_the_next_runner(engine, runner, tmp_path):
    model = write_model(tmp_path / "knn", KNN_SOURCE, "digits_knn.py")
    run_dir = tmp_path / "store" / "runs" / "orphan"
    _spec(run_dir, 0, model)
    # A process that makes a standby and ends without close(), as a killed `mlci run` does.
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from mlci.runners.base import LaunchSpec
        from mlci.runners.docker_standby import StandbyDockerRunner
        model, trial_dir = Path({str(model)!r}), Path({str(run_dir / "trials" / "0")!r})
        runner = StandbyDockerRunner()
        runner.start(LaunchSpec(run_id="test-{run_dir.name}", trial=0, model_name=model.stem, model_file=model,
                                source_dir=model.parent, trial_dir=trial_dir, framework="sklearn"))
        runner.wait_for_standbys()
        assert runner.standbys, runner.standby_error
        os._exit(0)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2] / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300, env=env)
    left = [c for c in engine.containers.list(all=True, filters={"label": [f"mlci.run=test-{run_dir.name}"]})
            if unused_standby(c)]
    assert len(left) == 1 and any(p.name.startswith(FOLDER_PREFIX) for p in (run_dir / "trials").iterdir())
    assert StandbyDockerRunner(engine).remove_orphans() >= 1
    assert not [c for c in engine.containers.list(all=True, filters={"label": [f"mlci.run=test-{run_dir.name}"]})
                if unused_standby(c)]
    assert not [p for p in (run_dir / "trials").iterdir() if p.name.startswith(FOLDER_PREFIX)]


def test_the_monitor_names_a_standby_by_its_trial_and_passes_over_unused_ones(capsys):
    from mlci.cli.monitor import MonitorEcho

    handed = {"Action": "die", "Actor": {"Attributes": {"mlci.run": "r-1", "mlci.trial": STANDBY, "exitCode": "137",
                                                        "name": container_name("r-1", 3)}}}
    unused = {"Action": "die", "Actor": {"Attributes": {"mlci.run": "r-1", "mlci.trial": STANDBY,
                                                        "name": container_name("r-1", STANDBY) + "-0a1b2c3d"}}}
    MonitorEcho().docker_event(handed)
    assert "container of run r-1 trial 3: die (exit code 137)" in capsys.readouterr().err
    assert not unused_standby_event(handed) and unused_standby_event(unused)


SGD = '''
    """A linear model trained epoch by epoch (partial_fit), so a study can prune it."""
    from sklearn.linear_model import SGDClassifier

    HPARAMS = {"epochs": 6, "alpha": 0.0001}


    def build_model(hp):
        return SGDClassifier(alpha=hp["alpha"], random_state=0)
'''


@pytest.mark.docker
def test_a_trial_in_a_standby_is_pruned_through_its_follower(engine, tmp_path, docker_home):
    """Relayed pruning (MLCI_PRUNING=relay, the container has no network) works in a standby as in a fresh one."""
    from mlci.core.store import RunStore
    from mlci.harness.train import train_trial
    from mlci.orchestration.lifecycle import follow, launch_trial
    from mlci.orchestration.oracle import RunOracle
    from mlci.orchestration.runs import prepare_run
    from mlci.tuning.tweak import tweak

    model = write_model(tmp_path / "m", SGD, "sgd.py",
                        'threshold = 1.0\ndataset = "digits"\n'
                        '[space]\nalpha = {type = "float", low = 1e-5, high = 1e-3, log = true}\n')
    run, config = prepare_run(model, store=RunStore(docker_home), overrides={"max_trials": 10, "runner": "docker"})
    runner = StandbyDockerRunner(engine)
    try:
        for trial in [RunOracle(run).ask().trial, tweak(run, config)]:  # the pruner's comparison, trained here
            trial.write_hparams(trial.hparams().model_copy(update={"dataset": "digits"}))
            assert train_trial(trial.dir, Path(run.record().model_file), echo=lambda _: None) is not None
            trial.update_state(status="succeeded")
            RunOracle(run).tell(trial)
        third = tweak(run, config)  # in a container started for it; a standby is made meanwhile
        record = third.hparams()
        record.hparams["alpha"] = 1e-4  # the baseline's: not pruned
        third.write_hparams(record)
        assert follow(run, third, runner, launch_trial(run, third, runner, config), config).status == "succeeded"
        RunOracle(run).tell(third)
        trial = tweak(run, config)
        record = trial.hparams()
        record.hparams["alpha"] = 50.0  # a huge regularisation: accuracy stays near chance
        trial.write_hparams(record)
        handle = launch_trial(run, trial, runner, config)
        assert engine.containers.get(handle).labels["mlci.trial"] == STANDBY
        state = follow(run, trial, runner, handle, config)
    finally:
        runner.close()
    log = trial.log_path.read_text()
    assert state.status == "pruned", log
    assert state.reason.startswith("pruned at epoch 2 (val_accuracy ")
    assert "pruning is off" not in log and not trial.has_metrics()
