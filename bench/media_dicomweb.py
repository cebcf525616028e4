"""Benchmark the archive's DICOMweb reads below HTTP: study metadata and QIDO-RS from SQL.

Stores `--slices` synthetic CT slices (one study, `--size`² 16-bit) and the patient's other
studies through `MediaService` into SQLite (or `--db`), then measures, each the median of
`--rounds` rounds:

- study metadata: `qido_store.instance_metadata` for every instance of the CT study — the
  stored JSON spliced into bytes, BulkDataURIs made absolute, no file read; ms per study and
  µs per instance (issue 14's target: < 0.1 ms per instance);
- QIDO-RS `studies` for the patient (the default return attributes); ms per query;
- QIDO-RS instance level of the CT series; ms per query.

Prints the figures and writes bench/results/media_dicomweb.json. Not a comparison with
Orthanc (that is bench/media.py, over HTTP), and no HTTP, trust or audit in the figures.
Usage: .venv/bin/python bench/media_dicomweb.py [--slices 50] [--size 512] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from onerecord.audit import MemoryAuditSink  # noqa: E402
from onerecord.dicom import QidoLevel, parse_qido_query  # noqa: E402
from onerecord.media import (  # noqa: E402
    FolderInstanceStore,
    MediaService,
    SqlMetadataStore,
    qido_store,  # noqa: E402
)
from onerecord.media.database import make_engine  # noqa: E402
from onerecord.media.migrate import upgrade  # noqa: E402
from onerecord.synth.dicom import DicomPatient, patient_studies, write_instances  # noqa: E402
from onerecord.synth.numbers import synthetic_fnr  # noqa: E402

BASE = "https://media.example/dicomweb"


async def _median_ms(call: Callable[[], Awaitable[Any]], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import random

    work = Path(tempfile.mkdtemp(prefix="media-dicomweb-"))
    born = date(1961, 9, 2)
    patient = DicomPatient(synthetic_fnr(random.Random(3), born), "Testesen", "Synne", born, "F")
    studies = patient_studies(
        patient, seed=3, reference_date=date(2026, 11, 1), ct_slices=args.slices, size=args.size
    )
    paths = write_instances([ds for s in studies for ds in s.instances], work / "files")
    engine = make_engine(args.db or f"sqlite:///{work / 'media.db'}")
    await upgrade(engine)
    service = MediaService(
        store=SqlMetadataStore(engine),
        content=FolderInstanceStore(work / "content"),
        audit=MemoryAuditSink(),
        source_id="bench",
        home_community_id="urn:oid:2.16.578.1.12.4.5.100.4",
    )
    for path in paths:
        await service.store_instance(
            path.read_bytes(), calling_ae_title="BENCH", correlation_id="b"
        )
    ct = next(s for s in studies if s.instances[0].Modality == "CT")
    uids = [ds.SOPInstanceUID for ds in ct.instances]
    me = patient.nin.value
    studies_query = parse_qido_query([], level=QidoLevel.STUDY)
    instances_query = parse_qido_query(
        [],
        level=QidoLevel.INSTANCE,
        study_uid=ct.study_instance_uid,
        series_uid=ct.instances[0].SeriesInstanceUID,
    )
    metadata_ms = await _median_ms(
        lambda: qido_store.instance_metadata(engine, uids, retrieve_base=BASE), args.rounds
    )
    studies_ms = await _median_ms(
        lambda: qido_store.search(engine, studies_query, patient_id=me, retrieve_base=BASE),
        args.rounds,
    )
    instances_ms = await _median_ms(
        lambda: qido_store.search(engine, instances_query, patient_id=me, retrieve_base=BASE),
        args.rounds,
    )
    await engine.dispose()
    return {
        "database": "postgresql" if args.db else "sqlite",
        "instances_stored": len(paths),
        "ct_slices": args.slices,
        "study_metadata_ms": round(metadata_ms, 3),
        "study_metadata_us_per_instance": round(metadata_ms * 1000 / len(uids), 1),
        "qido_studies_ms": round(studies_ms, 3),
        "qido_series_instances_ms": round(instances_ms, 3),
        "rounds": args.rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=50)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--db", default=None, help="a database URL instead of a new SQLite file")
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    for name, value in figures.items():
        print(f"{name:34} {value}")  # noqa: T201
    out = ROOT / "bench" / "results" / "media_dicomweb.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
