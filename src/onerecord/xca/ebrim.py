"""ebRIM 3.0 DocumentEntry (ExtrinsicObject) and the AdhocQueryResponse, both ways.

Two layers. The wire layer (`ExtrinsicEntry`, `QueryResponse`) keeps what a registry sent —
every slot, classification and external identifier, with their ids — so that an answer from the
national network can be read, counted, obfuscated and written again unchanged in meaning. The
domain layer maps `DocumentEntry` to and from it:

==========================  =================================================================
DocumentEntry               ExtrinsicObject
==========================  =================================================================
entry_uuid                  @id and @lid "urn:uuid:<uuid>"
status                      @status StatusType:Approved (current) / Deprecated (superseded)
home_community_id           @home "urn:oid:<oid>" (read bare or urn:oid:)
mime_type, title            @mimeType, Name
creation / service times    slots creationTime, serviceStartTime, serviceStopTime (UTC DTM,
                            seconds)
hash_sha1, size             slots hash, size
language_code               slot languageCode
repository_unique_id        slot repositoryUniqueId (bare OID)
patient_id                  ExternalIdentifier XDSDocumentEntry.patientId and slot
                            sourcePatientId (CX id^^^&<F/D/H-number OID>&ISO)
unique_id                   ExternalIdentifier XDSDocumentEntry.uniqueId
reference_ids               slot urn:ihe:iti:xds:2013:referenceIdList (CXi, as given)
class/type/format/…         Classification: nodeRepresentation = code, slot codingScheme =
                            bare OID (or the system as given), Name = display
confidentiality_codes       one Classification per code (N/R/V: 2.16.840.1.113883.5.25;
                            NORS/NORN_*/NORU: 2.16.578.1.12.4.1.1.9603)
authors                     Classification 93606bcf…: slots authorPerson (XCN, HPR),
                            authorInstitution (three XON: department with RESH, the unit
                            without id, the legal entity with orgnr), authorRole
hash_sha256                 slot urn:onerecord:xds:hashSha256 (XDS hash is SHA-1)
citizen_release_time        slot urn:onerecord:xds:citizenReleaseTime
submission_time             slot urn:onerecord:xds:submissionTime
==========================  =================================================================

Not carried by the ExtrinsicObject: `replaces` (an RPLC Association in the answer) and the
status entered-in-error (XDS has none; ITI-62 removes such entries) — `ebrim_from_entry` refuses
the latter. Extension slot names follow ITI TF-3 4.2.3.1.7 ("urn:", not "urn:ihe:").

Blocked entries (NORS) are obfuscated as the national answer shows them (`obfuscate`).

References: IHE ITI TF-3 4.2.3.2 (DocumentEntry attributes), 4.2.5 (classification schemes and
identification schemes), 4.2.3.1.7 (extra metadata), 4.2.4 (RegistryResponse/RegistryError);
ebRIM 3.0 §2, ebRS 3.0 §6 (AdhocQueryResponse); TRUST-FRAMEWORK §4.5 (obfuscation), §6.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from hashlib import sha1
from typing import Any
from uuid import NAMESPACE_URL, UUID

from lxml import etree  # type: ignore[import-untyped]

from onerecord.domain import (
    DNR_SYSTEM,
    FNR_SYSTEM,
    HNR_SYSTEM,
    HPR_SYSTEM,
    ORGNR_SYSTEM,
    RESH_SYSTEM,
    Author,
    AuthorInstitution,
    AuthorPerson,
    Coding,
    DocumentEntry,
    DocumentStatus,
    DocumentUniqueId,
    DomainError,
    HomeCommunityId,
    HprNumber,
    NationalIdentityNumber,
    Oid,
    OrganisationNumber,
    RepositoryUniqueId,
    ReshId,
    normalise_system,
    strip_urn_oid,
)
from onerecord.xca.errors import ParseProblem, XcaParseError
from onerecord.xca.xml import NS, QUERY, RIM, RS, element_text, qname

__all__ = [
    "ASSOCIATION_TYPE",
    "AUTHOR_SCHEME",
    "BLOCKED_CODE",
    "CLASS_CODE_SCHEME",
    "CONFIDENTIALITY_SCHEME",
    "DOCUMENT_ENTRY_TYPE",
    "EVENT_CODE_SCHEME",
    "FACILITY_TYPE_SCHEME",
    "FORMAT_CODE_SCHEME",
    "MASK",
    "MASKED_TITLE",
    "PATIENT_ID_SCHEME",
    "PRACTICE_SETTING_SCHEME",
    "RPLC",
    "STATUS_APPROVED",
    "STATUS_DEPRECATED",
    "TYPE_CODE_SCHEME",
    "UNIQUE_ID_SCHEME",
    "ZERO_UUID",
    "EbAssociation",
    "EbClassification",
    "EbExternalIdentifier",
    "EbRegistryError",
    "EbSlot",
    "ExtrinsicEntry",
    "QueryResponse",
    "ebrim_from_entry",
    "entry_from_ebrim",
    "obfuscate",
    "parse_query_response",
    "read_extrinsic_object",
    "render_query_response",
    "write_extrinsic_object",
]

DOCUMENT_ENTRY_TYPE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"  # stable DocumentEntry
CLASS_CODE_SCHEME = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
TYPE_CODE_SCHEME = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
CONFIDENTIALITY_SCHEME = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
FORMAT_CODE_SCHEME = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
FACILITY_TYPE_SCHEME = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
PRACTICE_SETTING_SCHEME = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
EVENT_CODE_SCHEME = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
AUTHOR_SCHEME = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
UNIQUE_ID_SCHEME = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
PATIENT_ID_SCHEME = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
STATUS_APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
STATUS_DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
_CLASSIFICATION_TYPE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification"
_EXTERNAL_ID_TYPE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier"
_REFERENCE_ID_LIST = "urn:ihe:iti:xds:2013:referenceIdList"
_SHA256 = "urn:onerecord:xds:hashSha256"
_CITIZEN_RELEASE = "urn:onerecord:xds:citizenReleaseTime"
_SUBMISSION_TIME = "urn:onerecord:xds:submissionTime"
_ERROR_SEVERITY = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
_WARNING_SEVERITY = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"
ASSOCIATION_TYPE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association"
RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
"""ITI TF-3 4.2.2.2.3: the source DocumentEntry replaces the target."""

BLOCKED_CODE = "NORS"
"""Volven 9603 "Sperret": the entry is blocked for health personnel (TRUST-FRAMEWORK §4.5)."""
MASK = "*****"
MASKED_TITLE = "Sperret"
ZERO_UUID = "urn:uuid:00000000-0000-0000-0000-000000000000"
_MASKED_SCHEME = "2.16.578.1.12.4.1.1." + MASK
_MASKED_PERSON = f"{MASK}^{MASK}^{MASK}^^^^^^&{HPR_SYSTEM}&ISO"
_MASKED_DEPARTMENT = f"{MASK}^^^^^&{RESH_SYSTEM}&ISO^^^^{MASK}"
_MASKED_UNIT = f"{MASK}^^^^^^^^^"

_CODED_SCHEMES = {
    CLASS_CODE_SCHEME: "class_code",
    TYPE_CODE_SCHEME: "type_code",
    FORMAT_CODE_SCHEME: "format_code",
    FACILITY_TYPE_SCHEME: "healthcare_facility_type",
    PRACTICE_SETTING_SCHEME: "practice_setting",
}
_PERSON_SYSTEMS = {FNR_SYSTEM, DNR_SYSTEM, HNR_SYSTEM}
_MAX_ENTRIES = 10_000
_MAX_CHILDREN = 512
_MAX_VALUES = 256
_MAX_TEXT = 4096


@dataclass(frozen=True, slots=True)
class EbSlot:
    """An ebRIM Slot: a name and its values, in order."""

    name: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EbClassification:
    """An ebRIM Classification of the entry (coded value or author)."""

    id: str
    scheme: str
    node_representation: str
    slots: tuple[EbSlot, ...] = ()
    name: str | None = None

    def slot(self, name: str) -> tuple[str, ...]:
        return next((s.values for s in self.slots if s.name == name), ())


@dataclass(frozen=True, slots=True)
class EbExternalIdentifier:
    """An ebRIM ExternalIdentifier (uniqueId, patientId)."""

    id: str
    scheme: str
    value: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ExtrinsicEntry:
    """An ExtrinsicObject as sent: attributes, slots, classifications, external identifiers."""

    id: str
    lid: str | None
    home: str | None
    status: str
    mime_type: str
    object_type: str
    title: str | None
    slots: tuple[EbSlot, ...]
    classifications: tuple[EbClassification, ...]
    external_identifiers: tuple[EbExternalIdentifier, ...]

    def slot(self, name: str) -> tuple[str, ...]:
        return next((s.values for s in self.slots if s.name == name), ())

    def coded(self, scheme: str) -> tuple[EbClassification, ...]:
        return tuple(c for c in self.classifications if c.scheme == scheme)

    def external(self, scheme: str) -> str | None:
        return next((e.value for e in self.external_identifiers if e.scheme == scheme), None)

    @property
    def confidentiality_codes(self) -> frozenset[str]:
        return frozenset(c.node_representation for c in self.coded(CONFIDENTIALITY_SCHEME))

    @property
    def blocked(self) -> bool:
        """True when the entry carries NORS (blocked for health personnel)."""
        return BLOCKED_CODE in self.confidentiality_codes

    @property
    def home_community_id(self) -> HomeCommunityId | None:
        """@home, read bare or as urn:oid: (ITI TF-3 4.2.3.2.x homeCommunityId)."""
        return None if self.home is None else HomeCommunityId(Oid(self.home))


@dataclass(frozen=True, slots=True)
class EbRegistryError:
    """One RegistryError: code, context text, location (urn:oid:<homeCommunityId>), severity."""

    error_code: str
    code_context: str
    location: str | None
    severity: str = _ERROR_SEVERITY


@dataclass(frozen=True, slots=True)
class EbAssociation:
    """An ebRIM Association between two registry objects (RPLC: source replaces target)."""

    id: str
    association_type: str
    source: str
    target: str


@dataclass(frozen=True, slots=True)
class QueryResponse:
    """An AdhocQueryResponse: status, errors, LeafClass entries or ObjectRef ids."""

    status: str
    entries: tuple[ExtrinsicEntry, ...] = ()
    errors: tuple[EbRegistryError, ...] = ()
    object_refs: tuple[str, ...] = ()
    associations: tuple[EbAssociation, ...] = ()
    home: str | None = None
    """The responding community's homeCommunityId for each ObjectRef (ITI TF-2 3.38.4.1.3)."""


# --- reading -------------------------------------------------------------------------------


def _bad(message: str) -> XcaParseError:
    return XcaParseError(message, problem=ParseProblem.SHAPE)


def _attr(element: Any, name: str, *, required: bool = True, max_len: int = 512) -> str | None:
    value = element.get(name)
    if value is None:
        if required:
            raise _bad(f"{etree.QName(element).localname} needs @{name}")
        return None
    if len(value) > max_len:
        raise _bad(f"@{name} is longer than {max_len} characters")
    return str(value)


def _name(element: Any) -> str | None:
    strings = element.findall("rim:Name/rim:LocalizedString", NS)
    if len(strings) > 1:
        raise _bad("a Name with more than one LocalizedString is not supported")
    return _attr(strings[0], "value", max_len=_MAX_TEXT) if strings else None


def _slots(element: Any) -> tuple[EbSlot, ...]:
    out = []
    found = element.findall("rim:Slot", NS)
    if len(found) > _MAX_CHILDREN:
        raise _bad("too many slots")
    for slot in found:
        name = _attr(slot, "name", max_len=256)
        values = slot.findall("rim:ValueList/rim:Value", NS)
        if len(values) > _MAX_VALUES:
            raise _bad(f"slot {name} has too many values")
        out.append(
            EbSlot(
                name or "",
                tuple(element_text(v, what=f"slot {name}", max_len=_MAX_TEXT) for v in values),
            )
        )
    if len({s.name for s in out}) != len(out):
        raise _bad("a slot name occurs twice in one registry object (ebRIM 3.0 §2.8.2)")
    return tuple(out)


def read_extrinsic_object(element: Any) -> ExtrinsicEntry:
    """Read one ExtrinsicObject (shape only; XcaParseError when it has the wrong shape)."""
    if element.tag != qname(RIM, "ExtrinsicObject"):
        raise _bad("expected an ExtrinsicObject")
    classifications = []
    for c in element.findall("rim:Classification", NS):
        classifications.append(
            EbClassification(
                id=_attr(c, "id") or "",
                scheme=_attr(c, "classificationScheme") or "",
                node_representation=_attr(c, "nodeRepresentation", required=False) or "",
                slots=_slots(c),
                name=_name(c),
            )
        )
    externals = [
        EbExternalIdentifier(
            id=_attr(e, "id") or "",
            scheme=_attr(e, "identificationScheme") or "",
            value=_attr(e, "value") or "",
            name=_name(e),
        )
        for e in element.findall("rim:ExternalIdentifier", NS)
    ]
    if len(classifications) + len(externals) > _MAX_CHILDREN:
        raise _bad("too many classifications")
    return ExtrinsicEntry(
        id=_attr(element, "id") or "",
        lid=_attr(element, "lid", required=False),
        home=_attr(element, "home", required=False),
        status=_attr(element, "status") or "",
        mime_type=_attr(element, "mimeType") or "",
        object_type=_attr(element, "objectType") or "",
        title=_name(element),
        slots=_slots(element),
        classifications=tuple(classifications),
        external_identifiers=tuple(externals),
    )


def parse_query_response(element: Any) -> QueryResponse:
    """Read an AdhocQueryResponse element (the SOAP Body's child)."""
    if element.tag != qname(QUERY, "AdhocQueryResponse"):
        raise _bad("expected an AdhocQueryResponse")
    status = _attr(element, "status") or ""
    errors = tuple(
        EbRegistryError(
            error_code=_attr(e, "errorCode") or "",
            code_context=_attr(e, "codeContext", required=False, max_len=_MAX_TEXT) or "",
            location=_attr(e, "location", required=False),
            severity=_attr(e, "severity", required=False) or _ERROR_SEVERITY,
        )
        for e in element.findall("rs:RegistryErrorList/rs:RegistryError", NS)
    )
    lists = element.findall("rim:RegistryObjectList", NS)
    if len(lists) > 1:
        raise _bad("more than one RegistryObjectList")
    entries: list[ExtrinsicEntry] = []
    refs: list[str] = []
    associations: list[EbAssociation] = []
    if lists:
        children = list(lists[0])
        if len(children) > _MAX_ENTRIES:
            raise _bad("too many registry objects")
        for child in children:
            if child.tag == qname(RIM, "ExtrinsicObject"):
                entries.append(read_extrinsic_object(child))
            elif child.tag == qname(RIM, "ObjectRef"):
                refs.append(_attr(child, "id") or "")
            elif child.tag == qname(RIM, "Association"):
                associations.append(
                    EbAssociation(
                        id=_attr(child, "id") or "",
                        association_type=_attr(child, "associationType") or "",
                        source=_attr(child, "sourceObject") or "",
                        target=_attr(child, "targetObject") or "",
                    )
                )
    return QueryResponse(
        status, tuple(entries), errors, tuple(refs), associations=tuple(associations)
    )


# --- writing -------------------------------------------------------------------------------


def _sub(parent: Any, local: str, namespace: str = RIM, **attrs: str) -> Any:
    return etree.SubElement(parent, qname(namespace, local), dict(attrs))


def _write_name(parent: Any, value: str | None) -> None:
    if value is not None:
        _sub(_sub(parent, "Name"), "LocalizedString", value=value)


def _write_slots(parent: Any, slots: tuple[EbSlot, ...]) -> None:
    for slot in slots:
        values = _sub(_sub(parent, "Slot", name=slot.name), "ValueList")
        for value in slot.values:
            _sub(values, "Value").text = value


def write_extrinsic_object(parent: Any, entry: ExtrinsicEntry) -> Any:
    """Append the entry as an ExtrinsicObject to `parent` (a RegistryObjectList)."""
    attrs = {"id": entry.id, "status": entry.status, "mimeType": entry.mime_type}
    attrs["objectType"] = entry.object_type
    if entry.lid is not None:
        attrs["lid"] = entry.lid
    if entry.home is not None:
        attrs["home"] = entry.home
    element = _sub(parent, "ExtrinsicObject", **attrs)
    _write_slots(element, entry.slots)
    _write_name(element, entry.title)
    for c in entry.classifications:
        ce = _sub(
            element,
            "Classification",
            id=c.id,
            classificationScheme=c.scheme,
            classifiedObject=entry.id,
            nodeRepresentation=c.node_representation,
            objectType=_CLASSIFICATION_TYPE,
        )
        _write_slots(ce, c.slots)
        _write_name(ce, c.name)
    for e in entry.external_identifiers:
        ee = _sub(
            element,
            "ExternalIdentifier",
            id=e.id,
            registryObject=entry.id,
            identificationScheme=e.scheme,
            value=e.value,
            objectType=_EXTERNAL_ID_TYPE,
        )
        _write_name(ee, e.name)
    return element


def render_query_response(response: QueryResponse) -> Any:
    """Return an AdhocQueryResponse element for `response` (LeafClass or ObjectRef)."""
    root = etree.Element(
        qname(QUERY, "AdhocQueryResponse"),
        {"status": response.status},
        nsmap={"query": QUERY, "rim": RIM, "rs": RS},
    )
    if response.errors:
        # ebRS 3.0 §2.1.4: the highest severity of the list (a list of warnings says Warning).
        highest = (
            _ERROR_SEVERITY
            if any(e.severity == _ERROR_SEVERITY for e in response.errors)
            else _WARNING_SEVERITY
        )
        errors = _sub(root, "RegistryErrorList", RS, highestSeverity=highest)
        for e in response.errors:
            attrs = {"errorCode": e.error_code, "codeContext": e.code_context}
            attrs["severity"] = e.severity
            if e.location is not None:
                attrs["location"] = e.location
            _sub(errors, "RegistryError", RS, **attrs)
    objects = _sub(root, "RegistryObjectList")
    for ref in response.object_refs:
        if response.home is not None:
            _sub(objects, "ObjectRef", id=ref, home=response.home)
        else:
            _sub(objects, "ObjectRef", id=ref)
    for entry in response.entries:
        write_extrinsic_object(objects, entry)
    for a in response.associations:
        _sub(
            objects,
            "Association",
            id=a.id,
            associationType=a.association_type,
            sourceObject=a.source,
            targetObject=a.target,
            objectType=ASSOCIATION_TYPE,
        )
    return root


# --- DocumentEntry <-> ExtrinsicEntry -------------------------------------------------------


def _dtm(moment: datetime) -> str:
    """XDS DTM in UTC to the second (formatted by hand: strftime cost ~4 µs a call)."""
    t = moment.astimezone(UTC)
    if t.year < 1000:
        return t.strftime("%Y%m%d%H%M%S")  # as before, whatever the platform pads
    return f"{t.year}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}"


def _parse_dtm(value: str, what: str) -> datetime:
    """Parse an XDS DTM (YYYY[MM[DD[hh[mm[ss]]]]], UTC)."""
    if not value.isascii() or not value.isdigit() or len(value) not in (4, 6, 8, 10, 12, 14):
        raise _bad(f"{what} is not an XDS DTM")
    padded = value + "0101000000"[len(value) - 4 :] if len(value) < 14 else value
    try:
        return datetime.strptime(padded[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise _bad(f"{what} is not a real time") from None


def _scheme_of(system: str) -> str:
    return strip_urn_oid(system)


def _coded(scheme: str, coding: Coding, entry_id: str, index: int) -> EbClassification:
    return EbClassification(
        id=_child_id(entry_id, scheme, index),
        scheme=scheme,
        node_representation=coding.code,
        slots=(EbSlot("codingScheme", (_scheme_of(coding.system),)),),
        name=coding.display,
    )


_URL_NAMESPACE = NAMESPACE_URL.bytes


def _child_id(entry_id: str, scheme: str, index: int) -> str:
    """urn:uuid: of uuid5(NAMESPACE_URL, "<entry id>/<scheme>/<index>").

    Deterministic ids, so the same entry renders the same XML every time. Written out rather
    than through `uuid.uuid5` (RFC 4122 §4.3: SHA-1 of namespace + name, the version nibble 5,
    the variant bits 10), which builds two UUID objects per id; about ten ids per entry made
    it a visible part of an ITI-38 answer. tests/xca/test_writer.py checks it against uuid5.
    """
    name = f"{entry_id}/{scheme}/{index}".encode()
    h = sha1(_URL_NAMESPACE + name, usedforsecurity=False).hexdigest()
    return f"urn:uuid:{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}
"""The first hex digit of the clock sequence with the RFC 4122 variant bits (10xx) set."""


_ESCAPES = (("\\", "\\E\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"), ("|", "\\F\\"))


def _esc(text: str) -> str:
    """Escape HL7 v2 delimiters in a name component (HL7 v2.5 §2.7)."""
    for raw, escaped in _ESCAPES:
        text = text.replace(raw, escaped)
    return text


def _unesc(text: str) -> str:
    out, i = [], 0
    table = {escaped: raw for raw, escaped in _ESCAPES}
    while i < len(text):
        chunk = text[i : i + 3]
        if chunk in table:
            out.append(table[chunk])
            i += 3
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _cx(nin: NationalIdentityNumber) -> str:
    return f"{nin.value}^^^&{nin.system}&ISO"


def _xcn(person: AuthorPerson) -> str:
    ident = person.hpr.value if person.hpr else ""
    return f"{ident}^{_esc(person.family)}^{_esc(person.given)}^^^^^^&{HPR_SYSTEM}&ISO"


def _institution_values(inst: AuthorInstitution) -> tuple[str, ...]:
    values = []
    if inst.department_name is not None or inst.department_resh is not None:
        resh = inst.department_resh.value if inst.department_resh else ""
        name = _esc(inst.department_name or "")
        values.append(f"{name}^^^^^&{RESH_SYSTEM}&ISO^^^^{resh}")
    if inst.unit_name is not None:
        values.append(f"{_esc(inst.unit_name)}^^^^^^^^^")
    orgnr = inst.organisation_number.value
    values.append(f"{_esc(inst.name)}^^^^^&{ORGNR_SYSTEM}&ISO^^^^{orgnr}")
    return tuple(values)


def ebrim_from_entry(entry: DocumentEntry) -> ExtrinsicEntry:
    """Return the ExtrinsicObject of a DocumentEntry (ITI TF-3 4.2.3.2)."""
    if entry.status is DocumentStatus.ENTERED_IN_ERROR:
        raise ValueError("an entered-in-error entry has no XDS status; it is not answered")
    entry_id = f"urn:uuid:{entry.entry_uuid}"
    slots = [EbSlot("creationTime", (_dtm(entry.creation_time),))]
    slots.append(EbSlot("hash", (entry.hash_sha1,)))
    slots.append(EbSlot("size", (str(entry.size),)))
    slots.append(EbSlot("languageCode", (entry.language_code,)))
    if entry.repository_unique_id is not None:
        slots.append(EbSlot("repositoryUniqueId", (entry.repository_unique_id.oid.value,)))
    if entry.service_start_time is not None:
        slots.append(EbSlot("serviceStartTime", (_dtm(entry.service_start_time),)))
    if entry.service_stop_time is not None:
        slots.append(EbSlot("serviceStopTime", (_dtm(entry.service_stop_time),)))
    slots.append(EbSlot("sourcePatientId", (_cx(entry.patient_id),)))
    if entry.reference_ids:
        slots.append(EbSlot(_REFERENCE_ID_LIST, entry.reference_ids))
    slots.append(EbSlot(_SHA256, (entry.hash_sha256,)))
    if entry.citizen_release_time is not None:
        slots.append(EbSlot(_CITIZEN_RELEASE, (_dtm(entry.citizen_release_time),)))
    if entry.submission_time is not None:
        slots.append(EbSlot(_SUBMISSION_TIME, (_dtm(entry.submission_time),)))
    classifications: list[EbClassification] = []
    for i, author in enumerate(entry.authors):
        author_slots = []
        if author.person is not None:
            author_slots.append(EbSlot("authorPerson", (_xcn(author.person),)))
        if author.institution is not None:
            author_slots.append(
                EbSlot("authorInstitution", _institution_values(author.institution))
            )
        if author.role is not None:
            author_slots.append(EbSlot("authorRole", (author.role,)))
        classifications.append(
            EbClassification(
                _child_id(entry_id, AUTHOR_SCHEME, i), AUTHOR_SCHEME, "", tuple(author_slots)
            )
        )
    classifications.append(_coded(CLASS_CODE_SCHEME, entry.class_code, entry_id, 0))
    for i, code in enumerate(entry.confidentiality_codes):
        classifications.append(_coded(CONFIDENTIALITY_SCHEME, code, entry_id, i))
    for i, code in enumerate(entry.event_codes):
        classifications.append(_coded(EVENT_CODE_SCHEME, code, entry_id, i))
    classifications.append(_coded(FORMAT_CODE_SCHEME, entry.format_code, entry_id, 0))
    classifications.append(
        _coded(FACILITY_TYPE_SCHEME, entry.healthcare_facility_type, entry_id, 0)
    )
    classifications.append(_coded(PRACTICE_SETTING_SCHEME, entry.practice_setting, entry_id, 0))
    classifications.append(_coded(TYPE_CODE_SCHEME, entry.type_code, entry_id, 0))
    externals = (
        EbExternalIdentifier(
            _child_id(entry_id, UNIQUE_ID_SCHEME, 0),
            UNIQUE_ID_SCHEME,
            entry.unique_id.value,
            "XDSDocumentEntry.uniqueId",
        ),
        EbExternalIdentifier(
            _child_id(entry_id, PATIENT_ID_SCHEME, 0),
            PATIENT_ID_SCHEME,
            _cx(entry.patient_id),
            "XDSDocumentEntry.patientId",
        ),
    )
    return ExtrinsicEntry(
        id=entry_id,
        lid=entry_id,
        home=entry.home_community_id.urn if entry.home_community_id else None,
        status=STATUS_DEPRECATED if entry.status is DocumentStatus.SUPERSEDED else STATUS_APPROVED,
        mime_type=entry.mime_type,
        object_type=DOCUMENT_ENTRY_TYPE,
        title=entry.title,
        slots=tuple(slots),
        classifications=tuple(classifications),
        external_identifiers=externals,
    )


def _one(values: tuple[str, ...], what: str, *, required: bool = True) -> str | None:
    if len(values) > 1:
        raise _bad(f"{what} must have one value")
    if not values:
        if required:
            raise _bad(f"{what} is required")
        return None
    return values[0]


def _coding(c: EbClassification) -> Coding:
    scheme = _one(c.slot("codingScheme"), "codingScheme")
    assert scheme is not None
    return Coding(normalise_system(scheme), c.node_representation, c.name)


def _patient(value: str) -> NationalIdentityNumber:
    ident, _, rest = value.partition("^^^")
    parts = rest.split("&")
    if (
        len(parts) != 3
        or parts[0]
        or parts[2] != "ISO"
        or strip_urn_oid(parts[1]) not in _PERSON_SYSTEMS
    ):
        raise _bad("patientId is not a CX with an F-, D- or H-number authority")
    nin = NationalIdentityNumber(ident)
    if nin.system != strip_urn_oid(parts[1]):
        raise _bad("patientId's number does not fit its assigning authority")
    return nin


def _authority(fields: list[str], index: int) -> str:
    """The assigning authority OID of an HL7 v2 HD component "&<OID>&ISO" (bare)."""
    if len(fields) <= index:
        return ""
    return strip_urn_oid(fields[index].strip("&").removesuffix("&ISO"))


def _person(value: str) -> AuthorPerson:
    fields = value.split("^")
    if len(fields) < 3:
        raise _bad("authorPerson is not an XCN")
    ident, family, given = fields[0], fields[1], fields[2]
    hpr = None
    if ident:
        if _authority(fields, 8) != HPR_SYSTEM:
            raise _bad("authorPerson's identifier is not an HPR number")
        hpr = HprNumber(ident)
    return AuthorPerson(given=_unesc(given), family=_unesc(family), hpr=hpr)


def _institution(values: tuple[str, ...]) -> AuthorInstitution:
    legal: tuple[str, str] | None = None
    department: tuple[str, str] | None = None
    unit: str | None = None
    for value in values:
        fields = value.split("^")
        name = _unesc(fields[0])
        authority = _authority(fields, 5)
        ident = fields[9] if len(fields) > 9 else ""
        if authority == ORGNR_SYSTEM and legal is None:
            legal = (name, ident)
        elif authority == RESH_SYSTEM and department is None:
            department = (name, ident)
        elif not authority and not ident and unit is None:
            unit = name
        else:
            raise _bad("authorInstitution has an unexpected or repeated level")
    if legal is None:
        raise _bad("authorInstitution needs the legal entity (orgnr)")
    return AuthorInstitution(
        name=legal[0],
        organisation_number=OrganisationNumber(legal[1]),
        department_name=(department[0] or None) if department else None,
        department_resh=ReshId(department[1]) if department and department[1] else None,
        unit_name=unit,
    )


def _author(c: EbClassification) -> Author:
    person = _one(c.slot("authorPerson"), "authorPerson", required=False)
    institution = c.slot("authorInstitution")
    role = _one(c.slot("authorRole"), "authorRole", required=False)
    return Author(
        person=_person(person) if person else None,
        institution=_institution(institution) if institution else None,
        role=role,
    )


def entry_from_ebrim(entry: ExtrinsicEntry) -> DocumentEntry:
    """Return the DocumentEntry of an ExtrinsicObject; XcaParseError when it cannot be one.

    An obfuscated (blocked) entry is not a DocumentEntry: its ids and codes are masked.
    """
    try:
        return _entry_from_ebrim(entry)
    except DomainError as exc:
        raise XcaParseError(f"DocumentEntry: {exc.message}", problem=ParseProblem.VALUE) from None
    except (ValueError, AssertionError) as exc:
        raise XcaParseError(f"DocumentEntry: {exc}", problem=ParseProblem.VALUE) from None


def _entry_from_ebrim(e: ExtrinsicEntry) -> DocumentEntry:
    names = [s.name for s in e.slots]
    if len(names) != len(set(names)):
        raise _bad("a slot name occurs twice in the entry")
    if not e.id.startswith("urn:uuid:") or e.id == ZERO_UUID:
        raise _bad("the entry's id is not a urn:uuid (or it is masked)")
    if e.status not in (STATUS_APPROVED, STATUS_DEPRECATED):
        raise _bad("the entry's status is neither Approved nor Deprecated")

    def coded(scheme: str) -> Coding:
        found = e.coded(scheme)
        if len(found) != 1:
            raise _bad(f"classification {scheme} must occur once")
        return _coding(found[0])

    def time(name: str) -> datetime | None:
        value = _one(e.slot(name), name, required=False)
        return None if value is None else _parse_dtm(value, name)

    unique_id = e.external(UNIQUE_ID_SCHEME)
    patient = e.external(PATIENT_ID_SCHEME)
    if unique_id is None or patient is None:
        raise _bad("the entry needs uniqueId and patientId")
    repository = _one(e.slot("repositoryUniqueId"), "repositoryUniqueId", required=False)
    sha256 = _one(e.slot(_SHA256), _SHA256)
    creation = time("creationTime")
    size = _one(e.slot("size"), "size")
    assert sha256 is not None and creation is not None and size is not None
    if not size.isascii() or not size.isdigit() or len(size) > 15:
        raise _bad("size is not a number")
    return DocumentEntry(
        unique_id=DocumentUniqueId(unique_id),
        entry_uuid=UUID(e.id.removeprefix("urn:uuid:")),
        patient_id=_patient(patient),
        class_code=coded(CLASS_CODE_SCHEME),
        type_code=coded(TYPE_CODE_SCHEME),
        confidentiality_codes=tuple(_coding(c) for c in e.coded(CONFIDENTIALITY_SCHEME)),
        format_code=coded(FORMAT_CODE_SCHEME),
        mime_type=e.mime_type,
        hash_sha256=sha256,
        hash_sha1=_one(e.slot("hash"), "hash") or "",
        size=int(size),
        creation_time=creation,
        title=e.title or "",
        language_code=_one(e.slot("languageCode"), "languageCode") or "",
        healthcare_facility_type=coded(FACILITY_TYPE_SCHEME),
        practice_setting=coded(PRACTICE_SETTING_SCHEME),
        authors=tuple(_author(c) for c in e.coded(AUTHOR_SCHEME)),
        event_codes=tuple(_coding(c) for c in e.coded(EVENT_CODE_SCHEME)),
        service_start_time=time("serviceStartTime"),
        service_stop_time=time("serviceStopTime"),
        status=DocumentStatus.SUPERSEDED
        if e.status == STATUS_DEPRECATED
        else DocumentStatus.CURRENT,
        reference_ids=e.slot(_REFERENCE_ID_LIST),
        citizen_release_time=time(_CITIZEN_RELEASE),
        repository_unique_id=RepositoryUniqueId.parse(repository) if repository else None,
        home_community_id=e.home_community_id,
        submission_time=time(_SUBMISSION_TIME),
    )


# --- obfuscation ---------------------------------------------------------------------------


def _mask_institution(values: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for value in values:
        fields = value.split("^")
        authority = _authority(fields, 5)
        if authority == ORGNR_SYSTEM:
            out.append(value)  # the legal entity stays: where the blocked document lives
        elif authority == RESH_SYSTEM:
            out.append(_MASKED_DEPARTMENT)
        else:
            out.append(_MASKED_UNIT)
    return tuple(out)


def _mask_author(c: EbClassification) -> EbClassification:
    slots = []
    for slot in c.slots:
        if slot.name == "authorInstitution":
            slots.append(EbSlot(slot.name, _mask_institution(slot.values)))
        elif slot.name == "authorPerson":
            slots.append(EbSlot(slot.name, tuple(_MASKED_PERSON for _ in slot.values)))
        else:  # authorRole, authorSpecialty, authorTelecommunication
            slots.append(EbSlot(slot.name, tuple(MASK for _ in slot.values)))
    return replace(c, slots=tuple(slots))


def obfuscate(entry: ExtrinsicEntry) -> ExtrinsicEntry:
    """Mask a blocked entry exactly as the national answer shows one.

    Masked: title → "Sperret"; entryUUID (id, lid) → all zeros; classCode and typeCode →
    "*****" with codingScheme 2.16.578.1.12.4.1.1.*****; authorPerson and legalAuthenticator →
    *****^*****^*****; authorRole → *****; authorInstitution's department → *****^…RESH…^*****
    and its unit → *****; uniqueId → <repositoryUniqueId>^-1 (not retrievable). Kept: the legal
    entity, confidentiality codes, format, facility type, practice setting, creation time, size,
    hash, language, repository, homeCommunityId, patient and referenceIdList — as the national
    answer keeps them. References: national ITI-18 answer (../shared/xca-vectors, the 5 NORS
    entries); TRUST-FRAMEWORK §4.5, D1.
    """
    repository = _one(entry.slot("repositoryUniqueId"), "repositoryUniqueId", required=False)
    classifications = []
    for c in entry.classifications:
        if c.scheme == AUTHOR_SCHEME:
            classifications.append(_mask_author(c))
        elif c.scheme in (CLASS_CODE_SCHEME, TYPE_CODE_SCHEME):
            classifications.append(
                replace(
                    c,
                    node_representation=MASK,
                    slots=(EbSlot("codingScheme", (_MASKED_SCHEME,)),),
                    name=MASK,
                )
            )
        else:
            classifications.append(c)
    slots = tuple(
        EbSlot(s.name, tuple(_MASKED_PERSON for _ in s.values))
        if s.name == "legalAuthenticator"
        else s
        for s in entry.slots
    )
    externals = tuple(
        replace(e, value=f"{repository or ''}^-1") if e.scheme == UNIQUE_ID_SCHEME else e
        for e in entry.external_identifiers
    )
    return replace(
        entry,
        id=ZERO_UUID,
        lid=ZERO_UUID,
        title=MASKED_TITLE,
        slots=slots,
        classifications=tuple(classifications),
        external_identifiers=externals,
    )
