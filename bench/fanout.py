"""Benchmark the national hub's fan-out: four regions of ≥ 250,000 entries each, all processes.

Set-up: four regional sources (SQLite, `onerecord source serve`) each holding N entries
(default 250,000) over a shared list of N/10 patients (about ten documents per patient per
region), and the hub (`onerecord hub serve`), five processes on this machine. The loaded
registries are cached under bench/.cache/fanout-N/ and reused.

In one run, per mode:
- latency: p50/p99 of one patient's ITI-67 search (`_count=20`) through the hub, one client with
  keep-alive, next to the same search sent directly to each region — the slowest region's p50
  is the reference (target: hub p50 ≤ 1.3 × slowest direct p50 + 2 ms);
- throughput: hub searches/s with 16 concurrent clients for 10 s (target ≥ 300/s);
- the hub's own cost: the same search through the hub with only the slowest region in its
  directory (what the hub adds to one region, without four regions sharing two cores);
- a dead region: one region stopped; hub latency of the first 5 searches (before the breaker
  opens: connection refused, one retry after 5 ms) and p50 after the breaker opened
  (target: ≤ 10 ms added).

Modes: `open` (hub and sources in development open access: no tokens, no audit) and `trust`
(citizen DPoP-bound tokens checked at the hub, hub assertions checked at each region, policy
and audit at every region and at the hub; the direct searches carry a token for that region).
The client signs its DPoP proof before the timer starts.

Prints the figures and writes bench/results/fanout.json.
Usage: .venv/bin/python bench/fanout.py [--entries 250000] [--modes open,trust]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.servers import free_port  # noqa: E402

from onerecord.source.database import make_engine  # noqa: E402
from onerecord.source.migrate import upgrade  # noqa: E402
from onerecord.source.store import SqlDocumentStore  # noqa: E402
from onerecord.synth.documents import fast_entries  # noqa: E402
from onerecord.synth.regions import DEFAULT_REGIONS, RegionInfo  # noqa: E402
from onerecord.trust.access_token import issue_access_token  # noqa: E402
from onerecord.trust.dpop import make_proof  # noqa: E402
from onerecord.trust.keys import SigningKey  # noqa: E402

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
CACHE = ROOT / "bench" / ".cache"
ISSUER = "https://sts.bench.invalid"
HUB_AUDIENCE = "onerecord:hub"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 2), "p99": round(percentile(values, 99), 2)}


def make_patients(n: int) -> list[str]:
    from datetime import date, timedelta

    from onerecord.synth.numbers import synthetic_fnr

    rng = random.Random(11)
    out: set[str] = set()
    while len(out) < n:
        born = date(1930, 1, 1) + timedelta(days=rng.randrange(0, 365 * 90))
        out.add(str(synthetic_fnr(rng, born)))
    return sorted(out)


async def fill(db: Path, region: RegionInfo, seed: int, entries: int, patients: list[str]) -> None:
    """Bulk-load one region's registry, unless the cached file already holds `entries` rows."""
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    try:
        await upgrade(engine)
        store = SqlDocumentStore(engine)
        have = await store.count()
        if have == entries:
            print(f"  {region.name}: reusing {entries:,} cached entries", flush=True)
            return
        if have:
            raise SystemExit(f"{db} holds {have} entries, not {entries}: delete it")
        t0 = time.perf_counter()
        await store.bulk_load(
            fast_entries(entries, seed=seed, region=region, patients=patients), batch_size=5000
        )
        dt = time.perf_counter() - t0
        print(f"  {region.name}: loaded {entries:,} in {dt:.0f} s", flush=True)
    finally:
        await engine.dispose()


@dataclass
class Proc:
    name: str
    base: str
    process: subprocess.Popen[bytes]


def start(name: str, args: list[str], port: int, log: Path) -> Proc:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "onerecord.cli", *args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Proc(name, f"http://127.0.0.1:{port}", proc)


def wait_ready(procs: list[Proc], path: str = "/healthz") -> None:
    deadline = time.monotonic() + 60
    for p in procs:
        while True:
            if p.process.poll() is not None:
                raise RuntimeError(f"{p.name} exited with {p.process.returncode}")
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


async def sequential(
    fhir: str,
    audience: str,
    patients: list[str],
    caller: Caller,
    n: int,
    *,
    direct: bool,
    warmup: int = 30,
) -> list[float]:
    """Time n searches one after another (keep-alive), after `warmup` untimed ones."""
    rng = random.Random(5)
    url = f"{fhir}/DocumentReference"
    timings: list[float] = []
    async with aiohttp.ClientSession() as http:
        for i in range(n + warmup):
            patient = rng.choice(patients)
            params = {"patient.identifier": f"{FNR}|{patient}", "_count": "20"}
            headers = caller.headers(audience, patient, url, direct=direct)
            t0 = time.perf_counter()
            async with http.get(url, params=params, headers=headers) as r:
                await r.read()
                status = r.status
            dt = (time.perf_counter() - t0) * 1000
            if status != 200:
                raise RuntimeError(f"{url}: HTTP {status}")
            if i >= warmup:
                timings.append(dt)
    return timings


async def throughput(
    fhir: str, patients: list[str], caller: Caller, *, seconds: float, concurrency: int
) -> dict[str, float]:
    url = f"{fhir}/DocumentReference"
    done = 0
    failed = 0
    timings: list[float] = []
    ends = time.perf_counter() + seconds

    async def worker(seed: int, http: aiohttp.ClientSession) -> None:
        nonlocal done, failed
        rng = random.Random(seed)
        while time.perf_counter() < ends:
            patient = rng.choice(patients)
            params = {"patient.identifier": f"{FNR}|{patient}", "_count": "20"}
            headers = caller.headers(HUB_AUDIENCE, patient, url, direct=False)
            t0 = time.perf_counter()
            async with http.get(url, params=params, headers=headers) as r:
                await r.read()
                ok = r.status == 200
            timings.append((time.perf_counter() - t0) * 1000)
            done += ok
            failed += not ok

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i, http) for i in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {
        "searches_per_s": round(done / elapsed, 1),
        "failed": failed,
        "concurrency": concurrency,
        "p50_ms_under_load": round(percentile(timings, 50), 2),
        "p99_ms_under_load": round(percentile(timings, 99), 2),
    }


def citizen_tokens(
    key: SigningKey, dpop: SigningKey, patients: list[str], audiences: list[str]
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
            lifetime=3600,
            claims={
                "helseid://claims/identity/pid": nin,
                "acr": "idporten-loa-high",
                "onerecord:representation": [],
            },
        )
        for aud in audiences
        for nin in patients
    }


@contextlib.contextmanager
def network(mode: str, dbs: list[Path], work: Path) -> Iterator[tuple[Proc, list[Proc], Caller]]:
    """Start four regions and the hub in `mode`; yield (hub, regions, caller)."""
    hub_port = free_port()
    hub_base = f"http://127.0.0.1:{hub_port}"
    procs: list[Proc] = []
    extra: list[Proc] = []
    caller = Caller({}, None, {})
    trust: list[str] = []
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
            "--audit-db",
            f"sqlite:///{work / 'hub-audit.db'}",
        ]
        dpop = SigningKey.generate(kid="bench-client")
        # Tokens are filled in by run_mode for the patients it asks about.
        caller = Caller({}, dpop, {"nhn-source-system": "onerecord-bench"}, issuer_key)
    else:
        trust = ["--dev", "--dev-open-access"]
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
                    "--db",
                    f"sqlite:///{db}",
                    "--content",
                    str(work / f"content{i}"),
                    "--port",
                    str(port),
                    *trust,
                ],
                port,
                work / f"{info.slug}.log",
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
    hub = start(
        "hub",
        ["hub", "serve", "--directory", str(directory), "--port", str(hub_port), *hub_trust],
        hub_port,
        work / "hub.log",
    )
    procs = [*regions, hub]
    try:
        wait_ready(procs)
        yield hub, regions, caller
    finally:
        stop([*procs, *extra])


def run_mode(
    mode: str, dbs: list[Path], patients: list[str], searches: int, seconds: float
) -> dict[str, Any]:
    sample = random.Random(9).sample(patients, 300)
    with tempfile.TemporaryDirectory(prefix=f"fanout-{mode}-") as tmp:
        with network(mode, dbs, Path(tmp)) as (hub, regions, caller):
            if caller.key is not None and caller.issuer_key is not None:
                audiences = [HUB_AUDIENCE, *(i.home_community_id.urn for i in DEFAULT_REGIONS)]
                caller.tokens = citizen_tokens(caller.issuer_key, caller.key, sample, audiences)
            result: dict[str, Any] = {"mode": mode}
            direct: dict[str, Any] = {}
            for proc, info in zip(regions, DEFAULT_REGIONS, strict=True):
                t = asyncio.run(
                    sequential(
                        f"{proc.base}/fhir",
                        info.home_community_id.urn,
                        sample,
                        caller,
                        searches,
                        direct=True,
                    )
                )
                direct[info.slug] = summary(t)
            slowest = max(direct, key=lambda s: direct[s]["p50"])
            hub_t = asyncio.run(
                sequential(f"{hub.base}/fhir", HUB_AUDIENCE, sample, caller, searches, direct=False)
            )
            result["direct_ms"] = direct
            result["slowest_region"] = slowest
            result["hub_ms"] = summary(hub_t)
            ref = direct[slowest]["p50"]
            result["target_hub_p50_ms"] = round(1.3 * ref + 2, 2)
            result["hub_p50_target_met"] = result["hub_ms"]["p50"] <= 1.3 * ref + 2
            print(f"[{mode}] direct p50/p99 ms: {direct}", flush=True)
            print(f"[{mode}] hub p50/p99 ms: {result['hub_ms']} (slowest {slowest})", flush=True)
            tp = asyncio.run(
                throughput(f"{hub.base}/fhir", sample, caller, seconds=seconds, concurrency=16)
            )
            result["throughput"] = tp
            result["throughput_target_met"] = tp["searches_per_s"] >= 300
            print(f"[{mode}] throughput: {tp}", flush=True)
            # The hub's own cost: only the slowest region in the directory.
            directory = Path(tmp) / "regions.json"
            full = directory.read_text()
            only = json.loads(full)
            slow_hcid = next(i.home_community_id.urn for i in DEFAULT_REGIONS if i.slug == slowest)
            only["regions"] = [r for r in only["regions"] if r["home_community_id"] == slow_hcid]
            directory.write_text(json.dumps(only))
            time.sleep(1.2)  # the hub checks the file once a second
            single = asyncio.run(
                sequential(f"{hub.base}/fhir", HUB_AUDIENCE, sample, caller, searches, direct=False)
            )
            result["hub_one_region_ms"] = summary(single)
            result["hub_added_to_one_region_p50_ms"] = round(percentile(single, 50) - ref, 2)
            print(f"[{mode}] hub with only {slowest}: {result['hub_one_region_ms']}", flush=True)
            directory.write_text(full)
            time.sleep(1.2)
            # A dead region: stop the last one.
            dead = regions[-1]
            dead.process.terminate()
            dead.process.wait(timeout=20)
            # The first five searches see connection refused (and one retry after 50 ms each);
            # then the breaker (5 failures) opens and the region is no longer asked.
            before_open = asyncio.run(
                sequential(
                    f"{hub.base}/fhir", HUB_AUDIENCE, sample, caller, 5, direct=False, warmup=0
                )
            )
            after = asyncio.run(
                sequential(f"{hub.base}/fhir", HUB_AUDIENCE, sample, caller, searches, direct=False)
            )
            result["dead_region"] = {
                "first_searches_ms": [round(x, 1) for x in before_open],
                "after_breaker_opened_ms": summary(after),
                "added_p50_ms": round(percentile(after, 50) - result["hub_ms"]["p50"], 2),
            }
            result["dead_region_target_met"] = result["dead_region"]["added_p50_ms"] <= 10
            print(f"[{mode}] dead region: {result['dead_region']}", flush=True)
            return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=250_000)
    parser.add_argument("--searches", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--modes", default="open,trust")
    args = parser.parse_args()
    patients = make_patients(max(1, args.entries // 10))
    folder = CACHE / f"fanout-{args.entries}"
    folder.mkdir(parents=True, exist_ok=True)
    dbs = [folder / f"{info.slug}.db" for info in DEFAULT_REGIONS]
    print(f"regions: {args.entries:,} entries each over {len(patients):,} patients", flush=True)
    for i, (info, db) in enumerate(zip(DEFAULT_REGIONS, dbs, strict=True)):
        asyncio.run(fill(db, info, 100 + i, args.entries, patients))
    results: dict[str, Any] = {
        "entries_per_region": args.entries,
        "patients": len(patients),
        "cpus": os.cpu_count(),
        "searches": args.searches,
        "modes": {},
    }
    for mode in args.modes.split(","):
        results["modes"][mode] = run_mode(mode, dbs, patients, args.searches, args.seconds)
    out = ROOT / "bench" / "results" / "fanout.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
