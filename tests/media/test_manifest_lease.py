"""Two manifest workers on one archive database publish each manifest exactly once.

Two `ManifestPublisher`s, each with its own engine (as two archive processes, or a restart while
the old process still runs), take turns at the same outbox on SQLite and on PostgreSQL and send
to a real document source (uvicorn, its publisher JWKS) behind a counter of ITI-65 requests per
uniqueId. The source answers slowly (50 ms), so without a lease both workers would send every
version they both found due.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from onerecord.domain import OrganisationNumber
from onerecord.media import MediaSettings
from onerecord.media.database import make_engine
from onerecord.media.manifest import ArchiveIdentity
from onerecord.media.manifest_store import SqlManifestOutbox
from onerecord.media.publisher import ManifestPublisher
from onerecord.media.service import StoreOutcome
from onerecord.source.app import create_app as create_source
from onerecord.source.settings import SourceSettings
from onerecord.trust.keys import SigningKey
from onerecord.trust.publish_proof import publisher_jwk
from tests.conftest import Database
from tests.media.conftest import Archive, make_files
from tests.source.trust_harness import HCID, REPOSITORY
from tests.support.servers import free_port, serve_in_thread

pytestmark = pytest.mark.anyio

ISSUER = "urn:oid:2.16.578.1.12.4.5.100.1.42"
ARCHIVE = ArchiveIdentity(
    home_community_id=HCID,
    organisation_name="UNN",
    organisation_number=OrganisationNumber("998123453"),
    dicomweb_base_url="http://archive.test:8042/dicomweb",
)


class CountingSource:
    """The source's ASGI app behind a counter of ITI-65 POSTs per uniqueId, answering slowly."""

    def __init__(self, app: Any, delay: float) -> None:
        self.app = app
        self.delay = delay
        self.posts: Counter[str] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        unique_id = orjson.loads(body)["entry"][1]["resource"]["masterIdentifier"]["value"]
        self.posts[unique_id] += 1
        await asyncio.sleep(self.delay)  # both workers are in flight at once
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


@contextmanager
def counting_source(tmp: Path, key: SigningKey) -> Iterator[tuple[str, CountingSource, Path]]:
    jwks = tmp / "publishers.json"
    jwks.write_text(json.dumps({"keys": [publisher_jwk(key, issuer=ISSUER, archive=True)]}))
    port = free_port()
    settings = SourceSettings(
        home_community_id=HCID,
        repository_unique_id=REPOSITORY,
        db_url=f"sqlite:///{tmp / 'source-registry.db'}",
        content_dir=tmp / "source-content",
        public_base_url=f"http://127.0.0.1:{port}",
        issuer="http://127.0.0.1:9",
        jwks_url="http://127.0.0.1:9/jwks",
        publisher_jwks_file=jwks,
    )
    counting = CountingSource(create_source(settings), delay=0.05)
    with serve_in_thread(counting, port=port) as url:  # type: ignore[arg-type]
        yield url, counting, tmp / "source-registry.db"


def _publisher(
    outbox: SqlManifestOutbox, http: httpx.AsyncClient, url: str, key: SigningKey, **extra: Any
) -> ManifestPublisher:
    return ManifestPublisher(
        outbox=outbox,
        archive=ARCHIVE,
        http=http,
        source_url=url,
        audience=HCID,
        issuer=ISSUER,
        key=key,
        quiet=0,
        **extra,
    )


async def _store_studies(archive: Archive, tmp: Path) -> set[str]:
    studies: set[str] = set()
    for seed in (3, 4, 5):
        files = make_files(tmp / f"dicom-{seed}", seed=seed)
        for path in files.paths:
            result = await archive.service.store_instance(
                path.read_bytes(), calling_ae_title="CT1", correlation_id="dimse:CT1:1"
            )
            assert result.outcome is StoreOutcome.STORED
        studies |= {s.study_instance_uid for s in files.studies}
    return studies


async def test_two_workers_on_one_database_publish_each_manifest_once(
    archive: Archive, database: Database, tmp_path: Path
) -> None:
    studies = await _store_studies(archive, tmp_path)
    assert len(studies) >= 6
    key = SigningKey.generate(kid="archive-publisher")
    engines = [make_engine(database.url, schema=database.schema) for _ in range(2)]
    try:
        with counting_source(tmp_path, key) as (url, source, registry_db):
            async with httpx.AsyncClient(timeout=30) as http:
                workers = [_publisher(SqlManifestOutbox(e), http, url, key) for e in engines]
                outbox = SqlManifestOutbox(engines[0])
                for _ in range(20):
                    await asyncio.gather(*(w.publish_due() for w in workers))
                    if await outbox.pending() == 0:
                        break
                assert await outbox.pending() == 0
            with sqlite3.connect(registry_db) as conn:
                (registered,) = conn.execute("SELECT count(*) FROM document_entry").fetchone()
    finally:
        for engine in engines:
            await engine.dispose()
    assert set(source.posts) == {f"urn:oid:{s}" for s in studies}
    assert [u for u, n in source.posts.items() if n != 1] == []  # each sent exactly once
    assert registered == len(studies)


async def test_a_lease_left_by_a_dead_worker_is_taken_over_when_it_runs_out(
    archive: Archive, database: Database, tmp_path: Path
) -> None:
    studies = await _store_studies(archive, tmp_path)
    key = SigningKey.generate(kid="archive-publisher")
    engine = make_engine(database.url, schema=database.schema)
    outbox = SqlManifestOutbox(engine)
    now = datetime.now(UTC)
    study = sorted(studies)[0]
    try:
        # The dead worker took the study and never let go (killed mid-send).
        assert await outbox.claim(
            study, worker="dead:1", now=now, quiet=timedelta(0), lease=timedelta(seconds=60)
        )
        assert not await outbox.claim(
            study, worker="other:2", now=now, quiet=timedelta(0), lease=timedelta(seconds=60)
        )
        with counting_source(tmp_path, key) as (url, source, _):
            async with httpx.AsyncClient(timeout=30) as http:
                clock = [now + timedelta(seconds=1)]
                worker = _publisher(outbox, http, url, key, lease=60, clock=lambda: clock[0])
                await worker.publish_due()
                assert f"urn:oid:{study}" not in source.posts  # still the dead worker's
                assert len(source.posts) == len(studies) - 1
                state = await outbox.state(study)
                assert state is not None and state["claimed_by"] == "dead:1"
                clock[0] = now + timedelta(seconds=61)  # the lease has run out
                await worker.publish_due()
        assert source.posts[f"urn:oid:{study}"] == 1
        state = await outbox.state(study)
        assert state is not None and state["outcome"] == "published"
        assert state["claimed_by"] is None and state["lease_until"] is None
    finally:
        await engine.dispose()


async def test_a_lease_shorter_than_one_request_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="manifest_lease_s"):
        MediaSettings(
            home_community_id=HCID,
            content_dir=tmp_path,
            manifest_timeout_s=30,
            manifest_lease_s=30,
        )
    assert MediaSettings(home_community_id=HCID, content_dir=tmp_path).manifest_lease_s == 120
