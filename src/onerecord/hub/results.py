"""What one region answered to a fan-out query: the values merge and the edge work on."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from onerecord.hub.directory import Region

__all__ = ["RegionResult", "RegionStatus"]


class RegionStatus(StrEnum):
    """How a region's part of a fan-out ended (after XCA XDSUnavailableCommunity and friends)."""

    OK = "ok"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    DENIED = "denied"
    INVALID_RESPONSE = "invalid-response"
    ERROR = "error"

    @property
    def counts_against_breaker(self) -> bool:
        """A denial is the region working as intended; every other failure is ill health."""
        return self not in (RegionStatus.OK, RegionStatus.DENIED)


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

    @property
    def ok(self) -> bool:
        return self.status is RegionStatus.OK
