"""Run-level coordination: what makes the oracle's decisions hold when many workers (on many hosts) drive one run.

The oracle still decides everything; a coordination backend only gives it
- `guard()`: one decider at a time for the run, across processes (and hosts),
- claims: which worker trains which trial (a trial is never trained twice), with the workers' heartbeats,
  so a trial whose worker went silent is free again and another worker takes it over.

`FileCoordination` (one machine: flock on the run folder, claims as files) serves a run whose study is a
file; `PostgresCoordination` serves a run whose `storage` is a postgresql:// URL: a transaction holding
`pg_advisory_xact_lock` is the guard, and a claims table with a unique (run, trial) key holds the claims.
Heartbeats use clock_timestamp(), not now(): now() is when the transaction began, before it waited for the
lock, and a claim stamped with it would look stale to the others at once.
File locks do not hold across hosts; the database does. Credentials come from the environment only
(libpq's PGPASSWORD, PGUSER, ... or ~/.pgpass), never from the URL in the config.
"""
from __future__ import annotations

import abc
import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterator

from mlci.core.errors import ConfigError
from mlci.core.store import Run, write_json


@dataclass(frozen=True)
class Claim:
    trial: int
    worker: str
    host: str
    done: bool
    takeovers: int  # how many times a worker took this trial over from a silent one


def worker_id(host: str | None = None) -> str:
    """host:pid:random — unique per worker process, and says where it runs."""
    host = host or os.environ.get("MLCI_WORKER_HOST") or socket.gethostname()
    return f"{host}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def host_of(worker: str) -> str:
    return worker.split(":", 1)[0]


class Coordination(abc.ABC):
    """One run's guard and claims. `stale_after`: seconds without a heartbeat after which a claim is free."""

    def __init__(self, run: Run, stale_after: float = 15.0):
        self.run = run
        self.stale_after = stale_after

    @abc.abstractmethod
    def guard(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive for this run across processes; not re-entrant (the oracle counts nesting)."""

    @abc.abstractmethod
    def claim(self, trial: int, worker: str) -> int | None:
        """Under guard(): claim `trial` for `worker`. None if a live worker holds it; else how many times it
        has been taken over (0: a fresh claim; >0: taken from a worker whose heartbeat stopped)."""

    @abc.abstractmethod
    def beat(self, worker: str) -> None:
        """The worker is alive: its open claims stay its own."""

    @abc.abstractmethod
    def release(self, trial: int, worker: str) -> None:
        """The worker is done with the trial (it ended, or was settled by another process)."""

    @abc.abstractmethod
    def claims(self) -> list[Claim]:
        ...

    @abc.abstractmethod
    def live(self) -> set[int]:
        """Trials held by workers with a recent heartbeat (not done): no one else trains them."""


# ----------------------------------------------------------------------------- one machine


class FileCoordination(Coordination):
    """flock on runs/<id>/.oracle.lock; claims/<trial>.json with the worker and its last heartbeat."""

    def __init__(self, run: Run, stale_after: float = 15.0):
        super().__init__(run, stale_after)
        self.folder = run.dir / "claims"
        # A worker's heartbeat thread rewrites its claims while the worker releases one: without this, a beat
        # that read the claim before the release would write it back open (`mlci run --parallel` threads).
        self._writing = threading.RLock()

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        with open(self.run.dir / ".oracle.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self) -> list[tuple[Claim, float]]:
        found = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.exists() else []:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                data = json.loads(path.read_text())
                found.append((Claim(int(data["trial"]), data["worker"], data["host"], bool(data["done"]),
                                    int(data["takeovers"])), float(data["beat"])))
        return found

    def _write(self, claim: Claim) -> None:
        self.folder.mkdir(exist_ok=True)
        write_json(self.folder / f"{claim.trial}.json", {**claim.__dict__, "beat": time.time()})

    def claim(self, trial: int, worker: str) -> int | None:
        with self._writing:
            return self._claim(trial, worker)

    def _claim(self, trial: int, worker: str) -> int | None:
        old = next(((c, beat) for c, beat in self._read() if c.trial == trial), None)
        takeovers = 0
        if old is not None:
            claim, beat = old
            if not claim.done and time.time() - beat < self.stale_after and claim.worker != worker:
                return None
            takeovers = claim.takeovers + (0 if claim.done else 1)
        self._write(Claim(trial, worker, host_of(worker), False, takeovers))
        return takeovers

    def beat(self, worker: str) -> None:
        with self._writing:
            for claim, _ in self._read():
                if claim.worker == worker and not claim.done:
                    self._write(claim)

    def release(self, trial: int, worker: str) -> None:
        with self._writing:
            for claim, _ in self._read():
                if claim.trial == trial and claim.worker == worker:
                    self._write(Claim(trial, worker, claim.host, True, claim.takeovers))

    def claims(self) -> list[Claim]:
        return [claim for claim, _ in self._read()]

    def live(self) -> set[int]:
        now = time.time()
        return {c.trial for c, beat in self._read() if not c.done and now - beat < self.stale_after}


# ----------------------------------------------------------------------------- many hosts: PostgreSQL

SCHEMA = """
CREATE TABLE IF NOT EXISTS mlci_claims (
    run_id text NOT NULL,
    trial integer NOT NULL,
    worker text NOT NULL,
    host text NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    beat timestamptz NOT NULL DEFAULT clock_timestamp(),
    done boolean NOT NULL DEFAULT false,
    takeovers integer NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, trial)
)
"""


def libpq_url(url: str) -> str:
    """postgresql+psycopg2://… (SQLAlchemy) → postgresql://… (libpq)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


def is_server_url(url: str | None) -> bool:
    return bool(url) and url.split("://", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


class PostgresCoordination(Coordination):
    """An advisory transaction lock per run is the guard; mlci_claims holds the claims and heartbeats."""

    _schema_ready: set[str] = set()

    def __init__(self, run: Run, url: str, stale_after: float = 15.0):
        super().__init__(run, stale_after)
        self.url = libpq_url(url)
        self._local = threading.local()
        if self.url not in self._schema_ready:
            with self._transaction() as cur:  # CREATE TABLE IF NOT EXISTS races: one creator at a time
                cur.execute("SELECT pg_advisory_xact_lock(hashtext('mlci-schema'))")
                cur.execute(SCHEMA)
            self._schema_ready.add(self.url)

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                import psycopg
            except ImportError:
                raise ConfigError("storage is a PostgreSQL URL but psycopg is not installed",
                                  hint="pip install 'mlci[farm]'") from None
            try:
                conn = psycopg.connect(self.url, connect_timeout=10, application_name="mlci", autocommit=True)
            except psycopg.Error as exc:
                raise ConfigError(f"storage {self.url!r}: cannot connect ({str(exc).strip().splitlines()[0]})",
                                  hint="check the server, and PGPASSWORD (or ~/.pgpass) in the environment") from None
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        conn = self._connection()
        if getattr(self._local, "depth", 0):  # inside guard(): the same transaction
            with conn.cursor() as cur:
                yield cur
            return
        with conn.transaction(), conn.cursor() as cur:  # commits, or rolls back on an exception
            yield cur

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"mlci-run:{self.run.id}",))
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0

    def claim(self, trial: int, worker: str) -> int | None:
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO mlci_claims (run_id, trial, worker, host) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (run_id, trial) DO UPDATE SET worker = EXCLUDED.worker, host = EXCLUDED.host, "
                "claimed_at = clock_timestamp(), beat = clock_timestamp(), done = false, "
                "takeovers = mlci_claims.takeovers + CASE WHEN mlci_claims.done THEN 0 ELSE 1 END "
                "WHERE mlci_claims.done OR mlci_claims.worker = EXCLUDED.worker "
                "OR mlci_claims.beat < clock_timestamp() - make_interval(secs => %s) RETURNING takeovers",
                (self.run.id, trial, worker, host_of(worker), self.stale_after))
            row = cur.fetchone()
        return None if row is None else int(row[0])

    def beat(self, worker: str) -> None:
        with self._transaction() as cur:
            cur.execute("UPDATE mlci_claims SET beat = clock_timestamp() WHERE run_id = %s AND worker = %s AND NOT done",
                        (self.run.id, worker))

    def release(self, trial: int, worker: str) -> None:
        with self._transaction() as cur:
            cur.execute("UPDATE mlci_claims SET done = true WHERE run_id = %s AND trial = %s AND worker = %s",
                        (self.run.id, trial, worker))

    def claims(self) -> list[Claim]:
        with self._transaction() as cur:
            cur.execute("SELECT trial, worker, host, done, takeovers FROM mlci_claims WHERE run_id = %s "
                        "ORDER BY trial", (self.run.id,))
            return [Claim(*row) for row in cur.fetchall()]

    def live(self) -> set[int]:
        with self._transaction() as cur:
            cur.execute("SELECT trial FROM mlci_claims WHERE run_id = %s AND NOT done "
                        "AND beat >= clock_timestamp() - make_interval(secs => %s)", (self.run.id, self.stale_after))
            return {row[0] for row in cur.fetchall()}

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


_BACKENDS: dict[tuple[str, str], Coordination] = {}
_BACKENDS_LOCK = threading.Lock()


def coordination_for(run: Run, storage: str | None) -> Coordination:
    """PostgreSQL when the study lives on a server; the run folder otherwise (one per run and process, so its
    connections are reused)."""
    key = (str(run.dir.resolve()), storage or "")
    with _BACKENDS_LOCK:
        backend = _BACKENDS.get(key)
        if backend is None:
            backend = PostgresCoordination(run, storage) if is_server_url(storage) else FileCoordination(run)
            _BACKENDS[key] = backend
        return backend
