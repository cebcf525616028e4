"""Benchmark the media archive's C-STORE ingest with DCMTK's storescu as the modality.

Starts `onerecord media serve` as a child process (SQLite in a temporary folder, or PostgreSQL
with `--postgres`, a schema of its own), writes `--instances` synthetic CT slices (`--size`²,
16-bit; 512 gives ≈ 0.5 MB each) and sends them with `--processes` storescu processes at once,
each over one association. Reports instances/s and MB/s; then times one C-FIND for the patient's
studies (`--finds` times, p50/p99 as findscu sees it, process start included).

The archive turns Nagle's algorithm off on its side; Debian's storescu (DCMTK 3.6.7) leaves it
on on its own, which is set off here through its `TCP_NODELAY` environment variable (DCMTK
reads it at run time: "disabling Nagle algorithm as requested at runtime") — say which in any
comparison (issue 14).

Prints the figures and writes bench/results/media_dimse[_postgres][_nagle].json.
Usage: .venv/bin/python bench/media_dimse.py [--instances 200] [--processes 1 4] [--size 512]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.servers import free_port  # noqa: E402

from onerecord.synth.dicom import DicomPatient, ct_study, write_instances  # noqa: E402
from onerecord.synth.numbers import Sex, synthetic_fnr  # noqa: E402

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def _dcmtk(name: str) -> str:
    path = Path("/usr/bin") / name
    if not path.exists():
        raise SystemExit(f"{name} missing: run scripts/install-dicom")
    return str(path)


def _wait(
    url: str,
    proc: subprocess.Popen[bytes],
    *,
    name: str = "archive",
    path: str = "/healthz",
    seconds: float = 60,
) -> None:
    """Until `url` + `path` answers 200; SystemExit when `proc` exits or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}{path}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{name} did not start")


def _storescu(
    files: Sequence[Path],
    processes: int,
    *,
    titles: Sequence[str],
    called_ae: str,
    port: int,
    env: Mapping[str, str],
) -> tuple[float, list[int]]:
    """Send `files` with `processes` storescu processes at once, one association each (the
    files dealt round-robin, calling AE `titles[i]`): the seconds until all ended, their exit
    codes."""
    shares = [files[i::processes] for i in range(processes)]
    start = time.perf_counter()
    senders = [
        subprocess.Popen(
            [_dcmtk("storescu"), "-aet", titles[i], "-aec", called_ae, "127.0.0.1", str(port)]
            + [str(path) for path in share],
            env=env,
        )
        for i, share in enumerate(shares)
    ]
    codes = [s.wait() for s in senders]
    return time.perf_counter() - start, codes


def _psql(sql: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(POSTGRES, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="media-bench-"))
    schema = f"bench_{secrets.token_hex(4)}" if args.postgres else None
    try:
        born = date(1970, 1, 1)
        nin = synthetic_fnr(random.Random(9), born, sex=Sex.MALE)
        patient = DicomPatient(nin, "Testesen", "Sindre", born, "M")
        study = ct_study(
            patient, random.Random(1), study_date=date(2026, 11, 1), slices=args.instances,
            size=args.size,
        )  # fmt: skip
        files = write_instances(list(study.instances), work / "files")
        megabytes = sum(p.stat().st_size for p in files) / 1e6
        db = f"sqlite:///{work / 'archive.db'}"
        extra: list[str] = []
        if schema:
            _psql(f'CREATE SCHEMA "{schema}"')
            db, extra = POSTGRES, ["--db-schema", schema]
        http_port, dimse_port = free_port(), free_port()
        titles = [f"MOD{i}" for i in range(max(args.processes))]
        command = [
            sys.executable, "-m", "onerecord.cli", "media", "serve", "--db", db, *extra,
            "--content", str(work / "content"), "--port", str(http_port),
            "--dimse-port", str(dimse_port), "--log-level", "warning",
            *[x for t in titles for x in ("--modality", f"{t}=127.0.0.1:1")],
        ]  # fmt: skip
        results: dict[str, Any] = {
            "database": "postgresql" if schema else "sqlite",
            "instances": len(files),
            "instance_bytes": files[0].stat().st_size,
            "storescu_tcp_nodelay": not args.nagle,
            "ingest": [],
        }
        env = {**os.environ}
        if not args.nagle:
            env["TCP_NODELAY"] = "1"
        for processes in args.processes:
            archive = subprocess.Popen(command, stdout=subprocess.DEVNULL)
            try:
                _wait(f"http://127.0.0.1:{http_port}", archive)
                seconds, codes = _storescu(
                    files, processes, titles=titles, called_ae="ONERECORD", port=dimse_port,
                    env=env,
                )  # fmt: skip
                if any(codes):
                    raise SystemExit(f"storescu failed: {codes}")
                row = {
                    "processes": processes,
                    "seconds": round(seconds, 3),
                    "instances_per_s": round(len(files) / seconds, 1),
                    "mb_per_s": round(megabytes / seconds, 1),
                }
                results["ingest"].append(row)
                print(
                    f"C-STORE {processes} storescu: {row['instances_per_s']} instances/s, "
                    f"{row['mb_per_s']} MB/s ({len(files)} × {files[0].stat().st_size} B)"
                )
                if processes == args.processes[-1]:
                    results["find"] = _finds(args.finds, dimse_port, str(nin.value))
            finally:
                archive.terminate()
                archive.wait(timeout=30)
            shutil.rmtree(work / "content", ignore_errors=True)
            if schema:
                _psql(f'DROP SCHEMA "{schema}" CASCADE')
                _psql(f'CREATE SCHEMA "{schema}"')
            else:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{work / 'archive.db'}{suffix}").unlink(missing_ok=True)
        return results
    finally:
        if schema:
            _psql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        shutil.rmtree(work, ignore_errors=True)


def _finds(count: int, port: int, patient_id: str) -> dict[str, float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        subprocess.run(
            [_dcmtk("findscu"), "-S", "-aet", "MOD0", "-aec", "ONERECORD",
             "-k", "QueryRetrieveLevel=STUDY", "-k", f"PatientID={patient_id}",
             "-k", "StudyInstanceUID", "-k", "ModalitiesInStudy", "127.0.0.1", str(port)],
            check=True, capture_output=True,
        )  # fmt: skip
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p50 = statistics.median(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"C-FIND study level by PatientID (findscu, process start included): "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")  # fmt: skip
    return {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2), "count": count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--finds", type=int, default=50)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--nagle", action="store_true", help="leave Nagle on in storescu")
    args = parser.parse_args()
    results = {"measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **run(args)}
    name = "media_dimse" + ("_postgres" if args.postgres else "") + ("_nagle" if args.nagle else "")
    out = ROOT / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
