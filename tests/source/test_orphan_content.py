"""Orphan content: a refused bundle writes no bytes; leftovers of a crash are swept.

Regression tests for issue 10 E ("every ITI-65 bundle rejected after its content was written
leaves orphan blobs; sweep_orphans is never called outside the tests; a .part file survives a
crash").
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest

from onerecord.domain import DocumentEntry
from onerecord.mhd import build_provide_bundle
from onerecord.source.access import NoAudit, OpenAccess
from onerecord.source.app import create_app
from onerecord.source.content import FolderContentStore
from onerecord.source.database import make_engine
from onerecord.source.migrate import upgrade
from onerecord.source.service import DocumentSource
from onerecord.source.store import SqlDocumentStore, StoreError
from onerecord.trust.keys import SigningKey
from onerecord.trust.publish_proof import publisher_jwk
from tests.conftest import Database
from tests.factories import make_entry, sample_pdf, synthetic_nin
from tests.source.conftest import (
    HCID,
    REPOSITORY,
    SourceServer,
    make_settings,
    source_serve_args,
)
from tests.support.servers import free_port, serve_in_thread, serve_process

FHIR = "application/fhir+json"
_HOURS_AGO = time.time() - 2 * 3600


def _pdf() -> bytes:
    return sample_pdf(text=f"orphan test {uuid.uuid4()}")


def _doc(**changes: Any) -> tuple[DocumentEntry, bytes]:
    content = _pdf()
    return make_entry(content=content, **changes), content


def _bundle(docs: list[tuple[DocumentEntry, bytes]]) -> bytes:
    bundle = build_provide_bundle(
        docs,
        source_id="urn:oid:2.16.578.1.12.4.5.100.1.9",
        submission_set_unique_id=f"2.16.578.1.12.4.5.100.1.8.{uuid.uuid4().int % 10**9}",
    )
    return orjson.dumps(bundle)


def _post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}/fhir", content=body, headers={"content-type": FHIR}, timeout=30)


def _files(root: Path) -> dict[str, float]:
    """Every file under the content folder (blobs and temp files) with its mtime."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*") if p.is_file()}


def _unknown_code(docs: list[tuple[DocumentEntry, bytes]]) -> bytes:
    body = orjson.loads(_bundle(docs))
    for e in body["entry"]:
        if e["resource"]["resourceType"] == "DocumentReference":
            e["resource"]["type"]["coding"][0]["code"] = "A99-2"
            break
    return orjson.dumps(body)


def _reused_unique_id(registered: DocumentEntry) -> list[tuple[DocumentEntry, bytes]]:
    clash = _pdf()
    return [_doc(), (make_entry(content=clash, unique_id=registered.unique_id.value), clash)]


def _replaces_unknown(_registered: DocumentEntry) -> list[tuple[DocumentEntry, bytes]]:
    return [_doc(), _doc(replaces="2.16.578.1.12.4.5.100.1.7.404404")]


def _replaces_other_patient(registered: DocumentEntry) -> list[tuple[DocumentEntry, bytes]]:
    other = synthetic_nin(1)
    return [_doc(patient_id=other), _doc(patient_id=other, replaces=registered.unique_id.value)]


def _same_entry_uuid_twice(_registered: DocumentEntry) -> list[tuple[DocumentEntry, bytes]]:
    shared = uuid.uuid4()
    return [_doc(entry_uuid=shared), _doc(entry_uuid=shared)]


def _reused_entry_uuid(registered: DocumentEntry) -> list[tuple[DocumentEntry, bytes]]:
    return [_doc(), _doc(entry_uuid=registered.entry_uuid)]


_Docs = Callable[[DocumentEntry], list[tuple[DocumentEntry, bytes]]]
REFUSALS: dict[str, tuple[_Docs, int, str]] = {
    "reused-unique-id": (_reused_unique_id, 409, "already registered for other content"),
    "replaces-unknown": (_replaces_unknown, 422, "is not registered here"),
    "replaces-other-patient": (_replaces_other_patient, 422, "belongs to another patient"),
    # Refused by the bundle parser already (a repeated fullUrl), before the registry is asked.
    "same-entry-uuid-twice": (_same_entry_uuid_twice, 400, "appears twice"),
    "reused-entry-uuid": (_reused_entry_uuid, 409, "already registered for another document"),
}


@pytest.mark.parametrize("reason", sorted(REFUSALS))
def test_bundle_refused_by_the_registry_leaves_the_content_folder_unchanged(
    source_server: SourceServer, reason: str
) -> None:
    registered, content = _doc()
    assert _post(source_server.base_url, _bundle([(registered, content)])).status_code == 200
    folder = source_server.settings.content_dir
    before = _files(folder)
    make_docs, status, expected_text = REFUSALS[reason]
    r = _post(source_server.base_url, _bundle(make_docs(registered)))
    assert r.status_code == status, r.text
    assert expected_text in r.json()["issue"][0]["diagnostics"]
    assert _files(folder) == before


def test_bundle_refused_by_the_parser_leaves_the_content_folder_unchanged(
    source_server: SourceServer,
) -> None:
    folder = source_server.settings.content_dir
    before = _files(folder)
    r = _post(source_server.base_url, _unknown_code([_doc(), _doc()]))
    assert r.status_code == 422 and "A99-2" in r.text
    r = _post(source_server.base_url, b'{"resourceType": "Bundle", ')
    assert r.status_code == 400
    assert _files(folder) == before


def test_unauthorised_publish_leaves_the_content_folder_unchanged(
    sqlite_database: Database, tmp_path: Path
) -> None:
    jwks = tmp_path / "publishers.json"
    key = SigningKey.generate(kid="ehr-1")
    jwks.write_text(json.dumps({"keys": [publisher_jwk(key, issuer="urn:oid:1.2.3.9")]}))
    port = free_port()
    settings = make_settings(
        sqlite_database,
        tmp_path,
        port,
        dev_open_access=False,
        dev_mode=False,
        issuer="http://127.0.0.1:9/sts",
        jwks_url="http://127.0.0.1:9/sts/jwks",
        publisher_jwks_file=jwks,
    )
    with serve_in_thread(create_app(settings), port=port) as url:
        r = _post(url, _bundle([_doc(), _doc()]))
        assert r.status_code == 401
    assert _files(settings.content_dir) == {}


@pytest.fixture
async def registry(database: Database) -> AsyncIterator[SqlDocumentStore]:
    engine = make_engine(database.url, schema=database.schema)
    await upgrade(engine)
    try:
        yield SqlDocumentStore(engine)
    finally:
        await engine.dispose()


@pytest.mark.anyio
async def test_failed_registry_commit_removes_the_content_it_wrote(
    registry: SqlDocumentStore,
    database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = FolderContentStore(tmp_path / "content")
    source = DocumentSource(
        settings=make_settings(database, tmp_path, 1),
        store=registry,
        content=folder,
        guard=OpenAccess(),
        recorder=NoAudit(),
    )
    shared_entry, shared = _doc()
    await source.publish(_bundle([(shared_entry, shared)]))
    before = _files(folder.root)

    async def commit_fails(*_args: object, **_kwargs: object) -> None:
        raise StoreError("the database went away during the commit")

    monkeypatch.setattr(registry, "register", commit_fails)
    # A new document, and one whose bytes are already stored for a registered entry.
    again = make_entry(content=shared, patient_id=shared_entry.patient_id.value)
    with pytest.raises(StoreError):
        await source.publish(_bundle([_doc(), (again, shared)]))
    assert set(_files(folder.root)) == set(before)  # the new blob is gone, the shared one kept
    assert await folder.exists(shared_entry.hash_sha256)


# --- the sweep -------------------------------------------------------------------------------


def _leftovers(content_dir: Path) -> dict[str, Path]:
    """What a crash leaves, aged beyond the grace period, and what an upload in flight has."""
    store = FolderContentStore(content_dir)
    orphan = _pdf()
    young = _pdf()
    paths = {
        "old-orphan": store.path_of(hashlib.sha256(orphan).hexdigest()),
        "young-blob": store.path_of(hashlib.sha256(young).hexdigest()),
        "old-part": store.tmp / f"{uuid.uuid4().hex}.part",
        "young-part": store.tmp / f"{uuid.uuid4().hex}.part",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    paths["old-orphan"].write_bytes(orphan)
    paths["young-blob"].write_bytes(young)
    paths["old-part"].write_bytes(orphan[:100])
    paths["young-part"].write_bytes(young[:100])
    for name in ("old-orphan", "old-part"):
        os.utime(paths[name], (_HOURS_AGO, _HOURS_AGO))
    return paths


async def _register_old_document(database: Database, content_dir: Path) -> Path:
    """A registered document whose blob is older than the grace period (must survive)."""
    entry, content = _doc(home_community_id=HCID, repository_unique_id=REPOSITORY)
    store = FolderContentStore(content_dir)
    await store.put(content)
    engine = make_engine(database.url, schema=database.schema)
    try:
        await upgrade(engine)
        await SqlDocumentStore(engine).register([entry], submission_set=None)
    finally:
        await engine.dispose()
    path = store.path_of(entry.hash_sha256)
    os.utime(path, (_HOURS_AGO, _HOURS_AGO))
    return path


def _wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_source_process_sweeps_crash_leftovers_at_start_up_but_not_uploads_in_flight(
    database: Database, tmp_path: Path
) -> None:
    content_dir = tmp_path / "content"
    registered = anyio.run(_register_old_document, database, content_dir)
    paths = _leftovers(content_dir)
    port = free_port()
    args = source_serve_args(database, content_dir, port, "--dev", "--dev-open-access")
    env = {"ONERECORD_SOURCE_CONTENT_SWEEP_GRACE_S": "600"}
    with serve_process(args, port, env=env):
        _wait_until(lambda: not paths["old-orphan"].exists() and not paths["old-part"].exists())
    assert registered.exists()  # referenced by the registry
    assert paths["young-blob"].exists() and paths["young-part"].exists()  # within the grace


def test_scheduled_sweep_removes_orphans_left_while_running(
    sqlite_database: Database, tmp_path: Path
) -> None:
    port = free_port()
    settings = make_settings(
        sqlite_database,
        tmp_path,
        port,
        content_sweep_grace_s=600,
        content_sweep_interval_s=0.2,
    )
    with serve_in_thread(create_app(settings), port=port):
        time.sleep(0.3)  # past the start-up sweep: what follows is the scheduled one
        paths = _leftovers(settings.content_dir)
        _wait_until(lambda: not paths["old-orphan"].exists() and not paths["old-part"].exists())
        assert paths["young-blob"].exists() and paths["young-part"].exists()


def test_sweep_settings_refuse_nonsense(sqlite_database: Database, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        make_settings(sqlite_database, tmp_path, 1, content_sweep_interval_s=0)
    with pytest.raises(ValueError):
        make_settings(sqlite_database, tmp_path, 1, content_sweep_grace_s=-1)
