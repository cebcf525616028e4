"""Benchmark the national hub's fan-out: four regions of N entries each, a national population.

Population (`onerecord.synth.national`, stated in the output and the JSON): synthetic people
with homes spread evenly over the four regions; of those with documents 80 % hold them in one
region, 15 % in two, 3 % in three and 2 % in four; 5 % of the population holds none. About ten
entries per person and region they hold documents in, so each region holds N entries (default
250,000) over ≈ N/10 people (≈ 83,000 people in all at N = 250,000). The searches draw their
patients from the whole population in the same proportions (a stratified sample of `--sample`
people, the ones without documents included).

Set-up per backend (`--backends sqlite,postgres`): four regional sources (`onerecord source
serve`) and the hub (`onerecord hub serve`), each its own process on this machine. Each region's
registry is bulk-loaded once through the store (`SqlDocumentStore.bulk_load`) and cached — SQLite
files under bench/.cache/fanout-<shape>-N/ (the folder: `ONERECORD_BENCH_CACHE`), PostgreSQL one
schema per region (bench_fanout_N_<region>_<shape>) in `ONERECORD_BENCH_POSTGRES` — and reused
when it holds exactly N entries over the expected people; migrations (`upgrade()`) run on a
cached registry first. `--prepare-only` builds the caches and stops.

Per backend, mode (`--modes open,trust`) and locator setting (`--locator off,on`), one network:
- latency: p50/p99 of one patient's ITI-67 search (`_count=20`) through the hub, one client with
  keep-alive, next to the same searches sent directly to each region — the slowest region's p50
  is the reference (target, locator off: hub p50 ≤ 1.3 × slowest direct p50 + 2 ms);
- throughput: hub searches/s with 16 concurrent clients for `--seconds` (target ≥ 300/s with the
  trust path and the locator on), with p50/p99 under that load (target: p99 ≤ 3 × p50);
- with the locator on, regions asked per search and missed documents: every hub answer of the
  two phases above is read afterwards (a region skipped by the locator is an OperationOutcome
  issue with region-status `not-asked`), and compared with a full fan-out — a second hub with
  the locator off on the same regions, asked the same query outside the timed phases — page by
  page and, per patient, over the whole list (`_count=200`) (target: ≤ 1.5 regions asked on
  average, 0 missed documents);
- the hub's own cost: the same search through the hub with only the slowest region in its
  directory;
- a dead region: one region stopped; the first 5 searches (before the breaker opens) and the
  p50 after it opened (target ≤ 10 ms added).

Modes: `open` (development open access: no tokens, no audit) and `trust` (citizen DPoP-bound
tokens checked at the hub, hub assertions checked at each region, policy and audit at every
region and at the hub; the direct searches carry a token for that region). The client signs its
DPoP proof before the timer starts.

Locator on: NATS JetStream at `--nats` (127.0.0.1:4222), a fresh stream and subject prefix per
network (removed afterwards), a random patient key. Bulk-loaded registries are not in the stream:
the regions publish their holdings at start (backfill); the benchmark waits until the hub logs
`hub.locator.ready` and, for a one-region person of each region, the hub skips the three other
regions (`--locator-wait` seconds at most; if not, the run goes on and says so).

Prints the figures, a table at the end, and writes bench/results/fanout.json (or `--out`).
Usage: .venv/bin/python bench/fanout.py [--entries 250000] [--backends sqlite,postgres]
       [--modes open,trust] [--locator off,on] [--out FILE] [--prepare-only] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import orjson
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.servers import free_port  # noqa: E402

from onerecord.events import event_subjects  # noqa: E402
from onerecord.events.bus import NatsEventBus  # noqa: E402
from onerecord.source.database import make_engine  # noqa: E402
from onerecord.source.migrate import upgrade  # noqa: E402
from onerecord.source.store import SqlDocumentStore  # noqa: E402
from onerecord.synth.national import (  # noqa: E402
    NationalPerson,
    NationalPopulation,
    NationalShape,
    national_population,
    region_entries,
)
from onerecord.synth.regions import DEFAULT_REGIONS, RegionInfo  # noqa: E402
from onerecord.trust.access_token import issue_access_token  # noqa: E402
from onerecord.trust.dpop import make_proof  # noqa: E402
from onerecord.trust.keys import SigningKey  # noqa: E402

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
CACHE = Path(os.environ.get("ONERECORD_BENCH_CACHE", ROOT / "bench" / ".cache"))
ISSUER = "https://sts.bench.invalid"
HUB_AUDIENCE = "onerecord:hub"
PG = os.environ.get("ONERECORD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
POPULATION_SEED = 11
REGION_STATUS_EXT = "https://onerecord.no/fhir/StructureDefinition/region-status"
HCID_EXT = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-HomeCommunityId"
LOCATOR_ENV = ("ONERECORD_HUB_LOCATOR_", "ONERECORD_SOURCE_LOCATOR_")


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 2), "p99": round(percentile(values, 99), 2)}


# -- the population and the cached registries ------------------------------------------------


@dataclass(frozen=True)
class RegionDb:
    """Where one region's registry lives."""

    url: str
    schema: str | None

    def source_args(self) -> list[str]:
        return ["--db", self.url, *(["--db-schema", self.schema] if self.schema else [])]


def region_dbs(kind: str, shape: NationalShape, entries: int) -> list[RegionDb]:
    if kind == "sqlite":
        folder = CACHE / f"fanout-{shape.label}-{entries}"
        folder.mkdir(parents=True, exist_ok=True)
        return [RegionDb(f"sqlite:///{folder / f'{r.slug}.db'}", None) for r in DEFAULT_REGIONS]
    if kind == "postgres":
        tag = re.sub(r"[^a-z0-9]+", "_", shape.label.lower())
        return [RegionDb(PG, f"bench_fanout_{entries}_{r.slug}_{tag}") for r in DEFAULT_REGIONS]
    raise SystemExit(f"unknown backend {kind!r}: sqlite or postgres")


async def _create_schema(name: str) -> None:
    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{name}"')
    finally:
        await conn.close()


async def _fill(
    db: RegionDb, region: RegionInfo, seed: int, entries: int, population: NationalPopulation
) -> float | None:
    """Bulk-load one region's registry unless the cache holds exactly it; return the seconds."""
    if db.schema:
        await _create_schema(db.schema)
    engine = make_engine(db.url, schema=db.schema)
    try:
        await upgrade(engine)
        store = SqlDocumentStore(engine)
        have = await store.count()
        holders = len(population.holders(region.slug))
        if have:
            async with engine.connect() as conn:
                people = (
                    await conn.execute(
                        text("SELECT count(DISTINCT patient_id) FROM document_entry")
                    )
                ).scalar_one()
            if have == entries and people == holders:
                return None
            where = f"schema {db.schema}" if db.schema else db.url
            raise SystemExit(
                f"{where} holds {have} entries over {people} people, not {entries} over "
                f"{holders}: drop it (SQLite: delete the file; PostgreSQL: DROP SCHEMA … CASCADE)"
            )
        t0 = time.perf_counter()
        loaded = await store.bulk_load(
            region_entries(population, region, entries, seed=seed), batch_size=5000
        )
        assert loaded == entries, (loaded, entries)
        return time.perf_counter() - t0
    finally:
        await engine.dispose()


def _fill_job(
    db: RegionDb, index: int, entries: int, population: NationalPopulation
) -> tuple[str, float | None]:
    region = DEFAULT_REGIONS[index]
    return region.slug, asyncio.run(_fill(db, region, 100 + index, entries, population))


def prepare(
    kind: str, population: NationalPopulation, entries: int, jobs: int
) -> tuple[list[RegionDb], dict[str, float | None]]:
    """Load (or reuse) the four registries of one backend, `jobs` regions at a time."""
    dbs = region_dbs(kind, population.shape, entries)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(_fill_job, db, i, entries, population) for i, db in enumerate(dbs)]
        loads = dict(f.result() for f in futures)
    for slug, seconds in loads.items():
        if seconds is None:
            print(f"  [{kind}] {slug}: reusing {entries:,} cached entries", flush=True)
        else:
            print(f"  [{kind}] {slug}: loaded {entries:,} in {seconds:.0f} s", flush=True)
    if any(s is not None for s in loads.values()):
        print(f"  [{kind}] load wall time {time.perf_counter() - t0:.0f} s", flush=True)
    return dbs, loads


def search_sample(population: NationalPopulation, size: int) -> list[NationalPerson]:
    """`size` people drawn per number of regions held, in the population's proportions."""
    rng = random.Random(9)
    groups = population.by_region_count()
    people = len(population.people)
    sample: list[NationalPerson] = []
    for group in groups.values():
        want = min(len(group), max(1, round(size * len(group) / people)))
        sample.extend(rng.sample(group, want))
    rng.shuffle(sample)
    return sample


def probes(population: NationalPopulation) -> dict[str, NationalPerson]:
    """One person per region who holds documents only there (for the locator's readiness)."""
    found: dict[str, NationalPerson] = {}
    for p in population.people:
        if len(p.regions) == 1 and p.regions[0] not in found:
            found[p.regions[0]] = p
    return found


# -- processes -----------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    base: str
    process: subprocess.Popen[bytes]
    log: Path | None = None


def start(
    name: str, args: list[str], port: int, log: Path, env: dict[str, str] | None = None
) -> Proc:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "onerecord.cli", *args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return Proc(name, f"http://127.0.0.1:{port}", proc, log)


def wait_ready(procs: list[Proc], path: str = "/healthz") -> None:
    deadline = time.monotonic() + 120
    for p in procs:
        while True:
            if p.process.poll() is not None:
                raise RuntimeError(f"{p.name} exited with {p.process.returncode} (see {p.log})")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(p.base + path, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{p.name} did not start")
            time.sleep(0.1)


def stop(procs: list[Proc]) -> None:
    for p in procs:
        if p.process.poll() is None:
            p.process.terminate()
    for p in procs:
        try:
            p.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.process.kill()
            p.process.wait()


@dataclass
class Caller:
    """Makes the headers of one request: nothing (open), or token + fresh proof (trust)."""

    tokens: dict[tuple[str, str], str]
    key: SigningKey | None
    direct_extra: dict[str, str]
    issuer_key: SigningKey | None = None

    def headers(self, audience: str, patient: str, url: str, *, direct: bool) -> dict[str, str]:
        if self.key is None:
            return {}
        token = self.tokens[(audience, patient)]
        headers = {
            "authorization": f"DPoP {token}",
            "dpop": make_proof(self.key, htm="GET", htu=url, access_token=token),
        }
        if direct:
            headers.update(self.direct_extra)
        return headers


def citizen_tokens(
    key: SigningKey, dpop: SigningKey, patients: Sequence[str], audiences: Sequence[str]
) -> dict[tuple[str, str], str]:
    now = int(time.time())
    return {
        (aud, nin): issue_access_token(
            key=key,
            issuer=ISSUER,
            audience=aud,
            subject=nin,
            jkt=dpop.thumbprint(),
            scope=["nhn:phr/mhd/read-documentreferences"],
            now=now,
            lifetime=3 * 3600,
            claims={
                "helseid://claims/identity/pid": nin,
                "acr": "idporten-loa-high",
                "onerecord:representation": [],
            },
        )
        for aud in audiences
        for nin in patients
    }


@dataclass(frozen=True)
class LocatorRun:
    """One network's locator: NATS, a fresh stream and subject prefix, a patient key."""

    nats: str
    stream: str
    prefix: str
    key: str

    @classmethod
    def fresh(cls, nats: str) -> LocatorRun:
        tag = secrets.token_hex(4)
        return cls(
            nats, f"BENCH_FANOUT_{tag.upper()}", f"bench.fanout.{tag}", secrets.token_hex(16)
        )

    def environment(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for prefix in LOCATOR_ENV:
            out[f"{prefix}NATS_URL"] = self.nats
            out[f"{prefix}STREAM"] = self.stream
            out[f"{prefix}SUBJECT_PREFIX"] = self.prefix
            out[f"{prefix}PATIENT_KEY"] = self.key
        return out

    async def remove(self) -> None:
        with contextlib.suppress(Exception):
            bus = await NatsEventBus.connect(
                self.nats, stream=self.stream, subjects=event_subjects(self.prefix)
            )
            try:
                await bus.delete_stream()
            finally:
                await bus.close()


def environment(locator: LocatorRun | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(LOCATOR_ENV)}
    if locator is not None:
        env.update(locator.environment())
    return env


@dataclass
class Net:
    hub: Proc
    regions: list[Proc]
    caller: Caller
    directory: Path
    reference: Proc | None = None  # a second hub, locator off: the full fan-out
    extra: list[Proc] = field(default_factory=list)


@contextlib.contextmanager
def network(
    mode: str, dbs: list[RegionDb], work: Path, locator: LocatorRun | None
) -> Iterator[Net]:
    """Start four regions and the hub (and with the locator, a reference hub without it)."""
    hub_port = free_port()
    hub_base = f"http://127.0.0.1:{hub_port}"
    extra: list[Proc] = []
    caller = Caller({}, None, {})
    hub_trust: list[str] = ["--dev-open-access"]
    if mode == "trust":
        issuer_key = SigningKey.generate(kid="bench-sts")
        jwks_dir = work / "jwks"
        jwks_dir.mkdir(parents=True, exist_ok=True)
        (jwks_dir / "jwks.json").write_text(json.dumps({"keys": [issuer_key.public_jwk()]}))
        jwks_port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(jwks_port)],
            cwd=jwks_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        extra.append(Proc("jwks", f"http://127.0.0.1:{jwks_port}", server))
        jwks = f"http://127.0.0.1:{jwks_port}/jwks.json"
        trust = [
            "--issuer",
            ISSUER,
            "--jwks-url",
            jwks,
            "--hub-issuer",
            hub_base,
            "--hub-jwks-url",
            f"{hub_base}/jwks",
            "--dev",
        ]
        hub_trust = [
            "--issuer",
            ISSUER,
            "--jwks-url",
            jwks,
            "--dev",
            "--key-dir",
            str(work / "keys"),
        ]
        dpop = SigningKey.generate(kid="bench-client")
        # Tokens are filled in by run_network for the patients it asks about.
        caller = Caller({}, dpop, {"nhn-source-system": "onerecord-bench"}, issuer_key)
    else:
        trust = ["--dev", "--dev-open-access"]
    env = environment(locator)
    regions: list[Proc] = []
    for i, (info, db) in enumerate(zip(DEFAULT_REGIONS, dbs, strict=True)):
        port = free_port()
        regions.append(
            start(
                info.name,
                [
                    "source",
                    "serve",
                    "--region",
                    info.name,
                    "--home-community-id",
                    info.home_community_id.urn,
                    "--repository-unique-id",
                    str(info.repository_unique_id),
                    *db.source_args(),
                    "--content",
                    str(work / f"content{i}"),
                    "--port",
                    str(port),
                    *trust,
                ],
                port,
                work / f"{info.slug}.log",
                env,
            )
        )
    directory = work / "regions.json"
    directory.write_text(
        json.dumps(
            {
                "regions": [
                    {
                        "name": r.name,
                        "home_community_id": info.home_community_id.urn,
                        "base_url": f"{r.base}/fhir",
                    }
                    for r, info in zip(regions, DEFAULT_REGIONS, strict=True)
                ]
            }
        )
    )

    def hub_args(port: int, directory: Path, audit: str) -> list[str]:
        audit_args = ["--audit-db", f"sqlite:///{work / audit}"] if mode == "trust" else []
        return [
            "hub",
            "serve",
            "--directory",
            str(directory),
            "--port",
            str(port),
            "--public-url",
            hub_base,
            *hub_trust,
            *audit_args,
        ]

    hub = start(
        "hub", hub_args(hub_port, directory, "hub-audit.db"), hub_port, work / "hub.log", env
    )
    procs = [*regions, hub]
    try:
        wait_ready(procs)
        net = Net(hub, regions, caller, directory, extra=extra)
        if locator is not None:
            # Started after the hub, so that its development key exists: both sign alike (same
            # key, same issuer), and the regions take either hub's assertions.
            ref_port = free_port()
            ref_directory = work / "regions-reference.json"
            ref_directory.write_text(directory.read_text())
            net.reference = start(
                "reference hub",
                hub_args(ref_port, ref_directory, "reference-audit.db"),
                ref_port,
                work / "reference-hub.log",
                environment(None),
            )
            procs.append(net.reference)
            wait_ready([net.reference])
        yield net
    finally:
        stop([*procs, *extra])


# -- searches ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    patient: str
    ms: float
    status: int
    body: bytes | None  # kept for the hub's answers that are checked afterwards


def _params(patient: str, count: int = 20) -> dict[str, str]:
    return {"patient.identifier": f"{FNR}|{patient}", "_count": str(count)}


async def sequential(
    fhir: str,
    audience: str,
    patients: Sequence[str],
    caller: Caller,
    n: int,
    *,
    direct: bool,
    warmup: int = 30,
    keep: bool = False,
    statuses: frozenset[int] = frozenset({200}),
) -> list[Timed]:
    """Time n searches one after another (keep-alive), after `warmup` untimed ones; an answer
    with a status not in `statuses` stops the benchmark."""
    rng = random.Random(5)
    url = f"{fhir}/DocumentReference"
    out: list[Timed] = []
    async with aiohttp.ClientSession() as http:
        for i in range(n + warmup):
            patient = rng.choice(patients)
            headers = caller.headers(audience, patient, url, direct=direct)
            t0 = time.perf_counter()
            async with http.get(url, params=_params(patient), headers=headers) as r:
                body = await r.read()
                status = r.status
            dt = (time.perf_counter() - t0) * 1000
            if status not in statuses:
                raise RuntimeError(f"{url}: HTTP {status}: {body[:300]!r}")
            if i >= warmup:
                out.append(Timed(patient, dt, status, body if keep else None))
    return out


def ms(timed: Sequence[Timed]) -> list[float]:
    return [t.ms for t in timed]


async def throughput(
    fhir: str,
    patients: Sequence[str],
    caller: Caller,
    *,
    seconds: float,
    concurrency: int,
    keep: bool,
) -> tuple[dict[str, float], list[Timed]]:
    url = f"{fhir}/DocumentReference"
    done = 0
    failed = 0
    out: list[Timed] = []
    ends = time.perf_counter() + seconds

    async def worker(seed: int, http: aiohttp.ClientSession) -> None:
        nonlocal done, failed
        rng = random.Random(seed)
        while time.perf_counter() < ends:
            patient = rng.choice(patients)
            headers = caller.headers(HUB_AUDIENCE, patient, url, direct=False)
            t0 = time.perf_counter()
            async with http.get(url, params=_params(patient), headers=headers) as r:
                body = await r.read()
                status = r.status
            out.append(
                Timed(patient, (time.perf_counter() - t0) * 1000, status, body if keep else None)
            )
            done += status == 200
            failed += status != 200

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i, http) for i in range(concurrency)))
        elapsed = time.perf_counter() - t0
    p50, p99 = percentile(ms(out), 50), percentile(ms(out), 99)
    return {
        "searches_per_s": round(done / elapsed, 1),
        "failed": failed,
        "concurrency": concurrency,
        "p50_ms_under_load": round(p50, 2),
        "p99_ms_under_load": round(p99, 2),
        "p99_over_p50_under_load": round(p99 / p50, 2),
    }, out


@dataclass(frozen=True)
class Answer:
    """What the benchmark reads from a hub answer: documents, total, regions not asked."""

    documents: frozenset[str]
    total: int | None
    not_asked: frozenset[str]
    has_next: bool


def read_answer(body: bytes) -> Answer:
    bundle = orjson.loads(body)
    documents: set[str] = set()
    not_asked: set[str] = set()
    for entry in bundle.get("entry", []):
        resource = entry.get("resource", {})
        kind = resource.get("resourceType")
        if kind == "DocumentReference":
            master = resource.get("masterIdentifier") or {}
            documents.add(str(master.get("value") or resource.get("id")))
        elif kind == "OperationOutcome":
            for issue in resource.get("issue", []):
                ext = {x.get("url"): x for x in issue.get("extension", [])}
                status = ext.get(REGION_STATUS_EXT, {}).get("valueCode")
                if status == "not-asked":
                    not_asked.add(str(ext.get(HCID_EXT, {}).get("valueUri")))
    has_next = any(link.get("relation") == "next" for link in bundle.get("link", []))
    return Answer(frozenset(documents), bundle.get("total"), frozenset(not_asked), has_next)


async def ask(
    fhir: str, patient: str, caller: Caller, *, count: int, public_fhir: str | None = None
) -> Answer:
    """One untimed hub search; the DPoP proof names the URL under `public_fhir` (the hub's
    public base URL, which the reference hub shares with the hub), by default `fhir`."""
    url = f"{fhir}/DocumentReference"
    proof_url = f"{public_fhir or fhir}/DocumentReference"
    headers = caller.headers(HUB_AUDIENCE, patient, proof_url, direct=False)
    async with aiohttp.ClientSession() as http:
        async with http.get(url, params=_params(patient, count), headers=headers) as r:
            body = await r.read()
            if r.status != 200:
                raise RuntimeError(f"{url}: HTTP {r.status}: {body[:300]!r}")
    return read_answer(body)


async def wait_for_locator(
    net: Net, probe: dict[str, NationalPerson], timeout: float
) -> dict[str, Any]:
    """Wait for `hub.locator.ready`, then until a one-region person's search skips the others."""
    assert net.hub.log is not None
    t0 = time.monotonic()
    deadline = t0 + timeout
    hub_fhir = f"{net.hub.base}/fhir"
    ready_at: float | None = None
    last: dict[str, int] = {}
    next_print = t0 + 15
    while time.monotonic() < deadline:
        log = net.hub.log.read_text(errors="replace")
        if "hub.locator.unavailable" in log:
            return {"ready": False, "why": "hub.locator.unavailable (see the hub's log)"}
        if ready_at is None and "hub.locator.ready" in log:
            ready_at = time.monotonic() - t0
        if ready_at is not None:
            confirmed = True
            for slug, person in probe.items():
                try:
                    answer = await ask(hub_fhir, person.nin.value, net.caller, count=20)
                except RuntimeError:  # e.g. 504 while the regions are busy with the backfill
                    confirmed = False
                    continue
                last[slug] = len(answer.not_asked)
                confirmed &= len(answer.not_asked) == len(DEFAULT_REGIONS) - 1
            if confirmed:
                return {
                    "ready": True,
                    "index_replayed_s": round(ready_at, 1),
                    "regions_confirmed_s": round(time.monotonic() - t0, 1),
                }
        if time.monotonic() >= next_print:
            print(
                f"    waiting for the locator: ready={ready_at is not None}, "
                f"regions skipped for one-region people: {last}",
                flush=True,
            )
            next_print += 15
        await asyncio.sleep(1.0)
    return {
        "ready": False,
        "why": f"not confirmed within {timeout:.0f} s (index replayed: {ready_at is not None}; "
        f"regions skipped for one-region people: {last})",
    }


async def check_answers(
    net: Net, answers: Sequence[Timed], regions: int, people: dict[str, NationalPerson]
) -> dict[str, Any]:
    """Regions asked per search, and every answer against the reference hub's full fan-out."""
    assert net.reference is not None
    hub_fhir, ref_fhir = f"{net.hub.base}/fhir", f"{net.reference.base}/fhir"
    asked: Counter[int] = Counter()
    asked_by_class: dict[int, list[int]] = {}
    read: list[tuple[str, Answer]] = []
    for t in answers:
        if t.status != 200 or t.body is None:
            continue
        answer = read_answer(t.body)
        n = regions - len(answer.not_asked)
        asked[n] += 1
        asked_by_class.setdefault(len(people[t.patient].regions), []).append(n)
        read.append((t.patient, answer))
    reference_page: dict[str, Answer] = {}
    missed_pages = extra_pages = missed_documents = total_mismatch = 0
    missed_people = 0
    truncated = 0
    for patient in sorted({p for p, _ in read}):
        reference_page[patient] = await ask(
            ref_fhir, patient, net.caller, count=20, public_fhir=hub_fhir
        )
        full_ref = await ask(ref_fhir, patient, net.caller, count=200, public_fhir=hub_fhir)
        full_on = await ask(hub_fhir, patient, net.caller, count=200)
        truncated += full_ref.has_next or full_on.has_next
        lost = full_ref.documents - full_on.documents
        missed_documents += len(lost)
        missed_people += bool(lost)
    for patient, answer in read:
        ref = reference_page[patient]
        missed_pages += bool(ref.documents - answer.documents)
        extra_pages += bool(answer.documents - ref.documents)
        total_mismatch += (
            answer.total is not None and ref.total is not None and (answer.total != ref.total)
        )
    count = sum(asked.values())
    return {
        "answers_checked": count,
        "patients_checked": len(reference_page),
        "regions_asked_mean": round(sum(k * v for k, v in asked.items()) / max(1, count), 3),
        "regions_asked_distribution": {str(k): asked[k] for k in sorted(asked)},
        "regions_asked_mean_by_regions_held": {
            str(k): round(sum(v) / len(v), 3) for k, v in sorted(asked_by_class.items())
        },
        "answers_missing_documents_of_the_page": missed_pages,
        "answers_with_documents_not_in_full_fanout": extra_pages,
        "answers_with_other_total": total_mismatch,
        "missed_documents_over_whole_lists": missed_documents,
        "patients_with_missed_documents": missed_people,
        "patients_with_over_200_documents": truncated,
        "target_regions_asked_met": sum(k * v for k, v in asked.items()) / max(1, count) <= 1.5,
        "target_no_missed_met": missed_pages == 0 and missed_documents == 0,
    }


# -- one network -----------------------------------------------------------------------------


def run_network(
    mode: str,
    dbs: list[RegionDb],
    sample: list[NationalPerson],
    population: NationalPopulation,
    args: argparse.Namespace,
    locator: LocatorRun | None,
) -> dict[str, Any]:
    tag = f"[{mode}, locator {'on' if locator else 'off'}]"
    searches, seconds = args.searches, args.seconds
    patients = [p.nin.value for p in sample]
    people = {p.nin.value: p for p in population.people}
    probe = probes(population)
    result: dict[str, Any] = {"mode": mode, "locator": "on" if locator else "off"}
    with (
        tempfile.TemporaryDirectory(prefix=f"fanout-{mode}-") as tmp,
        network(mode, dbs, Path(tmp), locator) as net,
    ):
        caller = net.caller
        if caller.key is not None and caller.issuer_key is not None:
            audiences = [HUB_AUDIENCE, *(i.home_community_id.urn for i in DEFAULT_REGIONS)]
            asked_about = [*patients, *(p.nin.value for p in probe.values())]
            caller.tokens = citizen_tokens(caller.issuer_key, caller.key, asked_about, audiences)
        if locator is not None:
            print(
                f"{tag} waiting for the locator (at most {args.locator_wait:.0f} s) …", flush=True
            )
            result["locator_wait"] = asyncio.run(wait_for_locator(net, probe, args.locator_wait))
            print(f"{tag} locator: {result['locator_wait']}", flush=True)
        # Latency: each region directly, then the hub, one client.
        direct: dict[str, Any] = {}
        for proc, info in zip(net.regions, DEFAULT_REGIONS, strict=True):
            timed = asyncio.run(
                sequential(
                    f"{proc.base}/fhir",
                    info.home_community_id.urn,
                    patients,
                    caller,
                    searches,
                    direct=True,
                )
            )
            held = [t.ms for t in timed if info.slug in people[t.patient].regions]
            direct[info.slug] = {**summary(ms(timed)), "holders_only": summary(held or [0.0])}
        slowest = max(direct, key=lambda s: direct[s]["p50"])
        hub_t = asyncio.run(
            sequential(
                f"{net.hub.base}/fhir",
                HUB_AUDIENCE,
                patients,
                caller,
                searches,
                direct=False,
                keep=locator is not None,
            )
        )
        ref = direct[slowest]["p50"]
        result["direct_ms"] = direct
        result["slowest_region"] = slowest
        result["hub_ms"] = summary(ms(hub_t))
        result["hub_over_slowest_direct_p50"] = round(result["hub_ms"]["p50"] / ref, 2)
        result["target_hub_p50_ms"] = round(1.3 * ref + 2, 2)
        result["hub_p50_target_met"] = result["hub_ms"]["p50"] <= 1.3 * ref + 2
        print(f"{tag} direct p50/p99 ms: { {k: v['p50'] for k, v in direct.items()} }", flush=True)
        print(f"{tag} hub p50/p99 ms: {result['hub_ms']} (slowest {slowest}: {ref})", flush=True)
        # Throughput: 16 clients.
        tp, loaded = asyncio.run(
            throughput(
                f"{net.hub.base}/fhir",
                patients,
                caller,
                seconds=seconds,
                concurrency=16,
                keep=locator is not None,
            )
        )
        result["throughput"] = tp
        result["throughput_target_met"] = tp["searches_per_s"] >= 300
        result["p99_under_load_target_met"] = tp["p99_over_p50_under_load"] <= 3
        print(f"{tag} throughput: {tp}", flush=True)
        # Regions asked and missed documents, outside the timed phases.
        if locator is not None:
            t0 = time.perf_counter()
            check = asyncio.run(check_answers(net, [*hub_t, *loaded], len(DEFAULT_REGIONS), people))
            result["locator_check"] = check
            print(f"{tag} locator check ({time.perf_counter() - t0:.0f} s): {check}", flush=True)
        # The hub's own cost: only the slowest region in the directory.
        full = net.directory.read_text()
        only = json.loads(full)
        slow_hcid = next(i.home_community_id.urn for i in DEFAULT_REGIONS if i.slug == slowest)
        only["regions"] = [r for r in only["regions"] if r["home_community_id"] == slow_hcid]
        net.directory.write_text(json.dumps(only))
        time.sleep(1.2)  # the hub checks the file once a second
        single = ms(
            asyncio.run(
                sequential(
                    f"{net.hub.base}/fhir", HUB_AUDIENCE, patients, caller, searches, direct=False
                )
            )
        )
        result["hub_one_region_ms"] = summary(single)
        result["hub_added_to_one_region_p50_ms"] = round(percentile(single, 50) - ref, 2)
        print(f"{tag} hub with only {slowest}: {result['hub_one_region_ms']}", flush=True)
        net.directory.write_text(full)
        time.sleep(1.2)
        # A dead region: stop the last one. The first searches see connection refused (one
        # retry each); after 5 failures the breaker opens and the region is no longer asked.
        dead = net.regions[-1]
        dead.process.terminate()
        dead.process.wait(timeout=20)
        # With the locator on, a patient whose documents are only in the dead region gets 502
        # (every region asked is unavailable): counted, and timed like the others.
        dead_fhir = f"{net.hub.base}/fhir"
        gone = frozenset({200, 502})
        before_open = asyncio.run(
            sequential(
                dead_fhir, HUB_AUDIENCE, patients, caller, 5, direct=False, warmup=0, statuses=gone
            )
        )
        after = asyncio.run(
            sequential(
                dead_fhir, HUB_AUDIENCE, patients, caller, searches, direct=False, statuses=gone
            )
        )
        result["dead_region"] = {
            "region": DEFAULT_REGIONS[-1].slug,
            "first_searches_ms": [round(t.ms, 1) for t in before_open],
            "after_breaker_opened_ms": summary(ms(after)),
            "added_p50_ms": round(percentile(ms(after), 50) - result["hub_ms"]["p50"], 2),
            "answers_502_after_breaker_opened": sum(t.status == 502 for t in after),
        }
        result["dead_region_target_met"] = result["dead_region"]["added_p50_ms"] <= 10
        print(f"{tag} dead region: {result['dead_region']}", flush=True)
    return result


# -- the run -------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    head = (
        "backend  mode   loc | direct p50 | hub p50/p99 (×direct, target) | /s 16 cl | "
        "load p50/p99 (p99/p50) | asked | missed | hub+1 region | dead +p50"
    )
    rows = [head, "-" * len(head)]
    for kind, b in results["backends"].items():
        for mode, by_loc in b["runs"].items():
            for loc, r in by_loc.items():
                tp = r["throughput"]
                check = r.get("locator_check")
                asked = f"{check['regions_asked_mean']:.2f}" if check else "4 (all)"
                missed = (
                    str(
                        check["missed_documents_over_whole_lists"]
                        + check["answers_missing_documents_of_the_page"]
                    )
                    if check
                    else "—"
                )
                direct = r["direct_ms"][r["slowest_region"]]["p50"]
                rows.append(
                    f"{kind:8} {mode:6} {loc:3} | {direct:7.2f} ms"
                    f" | {r['hub_ms']['p50']:6.2f}/{r['hub_ms']['p99']:6.2f} ms "
                    f"({r['hub_over_slowest_direct_p50']:.2f}×, ≤ {r['target_hub_p50_ms']:.1f})"
                    f" | {tp['searches_per_s']:8.1f}"
                    f" | {tp['p50_ms_under_load']:.1f}/{tp['p99_ms_under_load']:.1f} "
                    f"({tp['p99_over_p50_under_load']:.1f}×)"
                    f" | {asked:>5} | {missed:>6}"
                    f" | {r['hub_one_region_ms']['p50']:.2f} ms"
                    f" | {r['dead_region']['added_p50_ms']:+.1f} ms"
                )
    return "\n".join(rows)


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, help="entries per region (default 250,000)")
    parser.add_argument("--backends", help="sqlite,postgres (default both)")
    parser.add_argument("--modes", help="open,trust (default both)")
    parser.add_argument("--locator", help="off,on (default both)")
    parser.add_argument("--searches", type=int, help="timed searches per latency phase (400)")
    parser.add_argument("--seconds", type=float, help="throughput phase length (10 s)")
    parser.add_argument("--sample", type=int, help="people searched for (stratified, 400)")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--locator-wait", type=float, help="seconds to wait for the locator")
    parser.add_argument("--load-jobs", type=int, default=2, help="regions loaded at once")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fanout.json")
    parser.add_argument("--prepare-only", action="store_true", help="build the caches and stop")
    parser.add_argument(
        "--quick", action="store_true", help="development preset: 20,000 entries, SQLite, short"
    )
    args = parser.parse_args()
    preset: dict[str, Any] = {
        "entries": 250_000,
        "backends": "sqlite,postgres",
        "modes": "open,trust",
        "locator": "off,on",
        "searches": 400,
        "seconds": 10.0,
        "sample": 400,
        "locator_wait": 1800.0,
    }
    if args.quick:
        preset.update(
            entries=20_000,
            backends="sqlite",
            searches=100,
            seconds=3.0,
            sample=150,
            locator_wait=120.0,
        )
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main() -> None:
    args = options()
    backends = [b for b in args.backends.split(",") if b]
    modes = [m for m in args.modes.split(",") if m]
    locators = [x for x in args.locator.split(",") if x]
    if not set(locators) <= {"off", "on"} or not set(modes) <= {"open", "trust"}:
        raise SystemExit("--modes takes open,trust and --locator off,on")
    t0 = time.perf_counter()
    population = national_population(args.entries, seed=POPULATION_SEED)
    groups = {k: len(v) for k, v in population.by_region_count().items()}
    shape = {
        **population.shape.describe(),
        "people": len(population.people),
        "people_by_regions_held": {str(k): v for k, v in groups.items()},
        "holders_per_region": {r.slug: len(population.holders(r.slug)) for r in DEFAULT_REGIONS},
    }
    print(
        f"population ({time.perf_counter() - t0:.1f} s): {len(population.people):,} people, "
        f"by regions held {groups} (shape {population.shape.label}); "
        f"{args.entries:,} entries per region",
        flush=True,
    )
    results: dict[str, Any] = {
        "entries_per_region": args.entries,
        "shape": shape,
        "cpus": os.cpu_count(),
        "searches": args.searches,
        "throughput_seconds": args.seconds,
        "modes": modes,
        "locator": locators,
        "backends": {},
    }
    prepared: dict[str, tuple[list[RegionDb], dict[str, float | None]]] = {}
    for kind in backends:
        print(f"[{kind}] preparing the registries …", flush=True)
        prepared[kind] = prepare(kind, population, args.entries, args.load_jobs)
    if args.prepare_only:
        return
    sample = search_sample(population, args.sample)
    results["sample"] = {
        "people": len(sample),
        "by_regions_held": dict(sorted(Counter(len(p.regions) for p in sample).items())),
    }
    print(f"searched people: {results['sample']}", flush=True)
    for kind in backends:
        dbs, loads = prepared[kind]
        backend: dict[str, Any] = {
            "load_seconds": {k: None if v is None else round(v, 1) for k, v in loads.items()},
            "runs": {},
        }
        results["backends"][kind] = backend
        for mode in modes:
            backend["runs"][mode] = {}
            for loc in locators:
                print(f"[{kind}] mode {mode}, locator {loc}", flush=True)
                run = LocatorRun.fresh(args.nats) if loc == "on" else None
                try:
                    backend["runs"][mode][loc] = run_network(
                        mode, dbs, sample, population, args, run
                    )
                finally:
                    if run is not None:
                        asyncio.run(run.remove())
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
