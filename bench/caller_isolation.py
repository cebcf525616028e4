"""One hostile caller must not hurt another: bad requests at 50/s beside a normal searcher.

Set-up: `onerecord demo` (token service, hub, four regions, the portals; SQLite), all processes
on 127.0.0.1. Two health workers log in through the token service with DPoP-bound tokens:

- the **normal caller** (the demo's doctor) searches one patient's overview through the hub, one
  request at a time with keep-alive, paced at `--normal-rate` (default 10/s: a busy clinic, within
  the per-caller quota of 20/s);
- the **hostile caller** (the demo's nurse, her own token and key) sends bad requests at a fixed
  rate (default 50/s), cycling through the shapes issue 10 names: `date=0001`, `date=9999-12-31`,
  an unknown `nhn-access-basis`, a 50,000-character `author.given`, an OR-list of 1,000 `type`
  codes, a tampered `_cursor`, a `POST _search` with 100,000 parameters, a JOSE header whose `alg`
  is a list, a DPoP proof with `"iat": NaN`, and a request with no token at all.

Phases, each `--seconds` long (default 20): the normal caller alone (baseline), then both at once.
Reported: the normal caller's p50/p99 in each phase and their ratio (target: p99 under attack ≤
1.5 × baseline p99), the hostile answers by status (target: no 5xx), and the hub's breaker state
per region after the attack (target: every breaker closed). Bounded in time and count; loopback
only.

Prints the figures and writes bench/results/caller_isolation.json.
Usage: .venv/bin/python bench/caller_isolation.py [--seconds 20] [--rate 50]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.servers import free_port_block  # noqa: E402

from onerecord.search_client import (  # noqa: E402
    HubSession,
    StaffMember,
    patient_identifier,
    practitioner_session,
)
from onerecord.trust.keys import SigningKey  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "caller_isolation.json"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p99_ms": round(percentile(values, 99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2) if values else float("nan"),
    }


def start_demo(workdir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    base = free_port_block(7)
    manifest = workdir / "manifest.json"
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "onerecord.cli",
            "demo",
            "--workdir",
            str(workdir),
            "--base-port",
            str(base),
            "--citizens",
            "4",
            "--manifest",
            str(manifest),
        ],
        env={**os.environ, "COLUMNS": "120"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not manifest.exists():
        if demo.poll() is not None or time.monotonic() > deadline:
            demo.kill()
            raise SystemExit("the demo did not start")
        time.sleep(0.2)
    time.sleep(0.3)
    return demo, json.loads(manifest.read_text())


def stop_demo(demo: subprocess.Popen[bytes]) -> None:
    demo.send_signal(signal.SIGINT)
    try:
        demo.wait(timeout=30)
    except subprocess.TimeoutExpired:
        demo.kill()
        demo.wait()


async def log_in(
    http: httpx.AsyncClient, manifest: dict[str, Any], staff: str, patient: str
) -> HubSession:
    key = SigningKey.from_jwk(json.loads(Path(manifest["client"]["key_file"]).read_bytes()))
    return await practitioner_session(
        http,
        sts_url=manifest["sts"]["issuer"],
        client_id=manifest["client"]["client_id"],
        client_key=key,
        staff=StaffMember.from_manifest(manifest["staff"][staff]),
        patient=patient,
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jws(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return ".".join(
        [
            _b64(json.dumps(header).encode()),
            _b64(json.dumps(claims, allow_nan=True).encode()),
            _b64(b"\0" * 64),
        ]
    )


Attack = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


def attacks(hub_fhir: str, session: HubSession, patient: str) -> list[tuple[str, Attack]]:
    """The hostile shapes, each a coroutine factory sending one bad request."""
    url = f"{hub_fhir}/DocumentReference"
    ident = patient_identifier(patient)

    def get(params: dict[str, str], extra: dict[str, str] | None = None) -> Attack:
        async def send(http: httpx.AsyncClient) -> httpx.Response:
            headers = {**session.headers("GET", url), **(extra or {})}
            return await http.get(
                url, params={"patient.identifier": ident, **params}, headers=headers
            )

        return send

    async def huge_post(http: httpx.AsyncClient) -> httpx.Response:
        post_url = f"{url}/_search"
        body = "&".join(f"p{i}=x" for i in range(100_000))
        headers = {
            **session.headers("POST", post_url),
            "content-type": "application/x-www-form-urlencoded",
        }
        return await http.post(post_url, content=body, headers=headers)

    async def list_alg(http: httpx.AsyncClient) -> httpx.Response:
        token = _jws({"alg": ["ES256", "none"], "typ": {"x": 1}}, {"sub": "x"})
        headers = {"authorization": f"DPoP {token}", "dpop": token}
        return await http.get(url, params={"patient.identifier": ident}, headers=headers)

    async def nan_iat(http: httpx.AsyncClient) -> httpx.Response:
        proof = _jws(
            {"alg": "ES256", "typ": "dpop+jwt", "jwk": {"kty": "EC"}},
            {"iat": float("nan"), "htm": "GET", "htu": url, "jti": "x"},
        )
        headers = {"authorization": f"DPoP {session.token}", "dpop": proof}
        return await http.get(url, params={"patient.identifier": ident}, headers=headers)

    async def anonymous(http: httpx.AsyncClient) -> httpx.Response:
        return await http.get(url, params={"patient.identifier": ident})

    cursor = _b64(json.dumps({"seq": 2**63, "at": "0001-01-01T00:00:00", "x": True}).encode())
    return [
        ("date=0001", get({"date": "0001"})),
        ("date=9999-12-31", get({"date": "9999-12-31"})),
        ("nhn-access-basis: X", get({}, {"nhn-access-basis": "X"})),
        ("author.given 50,000 chars", get({"author.given": "a" * 50_000})),
        ("type OR-list of 1,000", get({"type": ",".join(f"s|c{i}" for i in range(1000))})),
        ("tampered _cursor", get({"_cursor": cursor})),
        ("POST _search 100,000 params", huge_post),
        ("JOSE alg a list", list_alg),
        ("DPoP iat NaN", nan_iat),
        ("no token", anonymous),
    ]


async def normal_searches(
    http: httpx.AsyncClient,
    hub_fhir: str,
    session: HubSession,
    patient: str,
    seconds: float,
    rate: float,
) -> tuple[list[float], collections.Counter[int]]:
    """One search at a time, started every 1/rate s (a busy clinic's pace, within its quota)."""
    url = f"{hub_fhir}/DocumentReference"
    params = {"patient.identifier": patient_identifier(patient), "_count": "20"}
    times: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    end = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < end:
        headers = session.headers("GET", url)  # signed before the timer starts
        t0 = time.perf_counter()
        answer = await http.get(url, params=params, headers=headers)
        times.append(time.perf_counter() - t0)
        statuses[answer.status_code] += 1
        next_at += 1.0 / rate
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    return times, statuses


async def hostile(
    http: httpx.AsyncClient, shapes: list[tuple[str, Attack]], rate: float, seconds: float
) -> dict[str, collections.Counter[int]]:
    seen: dict[str, collections.Counter[int]] = {name: collections.Counter() for name, _ in shapes}
    interval = 1.0 / rate
    end = time.monotonic() + seconds
    tasks: list[asyncio.Task[None]] = []

    async def one(name: str, send: Attack) -> None:
        try:
            answer = await send(http)
            seen[name][answer.status_code] += 1
        except httpx.HTTPError as exc:
            seen[name][f"transport:{type(exc).__name__}"] += 1  # type: ignore[index]

    i = 0
    next_at = time.monotonic()
    while time.monotonic() < end:
        name, send = shapes[i % len(shapes)]
        tasks.append(asyncio.create_task(one(name, send)))
        i += 1
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    return seen


async def breaker_states(http: httpx.AsyncClient, hub_base: str) -> dict[str, int]:
    text = (await http.get(f"{hub_base}/metrics")).text
    states: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("onerecord_hub_breaker_state{"):
            label, value = line.rsplit(" ", 1)
            states[label.split('"')[1]] = int(float(value))
    return states


async def run(
    manifest: dict[str, Any], seconds: float, rate: float, normal_rate: float
) -> dict[str, Any]:
    hub_fhir = str(manifest["hub"]["fhir_base"]).rstrip("/")
    hub_base = hub_fhir.rsplit("/fhir", 1)[0]
    patient = str(manifest["patients"]["adult"])
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with (
        httpx.AsyncClient(timeout=30) as normal_http,
        httpx.AsyncClient(timeout=30, limits=limits) as bad_http,
    ):
        normal = await log_in(normal_http, manifest, "doctor", patient)
        bad = await log_in(bad_http, manifest, "nurse", patient)
        await normal_searches(normal_http, hub_fhir, normal, patient, 2.0, normal_rate)  # warm-up
        baseline, base_status = await normal_searches(
            normal_http, hub_fhir, normal, patient, seconds, normal_rate
        )
        shapes = attacks(hub_fhir, bad, patient)
        (attacked, attacked_status), hostile_seen = await asyncio.gather(
            normal_searches(normal_http, hub_fhir, normal, patient, seconds, normal_rate),
            hostile(bad_http, shapes, rate, seconds),
        )
        breakers = await breaker_states(normal_http, hub_base)
    base, under = summary(baseline), summary(attacked)
    hostile_by_status: collections.Counter[str] = collections.Counter()
    for counts in hostile_seen.values():
        for status, n in counts.items():
            hostile_by_status[str(status)] += n
    fives = sum(n for s, n in hostile_by_status.items() if s.startswith("5"))
    return {
        "seconds_per_phase": seconds,
        "hostile_rate_per_s": rate,
        "normal_rate_per_s": normal_rate,
        "normal_baseline": base,
        "normal_under_attack": under,
        "p99_ratio": round(under["p99_ms"] / base["p99_ms"], 2),
        "p50_ratio": round(under["p50_ms"] / base["p50_ms"], 2),
        "normal_statuses": {"baseline": dict(base_status), "under_attack": dict(attacked_status)},
        "hostile_by_status": dict(hostile_by_status),
        "hostile_by_shape": {k: {str(s): n for s, n in v.items()} for k, v in hostile_seen.items()},
        "hostile_5xx": fives,
        "breakers_after": breakers,
        "breakers_open_after": sum(1 for v in breakers.values() if v != 0),
        "targets": {
            "p99_ratio_at_most": 1.5,
            "p99_met": under["p99_ms"] <= 1.5 * base["p99_ms"],
            "no_5xx": fives == 0,
            "no_breaker_open": all(v == 0 for v in breakers.values()),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=50.0, help="hostile requests per second")
    parser.add_argument("--normal-rate", type=float, default=10.0, help="normal searches/s")
    args = parser.parse_args()
    if not (1 <= args.seconds <= 120 and 1 <= args.rate <= 200):
        raise SystemExit("--seconds 1..120 and --rate 1..200 keep the run bounded")
    with tempfile.TemporaryDirectory(prefix="onerecord-isolation-") as tmp:
        demo, manifest = start_demo(Path(tmp))
        try:
            result = asyncio.run(run(manifest, args.seconds, args.rate, args.normal_rate))
        finally:
            stop_demo(demo)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_before": os.getloadavg(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for label, key in (("alone", "normal_baseline"), ("under attack", "normal_under_attack")):
        f = result[key]
        print(
            f"normal caller {label:12s} p50 {f['p50_ms']:8.2f} ms  p99 {f['p99_ms']:8.2f} ms"
            f"  (n={f['n']})"
        )
    print(f"p99 ratio {result['p99_ratio']} (target ≤ 1.5)  p50 ratio {result['p50_ratio']}")
    print(
        f"hostile answers by status: {result['hostile_by_status']}  (5xx: {result['hostile_5xx']})"
    )
    print(
        f"breakers open after the attack: {result['breakers_open_after']}"
        f" of {len(result['breakers_after'])}"
    )
    for shape, counts in result["hostile_by_shape"].items():
        print(f"  {shape:30s} {counts}")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
