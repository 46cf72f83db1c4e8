"""The command line: the `mlci` group; the commands live in one module per group, registered below.

Each command parses options, calls one function of the core, and formats; MlciError -> exit code.
"""
from __future__ import annotations

import os

import click

from mlci import __version__
from mlci.cli._common import EXIT_HELP


# `mlci --help` lists the commands in the order a model goes through them, then the reading ones, then the tools.
COMMAND_ORDER = ("run", "fetch", "detect", "launch", "train", "wait", "check", "tweak", "status", "notify", "monitor",
                 "report", "history", "runs", "worker",
                 "images", "jenkins", "hook", "watch")


class PipelineOrderGroup(click.Group):
    """A group that lists its commands in COMMAND_ORDER (any other after them, alphabetically)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        known = [name for name in COMMAND_ORDER if name in self.commands]
        return known + sorted(name for name in self.commands if name not in COMMAND_ORDER)


@click.group(cls=PipelineOrderGroup, epilog=EXIT_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlci")
def main() -> None:
    """mlci: detect a model's kind, train it, check the metric, tweak and retrain until the
    threshold, notify, and heal crashed trials. `mlci run MODEL_FILE` does it all in one process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # oneDNN reorders float sums: resumed runs must match


def _register() -> None:
    from mlci.cli import detect, images, jenkins, monitor, notify, pipeline, results, worker

    for command in (pipeline.run, pipeline.train, pipeline.fetch, pipeline.launch, pipeline.wait, pipeline.check,
                    pipeline.tweak, pipeline.status, results.history, results.report, results.list_runs,
                    detect.detect_command, notify.notify_command, images.images_group, monitor.monitor_command,
                    jenkins.jenkins_group, jenkins.hook_group, jenkins.watch_command, worker.worker_command):
        main.add_command(command)


_register()
