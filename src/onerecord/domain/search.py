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
from onerecord.domain.limits import MAX_PAGE_SIZE

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "ClassWindow",
    "DocumentQuery",
    "InvalidCursor",
    "PageCursor",
    "SortField",
    "SortKey",
    "TimeRange",
    "TokenParam",
]

DEFAULT_PAGE_SIZE = 20


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
        try:
            padded = token + "=" * (-len(token) % 4)
            data = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            snapshot = data["s"]
            after = data["a"]
            if not isinstance(snapshot, int) or snapshot < 0:
                raise ValueError("snapshot")
            if after is not None:
                if not isinstance(after, list) or not all(
                    v is None or isinstance(v, str | int) for v in after
                ):
                    raise ValueError("after")
                after = tuple(after)
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError) as exc:
            raise InvalidCursor("the paging cursor is not valid", expression="_cursor") from exc
        return cls(snapshot=snapshot, after=after)
