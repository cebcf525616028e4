"""Fan one ITI-67 query out to every enabled region at once, inside a deadline budget.

Budget (Sweden's aggregating services, ANCHORS §4): per-region timeout (4.0 s) < aggregation
deadline (4.5 s) < request deadline (5.0 s). A region whose breaker is open is skipped at once and
reported unavailable. A request is retried only when no byte was sent (connection refused or
unreachable) and time remains. Each region is asked for all of the patient's matching entries:
its `next` links are followed up to `max_entries`, and at most `max_pages` pages. `gather_regions`
is the same budget and breakers for any other exchange (the citizen's self-service calls,
hub/self_service.py).

The three deadlines are measured from the moment the request arrived (`RequestBudget`): time
spent checking the caller's token is taken from the fan-out, never added to the request. A region
cut short only because the request had less time left is not blamed on its breaker.

What counts toward a region's breaker (`RegionStatus.counts_against_breaker`): transport errors,
timeouts, 5xx, invalid and oversized answers. Never 401/403 (its policy at work) nor another 4xx
(the caller's request was at fault, issue 10 A).

References: IHE ITI TF-2 3.38.4.1.3 (XCA initiating gateway sends the query to each responding
gateway and consolidates; unreachable community → XDSUnavailableCommunity); IHE MHD ITI-67
§2:3.67.4.2 (searchset Bundle, paging); RFC 9110 §9.2.2 (GET, PUT and DELETE are idempotent).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import orjson
import structlog

from onerecord.domain import NationalIdentityNumber
from onerecord.hub.breaker import BreakerBoard
from onerecord.hub.client import (
    RegionClient,
    RegionConnectError,
    RegionResponse,
    RegionTransportError,
    ResponseTooLarge,
)
from onerecord.hub.directory import Region
from onerecord.hub.results import RegionResult, RegionStatus
from onerecord.hub.searchset import InvalidSearchset, parse_searchset
from onerecord.mhd import denial_reason

__all__ = [
    "DEFAULT_FORWARDED_HEADERS",
    "DEFAULT_MAX_PAGES",
    "MASKED_COUNT_HEADER",
    "Deadlines",
    "FindRequest",
    "PassThroughAuth",
    "RegionAuth",
    "RegionCallFailed",
    "RegionExchange",
    "RequestBudget",
    "call_region",
    "fan_out",
    "forward_headers",
    "gather_regions",
    "refusal_diagnostics",
    "refusal_reason",
    "status_for_http",
]

log = structlog.get_logger("onerecord.hub.fanout")

MASKED_COUNT_HEADER = "x-onerecord-masked-count"
"""How many entries a region (and the hub, summed) returned masked (blocked, 'Sperret')."""

DEFAULT_FORWARDED_HEADERS = frozenset(
    {
        "nhn-patient-nin",
        "nhn-source-system",
        "nhn-event-id",
        # The caller's stated basis for access (e.g. FORHOYET_AKUTT): each region's policy
        # decides on it, as for a direct call (TRUST-FRAMEWORK §4, D2/D3).
        "nhn-access-basis",
        "accept-language",
    }
)
DEFAULT_MAX_PAGES = 30
"""Pages of one region's answer the hub follows per search (25 suffice for 5,000 entries)."""
_MAX_REFUSAL_BYTES = 64 * 1024
_MAX_REASON_CHARS = 64
_MAX_DIAGNOSTICS_CHARS = 200
_NO_TIME_S = 0.01
"""Below this much time left a region is not asked at all."""


@dataclass(frozen=True, slots=True)
class Deadlines:
    """The fan-out budget: per-region timeout < aggregation deadline < request deadline."""

    per_region_s: float = 4.0
    aggregation_s: float = 4.5
    request_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.per_region_s < self.aggregation_s < self.request_s:
            raise ValueError("deadlines must satisfy 0 < per-region < aggregation < request")


@dataclass(frozen=True, slots=True)
class RequestBudget:
    """The deadlines of one request as points on the event loop's clock, from its arrival.

    `aggregation_at`: the fan-out stops waiting for regions; `request_at`: the answer, audit
    row included, is due. What is left between them is for merging and the audit write.
    """

    aggregation_at: float
    request_at: float

    @classmethod
    def starting(cls, deadlines: Deadlines, *, at: float | None = None) -> RequestBudget:
        """Return the budget of a request that arrived at loop time `at` (default: now)."""
        start = asyncio.get_running_loop().time() if at is None else at
        return cls(start + deadlines.aggregation_s, start + deadlines.request_s)

    def aggregation_left(self) -> float:
        """Seconds the fan-out may still wait (never negative)."""
        return max(self.aggregation_at - asyncio.get_running_loop().time(), 0.0)


class RegionAuth(Protocol):
    """Supplies the Authorization/DPoP headers of one call to a region (trust integration)."""

    async def headers_for(self, region: Region, method: str, url: str) -> dict[str, str]: ...


@dataclass(frozen=True, slots=True)
class PassThroughAuth:
    """Forward the caller's Authorization header unchanged (until the hub signs its own)."""

    authorization: str | None = None

    async def headers_for(self, region: Region, method: str, url: str) -> dict[str, str]:
        return {"authorization": self.authorization} if self.authorization else {}


def forward_headers(
    incoming: Mapping[str, str], allow: frozenset[str] = DEFAULT_FORWARDED_HEADERS
) -> dict[str, str]:
    """Return the caller's headers that regions may see (an allow-list, lower-cased)."""
    return {k.lower(): v for k, v in incoming.items() if k.lower() in allow}


@dataclass(frozen=True, slots=True)
class FindRequest:
    """One search to send to every region: path and query relative to the FHIR base, headers.

    `resource_type` is what the searchset must hold (DocumentReference for ITI-67, AuditEvent
    for the citizen's access log).
    """

    path_and_query: str
    headers: Mapping[str, str] = field(default_factory=dict)
    resource_type: str = "DocumentReference"
    patient: NationalIdentityNumber | None = None
    """The patient asked about: every DocumentReference returned must be about this patient."""


def status_for_http(status: int) -> RegionStatus | None:
    """Map a region's HTTP status to a failure, or None for 200.

    401/403 are a denial and any other 4xx the caller's request refused (neither counts toward
    the breaker), except 408, the region giving up on the hub's connection (a timeout); 5xx and
    anything unexpected are the region's error.
    """
    if status == 200:
        return None
    if status in (401, 403):
        return RegionStatus.DENIED
    if status == 408:
        return RegionStatus.TIMEOUT
    if 400 <= status < 500:
        return RegionStatus.REJECTED
    return RegionStatus.ERROR


def _masked(headers: Mapping[str, str]) -> int:
    raw = headers.get(MASKED_COUNT_HEADER, "0").strip()
    return int(raw) if raw.isdigit() else 0


class RegionCallFailed(Exception):
    """A region answered, but not as asked: how its part ended, why, and its HTTP status.

    `reason`: the denial-reason code the region gave for a refusal (e.g. practitioner-blocked);
    `retry_after`: its Retry-After when it answered 429.
    """

    def __init__(
        self,
        status: RegionStatus,
        detail: str,
        http_status: int | None = None,
        reason: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.http_status = http_status
        self.reason = reason
        self.retry_after = retry_after

    @classmethod
    def for_response(cls, resp: RegionResponse, failure: RegionStatus) -> RegionCallFailed:
        """Describe a region's non-200 answer: its status, reason and what it said was wrong."""
        reason = refusal_reason(resp.body) if failure is RegionStatus.DENIED else None
        detail = f"HTTP {resp.status}" + (f" ({reason})" if reason else "")
        retry_after = None
        if failure is RegionStatus.REJECTED:
            said = refusal_diagnostics(resp.body)
            detail += f": {said}" if said else ""
            raw = resp.headers.get("retry-after", "").strip()
            retry_after = raw if resp.status == 429 and raw.isdigit() and len(raw) < 7 else None
        return cls(failure, detail, resp.status, reason, retry_after)


def _refusal_issues(body: bytes) -> Iterable[object]:
    """Return the issues of a small OperationOutcome body, or nothing for anything else."""
    if len(body) > _MAX_REFUSAL_BYTES:
        return ()
    try:
        outcome = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ()
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return ()
    issues = outcome.get("issue")
    return issues if isinstance(issues, list) else ()


def refusal_reason(body: bytes) -> str | None:
    """Return the denial-reason code of a region's refusal (its OperationOutcome), if any.

    Only a small body is read, and anything that is not an OperationOutcome yields None.
    """
    for issue in _refusal_issues(body):
        reason = denial_reason(issue)
        if reason is not None:
            return reason[:_MAX_REASON_CHARS]
    return None


def refusal_diagnostics(body: bytes) -> str | None:
    """Return the first diagnostics of a region's small OperationOutcome, shortened, if any."""
    for issue in _refusal_issues(body):
        text = issue.get("diagnostics") if isinstance(issue, dict) else None
        if isinstance(text, str) and text.strip():
            return text.strip()[:_MAX_DIAGNOSTICS_CHARS]
    return None


RegionExchange = Callable[[Region, float], Awaitable[RegionResult]]
"""One region's part of a fan-out, called with the region and the loop time to end by.

It returns the region's OK result (the latency is filled in by the caller) or raises
RegionCallFailed, RegionConnectError, RegionTransportError or TimeoutError.
"""


async def call_region(
    client: RegionClient,
    method: str,
    url: str,
    headers: Mapping[str, str],
    *,
    ends_at: float,
    retry_delay_s: float,
) -> RegionResponse:
    """Send once, and once more after a connect error if nothing was sent and time remains."""
    loop = asyncio.get_running_loop()

    async def once() -> RegionResponse:
        timeout = max(ends_at - loop.time(), 0.001)
        if method == "GET":
            return await client.get(url, headers=headers, timeout_s=timeout)
        return await client.send(method, url, headers=headers, timeout_s=timeout)

    try:
        return await once()
    except RegionConnectError:
        if loop.time() + retry_delay_s >= ends_at:
            raise
    await asyncio.sleep(retry_delay_s)
    return await once()


async def _collect(
    region: Region,
    ends_at: float,
    *,
    request: FindRequest,
    client: RegionClient,
    auth: RegionAuth,
    max_entries: int,
    max_pages: int,
    retry_delay_s: float,
) -> RegionResult:
    url: str | None = f"{region.base_url}/{request.path_and_query}"
    resources: list[dict[str, object]] = []
    warnings: list[dict[str, object]] = []
    masked = 0
    truncated = False
    stopped_after: int | None = None
    pages = 0
    while url is not None:
        pages += 1
        headers = {**request.headers, **(await auth.headers_for(region, "GET", url))}
        resp = await call_region(
            client, "GET", url, headers, ends_at=ends_at, retry_delay_s=retry_delay_s
        )
        failure = status_for_http(resp.status)
        if failure is not None:
            raise RegionCallFailed.for_response(resp, failure)
        try:
            page = parse_searchset(
                resp.body, resource_type=request.resource_type, patient=request.patient
            )
        except InvalidSearchset as exc:
            raise RegionCallFailed(
                RegionStatus.INVALID_RESPONSE, f"page {pages}: {exc}", resp.status
            ) from None
        masked += _masked(resp.headers)
        resources.extend(page.resources)
        warnings.extend(page.issues)
        url = page.next_url
        if url is not None and not url.startswith(region.base_url + "/"):
            # Never follow a link off the region's own base (no open redirect to elsewhere).
            raise RegionCallFailed(
                RegionStatus.INVALID_RESPONSE, "next link leaves the region's base URL"
            )
        if len(resources) >= max_entries:
            truncated = len(resources) > max_entries or url is not None
            del resources[max_entries:]
            break
        if pages >= max_pages and url is not None:
            # Still a `next` link: stop here (a region whose links never end costs a bounded
            # number of requests) and say why the answer is cut.
            truncated, stopped_after = True, pages
            break
    return RegionResult(
        region=region,
        status=RegionStatus.OK,
        latency_ms=0.0,
        resources=tuple(resources),
        masked_count=masked,
        truncated=truncated,
        warnings=tuple(warnings),
        http_status=200,
        stopped_after_pages=stopped_after,
    )


async def _ask_region(
    region: Region, exchange: RegionExchange, *, timeout_s: float
) -> RegionResult:
    """Run one region's exchange inside its timeout; never raise (except when cancelled)."""
    started = time.perf_counter()
    ends_at = asyncio.get_running_loop().time() + timeout_s

    def failed(
        status: RegionStatus,
        detail: str,
        *,
        http_status: int | None = None,
        reason: str | None = None,
        retry_after: str | None = None,
    ) -> RegionResult:
        latency = (time.perf_counter() - started) * 1000
        return RegionResult(
            region,
            status,
            latency,
            detail=detail,
            http_status=http_status,
            reason=reason,
            retry_after=retry_after,
        )

    try:
        async with asyncio.timeout(timeout_s):
            result = await exchange(region, ends_at)
        return replace(result, latency_ms=(time.perf_counter() - started) * 1000)
    except TimeoutError:
        return failed(RegionStatus.TIMEOUT, f"no answer within {timeout_s:.2f} s")
    except RegionCallFailed as exc:
        return failed(
            exc.status,
            exc.detail,
            http_status=exc.http_status,
            reason=exc.reason,
            retry_after=exc.retry_after,
        )
    except RegionConnectError as exc:
        return failed(RegionStatus.UNAVAILABLE, str(exc))
    except ResponseTooLarge as exc:
        return failed(RegionStatus.TOO_LARGE, str(exc))
    except RegionTransportError as exc:
        return failed(RegionStatus.UNAVAILABLE, str(exc))
    except Exception as exc:  # a bug must cost one region, not the whole fan-out
        log.exception("hub.fanout.region_crashed", hcid=region.hcid)
        return failed(RegionStatus.ERROR, f"internal error: {type(exc).__name__}")


async def gather_regions(
    regions: Sequence[Region],
    exchange: RegionExchange,
    *,
    breakers: BreakerBoard | None = None,
    per_region_timeout: float = 4.0,
    aggregation_deadline: float = 4.5,
    budget: RequestBudget | None = None,
) -> list[RegionResult]:
    """Run `exchange` with every enabled region concurrently; one result per region, in order.

    A region whose breaker is open is not asked (unavailable); one that has not finished at the
    aggregation deadline is cancelled (timeout). With a `budget` the deadline is the request's
    (the time its token check took is not given again). Each outcome that says something about
    the region's health is recorded on its breaker; a region cut short only by the request's
    budget is not.
    """
    started = time.perf_counter()
    left = aggregation_deadline
    if budget is not None:
        left = min(left, budget.aggregation_left())
    results: dict[int, RegionResult] = {}
    tasks: dict[int, asyncio.Task[RegionResult]] = {}
    shortened: set[int] = set()
    enabled = [r for r in regions if r.enabled]
    for i, region in enumerate(enabled):
        if left < _NO_TIME_S:
            results[i] = RegionResult(
                region,
                RegionStatus.TIMEOUT,
                0.0,
                detail="not asked: the request's deadline left no time for the regions",
            )
            continue
        breaker = breakers[region.hcid] if breakers is not None else None
        if breaker is not None and not breaker.allow():
            results[i] = RegionResult(
                region, RegionStatus.UNAVAILABLE, 0.0, detail="circuit breaker open; not asked"
            )
            continue
        configured = min(region.timeout_s or per_region_timeout, aggregation_deadline)
        if left < min(configured, per_region_timeout):
            # Given less than its own timeout only because the request had less time left.
            shortened.add(i)
        tasks[i] = asyncio.create_task(
            _ask_region(region, exchange, timeout_s=min(configured, left)),
            name=f"fan-out {region.hcid}",
        )
    pending: set[asyncio.Task[RegionResult]] = set()
    try:
        if tasks:
            _done, pending = await asyncio.wait(tasks.values(), timeout=left)
    except asyncio.CancelledError:
        # The request itself was cancelled: no region call outlives it, no verdict is given.
        for i, task in tasks.items():
            task.cancel()
            if breakers is not None:
                breakers[enabled[i].hcid].release()
        raise
    for task in pending:
        task.cancel()
    for i, task in tasks.items():
        region = enabled[i]
        if task in pending:
            latency = (time.perf_counter() - started) * 1000
            results[i] = RegionResult(
                region,
                RegionStatus.TIMEOUT,
                latency,
                detail=f"no answer within the aggregation deadline of {left:.2f} s",
            )
        else:
            results[i] = task.result()
        if breakers is not None:
            _record(breakers, results[i], blameless=i in shortened)
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    return [results[i] for i in sorted(results)]


def _record(breakers: BreakerBoard, result: RegionResult, *, blameless: bool) -> None:
    """Tell the region's breaker how its call went (issue 10 A: only its own ill health counts).

    A timeout of a region given less than its own timeout, because the request had less time
    left, says nothing about the region: its probe slot is given back without a verdict.
    """
    breaker = breakers[result.region.hcid]
    if result.status is RegionStatus.TIMEOUT and blameless:
        breaker.release()
    elif result.status.counts_against_breaker:
        breaker.record_failure()
    else:
        breaker.record_success()


async def fan_out(
    regions: Sequence[Region],
    request: FindRequest,
    *,
    client: RegionClient,
    breakers: BreakerBoard | None = None,
    auth: RegionAuth | None = None,
    per_region_timeout: float = 4.0,
    aggregation_deadline: float = 4.5,
    budget: RequestBudget | None = None,
    max_entries: int = 5000,
    max_pages: int = DEFAULT_MAX_PAGES,
    retry_delay_s: float = 0.05,
    xca_exchange: RegionExchange | None = None,
) -> list[RegionResult]:
    """Query every enabled region concurrently; return one result per region, in order.

    A region whose directory entry says `xca` is asked with `xca_exchange` (ITI-38,
    hub/xca_initiating.py); without one it is reported as an error of the hub's setup.
    """
    if max_pages < 1:
        raise ValueError("max_pages must be at least 1")
    mhd_exchange = functools.partial(
        _collect,
        request=request,
        client=client,
        auth=auth or PassThroughAuth(),
        max_entries=max_entries,
        max_pages=max_pages,
        retry_delay_s=retry_delay_s,
    )

    async def exchange(region: Region, ends_at: float) -> RegionResult:
        if not region.xca:
            return await mhd_exchange(region, ends_at)
        if xca_exchange is None:
            raise RegionCallFailed(
                RegionStatus.ERROR, "the hub has no SAML key to ask an XCA region (saml_key_file)"
            )
        return await xca_exchange(region, ends_at)

    return await gather_regions(
        regions,
        exchange,
        breakers=breakers,
        per_region_timeout=per_region_timeout,
        aggregation_deadline=aggregation_deadline,
        budget=budget,
    )
