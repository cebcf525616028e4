"""Benchmark a large clip through the archive: STOW-RS in, rendered video/mp4 out, RSS watched.

Builds an MP4 of `--size-mb` MiB: a one-second H.264 clip made by Debian's FFmpeg (a test and
bench peer, never a dependency of src/) with a `free` box appended — a valid MP4 whose offsets
are unchanged — and sends it as a JSON STOW-RS request (metadata part + `video/mp4` part)
generated chunk by chunk, never held, through `DicomWebService.store` (the multipart parser,
the spool, the MP4 check, the Part 10 stream into the content store, SQLite registration,
audit). Then reads it back as `rendered` does (`DicomWebService.video`, `range_chunks`): the
whole MP4, and a 1 MiB range in the middle. Below HTTP: no uvicorn, no trust (the 200 MiB test
in tests/media/test_wic.py goes through both).

Prints, and writes to bench/results/media_video.json: seconds and MiB/s for the store and the
read, the peak growth of this process's resident set during each (sampled every 10 ms from
/proc), and whether the bytes read back are the bytes sent (SHA-256).
Usage: .venv/bin/python bench/media_video.py [--size-mb 2048] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from onerecord.audit import MemoryAuditSink  # noqa: E402
from onerecord.media import (  # noqa: E402
    FolderInstanceStore,
    MediaService,
    SqlMetadataStore,
    qido_store,  # noqa: E402
)
from onerecord.media.database import make_engine  # noqa: E402
from onerecord.media.dicomweb import DicomWebService  # noqa: E402
from onerecord.media.migrate import upgrade  # noqa: E402
from onerecord.media.service import AuditCaller  # noqa: E402
from onerecord.synth.numbers import synthetic_fnr  # noqa: E402

FFMPEG = "/usr/bin/ffmpeg"
BOUNDARY = "b3nch"
MIB = 1024 * 1024


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Peak:
    def __enter__(self) -> _Peak:
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _clip(folder: Path) -> bytes:
    path = folder / "clip.mp4"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"]
        + ["testsrc=size=640x360:rate=25", "-t", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p"]
        + [str(path)],
        check=True,
        timeout=300,
    )
    return path.read_bytes()


def clip_metadata(patient: str) -> dict[str, Any]:
    """The DICOM JSON of the benchmark's clip (a lower-leg photo series), its bytes by
    BulkDataURI `clip`; bench/media.py's video section sends the same."""
    return {
        "00100020": {"vr": "LO", "Value": [patient]},
        "00082218": {
            "vr": "SQ",
            "Value": [
                {
                    "00080100": {"vr": "SH", "Value": ["30021000"]},
                    "00080102": {"vr": "SH", "Value": ["SCT"]},
                    "00080104": {"vr": "LO", "Value": ["Lower leg"]},
                }
            ],
        },
        "00204000": {"vr": "LT", "Value": ["benchmark clip"]},
        "7FE00010": {"vr": "OB", "BulkDataURI": "clip"},
    }


def _metadata(patient: str) -> bytes:
    return orjson.dumps([clip_metadata(patient)])


async def _body(patient: str, clip: bytes, free: bytes, zeros: int) -> AsyncIterator[bytes]:
    yield (
        f"--{BOUNDARY}\r\nContent-Type: application/dicom+json\r\n\r\n".encode()
        + _metadata(patient)
        + f"\r\n--{BOUNDARY}\r\nContent-Type: video/mp4\r\nContent-Location: clip\r\n\r\n".encode()
    )
    yield clip
    yield free
    zero = bytes(MIB)
    left = zeros
    while left:
        step = min(left, MIB)
        yield zero[:step]
        left -= step
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _expected(clip: bytes, free: bytes, zeros: int) -> str:
    digest = hashlib.sha256(clip + free)
    zero = bytes(MIB)
    left = zeros
    while left:
        step = min(left, MIB)
        digest.update(zero[:step])
        left -= step
    return digest.hexdigest()


async def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    clip = _clip(folder)
    total = args.size_mb * MIB
    extra = total - len(clip)
    free = struct.pack(">I4s", extra, b"free")
    zeros = extra - 8
    engine = make_engine(f"sqlite:///{folder / 'media.db'}")
    await upgrade(engine)
    content = FolderInstanceStore(folder / "content")
    media = MediaService(
        store=SqlMetadataStore(engine),
        content=content,
        audit=MemoryAuditSink(),
        source_id="bench#media",
        home_community_id="urn:oid:2.16.578.1.12.4.5.100.4",
    )
    web = DicomWebService(
        media=media,
        engine=engine,
        base_url="https://media.example/dicomweb",
        spool_dir=content.staging,
    )
    patient = synthetic_fnr(random.Random(7), date(1970, 5, 17)).value
    content_type = f'multipart/related; type="application/dicom+json"; boundary={BOUNDARY}'
    start = time.perf_counter()
    with _Peak() as stored_rss:
        answer = await web.store(
            _body(patient, clip, free, zeros),
            content_type=content_type,
            study_uid=None,
            patient=patient,
            who=AuditCaller(),
            correlation_id="bench",
        )
    store_s = time.perf_counter() - start
    if answer.status != 200:
        raise SystemExit(f"store failed: {answer.status} {answer.messages}")
    study = answer.stored[0].retrieve_url.split("/studies/")[1].split("/")[0]
    (instance,) = await qido_store.locate_uids(engine, study_uid=study, limit=2)
    start = time.perf_counter()
    digest = hashlib.sha256()
    with _Peak() as read_rss:
        video = await web.video(instance, accept="video/mp4", query_accept=None)
        async for chunk in content.range_chunks(video.content_key, video.offset, video.length):
            digest.update(chunk)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    middle = b"".join(
        [c async for c in content.range_chunks(video.content_key, video.offset + total // 2, MIB)]
    )
    range_ms = (time.perf_counter() - start) * 1000
    await engine.dispose()
    return {
        "size_mib": args.size_mb,
        "stored_file_bytes": instance.size,
        "store_s": round(store_s, 2),
        "store_mib_per_s": round(args.size_mb / store_s, 1),
        "store_rss_growth_mib": round((stored_rss.peak - stored_rss.base) / MIB, 1),
        "read_s": round(read_s, 2),
        "read_mib_per_s": round(args.size_mb / read_s, 1),
        "read_rss_growth_mib": round((read_rss.peak - read_rss.base) / MIB, 1),
        "range_1mib_middle_ms": round(range_ms, 2),
        "range_ok": len(middle) == MIB,
        "bytes_identical": digest.hexdigest() == _expected(clip, free, zeros),
        "note": "below HTTP and trust; SQLite; a 2-core machine shared with other jobs",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="media-video-", dir=os.environ.get("TMPDIR")))
    try:
        figures = asyncio.run(run(args, folder))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    out = ROOT / "bench" / "results" / "media_video.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    for key, value in figures.items():
        sys.stdout.write(f"{key:>24}: {value}\n")


if __name__ == "__main__":
    main()
