"""The orphan sweep runs while the archive runs, and never takes the bytes of a store in flight.

The interleavings of a store and a sweep are played out step by step on the folder store
(`referenced` stands for the registry and lets a test act at the moment the sweep asks it); the
whole path runs through the archive's service on SQLite and PostgreSQL, and the periodic sweep
in a real archive (uvicorn, DIMSE listener, SQLite) with `orphan_sweep_interval_s`.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from onerecord.audit import MemoryAuditSink
from onerecord.media import FolderInstanceStore, MediaService, MediaSettings, StoreOutcome
from onerecord.media.app import create_app
from onerecord.media.database import make_engine
from onerecord.media.migrate import upgrade
from onerecord.media.store import SqlMetadataStore
from tests.media.conftest import Archive, SynthFiles
from tests.media.test_store import CORRELATION
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.anyio

BLOB = os.urandom(50_000)
SHA = hashlib.sha256(BLOB).hexdigest()
GRACE = timedelta(hours=1)
HOURS_AGO = time.time() - 7200


def _age(path: Path) -> None:
    os.utime(path, (HOURS_AGO, HOURS_AGO))


def _files(root: Path) -> set[str]:
    return {p.name for p in root.rglob("*") if p.is_file()}


async def _orphan(content: FolderInstanceStore) -> Path:
    """Bytes an earlier crash left unregistered, older than the grace."""
    await content.put(BLOB)
    path = content.path_of(SHA)
    _age(path)
    return path


async def test_an_old_orphan_stored_again_is_not_swept_before_it_is_registered(
    tmp_path: Path,
) -> None:
    """The store finds the bytes already there: it renews their time, so the grace protects
    them until the register that follows (without the renewal the sweep removes them)."""
    content = FolderInstanceStore(tmp_path / "content")
    path = await _orphan(content)
    await content.put(BLOB)  # the store of the same instance, not yet registered

    async def registered(_sha: str) -> bool:
        return False

    assert await content.sweep_orphans(registered, GRACE) == 0
    assert path.read_bytes() == BLOB


def _store_when_asked(
    content: FolderInstanceStore, *, at_call: int
) -> tuple[Callable[[str], Awaitable[bool]], list[str]]:
    """A registry in which a store of BLOB runs at the sweep's `at_call`-th question: its bytes
    are written then, its register completes just after the answer (still "not referenced");
    later questions are answered "referenced"."""
    asked: list[str] = []

    async def referenced(sha: str) -> bool:
        asked.append(sha)
        if len(asked) == at_call:
            await content.put(BLOB)
        return len(asked) > at_call

    return referenced, asked


@pytest.mark.parametrize(
    ("at_call", "removed"),
    [
        # The store renews the file; the sweep, looking again after setting it aside, puts it back.
        pytest.param(1, 0, id="store-before-the-set-aside"),
        # The store finds no file and writes its own; the sweep removes only the old copy.
        pytest.param(2, 1, id="store-after-the-set-aside"),
    ],
)
async def test_a_store_during_the_sweep_keeps_its_bytes(
    tmp_path: Path, at_call: int, removed: int
) -> None:
    """The sweep finds an old unreferenced file; a store of the same bytes runs while the sweep
    decides (before or after it sets the file aside); the file is there afterwards."""
    content = FolderInstanceStore(tmp_path / "content")
    path = await _orphan(content)
    referenced, asked = _store_when_asked(content, at_call=at_call)
    assert await content.sweep_orphans(referenced, GRACE) == removed
    assert asked and path.read_bytes() == BLOB
    assert _files(content.root) == {f"{SHA}.dcm"}  # nothing left aside


async def test_an_unreferenced_old_file_is_still_swept(tmp_path: Path) -> None:
    content = FolderInstanceStore(tmp_path / "content")
    path = await _orphan(content)

    async def nothing(_sha: str) -> bool:
        return False

    assert await content.sweep_orphans(nothing, GRACE) == 1
    assert not path.exists() and _files(content.root) == set()


async def test_a_file_a_crashed_sweep_set_aside_is_put_back_or_removed(tmp_path: Path) -> None:
    content = FolderInstanceStore(tmp_path / "content")
    path = await _orphan(content)
    aside = path.with_name(f".{path.name}.{'0' * 32}.sweep")
    os.rename(path, aside)

    async def referenced(_sha: str) -> bool:
        return True

    # Referenced and its name free: put back, whatever its age.
    assert await content.sweep_orphans(referenced, GRACE) == 0
    assert path.read_bytes() == BLOB and not aside.exists()
    # Not referenced and old: removed.
    os.rename(path, aside)

    async def nothing(_sha: str) -> bool:
        return False

    assert await content.sweep_orphans(nothing, GRACE) == 1
    assert _files(content.root) == set()


async def test_through_the_service_an_orphan_stored_again_survives_the_sweep(
    archive: Archive, synth_files: SynthFiles
) -> None:
    """The whole path: bytes left by a crash, the same instance stored (and registered) later,
    a sweep, and the instance reads back."""
    data = synth_files.paths[0].read_bytes()
    left = await archive.content.put(data)
    _age(archive.content.path_of(left.sha256))
    stored = await archive.service.store_instance(
        data, calling_ae_title="CT1", correlation_id=CORRELATION
    )
    assert stored.outcome is StoreOutcome.STORED
    assert await archive.content.sweep_orphans(archive.store.is_referenced, GRACE) == 0
    assert await archive.content.get(left.sha256) == data


async def _registered_old_instance(settings: MediaSettings, data: bytes) -> Path:
    """An instance stored and registered before the archive starts, its file past the grace."""
    engine = make_engine(settings.db_url)
    await upgrade(engine)
    store = SqlMetadataStore(engine)
    content = FolderInstanceStore(settings.content_dir)
    service = MediaService(
        store=store,
        content=content,
        audit=MemoryAuditSink(),
        source_id="test",
        home_community_id=settings.home_community_id,
    )
    try:
        result = await service.store_instance(
            data, calling_ae_title="CT1", correlation_id=CORRELATION
        )
        assert result.outcome is StoreOutcome.STORED
        (path,) = (p for p in settings.content_dir.rglob("*.dcm"))
    finally:
        await store.close()
        await engine.dispose()
    _age(path)
    return path


def test_the_running_archive_sweeps_every_interval(tmp_path: Path, synth_files: SynthFiles) -> None:
    settings = MediaSettings(
        home_community_id="urn:oid:2.16.578.1.12.4.5.100.4",
        db_url=f"sqlite:///{tmp_path / 'archive.db'}",
        content_dir=tmp_path / "content",
        dimse_port=0,
        orphan_grace_s=600,
        orphan_sweep_interval_s=0.2,
    )
    kept = anyio.run(_registered_old_instance, settings, synth_files.paths[0].read_bytes())
    content = FolderInstanceStore(settings.content_dir)
    with serve_in_thread(create_app(settings)):
        # Left while it runs, after the start-up sweep: only a later sweep can take them.
        orphan = anyio.run(_orphan, content)
        torn = orphan.parent / f".{SHA}.{'1' * 32}.part"
        torn.write_bytes(b"half")
        _age(torn)
        young = content.path_of(hashlib.sha256(b"young").hexdigest())
        young.parent.mkdir(parents=True, exist_ok=True)
        young.write_bytes(b"young")
        deadline = time.monotonic() + 30
        while orphan.exists() or torn.exists():
            assert time.monotonic() < deadline, "the periodic sweep did not run"
            time.sleep(0.05)
        assert kept.exists() and young.exists()


def test_the_sweep_interval_is_checked() -> None:
    for bad in (0, -1, 8 * 86400):
        with pytest.raises(ValueError):
            MediaSettings(home_community_id="urn:oid:1.2.3", orphan_sweep_interval_s=bad)
