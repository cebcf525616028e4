from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from onerecord.source.app import create_app
from onerecord.source.settings import SourceSettings
from tests.conftest import Database
from tests.support.servers import free_port, serve_in_thread

HCID = "urn:oid:2.16.578.1.12.4.5.100.1"
REPOSITORY = "2.16.578.1.12.4.5.100.1.2"


@dataclass(frozen=True)
class SourceServer:
    base_url: str
    settings: SourceSettings

    @property
    def fhir(self) -> str:
        return f"{self.base_url}/fhir"


def source_serve_args(database: Database, content: Path, port: int, *options: str) -> list[str]:
    """`python -m onerecord.cli source serve …` for a source process on `port`, plus `options`."""
    args = [
        "-m",
        "onerecord.cli",
        "source",
        "serve",
        "--home-community-id",
        HCID,
        "--repository-unique-id",
        REPOSITORY,
        "--db",
        database.url,
        "--content",
        str(content),
        "--port",
        str(port),
        *options,
    ]
    if database.schema:
        args += ["--db-schema", database.schema]
    return args


def make_settings(
    database: Database, tmp_path: Path, port: int, **overrides: object
) -> SourceSettings:
    values: dict[str, object] = {
        "region": "Helse Sør-Øst",
        "home_community_id": HCID,
        "repository_unique_id": REPOSITORY,
        "db_url": database.url,
        "db_schema": database.schema,
        "content_dir": tmp_path / "content",
        "public_base_url": f"http://127.0.0.1:{port}",
        "max_body_bytes": 8 * 1024 * 1024,
        # The storage-level API tests run without the trust framework (tests/source/test_trust_*
        # run with it).
        "dev_mode": True,
        "dev_open_access": True,
    }
    values.update(overrides)
    return SourceSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def source_server(database: Database, tmp_path: Path) -> Iterator[SourceServer]:
    port = free_port()
    settings = make_settings(database, tmp_path, port)
    with serve_in_thread(create_app(settings), port=port) as url:
        yield SourceServer(url, settings)
