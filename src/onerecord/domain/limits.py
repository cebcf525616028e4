"""Bounded work per request: the limits every edge enforces before any logic runs.

One table, shared by the document sources, the hub and the portals, so that the hub refuses with
400 exactly what a region would refuse (a caller's error is the caller's, never a region's), and
so that a caller can read each limit by its name in the 400 that names it (docs/security.md).

Each limit is checked where the wire is parsed; `LimitExceeded` is a `DomainError`, so every edge
already answers it with 400 and an OperationOutcome naming the limit and the value seen.
"""

from __future__ import annotations

from datetime import UTC, datetime

from onerecord.domain.errors import DomainError

__all__ = [
    "EARLIEST_DATE",
    "LATEST_DATE",
    "MAX_BODY_BYTES",
    "MAX_CURSOR_LENGTH",
    "MAX_HEADER_LENGTH",
    "MAX_OR_VALUES",
    "MAX_PAGE_SIZE",
    "MAX_PARAMETERS",
    "MAX_PARAMETER_REPEATS",
    "MAX_STRING_LENGTH",
    "MAX_UTC_OFFSET_MINUTES",
    "LimitExceeded",
    "check_count",
    "check_length",
]

MAX_PARAMETERS = 50
"""Query parameters in one search (GET query string or POST `_search` form), all names counted."""

MAX_PARAMETER_REPEATS = 10
"""Times one parameter name may repeat (AND of the repeats, e.g. two `date` bounds)."""

MAX_OR_VALUES = 50
"""Comma-separated values in one token or string parameter (an OR-list of codes)."""

MAX_STRING_LENGTH = 256
"""Characters in one parameter value (a name, a code, an identifier)."""

MAX_HEADER_LENGTH = 8192
"""Characters in one forwarded header value (`nhn-access-basis`, a token, a DPoP proof)."""

MAX_CURSOR_LENGTH = 1024
"""Characters in an opaque paging cursor or snapshot id."""

MAX_PAGE_SIZE = 500
"""`_count` at most; larger values are refused rather than silently clamped."""

MAX_BODY_BYTES = 64 * 1024
"""Bytes of a search or control request body (not a document upload, which has its own limit)."""

EARLIEST_DATE = datetime(1800, 1, 1, tzinfo=UTC)
"""No document, birth or event in the record is older; a date before it is refused with 400."""

LATEST_DATE = datetime(2200, 1, 1, tzinfo=UTC)
"""A date at or after it is refused with 400 (far-future dates overflow arithmetic elsewhere)."""

MAX_UTC_OFFSET_MINUTES = 14 * 60
"""ISO 8601 / FHIR offsets lie within ±14:00; `+24:00` or `+99:99` is refused."""


class LimitExceeded(DomainError):
    """A request asked for more work than the limit allows; the message names the limit."""

    def __init__(self, limit: str, allowed: int, seen: int, *, expression: str | None = None):
        super().__init__(f"{limit}: at most {allowed} allowed, {seen} given", expression=expression)
        self.limit = limit
        self.allowed = allowed
        self.seen = seen


def check_length(value: str, *, limit: int = MAX_STRING_LENGTH, name: str) -> str:
    """Return `value` if it has at most `limit` characters, else raise LimitExceeded."""
    if len(value) > limit:
        raise LimitExceeded("MAX_STRING_LENGTH", limit, len(value), expression=name)
    return value


def check_count(count: int, *, limit: int, limit_name: str, name: str | None = None) -> int:
    """Return `count` if it is at most `limit`, else raise LimitExceeded naming the limit."""
    if count > limit:
        raise LimitExceeded(limit_name, limit, count, expression=name)
    return count
