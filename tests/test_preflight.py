"""Issue 10 E: a `--db-schema` that does not exist is one line on stderr and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from onerecord.preflight import DatabaseUnusable, check_database
from tests.conftest import POSTGRES_URL, Database
from tests.support.servers import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.anyio]

MISSING = "no_such_schema_for_preflight"


def _onerecord(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "onerecord.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_one_line_error(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert MISSING in lines[0] and "127.0.0.1:5432/test" in lines[0]
    assert lines[0].startswith("error: ")
    assert "Traceback" not in done.stdout + done.stderr


def test_source_serve_with_a_missing_schema_ends_in_one_line_and_exit_2(
    postgres_ready: bool,
) -> None:
    if not postgres_ready:
        pytest.skip("PostgreSQL is not reachable")
    port = str(free_port())
    done = _onerecord(
        "source", "serve", "--db", POSTGRES_URL, "--db-schema", MISSING, "--port", port,
        "--dev", "--dev-open-access",
    )  # fmt: skip
    _assert_one_line_error(done)


def test_audit_verify_with_a_missing_schema_ends_in_one_line_and_exit_2(
    postgres_ready: bool,
) -> None:
    if not postgres_ready:
        pytest.skip("PostgreSQL is not reachable")
    _assert_one_line_error(
        _onerecord("audit", "verify", "--db", POSTGRES_URL, "--db-schema", MISSING)
    )


def test_hub_serve_with_a_missing_audit_schema_ends_in_one_line_and_exit_2(
    postgres_ready: bool, tmp_path: Path
) -> None:
    if not postgres_ready:
        pytest.skip("PostgreSQL is not reachable")
    directory = tmp_path / "regions.json"
    directory.write_text('{"regions": []}', encoding="utf-8")
    done = _onerecord(
        "hub", "serve", "--directory", str(directory), "--port", str(free_port()),
        "--dev-open-access", "--audit-db", POSTGRES_URL, "--audit-db-schema", MISSING,
    )  # fmt: skip
    _assert_one_line_error(done)


async def test_check_database_accepts_an_existing_schema(postgres_schema: Database) -> None:
    await check_database(postgres_schema.url, postgres_schema.schema)


async def test_check_database_names_an_unreachable_server_without_its_password() -> None:
    url = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/test"
    with pytest.raises(DatabaseUnusable) as caught:
        await check_database(url, "public", timeout=2)
    assert caught.value.exit_code == 1
    assert "hunter2" not in caught.value.message and "cannot reach" in caught.value.message
