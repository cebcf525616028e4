"""Fan one ITI-67 query out to every enabled region at once, inside a deadline budget.

Budget (Sweden's aggregating services, ANCHORS §4): per-region timeout (4.0 s) < aggregation
deadline (4.5 s) < request deadline (5.0 s). A region whose breaker is open is skipped at once and
reported unavailable. A request is retried only when no byte was sent (connection refused or
unreachable) and time remains. Each region is asked for all of the patient's matching entries:
its `next` links are followed up to `max_entries`. `gather_regions` is the same budget and
breakers for any other exchange (the citizen's self-service calls, hub/self_service.py).

References: IHE ITI TF-2 3.38.4.1.3 (XCA initiating gateway sends the query to each responding
gateway and consolidates; unreachable community → XDSUnavailableCommunity); IHE MHD ITI-67
§2:3.67.4.2 (searchset Bundle, paging); RFC 9110 §9.2.2 (GET, PUT and DELETE are idempotent).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import orjson
import structlog

from onerecord.hub.breaker import BreakerBoard
from onerecord.hub.client import (
    RegionClient,
    RegionConnectError,
    RegionResponse,
    RegionTransportError,
)
from onerecord.hub.directory import Region
from onerecord.hub.results import RegionResult, RegionStatus
from onerecord.hub.searchset import InvalidSearchset, parse_searchset
from onerecord.mhd import denial_reason

__all__ = [
    "DEFAULT_FORWARDED_HEADERS",
    "MASKED_COUNT_HEADER",
    "Deadlines",
    "FindRequest",
    "PassThroughAuth",
    "RegionAuth",
    "RegionCallFailed",
    "RegionExchange",
    "call_region",
    "fan_out",
    "forward_headers",
    "gather_regions",
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
_MAX_PAGES = 1000
_MAX_REFUSAL_BYTES = 64 * 1024
_MAX_REASON_CHARS = 64


@dataclass(frozen=True, slots=True)
class Deadlines:
    """The fan-out budget: per-region timeout < aggregation deadline < request deadline."""

    per_region_s: float = 4.0
    aggregation_s: float = 4.5
    request_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.per_region_s < self.aggregation_s < self.request_s:
            raise ValueError("deadlines must satisfy 0 < per-region < aggregation < request")


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


def status_for_http(status: int) -> RegionStatus | None:
    """Map a region's HTTP status to a failure, or None for 200."""
    if status == 200:
        return None
    if status in (401, 403):
        return RegionStatus.DENIED
    return RegionStatus.ERROR


def _masked(headers: Mapping[str, str]) -> int:
    raw = headers.get(MASKED_COUNT_HEADER, "0").strip()
    return int(raw) if raw.isdigit() else 0


class RegionCallFailed(Exception):
    """A region answered, but not as asked: how its part ended, why, and its HTTP status.

    `reason`: the denial-reason code the region gave for a refusal (e.g. practitioner-blocked).
    """

    def __init__(
        self,
        status: RegionStatus,
        detail: str,
        http_status: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.http_status = http_status
        self.reason = reason


def refusal_reason(body: bytes) -> str | None:
    """Return the denial-reason code of a region's refusal (its OperationOutcome), if any.

    Only a small body is read, and anything that is not an OperationOutcome yields None.
    """
    if len(body) > _MAX_REFUSAL_BYTES:
        return None
    try:
        outcome = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return None
    issues = outcome.get("issue")
    for issue in issues if isinstance(issues, list) else ():
        reason = denial_reason(issue)
        if reason is not None:
            return reason[:_MAX_REASON_CHARS]
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
    retry_delay_s: float,
) -> RegionResult:
    url: str | None = f"{region.base_url}/{request.path_and_query}"
    resources: list[dict[str, object]] = []
    warnings: list[dict[str, object]] = []
    masked = 0
    truncated = False
    pages = 0
    while url is not None:
        pages += 1
        headers = {**request.headers, **(await auth.headers_for(region, "GET", url))}
        resp = await call_region(
            client, "GET", url, headers, ends_at=ends_at, retry_delay_s=retry_delay_s
        )
        failure = status_for_http(resp.status)
        if failure is not None:
            reason = refusal_reason(resp.body) if failure is RegionStatus.DENIED else None
            detail = f"HTTP {resp.status}" + (f" ({reason})" if reason else "")
            raise RegionCallFailed(failure, detail, resp.status, reason)
        try:
            page = parse_searchset(resp.body, resource_type=request.resource_type)
        except InvalidSearchset as exc:
            raise RegionCallFailed(RegionStatus.INVALID_RESPONSE, str(exc), resp.status) from exc
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
        if pages >= _MAX_PAGES:
            truncated = url is not None
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
        http_status: int | None = None,
        reason: str | None = None,
    ) -> RegionResult:
        latency = (time.perf_counter() - started) * 1000
        return RegionResult(
            region, status, latency, detail=detail, http_status=http_status, reason=reason
        )

    try:
        async with asyncio.timeout(timeout_s):
            result = await exchange(region, ends_at)
        return replace(result, latency_ms=(time.perf_counter() - started) * 1000)
    except TimeoutError:
        return failed(RegionStatus.TIMEOUT, f"no answer within {timeout_s:.1f} s")
    except RegionCallFailed as exc:
        return failed(exc.status, exc.detail, exc.http_status, exc.reason)
    except RegionConnectError as exc:
        return failed(RegionStatus.UNAVAILABLE, str(exc))
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
) -> list[RegionResult]:
    """Run `exchange` with every enabled region concurrently; one result per region, in order.

    A region whose breaker is open is not asked (unavailable); one that has not finished at the
    aggregation deadline is cancelled (timeout). Each outcome is recorded on its breaker.
    """
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    results: dict[int, RegionResult] = {}
    tasks: dict[int, asyncio.Task[RegionResult]] = {}
    enabled = [r for r in regions if r.enabled]
    for i, region in enumerate(enabled):
        breaker = breakers[region.hcid] if breakers is not None else None
        if breaker is not None and not breaker.allow():
            results[i] = RegionResult(
                region, RegionStatus.UNAVAILABLE, 0.0, detail="circuit breaker open; not asked"
            )
            continue
        timeout = min(region.timeout_s or per_region_timeout, aggregation_deadline)
        tasks[i] = asyncio.create_task(
            _ask_region(region, exchange, timeout_s=timeout), name=f"fan-out {region.hcid}"
        )
    pending: set[asyncio.Task[RegionResult]] = set()
    if tasks:
        deadline = loop.time() + aggregation_deadline
        _done, pending = await asyncio.wait(tasks.values(), timeout=max(deadline - loop.time(), 0))
    for i, task in tasks.items():
        region = enabled[i]
        if task in pending:
            task.cancel()
            latency = (time.perf_counter() - started) * 1000
            results[i] = RegionResult(
                region,
                RegionStatus.TIMEOUT,
                latency,
                detail=f"no answer within the aggregation deadline of {aggregation_deadline:.1f} s",
            )
        else:
            results[i] = task.result()
        if breakers is not None:
            if results[i].status.counts_against_breaker:
                breakers[region.hcid].record_failure()
            else:
                breakers[region.hcid].record_success()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    return [results[i] for i in sorted(results)]


async def fan_out(
    regions: Sequence[Region],
    request: FindRequest,
    *,
    client: RegionClient,
    breakers: BreakerBoard | None = None,
    auth: RegionAuth | None = None,
    per_region_timeout: float = 4.0,
    aggregation_deadline: float = 4.5,
    max_entries: int = 5000,
    retry_delay_s: float = 0.05,
) -> list[RegionResult]:
    """Query every enabled region concurrently; return one result per region, in order."""
    exchange = functools.partial(
        _collect,
        request=request,
        client=client,
        auth=auth or PassThroughAuth(),
        max_entries=max_entries,
        retry_delay_s=retry_delay_s,
    )
    return await gather_regions(
        regions,
        exchange,
        breakers=breakers,
        per_region_timeout=per_region_timeout,
        aggregation_deadline=aggregation_deadline,
    )
