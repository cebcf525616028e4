"""Search parameters for finding DocumentEntries, independent of the wire.

ITI-67 query strings are parsed into a `DocumentQuery` by `onerecord.mhd`; stores and the hub's
merge work on this type only.

References: IHE ITI TF-2 / MHD ITI-67 §2:3.67.4.1.2 (parameters), FHIR R4 §3.1.1.5.8 (date
prefixes), §3.1.1.5.6 (token), §3.1.1.4 (_sort).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import orjson

from onerecord.domain.document_entry import DocumentStatus
from onerecord.domain.errors import DomainError
from onerecord.domain.identifiers import DocumentUniqueId, NationalIdentityNumber
from onerecord.domain.limits import MAX_CURSOR_LENGTH, MAX_PAGE_SIZE, MAX_SORT_KEYS

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_CURSOR_VALUE_LENGTH",
    "MAX_PAGE_SIZE",
    "MAX_SEQUENCE",
    "ClassWindow",
    "DocumentQuery",
    "InvalidCursor",
    "PageCursor",
    "SortField",
    "SortKey",
    "TimeRange",
    "TokenParam",
    "TotalMode",
]

DEFAULT_PAGE_SIZE = 20

MAX_SEQUENCE = 2**63 - 1
"""The largest registry sequence number: a signed 64-bit integer (PostgreSQL bigint, SQLite)."""

MAX_CURSOR_VALUE_LENGTH = 512
"""Characters in one sort value of a cursor: a title has at most 512, a timestamp far fewer."""

_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class InvalidCursor(DomainError):
    """A paging cursor could not be decoded."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A half-open interval [lower, upper); either end may be open."""

    lower: datetime | None = None
    upper: datetime | None = None

    def contains(self, moment: datetime) -> bool:
        return (self.lower is None or moment >= self.lower) and (
            self.upper is None or moment < self.upper
        )


@dataclass(frozen=True, slots=True)
class TokenParam:
    """One token value: `system|code`, `code`, or `system|` (any code of a system)."""

    system: str | None
    code: str | None

    def matches(self, system: str, code: str) -> bool:
        return (self.system is None or self.system == system) and (
            self.code is None or self.code == code
        )


class TotalMode(StrEnum):
    """FHIR R4 `_total`: whether a searchset carries the number of matches.

    Without `_total` the total is given only when it costs nothing (a first page that holds
    every match); `accurate` and `estimate` count (an accurate count is a fine estimate);
    `none` never gives it. References: FHIR R4 search.html#total.
    """

    NONE = "none"
    ESTIMATE = "estimate"
    ACCURATE = "accurate"


class SortField(StrEnum):
    """Sort keys a source and the hub can both order by."""

    DATE = "date"
    CREATION = "creation"
    PERIOD = "period"
    TITLE = "title"


@dataclass(frozen=True, slots=True)
class SortKey:
    field: SortField
    descending: bool

    def render(self) -> str:
        return f"-{self.field.value}" if self.descending else self.field.value


AnyOf = tuple[TokenParam, ...]
"""Comma-separated values of one parameter: any may match (OR)."""


@dataclass(frozen=True, slots=True)
class ClassWindow:
    """Access policy: entries of this classCode are listed when dated at or after `since`.

    The date is serviceStartTime, else creationTime; `since` None lists every date.
    """

    system: str
    code: str
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class DocumentQuery:
    """A FindDocuments query for one patient. Repeated parameters are ANDed; commas are ORed."""

    patient_id: NationalIdentityNumber
    statuses: frozenset[DocumentStatus] = frozenset({DocumentStatus.CURRENT})
    date: tuple[TimeRange, ...] = ()
    creation: tuple[TimeRange, ...] = ()
    period: tuple[TimeRange, ...] = ()
    category: tuple[AnyOf, ...] = ()
    type: tuple[AnyOf, ...] = ()
    setting: tuple[AnyOf, ...] = ()
    facility: tuple[AnyOf, ...] = ()
    event: tuple[AnyOf, ...] = ()
    security_label: tuple[AnyOf, ...] = ()
    format: tuple[AnyOf, ...] = ()
    identifier: tuple[AnyOf, ...] = ()
    related: tuple[AnyOf, ...] = ()
    author_given: tuple[tuple[str, ...], ...] = ()
    author_family: tuple[tuple[str, ...], ...] = ()
    sort: tuple[SortKey, ...] = (SortKey(SortField.DATE, descending=True),)
    count: int = DEFAULT_PAGE_SIZE
    total: TotalMode | None = None
    # Set by access policy, never by the client: entries carrying any of these labels are left
    # out, and so are entries whose citizen release time lies after `released_by`.
    hidden_labels: frozenset[str] = field(default=frozenset())
    released_by: datetime | None = None
    # Set by access policy too: with `shown_classes`, only entries of those classes (each within
    # its window) are listed; entries with a `masked_labels` label or a `masked_documents`
    # uniqueId are listed as placeholders, matched and sorted only on what a placeholder shows.
    shown_classes: tuple[ClassWindow, ...] | None = None
    masked_labels: frozenset[str] = field(default=frozenset())
    masked_documents: frozenset[DocumentUniqueId] = field(default=frozenset())
    # An emergency grant's classes (system in urn:oid form, code): their entries are not
    # masked whatever their labels (issue 11, defect 7; trust.emergency).
    unmasked_classes: frozenset[tuple[str, str]] = field(default=frozenset())


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where the next page starts, over a stable snapshot.

    `snapshot` is the highest registry sequence number visible when the first page was served;
    entries registered later never shift the pages of a running traversal. `after` holds the sort
    values and sequence number of the last entry served.
    """

    snapshot: int
    after: tuple[str | int | None, ...] | None = None

    def encode(self) -> str:
        raw = orjson.dumps({"s": self.snapshot, "a": self.after})
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, token: str) -> PageCursor:
        """Decode a cursor from the wire, checking every type and range before any use.

        A cursor comes back from the client, so it is outside input: base64url of a JSON object
        {"s": snapshot, "a": null | [sort values…, seq]} and nothing else. Integers are
        sequence numbers within a signed 64-bit integer (a bool is not one), strings are at most
        MAX_CURSOR_VALUE_LENGTH characters, and there is one value per sort key plus the
        sequence number. The store checks each value against its column (`_Order.decode`).
        """
        if len(token) > MAX_CURSOR_LENGTH:
            raise InvalidCursor(
                f"the paging cursor is longer than MAX_CURSOR_LENGTH ({MAX_CURSOR_LENGTH})",
                expression="_cursor",
            )
        if not token or not set(token) <= _BASE64URL:
            raise _invalid()
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = orjson.loads(raw)
        except (ValueError, binascii.Error) as exc:
            raise _invalid() from exc
        if not isinstance(data, dict) or set(data) != {"s", "a"}:
            raise _invalid()
        snapshot = data["s"]
        if not _is_sequence(snapshot):
            raise _invalid()
        after = data["a"]
        if after is None:
            return cls(snapshot=snapshot, after=None)
        if not isinstance(after, list) or not 1 <= len(after) <= MAX_SORT_KEYS + 1:
            raise _invalid()
        for value in after:
            if value is None or _is_sequence(value):
                continue
            if not isinstance(value, str) or len(value) > MAX_CURSOR_VALUE_LENGTH:
                raise _invalid()
        return cls(snapshot=snapshot, after=tuple(after))


def _is_sequence(value: object) -> bool:
    """True for an int (not a bool) that a registry sequence number can be."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEQUENCE


def _invalid() -> InvalidCursor:
    # One message for every fault: a cursor is opaque to the client, which only sends it back.
    return InvalidCursor("the paging cursor is not valid", expression="_cursor")
