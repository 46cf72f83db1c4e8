"""The run report and the store's index, checked in a real browser (Debian's Chromium, headless).

The stores are made by real `mlci run`s: a tiny Keras network (epochs: curves) and a KNN (no epochs),
each run twice (an edit between), so the second run of each model warm-starts from the first.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from browser import WIDTH, browser, render  # noqa: F401  (browser is a fixture)
from conftest import KERAS_DIGITS_SOURCE, KNN_SOURCE, ROOT, mlci, write_model
from mlci.core.store import RunStore

KNN_CONFIG = 'threshold = 0.999\nmax_trials = 2\ndataset = "digits"\nrunner = "local"\nstrategy = "optuna"\n'
KERAS_CONFIG = 'threshold = 0.999\nmax_trials = 2\ndataset = "digits"\nrunner = "local"\nstrategy = "optuna"\n'


def run_twice(folder: Path, source: str, name: str, config: str, home: Path) -> list[str]:
    """Two runs of one model: the second after an edit (a new content, so a new run that warm-starts)."""
    model = write_model(folder, source, name, config)
    # A module fixture runs before conftest's per-test environment: the same settings, given here.
    env = {"PYTHONPATH": str(ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0",
           "KERAS_HOME": str(home.parent / "keras-home"), "MPLBACKEND": "Agg", "MLCI_CACHE": str(home.parent / "cache")}
    ids = []
    for edit in ("", "# a later push\n"):
        model.write_text(model.read_text() + edit)
        done = mlci("run", str(model), "--home", str(home), "-q", "--no-notify", env=env)
        assert done.returncode == 3, done.stdout + done.stderr  # the threshold is out of reach on purpose
        found = re.search(r"runs/(\S+)/report\.html", done.stdout)
        assert found, done.stdout
        ids.append(found.group(1))
    return ids


@pytest.fixture(scope="module")
def knn_store(tmp_path_factory) -> tuple[Path, list[str]]:
    home = tmp_path_factory.mktemp("reports") / "store"
    return home, run_twice(home.parent / "knn", KNN_SOURCE, "digits_knn.py", KNN_CONFIG, home)


@pytest.fixture(scope="module")
def two_model_store(knn_store, tmp_path_factory) -> tuple[Path, list[str], list[str]]:
    home, knn_ids = knn_store
    keras_ids = run_twice(home.parent / "dense", KERAS_DIGITS_SOURCE, "digits_dense.py", KERAS_CONFIG, home)
    return home, knn_ids, keras_ids


def test_knn_report_says_there_are_no_epochs_and_every_link_resolves(knn_store, browser):
    home, (first, second) = knn_store
    page = render(browser, home / "runs" / second / "report.html", "report-knn.png")
    assert "No per-epoch curves: sklearn/classical fits in one step" in page.text
    assert [image["alt"] for image in page.images] == ["accuracy per trial"]
    assert all(image["natural_width"] > 0 and image["src_kind"] == "data" for image in page.images)
    assert page.broken_links() == [] and "trials/0/log.txt" in page.links
    assert f"../{first}/report.html" in page.links  # warm-started from the first run, linked
    assert re.search(rf"Warm-started from {first} \(best trial \d+\)", page.text)
    assert page.scroll_width <= WIDTH


@pytest.mark.slow
def test_report_draws_every_trials_curves_and_times_them(two_model_store, browser):
    home, _, (first, second) = two_model_store
    page = render(browser, home / "runs" / second / "report.html", "report.png")
    assert page.screenshot.stat().st_size > 10_000
    alts = [image["alt"] for image in page.images]
    assert alts == ["accuracy per trial", "training and validation curves per epoch"]
    assert all(image["natural_width"] > 0 for image in page.images), page.images
    assert page.scroll_width <= WIDTH, f"the report overflows {WIDTH} px: {page.scroll_width}"
    assert page.broken_links() == []
    for trial in (0, 1):
        assert f"trials/{trial}/log.txt" in page.links
    assert re.search(r"the run took (\d+m )?\d+s", page.text) and "Hyperparameters" in page.text
    assert "learning_rate" in page.text and "what changed" in page.text
    assert re.search(rf"best of {first}#\d+", page.text)  # what changed in the warm-started trial


@pytest.mark.slow
def test_index_lists_the_runs_of_two_models_with_their_lineage(two_model_store, browser):
    home, knn_ids, keras_ids = two_model_store
    done = mlci("report", "--all", "--home", str(home))
    assert done.returncode == 0, done.stderr
    index = Path(done.stdout.strip())
    assert index == (home / "index.html").resolve()
    page = render(browser, index, "index.png")
    assert page.scroll_width <= WIDTH and page.broken_links() == []
    for run_id in knn_ids + keras_ids:
        assert f"runs/{run_id}/report.html" in page.links
    assert "digits_knn" in page.text and "digits_dense" in page.text and "4 run(s) of 2 model(s)" in page.text
    for first, second in (knn_ids, keras_ids):
        assert f"#{first}" in page.links  # the second run's lineage points at the first run's row
        row = next(line for line in page.text.splitlines() if line.startswith(second))
        assert f"← {first}#" in row
    for run_id in knn_ids + keras_ids:  # every report links back to the index
        assert "../../index.html" in render(browser, home / "runs" / run_id / "report.html", "r.png").links


def test_history_top_sorts_by_the_objective(knn_store):
    home, (_, second) = knn_store
    run = RunStore(home).run(second)
    ranked = sorted(((t.metrics().value, t.number) for t in run.trials() if t.has_metrics()), key=lambda p: (-p[0], p[1]))
    assert ranked[0][1] != 0, "the example must improve on its baseline, or the order proves nothing"
    done = mlci("history", "--run", second, "--home", str(home), "--top", "2", env={"COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"^│\s+(\d+)\s+│\s+(\d+)\s+│\s+([\d.]+)\s+│", done.stdout, flags=re.MULTILINE)
    assert [(int(rank), int(trial)) for rank, trial, _ in rows] == [(1, ranked[0][1]), (2, ranked[1][1])]
    assert "n_neighbors = " in done.stdout and "best 2 by accuracy" in done.stdout
    bad = mlci("history", "--run", second, "--home", str(home), "--top", "0")
    assert bad.returncode == 2 and "--top" in bad.stderr
