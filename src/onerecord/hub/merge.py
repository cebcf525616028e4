"""Merge the regions' answers: de-duplicate, sort totally, consolidate the XCA status.

All pure functions over `RegionResult`s and DocumentReference dicts.

References: IHE ITI TF-2 3.38.4.1.3 (XCA initiating gateway: consolidate responding gateways'
results; PartialSuccess with RegistryError@location = homeCommunityId when some fail, Failure
when all fail; XDSUnavailableCommunity); IHE MHD ITI-67 §2:3.67.4.2.3 (warnings as an
OperationOutcome entry of the searchset Bundle); FHIR R4 §3.1.1.4.4 (_sort).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from onerecord.domain import DocumentStatus, SortField, SortKey
from onerecord.hub.results import RegionResult, RegionStatus
from onerecord.mhd import DENIAL_REASON_SYSTEM

__all__ = [
    "EXT_HOME_COMMUNITY_ID",
    "EXT_REGION_LATENCY_MS",
    "EXT_REGION_STATUS",
    "REGION_STATUS_SYSTEM",
    "Duplicate",
    "HubStatus",
    "MergedResult",
    "Placed",
    "consolidate",
    "deduplicate",
    "document_unique_id",
    "failure_issue",
    "merge",
    "region_issues",
    "sort_documents",
]

EXT_HOME_COMMUNITY_ID = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-HomeCommunityId"
_ONERECORD = "https://onerecord.no/fhir/"
EXT_REGION_STATUS = _ONERECORD + "StructureDefinition/region-status"
EXT_REGION_LATENCY_MS = _ONERECORD + "StructureDefinition/region-latency-ms"
REGION_STATUS_SYSTEM = _ONERECORD + "CodeSystem/region-status"

# Region status -> (FHIR IssueType, display naming the XCA error it mirrors).
_ISSUE: dict[RegionStatus, tuple[str, str]] = {
    RegionStatus.UNAVAILABLE: ("transient", "community unavailable (XDSUnavailableCommunity)"),
    RegionStatus.TIMEOUT: ("timeout", "community did not answer in time (XDSUnavailableCommunity)"),
    RegionStatus.DENIED: ("forbidden", "community denied access"),
    RegionStatus.REJECTED: ("invalid", "community refused the request as the caller's error"),
    RegionStatus.INVALID_RESPONSE: ("invalid", "community sent an invalid response"),
    RegionStatus.TOO_LARGE: ("too-costly", "community's answer exceeds the hub's size limit"),
    RegionStatus.ERROR: ("exception", "community reported an error (XDSRegistryError)"),
}
# Extensions only the hub may set on an issue: a region's own copies are dropped.
_HUB_EXTENSIONS = frozenset({EXT_HOME_COMMUNITY_ID, EXT_REGION_STATUS, EXT_REGION_LATENCY_MS})

# Preference when the same document comes from two regions: current beats superseded beats
# entered-in-error (ITI TF-3 4.2.3.2.2 availabilityStatus Approved over Deprecated).
_STATUS_RANK = {
    DocumentStatus.CURRENT.value: 0,
    DocumentStatus.SUPERSEDED.value: 1,
    DocumentStatus.ENTERED_IN_ERROR.value: 2,
}


class HubStatus(StrEnum):
    """The consolidated XCA response status."""

    SUCCESS = "Success"
    PARTIAL_SUCCESS = "PartialSuccess"
    FAILURE = "Failure"


@dataclass(frozen=True, slots=True)
class Placed:
    """A DocumentReference with the homeCommunityId of the region it came from."""

    home_community_id: str
    resource: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The same document uniqueId arrived from more than one region; `kept` won."""

    unique_id: str
    kept: str
    dropped: str


@dataclass(frozen=True, slots=True)
class MergedResult:
    """The consolidated answer of a fan-out: documents in order, status and issues."""

    status: HubStatus
    http_status: int
    documents: tuple[Placed, ...]
    issues: tuple[dict[str, Any], ...]
    duplicates: tuple[Duplicate, ...]
    masked_count: int
    retry_after: str | None = None
    """Seconds to wait (Retry-After) when the answer is 429: the longest any region asked for."""


def document_unique_id(resource: dict[str, Any]) -> str:
    """Return DocumentReference.masterIdentifier.value (the XDS uniqueId), or '' if absent."""
    master = resource.get("masterIdentifier")
    value = master.get("value") if isinstance(master, dict) else None
    return value if isinstance(value, str) else ""


def _status_rank(resource: dict[str, Any]) -> int:
    return _STATUS_RANK.get(str(resource.get("status")), 3)


def deduplicate(documents: Iterable[Placed]) -> tuple[list[Placed], list[Duplicate]]:
    """Keep one document per uniqueId, preferring the current one, then the lower hcid.

    Documents without a masterIdentifier are never merged with each other.
    """
    kept: dict[str, Placed] = {}
    loose: list[Placed] = []
    duplicates: list[Duplicate] = []
    for doc in documents:
        uid = document_unique_id(doc.resource)
        if not uid:
            loose.append(doc)
            continue
        other = kept.get(uid)
        if other is None:
            kept[uid] = doc
            continue
        mine = (_status_rank(doc.resource), doc.home_community_id)
        theirs = (_status_rank(other.resource), other.home_community_id)
        winner, loser = (doc, other) if mine < theirs else (other, doc)
        kept[uid] = winner
        duplicates.append(Duplicate(uid, winner.home_community_id, loser.home_community_id))
    return [*kept.values(), *loose], duplicates


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # A date without a time or zone sorts as UTC midnight, so all values compare.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _sort_value(resource: dict[str, Any], field: SortField) -> Any:
    """Return the value `field` sorts by, or None when the document lacks it."""
    if field is SortField.DATE:
        return _moment(resource.get("date"))
    content = resource.get("content")
    attachment: dict[str, Any] = {}
    if isinstance(content, list) and content and isinstance(content[0], dict):
        attachment = content[0].get("attachment") or {}
    if field is SortField.CREATION:
        return _moment(attachment.get("creation"))
    if field is SortField.PERIOD:
        context = resource.get("context")
        period = context.get("period") if isinstance(context, dict) else None
        return _moment(period.get("start")) if isinstance(period, dict) else None
    title = attachment.get("title") or resource.get("description")
    return title.casefold() if isinstance(title, str) else None


def sort_documents(documents: Sequence[Placed], keys: Sequence[SortKey]) -> list[Placed]:
    """Order by the `_sort` keys, missing values last, ties by homeCommunityId then uniqueId.

    The tie-break makes the order total, so every page of a snapshot is reproducible.
    """
    ordered = sorted(documents, key=lambda d: (d.home_community_id, document_unique_id(d.resource)))
    # Stable sorts from the least to the most significant key.
    for key in reversed(keys):
        field = key.field
        if key.descending:

            def desc(d: Placed, f: SortField = field) -> tuple[bool, Any]:
                return _present_first_desc(_sort_value(d.resource, f))

            ordered.sort(key=desc, reverse=True)
        else:

            def asc(d: Placed, f: SortField = field) -> tuple[bool, Any]:
                return _present_first_asc(_sort_value(d.resource, f))

            ordered.sort(key=asc)
    return ordered


def _present_first_asc(value: Any) -> tuple[bool, Any]:
    return (value is None, value)


def _present_first_desc(value: Any) -> tuple[bool, Any]:
    return (value is not None, value)


def failure_issue(result: RegionResult) -> dict[str, Any]:
    """Render one failed region as an OperationOutcome issue naming its homeCommunityId.

    References: IHE ITI TF-2 3.38.4.1.3 (RegistryError@location = homeCommunityId).
    """
    code, display = _ISSUE[result.status]
    if result.status is RegionStatus.REJECTED and result.http_status == 429:
        code = "throttled"
    region = result.region
    diagnostics = f"{region.name} ({region.hcid}): {display}"
    if result.detail:
        diagnostics += f": {result.detail}"
    codings = [{"system": REGION_STATUS_SYSTEM, "code": result.status.value, "display": display}]
    if result.reason:
        # The region's own reason for refusing, passed on so the caller can act on it.
        codings.append({"system": DENIAL_REASON_SYSTEM, "code": result.reason})
    return {
        "extension": [
            {"url": EXT_HOME_COMMUNITY_ID, "valueUri": region.hcid},
            {"url": EXT_REGION_STATUS, "valueCode": result.status.value},
            {"url": EXT_REGION_LATENCY_MS, "valueInteger": round(result.latency_ms)},
        ],
        "severity": "error",
        "code": code,
        "details": {"coding": codings, "text": region.name},
        "diagnostics": diagnostics,
        "location": [region.hcid],
    }


def _truncation_issue(result: RegionResult, cap: int) -> dict[str, Any]:
    """Say truthfully why a region's answer was cut: the entry cap, or the page limit."""
    region = result.region
    if result.stopped_after_pages is not None:
        diagnostics = (
            f"{region.name} ({region.hcid}) still offered a next page after "
            f"{result.stopped_after_pages} pages, the most the hub follows per region and "
            f"search; its answer is cut there (page-limit)"
        )
    else:
        diagnostics = (
            f"{region.name} ({region.hcid}) holds more matching entries than the hub collects "
            f"per region ({cap}); narrow the search to see the rest"
        )
    return {
        "extension": [{"url": EXT_HOME_COMMUNITY_ID, "valueUri": region.hcid}],
        "severity": "warning",
        "code": "too-costly",
        "diagnostics": diagnostics,
        "location": [region.hcid],
    }


def _region_warning(result: RegionResult, issue: dict[str, Any]) -> dict[str, Any]:
    """Pass on an issue a region put in its own Bundle, marked with its homeCommunityId.

    The issue's shape was checked when the region's Bundle was read (hub/searchset.py).
    """
    out = dict(issue)
    own = [e for e in issue.get("extension") or () if e.get("url") not in _HUB_EXTENSIONS]
    out["extension"] = [*own, {"url": EXT_HOME_COMMUNITY_ID, "valueUri": result.region.hcid}]
    out["location"] = [result.region.hcid]
    return out


def region_issues(
    results: Sequence[RegionResult], *, region_cap: int = 5000
) -> list[dict[str, Any]]:
    """Return the issues of a fan-out: each failed region, each truncated one, their warnings."""
    issues: list[dict[str, Any]] = []
    for result in results:
        if not result.ok:
            issues.append(failure_issue(result))
            continue
        if result.truncated:
            issues.append(_truncation_issue(result, region_cap))
        issues.extend(_region_warning(result, w) for w in result.warnings)
    return issues


def consolidate(results: Sequence[RegionResult]) -> tuple[HubStatus, int]:
    """Return the XCA status and HTTP status of a fan-out.

    All ok → Success 200; some ok → PartialSuccess 200; none ok → Failure: 504 when every
    region timed out, 403 when every region denied; when every region refused because of the
    request (401/403/4xx, at least one 4xx) the caller's error: 429 when each 4xx was a 429,
    else 400 — never "unavailable" (issue 10 A); else 502. No region at all is a Failure too:
    an empty success would hide that nobody was asked.
    """
    if results and all(r.ok for r in results):
        return HubStatus.SUCCESS, 200
    if any(r.ok for r in results):
        return HubStatus.PARTIAL_SUCCESS, 200
    if results and all(r.status is RegionStatus.TIMEOUT for r in results):
        return HubStatus.FAILURE, 504
    if results and all(r.status is RegionStatus.DENIED for r in results):
        return HubStatus.FAILURE, 403
    if results and all(r.status.caused_by_caller for r in results):
        rejected = [r for r in results if r.status is RegionStatus.REJECTED]
        if all(r.http_status == 429 for r in rejected):
            return HubStatus.FAILURE, 429
        return HubStatus.FAILURE, 400
    return HubStatus.FAILURE, 502


def merge(
    results: Sequence[RegionResult], sort: Sequence[SortKey], *, region_cap: int = 5000
) -> MergedResult:
    """Consolidate region results into one ordered, de-duplicated answer with its issues."""
    status, http_status = consolidate(results)
    placed = [Placed(r.region.hcid, res) for r in results if r.ok for res in r.resources]
    unique, duplicates = deduplicate(placed)
    documents = sort_documents(unique, sort) if status is not HubStatus.FAILURE else []
    issues = region_issues(results, region_cap=region_cap)
    issues.extend(
        {
            "severity": "information",
            "code": "duplicate",
            "diagnostics": (
                f"document {d.unique_id} is held by {d.kept} and {d.dropped}; shown once, "
                f"from {d.kept}"
            ),
            "location": [d.kept, d.dropped],
        }
        for d in duplicates
    )
    if not results:
        issues.append(
            {
                "severity": "error",
                "code": "not-found",
                "diagnostics": "no region is enabled in the hub's directory",
            }
        )
    return MergedResult(
        status=status,
        http_status=http_status,
        documents=tuple(documents),
        issues=tuple(issues),
        duplicates=tuple(duplicates),
        masked_count=sum(r.masked_count for r in results if r.ok),
        retry_after=_retry_after(results) if http_status == 429 else None,
    )


def _retry_after(results: Sequence[RegionResult]) -> str:
    """The longest Retry-After the throttling regions gave (1 s when none said)."""
    return str(max((int(r.retry_after) for r in results if r.retry_after), default=1))
