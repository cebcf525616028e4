"""ITI-65 through the API with group commit on (the default): concurrent single-document bundles.

Each bundle is answered alone (200, 409, 422 or 500) whatever else shares its transaction; the
bytes of every registered entry are on disk before the registry row that references them is
inserted; a bundle whose content cannot be stored is not registered and fails no other. On
SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest

from onerecord.domain import FNR_SYSTEM, DocumentEntry
from onerecord.mhd import build_provide_bundle
from onerecord.source.content import FolderContentStore
from onerecord.source.store import SqlDocumentStore
from tests.factories import make_entry, sample_pdf
from tests.source.conftest import SourceServer

FHIR = "application/fhir+json"


def document(text: str, **overrides: Any) -> tuple[DocumentEntry, bytes]:
    content = sample_pdf(text=text)
    return make_entry(content=content, **overrides), content


def post(server: SourceServer, docs: Sequence[tuple[DocumentEntry, bytes]]) -> httpx.Response:
    bundle = build_provide_bundle(
        list(docs),
        source_id="urn:oid:2.16.578.1.12.4.5.100.1.9",
        submission_set_unique_id=f"2.25.{int(hashlib.sha256(docs[0][1]).hexdigest()[:24], 16)}",
    )
    return httpx.post(
        server.fhir, content=orjson.dumps(bundle), headers={"content-type": FHIR}, timeout=60
    )


def post_all(
    server: SourceServer, bundles: Sequence[Sequence[tuple[DocumentEntry, bytes]]]
) -> list[int]:
    with ThreadPoolExecutor(len(bundles)) as pool:
        return [r.status_code for r in pool.map(lambda b: post(server, b), bundles)]


def total(server: SourceServer, patient: str) -> int:
    r = httpx.get(
        f"{server.fhir}/DocumentReference",
        params={"patient.identifier": f"urn:oid:{FNR_SYSTEM}|{patient}", "_summary": "count"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def test_concurrent_bundles_are_answered_each_alone_with_content_before_the_row(
    source_server: SourceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert source_server.settings.registry_group_commit
    content = FolderContentStore(source_server.settings.content_dir)
    original = SqlDocumentStore._insert
    inserted: list[str] = []
    without_bytes: list[str] = []

    async def checking_insert(self: SqlDocumentStore, conn: Any, new: Any) -> list[int]:
        for entry in new:
            inserted.append(entry.unique_id.value)
            if not content.path_of(entry.hash_sha256).is_file():
                without_bytes.append(entry.unique_id.value)
        return await original(self, conn, new)

    monkeypatch.setattr(SqlDocumentStore, "_insert", checking_insert)
    first = document("registered first")
    assert post(source_server, [first]).status_code == 200
    patient = first[0].patient_id.value
    good = [[document(f"good {i}")] for i in range(10)]
    clash = document("other content, same uniqueId", unique_id=first[0].unique_id.value)
    orphan_rplc = document("replaces nothing", replaces="2.25.42")
    bundles = [*good[:5], [clash], *good[5:8], [orphan_rplc], *good[8:]]
    statuses = post_all(source_server, bundles)
    assert statuses == [200] * 5 + [409] + [200] * 3 + [422] + [200] * 2
    assert without_bytes == []
    assert len(inserted) == 11
    assert total(source_server, patient) == 11
    for ((entry, _),) in good:
        assert content.path_of(entry.hash_sha256).is_file()
    # Refused before a byte was written.
    for entry, _ in (clash, orphan_rplc):
        assert not content.path_of(entry.hash_sha256).exists()


def test_a_bundle_whose_content_fails_is_not_registered_and_fails_no_other(
    source_server: SourceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = document("the disk refuses this one")
    original = FolderContentStore.add

    async def failing_add(self: FolderContentStore, blob: bytes) -> bool:
        if blob == broken[1]:
            raise OSError("no space left on device")
        return await original(self, blob)

    monkeypatch.setattr(FolderContentStore, "add", failing_add)
    good = [[document(f"fine {i}")] for i in range(6)]
    statuses = post_all(source_server, [*good[:3], [broken], *good[3:]])
    assert statuses == [200, 200, 200, 500, 200, 200, 200]
    assert total(source_server, broken[0].patient_id.value) == 6
    r = httpx.get(
        f"{source_server.fhir}/DocumentReference",
        params={
            "patient.identifier": f"urn:oid:{FNR_SYSTEM}|{broken[0].patient_id.value}",
            "identifier": f"urn:ietf:rfc:3986|{broken[0].unique_id.urn}",
        },
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["total"] == 0
