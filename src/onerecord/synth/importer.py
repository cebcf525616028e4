"""Bulk-load a synthetic dataset into a running regional document source over ITI-65.

Idempotent by design: a source answers a repeated uniqueId with identical content as success,
so an interrupted import is simply run again. Bundles are posted by a small pool of workers, one
patient's bundles in order by one worker (a replacement must follow its original);
transport errors and 429/502/503/504 answers are retried, any other refusal is reported with the
OperationOutcome diagnostics and the import goes on with the next bundle.

References: IHE ITI TF-2 3.65.4.1 (Provide Document Bundle request), 3.65.4.2 (response);
FHIR R4 OperationOutcome.issue.diagnostics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson

from onerecord.synth.dataset import BundleRef, bundle_plan

__all__ = ["FHIR_JSON", "ImportSummary", "Rejection", "import_dataset", "outcome_reason"]

FHIR_JSON = "application/fhir+json"
_RETRY_STATUS = frozenset({429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Rejection:
    """A bundle the source refused: file name, HTTP status (0: no answer) and why."""

    bundle: str
    status: int
    reason: str

    def __str__(self) -> str:
        return f"{self.bundle}: HTTP {self.status}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import achieved; documents and bundles count the accepted ones."""

    documents: int
    bundles: int
    seconds: float
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def documents_per_second(self) -> float:
        return self.documents / self.seconds if self.seconds > 0 else 0.0


def outcome_reason(response: httpx.Response) -> str:
    """Return the diagnostics of an OperationOutcome answer, or the start of the body."""
    try:
        body: Any = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        texts = [
            str(issue.get("diagnostics") or issue.get("code") or "")
            for issue in body.get("issue", [])
            if isinstance(issue, dict)
        ]
        joined = "; ".join(t for t in texts if t)
        if joined:
            return joined
    return response.text[:500]


def _endpoint(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/fhir") else f"{base}/fhir"


async def import_dataset(
    dataset: Path,
    *,
    region: str,
    base_url: str,
    concurrency: int = 4,
    client: httpx.AsyncClient | None = None,
    progress: Callable[[int], None] | None = None,
    retries: int = 3,
    retry_delay: float = 0.5,
) -> ImportSummary:
    """Post every bundle of `region` in `dataset` to `{base_url}/fhir`; report refusals."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    # A patient's bundles go in order (a replacement needs its original); patients in parallel.
    groups = iter(bundle_plan(dataset, region))
    url = _endpoint(base_url)
    rejected: list[Rejection] = []
    accepted = {"documents": 0, "bundles": 0}
    headers = {"content-type": FHIR_JSON, "accept": FHIR_JSON}

    async def post(http: httpx.AsyncClient, ref: BundleRef) -> None:
        path, count = ref.path, ref.documents
        body = path.read_bytes()
        for attempt in range(retries + 1):
            last = attempt == retries
            try:
                response = await http.post(url, content=body, headers=headers)
            except httpx.TransportError as exc:
                if last:
                    rejected.append(Rejection(path.name, 0, f"{type(exc).__name__}: {exc}"))
                    return
            else:
                if response.is_success:
                    accepted["documents"] += count
                    accepted["bundles"] += 1
                    if progress is not None:
                        progress(count)
                    return
                if response.status_code not in _RETRY_STATUS or last:
                    rejected.append(
                        Rejection(path.name, response.status_code, outcome_reason(response))
                    )
                    return
            await anyio.sleep(retry_delay * 2**attempt)

    async def worker(http: httpx.AsyncClient) -> None:
        for group in groups:
            for ref in group:
                await post(http, ref)

    started = time.perf_counter()
    http = client or httpx.AsyncClient(timeout=httpx.Timeout(120.0))
    try:
        async with anyio.create_task_group() as group:
            for _ in range(concurrency):
                group.start_soon(worker, http)
    finally:
        if client is None:
            await http.aclose()
    rejected.sort(key=lambda r: r.bundle)
    return ImportSummary(
        documents=accepted["documents"],
        bundles=accepted["bundles"],
        seconds=time.perf_counter() - started,
        rejected=rejected,
    )
