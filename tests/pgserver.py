"""The farm tests' PostgreSQL (import the fixtures from here): the cluster scripts/postgres-ready.sh starts (make test runs it); each test
gets a database of its own. Without the server the tests skip with the reason (with CI=true they fail)."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from skips import unavailable

PG_DIR = Path(os.environ.get("MLCI_PG_DIR", "/tmp/mlci-postgres"))
PG_PORT = int(os.environ.get("MLCI_PG_PORT", "54329"))
PG_HOST = "127.0.0.1"


def _unavailable(reason: str):
    unavailable(f"PostgreSQL: {reason}", "run 'sudo scripts/postgres-ready.sh' (make test does)")


@pytest.fixture(scope="session")
def postgres_password() -> str:
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed (pip install -e '.[farm]')")
    try:
        password = (PG_DIR / "password").read_text().strip()
    except OSError as exc:
        _unavailable(f"no cluster at {PG_DIR} ({exc.strerror})")
    try:
        psycopg.connect(host=PG_HOST, port=PG_PORT, user="mlci", dbname="mlci", password=password,
                        connect_timeout=5).close()
    except psycopg.Error as exc:
        _unavailable(f"cannot connect to {PG_HOST}:{PG_PORT} ({str(exc).strip().splitlines()[0]})")
    return password


@pytest.fixture
def pg_url(postgres_password, monkeypatch) -> str:
    """A fresh database on the test server; the password reaches libpq through PGPASSWORD only."""
    import psycopg

    monkeypatch.setenv("PGPASSWORD", postgres_password)
    name = f"mlci_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(host=PG_HOST, port=PG_PORT, user="mlci", dbname="mlci", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://mlci@{PG_HOST}:{PG_PORT}/{name}"
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()
