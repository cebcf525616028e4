"""Command line for synthetic data: `onerecord synth generate` and the import runner."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Annotated

import httpx
import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from onerecord.synth.dataset import write_dataset
from onerecord.synth.importer import (
    GIVE_UP_AFTER,
    ImportSummary,
    RetryNotice,
    TargetUnavailable,
    import_dataset,
)

__all__ = ["TARGET_UNAVAILABLE_EXIT", "run_import", "synth_app"]

TARGET_UNAVAILABLE_EXIT = 3
"""Exit code of an import that gave up on its source (1: some bundles were refused)."""

synth_app = typer.Typer(no_args_is_help=True, help="Synthetic patients and documents.")
console = Console()


@synth_app.callback()
def _group() -> None:
    """Synthetic patients and documents (all identity numbers month + 80)."""


@synth_app.command("generate")
def generate(
    out: Annotated[Path, typer.Option("--out", help="Dataset folder to write.")] = Path(
        "var/dataset"
    ),
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same files.")] = 1,
    citizens: Annotated[int, typer.Option(help="Random citizens besides the fixed cast.")] = 100,
    reference_date: Annotated[
        str | None, typer.Option(help="Ages and dates are relative to this day (YYYY-MM-DD).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Documents per ITI-65 bundle, at most.")] = 50,
) -> None:
    """Generate a synthetic population and every region's documents as ITI-65 bundles."""
    day = date.fromisoformat(reference_date) if reference_date else date.today()
    with console.status("Generating synthetic patients and documents…"):
        summary = write_dataset(
            out, seed=seed, citizens=citizens, reference_date=day, batch_size=batch_size
        )
    table = Table(title=f"Synthetic dataset in {out} (seed {seed}, reference date {day})")
    table.add_column("region")
    table.add_column("documents", justify="right")
    table.add_column("bundles", justify="right")
    for slug, documents in summary.documents.items():
        table.add_row(slug, str(documents), str(summary.bundles[slug]))
    table.add_row("total", str(summary.total_documents), str(sum(summary.bundles.values())))
    console.print(table)
    console.print(f"{summary.citizens} citizens (all synthetic: month + 80).")


@synth_app.command("dicom")
def dicom(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the .dcm files to.")] = Path(
        "var/dicom"
    ),
    patient: Annotated[
        str | None,
        typer.Option(help="The patient's synthetic fødselsnummer (month + 80); default: drawn."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same files.")] = 1,
    size: Annotated[int, typer.Option(help="CT matrix (pixels a side), 512 as a scanner.")] = 512,
    slices: Annotated[int, typer.Option(help="CT slices.")] = 20,
    reference_date: Annotated[
        str | None, typer.Option(help="Study dates lie in the year before (YYYY-MM-DD).")
    ] = None,
    mp4: Annotated[
        bool, typer.Option("--mp4", help="Also write the wound clip as an MP4 file (IHE WIC).")
    ] = False,
) -> None:
    """Write one synthetic patient's DICOM studies (CT, CR, ultrasound cine, skin photos)."""
    from onerecord.domain import InvalidIdentifier
    from onerecord.synth.dicom import (
        DicomPatient,
        patient_studies,
        wound_clip_mp4,
        write_instances,
    )
    from onerecord.synth.numbers import Sex, ensure_synthetic, synthetic_fnr

    day = date.fromisoformat(reference_date) if reference_date else date.today()
    if size < 16 or slices < 1:
        raise typer.BadParameter("size must be at least 16 and slices at least 1")
    if patient is None:
        nin = synthetic_fnr(random.Random(seed), date(1968, 3, 14), sex=Sex.FEMALE)
    else:
        try:
            nin = ensure_synthetic(patient)
        except InvalidIdentifier as exc:
            raise typer.BadParameter(str(exc), param_hint="--patient") from None
    born = nin.birth_date
    sex = "M" if int(nin.value[8]) % 2 else "F"
    person = DicomPatient(nin, "Testesen", "Synne" if sex == "F" else "Sindre", born, sex)
    studies = patient_studies(person, seed=seed, reference_date=day, ct_slices=slices, size=size)
    paths = write_instances([ds for study in studies for ds in study.instances], out)
    for study in studies:
        console.print(f"{study.description}: {len(study.instances)} instance(s)")
    console.print(f"{len(paths)} files in {out} (patient synthetic: month + 80).")
    if mp4:
        clip = out / "wound-clip.mp4"
        clip.write_bytes(wound_clip_mp4(seed))
        console.print(f"{clip}: the wound clip as a phone sends it (STOW-RS, IHE WIC).")


def _expected_documents(dataset: Path, region: str) -> int | None:
    manifest = dataset / "dataset.json"
    if not manifest.exists():
        return None
    regions = orjson.loads(manifest.read_bytes()).get("regions", {})
    count = regions.get(region, {}).get("documents")
    return count if isinstance(count, int) else None


def _print_summary(summary: ImportSummary, region: str) -> None:
    console.print(
        f"[bold]{region}[/bold]: {summary.documents} documents in {summary.bundles} bundles, "
        f"{summary.seconds:.1f} s ({summary.documents_per_second:.0f} documents/s)"
    )
    if summary.rejected:
        console.print(f"[red]{len(summary.rejected)} bundles rejected:[/red]")
        for rejection in summary.rejected:
            console.print(f"  {rejection}", markup=False, highlight=False)


async def _import(
    dataset: Path,
    region: str,
    url: str,
    concurrency: int,
    request_hook: Callable[[httpx.Request], Awaitable[None]] | None,
    progress: Callable[[int], None],
    on_retry: Callable[[RetryNotice], None],
    give_up_after: float,
) -> ImportSummary:
    hooks = {"request": [request_hook]} if request_hook else {}
    timeout = httpx.Timeout(120.0, connect=min(10.0, give_up_after))
    async with httpx.AsyncClient(timeout=timeout, event_hooks=hooks) as client:
        return await import_dataset(
            dataset,
            region=region,
            base_url=url,
            concurrency=concurrency,
            client=client,
            progress=progress,
            on_retry=on_retry,
            give_up_after=give_up_after,
        )


def run_import(
    dataset: Path,
    region: str,
    url: str,
    concurrency: int = 4,
    *,
    request_hook: Callable[[httpx.Request], Awaitable[None]] | None = None,
    give_up_after: float = GIVE_UP_AFTER,
) -> int:
    """Import one region of a dataset with a progress bar; return 0, or 1 if any bundle failed.

    Retries show in the bar and as a line each time the back-off grows; when the source gives
    no answer for `give_up_after` seconds, one line on stderr names it and the cause, and the
    result is TARGET_UNAVAILABLE_EXIT. `request_hook` may sign each request (a publish proof).
    """
    total = _expected_documents(dataset, region)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    title = f"Importing {region}"
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(title, total=total)
        shown = {"attempt": 1}

        def advance(n: int) -> None:
            shown["attempt"] = 1
            bar.update(task, advance=n, description=title)

        def retrying(notice: RetryNotice) -> None:
            bar.update(task, description=f"{title} — {notice}")
            if notice.attempt > shown["attempt"]:  # one line per back-off step, not per worker
                shown["attempt"] = notice.attempt
                bar.console.print(
                    f"{region}: {notice}", markup=False, highlight=False, soft_wrap=True
                )

        try:
            summary = asyncio.run(
                _import(
                    dataset, region, url, concurrency, request_hook, advance, retrying,
                    give_up_after,
                )
            )  # fmt: skip
        except TargetUnavailable as exc:
            bar.stop()
            typer.echo(f"error: {exc}", err=True)  # plain: one line, never wrapped
            return TARGET_UNAVAILABLE_EXIT
    _print_summary(summary, region)
    return 1 if summary.rejected else 0
