"""Docker figures: image build times (cold, warm), image sizes, container start-to-first-log latency,
and training throughput in a container against the host for the same trial (target ratio >= 0.95).

Usage: python bench/docker.py [--repeats N] [--skip-cold] [--epochs N]   (needs a Docker engine)
Prints a rich table and writes bench/results/docker.json. `--skip-cold` keeps the images and the wheelhouse.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
# This file is named docker.py: its folder must not shadow the Docker SDK package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT / "src"))

from mlci.runners.images import IMAGES, build_images, tag_for  # noqa: E402
from mlci.runners.base import LaunchSpec  # noqa: E402
from mlci.runners.docker import DockerRunner, connect  # noqa: E402
from mlci.runners.local import LocalRunner  # noqa: E402
from mlci.core.store import HparamsRecord, MetricsRecord, write_json  # noqa: E402

CNN = {"conv_blocks": 2, "filters": 16, "kernel_size": 3, "dense_layers": 1, "units": 64, "dropout": 0.0,
       "learning_rate": 0.001, "batch_size": 64}
KNN = {"n_neighbors": 5, "weights": "uniform"}


def build_figures(client, cold: bool, console: Console) -> dict:
    """Cold: no mlci image and an empty wheelhouse (downloads included); warm: all unchanged."""
    figures: dict = {}
    progress = lambda line: console.print(f"  {line}", markup=False) if line.startswith("mlci/") else None  # noqa: E731
    if cold:
        for name in reversed(list(IMAGES)):
            for tag in (tag_for(name), f"mlci/{name}:latest"):
                try:
                    client.images.remove(tag, force=True)
                except Exception:  # noqa: BLE001 - absent already
                    pass
        with tempfile.TemporaryDirectory(prefix="mlci-bench-wheels-") as house:
            started = time.perf_counter()
            results = build_images(wheelhouse=Path(house), client=client, progress=progress)
            figures["cold_seconds"] = round(time.perf_counter() - started, 1)
            figures["cold_steps"] = {r.name: {k: round(v, 1) for k, v in r.steps.items()} for r in results}
    started = time.perf_counter()
    results = build_images(client=client, progress=progress)
    figures["warm_seconds"] = round(time.perf_counter() - started, 1)
    figures["warm_rebuilt"] = [r.name for r in results if r.built]
    figures["sizes_mb"] = {r.tag: round(r.size / 1e6) for r in results}
    base = client.images.get(results[0].tag).labels.get("mlci.base-image")
    figures["base_image"] = base
    figures["base_image_mb"] = round(client.images.get(base).attrs["Size"] / 1e6) if base else None
    return figures


def _trial(folder: Path, model: Path, framework: str, hparams: dict, number: int) -> LaunchSpec:
    trial_dir = folder / f"trial-{number}"
    trial_dir.mkdir(parents=True)
    write_json(trial_dir / "hparams.json", HparamsRecord(trial=number, hparams=hparams, dataset="mnist-sample",
                                                         metric="accuracy"))
    return LaunchSpec(run_id="bench-docker", trial=number, model_name=model.stem, model_file=model,
                      source_dir=model.parent, trial_dir=trial_dir, framework=framework,
                      image=f"mlci/{framework}:latest")


def _first_log(runner, spec: LaunchSpec) -> tuple[float, float, MetricsRecord]:
    """Seconds from start() to its return, and to the first byte of the trial's log.txt."""
    log = spec.trial_dir / "log.txt"
    started = time.perf_counter()
    handle = runner.start(spec)
    returned = time.perf_counter() - started
    while not (log.exists() and log.stat().st_size > 0):
        if runner.status(handle).finished:
            break
        time.sleep(0.005)
    first = time.perf_counter() - started
    status = runner.wait(handle, timeout=900)
    if not status.succeeded:
        raise SystemExit(f"bench trial failed ({status.reason}): {log.read_text()[-800:]}")
    if isinstance(runner, DockerRunner):
        runner.remove(handle)
    return returned, first, MetricsRecord.model_validate_json((spec.trial_dir / "metrics.json").read_text())


def latency_and_throughput(client, repeats: int, epochs: int, console: Console) -> dict:
    runners = {"host": LocalRunner(), "docker": DockerRunner(client)}
    models = {"sklearn": (ROOT / "models" / "mnist_sklearn" / "mnist_sklearn.py", KNN), "keras": (ROOT / "models" / "mnist_cnn" / "mnist_cnn.py",
                                                                             {**CNN, "epochs": epochs})}
    rows: dict = {}
    with tempfile.TemporaryDirectory(prefix="mlci-bench-docker-") as tmp:
        number = 0
        for framework, (model, hparams) in models.items():
            for attempt in range(repeats):  # host and container alternate: a busy neighbour hits both alike
                for where, runner in runners.items():
                    spec = _trial(Path(tmp), model, framework, hparams, number)
                    number += 1
                    returned, first, metrics = _first_log(runner, spec)
                    samples = metrics.n_train * max(metrics.epochs_done, 1)
                    row = rows.setdefault(f"{framework}/{where}", {"start": [], "first_log": [], "import": [],
                                                                  "fit": [], "samples_per_s": []})
                    row["start"].append(returned)
                    row["first_log"].append(first)
                    row["import"].append(metrics.import_seconds or 0.0)
                    row["fit"].append(metrics.train_seconds)
                    row["samples_per_s"].append(samples / metrics.train_seconds if metrics.train_seconds else 0.0)
                    console.print(f"  {framework:7} {where:6} #{attempt}: first log {first:.2f}s, "
                                  f"fit {metrics.train_seconds:.2f}s, {row['samples_per_s'][-1]:.0f} samples/s")
    summary = {key: {name: round(statistics.median(values), 3) for name, values in row.items()} | {"runs": row}
               for key, row in rows.items()}
    for framework in models:
        host, docker = summary[f"{framework}/host"], summary[f"{framework}/docker"]
        if host["samples_per_s"]:
            summary[f"{framework}/ratio"] = round(docker["samples_per_s"] / host["samples_per_s"], 3)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--skip-cold", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    console = Console()
    client = connect()
    console.print("image builds")
    builds = build_figures(client, not args.skip_cold, console)
    console.print("start latency and training throughput")
    runs = latency_and_throughput(client, args.repeats, args.epochs, console)

    table = Table("figure", "value", title="mlci on Docker")
    if "cold_seconds" in builds:
        table.add_row("cold build (no images, empty wheelhouse)", f"{builds['cold_seconds']:.0f} s")
    table.add_row("warm build (nothing changed)", f"{builds['warm_seconds']:.1f} s")
    table.add_row("base image", f"{builds['base_image']} {builds['base_image_mb']} MB")
    for tag, size in builds["sizes_mb"].items():
        table.add_row(f"size {tag}", f"{size} MB")
    for framework in ("sklearn", "keras"):
        for where in ("host", "docker"):
            row = runs[f"{framework}/{where}"]
            table.add_row(f"{framework} {where}: start -> first log line", f"{row['first_log']:.2f} s "
                          f"(model import {row['import']:.2f} s)")
        if framework == "sklearn":
            continue  # a k-NN fit takes ~10 ms: its samples/s say nothing about the container
        table.add_row(f"{framework} throughput docker / host", f"{runs.get(f'{framework}/ratio', 0):.3f} "
                      f"({runs[f'{framework}/docker']['samples_per_s']:.0f} vs "
                      f"{runs[f'{framework}/host']['samples_per_s']:.0f} samples/s)")
    console.print(table)
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    info = client.version()
    payload = {"builds": builds, "runs": runs, "repeats": args.repeats, "epochs": args.epochs,
               "engine": f"{info.get('Version')} ({info.get('Os')}/{info.get('Arch')})", "cpus": os.cpu_count(),
               "python": platform.python_version(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (results / "docker.json").write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"wrote {results / 'docker.json'}")
    shutil.rmtree(ROOT / ".cache" / "build", ignore_errors=True)


if __name__ == "__main__":
    main()
