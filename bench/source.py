"""Benchmark one regional document source: ITI-65 ingest rate and ITI-67 search latency.

For each backend (SQLite, PostgreSQL) the registry is filled with N entries (default 1,000,000,
spread over N/100 patients), a source is started as its own process, and:

- ingest: documents/s through ITI-65 with small PDFs, in bundles of 1 and of 50 documents,
  4 concurrent clients;
- search: p50/p99 of one patient's list (`_count=20`, default sort) through the API, one client
  with keep-alive, and the same query run directly against the database from this process
  (the store's own SQL), so the API's overhead shows as a ratio.

Prints the figures and writes them to bench/results/source.json.
Usage: .venv/bin/python bench/source.py [--entries 1000000] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import orjson
import psutil
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.factories import make_entry, sample_pdf  # noqa: E402

from onerecord.domain import DocumentQuery, NationalIdentityNumber  # noqa: E402
from onerecord.mhd import build_provide_bundle  # noqa: E402
from onerecord.source.database import make_engine  # noqa: E402
from onerecord.source.migrate import upgrade  # noqa: E402
from onerecord.source.store import SqlDocumentStore  # noqa: E402
from onerecord.synth.documents import fast_entries  # noqa: E402
from onerecord.synth.regions import DEFAULT_REGIONS  # noqa: E402

PIDS: dict[str, int] = {}  # base URL → pid of the source process serving it
PG = os.environ.get("ONERECORD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
REGION = DEFAULT_REGIONS[0]
CACHE = ROOT / "bench" / ".cache"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


async def fill(url: str, schema: str | None, entries: int, patients: list[str]) -> float | None:
    """Load the registry, or reuse a cached one that already holds exactly `entries` rows."""
    engine = make_engine(url, schema=schema)
    try:
        await upgrade(engine)
        store = SqlDocumentStore(engine)
        if await store.count() == entries:
            return None
        t0 = time.perf_counter()
        loaded = await store.bulk_load(
            fast_entries(entries, seed=7, region=REGION, patients=patients), batch_size=5000
        )
        elapsed = time.perf_counter() - t0
        assert loaded == entries, (loaded, entries)
        return elapsed
    finally:
        await engine.dispose()


async def direct_search(url: str, schema: str | None, patients: list[str], n: int) -> list[float]:
    """Time the store's own query for one patient's first page, straight against the database."""
    engine = make_engine(url, schema=schema)
    store = SqlDocumentStore(engine)
    rng = random.Random(3)
    timings: list[float] = []
    try:
        for i in range(n + 50):
            query = DocumentQuery(patient_id=NationalIdentityNumber(rng.choice(patients)))
            t0 = time.perf_counter()
            page = await store.find(query, None)
            dt = time.perf_counter() - t0
            assert page.entries
            if i >= 50:
                timings.append(dt * 1000)
    finally:
        await engine.dispose()
    return timings


def api_search(base: str, patients: list[str], n: int) -> list[float]:
    rng = random.Random(3)
    timings: list[float] = []
    with httpx.Client(timeout=30) as client:
        for i in range(n + 50):
            params = {"patient.identifier": f"{FNR}|{rng.choice(patients)}", "_count": "20"}
            t0 = time.perf_counter()
            r = client.get(f"{base}/fhir/DocumentReference", params=params)
            dt = time.perf_counter() - t0
            assert r.status_code == 200, r.text
            if i >= 50:
                timings.append(dt * 1000)
    return timings


def ingest_bodies(documents: int, per_bundle: int) -> list[bytes]:
    """Build every bundle before the clock starts: the client's own work is not measured."""
    pdf = sample_pdf()
    bundles: list[bytes] = []
    made = 0
    rng = random.Random(per_bundle)
    while made < documents:
        docs = []
        for _ in range(per_bundle):
            content = pdf + f"\n% {rng.getrandbits(64)}\n".encode()
            docs.append((make_entry(content=content), content))
        made += len(docs)
        bundles.append(
            orjson.dumps(
                build_provide_bundle(
                    docs,
                    source_id="urn:oid:1.2.3",
                    submission_set_unique_id=f"1.2.3.{rng.getrandbits(40)}",
                )
            )
        )
    return bundles


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children so far (the source's workers are children)."""
    proc = psutil.Process(pid)
    total = sum(proc.cpu_times()[:2])
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:2])
    return total


async def ingest(
    base: str, *, bundles: list[bytes], per_bundle: int, concurrency: int, server_pid: int
) -> dict[str, float]:
    """POST the pre-built bundles with `concurrency` keep-alive clients.

    Returns documents/s and the CPU milliseconds per document spent by the source (all its
    processes) and by this client: on a shared machine the wall rate depends on what else
    runs, the CPU cost per document does not, and 2,000 / (source + client ms) is the rate two
    cores to themselves would reach.

    aiohttp with one connection per client and no per-request parsing beyond the status: the
    client shares the machine's cores with the source, so it should cost as little as it can.
    """
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bundles:
        queue.put_nowait(b)
    url = f"{base}/fhir"
    headers = {"content-type": "application/fhir+json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            async with session.post(url, data=body, headers=headers) as r:
                answer = await r.read()
                assert r.status == 200, answer[:500]

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # One warm-up request per client opens the connections before the clock starts.
        warm = [queue.get_nowait() for _ in range(min(concurrency, queue.qsize()))]

        async def post(body: bytes) -> None:
            async with session.post(url, data=body, headers=headers) as r:
                assert r.status == 200, (await r.read())[:500]

        await asyncio.gather(*(post(b) for b in warm))
        sent = queue.qsize()
        server0, client0 = cpu_seconds(server_pid), time.process_time()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        server_s, client_s = cpu_seconds(server_pid) - server0, time.process_time() - client0
    docs = sent * per_bundle
    return {
        "docs_per_s": docs / elapsed,
        "server_cpu_ms_per_doc": 1000 * server_s / docs,
        "client_cpu_ms_per_doc": 1000 * client_s / docs,
    }


async def max_seq(url: str, schema: str | None) -> int:
    engine = make_engine(url, schema=schema)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text("SELECT max(seq) FROM document_entry"))
            return int(result.scalar_one())
    finally:
        await engine.dispose()


async def trim(url: str, schema: str | None, keep: int) -> None:
    """Remove what the ingest run added, so the cached registry holds N entries again."""
    engine = make_engine(url, schema=schema)
    try:
        async with engine.begin() as conn:
            for table in ("document_label", "document_code"):
                await conn.execute(text(f"DELETE FROM {table} WHERE entry_seq > :k"), {"k": keep})
            await conn.execute(text("DELETE FROM document_entry WHERE seq > :k"), {"k": keep})
            await conn.execute(text("DELETE FROM submission_set"))
    finally:
        await engine.dispose()


@contextlib.contextmanager
def source_process(
    url: str, schema: str | None, content: Path, port: int, workers: int = 1
) -> Iterator[str]:
    args = [
        sys.executable,
        "-m",
        "onerecord.cli",
        "source",
        "serve",
        "--home-community-id",
        REGION.home_community_id.urn,
        "--repository-unique-id",
        str(REGION.repository_unique_id),
        "--db",
        url,
        "--content",
        str(content),
        "--port",
        str(port),
        "--dev",
        "--dev-open-access",
        "--workers",
        str(workers),
    ]
    if schema:
        args += ["--db-schema", schema]
    proc = subprocess.Popen(args, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    PIDS[base] = proc.pid
    try:
        deadline = time.monotonic() + 240  # two workers start slowly on a busy machine
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("source did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def pg_schema(name: str) -> None:
    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{name}"')
    finally:
        await conn.close()


def run_backend(
    kind: str,
    entries: int,
    searches: int,
    workdir: Path,
    port: int,
    options: argparse.Namespace,
) -> dict[str, Any]:
    rng = random.Random(11)
    patients = sorted({str(p) for p in _patients(rng, max(1, entries // 100))})
    # The loaded registry is cached (bench/.cache, schema bench_source_N) and reused when it
    # holds exactly N entries; ingest runs add rows, so a cache is reloaded after each run.
    if kind == "sqlite":
        CACHE.mkdir(parents=True, exist_ok=True)
        db_file = CACHE / f"source-{entries}.db"
        url, schema = f"sqlite:///{db_file}", None
    else:
        url, schema = PG, f"bench_source_{entries}"
        asyncio.run(pg_schema(schema))
    print(f"[{kind}] loading {entries:,} entries for {len(patients):,} patients …", flush=True)
    load_s = asyncio.run(fill(url, schema, entries, patients))
    if load_s is None:
        print(f"[{kind}] reusing the cached registry", flush=True)
    else:
        print(f"[{kind}] loaded in {load_s:.1f} s ({entries / load_s:,.0f} rows/s)", flush=True)
    result: dict[str, Any] = {"entries": entries, "patients": len(patients), "load_seconds": load_s}
    keep = asyncio.run(max_seq(url, schema))
    if "search" in options.only:
        with source_process(url, schema, workdir / "content", port) as base:
            api = api_search(base, patients, searches)
            direct = asyncio.run(direct_search(url, schema, patients, searches))
        result["search_api_ms"] = {"p50": percentile(api, 50), "p99": percentile(api, 99)}
        result["search_direct_ms"] = {"p50": percentile(direct, 50), "p99": percentile(direct, 99)}
        result["api_overhead_ratio_p50"] = (
            result["search_api_ms"]["p50"] / result["search_direct_ms"]["p50"]
        )
    if "ingest" in options.only:
        # Search first, ingest last: ingest adds rows, so the cached registry is stale after.
        result["ingest_clients"] = options.clients
        bodies = {
            n: ingest_bodies(options.ingest_docs if n == 1 else 100 * n, n)
            for n in options.per_bundle
        }
        for workers in options.workers:
            with source_process(url, schema, workdir / "content", port, workers=workers) as base:
                for per_bundle in options.per_bundle:
                    figures = asyncio.run(
                        ingest(
                            base,
                            bundles=bodies[per_bundle],
                            per_bundle=per_bundle,
                            concurrency=options.clients,
                            server_pid=PIDS[base],
                        )
                    )
                    suffix = "" if workers == 1 else f"_{workers}_workers"
                    result[f"ingest_docs_per_s_bundle_{per_bundle}{suffix}"] = figures["docs_per_s"]
                    result[f"ingest_cpu_bundle_{per_bundle}{suffix}"] = figures
                    print(
                        f"[{kind}] ingest {per_bundle}/bundle, {workers} worker(s), "
                        f"{options.clients} clients: {figures['docs_per_s']:,.0f} docs/s; CPU "
                        f"per document: source {figures['server_cpu_ms_per_doc']:.2f} ms, "
                        f"client {figures['client_cpu_ms_per_doc']:.2f} ms; load "
                        f"{os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
            # The next run posts the same bundles again: start from the same registry.
            asyncio.run(trim(url, schema, keep))
            shutil.rmtree(workdir / "content", ignore_errors=True)
    asyncio.run(trim(url, schema, keep))
    print(f"[{kind}] {json.dumps(result, indent=1)}", flush=True)
    return result


def _patients(rng: random.Random, n: int) -> Iterator[NationalIdentityNumber]:
    from datetime import date, timedelta

    from onerecord.synth.numbers import synthetic_fnr

    for _ in range(n):
        born = date(1930, 1, 1) + timedelta(days=rng.randrange(0, 365 * 90))
        yield synthetic_fnr(rng, born)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--searches", type=int, default=2000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/source.json")
    parser.add_argument(
        "--only", default="search,ingest", help="what to run: search, ingest or both (default)"
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent ingest clients")
    parser.add_argument(
        "--ingest-docs", type=int, default=3000, help="documents sent in 1-document bundles"
    )
    parser.add_argument(
        "--per-bundle", default="1,50", help="documents per bundle, comma-separated"
    )
    parser.add_argument("--workers", default="1,2", help="source worker processes to try")
    args = parser.parse_args()
    args.only = set(args.only.split(","))
    args.per_bundle = [int(n) for n in args.per_bundle.split(",")]
    args.workers = [int(n) for n in args.workers.split(",")]
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "backends": {}}
    for kind in args.backends.split(","):
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-source-{kind}-"))
        try:
            results["backends"][kind] = run_backend(
                kind, args.entries, args.searches, workdir, args.port, args
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
