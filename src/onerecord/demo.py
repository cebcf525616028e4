"""`onerecord demo`: the network on 127.0.0.1, each part its own process, with synthetic data."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import Progress, TaskID

from onerecord.synth.dataset import load_population, write_dataset
from onerecord.synth.importer import import_dataset
from onerecord.synth.regions import DEFAULT_REGIONS, RegionInfo

__all__ = ["run_demo"]

console = Console()


@dataclass
class RunningRegion:
    info: RegionInfo
    url: str
    process: subprocess.Popen[bytes]


def _region_command(
    info: RegionInfo, *, port: int, workdir: Path, postgres: str | None
) -> list[str]:
    folder = workdir / info.slug
    folder.mkdir(parents=True, exist_ok=True)
    db = postgres or f"sqlite:///{folder / 'registry.db'}"
    cmd = [
        sys.executable,
        "-m",
        "onerecord.cli",
        "source",
        "serve",
        "--region",
        info.name,
        "--home-community-id",
        info.home_community_id.urn,
        "--repository-unique-id",
        str(info.repository_unique_id),
        "--db",
        db,
        "--content",
        str(folder / "content"),
        "--port",
        str(port),
    ]
    if postgres:
        cmd += ["--db-schema", f"onerecord_{info.slug}"]
    return cmd


async def _create_schemas(postgres: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(postgres.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for info in DEFAULT_REGIONS:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "onerecord_{info.slug}"')
    finally:
        await conn.close()


async def _wait_ready(client: httpx.AsyncClient, region: RunningRegion, deadline: float) -> None:
    while time.monotonic() < deadline:
        if region.process.poll() is not None:
            raise RuntimeError(f"{region.info.name} exited with code {region.process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(f"{region.url}/healthz")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{region.info.name} did not start within the deadline")


async def run_demo(
    *,
    workdir: Path,
    base_port: int,
    citizens: int,
    seed: int,
    postgres: str | None,
    manifest: Path | None,
    exit_when_ready: bool,
) -> int:
    """Start, load, print, wait for Ctrl-C, stop. Returns the exit code."""
    workdir.mkdir(parents=True, exist_ok=True)
    dataset = workdir / "dataset"
    if not (dataset / "population.json").exists():
        with console.status("Generating synthetic patients and documents…"):
            summary = write_dataset(
                dataset, seed=seed, citizens=citizens, reference_date=date.today(), batch_size=50
            )
        console.print(f"Generated {summary}")
    if postgres:
        await _create_schemas(postgres)
    regions: list[RunningRegion] = []
    for offset, info in enumerate(DEFAULT_REGIONS, start=1):
        port = base_port + offset
        proc = subprocess.Popen(
            _region_command(info, port=port, workdir=workdir, postgres=postgres),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        regions.append(RunningRegion(info, f"http://127.0.0.1:{port}", proc))
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            with console.status("Starting four regional document sources…"):
                deadline = time.monotonic() + 60
                await asyncio.gather(*(_wait_ready(client, r, deadline) for r in regions))
            with Progress(console=console) as progress:
                for r in regions:
                    task = progress.add_task(f"Loading {r.info.name}", total=None)

                    def advance(n: int, task: TaskID = task) -> None:
                        progress.advance(task, n)

                    result = await import_dataset(
                        dataset,
                        region=r.info.slug,
                        base_url=r.url,
                        client=client,
                        progress=advance,
                    )
                    progress.update(task, total=result.documents, completed=result.documents)
                    for rejection in result.rejected:
                        console.print(f"[red]rejected[/red] {rejection}")
        _print_ready(regions, dataset)
        if manifest:
            _write_manifest(manifest, regions, dataset)
        if exit_when_ready:
            return 0
        console.print("Press Ctrl-C to stop.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        return 0
    finally:
        for r in regions:
            r.process.terminate()
        for r in regions:
            try:
                r.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                r.process.kill()
        console.print("All regions stopped.")


def _example_patient(dataset: Path) -> str:
    population = load_population(dataset / "population.json")
    return str(population.cast["adult"].nin)


def _print_ready(regions: list[RunningRegion], dataset: Path) -> None:
    for r in regions:
        console.print(f"[bold]{r.info.name:18}[/bold] {r.url}/fhir   {r.info.home_community_id}")
    patient = _example_patient(dataset)
    first = regions[0].url
    console.print("\nTry:")
    console.print(
        f"  curl -s '{first}/fhir/DocumentReference?patient.identifier="
        f"urn:oid:2.16.578.1.12.4.1.4.1|{patient}&_count=5'"
    )


def _write_manifest(path: Path, regions: list[RunningRegion], dataset: Path) -> None:
    population = load_population(dataset / "population.json")
    body = {
        "regions": [
            {
                "slug": r.info.slug,
                "name": r.info.name,
                "home_community_id": r.info.home_community_id.urn,
                "repository_unique_id": str(r.info.repository_unique_id),
                "fhir_base": f"{r.url}/fhir",
            }
            for r in regions
        ],
        "patients": {key: str(c.nin) for key, c in sorted(population.cast.items())},
        "dataset": str(dataset),
    }
    path.write_text(json.dumps(body, indent=2, ensure_ascii=False), encoding="utf-8")
