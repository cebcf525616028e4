"""`_summary=count` across regions: ask each region for its total only, and add them up.

One request per region instead of fetching every entry: each region answers a searchset Bundle
with `total` and no entries (docs/source.md), read strictly here; the fan-out machinery
(`fanout.gather_regions`: breakers, timeouts, the XCA status of each region) is the same as for
a search, so failed regions are reported as usual. A document held by two regions counts in
both totals (a full search shows it once, with a `duplicate` notice).

References: FHIR R4 search.html#summary (_summary=count: the total only); IHE ITI TF-2
3.38.4.1.3 (XCA: query every responding gateway, consolidate their status).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

import orjson

from onerecord.hub.client import RegionClient
from onerecord.hub.directory import Region
from onerecord.hub.fanout import (
    RegionAuth,
    RegionCallFailed,
    call_region,
    refusal_reason,
    status_for_http,
)
from onerecord.hub.results import RegionResult, RegionStatus

__all__ = ["count_region", "parse_count"]


def parse_count(body: bytes) -> tuple[int, list[dict[str, Any]]]:
    """Read a region's count answer: its total and the issues of its OperationOutcome entries.

    Raise RegionCallFailed (invalid-response) for anything but a searchset Bundle with a
    non-negative integer `total` and no entry other than an OperationOutcome.
    """

    def invalid(why: str) -> RegionCallFailed:
        return RegionCallFailed(RegionStatus.INVALID_RESPONSE, why, 200)

    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise invalid("the count answer is not JSON") from None
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        raise invalid("the count answer is not a FHIR Bundle")
    if doc.get("type") != "searchset":
        raise invalid("the count answer is not a searchset Bundle")
    total = doc.get("total")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise invalid("the count answer has no non-negative integer total")
    entries = doc.get("entry", [])
    if not isinstance(entries, list):
        raise invalid("Bundle.entry is not a list")
    issues: list[dict[str, Any]] = []
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "OperationOutcome":
            raise invalid("the count answer holds entries other than an OperationOutcome")
        found = resource.get("issue")
        if isinstance(found, list):
            issues.extend(i for i in found if isinstance(i, dict))
    return total, issues


async def count_region(
    region: Region,
    ends_at: float,
    *,
    path_and_query: str,
    headers: Mapping[str, str],
    client: RegionClient,
    auth: RegionAuth,
    retry_delay_s: float,
    totals: MutableMapping[str, int],
) -> RegionResult:
    """Ask one region for its total (a `fanout.RegionExchange`); record it in `totals`."""
    url = f"{region.base_url}/{path_and_query}"
    sent = {**headers, **(await auth.headers_for(region, "GET", url))}
    resp = await call_region(client, "GET", url, sent, ends_at=ends_at, retry_delay_s=retry_delay_s)
    failure = status_for_http(resp.status)
    if failure is not None:
        reason = refusal_reason(resp.body) if failure is RegionStatus.DENIED else None
        detail = f"HTTP {resp.status}" + (f" ({reason})" if reason else "")
        raise RegionCallFailed(failure, detail, resp.status, reason)
    total, issues = parse_count(resp.body)
    totals[region.hcid] = total
    return RegionResult(
        region=region,
        status=RegionStatus.OK,
        latency_ms=0.0,
        warnings=tuple(issues),
        http_status=200,
    )
