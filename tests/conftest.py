"""Shared fixtures: database URLs for SQLite and the machine's PostgreSQL.

PostgreSQL is the server at 127.0.0.1:5432, database `test`, user `postgres`
(override with ONERECORD_TEST_POSTGRES). Each test gets its own schema, dropped afterwards.
When the server is missing the PostgreSQL tests are skipped on a developer's machine and
fail when CI=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest

if TYPE_CHECKING:
    from tests.network.conftest import Network
    from tests.support.s3 import S3Server

# Per-module CPU accounting, off unless ONERECORD_TEST_CPU_PROFILE names a folder.
pytest_plugins = ["tests.support.cpu_profile"]

POSTGRES_URL = os.environ.get(
    "ONERECORD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True)
class Database:
    """A fresh, empty database for one test: a URL and, on PostgreSQL, a schema of its own."""

    url: str
    schema: str | None
    kind: str


def _pg_execute(sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def postgres_ready() -> bool:
    try:
        _pg_execute("SELECT 1")
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but PostgreSQL at {POSTGRES_URL} is not reachable: {exc}")
        return False
    return True


@contextlib.contextmanager
def fresh_postgres_schema(postgres_ready: bool) -> Iterator[Database]:
    """A schema of its own on the machine's PostgreSQL, dropped afterwards (any fixture scope)."""
    if not postgres_ready:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable (allowed outside CI)")
    schema = f"t_{secrets.token_hex(6)}"
    _pg_execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield Database(url=POSTGRES_URL, schema=schema, kind="postgres")
    finally:
        _pg_execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def postgres_schema(postgres_ready: bool) -> Iterator[Database]:
    with fresh_postgres_schema(postgres_ready) as database:
        yield database


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Database:
    return Database(url=f"sqlite:///{tmp_path / 'registry.db'}", schema=None, kind="sqlite")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Database:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_database")  # type: ignore[no-any-return]
    return request.getfixturevalue("postgres_schema")  # type: ignore[no-any-return]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- NATS JetStream (the locator's events) -------------------------------------------------

NATS_URL = os.environ.get("ONERECORD_TEST_NATS", "nats://127.0.0.1:4222")


@dataclass(frozen=True)
class NatsStream:
    """A JetStream stream of one test's own: the server, the stream's name, a subject prefix."""

    url: str
    stream: str
    subject_prefix: str


def _nats_reachable() -> Exception | None:
    import nats

    async def probe() -> None:
        client = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
        try:
            await client.jetstream().account_info()
        finally:
            await client.close()

    try:
        asyncio.run(probe())
    except Exception as exc:  # any failure means: no usable JetStream here
        return exc
    return None


@pytest.fixture(scope="session")
def nats_ready() -> bool:
    problem = _nats_reachable()
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but NATS JetStream at {NATS_URL} is not usable: {problem}")
        return False
    return True


@pytest.fixture
def nats_stream(nats_ready: bool) -> Iterator[NatsStream]:
    """A unique stream and subject prefix on the machine's NATS, deleted afterwards."""
    if not nats_ready:
        pytest.skip("NATS JetStream at 127.0.0.1:4222 is not reachable (allowed outside CI)")
    token = secrets.token_hex(6)
    yield NatsStream(NATS_URL, f"TEST_LOCATOR_{token}", f"test.{token}.locator")

    import nats

    async def drop() -> None:
        client = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
        try:
            await client.jetstream().delete_stream(f"TEST_LOCATOR_{token}")
        except Exception:  # never created by the test: nothing to clean up
            pass
        finally:
            await client.close()

    asyncio.run(drop())


# --- One demo network per worker, for the modules marked shared_network ----------------------


@pytest.fixture(scope="session")
def shared_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """`onerecord demo` started once per pytest worker, for modules marked `shared_network`.

    Defined here, once: a session fixture imported into several conftest files would be one
    fixture per folder, each starting a network of its own. It is stopped (and checked to stop
    cleanly) when the worker ends.
    """
    from tests.network.conftest import running_network

    yield from running_network(tmp_path_factory.mktemp("shared-network"))


# --- One S3-compatible server per worker (moto's server mode, tests/support/s3.py) ----------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3 API on 127.0.0.1 (a moto child process); each test makes its own bucket."""
    from tests.support.s3 import moto_server

    with moto_server() as server:
        yield server
