"""DocumentEntry <-> FHIR R4 DocumentReference (IHE MHD Comprehensive Metadata), ITI-68 URLs.

Mapping (IHE MHD 4.x §2:3.65.4.1.2.1 / ITI TF-3 Table 4.5-1 style), as rendered here:

=========================  ===================================================================
DocumentEntry              DocumentReference
=========================  ===================================================================
uniqueId                   masterIdentifier {system urn:ietf:rfc:3986, value urn:oid:<oid>, or
                           the raw "<oid>^<extension>" when there is an extension}
entryUUID                  identifier[use=official] {urn:ietf:rfc:3986, urn:uuid:<uuid>}
availabilityStatus         status
classCode / typeCode       category[0] / type (Volven 9602)
patientId                  subject.identifier {urn:oid:<FNR|DNR|HNR OID>, value}; the source
                           keeps no Patient resources, so subject is a logical reference
creationTime               date (instant) and content[0].attachment.creation. MHD leaves `date`
                           unmapped to XDS; onerecord puts creationTime there so that the
                           ITI-67 `date` parameter and sorting work on the clinical time.
author                     author[i] -> contained PractitionerRole "author<i>" with
                           practitioner -> contained Practitioner (HPR identifier, name),
                           organization -> contained Organization (orgnr, name), or, with a
                           department, -> contained Organization (RESH, name) partOf the
                           organisation; authorRole -> PractitionerRole.code[0].text
confidentialityCode        securityLabel (every code)
mimeType, languageCode,    content[0].attachment.contentType, .language, .size,
size, hash, title          .hash (base64 SHA-1, FHIR Attachment.hash), .title
formatCode                 content[0].format
eventCodeList              context.event
serviceStart/StopTime      context.period
healthcareFacilityType     context.facilityType
practiceSetting            context.practiceSetting
referenceIdList            context.related[i].identifier: a CXi "value^^^&<oid>&ISO^type" (or
                           "&<uri>&URI") as {system urn:oid:<oid> (or the URI), value, type
                           .coding[0].code}; any other string as {value} alone
RPLC association           relatesTo {code replaces, target.identifier = masterIdentifier of
                           the replaced document}
homeCommunityId            extension ihe-HomeCommunityId (valueIdentifier urn:oid:<oid>)
=========================  ===================================================================

Project extensions (https://onerecord.no/fhir/StructureDefinition/...):

- ``document-sha256`` on content[0].attachment: valueString, SHA-256 of the bytes in lower-case
  hex (XDS 'hash' is SHA-1 and weak; the content store addresses bytes by SHA-256).
- ``repository-unique-id`` on the resource: valueOid, the XDS repositoryUniqueId.
- ``citizen-release-time`` on the resource: valueDateTime, when a document labelled NORU
  (delayed citizen access) becomes visible to the citizen.
- ``submission-time`` on the resource: valueInstant, XDS submissionTime of the registration.

References: IHE ITI TF-3 4.2.3.2; IHE MHD 4.2 (StructureDefinition
IHE.MHD.Comprehensive.DocumentReference, Extension ihe-HomeCommunityId); FHIR R4
Attachment.hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from onerecord.domain.codes import Coding
from onerecord.domain.document_entry import (
    Author,
    AuthorInstitution,
    AuthorPerson,
    DocumentEntry,
    DocumentStatus,
    validate_codes,
)
from onerecord.domain.errors import DomainError, InvalidIdentifier
from onerecord.domain.identifiers import (
    DNR_SYSTEM,
    FNR_SYSTEM,
    HNR_SYSTEM,
    HPR_SYSTEM,
    ORGNR_SYSTEM,
    RESH_SYSTEM,
    DocumentUniqueId,
    HomeCommunityId,
    HprNumber,
    NationalIdentityNumber,
    OrganisationNumber,
    RepositoryUniqueId,
    ReshId,
)
from onerecord.domain.limits import (
    MAX_ELEMENT_REPEATS,
    MAX_STRING_LENGTH,
    DateOutOfRange,
    check_moment,
)
from onerecord.mhd.errors import BadRequest, Unprocessable
from onerecord.mhd.mime import check_mime_type

__all__ = [
    "COMPREHENSIVE_PROFILE",
    "EXT_CITIZEN_RELEASE_TIME",
    "EXT_HOME_COMMUNITY_ID",
    "EXT_REPOSITORY_UNIQUE_ID",
    "EXT_SHA256",
    "EXT_SUBMISSION_TIME",
    "RFC3986",
    "RetrieveKey",
    "document_reference",
    "document_reference_template",
    "entry_from_document_reference",
    "fill_document_reference",
    "parse_retrieve_path",
    "related_identifier",
    "retrieve_url",
    "retrieve_url_prefix",
]

COMPREHENSIVE_PROFILE = (
    "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.DocumentReference"
)
EXT_HOME_COMMUNITY_ID = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-HomeCommunityId"
_HOME_COMMUNITY_ALIASES = frozenset(
    {
        EXT_HOME_COMMUNITY_ID,
        "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-homeCommunityId",
        "http://ihe.net/fhir/StructureDefinition/homeCommunityId",
    }
)
_ONERECORD = "https://onerecord.no/fhir/StructureDefinition/"
EXT_SHA256 = _ONERECORD + "document-sha256"
EXT_REPOSITORY_UNIQUE_ID = _ONERECORD + "repository-unique-id"
EXT_CITIZEN_RELEASE_TIME = _ONERECORD + "citizen-release-time"
EXT_SUBMISSION_TIME = _ONERECORD + "submission-time"
RFC3986 = "urn:ietf:rfc:3986"

_PATIENT_SYSTEMS = {f"urn:oid:{s}": s for s in (FNR_SYSTEM, DNR_SYSTEM, HNR_SYSTEM)}
_HPR = f"urn:oid:{HPR_SYSTEM}"
_ORGNR = f"urn:oid:{ORGNR_SYSTEM}"
_RESH = f"urn:oid:{RESH_SYSTEM}"

MAX_TITLE_LENGTH = 512
"""Characters in a document title (DocumentEntry.title; the registry column holds 512)."""

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

# Where DocumentEntry-level rule violations live in a DocumentReference.
_ENTRY_EXPRESSIONS = {
    "size": "content[0].attachment.size",
    "title": "content[0].attachment.title",
    "DocumentReference.type": "type",
    "content.attachment.language": "content[0].attachment.language",
    "content.format": "content[0].format",
    "creation_time": "content[0].attachment.creation",
    "service_start_time": "context.period.start",
    "service_stop_time": "context.period.end",
    "citizen_release_time": "extension[citizen-release-time]",
    "submission_time": "extension[submission-time]",
}


# --- rendering ---------------------------------------------------------------------------------


def _coding(c: Coding) -> dict[str, str]:
    out = {"system": c.system, "code": c.code}
    if c.display:
        out["display"] = c.display
    return out


def _concept(c: Coding) -> dict[str, Any]:
    return {"coding": [_coding(c)]}


def _author_resources(index: int, author: Author) -> tuple[list[dict[str, Any]], str]:
    """Return the contained resources of one author and the id the author reference points to."""
    role_id = f"author{index}"
    contained: list[dict[str, Any]] = []
    role: dict[str, Any] = {"resourceType": "PractitionerRole", "id": role_id}
    if author.person is not None:
        person = author.person
        practitioner: dict[str, Any] = {
            "resourceType": "Practitioner",
            "id": f"{role_id}-person",
            "name": [{"family": person.family, "given": [person.given]}],
        }
        if person.hpr is not None:
            practitioner["identifier"] = [{"system": _HPR, "value": person.hpr.value}]
        contained.append(practitioner)
        role["practitioner"] = {"reference": f"#{role_id}-person"}
    if author.institution is not None:
        inst = author.institution
        org_id = f"{role_id}-org"
        contained.append(
            {
                "resourceType": "Organization",
                "id": org_id,
                "identifier": [{"system": _ORGNR, "value": inst.organisation_number.value}],
                "name": inst.name,
            }
        )
        target = org_id
        if inst.department_name is not None or inst.department_resh is not None:
            target = f"{role_id}-dept"
            dept: dict[str, Any] = {"resourceType": "Organization", "id": target}
            if inst.department_resh is not None:
                dept["identifier"] = [{"system": _RESH, "value": inst.department_resh.value}]
            if inst.department_name is not None:
                dept["name"] = inst.department_name
            dept["partOf"] = {"reference": f"#{org_id}"}
            contained.append(dept)
        role["organization"] = {"reference": f"#{target}"}
    if author.role is not None:
        role["code"] = [{"text": author.role}]
    contained.insert(0, role)
    return contained, role_id


# ITI TF-3 4.2.3.2.28 referenceIdList: CXi with CX.1 (value), CX.4 (assigning authority:
# &<universal id>&<ISO|URI>) and CX.5 (type). Only this exact shape is taken apart; any other
# string travels as the identifier's value, so rendering and parsing give back the same string.
_CXI = re.compile(r"^([^^&]+)\^\^\^&([^^&]+)&(ISO|URI)(?:\^([^^&]+))?$")
_BARE_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")


def related_identifier(reference_id: str) -> dict[str, Any]:
    """A referenceIdList item (CXi) as the FHIR Identifier of context.related (MHD 4.x)."""
    match = _CXI.match(reference_id)
    if match is None:
        return {"value": reference_id}
    value, authority, kind, type_code = match.groups()
    if kind == "ISO":
        if not _BARE_OID.match(authority):
            return {"value": reference_id}
        system = f"urn:oid:{authority}"
    elif authority.lower().startswith("urn:oid:"):
        return {"value": reference_id}
    else:
        system = authority
    identifier: dict[str, Any] = {"system": system, "value": value}
    if type_code is not None:
        identifier["type"] = {"coding": [{"code": type_code}]}
    return identifier


def document_reference(
    entry: DocumentEntry, *, id: str | None, attachment_url: str
) -> dict[str, Any]:
    """Render a DocumentEntry as an MHD Comprehensive DocumentReference (plain dict)."""
    resource: dict[str, Any] = {"resourceType": "DocumentReference"}
    if id is not None:
        resource["id"] = id
    resource["meta"] = {"profile": [COMPREHENSIVE_PROFILE]}
    contained: list[dict[str, Any]] = []
    author_refs: list[dict[str, str]] = []
    for index, author in enumerate(entry.authors):
        resources, ref = _author_resources(index, author)
        contained.extend(resources)
        author_refs.append({"reference": f"#{ref}"})
    if contained:
        resource["contained"] = contained
    extensions: list[dict[str, Any]] = []
    if entry.home_community_id is not None:
        extensions.append(
            {
                "url": EXT_HOME_COMMUNITY_ID,
                "valueIdentifier": {"system": RFC3986, "value": entry.home_community_id.urn},
            }
        )
    if entry.repository_unique_id is not None:
        extensions.append(
            {"url": EXT_REPOSITORY_UNIQUE_ID, "valueOid": entry.repository_unique_id.oid.urn}
        )
    if entry.citizen_release_time is not None:
        extensions.append(
            {
                "url": EXT_CITIZEN_RELEASE_TIME,
                "valueDateTime": entry.citizen_release_time.isoformat(),
            }
        )
    if entry.submission_time is not None:
        extensions.append(
            {"url": EXT_SUBMISSION_TIME, "valueInstant": entry.submission_time.isoformat()}
        )
    if extensions:
        resource["extension"] = extensions
    resource["masterIdentifier"] = {"system": RFC3986, "value": entry.unique_id.urn}
    resource["identifier"] = [{"use": "official", "system": RFC3986, "value": entry.entry_uuid.urn}]
    resource["status"] = entry.status.value
    resource["type"] = _concept(entry.type_code)
    resource["category"] = [_concept(entry.class_code)]
    resource["subject"] = {
        "identifier": {
            "system": f"urn:oid:{entry.patient_id.system}",
            "value": entry.patient_id.value,
        }
    }
    created = entry.creation_time.isoformat()
    resource["date"] = created
    if author_refs:
        resource["author"] = author_refs
    if entry.replaces is not None:
        resource["relatesTo"] = [
            {
                "code": "replaces",
                "target": {"identifier": {"system": RFC3986, "value": entry.replaces.urn}},
            }
        ]
    resource["securityLabel"] = [_concept(c) for c in entry.confidentiality_codes]
    attachment: dict[str, Any] = {
        "extension": [{"url": EXT_SHA256, "valueString": entry.hash_sha256}],
        "contentType": entry.mime_type,
        "language": entry.language_code,
        "url": attachment_url,
        "size": entry.size,
        "hash": base64.b64encode(bytes.fromhex(entry.hash_sha1)).decode("ascii"),
        "title": entry.title,
        "creation": created,
    }
    resource["content"] = [{"attachment": attachment, "format": _coding(entry.format_code)}]
    context: dict[str, Any] = {}
    if entry.event_codes:
        context["event"] = [_concept(c) for c in entry.event_codes]
    if entry.service_start_time is not None or entry.service_stop_time is not None:
        period: dict[str, str] = {}
        if entry.service_start_time is not None:
            period["start"] = entry.service_start_time.isoformat()
        if entry.service_stop_time is not None:
            period["end"] = entry.service_stop_time.isoformat()
        context["period"] = period
    context["facilityType"] = _concept(entry.healthcare_facility_type)
    context["practiceSetting"] = _concept(entry.practice_setting)
    if entry.reference_ids:
        context["related"] = [{"identifier": related_identifier(r)} for r in entry.reference_ids]
    resource["context"] = context
    return resource


# --- stored rendering: rendered once at registration, filled in per answer ---------------------

# A NUL character never reaches a rendered string from outside (the parsers refuse control
# characters), so its JSON escape, right after an opening quote, marks a slot unambiguously;
# a template is only kept when each slot occurs exactly once.
_STATUS_SLOT = "\x00status\x00"
_URL_SLOT = "\x00retrieve-url\x00"
_STATUS_SLOT_JSON = b'"\\u0000status\\u0000"'
_URL_SLOT_JSON = b'"\\u0000retrieve-url\\u0000'
_STATUS_JSON = {s.value: b'"' + s.value.encode("ascii") + b'"' for s in DocumentStatus}


def document_reference_template(entry: DocumentEntry) -> bytes | None:
    """Render `entry` once as DocumentReference JSON with two slots left open, or None.

    The slots are what may change after registration or differs per source: `status`
    (replacement and entered-in-error change it in the registry) and the start of the
    attachment URL ("<fhir_base>/Binary/<homeCommunityId>~<repositoryUniqueId>~"); the rest of
    the retrieve token (the escaped uniqueId) is rendered. `fill_document_reference` fills
    them; the result is byte for byte `orjson.dumps(document_reference(entry, ...))`. None when
    the entry's own text would make a slot ambiguous: render such an entry per answer instead.
    """
    resource = document_reference(
        entry, id=str(entry.entry_uuid), attachment_url=_URL_SLOT + _escape(entry.unique_id.value)
    )
    resource["status"] = _STATUS_SLOT
    rendered = orjson.dumps(resource)
    if rendered.count(_STATUS_SLOT_JSON) != 1 or rendered.count(_URL_SLOT_JSON) != 1:
        return None
    return rendered


def retrieve_url_prefix(
    base: str, home_community_id: HomeCommunityId, repository_unique_id: RepositoryUniqueId
) -> bytes:
    """Return the JSON-escaped start of every ITI-68 URL of a source, for the URL slot."""
    prefix = f"{base}/Binary/{home_community_id.oid.value}~{repository_unique_id.oid.value}~"
    return b'"' + orjson.dumps(prefix)[1:-1]


def fill_document_reference(template: bytes, *, status: str, url_prefix: bytes) -> bytes:
    """Fill a `document_reference_template` with the registry's status and the URL's start.

    `url_prefix` comes from `retrieve_url_prefix`. References: IHE MHD ITI-67 §2:3.67.4.2.
    """
    return template.replace(_STATUS_SLOT_JSON, _STATUS_JSON[status], 1).replace(
        _URL_SLOT_JSON, url_prefix, 1
    )


# --- parsing -----------------------------------------------------------------------------------


class _Reader:
    """Typed access to a JSON object, raising Unprocessable with the FHIRPath at fault."""

    __slots__ = ("at",)

    def __init__(self, at: str) -> None:
        self.at = at

    def fail(self, path: str, message: str, *, code: str = "invalid") -> Unprocessable:
        where = f"{self.at}.{path}" if path else self.at
        return Unprocessable(f"{where}: {message}", code=code, expression=where)

    def obj(self, value: Any, path: str, *, required: bool = True) -> dict[str, Any] | None:
        if value is None:
            if required:
                raise self.fail(path, "is required", code="required")
            return None
        if not isinstance(value, dict):
            raise self.fail(path, "must be a JSON object", code="structure")
        return value

    def lst(self, value: Any, path: str) -> list[Any]:
        """A JSON array of at most MAX_ELEMENT_REPEATS items; absent is empty."""
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, "must be a JSON array", code="structure")
        if len(value) > MAX_ELEMENT_REPEATS:
            raise self.fail(
                path,
                f"MAX_ELEMENT_REPEATS: at most {MAX_ELEMENT_REPEATS} items allowed, "
                f"{len(value)} given",
                code="too-costly",
            )
        return value

    def text(
        self, value: Any, path: str, *, required: bool = True, limit: int = MAX_STRING_LENGTH
    ) -> str | None:
        """A FHIR string: non-empty, at most `limit` characters, no control characters."""
        if value is None:
            if required:
                raise self.fail(path, "is required", code="required")
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(path, "must be a non-empty string", code="structure")
        if len(value) > limit:
            name = "MAX_STRING_LENGTH" if limit == MAX_STRING_LENGTH else "its limit"
            raise self.fail(
                path,
                f"{name}: at most {limit} characters allowed, {len(value)} given",
                code="too-costly",
            )
        if _CONTROL.search(value):
            # FHIR R4 §2.24.0.1 string; PostgreSQL JSONB cannot hold U+0000 either.
            raise self.fail(path, "must not contain control characters", code="value")
        return value

    def req_text(self, value: Any, path: str, *, limit: int = MAX_STRING_LENGTH) -> str:
        result = self.text(value, path, limit=limit)
        assert result is not None
        return result

    def moment(self, value: Any, path: str, *, required: bool = True) -> datetime | None:
        """A FHIR dateTime with a time and zone, within [EARLIEST_DATE, LATEST_DATE)."""
        raw = self.text(value, path, required=required)
        if raw is None:
            return None
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise self.fail(path, f"{raw[:40]!r} is not a FHIR dateTime") from None
        if parsed.tzinfo is None or "T" not in raw:
            raise self.fail(path, f"{raw!r} must be a full date and time with a time zone")
        try:
            return check_moment(parsed, name=path)
        except DateOutOfRange as exc:
            raise self.fail(path, exc.message.removeprefix(f"{path}: "), code="value") from None

    def integer(self, value: Any, path: str) -> int | None:
        """A FHIR unsignedInt (a JSON integer, not a bool), or None when absent."""
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
            raise self.fail(path, "must be a non-negative integer")
        return value

    def coding(self, value: Any, path: str) -> Coding:
        data = self.obj(value, path)
        assert data is not None
        system = self.req_text(data.get("system"), f"{path}.system")
        code = self.req_text(data.get("code"), f"{path}.code")
        display = self.text(data.get("display"), f"{path}.display", required=False)
        return Coding(system, code, display)

    def concept(self, value: Any, path: str) -> Coding:
        data = self.obj(value, path)
        assert data is not None
        codings = self.lst(data.get("coding"), f"{path}.coding")
        if not codings:
            raise self.fail(f"{path}.coding", "needs one coding", code="required")
        return self.coding(codings[0], f"{path}.coding[0]")


def _identifier(
    r: _Reader, values: list[Any], path: str, system: str, make: type[Any]
) -> Any | None:
    for i, ident in enumerate(values):
        data = r.obj(ident, f"{path}[{i}]")
        assert data is not None
        if data.get("system") == system:
            try:
                return make(r.req_text(data.get("value"), f"{path}[{i}].value"))
            except DomainError as exc:
                raise type(exc)(exc.message, expression=f"{r.at}.{path}[{i}].value") from None
    return None


def _authors(r: _Reader, resource: dict[str, Any]) -> tuple[Author, ...]:
    contained: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(r.lst(resource.get("contained"), "contained")):
        data = r.obj(item, f"contained[{i}]")
        assert data is not None
        ident = r.text(data.get("id"), f"contained[{i}].id", required=False)
        if ident is not None:
            contained[ident] = data

    def resolve(ref: Any, path: str) -> dict[str, Any]:
        data = r.obj(ref, path)
        assert data is not None
        target = r.req_text(data.get("reference"), f"{path}.reference")
        if not target.startswith("#") or target[1:] not in contained:
            raise r.fail(f"{path}.reference", f"{target!r} is not a contained resource")
        return contained[target[1:]]

    def person(res: dict[str, Any]) -> AuthorPerson:
        path = f"contained[id={res.get('id')}]"
        names = r.lst(res.get("name"), f"{path}.name")
        name = r.obj(names[0] if names else None, f"{path}.name[0]")
        assert name is not None
        given = [
            r.req_text(g, f"{path}.name[0].given[{n}]")
            for n, g in enumerate(r.lst(name.get("given"), f"{path}.name[0].given"))
        ]
        hpr = _identifier(
            r,
            r.lst(res.get("identifier"), f"{path}.identifier"),
            f"{path}.identifier",
            _HPR,
            HprNumber,
        )
        return AuthorPerson(
            given=" ".join(given),
            family=r.text(name.get("family"), f"{path}.name[0].family", required=False) or "",
            hpr=hpr,
        )

    def institution(res: dict[str, Any]) -> AuthorInstitution:
        path = f"contained[id={res.get('id')}]"
        dept: dict[str, Any] | None = None
        org = res
        if res.get("partOf") is not None:
            dept, org = res, resolve(res.get("partOf"), f"{path}.partOf")
        org_path = f"contained[id={org.get('id')}]"
        orgnr = _identifier(
            r,
            r.lst(org.get("identifier"), f"{org_path}.identifier"),
            f"{org_path}.identifier",
            _ORGNR,
            OrganisationNumber,
        )
        if orgnr is None:
            raise r.fail(
                f"{org_path}.identifier", "needs an organisation number (orgnr)", code="required"
            )
        resh = None
        if dept is not None:
            resh = _identifier(
                r,
                r.lst(dept.get("identifier"), f"{path}.identifier"),
                f"{path}.identifier",
                _RESH,
                ReshId,
            )
        return AuthorInstitution(
            name=r.req_text(org.get("name"), f"{org_path}.name"),
            organisation_number=orgnr,
            department_name=None
            if dept is None
            else r.text(dept.get("name"), f"{path}.name", required=False),
            department_resh=resh,
        )

    authors: list[Author] = []
    for i, ref in enumerate(r.lst(resource.get("author"), "author")):
        res = resolve(ref, f"author[{i}]")
        kind = res.get("resourceType")
        if kind == "Practitioner":
            authors.append(Author(person=person(res)))
        elif kind == "Organization":
            authors.append(Author(institution=institution(res)))
        elif kind == "PractitionerRole":
            p = res.get("practitioner")
            o = res.get("organization")
            codes = r.lst(res.get("code"), f"author[{i}].code")
            first = r.obj(codes[0], f"author[{i}].code[0]") if codes else None
            role = (
                None
                if first is None
                else r.text(first.get("text"), f"author[{i}].code[0].text", required=False)
            )
            authors.append(
                Author(
                    person=None if p is None else person(resolve(p, f"author[{i}].practitioner")),
                    institution=None
                    if o is None
                    else institution(resolve(o, f"author[{i}].organization")),
                    role=role if isinstance(role, str) else None,
                )
            )
        else:
            raise r.fail(
                f"author[{i}]",
                f"author of type {str(kind)[:40]!r} is not supported",
                code="not-supported",
            )
    return tuple(authors)


def _extension_map(r: _Reader, values: Any, path: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for i, ext in enumerate(r.lst(values, path)):
        data = r.obj(ext, f"{path}[{i}]")
        assert data is not None
        url = data.get("url")
        if isinstance(url, str):
            out["hcid" if url in _HOME_COMMUNITY_ALIASES else url] = data
    return out


def _home_community(r: _Reader, ext: dict[str, Any] | None) -> HomeCommunityId | None:
    if ext is None:
        return None
    value: Any = ext.get("valueOid") or ext.get("valueUri")
    if value is None and isinstance(ext.get("valueIdentifier"), dict):
        value = ext["valueIdentifier"].get("value")
    try:
        return HomeCommunityId.parse(r.req_text(value, "extension[ihe-HomeCommunityId]"))
    except InvalidIdentifier as exc:
        raise InvalidIdentifier(
            exc.message, expression=f"{r.at}.extension[ihe-HomeCommunityId]"
        ) from None


def _hex_sha1(r: _Reader, value: Any) -> str:
    raw = r.req_text(value, "content[0].attachment.hash")
    try:
        digest = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise r.fail("content[0].attachment.hash", "is not base64") from None
    if len(digest) != 20:
        raise r.fail("content[0].attachment.hash", "must be a SHA-1 digest (20 bytes, base64)")
    return digest.hex()


def _reference_id(r: _Reader, ident: dict[str, Any], path: str) -> str:
    """context.related[i].identifier as a referenceIdList item (the inverse of
    `related_identifier`): with a system, the CXi "value^^^&authority&ISO|URI[^type]"."""
    value = r.req_text(ident.get("value"), f"{path}.value")
    system = r.text(ident.get("system"), f"{path}.system", required=False)
    if system is None:
        return value
    type_code: str | None = None
    kind = r.obj(ident.get("type"), f"{path}.type", required=False)
    if kind is not None:
        codings = r.lst(kind.get("coding"), f"{path}.type.coding")
        if codings:
            coding = r.obj(codings[0], f"{path}.type.coding[0]")
            assert coding is not None
            type_code = r.text(coding.get("code"), f"{path}.type.coding[0].code", required=False)
    for part, where in ((value, "value"), (system, "system"), (type_code or "", "type")):
        if "^" in part or "&" in part:
            raise r.fail(f"{path}.{where}", "must not contain ^ or & beside a system")
    if system.startswith("urn:oid:") and _BARE_OID.match(system[8:]):
        cxi = f"{value}^^^&{system[8:]}&ISO"
    else:
        cxi = f"{value}^^^&{system}&URI"
    return cxi if type_code is None else f"{cxi}^{type_code}"


def entry_from_document_reference(
    resource: Mapping[str, Any],
    *,
    binary: bytes | None,
    at: str = "DocumentReference",
    check_codes: bool = True,
) -> DocumentEntry:
    """Parse an MHD DocumentReference into a DocumentEntry.

    With `binary`, size and hashes are computed from the bytes and any declared values must
    match (422), and the declared contentType must fit the bytes (415). Without it they are
    taken from the resource. `at` is the FHIRPath of the resource, prefixed to every error's
    expression ("Bundle.entry[2].resource").
    """
    r = _Reader(at)
    res = dict(resource)
    if res.get("resourceType") != "DocumentReference":
        raise r.fail("resourceType", "must be DocumentReference", code="structure")
    exts = _extension_map(r, res.get("extension"), "extension")

    master = r.obj(res.get("masterIdentifier"), "masterIdentifier")
    assert master is not None
    try:
        unique_id = DocumentUniqueId(r.req_text(master.get("value"), "masterIdentifier.value"))
    except InvalidIdentifier as exc:
        raise InvalidIdentifier(exc.message, expression=f"{at}.masterIdentifier.value") from None

    entry_uuid: UUID | None = None
    for i, ident in enumerate(r.lst(res.get("identifier"), "identifier")):
        data = r.obj(ident, f"identifier[{i}]")
        assert data is not None
        value = data.get("value")
        if isinstance(value, str) and value.startswith("urn:uuid:"):
            try:
                entry_uuid = UUID(value[9:])
            except ValueError:
                raise r.fail(f"identifier[{i}].value", f"{value[:60]!r} is not a UUID") from None
            break
    if entry_uuid is None:
        raise r.fail("identifier", "needs the entryUUID (urn:uuid:…)", code="required")

    status_raw = r.req_text(res.get("status"), "status")
    try:
        status = DocumentStatus(status_raw)
    except ValueError:
        raise r.fail(
            "status", f"{status_raw!r} is not current, superseded or entered-in-error", code="value"
        ) from None

    subject = r.obj(res.get("subject"), "subject")
    assert subject is not None
    sid = r.obj(subject.get("identifier"), "subject.identifier")
    assert sid is not None
    system = r.req_text(sid.get("system"), "subject.identifier.system")
    if system not in _PATIENT_SYSTEMS:
        raise r.fail(
            "subject.identifier.system",
            f"{system!r} is not a Norwegian national identity number system "
            "(urn:oid:2.16.578.1.12.4.1.4.1, .2 or .3)",
            code="value",
        )
    try:
        patient_id = NationalIdentityNumber(
            r.req_text(sid.get("value"), "subject.identifier.value")
        )
    except InvalidIdentifier as exc:
        raise InvalidIdentifier(exc.message, expression=f"{at}.subject.identifier.value") from None
    if patient_id.system != _PATIENT_SYSTEMS[system]:
        raise r.fail(
            "subject.identifier.system",
            f"the number is a {patient_id.kind.value} but the system is {system}",
            code="value",
        )

    categories = r.lst(res.get("category"), "category")
    if not categories:
        raise r.fail("category", "is required (classCode)", code="required")
    labels = r.lst(res.get("securityLabel"), "securityLabel")
    contents = r.lst(res.get("content"), "content")
    if not contents:
        raise r.fail("content", "is required", code="required")
    content = r.obj(contents[0], "content[0]")
    assert content is not None
    att = r.obj(content.get("attachment"), "content[0].attachment")
    assert att is not None
    att_exts = _extension_map(r, att.get("extension"), "content[0].attachment.extension")
    mime = r.req_text(att.get("contentType"), "content[0].attachment.contentType", limit=128)
    declared_size = r.integer(att.get("size"), "content[0].attachment.size")
    sha256_ext = att_exts.get(EXT_SHA256) or exts.get(EXT_SHA256)
    declared_sha256 = None
    if sha256_ext is not None:
        declared_sha256 = r.req_text(
            sha256_ext.get("valueString"), "content[0].attachment.extension[document-sha256]"
        ).lower()
    declared_sha1 = None if att.get("hash") is None else _hex_sha1(r, att.get("hash"))

    if binary is not None:
        size = len(binary)
        hash_sha1 = hashlib.sha1(binary).hexdigest()
        hash_sha256 = hashlib.sha256(binary).hexdigest()
        if declared_size is not None and declared_size != size:
            raise r.fail(
                "content[0].attachment.size",
                f"size {declared_size} does not match the {size} bytes of the document",
                code="value",
            )
        if declared_sha1 is not None and declared_sha1 != hash_sha1:
            raise r.fail(
                "content[0].attachment.hash",
                "hash (SHA-1) does not match the document bytes",
                code="value",
            )
        if declared_sha256 is not None and declared_sha256 != hash_sha256:
            raise r.fail(
                "content[0].attachment.extension[document-sha256]",
                "SHA-256 hash does not match the document bytes",
                code="value",
            )
        check_mime_type(mime, binary, expression=f"{at}.content[0].attachment.contentType")
    else:
        if declared_size is None:
            raise r.fail("content[0].attachment.size", "is required", code="required")
        if declared_sha1 is None:
            raise r.fail("content[0].attachment.hash", "is required", code="required")
        if declared_sha256 is None:
            raise r.fail(
                "content[0].attachment.extension[document-sha256]", "is required", code="required"
            )
        size, hash_sha1, hash_sha256 = declared_size, declared_sha1, declared_sha256

    created = r.moment(att.get("creation"), "content[0].attachment.creation", required=False)
    if created is None:
        created = r.moment(res.get("date"), "date")
    assert created is not None

    ctx = r.obj(res.get("context"), "context")
    assert ctx is not None
    period = r.obj(ctx.get("period"), "context.period", required=False) or {}
    related: list[str] = []
    for i, rel in enumerate(r.lst(ctx.get("related"), "context.related")):
        rel_obj = r.obj(rel, f"context.related[{i}]")
        assert rel_obj is not None
        ident = r.obj(rel_obj.get("identifier"), f"context.related[{i}].identifier")
        assert ident is not None
        related.append(_reference_id(r, ident, f"context.related[{i}].identifier"))

    replaces: DocumentUniqueId | None = None
    for i, rel in enumerate(r.lst(res.get("relatesTo"), "relatesTo")):
        rel_obj = r.obj(rel, f"relatesTo[{i}]")
        assert rel_obj is not None
        if rel_obj.get("code") != "replaces":
            raise r.fail(
                f"relatesTo[{i}].code",
                f"{str(rel_obj.get('code'))[:40]!r} is not supported; only replaces",
                code="not-supported",
            )
        target = r.obj(rel_obj.get("target"), f"relatesTo[{i}].target")
        assert target is not None
        ident = r.obj(target.get("identifier"), f"relatesTo[{i}].target.identifier")
        assert ident is not None
        path = f"relatesTo[{i}].target.identifier.value"
        try:
            replaces = DocumentUniqueId(r.req_text(ident.get("value"), path))
        except InvalidIdentifier as exc:
            raise InvalidIdentifier(exc.message, expression=f"{at}.{path}") from None

    release = exts.get(EXT_CITIZEN_RELEASE_TIME)
    submitted = exts.get(EXT_SUBMISSION_TIME)
    repository = exts.get(EXT_REPOSITORY_UNIQUE_ID)
    try:
        repository_id = (
            None
            if repository is None
            else RepositoryUniqueId.parse(
                r.req_text(repository.get("valueOid"), "extension[repository-unique-id]")
            )
        )
    except InvalidIdentifier as exc:
        raise InvalidIdentifier(
            exc.message, expression=f"{at}.extension[repository-unique-id]"
        ) from None

    try:
        entry = DocumentEntry(
            unique_id=unique_id,
            entry_uuid=entry_uuid,
            patient_id=patient_id,
            class_code=r.concept(categories[0], "category[0]"),
            type_code=r.concept(res.get("type"), "type"),
            confidentiality_codes=tuple(
                r.concept(label, f"securityLabel[{i}]") for i, label in enumerate(labels)
            ),
            format_code=r.coding(content.get("format"), "content[0].format"),
            mime_type=mime,
            hash_sha256=hash_sha256,
            hash_sha1=hash_sha1,
            size=size,
            creation_time=created,
            title=r.req_text(
                att.get("title"), "content[0].attachment.title", limit=MAX_TITLE_LENGTH
            ),
            language_code=r.req_text(att.get("language"), "content[0].attachment.language"),
            healthcare_facility_type=r.concept(ctx.get("facilityType"), "context.facilityType"),
            practice_setting=r.concept(ctx.get("practiceSetting"), "context.practiceSetting"),
            authors=_authors(r, res),
            event_codes=tuple(
                r.concept(ev, f"context.event[{i}]")
                for i, ev in enumerate(r.lst(ctx.get("event"), "context.event"))
            ),
            service_start_time=r.moment(
                period.get("start"), "context.period.start", required=False
            ),
            service_stop_time=r.moment(period.get("end"), "context.period.end", required=False),
            status=status,
            replaces=replaces,
            reference_ids=tuple(related),
            citizen_release_time=None
            if release is None
            else r.moment(release.get("valueDateTime"), "extension[citizen-release-time]"),
            repository_unique_id=repository_id,
            home_community_id=_home_community(r, exts.get("hcid")),
            submission_time=None
            if submitted is None
            else r.moment(submitted.get("valueInstant"), "extension[submission-time]"),
        )
        return validate_codes(entry) if check_codes else entry
    except DomainError as exc:
        if exc.expression is not None and exc.expression.startswith(at):
            raise
        where = _ENTRY_EXPRESSIONS.get(exc.expression or "", exc.expression)
        raise type(exc)(exc.message, expression=f"{at}.{where}" if where else at) from None


# --- ITI-68 retrieve URLs ----------------------------------------------------------------------

_TOKEN_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


def _escape(value: str) -> str:
    """Escape every character outside [A-Za-z0-9.-] as _XX per UTF-8 byte (no '%' at all)."""
    out: list[str] = []
    for ch in value:
        if ch in _TOKEN_SAFE:
            out.append(ch)
        else:
            out.extend(f"_{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def _unescape(value: str) -> str:
    raw = bytearray()
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "_":
            pair = value[i + 1 : i + 3]
            if len(pair) != 2 or not all(c in "0123456789ABCDEF" for c in pair):
                raise BadRequest("retrieve token has a broken escape", expression="Binary.id")
            raw.append(int(pair, 16))
            i += 3
        elif ch in _TOKEN_SAFE:
            raw.append(ord(ch))
            i += 1
        else:
            raise BadRequest(
                f"retrieve token has an illegal character {ch!r}", expression="Binary.id"
            )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("retrieve token is not UTF-8", expression="Binary.id") from None


@dataclass(frozen=True, slots=True)
class RetrieveKey:
    """What an ITI-68 Binary id names: homeCommunityId, repositoryUniqueId and uniqueId.

    The token is "<hcid-oid>~<repository-oid>~<uniqueId>", the uniqueId escaped as _XX outside
    [A-Za-z0-9.-], so a token is URL-safe, contains no '%' (a router that percent-decodes the
    path cannot corrupt it) and the hub can route on its first part.
    """

    home_community_id: HomeCommunityId
    repository_unique_id: RepositoryUniqueId
    unique_id: DocumentUniqueId

    def token(self) -> str:
        """Return the URL-safe Binary id."""
        return (
            f"{self.home_community_id.oid.value}~{self.repository_unique_id.oid.value}~"
            f"{_escape(self.unique_id.value)}"
        )

    @classmethod
    def parse(cls, token: str) -> RetrieveKey:
        """Parse a Binary id; raise BadRequest (400) if it is not a retrieve token."""
        parts = token.split("~")
        if len(parts) != 3 or not all(parts):
            raise BadRequest(
                f"{token[:80]!r} is not a document retrieve token "
                "(<homeCommunityId>~<repositoryUniqueId>~<uniqueId>)",
                expression="Binary.id",
            )
        try:
            return cls(
                HomeCommunityId.parse(f"urn:oid:{parts[0]}"),
                RepositoryUniqueId.parse(parts[1]),
                DocumentUniqueId(_unescape(parts[2])),
            )
        except InvalidIdentifier as exc:
            raise BadRequest(f"retrieve token: {exc.message}", expression="Binary.id") from None


def retrieve_url(
    base: str,
    home_community_id: HomeCommunityId,
    repository_unique_id: RepositoryUniqueId,
    unique_id: DocumentUniqueId,
) -> str:
    """Return the ITI-68 URL "<base>/Binary/<token>" of a document."""
    key = RetrieveKey(home_community_id, repository_unique_id, unique_id)
    return f"{base.rstrip('/')}/Binary/{key.token()}"


def parse_retrieve_path(url_or_path: str) -> RetrieveKey:
    """Return the RetrieveKey of an ITI-68 URL or path ending in /Binary/<token>."""
    path = url_or_path.split("?", 1)[0].split("#", 1)[0]
    marker = path.rfind("/Binary/")
    if marker < 0:
        raise BadRequest(f"{url_or_path[:80]!r} is not a /Binary/<token> URL")
    return RetrieveKey.parse(path[marker + len("/Binary/") :])
