"""What a call to a region ends in: its answer, or why there is none (hub/client.py, http1.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RegionConnectError", "RegionResponse", "RegionTransportError", "ResponseTooLarge"]


class RegionConnectError(Exception):
    """No connection could be made: nothing was sent, so the request may be retried."""


class RegionTransportError(Exception):
    """The exchange broke after the request was (or may have been) sent; do not retry."""


class ResponseTooLarge(RegionTransportError):
    """A region's JSON answer exceeded the hub's limit (reported `too-large`, not unavailable)."""


@dataclass(frozen=True, slots=True)
class RegionResponse:
    """A complete answer from a region: status, lower-cased headers, body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
