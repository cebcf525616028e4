"""Crash between content write and registry commit; corrupted bytes; streaming memory."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import anyio
import httpx
import orjson
import psutil
import pytest

from onerecord.mhd import build_provide_bundle
from onerecord.source.content import FolderContentStore
from onerecord.source.database import make_engine
from onerecord.source.store import SqlDocumentStore
from tests.conftest import Database
from tests.factories import make_entry, sample_pdf
from tests.source.conftest import HCID, REPOSITORY, source_serve_args
from tests.support.servers import free_port, serve_process

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"


OPEN_ACCESS = ("--dev", "--dev-open-access")


def _blobs(content_dir: Path) -> list[Path]:
    """Files under their final content-addressed names (not the temp folder)."""
    return [
        p
        for p in content_dir.rglob("*")
        if p.is_file() and p.relative_to(content_dir).parts[0] != "tmp"
    ]


def test_crash_between_content_write_and_registry_commit(
    database: Database, tmp_path: Path
) -> None:
    content_dir = tmp_path / "content"
    content = sample_pdf(text="written but never registered")
    entry = make_entry(content=content)
    bundle = build_provide_bundle(
        [(entry, content)], source_id="urn:oid:1.2.3", submission_set_unique_id="1.2.3.4"
    )
    port = free_port()
    crash_args = [
        "-m",
        "tests.source.crashing_source",
        database.url,
        database.schema or "",
        str(content_dir),
        str(port),
    ]
    with serve_process(crash_args, port) as proc:
        with pytest.raises(httpx.HTTPError):
            httpx.post(
                f"http://127.0.0.1:{port}/fhir",
                content=orjson.dumps(bundle),
                headers={"content-type": "application/fhir+json"},
                timeout=30,
            )
        assert proc.wait(timeout=10) == 137

    # The bytes reached the folder under their final name, atomically, or not at all …
    blobs = _blobs(content_dir)
    assert len(blobs) == 1
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == p.name for p in blobs)

    port = free_port()
    with serve_process(source_serve_args(database, content_dir, port, *OPEN_ACCESS), port):
        base = f"http://127.0.0.1:{port}/fhir"
        found = httpx.get(
            f"{base}/DocumentReference",
            params={"patient.identifier": f"{FNR}|{entry.patient_id.value}"},
        ).json()
        assert found["total"] == 0  # … and nothing was registered.

    async def sweep() -> int:
        engine = make_engine(database.url, schema=database.schema)
        store = SqlDocumentStore(engine)
        try:

            async def referenced(sha256: str) -> bool:
                return await store.has_content(sha256)

            return await FolderContentStore(content_dir).sweep_orphans(
                referenced, older_than=timedelta(0)
            )
        finally:
            await engine.dispose()

    removed = anyio.run(sweep)
    assert removed == len(blobs)
    assert not _blobs(content_dir)


_MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
_BLOCK = 1024 * 1024


def _video_block(i: int) -> bytes:
    head = _MP4_HEAD if i == 0 else b""
    return head + bytes([i % 251]) * (_BLOCK - len(head))


async def _register_large_video(database: Database, content_dir: Path, megabytes: int) -> str:
    """Put a large video straight into the repository and registry; return its retrieve path."""
    from onerecord.domain import Coding, HomeCommunityId, RepositoryUniqueId
    from onerecord.mhd import RetrieveKey

    sha256, sha1 = hashlib.sha256(), hashlib.sha1()
    for i in range(megabytes):
        block = _video_block(i)
        sha256.update(block)
        sha1.update(block)

    async def blocks() -> AsyncIterator[bytes]:
        for i in range(megabytes):
            yield _video_block(i)

    ref = await FolderContentStore(content_dir).put(blocks())
    assert ref.sha256 == sha256.hexdigest()
    v = "urn:oid:2.16.578.1.12.4.1.1."
    entry = make_entry(
        content=b"",
        mime_type="video/mp4",
        size=megabytes * _BLOCK,
        hash_sha256=sha256.hexdigest(),
        hash_sha1=sha1.hexdigest(),
        class_code=Coding(v + "9602", "E00-1"),
        type_code=Coding(v + "9602", "E01-2"),
        format_code=Coding("urn:oid:1.3.6.1.4.1.19376.1.2.3", "urn:no:ehelse:document:video"),
        title="Ultralydvideo",
        home_community_id=HCID,
        repository_unique_id=REPOSITORY,
    )
    engine = make_engine(database.url, schema=database.schema)
    try:
        from onerecord.source.migrate import upgrade

        await upgrade(engine)
        await SqlDocumentStore(engine).register([entry], submission_set=None)
    finally:
        await engine.dispose()
    key = RetrieveKey(
        HomeCommunityId.parse(HCID), RepositoryUniqueId.parse(REPOSITORY), entry.unique_id
    )
    return f"/fhir/Binary/{key.token()}"


@pytest.mark.slow
def test_retrieving_500_mb_keeps_server_memory_growth_under_50_mb(
    sqlite_database: Database, tmp_path: Path
) -> None:
    content_dir = tmp_path / "content"
    megabytes = 500
    path = anyio.run(_register_large_video, sqlite_database, content_dir, megabytes)
    port = free_port()
    args = source_serve_args(sqlite_database, content_dir, port, *OPEN_ACCESS)
    with serve_process(args, port) as proc:
        server = psutil.Process(proc.pid)
        base = f"http://127.0.0.1:{port}"
        httpx.get(f"{base}/fhir/metadata")  # warm up
        baseline = server.memory_info().rss
        peak = baseline
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, server.memory_info().rss)
                done.wait(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        digest = hashlib.sha256()
        received = 0
        try:
            with httpx.stream("GET", f"{base}{path}", timeout=120) as r:
                assert r.status_code == 200
                for chunk in r.iter_bytes(_BLOCK):
                    digest.update(chunk)
                    received += len(chunk)
        finally:
            done.set()
            sampler.join()
        assert received == megabytes * _BLOCK
        growth_mb = (peak - baseline) / (1024 * 1024)
        assert growth_mb < 50, f"server RSS grew {growth_mb:.1f} MB while streaming"
