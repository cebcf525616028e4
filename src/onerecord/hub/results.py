"""What one region answered to a fan-out query: the values merge and the edge work on."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from onerecord.hub.directory import Region

__all__ = ["RegionResult", "RegionStatus"]


class RegionStatus(StrEnum):
    """How a region's part of a fan-out ended (after XCA XDSUnavailableCommunity and friends).

    OK                the region answered a valid searchset about the patient asked for
    UNAVAILABLE       no connection, a broken exchange, or its breaker is open (not asked)
    TIMEOUT           no whole answer within the region's timeout or the aggregation deadline
    DENIED            HTTP 401/403: the region's policy refused this caller
    REJECTED          another HTTP 4xx: the region refused the caller's request as invalid
    INVALID_RESPONSE  the answer is not a well-formed searchset, or holds an entry that is not
                      about the patient asked for
    TOO_LARGE         the answer exceeded the hub's size limit for one region answer
    ERROR             HTTP 5xx or another status the hub does not expect
    """

    OK = "ok"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    DENIED = "denied"
    REJECTED = "rejected"
    INVALID_RESPONSE = "invalid-response"
    TOO_LARGE = "too-large"
    ERROR = "error"

    @property
    def counts_against_breaker(self) -> bool:
        """Only the region's ill health counts: transport errors, timeouts, 5xx, bad answers.

        A denial is the region working as intended, and a 4xx refusal is caused by the caller's
        request: neither may open a breaker that shuts every other caller out (issue 10 A).
        """
        return self not in _HEALTHY

    @property
    def caused_by_caller(self) -> bool:
        """True when the region refused because of who asked or what was asked (401/403/4xx)."""
        return self in (RegionStatus.DENIED, RegionStatus.REJECTED)


@dataclass(frozen=True, slots=True)
class RegionResult:
    """One region's answer: its DocumentReferences when ok, else why it failed; with latency."""

    region: Region
    status: RegionStatus
    latency_ms: float
    resources: tuple[dict[str, Any], ...] = ()
    masked_count: int = 0
    truncated: bool = False
    detail: str = ""
    http_status: int | None = None
    warnings: tuple[dict[str, Any], ...] = field(default=())
    reason: str | None = None
    """Why the region refused, as its OperationOutcome's denial-reason code (DENIED only)."""
    stopped_after_pages: int | None = None
    """Set when the hub stopped following the region's `next` links at its page limit."""
    retry_after: str | None = None
    """The region's Retry-After when it answered 429 (REJECTED only)."""

    @property
    def ok(self) -> bool:
        return self.status is RegionStatus.OK


_HEALTHY = frozenset({RegionStatus.OK, RegionStatus.DENIED, RegionStatus.REJECTED})
