"""Benchmark of notify: the cost of writing a message to the outbox and delivering it on loopback.

Real servers (aiosmtpd plain and STARTTLS+AUTH, http.server); prints a table, writes bench/results/notify.json.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import logging
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "tests" / "integrations")]

from mlci.core.config import NotifyConfig  # noqa: E402
from mlci.integrations.channels import PASSWORD_ENV  # noqa: E402
from mlci.integrations.notify import notify  # noqa: E402
from test_notify import (PASSWORD, SmtpServer, WebhookServer, authenticator, make_certificate,  # noqa: E402
                         make_run, server_tls, smtp_config)

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))


def measure(name: str, folder: Path, config_for) -> dict:
    """Seconds per notify() call, each on a fresh run (a sent event is never sent again)."""
    seconds, sizes = [], []
    for number in range(ROUNDS):
        run = make_run(folder / f"{name}-{number}")
        started = time.perf_counter()
        notify(run, config=config_for())
        seconds.append(time.perf_counter() - started)
        sizes.append((run.outbox / "success.json").stat().st_size)
    return {"case": name, "rounds": ROUNDS, "median_ms": 1000 * statistics.median(seconds),
            "max_ms": 1000 * max(seconds), "outbox_bytes": int(statistics.median(sizes))}


def main() -> None:
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd logs a deprecation on each AUTH
    os.environ[PASSWORD_ENV] = PASSWORD
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cert = make_certificate(folder)
        results.append(measure("outbox + console (no channel)", folder, NotifyConfig))
        with SmtpServer() as server:
            results.append(measure("email, plain SMTP", folder, lambda: smtp_config(server.port)))
        with SmtpServer(tls_context=server_tls(cert), require_starttls=True, auth_required=True,
                        authenticator=authenticator) as server:
            results.append(measure("email, STARTTLS + AUTH", folder, lambda: smtp_config(
                server.port, security="starttls", smtp_user="ci", ca_file=str(cert[0]))))
        with WebhookServer() as hook:
            results.append(measure("webhook (JSON POST)", folder, lambda: NotifyConfig(webhook_url=hook.url)))
    table = Table(title=f"mlci notify on loopback ({ROUNDS} messages each, report.png attached)")
    for column in ("case", "median ms", "max ms", "outbox file bytes"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for row in results:
        table.add_row(row["case"], f"{row['median_ms']:.1f}", f"{row['max_ms']:.1f}", str(row["outbox_bytes"]))
    Console().print(table)
    target = ROOT / "bench" / "results" / "notify.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"python": sys.version.split()[0], "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
