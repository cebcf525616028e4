"""The registry store: DocumentEntries in SQL (SQLite or PostgreSQL), registered and found.

    StoreError
    ├── DuplicateDocument    uniqueId (or entryUUID) already registered for other content (→ 409)
    └── InvalidReplacement   RPLC target missing, not current, or another patient's (→ 422)

`register` is all or nothing. A repeated uniqueId with the same SHA-256 and patient is
idempotent. `find` applies every DocumentQuery field in SQL and pages by keyset over a snapshot
of the registry sequence number, so entries registered during a traversal never shift it.

References: IHE ITI TF-2 3.42.4.1.3 (Register: uniqueId reuse, RPLC), ITI TF-3 4.2.2.2
(RPLC marks the original Deprecated), MHD ITI-67 2:3.67.4.1.2 (query parameters).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

import orjson
from sqlalchemy import (
    ColumnElement,
    Text,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from onerecord.domain import (
    CONFIDENTIALITY_VOLVEN,
    Author,
    AuthorInstitution,
    AuthorPerson,
    Coding,
    DocumentEntry,
    DocumentQuery,
    DocumentStatus,
    DocumentUniqueId,
    HomeCommunityId,
    HprNumber,
    InvalidCursor,
    NationalIdentityNumber,
    OrganisationNumber,
    PageCursor,
    RepositoryUniqueId,
    ReshId,
    SortField,
    TokenParam,
    TotalMode,
    normalise_system,
)
from onerecord.domain.limits import check_moment
from onerecord.mhd.docref import document_reference_template
from onerecord.source.group_register import GroupRegister
from onerecord.source.schema import (
    NO_PERIOD,
    document_code,
    document_entry,
    document_label,
    submission_set,
)
from onerecord.trust.policy import MASKED_TITLE

__all__ = [
    "ENTRY_ONLY_FILTERS",
    "IDENTIFIER_SYSTEM",
    "PLACEHOLDER_FILTERS",
    "DocumentStore",
    "DuplicateDocument",
    "FoundEntry",
    "InvalidReplacement",
    "Page",
    "RegisterResult",
    "SqlDocumentStore",
    "StoreError",
    "StoredEntry",
    "SubmissionSetRecord",
    "author_search_text",
    "entry_from_json",
    "entry_to_json",
    "fill_stored_renderings",
    "identifier_codes",
    "related_codes",
    "render_stored",
]

IDENTIFIER_SYSTEM = "urn:ietf:rfc:3986"
"""System of DocumentReference.masterIdentifier (uniqueId) and identifier (entryUUID) in MHD."""

_T = TypeVar("_T")
_CHUNK = 500  # values per IN (...) list; far below every database's parameter limit
_RETRIES = 3


class StoreError(Exception):
    """The registry refused or failed an operation."""


class DuplicateDocument(StoreError):
    """The uniqueId or entryUUID is already registered for a different document."""

    def __init__(self, message: str, *, unique_id: DocumentUniqueId) -> None:
        super().__init__(message)
        self.unique_id = unique_id


class InvalidReplacement(StoreError):
    """A replacement (RPLC) names a target that does not exist, is not current, or differs."""

    def __init__(self, message: str, *, unique_id: DocumentUniqueId) -> None:
        super().__init__(message)
        self.unique_id = unique_id


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """A registered entry and its registry sequence number."""

    seq: int
    entry: DocumentEntry


class FoundEntry:
    """One entry a find returned, read from its row's columns: no metadata decoded up front.

    It answers what the access rules read (`onerecord.trust.policy.EntryFacts`) and carries
    the stored rendering (`rendered`, None when there is none); `entry`, the whole
    DocumentEntry, is decoded from the metadata only when something asks for it (a masked
    placeholder, a row without a rendering).
    """

    __slots__ = (
        "_class",
        "_codes",
        "_entry",
        "_metadata",
        "_unique_id",
        "citizen_release_time",
        "creation_time",
        "entry_uuid",
        "rendered",
        "seq",
        "service_start_time",
        "status",
    )

    def __init__(
        self,
        seq: int,
        unique_id: str,
        entry_uuid: str,
        status: str,
        class_system: str,
        class_code: str,
        creation_time: datetime,
        service_start_time: datetime | None,
        citizen_release_time: datetime | None,
        confidentiality_codes: str | None,
        rendered: bytes | None,
        metadata: str | dict[str, Any],
    ) -> None:
        self.seq = seq
        self._unique_id: str | DocumentUniqueId = unique_id
        self.entry_uuid = entry_uuid
        self.status = status
        self._class: tuple[str, str] | Coding = (class_system, class_code)
        self.creation_time = creation_time
        self.service_start_time = service_start_time
        self.citizen_release_time = citizen_release_time
        self._codes: str | frozenset[str] | None = confidentiality_codes
        self.rendered = rendered
        self._metadata = metadata
        self._entry: DocumentEntry | None = None

    @property
    def unique_id(self) -> DocumentUniqueId:
        if isinstance(self._unique_id, str):
            self._unique_id = DocumentUniqueId(self._unique_id)
        return self._unique_id

    @property
    def class_code(self) -> Coding:
        """classCode without its display (the rules compare system and code only)."""
        if isinstance(self._class, tuple):
            self._class = Coding(*self._class)
        return self._class

    @property
    def confidentiality_code_values(self) -> frozenset[str]:
        if self._codes is None:
            self._codes = self.entry.confidentiality_code_values
        elif isinstance(self._codes, str):
            self._codes = frozenset(orjson.loads(self._codes))
        return self._codes

    @property
    def entry(self) -> DocumentEntry:
        """The whole entry, decoded from the metadata on first use."""
        if self._entry is None:
            meta = self._metadata
            self._entry = _from_row(
                orjson.loads(meta) if isinstance(meta, str) else meta, self.status
            )
        return self._entry


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a find: entries in sort order, the cursor of the next page, the total.

    `total` is None when it was not counted (`DocumentQuery.total`, see `SqlDocumentStore.find`).
    """

    entries: tuple[FoundEntry, ...]
    next_cursor: PageCursor | None
    total: int | None


@dataclass(frozen=True, slots=True)
class RegisterResult:
    """What a register did: every entry in input order, as now stored."""

    stored: tuple[StoredEntry, ...]
    already_present: frozenset[DocumentUniqueId]
    superseded: tuple[DocumentUniqueId, ...]

    @property
    def entries(self) -> tuple[DocumentEntry, ...]:
        return tuple(s.entry for s in self.stored)


@dataclass(frozen=True, slots=True)
class SubmissionSetRecord:
    """The SubmissionSet an ITI-65 bundle carried, kept for provenance."""

    unique_id: str
    source_id: str
    submission_time: datetime
    entry_count: int

    @classmethod
    def from_bundle(cls, bundle: Any, *, submitted: datetime) -> SubmissionSetRecord:
        """Take the SubmissionSet of a parsed provide bundle.

        Reads `unique_id`/`submission_set_unique_id` and `source_id` from
        `bundle.submission_set` (or the bundle itself) and counts `bundle.documents`.
        """
        holder = getattr(bundle, "submission_set", None) or bundle
        unique_id = getattr(holder, "unique_id", None) or getattr(
            holder, "submission_set_unique_id", None
        )
        source_id = getattr(holder, "source_id", None)
        if unique_id is None or source_id is None:
            raise TypeError("the bundle carries no SubmissionSet uniqueId and sourceId")
        return cls(
            unique_id=str(unique_id),
            source_id=str(source_id),
            submission_time=submitted,
            entry_count=len(getattr(bundle, "documents", ())),
        )


class DocumentStore(Protocol):
    """The registry as the document source's service sees it."""

    async def check_registrable(self, documents: Sequence[DocumentEntry]) -> None:
        """Raise what `register` would raise for these entries now; write nothing."""

    async def register(
        self, documents: Sequence[DocumentEntry], *, submission_set: SubmissionSetRecord | None
    ) -> RegisterResult:
        """Register every entry in one transaction, or none."""

    async def find(self, query: DocumentQuery, cursor: PageCursor | None) -> Page:
        """Return one page of the entries matching `query`."""

    async def get(self, unique_id: DocumentUniqueId) -> DocumentEntry | None:
        """Return the entry with `unique_id`, or None."""

    async def has_content(self, sha256: str) -> bool:
        """True if any registered entry references content with this SHA-256."""

    async def count(self) -> int:
        """Return how many entries are registered."""

    async def close(self) -> None:
        """Release what the store holds."""


# --- the metadata JSON: the whole entry, so a row reads back as exactly the entry stored ------


def _coding(c: Coding) -> dict[str, Any]:
    return {"system": c.system, "code": c.code, "display": c.display}


def _coding_from(d: dict[str, Any]) -> Coding:
    return Coding(d["system"], d["code"], d.get("display"))


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _when_from(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _author(a: Author) -> dict[str, Any]:
    person = a.person
    inst = a.institution
    return {
        "person": None
        if person is None
        else {
            "given": person.given,
            "family": person.family,
            "hpr": person.hpr.value if person.hpr else None,
        },
        "institution": None
        if inst is None
        else {
            "name": inst.name,
            "organisation_number": inst.organisation_number.value,
            "department_name": inst.department_name,
            "department_resh": inst.department_resh.value if inst.department_resh else None,
        },
        "role": a.role,
    }


def _author_from(d: dict[str, Any]) -> Author:
    p = d.get("person")
    i = d.get("institution")
    return Author(
        person=None
        if p is None
        else AuthorPerson(
            given=p["given"],
            family=p["family"],
            hpr=HprNumber(p["hpr"]) if p.get("hpr") else None,
        ),
        institution=None
        if i is None
        else AuthorInstitution(
            name=i["name"],
            organisation_number=OrganisationNumber(i["organisation_number"]),
            department_name=i.get("department_name"),
            department_resh=ReshId(i["department_resh"]) if i.get("department_resh") else None,
        ),
        role=d.get("role"),
    )


def entry_to_json(entry: DocumentEntry) -> dict[str, Any]:
    """Return the whole entry as JSON-ready data (version 1 of the `metadata` column)."""
    return {
        "v": 1,
        "unique_id": entry.unique_id.value,
        "entry_uuid": str(entry.entry_uuid),
        "patient_id": entry.patient_id.value,
        "class_code": _coding(entry.class_code),
        "type_code": _coding(entry.type_code),
        "confidentiality_codes": [_coding(c) for c in entry.confidentiality_codes],
        "format_code": _coding(entry.format_code),
        "mime_type": entry.mime_type,
        "hash_sha256": entry.hash_sha256,
        "hash_sha1": entry.hash_sha1,
        "size": entry.size,
        "creation_time": _when(entry.creation_time),
        "title": entry.title,
        "language_code": entry.language_code,
        "healthcare_facility_type": _coding(entry.healthcare_facility_type),
        "practice_setting": _coding(entry.practice_setting),
        "authors": [_author(a) for a in entry.authors],
        "event_codes": [_coding(c) for c in entry.event_codes],
        "service_start_time": _when(entry.service_start_time),
        "service_stop_time": _when(entry.service_stop_time),
        "status": entry.status.value,
        "replaces": entry.replaces.value if entry.replaces else None,
        "reference_ids": list(entry.reference_ids),
        "citizen_release_time": _when(entry.citizen_release_time),
        "repository_unique_id": (
            str(entry.repository_unique_id) if entry.repository_unique_id else None
        ),
        "home_community_id": str(entry.home_community_id) if entry.home_community_id else None,
        "submission_time": _when(entry.submission_time),
    }


def entry_from_json(d: dict[str, Any]) -> DocumentEntry:
    """Rebuild a DocumentEntry from `entry_to_json` output."""
    creation = _when_from(d["creation_time"])
    assert creation is not None
    return DocumentEntry(
        unique_id=DocumentUniqueId(d["unique_id"]),
        entry_uuid=UUID(d["entry_uuid"]),
        patient_id=NationalIdentityNumber(d["patient_id"]),
        class_code=_coding_from(d["class_code"]),
        type_code=_coding_from(d["type_code"]),
        confidentiality_codes=tuple(_coding_from(c) for c in d["confidentiality_codes"]),
        format_code=_coding_from(d["format_code"]),
        mime_type=d["mime_type"],
        hash_sha256=d["hash_sha256"],
        hash_sha1=d["hash_sha1"],
        size=d["size"],
        creation_time=creation,
        title=d["title"],
        language_code=d["language_code"],
        healthcare_facility_type=_coding_from(d["healthcare_facility_type"]),
        practice_setting=_coding_from(d["practice_setting"]),
        authors=tuple(_author_from(a) for a in d["authors"]),
        event_codes=tuple(_coding_from(c) for c in d["event_codes"]),
        service_start_time=_when_from(d["service_start_time"]),
        service_stop_time=_when_from(d["service_stop_time"]),
        status=DocumentStatus(d["status"]),
        replaces=DocumentUniqueId(d["replaces"]) if d["replaces"] else None,
        reference_ids=tuple(d["reference_ids"]),
        citizen_release_time=_when_from(d["citizen_release_time"]),
        repository_unique_id=(
            RepositoryUniqueId.parse(d["repository_unique_id"])
            if d["repository_unique_id"]
            else None
        ),
        home_community_id=(
            HomeCommunityId.parse(d["home_community_id"]) if d["home_community_id"] else None
        ),
        submission_time=_when_from(d["submission_time"]),
    )


# --- rows ------------------------------------------------------------------------------------


def author_search_text(entry: DocumentEntry) -> str:
    """Return the lower-case author name index: "|g:<given>|f:<family>" per name and word."""
    parts: list[str] = []
    for author in entry.authors:
        if author.person is None:
            continue
        for tag, name in (("g", author.person.given), ("f", author.person.family)):
            clean = _fold(name)
            if not clean:
                continue
            parts.append(f"|{tag}:{clean}")
            words = clean.split()
            if len(words) > 1:
                parts.extend(f"|{tag}:{word}" for word in words)
    return "".join(parts) + ("|" if parts else "")


def _fold(text: str) -> str:
    return " ".join(text.replace("|", " ").casefold().split())


def identifier_codes(entry: DocumentEntry) -> list[tuple[str, str]]:
    """Return the identifier tokens of an entry: uniqueId and entryUUID as URIs (MHD)."""
    return [
        (IDENTIFIER_SYSTEM, entry.unique_id.urn),
        (IDENTIFIER_SYSTEM, f"urn:uuid:{entry.entry_uuid}"),
    ]


def related_codes(entry: DocumentEntry) -> list[tuple[str, str]]:
    """Return (system, value) of each referenceIdList item (CXi: value^^^&oid&ISO^type).

    References: IHE ITI TF-3 4.2.3.2.28 (referenceIdList).
    """
    codes: list[tuple[str, str]] = []
    for ref in entry.reference_ids:
        fields = ref.split("^")
        value = fields[0]
        system = ""
        if len(fields) >= 4 and fields[3]:
            authority = fields[3].split("&")
            if len(authority) >= 2 and authority[1]:
                system = normalise_system(authority[1])
        codes.append((system, value))
    return codes


def _entry_row(entry: DocumentEntry) -> dict[str, Any]:
    period = entry.service_start_time or entry.service_stop_time or NO_PERIOD
    return {
        "unique_id": entry.unique_id.value,
        "entry_uuid": str(entry.entry_uuid),
        "patient_id": entry.patient_id.value,
        "patient_system": entry.patient_id.system,
        "status": entry.status.value,
        "class_system": entry.class_code.system,
        "class_code": entry.class_code.code,
        "type_system": entry.type_code.system,
        "type_code": entry.type_code.code,
        "format_system": entry.format_code.system,
        "format_code": entry.format_code.code,
        "mime_type": entry.mime_type,
        "hash_sha256": entry.hash_sha256,
        "hash_sha1": entry.hash_sha1,
        "size": entry.size,
        "creation_time": entry.creation_time,
        "service_start_time": entry.service_start_time,
        "service_stop_time": entry.service_stop_time,
        "period_sort": period,
        "title": entry.title,
        "language_code": entry.language_code,
        "facility_system": entry.healthcare_facility_type.system,
        "facility_type": entry.healthcare_facility_type.code,
        "setting_system": entry.practice_setting.system,
        "practice_setting": entry.practice_setting.code,
        "citizen_release_time": entry.citizen_release_time,
        "replaces": entry.replaces.value if entry.replaces else None,
        "submission_time": entry.submission_time,
        "home_community_id": str(entry.home_community_id) if entry.home_community_id else None,
        "repository_unique_id": (
            str(entry.repository_unique_id) if entry.repository_unique_id else None
        ),
        "author_search": author_search_text(entry),
        "metadata": entry_to_json(entry),
        **render_stored(entry),
    }


def render_stored(entry: DocumentEntry) -> dict[str, Any]:
    """The columns a search reads instead of the metadata: the label codes and the rendering."""
    return {
        "confidentiality_codes": orjson.dumps(
            sorted({c.code for c in entry.confidentiality_codes})
        ).decode("utf-8"),
        "rendered": document_reference_template(entry),
    }


def fill_stored_renderings(connection: Connection, *, batch_size: int = 1000) -> int:
    """Fill `render_stored` for every row that lacks it, in batches by `seq`; return how many.

    For the migration that added the columns (and for any later one that changes the rendering:
    set `confidentiality_codes` to NULL, then call this). Runs in the caller's transaction.
    """
    e = document_entry.c
    done = 0
    last = 0
    while True:
        rows = connection.execute(
            select(e.seq, e.metadata, e.status)
            .where(e.seq > last, e.confidentiality_codes.is_(None))
            .order_by(e.seq)
            .limit(batch_size)
        ).all()
        if not rows:
            return done
        values = [
            {"b_seq": seq, **{f"b_{k}": v for k, v in render_stored(entry).items()}}
            for seq, entry in ((r[0], _from_row(r[1], r[2])) for r in rows)
        ]
        connection.execute(
            update(document_entry)
            .where(e.seq == bindparam("b_seq"))
            .values(
                confidentiality_codes=bindparam("b_confidentiality_codes"),
                rendered=bindparam("b_rendered"),
            ),
            values,
        )
        done += len(rows)
        last = rows[-1][0]


def _label_rows(seq: int, entry: DocumentEntry) -> list[dict[str, Any]]:
    pairs = {(c.system, c.code) for c in entry.confidentiality_codes}
    return [{"entry_seq": seq, "system": s, "code": c} for s, c in sorted(pairs)]


def _code_rows(seq: int, entry: DocumentEntry) -> list[dict[str, Any]]:
    rows = {("event", c.system, c.code) for c in entry.event_codes}
    rows |= {("related", s, c) for s, c in related_codes(entry)}
    rows |= {("identifier", s, c) for s, c in identifier_codes(entry)}
    return [{"entry_seq": seq, "kind": k, "system": s, "code": c} for k, s, c in sorted(rows)]


def _from_row(metadata: Any, status: str) -> DocumentEntry:
    entry = entry_from_json(metadata)
    # The status column is authoritative: RPLC updates it without rewriting the JSON.
    if entry.status.value != status:
        entry = replace(entry, status=DocumentStatus(status))
    return entry


def _chunks(items: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- query -----------------------------------------------------------------------------------


_SORT_COLUMNS = {
    SortField.DATE: document_entry.c.creation_time,
    SortField.CREATION: document_entry.c.creation_time,
    SortField.PERIOD: document_entry.c.period_sort,
    SortField.TITLE: document_entry.c.title,
}

_TOKEN_COLUMNS = {
    "category": (document_entry.c.class_system, document_entry.c.class_code),
    "type": (document_entry.c.type_system, document_entry.c.type_code),
    "setting": (document_entry.c.setting_system, document_entry.c.practice_setting),
    "facility": (document_entry.c.facility_system, document_entry.c.facility_type),
    "format": (document_entry.c.format_system, document_entry.c.format_code),
}

_CODE_KIND_OF = {"event": "event", "related": "related", "identifier": "identifier"}


def _token(system_col: Any, code_col: Any, token: TokenParam) -> ColumnElement[bool]:
    parts: list[ColumnElement[bool]] = []
    if token.system is not None:
        parts.append(system_col == (normalise_system(token.system) if token.system else ""))
    if token.code is not None:
        parts.append(code_col == token.code)
    return and_(true(), *parts)


def _any_of(system_col: Any, code_col: Any, tokens: Sequence[TokenParam]) -> ColumnElement[bool]:
    return or_(false(), *(_token(system_col, code_col, t) for t in tokens))


def _conditions(query: DocumentQuery) -> list[ColumnElement[bool]]:
    """Translate every DocumentQuery field into a WHERE condition on document_entry.

    A masked entry (`masked_labels`, `masked_documents`) matches only on what its placeholder
    shows (`_placeholder_filters`); every other entry on all of its metadata.
    """
    e = document_entry.c
    where: list[ColumnElement[bool]] = [e.patient_id == query.patient_id.value]
    where.append(e.status.in_(sorted(s.value for s in query.statuses)))
    where.extend(_policy_conditions(query))
    filters = _filters(query)
    masked = _masked(query)
    if masked is None:
        where.extend(filters)
    elif filters:
        where.append(
            or_(
                and_(~masked, true(), *filters),
                and_(masked, true(), *_placeholder_filters(query)),
            )
        )
    return where


def _filters(query: DocumentQuery) -> list[ColumnElement[bool]]:
    """The caller's search parameters (all but patient and status) over an entry's metadata."""
    e = document_entry.c
    where: list[ColumnElement[bool]] = []
    for span in (*query.date, *query.creation):
        if span.lower is not None:
            where.append(e.creation_time >= span.lower)
        if span.upper is not None:
            where.append(e.creation_time < span.upper)
    for span in query.period:
        # Overlap of [start, stop] with [lower, upper); an open end of the period takes the
        # other end, and an entry without any period never matches.
        where.append(or_(e.service_start_time.is_not(None), e.service_stop_time.is_not(None)))
        if span.lower is not None:
            where.append(func.coalesce(e.service_stop_time, e.service_start_time) >= span.lower)
        if span.upper is not None:
            where.append(func.coalesce(e.service_start_time, e.service_stop_time) < span.upper)
    for name, (system_col, code_col) in _TOKEN_COLUMNS.items():
        for tokens in getattr(query, name):
            where.append(_any_of(system_col, code_col, tokens))
    for name, kind in _CODE_KIND_OF.items():
        for tokens in getattr(query, name):
            c = document_code.c
            where.append(
                exists().where(
                    c.entry_seq == e.seq,
                    c.kind == kind,
                    _any_of(c.system, c.code, tokens),
                )
            )
    for tokens in query.security_label:
        lab = document_label.c
        where.append(exists().where(lab.entry_seq == e.seq, _any_of(lab.system, lab.code, tokens)))
    for tag, groups in (("g", query.author_given), ("f", query.author_family)):
        for names in groups:
            where.append(
                or_(
                    false(),
                    *(
                        e.author_search.contains(f"|{tag}:{_fold(n)}", autoescape=True)
                        for n in names
                    ),
                )
            )
    return where


def _policy_conditions(query: DocumentQuery) -> list[ColumnElement[bool]]:
    """What access policy leaves out: hidden labels, unreleased entries, classes not shown."""
    e = document_entry.c
    where: list[ColumnElement[bool]] = []
    if query.hidden_labels:
        lab = document_label.c
        where.append(
            ~exists().where(lab.entry_seq == e.seq, lab.code.in_(sorted(query.hidden_labels)))
        )
    if query.released_by is not None:
        where.append(
            or_(e.citizen_release_time.is_(None), e.citizen_release_time <= query.released_by)
        )
    if query.shown_classes is not None:
        where.append(
            or_(
                false(),
                *(
                    and_(
                        e.class_system == w.system,
                        e.class_code == w.code,
                        true() if w.since is None else _shown_date() >= w.since,
                    )
                    for w in query.shown_classes
                ),
            )
        )
    return where


# What a masked placeholder shows of an entry, and so all it may be matched and sorted on:
# patient, status, classCode, its date (serviceStartTime, else creationTime) and the one
# security label NORS. References: onerecord.trust.policy.MaskedEntry; TRUST-FRAMEWORK §4.5.
PLACEHOLDER_FILTERS = frozenset({"date", "category", "security_label"})
"""DocumentQuery filters a masked entry is matched on, by the values its placeholder shows."""

ENTRY_ONLY_FILTERS = frozenset(
    {
        "creation",
        "period",
        "type",
        "setting",
        "facility",
        "event",
        "format",
        "identifier",
        "related",
        "author_given",
        "author_family",
    }
)
"""DocumentQuery filters on what a placeholder hides: with any of them, no placeholder matches.

Left out, not let through: the answer is then the same whatever value is asked for, so it tells
nothing of the hidden value, and a placeholder never stands in a list it visibly does not fit.
"""

_PLACEHOLDER_LABEL = (CONFIDENTIALITY_VOLVEN, "NORS")


def _shown_date() -> ColumnElement[datetime]:
    e = document_entry.c
    return func.coalesce(e.service_start_time, e.creation_time)


def _masked(query: DocumentQuery) -> ColumnElement[bool] | None:
    """True for an entry shown as a placeholder, or None when the query masks nothing."""
    e = document_entry.c
    parts: list[ColumnElement[bool]] = []
    if query.masked_labels:
        lab = document_label.c
        parts.append(
            exists().where(lab.entry_seq == e.seq, lab.code.in_(sorted(query.masked_labels)))
        )
    if query.masked_documents:
        parts.append(e.unique_id.in_(sorted(d.value for d in query.masked_documents)))
    if not parts:
        return None
    if query.unmasked_classes:
        opened = or_(
            false(),
            *(
                and_(
                    e.class_system.in_([system, system.removeprefix("urn:oid:")]),
                    e.class_code == code,
                )
                for system, code in sorted(query.unmasked_classes)
            ),
        )
        return and_(or_(*parts), ~opened)
    return or_(*parts)


def _placeholder_filters(query: DocumentQuery) -> list[ColumnElement[bool]]:
    """The caller's search parameters over what a masked entry's placeholder shows."""
    if any(getattr(query, name) for name in ENTRY_ONLY_FILTERS):
        return [false()]
    e = document_entry.c
    where: list[ColumnElement[bool]] = []
    shown = _shown_date()
    for span in query.date:
        if span.lower is not None:
            where.append(shown >= span.lower)
        if span.upper is not None:
            where.append(shown < span.upper)
    for tokens in query.category:
        where.append(_any_of(e.class_system, e.class_code, tokens))
    system, code = _PLACEHOLDER_LABEL
    for tokens in query.security_label:
        where.append(_any_of(literal(system), literal(code), tokens))
    return where


@dataclass(frozen=True, slots=True)
class _Order:
    columns: tuple[Any, ...]  # sort columns, then seq: the type of each value
    descending: tuple[bool, ...]
    keys: tuple[Any, ...] = ()  # what is sorted by, per column: the column or a placeholder's

    @classmethod
    def of(cls, query: DocumentQuery) -> _Order:
        masked = _masked(query)
        columns: list[Any] = []
        keys: list[Any] = []
        descending: list[bool] = []
        by_field: dict[SortField, Any] = {}
        for key in query.sort:
            column = _SORT_COLUMNS[key.field]
            if masked is None:
                sort_key = column
            else:
                sort_key = by_field.setdefault(
                    key.field, _placeholder_sort(key.field, column, masked)
                )
            if any(sort_key is k for k in keys):
                continue  # date and creation are one column
            columns.append(column)
            keys.append(sort_key)
            descending.append(key.descending)
        columns.append(document_entry.c.seq)
        keys.append(document_entry.c.seq)
        # seq follows the first key's direction so one index scan serves the whole order.
        descending.append(descending[0] if len(descending) > 0 else False)
        return cls(tuple(columns), tuple(descending), tuple(keys))

    def order_by(self) -> list[Any]:
        return [c.desc() if d else c.asc() for c, d in zip(self.keys, self.descending, strict=True)]

    def encode(self, values: Sequence[Any]) -> tuple[str | int | None, ...]:
        return tuple(v.isoformat() if isinstance(v, datetime) else v for v in values)

    def decode(self, after: Sequence[str | int | None]) -> list[Any]:
        if len(after) != len(self.columns):
            raise InvalidCursor("the paging cursor does not fit this sort", expression="_cursor")
        values: list[Any] = []
        for column, raw in zip(self.columns, after, strict=True):
            try:
                if column is document_entry.c.seq:
                    # PageCursor.decode has bounded it to a bigint; a bool is no sequence number.
                    if not isinstance(raw, int) or isinstance(raw, bool):
                        raise ValueError("seq")
                    values.append(raw)
                elif column is document_entry.c.title:
                    if not isinstance(raw, str):
                        raise ValueError("title")
                    values.append(raw)
                else:
                    if not isinstance(raw, str):
                        raise ValueError("time")
                    moment = datetime.fromisoformat(raw)
                    if moment.tzinfo is None:
                        raise ValueError("time zone")
                    # Only times a row can hold: year 1 ± 14:00 would overflow the UTC bind.
                    if moment != NO_PERIOD:
                        check_moment(moment, name="_cursor")
                    values.append(moment)
            except ValueError as exc:
                raise InvalidCursor("the paging cursor is not valid", expression="_cursor") from exc
        return values

    def after(self, values: Sequence[Any]) -> ColumnElement[bool]:
        """Rows strictly after `values` in this order (keyset pagination)."""
        if len(set(self.descending)) == 1:
            # One direction: a row-value comparison, which an index range scan can serve.
            row = tuple_(*self.keys)
            target = tuple_(
                *(literal(v, type_=c.type) for c, v in zip(self.columns, values, strict=True))
            )
            return row < target if self.descending[0] else row > target
        branches: list[ColumnElement[bool]] = []
        for i, (column, value) in enumerate(zip(self.keys, values, strict=True)):
            equal = [c == v for c, v in zip(self.keys[:i], values[:i], strict=True)]
            step = column < value if self.descending[i] else column > value
            branches.append(and_(*equal, step))
        return or_(*branches)


def _placeholder_sort(field: SortField, column: Any, masked: ColumnElement[bool]) -> Any:
    """Sort a masked entry by what its placeholder shows: "Sperret", its date, else no value.

    The placeholder has no creation time nor period: those sort it as an entry without a period.
    """
    shown: Any
    if field is SortField.TITLE:
        shown = literal(MASKED_TITLE, type_=column.type)
    elif field is SortField.DATE:
        shown = _shown_date()
    else:
        shown = literal(NO_PERIOD, type_=column.type)
    return type_coerce(case((masked, shown), else_=column), column.type)


_COUNTED = frozenset({TotalMode.ACCURATE, TotalMode.ESTIMATE})

# What a find reads of each row, in FoundEntry's argument order; the metadata as raw text
# (asyncpg's own JSON codec decodes it on PostgreSQL), made an entry only when asked for whole.
_FOUND_COLUMNS = (
    document_entry.c.seq,
    document_entry.c.unique_id,
    document_entry.c.entry_uuid,
    document_entry.c.status,
    document_entry.c.class_system,
    document_entry.c.class_code,
    document_entry.c.creation_time,
    document_entry.c.service_start_time,
    document_entry.c.citizen_release_time,
    document_entry.c.confidentiality_codes,
    document_entry.c.rendered,
    type_coerce(document_entry.c.metadata, Text),
)
# --- registration: the checks of one transaction, over what it read and what it admitted ------


@dataclass(frozen=True, slots=True)
class _Submission:
    """One register call: its entries (repeats dropped) and its SubmissionSet."""

    documents: tuple[DocumentEntry, ...]
    submission_set: SubmissionSetRecord | None


@dataclass(slots=True)
class _Known:
    """A registered row as the transaction sees it; `seq` is None until an insert is flushed."""

    seq: int | None
    unique_id: str
    entry_uuid: str
    patient_id: str
    hash_sha256: str
    status: str
    metadata: Any = None  # the row's JSON, for a row read from the registry
    entry: DocumentEntry | None = None  # the entry, for a row this transaction inserts

    def stored(self) -> StoredEntry:
        assert self.seq is not None
        if self.entry is not None:
            entry = self.entry
            if entry.status.value != self.status:
                entry = replace(entry, status=DocumentStatus(self.status))
            return StoredEntry(self.seq, entry)
        return StoredEntry(self.seq, _from_row(self.metadata, self.status))


@dataclass(slots=True)
class _Admitted:
    """A submission that passed its checks: its rows, new or already present, in order."""

    submission: _Submission
    rows: list[_Known]
    present: frozenset[DocumentUniqueId]
    targets: list[_Known]

    def result(self) -> RegisterResult:
        return RegisterResult(
            stored=tuple(k.stored() for k in self.rows),
            already_present=self.present,
            superseded=tuple(
                d.replaces
                for d in self.submission.documents
                if d.replaces is not None and d.unique_id not in self.present
            ),
        )


@dataclass(slots=True)
class _Plan:
    """Writes the admitted submissions need and that are not flushed yet."""

    new: list[_Known] = field(default_factory=list)
    superseded: set[int] = field(default_factory=set)
    sets: list[dict[str, Any]] = field(default_factory=list)

    def add(self, admitted: _Admitted) -> None:
        present = {p.value for p in admitted.present}
        self.new.extend(k for k in admitted.rows if k.unique_id not in present)
        for target in admitted.targets:
            assert target.seq is not None
            self.superseded.add(target.seq)
        record = admitted.submission.submission_set
        if record is not None:
            self.sets.append(
                {
                    "unique_id": record.unique_id,
                    "source_id": record.source_id,
                    "submission_time": record.submission_time,
                    "entry_count": record.entry_count,
                }
            )

    def clear(self) -> None:
        self.new.clear()
        self.superseded.clear()
        self.sets.clear()


class _Ledger:
    """The registry rows one transaction has read, updated by every submission it admits."""

    def __init__(self) -> None:
        self.by_unique_id: dict[str, _Known] = {}
        self.by_entry_uuid: dict[str, _Known] = {}

    def know(self, row: _Known) -> None:
        self.by_unique_id[row.unique_id] = row
        self.by_entry_uuid[row.entry_uuid] = row

    def needs_flush(self, submission: _Submission) -> bool:
        """True if the submission names a row admitted earlier whose seq is not known yet."""
        for doc in submission.documents:
            for uid in (doc.unique_id.value, doc.replaces.value if doc.replaces else None):
                row = self.by_unique_id.get(uid) if uid is not None else None
                if row is not None and row.seq is None:
                    return True
        return False

    def admit(self, submission: _Submission, *, record: bool = True) -> _Admitted:
        """Check one submission; if it passes, record its effects (unless not `record`).

        Raises DuplicateDocument or InvalidReplacement, in the order and with the messages of
        a registration on its own; a refused submission changes nothing.
        """
        rows: list[_Known | None] = []
        present: set[DocumentUniqueId] = set()
        new: list[DocumentEntry] = []
        for doc in submission.documents:
            old = self.by_unique_id.get(doc.unique_id.value)
            if old is None:
                new.append(doc)
                rows.append(None)
            elif old.hash_sha256 != doc.hash_sha256 or old.patient_id != doc.patient_id.value:
                raise DuplicateDocument(
                    f"uniqueId {doc.unique_id} is already registered for other content",
                    unique_id=doc.unique_id,
                )
            else:
                present.add(doc.unique_id)
                rows.append(old)
        for doc in new:
            if str(doc.entry_uuid) in self.by_entry_uuid:
                raise DuplicateDocument(
                    f"entryUUID {doc.entry_uuid} is already registered for another document",
                    unique_id=doc.unique_id,
                )
        targets = self._replacement_targets(new)
        if not record:
            return _Admitted(submission, [], frozenset(present), targets)
        fresh = iter(new)
        admitted: list[_Known] = []
        for row in rows:
            if row is None:
                doc = next(fresh)
                row = _Known(
                    seq=None,
                    unique_id=doc.unique_id.value,
                    entry_uuid=str(doc.entry_uuid),
                    patient_id=doc.patient_id.value,
                    hash_sha256=doc.hash_sha256,
                    status=doc.status.value,
                    entry=doc,
                )
                self.know(row)
            admitted.append(row)
        for target in targets:
            target.status = DocumentStatus.SUPERSEDED.value
        return _Admitted(submission, admitted, frozenset(present), targets)

    def _replacement_targets(self, new: Sequence[DocumentEntry]) -> list[_Known]:
        """Check every RPLC target. References: ITI TF-3 4.2.2.2."""
        wanted: dict[str, DocumentEntry] = {}
        for doc in new:
            if doc.replaces is None:
                continue
            if doc.replaces.value in wanted:
                raise InvalidReplacement(
                    f"document {doc.replaces} is replaced twice in one submission",
                    unique_id=doc.unique_id,
                )
            wanted[doc.replaces.value] = doc
        targets: list[_Known] = []
        for target, doc in wanted.items():
            hit = self.by_unique_id.get(target)
            if hit is None:
                raise InvalidReplacement(
                    f"replaced document {target} is not registered here", unique_id=doc.unique_id
                )
            if hit.patient_id != doc.patient_id.value:
                raise InvalidReplacement(
                    f"replaced document {target} belongs to another patient",
                    unique_id=doc.unique_id,
                )
            if hit.status != DocumentStatus.CURRENT.value:
                raise InvalidReplacement(
                    f"replaced document {target} is {hit.status}, not current",
                    unique_id=doc.unique_id,
                )
            targets.append(hit)
        return targets


# --- the store -------------------------------------------------------------------------------


class SqlDocumentStore:
    """DocumentStore over SQLAlchemy Core: SQLite (aiosqlite) or PostgreSQL (asyncpg)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        owns_engine: bool = False,
        group_commit: bool = False,
        max_group_documents: int = 500,
    ) -> None:
        self.engine = engine
        self._owns_engine = owns_engine
        self._sqlite = engine.dialect.name == "sqlite"
        # Concurrent register calls in one transaction (group_register.py); off: one each.
        self._group: GroupRegister[_Submission, RegisterResult] | None = (
            GroupRegister(self._commit_group, max_documents=max_group_documents)
            if group_commit
            else None
        )
        # The pre-checks of concurrent publishes share one read (check_registrable).
        self._checks: GroupRegister[_Submission, None] | None = (
            GroupRegister(self._check_group, max_documents=max_group_documents)
            if group_commit
            else None
        )

    async def _writer(self) -> AsyncConnection:
        conn = await self.engine.connect()
        if self._sqlite:
            conn = await conn.execution_options(sqlite_begin="IMMEDIATE")
        return conn

    # register ------------------------------------------------------------------------------

    async def register(
        self,
        documents: Sequence[DocumentEntry],
        *,
        submission_set: SubmissionSetRecord | None = None,
    ) -> RegisterResult:
        """Register `documents` in one transaction, all or nothing.

        A uniqueId already registered with the same SHA-256 and patient is reported as already
        present and left alone; with anything else it raises DuplicateDocument. An entry that
        `replaces` another marks the target superseded in the same transaction; the target must
        be registered before, current, and the same patient's (else InvalidReplacement).
        A concurrent register of the same uniqueId that wins the race makes this one retry and
        then answer as above.

        With group commit on, concurrent calls share one transaction (`_commit_group`); each
        is checked as if alone, in queue order, and answered only after that transaction has
        committed. A refused submission writes nothing and refuses no other.
        """
        batch = _dedupe(documents)
        submission = _Submission(tuple(batch), submission_set)
        if self._group is not None:
            result = await self._group.submit(submission, size=max(1, len(batch)))
        else:
            result = await self._register_alone(submission)
        # Answer in input order, repeats within the batch included.
        by_id = {s.entry.unique_id.value: s for s in result.stored}
        return replace(result, stored=tuple(by_id[d.unique_id.value] for d in documents))

    async def _register_alone(self, submission: _Submission) -> RegisterResult:
        """One submission in its own transaction, retried when a concurrent writer won a race."""
        last: IntegrityError | None = None
        for _ in range(_RETRIES):
            try:
                return await self._register_once(submission)
            except IntegrityError as exc:
                last = exc
        raise StoreError("registration kept colliding with concurrent writers") from last

    async def _register_once(self, submission: _Submission) -> RegisterResult:
        (outcome,) = await self._register_in_one_transaction([submission])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def _register_in_one_transaction(
        self, submissions: Sequence[_Submission]
    ) -> list[RegisterResult | StoreError]:
        conn = await self._writer()
        try:
            async with conn.begin():
                admitted = await self._apply(conn, submissions, write=True)
        finally:
            await conn.close()
        return [a if isinstance(a, StoreError) else a.result() for a in admitted]

    async def _commit_group(
        self, submissions: Sequence[_Submission]
    ) -> list[RegisterResult | Exception]:
        """Register a batch of concurrent submissions in one transaction; an outcome each.

        A submission the registry refuses is answered with its refusal and the others commit.
        Anything else that fails the transaction (a concurrent writer's uniqueId on
        PostgreSQL, a lost connection) rolls the whole batch back; each submission is then
        registered alone, as without group commit, so one cannot fail the others.
        """
        if len(submissions) > 1:
            try:
                return list(await self._register_in_one_transaction(submissions))
            except Exception:
                pass  # nothing of the batch was committed: one by one below
        outcomes: list[RegisterResult | Exception] = []
        for submission in submissions:
            try:
                outcomes.append(await self._register_alone(submission))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    async def check_registrable(self, documents: Sequence[DocumentEntry]) -> None:
        """Raise DuplicateDocument or InvalidReplacement as `register` would now; write nothing.

        The publish path asks this before it writes any content, so that a bundle the registry
        would refuse leaves no bytes behind. `register` checks again under its locks: a
        concurrent writer can still win in between.
        """
        submission = _Submission(tuple(_dedupe(documents)), None)
        if self._checks is not None:
            await self._checks.submit(submission, size=max(1, len(submission.documents)))
            return
        (outcome,) = await self._check_group([submission])
        if isinstance(outcome, Exception):
            raise outcome

    async def _check_group(self, submissions: Sequence[_Submission]) -> list[None | Exception]:
        """Check submissions each on its own against the registry, in one read transaction."""
        async with self.engine.connect() as conn:
            ledger = await self._lookup(conn, submissions, lock=False)
            await conn.rollback()
        outcomes: list[None | Exception] = []
        for submission in submissions:
            try:
                ledger.admit(submission, record=False)
            except (DuplicateDocument, InvalidReplacement) as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    async def _apply(
        self, conn: AsyncConnection, submissions: Sequence[_Submission], *, write: bool
    ) -> list[_Admitted | StoreError]:
        """Check each submission in order against the registry as the earlier ones left it.

        One query reads every row any submission names (uniqueId, entryUUID, RPLC target);
        the checks then run in memory over a `_Ledger` that the admitted submissions update.
        With `write`, the admitted entries are inserted with one multi-row statement per table
        (flushed early only when a later submission needs the sequence number of an entry an
        earlier one added). References: ITI TF-2 3.42.4.1.3, ITI TF-3 4.2.2.2.
        """
        ledger = await self._lookup(conn, submissions, lock=write)
        plan = _Plan()
        admitted: list[_Admitted | StoreError] = []
        for submission in submissions:
            if write and ledger.needs_flush(submission):
                await self._flush(conn, plan)
            try:
                admission = ledger.admit(submission)
            except (DuplicateDocument, InvalidReplacement) as exc:
                admitted.append(exc)
                continue
            plan.add(admission)
            admitted.append(admission)
        if write:
            await self._flush(conn, plan)
        return admitted

    async def _lookup(
        self, conn: AsyncConnection, submissions: Sequence[_Submission], *, lock: bool
    ) -> _Ledger:
        """Read the registered rows every submission names, in one query per 500 values.

        With `lock` on PostgreSQL the rows are locked (FOR UPDATE) when a replacement is among
        them, so an RPLC target stays current until this transaction ends; SQLite's writers
        already hold the database lock (BEGIN IMMEDIATE).
        """
        e = document_entry.c
        ids: dict[str, None] = {}
        uuids: dict[str, None] = {}
        replacing = False
        for submission in submissions:
            for doc in submission.documents:
                ids[doc.unique_id.value] = None
                uuids[str(doc.entry_uuid)] = None
                if doc.replaces is not None:
                    ids[doc.replaces.value] = None
                    replacing = True
        ledger = _Ledger()
        id_parts = list(_chunks(list(ids)))
        uuid_parts = list(_chunks(list(uuids)))
        for i in range(max(len(id_parts), len(uuid_parts))):
            wanted = or_(
                e.unique_id.in_(id_parts[i] if i < len(id_parts) else []),
                e.entry_uuid.in_(uuid_parts[i] if i < len(uuid_parts) else []),
            )
            query = select(
                e.seq, e.unique_id, e.entry_uuid, e.patient_id, e.hash_sha256, e.status, e.metadata
            ).where(wanted)
            if lock and replacing and not self._sqlite:
                query = query.with_for_update()
            for seq, uid, entry_uuid, patient, sha256, status, meta in await conn.execute(query):
                ledger.know(
                    _Known(
                        seq=int(seq),
                        unique_id=uid,
                        entry_uuid=entry_uuid,
                        patient_id=patient,
                        hash_sha256=sha256,
                        status=status,
                        metadata=meta,
                    )
                )
        return ledger

    async def _flush(self, conn: AsyncConnection, plan: _Plan) -> None:
        """Write what the admitted submissions planned: entries, supersessions, sets."""
        e = document_entry.c
        if plan.new:
            seqs = await self._insert(conn, [k.entry for k in plan.new if k.entry is not None])
            for known, seq in zip(plan.new, seqs, strict=True):
                known.seq = seq
        if plan.superseded:
            result = await conn.execute(
                update(document_entry)
                .where(e.seq.in_(sorted(plan.superseded)), e.status == DocumentStatus.CURRENT.value)
                .values(status=DocumentStatus.SUPERSEDED.value)
            )
            if result.rowcount != len(plan.superseded):
                # Unreachable while the targets are locked (FOR UPDATE / IMMEDIATE).
                raise StoreError("a replaced document changed during registration")
        if plan.sets:
            await conn.execute(self._insert_submission_set(), plan.sets)
        plan.clear()

    async def _insert(self, conn: AsyncConnection, new: Sequence[DocumentEntry]) -> list[int]:
        """Insert entries, labels and codes: one multi-row statement per table."""
        if not new:
            return []
        rows = await conn.execute(
            document_entry.insert().returning(document_entry.c.seq, sort_by_parameter_order=True),
            [_entry_row(d) for d in new],
        )
        seqs = [int(r[0]) for r in rows]
        labels = [row for s, d in zip(seqs, new, strict=True) for row in _label_rows(s, d)]
        codes = [row for s, d in zip(seqs, new, strict=True) for row in _code_rows(s, d)]
        if labels:
            await conn.execute(document_label.insert(), labels)
        if codes:
            await conn.execute(document_code.insert(), codes)
        return seqs

    def _insert_submission_set(self) -> Any:
        insert = sqlite_insert if self._sqlite else pg_insert
        # A resent bundle repeats its SubmissionSet; the first record stands.
        return insert(submission_set).on_conflict_do_nothing()

    async def bulk_load(self, documents: Iterable[DocumentEntry], batch_size: int = 5000) -> int:
        """Insert many entries fast, one transaction per batch; return how many.

        For benchmarks and imports only: no idempotency, no RPLC handling (rows keep the
        status they carry), no submission sets. A repeated uniqueId raises IntegrityError.
        """
        total = 0
        batch: list[DocumentEntry] = []

        async def flush() -> None:
            nonlocal total
            async with self.engine.begin() as conn:
                await self._insert(conn, batch)
            total += len(batch)
            batch.clear()

        for doc in documents:
            batch.append(doc)
            if len(batch) >= batch_size:
                await flush()
        if batch:
            await flush()
        return total

    # read ----------------------------------------------------------------------------------

    async def find(self, query: DocumentQuery, cursor: PageCursor | None) -> Page:
        """Return one page of matches over a stable snapshot (keyset pagination).

        The total is counted (a second query) only when `query.total` asks for it (accurate or
        estimate) or `query.count` is 0 (`_summary=count`); without `_total` it is given only
        when it is free, on a first page that holds every match; with `_total=none` never.
        References: FHIR R4 search.html#total.
        """
        e = document_entry.c
        order = _Order.of(query)
        where = _conditions(query)
        counting = query.count <= 0 or query.total in _COUNTED
        snapshot = None if cursor is None else cursor.snapshot
        async with self.engine.connect() as conn:
            if snapshot is None and counting:
                top = (await conn.execute(select(func.max(e.seq)))).scalar()
                snapshot = int(top or 0)
            if snapshot is not None:
                where.append(e.seq <= snapshot)
            total: int | None = None
            if counting:
                total = int(
                    (
                        await conn.execute(
                            select(func.count()).select_from(document_entry).where(*where)
                        )
                    ).scalar_one()
                )
            if query.count <= 0:
                return Page(entries=(), next_cursor=None, total=total)
            page_where = list(where)
            after = None if cursor is None else cursor.after
            if after is not None:
                page_where.append(order.after(order.decode(after)))
            # A first page takes its snapshot in the same statement: one round trip, not two.
            top_seq = [] if snapshot is not None else [select(func.max(e.seq)).scalar_subquery()]
            rows = (
                await conn.execute(
                    select(*_FOUND_COLUMNS, *top_seq, *order.keys)
                    .where(*page_where)
                    .order_by(*order.order_by())
                    .limit(query.count + 1)
                )
            ).all()
        more = len(rows) > query.count
        rows = rows[: query.count]
        if total is None and after is None and not more and query.total is not TotalMode.NONE:
            total = len(rows)  # every match is on this first page: the count costs nothing
        width = len(_FOUND_COLUMNS)
        keys_at = width + len(top_seq)
        if snapshot is None:
            snapshot = int(rows[0][width]) if rows else 0
        entries = tuple(FoundEntry(*r[:width]) for r in rows)
        next_cursor = (
            PageCursor(snapshot=snapshot, after=order.encode(tuple(rows[-1][keys_at:])))
            if more and rows
            else None
        )
        return Page(entries=entries, next_cursor=next_cursor, total=total)

    async def get(self, unique_id: DocumentUniqueId) -> DocumentEntry | None:
        """Return the entry registered under `unique_id`, or None."""
        e = document_entry.c
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(e.metadata, e.status).where(e.unique_id == unique_id.value)
                )
            ).first()
        return None if row is None else _from_row(row[0], row[1])

    async def mark_entered_in_error(self, unique_id: DocumentUniqueId) -> bool:
        """Withdraw an entry registered by mistake (XDS availabilityStatus → entered-in-error).

        The entry then no longer appears in default searches and ITI-68 answers 410 Gone for it.
        Returns False when no such entry exists. References: IHE MHD ITI-68 2:3.68.4.1.3.
        """
        e = document_entry.c
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(document_entry)
                .where(e.unique_id == unique_id.value)
                .values(status=DocumentStatus.ENTERED_IN_ERROR.value)
            )
        return bool(result.rowcount)

    async def has_content(self, sha256: str) -> bool:
        """True if a registered entry references content with this SHA-256."""
        e = document_entry.c
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(e.seq).where(e.hash_sha256 == sha256).limit(1))
            ).first()
        return row is not None

    async def count(self) -> int:
        """Return how many entries are registered."""
        async with self.engine.connect() as conn:
            n = (await conn.execute(select(func.count()).select_from(document_entry))).scalar_one()
        return int(n)

    async def close(self) -> None:
        """Finish the registrations queued for group commit; dispose of an engine it created."""
        for group in (self._checks, self._group):
            if group is not None:
                await group.wait_idle()
        if self._owns_engine:
            await self.engine.dispose()


def _dedupe(documents: Sequence[DocumentEntry]) -> list[DocumentEntry]:
    """Drop exact repeats of a uniqueId within one batch; refuse conflicting ones.

    Two entries of one batch with the same entryUUID but different uniqueIds are refused here
    (409), not left to the database's unique index (an IntegrityError retried as a race).
    """
    seen: dict[str, DocumentEntry] = {}
    uuids: set[str] = set()
    out: list[DocumentEntry] = []
    for doc in documents:
        first = seen.get(doc.unique_id.value)
        if first is None:
            if str(doc.entry_uuid) in uuids:
                raise DuplicateDocument(
                    f"entryUUID {doc.entry_uuid} appears twice in one submission",
                    unique_id=doc.unique_id,
                )
            uuids.add(str(doc.entry_uuid))
            seen[doc.unique_id.value] = doc
            out.append(doc)
        elif first.hash_sha256 != doc.hash_sha256 or first.patient_id != doc.patient_id:
            raise DuplicateDocument(
                f"uniqueId {doc.unique_id} appears twice in one submission for other content",
                unique_id=doc.unique_id,
            )
    return out
