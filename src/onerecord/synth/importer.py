"""Bulk-load a synthetic dataset into a running regional document source over ITI-65.

Idempotent by design: a source answers a repeated uniqueId with identical content as success,
so an interrupted import is simply run again. Bundles are posted by a small pool of workers, one
patient's bundles in order by one worker (a replacement must follow its original);
transport errors and 429/502/503/504 answers are retried with growing back-off, each retry told
to `on_retry`; any other refusal is reported with the OperationOutcome diagnostics and the
import goes on with the next bundle. When the source has given no answer but those for
`give_up_after` seconds (it died, or it never answers), the import stops with
TargetUnavailable, naming the source and the last cause.

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

__all__ = [
    "FHIR_JSON",
    "ImportSummary",
    "Rejection",
    "RetryNotice",
    "TargetUnavailable",
    "import_dataset",
    "outcome_reason",
]

FHIR_JSON = "application/fhir+json"
GIVE_UP_AFTER = 60.0
"""Seconds without a usable answer from the source before an import stops."""
_RETRY_STATUS = frozenset({429, 502, 503, 504})


class TargetUnavailable(Exception):
    """The source gave no usable answer for `waited` seconds; `cause` is the last failure."""

    def __init__(self, url: str, cause: str | None, waited: float) -> None:
        why = f"last error {cause}" if cause else "requests hang unanswered"
        super().__init__(f"gave up on {url} after {waited:.0f} s without an answer ({why})")
        self.url = url
        self.cause = cause
        self.waited = waited


@dataclass(frozen=True, slots=True)
class RetryNotice:
    """A bundle about to be sent again: why, which attempt comes next, and after how long."""

    bundle: str
    cause: str
    attempt: int
    delay: float

    def __str__(self) -> str:
        return (
            f"retrying {self.bundle}: {self.cause} "
            f"(attempt {self.attempt}, next in {self.delay:.1f} s)"
        )


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


@dataclass(slots=True)
class _Health:
    """When the source last gave a usable answer, and what failed since."""

    last_answer: float
    last_cause: str | None = None
    gave_up: TargetUnavailable | None = None

    def answered(self) -> None:
        self.last_answer = time.monotonic()
        self.last_cause = None


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
    on_retry: Callable[[RetryNotice], None] | None = None,
    give_up_after: float = GIVE_UP_AFTER,
    retry_delay: float = 0.5,
    max_retry_delay: float = 8.0,
) -> ImportSummary:
    """Post every bundle of `region` in `dataset` to `{base_url}/fhir`; report refusals.

    Raises TargetUnavailable when no answer but transport errors and busy answers came for
    `give_up_after` seconds.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if give_up_after <= 0:
        raise ValueError("give_up_after must be positive")
    # A patient's bundles go in order (a replacement needs its original); patients in parallel.
    groups = iter(bundle_plan(dataset, region))
    url = _endpoint(base_url)
    rejected: list[Rejection] = []
    accepted = {"documents": 0, "bundles": 0}
    headers = {"content-type": FHIR_JSON, "accept": FHIR_JSON}

    health = _Health(time.monotonic())

    async def post(http: httpx.AsyncClient, ref: BundleRef) -> None:
        path, count = ref.path, ref.documents
        body = path.read_bytes()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await http.post(url, content=body, headers=headers)
            except httpx.TransportError as exc:
                cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.status_code not in _RETRY_STATUS:
                    health.answered()
                    if response.is_success:
                        accepted["documents"] += count
                        accepted["bundles"] += 1
                        if progress is not None:
                            progress(count)
                    else:
                        reason = outcome_reason(response)
                        rejected.append(Rejection(path.name, response.status_code, reason))
                    return
                cause = f"HTTP {response.status_code}"
            health.last_cause = cause
            delay = min(retry_delay * 2 ** (attempt - 1), max_retry_delay)
            if on_retry is not None:
                on_retry(RetryNotice(path.name, cause, attempt + 1, delay))
            await anyio.sleep(delay)

    async def worker(http: httpx.AsyncClient) -> None:
        for group in groups:
            for ref in group:
                await post(http, ref)

    async def watch(scope: anyio.CancelScope) -> None:
        # Cuts through retries and through requests that hang: a source that never answers.
        while True:
            idle = time.monotonic() - health.last_answer
            if idle >= give_up_after:
                health.gave_up = TargetUnavailable(url, health.last_cause, idle)
                scope.cancel()
                return
            await anyio.sleep(min(0.2, give_up_after - idle))

    started = time.perf_counter()
    http = client or httpx.AsyncClient(timeout=httpx.Timeout(120.0))
    try:
        async with anyio.create_task_group() as outer:
            outer.start_soon(watch, outer.cancel_scope)
            async with anyio.create_task_group() as group:
                for _ in range(concurrency):
                    group.start_soon(worker, http)
            outer.cancel_scope.cancel()
    finally:
        if client is None:
            await http.aclose()
    if health.gave_up is not None:
        raise health.gave_up
    rejected.sort(key=lambda r: r.bundle)
    return ImportSummary(
        documents=accepted["documents"],
        bundles=accepted["bundles"],
        seconds=time.perf_counter() - started,
        rejected=rejected,
    )
