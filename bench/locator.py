"""Benchmark the locator's rebuild: a region's backfill, and the hub's replay of the stream.

Set-up: one SQLite registry of N entries (default 250,000) over N/4 patients, bulk-loaded and
cached under bench/.cache/locator-N/, and the machine's NATS JetStream (a fresh stream per run,
deleted afterwards). All in this one process, so the figures are what the code costs, not what
the processes around it cost.

Figures:
- backfill: the registry read alone (rows/s), and a whole backfill to JetStream — begin, the
  holdings in parts with acknowledgements awaited per window, end — in entries/s;
- replay of backfills: `--regions` regions (default 4) backfill the same registry under their own
  homeCommunityId (4 × N entries in the stream), then a hub's locator replays the stream until
  every region's view is confirmed: seconds, and the growth of the process's resident memory
  (the index);
- replay of single events: `--events` registry events (default 1,000,000) over the same regions
  and N/4 patients each, one stream message per event, replayed the same way.

Prints the figures and writes JSON to --out (default bench/results/locator.json).
Usage: .venv/bin/python bench/locator.py [--entries 250000] [--events 1000000] [--out FILE]
       [--only backfill|events]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import secrets
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from onerecord.domain import HomeCommunityId  # noqa: E402
from onerecord.events import (  # noqa: E402
    EntryStatus,
    NatsEventBus,
    RegionStreamStart,
    RegistryEvent,
    event_subject,
    event_subjects,
    patient_key,
)
from onerecord.hub.locator_feed import Locator  # noqa: E402
from onerecord.source.database import make_engine  # noqa: E402
from onerecord.source.locator import RegistryPublisher, registry_holdings  # noqa: E402
from onerecord.source.migrate import upgrade  # noqa: E402
from onerecord.source.store import SqlDocumentStore  # noqa: E402
from onerecord.synth.documents import fast_entries  # noqa: E402
from onerecord.synth.regions import DEFAULT_REGIONS  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
KEY = b"bench-locator-patient-key-0123456789"
NATS_URL = os.environ.get("ONERECORD_BENCH_NATS", "nats://127.0.0.1:4222")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def make_patients(n: int) -> list[str]:
    import random
    from datetime import date, timedelta

    from onerecord.synth.numbers import synthetic_fnr

    rng = random.Random(7)
    out: set[str] = set()
    while len(out) < n:
        born = date(1930, 1, 1) + timedelta(days=rng.randrange(0, 365 * 90))
        out.add(str(synthetic_fnr(rng, born)))
    return sorted(out)


async def registry(entries: int, patients: list[str]) -> Path:
    db = CACHE / f"locator-{entries}" / "registry.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{db}")
    try:
        await upgrade(engine)
        store = SqlDocumentStore(engine)
        have = await store.count()
        if have != entries:
            if have:
                raise SystemExit(f"{db} holds {have} entries, not {entries}: delete it")
            t0 = time.perf_counter()
            docs = fast_entries(entries, seed=3, region=DEFAULT_REGIONS[0], patients=patients)
            await store.bulk_load(docs, batch_size=5000)
            print(f"loaded {entries:,} entries in {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        await engine.dispose()
    return db


async def connect(stream: str, prefix: str) -> NatsEventBus:
    return await NatsEventBus.connect(
        NATS_URL, stream=stream, subjects=event_subjects(prefix), timeout_s=10.0
    )


async def replay(stream: str, prefix: str, hcids: list[HomeCommunityId]) -> dict[str, float]:
    """Replay the stream into a fresh locator until every region's view is confirmed."""
    gc.collect()
    before = rss_mb()
    bus = await connect(stream, prefix)
    locator = Locator(key=KEY, max_silence_s=1e9)
    t0 = time.perf_counter()
    await locator.start(bus, subject_prefix=prefix)
    said = time.perf_counter()
    while True:
        views = [locator.index.regions[h.urn] for h in hcids]
        if locator.index.ready and all(v.complete and v.epoch is None for v in views):
            break
        if time.perf_counter() - said > 10:
            said = time.perf_counter()
            state = [(v.applied, v.epoch, len(v.parts), v.complete, v.gap) for v in views]
            print(f"  replaying… ready={locator.index.ready} {state}", flush=True)
        await asyncio.sleep(0.01)
    seconds = time.perf_counter() - t0
    gc.collect()
    grown = rss_mb() - before
    entries = sum(v.entries for v in views)
    await locator.close()
    await bus.close()
    del locator
    return {"seconds": round(seconds, 2), "entries": entries, "index_mb": round(grown, 1)}


async def bench_backfill(db: Path, entries: int, regions: int) -> dict[str, Any]:
    token = secrets.token_hex(4)
    stream, prefix = f"BENCH_LOCATOR_{token}", f"bench.{token}.locator"
    bus = await connect(stream, prefix)
    engine = make_engine(f"sqlite:///{db}")
    hcids = [
        HomeCommunityId.parse(f"urn:oid:2.16.578.1.12.4.5.100.{n + 1}") for n in range(regions)
    ]
    result: dict[str, Any] = {}
    try:
        read = registry_holdings(engine)
        t0 = time.perf_counter()
        rows = 0
        async for chunk in read():
            rows += len(chunk)
        read_s = time.perf_counter() - t0
        result["registry_read_rows_per_s"] = round(rows / read_s)
        runs = []
        for hcid in hcids:
            publisher = RegistryPublisher(
                bus=bus,
                home_community_id=hcid,
                key=KEY,
                subject_prefix=prefix,
                heartbeat_s=1.0,
                holdings=read,
            )

            async def none() -> int:
                return 0

            await publisher.start(none)
            t0 = time.perf_counter()
            parts, sent = await publisher.backfill()
            runs.append(time.perf_counter() - t0)
            await publisher.close()
            assert sent == entries, (sent, entries)
        result["parts_per_region"] = parts
        result["backfill_s"] = [round(s, 2) for s in runs]
        result["backfill_entries_per_s"] = round(entries / min(runs))
        print(
            f"registry read: {result['registry_read_rows_per_s']:,} rows/s; backfill of "
            f"{entries:,} entries in {parts} parts: {min(runs):.2f} s "
            f"({result['backfill_entries_per_s']:,} entries/s, best of {regions})",
            flush=True,
        )
        result["replay"] = await replay(stream, prefix, hcids)
        r = result["replay"]
        print(
            f"hub replay of {regions} backfills ({r['entries']:,} entries): {r['seconds']} s, "
            f"index ≈ {r['index_mb']} MB resident",
            flush=True,
        )
    finally:
        await engine.dispose()
        await bus.delete_stream()
        await bus.close()
    return result


async def bench_events(events: int, patients: list[str], regions: int) -> dict[str, Any]:
    token = secrets.token_hex(4)
    stream, prefix = f"BENCH_LOCATOR_{token}", f"bench.{token}.locator"
    bus = await connect(stream, prefix)
    hcids = [
        HomeCommunityId.parse(f"urn:oid:2.16.578.1.12.4.5.100.{n + 1}") for n in range(regions)
    ]
    digests = [patient_key(p, KEY) for p in patients]
    result: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        per_region = events // regions
        for r, hcid in enumerate(hcids):
            subject = event_subject(hcid, prefix)
            batch = [RegionStreamStart(hcid, 1, 0).encode()]
            for n in range(per_region):
                patient = digests[(n * 7 + r) % len(digests)]
                event = RegistryEvent(hcid, n + 2, patient, f"2.25.{r}.{n}", EntryStatus.CURRENT)
                batch.append(event.encode())
                if len(batch) >= 5000:
                    await bus.store_many(subject, batch)
                    batch = []
            if batch:
                await bus.store_many(subject, batch)
        stored_s = time.perf_counter() - t0
        result["events"] = per_region * regions
        result["store_events_per_s"] = round(result["events"] / stored_s)
        print(
            f"stored {result['events']:,} single events in {stored_s:.1f} s "
            f"({result['store_events_per_s']:,}/s, windows of 5,000)",
            flush=True,
        )
        result["replay"] = await replay(stream, prefix, hcids)
        r = result["replay"]
        print(
            f"hub replay of {result['events']:,} single events: {r['seconds']} s "
            f"({round(result['events'] / r['seconds']):,} events/s), index ≈ {r['index_mb']} MB",
            flush=True,
        )
    finally:
        await bus.delete_stream()
        await bus.close()
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=250_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--regions", type=int, default=4)
    parser.add_argument("--only", choices=["backfill", "events"], help="run one part only")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "locator.json")
    args = parser.parse_args()
    patients = make_patients(max(1, args.entries // 4))
    db = await registry(args.entries, patients)
    result: dict[str, Any] = {
        "entries_per_region": args.entries,
        "patients": len(patients),
        "regions": args.regions,
        "backfill": (
            await bench_backfill(db, args.entries, args.regions) if args.only != "events" else None
        ),
        "single_events": (
            await bench_events(args.events, patients, args.regions)
            if args.only != "backfill"
            else None
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load": os.getloadavg(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
