"""Benchmark the audit append alone: concurrent writers, group commit on and off.

`--writers` tasks in one process each append `--appends` single-record batches to one
`SqlAuditSink` (one hash chain), with group commit (the default) and without (one transaction
per append), interleaved in `--rounds` rounds, on SQLite (a file in a temporary directory) and,
when it answers, on PostgreSQL (`--postgres`, a schema of its own, dropped afterwards).
Reports appends/s, transactions committed (counted on the engine), and p50/p99 of one append as
its caller waits for it; checks that each chain verifies.

Prints the figures and writes bench/results/audit_append.json.
Usage: .venv/bin/python bench/audit_append.py [--writers 16] [--appends 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.audit.factories import search_record  # noqa: E402

from onerecord.audit import SqlAuditSink  # noqa: E402
from onerecord.source.database import make_engine  # noqa: E402
from onerecord.source.migrate import upgrade  # noqa: E402

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


async def _run(url: str, schema: str | None, writers: int, appends: int, rounds: int) -> Any:
    engine = make_engine(url, schema=schema)
    await upgrade(engine)
    commits = [0]

    def on_commit(_conn: Any) -> None:
        commits[0] += 1

    event.listen(engine.sync_engine, "commit", on_commit)
    sinks = {
        "grouped": SqlAuditSink(engine, "bench-grouped"),
        "single": SqlAuditSink(engine, "bench-single", group_commit=False),
    }
    waits: dict[str, list[float]] = {name: [] for name in sinks}
    wall = dict.fromkeys(sinks, 0.0)
    transactions = dict.fromkeys(sinks, 0)

    async def writer(name: str, sink: SqlAuditSink, k: int) -> None:
        for i in range(appends):
            start = time.perf_counter()
            await sink.append([search_record(k * appends + i)])
            waits[name].append(time.perf_counter() - start)

    try:
        for sink in sinks.values():  # the head rows exist before the timer starts
            await sink.append([search_record(0)])
        for _ in range(rounds):
            for name, sink in sinks.items():
                before, start = commits[0], time.perf_counter()
                await asyncio.gather(*(writer(name, sink, k) for k in range(writers)))
                wall[name] += time.perf_counter() - start
                transactions[name] += commits[0] - before
        verified = {name: (await sink.verify()).ok for name, sink in sinks.items()}
    finally:
        await engine.dispose()
    total = writers * appends * rounds
    figures: dict[str, Any] = {}
    for name in sinks:
        times = sorted(waits[name])
        figures[name] = {
            "appends_per_s": round(total / wall[name], 1),
            "transactions": transactions[name],
            "append_p50_ms": round(statistics.median(times) * 1000, 3),
            "append_p99_ms": round(times[int(len(times) * 0.99) - 1] * 1000, 3),
            "chain_verifies": verified[name],
        }
    figures["grouped_over_single_throughput"] = round(
        figures["grouped"]["appends_per_s"] / figures["single"]["appends_per_s"], 2
    )
    return figures


async def _postgres(url: str, writers: int, appends: int, rounds: int) -> Any:
    schema = f"bench_{secrets.token_hex(4)}"
    admin = make_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # no server: say so in the results
        await admin.dispose()
        return {"skipped": type(exc).__name__}
    try:
        return await _run(url, schema, writers, appends, rounds)
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        on_sqlite = await _run(
            f"sqlite:///{tmp}/audit.db", None, args.writers, args.appends, args.rounds
        )
    on_postgres = await _postgres(args.postgres, args.writers, args.appends, args.rounds)
    return {
        "writers": args.writers,
        "appends_per_writer_per_round": args.appends,
        "rounds": args.rounds,
        "sqlite": on_sqlite,
        "postgresql": on_postgres,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--appends", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default=POSTGRES)
    result = asyncio.run(main_async(parser.parse_args()))
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / "audit_append.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
