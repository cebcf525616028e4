"""ITI-18 / ITI-38 AdhocQueryRequest → a typed stored query, checked before any registry sees it.

Supported stored queries: FindDocuments, GetDocuments, GetAssociations (the national profile
needs no folders or submission sets, TRUST-FRAMEWORK §6). Parameter values use the stored-query
syntax: a quoted string `'a'`, a list `('a','b')` (several Value elements are one list), a
number for times (`20240514000000`), `''` for a quote inside a string; a code is
`'code^^scheme'`. An empty ValueList counts as an absent parameter (the national ITI-18 sample
sends one). Decisions: an unknown parameter, a repeated one, a missing required one or both of
two exclusive ones is refused with XDSStoredQueryParamNumber; an unknown query id with
XDSUnknownStoredQuery; a bad value with XDSRegistryError. All as XcaParseError (the caller's
fault).

References: IHE ITI TF-2 3.18.4.1.2.3.5 (value syntax), 3.18.4.1.2.3.7.1 (FindDocuments),
3.18.4.1.2.3.7.5 (GetDocuments), 3.18.4.1.2.3.7.6 (GetAssociations), 3.18.4.1.2.3.6 (returnType
LeafClass / ObjectRef), 3.38.4.1.2 (ITI-38: homeCommunityId on the AdhocQuery).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from onerecord.domain import (
    Coding,
    HomeCommunityId,
    InvalidIdentifier,
    NationalIdentityNumber,
    Oid,
    normalise_system,
)
from onerecord.xca.errors import ParseProblem, XcaParseError
from onerecord.xca.xml import NS, QUERY, element_text, qname
from onerecord.xca.xua import SamlPatient, parse_cx

__all__ = [
    "FIND_DOCUMENTS",
    "GET_ASSOCIATIONS",
    "GET_DOCUMENTS",
    "STATUS_APPROVED",
    "STATUS_DEPRECATED",
    "FindDocumentsQuery",
    "GetAssociationsQuery",
    "GetDocumentsQuery",
    "ReturnType",
    "StoredQuery",
    "TimeRange",
    "mhd_find_params",
    "parse_adhoc_query",
    "parse_query_values",
]

FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"
GET_ASSOCIATIONS = "urn:uuid:a7ae438b-4bc2-4642-93e9-be891f7bb155"
STATUS_APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
STATUS_DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
_STATUSES = frozenset({STATUS_APPROVED, STATUS_DEPRECATED})
_ENTRY_TYPES = frozenset(
    {
        "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1",  # stable
        "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248",  # on-demand
    }
)
_PARAM_NUMBER = "XDSStoredQueryParamNumber"
_MAX_VALUES = 200
_MAX_VALUE_LEN = 512


class ReturnType(StrEnum):
    """ResponseOption/@returnType: whole objects or references."""

    LEAF_CLASS = "LeafClass"
    OBJECT_REF = "ObjectRef"


def _param(message: str) -> XcaParseError:
    return XcaParseError(message, problem=ParseProblem.SHAPE, code=_PARAM_NUMBER)


def _value(message: str) -> XcaParseError:
    return XcaParseError(message, problem=ParseProblem.VALUE, code="XDSRegistryError")


def parse_query_values(raw: list[str], *, name: str) -> tuple[str | int, ...]:
    """Parse a slot's Value texts: quoted strings, ( … ) lists and numbers, in order."""
    out: list[str | int] = []
    for text in raw:
        text = text.strip()
        if text.startswith("(") and text.endswith(")"):
            out.extend(_items(text[1:-1], name))
        else:
            out.extend(_items(text, name, single=True))
        if len(out) > _MAX_VALUES:
            raise _value(f"{name} has too many values")
    return tuple(out)


def _items(text: str, name: str, *, single: bool = False) -> list[str | int]:
    items: list[str | int] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            break
        if text[i] == "'":
            j, chunk = i + 1, []
            while True:
                if j >= n:
                    raise _value(f"{name}: an unterminated quoted value")
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":
                        chunk.append("'")
                        j += 2
                        continue
                    break
                chunk.append(text[j])
                j += 1
            items.append("".join(chunk))
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in ", \t\r\n":
                j += 1
            token = text[i:j]
            if not token.isascii() or not token.isdigit() or len(token) > 14:
                raise _value(f"{name}: {token[:20]!r} is neither quoted nor a number")
            items.append(int(token))
            i = j
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i < n:
            if text[i] != ",":
                raise _value(f"{name}: values must be separated by commas")
            i += 1
            if single:
                raise _value(f"{name}: a list must be written in parentheses")
    for item in items:
        if isinstance(item, str) and len(item) > _MAX_VALUE_LEN:
            raise _value(f"{name}: a value is too long")
    return items


def _dtm(value: str | int, name: str) -> datetime:
    text = str(value)
    if not text.isdigit() or len(text) not in (4, 6, 8, 10, 12, 14):
        raise _value(f"{name} is not an XDS DTM")
    padded = text + "0101000000"[len(text) - 4 :] if len(text) < 14 else text
    try:
        return datetime.strptime(padded, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise _value(f"{name} is not a real time") from None


def _code(value: str | int, name: str) -> Coding:
    if not isinstance(value, str):
        raise _value(f"{name}: a code must be quoted")
    code, sep, scheme = value.partition("^^")
    if not sep or not code or not scheme or "^" in scheme:
        raise _value(f"{name}: a code is written 'code^^scheme'")
    return Coding(normalise_system(scheme), code)


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A closed-open time window [start, stop) on one DocumentEntry time."""

    start: datetime | None = None
    stop: datetime | None = None


@dataclass(frozen=True, slots=True)
class FindDocumentsQuery:
    """FindDocuments: one patient, statuses, optional code and time filters."""

    patient: SamlPatient
    statuses: frozenset[str]
    class_codes: tuple[Coding, ...] = ()
    type_codes: tuple[Coding, ...] = ()
    practice_settings: tuple[Coding, ...] = ()
    facility_types: tuple[Coding, ...] = ()
    event_codes: tuple[Coding, ...] = ()
    confidentiality_codes: tuple[Coding, ...] = ()
    format_codes: tuple[Coding, ...] = ()
    creation_time: TimeRange = field(default_factory=TimeRange)
    service_start_time: TimeRange = field(default_factory=TimeRange)
    service_stop_time: TimeRange = field(default_factory=TimeRange)
    author_persons: tuple[str, ...] = ()
    entry_types: frozenset[str] = frozenset({"urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"})


@dataclass(frozen=True, slots=True)
class GetDocumentsQuery:
    """GetDocuments: entries by entryUUID or by uniqueId (exactly one of the two)."""

    entry_uuids: tuple[str, ...] = ()
    unique_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GetAssociationsQuery:
    """GetAssociations: the associations of the given object ids."""

    uuids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StoredQuery:
    """A parsed AdhocQueryRequest."""

    query_id: str
    return_type: ReturnType
    home_community_id: HomeCommunityId | None
    query: FindDocumentsQuery | GetDocumentsQuery | GetAssociationsQuery


_FIND_PARAMS = {
    "$XDSDocumentEntryPatientId",
    "$XDSDocumentEntryStatus",
    "$XDSDocumentEntryClassCode",
    "$XDSDocumentEntryTypeCode",
    "$XDSDocumentEntryPracticeSettingCode",
    "$XDSDocumentEntryHealthcareFacilityTypeCode",
    "$XDSDocumentEntryEventCodeList",
    "$XDSDocumentEntryConfidentialityCode",
    "$XDSDocumentEntryFormatCode",
    "$XDSDocumentEntryCreationTimeFrom",
    "$XDSDocumentEntryCreationTimeTo",
    "$XDSDocumentEntryServiceStartTimeFrom",
    "$XDSDocumentEntryServiceStartTimeTo",
    "$XDSDocumentEntryServiceStopTimeFrom",
    "$XDSDocumentEntryServiceStopTimeTo",
    "$XDSDocumentEntryAuthorPerson",
    "$XDSDocumentEntryType",
}
_GET_DOCUMENTS_PARAMS = {
    "$XDSDocumentEntryEntryUUID",
    "$XDSDocumentEntryUniqueId",
    "$homeCommunityId",
}
_GET_ASSOCIATIONS_PARAMS = {"$uuid", "$homeCommunityId"}
_KNOWN = {
    FIND_DOCUMENTS: _FIND_PARAMS,
    GET_DOCUMENTS: _GET_DOCUMENTS_PARAMS,
    GET_ASSOCIATIONS: _GET_ASSOCIATIONS_PARAMS,
}


def _strings(values: tuple[str | int, ...], name: str) -> tuple[str, ...]:
    if not all(isinstance(v, str) and v for v in values):
        raise _value(f"{name}: values must be quoted strings")
    return tuple(str(v) for v in values)


def _one(params: dict[str, tuple[str | int, ...]], name: str) -> str | int | None:
    values = params.get(name)
    if values is None:
        return None
    if len(values) != 1:
        raise _param(f"{name} takes exactly one value")
    return values[0]


def _range(params: dict[str, tuple[str | int, ...]], base: str) -> TimeRange:
    start, stop = _one(params, base + "From"), _one(params, base + "To")
    out = TimeRange(
        _dtm(start, base + "From") if start is not None else None,
        _dtm(stop, base + "To") if stop is not None else None,
    )
    if out.start is not None and out.stop is not None and out.stop < out.start:
        raise _value(f"{base}To is before {base}From")
    return out


def _find(params: dict[str, tuple[str | int, ...]]) -> FindDocumentsQuery:
    patient_value = _one(params, "$XDSDocumentEntryPatientId")
    if patient_value is None:
        raise _param("FindDocuments needs $XDSDocumentEntryPatientId")
    if not isinstance(patient_value, str):
        raise _value("$XDSDocumentEntryPatientId must be a quoted CX")
    patient = parse_cx(patient_value)
    if patient is None:
        raise _value("$XDSDocumentEntryPatientId is not a CX patient id")
    statuses = params.get("$XDSDocumentEntryStatus")
    if not statuses:
        raise _param("FindDocuments needs $XDSDocumentEntryStatus")
    status_set = frozenset(_strings(statuses, "$XDSDocumentEntryStatus"))
    if not status_set <= _STATUSES:
        raise _value("$XDSDocumentEntryStatus must be Approved and/or Deprecated")

    def codes(name: str) -> tuple[Coding, ...]:
        return tuple(_code(v, name) for v in params.get(name, ()))

    types = frozenset(_strings(params.get("$XDSDocumentEntryType", ()), "$XDSDocumentEntryType"))
    if types and not types <= _ENTRY_TYPES:
        raise _value("$XDSDocumentEntryType names an unknown DocumentEntry type")
    return FindDocumentsQuery(
        patient=patient,
        statuses=status_set,
        class_codes=codes("$XDSDocumentEntryClassCode"),
        type_codes=codes("$XDSDocumentEntryTypeCode"),
        practice_settings=codes("$XDSDocumentEntryPracticeSettingCode"),
        facility_types=codes("$XDSDocumentEntryHealthcareFacilityTypeCode"),
        event_codes=codes("$XDSDocumentEntryEventCodeList"),
        confidentiality_codes=codes("$XDSDocumentEntryConfidentialityCode"),
        format_codes=codes("$XDSDocumentEntryFormatCode"),
        creation_time=_range(params, "$XDSDocumentEntryCreationTime"),
        service_start_time=_range(params, "$XDSDocumentEntryServiceStartTime"),
        service_stop_time=_range(params, "$XDSDocumentEntryServiceStopTime"),
        author_persons=_strings(
            params.get("$XDSDocumentEntryAuthorPerson", ()), "$XDSDocumentEntryAuthorPerson"
        ),
        entry_types=types or frozenset({"urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"}),
    )


def _home(params: dict[str, tuple[str | int, ...]], element: Any) -> HomeCommunityId | None:
    values = [v for v in (_one(params, "$homeCommunityId"), element.get("home")) if v]
    ids = set()
    for value in values:
        try:
            ids.add(HomeCommunityId(Oid(str(value))))
        except InvalidIdentifier:
            raise _value("homeCommunityId is not an OID (bare or urn:oid:)") from None
    if len(ids) > 1:
        raise _value("the AdhocQuery's home and $homeCommunityId differ")
    return next(iter(ids), None)


def parse_adhoc_query(element: Any) -> StoredQuery:
    """Parse an AdhocQueryRequest element (the SOAP Body's child) into a StoredQuery."""
    if element.tag != qname(QUERY, "AdhocQueryRequest"):
        raise XcaParseError("expected an AdhocQueryRequest")
    options = element.findall("query:ResponseOption", NS)
    queries = element.findall("rim:AdhocQuery", NS)
    if len(options) != 1 or len(queries) != 1:
        raise XcaParseError("an AdhocQueryRequest has one ResponseOption and one AdhocQuery")
    try:
        return_type = ReturnType(options[0].get("returnType", "LeafClass"))
    except ValueError:
        raise _value("returnType must be LeafClass or ObjectRef") from None
    adhoc = queries[0]
    query_id = adhoc.get("id", "")
    known = _KNOWN.get(query_id)
    if known is None:
        raise XcaParseError(
            "the stored query is not supported",
            problem=ParseProblem.VALUE,
            code="XDSUnknownStoredQuery",
        )
    params: dict[str, tuple[str | int, ...]] = {}
    slots = adhoc.findall("rim:Slot", NS)
    if len(slots) > 64:
        raise _param("too many parameters")
    for slot in slots:
        name = slot.get("name", "")
        if name not in known:
            raise _param(f"{name[:64]!r} is not a parameter of this stored query")
        if name in params:
            raise _param(f"{name} is given twice")
        raw = [
            element_text(v, what=name, max_len=4096)
            for v in slot.findall("rim:ValueList/rim:Value", NS)
        ]
        values = parse_query_values(raw, name=name)
        if values:  # an empty ValueList counts as absent
            params[name] = values
    home = _home(params, adhoc)
    query: FindDocumentsQuery | GetDocumentsQuery | GetAssociationsQuery
    if query_id == FIND_DOCUMENTS:
        query = _find(params)
    elif query_id == GET_DOCUMENTS:
        uuids = _strings(params.get("$XDSDocumentEntryEntryUUID", ()), "$XDSDocumentEntryEntryUUID")
        unique = _strings(params.get("$XDSDocumentEntryUniqueId", ()), "$XDSDocumentEntryUniqueId")
        if bool(uuids) == bool(unique):
            raise _param("GetDocuments takes either entryUUIDs or uniqueIds")
        query = GetDocumentsQuery(uuids, unique)
    else:
        ids = _strings(params.get("$uuid", ()), "$uuid")
        if not ids:
            raise _param("GetAssociations needs $uuid")
        query = GetAssociationsQuery(ids)
    return StoredQuery(query_id, return_type, home, query)


_STATUS_OF = {STATUS_APPROVED: "current", STATUS_DEPRECATED: "superseded"}


def _token(coding: Coding) -> str:
    system = coding.system if ":" in coding.system else f"urn:oid:{coding.system}"
    return f"{system}|{coding.code}"


def mhd_find_params(
    query: FindDocumentsQuery, patient: NationalIdentityNumber
) -> list[tuple[str, str]]:
    """FindDocuments in the MHD path's own terms (ITI-67 parameters): one parser, one meaning.

    The service-time and author-person parameters are refused (XDSRegistryError) rather than
    answered differently from MHD. References: IHE MHD ITI-67 §2:3.67.4.1.2.1 (the mapping of
    FindDocuments parameters).
    """
    if query.service_start_time.start or query.service_start_time.stop:
        raise _value("serviceStartTime is not supported here")
    if query.service_stop_time.start or query.service_stop_time.stop:
        raise _value("serviceStopTime is not supported here")
    if query.author_persons:
        raise _value("$XDSDocumentEntryAuthorPerson is not supported")
    params = [
        ("patient.identifier", f"urn:oid:{patient.system}|{patient.value}"),
        ("status", ",".join(sorted(_STATUS_OF[s] for s in query.statuses))),
    ]
    for name, codes in (
        ("category", query.class_codes),
        ("type", query.type_codes),
        ("setting", query.practice_settings),
        ("facility", query.facility_types),
        ("event", query.event_codes),
        ("security-label", query.confidentiality_codes),
        ("format", query.format_codes),
    ):
        if codes:
            params.append((name, ",".join(_token(c) for c in codes)))
    created = query.creation_time
    if created.start is not None:
        params.append(("creation", f"ge{created.start.isoformat()}"))
    if created.stop is not None:
        params.append(("creation", f"lt{created.stop.isoformat()}"))
    return params
