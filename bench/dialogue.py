"""Benchmark the dialogue service (issue 15): the clinic's work list and the free-slot lookup.

A real dialogue server on 127.0.0.1 (uvicorn in a process of its own, the trust path on:
DPoP-bound tokens signed as the STS would, a new proof per request), its database seeded in
bulk with one GP office holding `--threads` threads and requests (e-consultations, contact
threads and renewals from 2,000 patients over the last year; about a third still waiting) and
`--slots` slots over a year around now, most of them booked, the next four weeks' free ones
(≈ 8 a working day) offered. Measured one request at a time, as the client sees it:

- the work list's first page (`GET /fhir/Task?organization=…&_count=50`, waiting ones, the
  earliest limit first) — the page the office opens;
- a deeper page (`_cursor` from a next link, 20 pages in) and the first page over all statuses;
- the free-slot lookup of a citizen (`GET /fhir/Slot?patient=…`).

Each read is audited as in production (one record per patient on the page, one append).
Targets (issue 15): work list p99 ≤ 100 ms, free-slot lookup p99 ≤ 50 ms.
Prints the figures and writes bench/results/dialogue.json (SQLite and, with --postgres, PG).

`--baseline SRC` serves another source tree beside this one (e.g. `/work/main/src`, the code
before a change), over a database seeded alike (taken back to that tree's newest migration):
the two servers' requests alternate one by one, so before and after are measured under the
same load of a shared machine ("before" in the JSON). `--profile PREFIX` writes each server's
cProfile (and no result file).

Usage: PYTHONPATH=src .venv/bin/python bench/dialogue.py [--threads 10000] [--slots 20000]
       [--requests 300] [--postgres] [--baseline SRC] [--profile PREFIX]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
sys.path.insert(0, str(ROOT))

from tests.dialogue.harness import (  # noqa: E402
    ADULT,
    AUDIENCE,
    ISSUER,
    ORG,
    Clock,
    Dialogue,
)
from tests.dialogue.harness import _seed as seed_office  # noqa: E402
from tests.support.servers import free_port  # noqa: E402

from onerecord.dialogue import answer_due, schema  # noqa: E402
from onerecord.dialogue.database import make_engine  # noqa: E402
from onerecord.synth.numbers import synthetic_fnr  # noqa: E402
from onerecord.trust.keys import SigningKey  # noqa: E402

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
PATIENTS = 2000
TARGET_INBOX_MS = 100.0
TARGET_SLOTS_MS = 50.0


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def _seed(url: str, db_schema: str | None, threads: int, slots: int) -> dict[str, int]:
    """Bulk rows: threads (first message + request), renewals, slots (free only ahead)."""
    rng = random.Random(15)
    engine = make_engine(url, schema=db_schema)
    now = _now()
    patients = [
        synthetic_fnr(rng, date(1940, 1, 1) + timedelta(days=rng.randrange(25_000))).value
        for _ in range(PATIENTS)
    ]
    messages, requests, rows = [], [], []
    waiting = 0
    for i in range(threads):
        created = now - timedelta(minutes=rng.randrange(0, 365 * 24 * 60))
        kind = rng.choices(["e-consultation", "contact-office", "prescription-renewal"], [5, 3, 2])[
            0
        ]
        status = "requested" if rng.random() < 0.33 else "completed"
        waiting += status == "requested"
        patient = rng.choice(patients)
        ident = f"b{i:06d}{secrets.token_hex(4)}"
        if kind != "prescription-renewal":
            messages.append(
                {
                    "id": ident,
                    "thread_id": ident,
                    "office": ORG,
                    "patient": patient,
                    "category": kind,
                    "sender": "citizen",
                    "author": patient,
                    "author_name": None,
                    "text": "Syntetisk henvendelse " * 4,
                    "sent": created,
                    "in_response_to": None,
                }
            )
        requests.append(
            {
                "id": f"r{ident}",
                "kind": kind,
                "office": ORG,
                "patient": patient,
                "requester": patient,
                "created": created,
                "due": answer_due(created),
                "status": status,
                "thread_id": ident if kind != "prescription-renewal" else None,
                "medication_id": "med-x" if kind == "prescription-renewal" else None,
                "note": None,
                "fee_acknowledged": created if kind == "e-consultation" else None,
                "status_reason": None,
                "handled": None if status == "requested" else created + timedelta(days=1),
            }
        )
    free = 0
    for i in range(slots):
        start = (now + timedelta(days=rng.uniform(-330, 35))).replace(
            minute=rng.choice([0, 20, 40]), second=0
        )
        ahead = now < start < now + timedelta(days=28)
        # Ahead, about one in six is still free (≈ 8 a working day); everything past is taken.
        is_free = ahead and rng.random() < 0.17
        free += is_free
        rows.append(
            {
                "id": f"s{i:06d}{secrets.token_hex(4)}",
                "office": ORG,
                "start": start,
                "end": start + timedelta(minutes=20),
                "mode": rng.choice(["in-person", "video"]),
                "free": is_free,
            }
        )
    try:
        async with engine.begin() as conn:
            for table, values in (
                (schema.message, messages),
                (schema.request, requests),
                (schema.slot, rows),
            ):
                for k in range(0, len(values), 2000):
                    await conn.execute(insert(table), values[k : k + 2000])
            if url.startswith("postgresql"):
                await conn.execute(text("ANALYZE"))
    finally:
        await engine.dispose()
    return {"threads": threads, "waiting": waiting, "slots": slots, "free_ahead": free}


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2)


Call = Callable[[], httpx.Response]


def _figures(samples: list[float], served: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": _p(samples, 0.99),
        "max_ms": round(max(samples), 2),
        "service_p50_ms": _p(served, 0.5) if served else 0.0,
        "service_p99_ms": _p(served, 0.99) if served else 0.0,
    }


def _cpu_seconds(pid: int) -> float:
    """The CPU time a process has used so far (user + system, all its threads; Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _time(
    calls: dict[str, Call], pids: dict[str, int], n: int, warmup: int = 20
) -> dict[str, dict[str, float]]:
    """Client-observed times, and the service's own (`Server-Timing`) for the same requests.

    With more than one server (`--baseline`), their requests alternate one by one, the first
    server changing each round, so each sees the same load on the machine. `cpu_ms_mean`: the
    server process's CPU time over the measured requests, per request (the one figure the
    machine's load does not change; a PostgreSQL backend's own CPU is not in it).
    """
    for _ in range(warmup):
        for call in calls.values():
            call()
    cpu_start = {name: _cpu_seconds(pids[name]) for name in calls}
    samples: dict[str, list[float]] = {k: [] for k in calls}
    served: dict[str, list[float]] = {k: [] for k in calls}
    order = list(calls)
    for i in range(n):
        for name in order[i % len(order) :] + order[: i % len(order)]:
            start = time.perf_counter()
            response = calls[name]()
            samples[name].append((time.perf_counter() - start) * 1000)
            timing = response.headers.get("server-timing", "")
            if "dur=" in timing:
                served[name].append(float(timing.split("dur=")[1]))
    out = {k: _figures(samples[k], served[k]) for k in calls}
    for name in calls:
        used = _cpu_seconds(pids[name]) - cpu_start[name]
        out[name]["cpu_ms_mean"] = round(used * 1000 / n, 2)
    return out


def _requests(dialogue: Dialogue) -> tuple[dict[str, Call], dict[str, int]]:
    """The measured requests against one server, and what its lists hold."""
    gp, me = dialogue.staff(), dialogue.citizen(ADULT)

    def first_page() -> httpx.Response:
        r = dialogue.get(gp, "Task", organization=ORG, _count="50")
        assert r.status_code == 200, r.text
        assert len(r.json()["entry"]) == 50
        return r

    def portal_page() -> httpx.Response:
        r = dialogue.get(gp, "Task", organization=ORG, _count="25", status="requested")
        assert r.status_code == 200, r.text
        return r

    def all_statuses() -> httpx.Response:
        r = dialogue.get(
            gp, "Task", organization=ORG, _count="50", status="requested,completed,rejected"
        )
        assert r.status_code == 200, r.text
        return r

    cursor = None
    for _ in range(20):
        params = {"organization": ORG, "_count": "50", **({"_cursor": cursor} if cursor else {})}
        body = dialogue.get(gp, "Task", **params).json()
        cursor = parse_qs(urlsplit(body["link"][0]["url"]).query)["_cursor"][0]
    assert cursor is not None
    deep_cursor: str = cursor

    def deep_page() -> httpx.Response:
        r = dialogue.get(gp, "Task", organization=ORG, _count="50", _cursor=deep_cursor)
        assert r.status_code == 200, r.text
        return r

    def free_slots() -> httpx.Response:
        r = dialogue.get(me, "Slot", patient=ADULT)
        assert r.status_code == 200, r.text
        return r

    offered = len(dialogue.get(me, "Slot", patient=ADULT).json()["entry"])
    total = dialogue.get(gp, "Task", organization=ORG, _count="1").json()["total"]
    calls = {
        "inbox_first_page": first_page,
        "inbox_portal_page_25": portal_page,
        "inbox_page_21": deep_page,
        "inbox_all_statuses": all_statuses,
        "free_slot_lookup": free_slots,
    }
    return calls, {"inbox_waiting_total": total, "free_slots_offered": offered}


PAGES = ("inbox_first_page", "inbox_portal_page_25", "inbox_page_21", "inbox_all_statuses")


def _measure(dialogues: dict[str, tuple[Dialogue, int]], n: int) -> dict[str, dict[str, Any]]:
    """Each request kind in turn, timed on every server (interleaved); values: (client, pid)."""
    prepared = {name: _requests(d) for name, (d, _) in dialogues.items()}
    pids = {name: pid for name, (_, pid) in dialogues.items()}
    out: dict[str, dict[str, Any]] = {name: dict(sizes) for name, (_, sizes) in prepared.items()}
    for kind in (*PAGES, "free_slot_lookup"):
        timed = _time({name: calls[kind] for name, (calls, _) in prepared.items()}, pids, n)
        for name, figures in timed.items():
            out[name][kind] = figures
    for result in out.values():
        worst_inbox = max(result[k]["p99_ms"] for k in PAGES)
        result["inbox_p99_met"] = worst_inbox <= TARGET_INBOX_MS
        result["free_slot_p99_met"] = result["free_slot_lookup"]["p99_ms"] <= TARGET_SLOTS_MS
    return out


# The server process, run as `python -c SERVE ARGS` with the source tree to serve on its
# PYTHONPATH (this one, or --baseline's): the dialogue service on 127.0.0.1, real time.
SERVE = """
import json, sys
import uvicorn
from onerecord.dialogue.app import create_app
from onerecord.dialogue.settings import DialogueSettings
from onerecord.trust.keys import SigningKey, StaticJwks

a = json.loads(sys.argv[1])
settings = DialogueSettings(
    db_url=a["url"], db_schema=a["schema"], public_base_url=f"http://127.0.0.1:{a['port']}",
    issuer=a["issuer"], jwks_url=a["issuer"] + "/jwks", audience=a["audience"],
)
app = create_app(settings, keys=StaticJwks([SigningKey.from_jwk(a["jwk"])]))
if a["profile"] is None:
    uvicorn.run(app, host="127.0.0.1", port=a["port"], log_level="warning")
else:
    import cProfile, signal

    # Until the bench stops the server: uvicorn shuts down on SIGTERM and raises it again
    # under the handler it found, this one.
    profiler = cProfile.Profile()

    def stop(_signum, _frame):
        profiler.disable()
        profiler.dump_stats(a["profile"])
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    profiler.enable()
    uvicorn.run(app, host="127.0.0.1", port=a["port"], log_level="warning")
"""


@contextmanager
def _server(
    src: Path, url: str, db_schema: str | None, key: SigningKey, profile: str | None
) -> Iterator[tuple[Dialogue, int]]:
    """A dialogue server from the source tree `src`, in a process of its own (no GIL shared
    with the client), until the block ends."""
    port = free_port()
    given = {
        "url": url,
        "schema": db_schema,
        "port": port,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "jwk": key.private_jwk(),
        "profile": profile,
    }
    env = {**os.environ, "PYTHONPATH": str(src)}
    server = subprocess.Popen([sys.executable, "-c", SERVE, json.dumps(given)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the dialogue service from {src} did not start")
            time.sleep(0.2)
        dialogue = Dialogue(base, key, Clock(), url, db_schema)
        try:
            yield dialogue, server.pid
        finally:
            dialogue.client.close()
    finally:
        server.terminate()
        server.wait(10)


def _head_of(src: Path) -> str:
    """The newest dialogue migration of the source tree `src`."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(src / "onerecord/dialogue/migrations"))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


async def _downgrade(url: str, db_schema: str | None, revision: str) -> None:
    """Take a seeded database back to `revision`, for a baseline that does not know later ones."""
    from alembic import command

    from onerecord.dialogue.database import MIGRATIONS

    engine = make_engine(url, schema=db_schema)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(
                lambda sync: command.downgrade(MIGRATIONS.alembic_config(sync), revision)
            )
            await conn.commit()
    finally:
        await engine.dispose()


async def _seeded(url: str, db_schema: str | None, args: argparse.Namespace) -> dict[str, int]:
    await seed_office(url, db_schema)
    return await _seed(url, db_schema, args.threads, args.slots)


def _run(
    databases: Mapping[str, tuple[str, str | None]], label: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Seed each server's database alike, start the servers, measure them side by side.

    `databases`: "after" (this tree) and, with --baseline, "before", each (url, schema).
    """
    seeded = {}
    for name, (url, db_schema) in databases.items():
        seeded = asyncio.run(_seeded(url, db_schema, args))
        if name == "before":
            head = _head_of(args.baseline)
            if head != _head_of(SRC):
                asyncio.run(_downgrade(url, db_schema, head))
    key = SigningKey.generate(kid="sts-bench")
    trees = {"after": SRC, "before": args.baseline}
    with ExitStack() as stack:
        dialogues = {
            name: stack.enter_context(
                _server(
                    trees[name],
                    url,
                    db_schema,
                    key,
                    f"{args.profile}-{label}-{name}.prof" if args.profile else None,
                )
            )
            for name, (url, db_schema) in databases.items()
        }
        measured = _measure(dialogues, args.requests)
    out: dict[str, Any] = {"seeded": seeded, **measured["after"]}
    if "before" in measured:
        out["before"] = measured["before"]
    return out


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--slots", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="SRC",
        help="also serve another tree's src (e.g. /work/main/src), measured interleaved",
    )
    parser.add_argument(
        "--profile",
        metavar="PREFIX",
        help="profile the servers (cProfile): PREFIX-<database>-<after|before>.prof",
    )
    args = parser.parse_args()
    results: dict[str, Any] = {
        "threads": args.threads,
        "slots": args.slots,
        "requests": args.requests,
        "targets": {"inbox_p99_ms": TARGET_INBOX_MS, "free_slot_p99_ms": TARGET_SLOTS_MS},
        "load_average_before": os.getloadavg(),
    }
    servers = ("after", "before") if args.baseline else ("after",)
    with tempfile.TemporaryDirectory() as folder:
        databases = {name: (f"sqlite:///{folder}/{name}.db", None) for name in servers}
        results["sqlite"] = _run(databases, "sqlite", args)
    if args.postgres:
        names = {name: f"bench_{secrets.token_hex(4)}" for name in servers}
        for schema_name in names.values():
            asyncio.run(_pg(f'CREATE SCHEMA "{schema_name}"'))
        try:
            pg = {name: (POSTGRES, schema_name) for name, schema_name in names.items()}
            results["postgresql"] = _run(pg, "postgresql", args)
        finally:
            for schema_name in names.values():
                asyncio.run(_pg(f'DROP SCHEMA "{schema_name}" CASCADE'))
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    if args.profile:
        return  # a profiled server is slower: its figures are not the bench's
    out = ROOT / "bench" / "results" / "dialogue.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
