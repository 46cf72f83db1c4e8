"""`mlci daemon`: the warm workers kept between runs (`workers = "daemon"` in mlci.toml), and `--stop` to end them."""
from __future__ import annotations

import json
import time

import click

from mlci.cli._common import SEE_EXIT_HELP, handle_errors


@click.command("daemon", epilog=SEE_EXIT_HELP)
@click.option("--stop", is_flag=True, help="End them (trials they forked go on); the next run starts one again.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per worker, for scripts.")
@handle_errors
def daemon_command(stop, as_json):
    """List the warm workers kept between runs (workers = "daemon"), or end them with --stop."""
    from mlci.runners.daemon import daemons, runtime_dir, stop_all

    found = stop_all() if stop else daemons()
    if as_json:
        for info in found:
            click.echo(json.dumps(info, sort_keys=True))
        return
    if not found:
        click.echo(f"no warm workers kept between runs (in {runtime_dir()})")
        return
    verb = "stopped" if stop else "running"
    for info in found:
        minutes = (time.time() - info.get("started", time.time())) / 60
        click.echo(f"{verb}: {info['framework']:<8} pid {info['pid']:<8} {info['rss'] / 2**20:7.0f} MiB  "
                   f"up {minutes:.0f} min, ends after {info.get('idle_minutes', 0):g} min idle  {info['key']}")
