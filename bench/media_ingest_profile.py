"""Where one stored instance's milliseconds go inside the archive (issue 14), stage by stage.

Builds the archive's service as `onerecord media serve` does (SQLite file, content folder, SQL
audit chain with group commit) in this process, stores `--instances` CT slices one at a time
(and then `--concurrency` at once), and times each stage by wrapping the collaborators: parse +
DICOM JSON (read_instance), SHA-256, content write (incl. fsync), registration transaction, audit
append. With `--cprofile` prints the top functions by cumulative time as well.
Usage: .venv/bin/python bench/media_ingest_profile.py [--instances 100] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import io
import pstats
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

from pydicom.filewriter import dcmwrite

from onerecord.audit import SqlAuditSink
from onerecord.media import service as service_module
from onerecord.media.content import FolderInstanceStore
from onerecord.media.database import make_engine
from onerecord.media.migrate import upgrade
from onerecord.media.service import MediaService
from onerecord.media.store import SqlMetadataStore
from onerecord.synth.dicom import DicomPatient, ct_study
from onerecord.synth.numbers import synthetic_fnr

TIMES: dict[str, list[float]] = defaultdict(list)


def _timed(name: str, fn: Any) -> Any:
    if asyncio.iscoroutinefunction(fn):

        async def wrapped_async(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return await fn(*a, **k)
            finally:
                TIMES[name].append((time.perf_counter() - t) * 1000)

        return wrapped_async

    def wrapped(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            TIMES[name].append((time.perf_counter() - t) * 1000)

    return wrapped


def _files(n: int, size: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    born = date(1980, 1, 1)
    patient = DicomPatient(synthetic_fnr(rng, born), "Testesen", "Profil", born, "F")
    study = ct_study(patient, rng, study_date=date(2026, 11, 1), slices=n, size=size)
    out = []
    for ds in study.instances:
        buf = io.BytesIO()
        dcmwrite(buf, ds, enforce_file_format=True)
        out.append(buf.getvalue())
    return out


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="media-profile-"))
    engine = make_engine(f"sqlite:///{work / 'archive.db'}")
    await upgrade(engine)
    audit = SqlAuditSink(engine, "profile")
    try:
        store = SqlMetadataStore(engine, audit=audit)
    except TypeError:  # the archive before group commit (to compare): the audit apart
        store = SqlMetadataStore(engine)
    content = FolderInstanceStore(work / "content")
    service = MediaService(
        store=store, content=content, audit=audit, source_id="profile", home_community_id="x"
    )
    service_module.read_instance = _timed("parse + DICOM JSON", service_module.read_instance)
    service_module.hashlib = type(  # type: ignore[attr-defined]
        "H", (), {"sha256": staticmethod(_timed("sha256 (stripe)", hashlib.sha256))}
    )
    content.put = _timed("content put (hash, write, fsync, rename)", content.put)  # type: ignore[method-assign]
    store.register = _timed("register transaction", store.register)  # type: ignore[method-assign]
    audit.append = _timed("audit append", audit.append)  # type: ignore[method-assign]
    files = _files(args.instances, args.size, 1)
    profile = cProfile.Profile() if args.cprofile else None
    if profile:
        profile.enable()
    total = []
    for i, data in enumerate(files):
        t = time.perf_counter()
        await service.store_instance(data, calling_ae_title="P", correlation_id=f"c{i}")
        total.append((time.perf_counter() - t) * 1000)
    if profile:
        profile.disable()
    print(f"sequential, {len(files)} instances of {len(files[0])} bytes, ms per instance (median):")
    for name, values in TIMES.items():
        print(f"  {name:45s} {statistics.median(values):7.2f}")
    print(f"  {'total store_instance':45s} {statistics.median(total):7.2f}")
    TIMES.clear()
    files = _files(args.instances, args.size, 2)
    t = time.perf_counter()
    sem = asyncio.Semaphore(args.concurrency)

    async def one(i: int, data: bytes) -> None:
        async with sem:
            await service.store_instance(data, calling_ae_title="P", correlation_id=f"d{i}")

    await asyncio.gather(*(one(i, d) for i, d in enumerate(files)))
    elapsed = time.perf_counter() - t
    print(f"{args.concurrency} concurrent: {len(files) / elapsed:.1f} instances/s")
    for name, values in TIMES.items():
        print(f"  {name:45s} {statistics.median(values):7.2f}")
    if hasattr(store, "close"):
        await store.close()
    await engine.dispose()
    if profile:
        pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--cprofile", action="store_true")
    asyncio.run(main(parser.parse_args()))
