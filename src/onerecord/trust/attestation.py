"""The attestation (`nhn:tillitsrammeverk:parameters`): parse, validate and enrich it.

A client sends the narrow form (codes as code+system, identifiers as id+system) in RAR
`authorization_details`; the token service validates it as HelseID does, fills names, texts,
the practitioner's identifier and HPR number from the registers, and puts the enriched object
into the access token under the claim of the same name.

Decisions (TRUST-FRAMEWORK §1.1, §8): snake_case keys only (`care_relationship`, `patients`);
`decision_ref.description` is refused, as HelseID refuses it (A8); a patient identifier in
`patients[]` is refused (A10, NHN policy) — the project's `identifier_digest` binds the patient
instead (patient_binding.py); OIDs are accepted bare or with `urn:oid:` and emitted with it.

References: Tillitsrammeverk informasjons_og_datamodell.md v1.1 §4.2 (attributes);
forretningsregler ATT-10, ATT-11, ATT-12, ATT-29, ATT-32, ATT-38…43, ATT-48;
misc/validering_av_attributter.md (decision_ref.id charset and length); RFC 9396 §2, §5.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson

from onerecord.domain import (
    DNR_SYSTEM,
    FNR_SYSTEM,
    HNR_SYSTEM,
    HPR_SYSTEM,
    ORGNR_SYSTEM,
    RESH_SYSTEM,
    Coding,
    HprNumber,
    IdentityKind,
    InvalidIdentifier,
    NationalIdentityNumber,
    OrganisationNumber,
    code_tables,
    normalise_system,
    strip_urn_oid,
)
from onerecord.trust.emergency import EMERGENCY_MEMBER, EmergencyGrant, parse_emergency_grant
from onerecord.trust.errors import InvalidAuthorizationDetails

__all__ = [
    "ATTESTATION_TYPE",
    "AUTHORIZATION_SYSTEM",
    "HEALTHCARE_SERVICE_SYSTEMS",
    "PURPOSE_OF_USE_CODES",
    "PURPOSE_OF_USE_SYSTEM",
    "AttestCoding",
    "AttestIdentifier",
    "Attestation",
    "CareRelationship",
    "DecisionRef",
    "OrganisationRecord",
    "PatientRef",
    "PractitionerPart",
    "PractitionerRecord",
    "Registers",
    "enrich",
    "parse_attestation_claim",
    "parse_authorization_details",
]

ATTESTATION_TYPE = "nhn:tillitsrammeverk:parameters"
PURPOSE_OF_USE_SYSTEM = "urn:oid:2.16.840.1.113883.1.11.20448"
PURPOSE_OF_USE_CODES = frozenset({"TREAT", "ETREAT", "COC", "BTG"})
AUTHORIZATION_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.9060"
HEALTHCARE_SERVICE_SYSTEMS = frozenset(
    f"urn:oid:2.16.578.1.12.4.1.1.{n}"
    for n in (8655, 8627, 8451, 8668, 8663, 8662, 8664, 8666, 7750, 8254)
)
_MAX_TOA = 253_402_300_799  # 9999-12-31T23:59:59Z, as trust.jose.MAX_NUMERIC_DATE
_DECISION_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_BRREG = "https://www.brreg.no"
_SKATTEETATEN = "https://www.skatteetaten.no"
_HPR_AUTHORITY = "https://www.helsedirektoratet.no"
_PERSON_SYSTEMS = {IdentityKind.FNR: FNR_SYSTEM, IdentityKind.DNR: DNR_SYSTEM}


class PractitionerRecord(Protocol):
    """What the register knows about a person who may act as health personnel."""

    @property
    def given(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def hpr(self) -> HprNumber | None: ...
    @property
    def categories(self) -> tuple[str, ...]: ...
    @property
    def employments(self) -> tuple[str, ...]:
        """The orgnr of each unit (underenhet) the person works at (HPR employment)."""
        ...


class OrganisationRecord(Protocol):
    """What Enhetsregisteret and the Helsenett member list know about an organisation."""

    @property
    def name(self) -> str: ...
    @property
    def legal_entity(self) -> object:
        """The orgnr of the hovedenhet this unit belongs to (itself for a hovedenhet)."""
        ...

    @property
    def helsenett_member(self) -> bool: ...
    @property
    def departments(self) -> tuple[str, ...]:
        """The RESH ids of the unit's departments."""
        ...

    @property
    def department_names(self) -> tuple[tuple[str, str], ...]:
        """(RESH id, name) of the unit's departments, as the RESH register names them."""
        ...


class Registers(Protocol):
    """The register lookups the token service needs (HPR, Folkeregisteret, Enhetsregisteret)."""

    def practitioner(self, nin: str) -> PractitionerRecord | None: ...
    def organisation(self, orgnr: str) -> OrganisationRecord | None: ...


@dataclass(frozen=True, slots=True)
class AttestCoding:
    """A coded value: code, system (urn:oid form) and, once enriched, text."""

    code: str
    system: str
    text: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"code": self.code, "system": self.system}
        if self.text is not None:
            out["text"] = self.text
        return out


@dataclass(frozen=True, slots=True)
class AttestIdentifier:
    """An identifier: id, system (urn:oid form) and, once enriched, name and authority."""

    id: str
    system: str
    name: str | None = None
    authority: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"id": self.id, "system": self.system}
        if self.name is not None:
            out["name"] = self.name
        if self.authority is not None:
            out["authority"] = self.authority
        return out


@dataclass(frozen=True, slots=True)
class PractitionerPart:
    """`practitioner`: who acts, for which legal entity, point of care and department."""

    legal_entity: AttestIdentifier
    point_of_care: AttestIdentifier
    authorization: AttestCoding | None = None
    department: AttestIdentifier | None = None
    identifier: AttestIdentifier | None = None
    hpr_nr: AttestIdentifier | None = None


@dataclass(frozen=True, slots=True)
class DecisionRef:
    """`care_relationship.decision_ref`: the local access decision (ATT-46…48)."""

    id: str
    user_selected: bool


@dataclass(frozen=True, slots=True)
class CareRelationship:
    """`care_relationship`: why the access happens."""

    purpose_of_use: AttestCoding
    decision_ref: DecisionRef
    healthcare_service: AttestCoding | None = None
    purpose_of_use_details: AttestCoding | None = None


@dataclass(frozen=True, slots=True)
class PatientRef:
    """One `patients[]` element: the patient's point of care and the binding digest."""

    point_of_care: AttestIdentifier | None = None
    department: AttestIdentifier | None = None
    identifier_digest: str | None = None


@dataclass(frozen=True, slots=True)
class Attestation:
    """The whole attestation; `toa` is the time of attestation (Unix seconds, ATT-58)."""

    practitioner: PractitionerPart
    care_relationship: CareRelationship
    patients: tuple[PatientRef, ...] = ()
    toa: int | None = None
    emergency: EmergencyGrant | None = None
    """The scope of an emergency override (project extension, trust.emergency; issue 11 #7)."""

    def to_claim(self) -> dict[str, Any]:
        """Return the JSON object carried in the access token claim."""
        p, c = self.practitioner, self.care_relationship
        prac: dict[str, Any] = {}
        for name in ("identifier", "hpr_nr", "authorization"):
            value = getattr(p, name)
            if value is not None:
                prac[name] = value.to_json()
        prac["legal_entity"] = p.legal_entity.to_json()
        prac["point_of_care"] = p.point_of_care.to_json()
        if p.department is not None:
            prac["department"] = p.department.to_json()
        care: dict[str, Any] = {}
        if c.healthcare_service is not None:
            care["healthcare_service"] = c.healthcare_service.to_json()
        care["purpose_of_use"] = c.purpose_of_use.to_json()
        if c.purpose_of_use_details is not None:
            care["purpose_of_use_details"] = c.purpose_of_use_details.to_json()
        care["decision_ref"] = {
            "id": c.decision_ref.id,
            "user_selected": c.decision_ref.user_selected,
        }
        patients = []
        for pat in self.patients:
            entry: dict[str, Any] = {}
            if pat.point_of_care is not None:
                entry["point_of_care"] = pat.point_of_care.to_json()
            if pat.department is not None:
                entry["department"] = pat.department.to_json()
            if pat.identifier_digest is not None:
                entry["identifier_digest"] = pat.identifier_digest
            patients.append(entry)
        out: dict[str, Any] = {
            "type": ATTESTATION_TYPE,
            "practitioner": prac,
            "care_relationship": care,
            "patients": patients,
        }
        if self.toa is not None:
            out["toa"] = self.toa
        if self.emergency is not None:
            out[EMERGENCY_MEMBER] = self.emergency.to_json()
        return out


def _fail(description: str) -> InvalidAuthorizationDetails:
    return InvalidAuthorizationDetails(description)


class _Reader:
    """Parses the JSON shape; `strict` = the narrow client form (no names, no texts)."""

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict

    def obj(self, value: Any, where: str, allowed: set[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise _fail(f"{where} must be a JSON object")
        unknown = set(value) - allowed
        if unknown:
            raise _fail(f"{where} has unknown member(s) {sorted(unknown)} (snake_case only)")
        return value

    def text(self, value: Any, where: str, max_len: int = 256) -> str:
        if not isinstance(value, str) or not value.strip() or len(value) > max_len:
            raise _fail(f"{where} must be a non-empty string of at most {max_len} characters")
        return value

    def coding(self, value: Any, where: str) -> AttestCoding:
        keys = {"code", "system"} if self.strict else {"code", "system", "text", "assigner"}
        obj = self.obj(value, where, keys)
        text = obj.get("text")
        return AttestCoding(
            code=self.text(obj.get("code"), f"{where}.code", 64),
            system=normalise_system(self.text(obj.get("system"), f"{where}.system")),
            text=text if isinstance(text, str) else None,
        )

    def identifier(self, value: Any, where: str) -> AttestIdentifier:
        keys = {"id", "system"} if self.strict else {"id", "system", "name", "authority"}
        obj = self.obj(value, where, keys)
        name, authority = obj.get("name"), obj.get("authority")
        return AttestIdentifier(
            id=self.text(obj.get("id"), f"{where}.id", 64),
            system=normalise_system(self.text(obj.get("system"), f"{where}.system")),
            name=name if isinstance(name, str) else None,
            authority=authority if isinstance(authority, str) else None,
        )


def _in_code_list(coding: AttestCoding, value_set: str, where: str) -> None:
    """Refuse a code that is not in its code list, as HelseID does (TRUST-FRAMEWORK §3.2).

    The same check runs on the attestation in a token at the hub and the sources, so a code the
    token service would refuse is refused there too (defence in depth).
    """
    if not code_tables().contains(value_set, Coding(coding.system, coding.code)):
        raise _fail(f"{where}: code {coding.code!r} is not in its code list ({coding.system})")


def _orgnr(ident: AttestIdentifier, where: str) -> str:
    if strip_urn_oid(ident.system) != ORGNR_SYSTEM:
        raise _fail(f"{where}.system must be Enhetsregisteret (urn:oid:{ORGNR_SYSTEM})")
    try:
        return OrganisationNumber(ident.id).value
    except InvalidIdentifier as exc:
        raise _fail(f"{where}.id: {exc.message}") from None


def _parse(obj: Mapping[str, Any], *, strict: bool) -> Attestation:
    r = _Reader(strict=strict)
    top = r.obj(
        obj,
        "authorization_details",
        {
            "type",
            "practitioner",
            "care_relationship",
            "patients",
            "toa",
            "version",
            EMERGENCY_MEMBER,
        },
    )
    if top.get("type") != ATTESTATION_TYPE:
        raise _fail(f"authorization_details.type must be {ATTESTATION_TYPE}")

    pkeys = {"authorization", "legal_entity", "point_of_care", "department", "identifier"}
    if not strict:
        pkeys.add("hpr_nr")
    prac = r.obj(top.get("practitioner"), "practitioner", pkeys)
    if "legal_entity" not in prac or "point_of_care" not in prac:
        raise _fail("practitioner.legal_entity and practitioner.point_of_care are required")
    legal_entity = r.identifier(prac["legal_entity"], "practitioner.legal_entity")
    point_of_care = r.identifier(prac["point_of_care"], "practitioner.point_of_care")
    _orgnr(legal_entity, "practitioner.legal_entity")
    _orgnr(point_of_care, "practitioner.point_of_care")
    authorization = None
    if prac.get("authorization") is not None:
        authorization = r.coding(prac["authorization"], "practitioner.authorization")
        if authorization.system != AUTHORIZATION_SYSTEM:
            raise _fail(f"practitioner.authorization.system must be {AUTHORIZATION_SYSTEM}")
        _in_code_list(authorization, "hprCategory", "practitioner.authorization")
    department = None
    if prac.get("department") is not None:
        department = r.identifier(prac["department"], "practitioner.department")
    identifier = None
    if prac.get("identifier") is not None:
        identifier = r.identifier(prac["identifier"], "practitioner.identifier")
        _person_number(identifier)
    hpr_nr = None
    if prac.get("hpr_nr") is not None:
        hpr_nr = r.identifier(prac["hpr_nr"], "practitioner.hpr_nr")

    care = r.obj(
        top.get("care_relationship"),
        "care_relationship",
        {"healthcare_service", "purpose_of_use", "purpose_of_use_details", "decision_ref"},
    )
    if care.get("purpose_of_use") is None:
        raise _fail("care_relationship.purpose_of_use is required (ATT-38)")
    purpose = r.coding(care["purpose_of_use"], "care_relationship.purpose_of_use")
    if purpose.system != PURPOSE_OF_USE_SYSTEM or purpose.code not in PURPOSE_OF_USE_CODES:
        raise _fail(
            "care_relationship.purpose_of_use must be TREAT, ETREAT, COC or BTG from "
            f"{PURPOSE_OF_USE_SYSTEM} (ATT-38…41)"
        )
    service = details = None
    if care.get("healthcare_service") is not None:
        service = r.coding(care["healthcare_service"], "care_relationship.healthcare_service")
        if service.system not in HEALTHCARE_SERVICE_SYSTEMS:
            raise _fail("care_relationship.healthcare_service.system is not a known code system")
        _in_code_list(service, "healthcareService", "care_relationship.healthcare_service")
    if care.get("purpose_of_use_details") is not None:
        details = r.coding(
            care["purpose_of_use_details"], "care_relationship.purpose_of_use_details"
        )
        _in_code_list(details, "purposeOfUseDetails", "care_relationship.purpose_of_use_details")
    if service is None and details is None:
        raise _fail("care_relationship needs healthcare_service or purpose_of_use_details (ATT-43)")
    dref = r.obj(
        care.get("decision_ref"),
        "care_relationship.decision_ref",
        {"id", "user_selected", "description"},
    )
    if "description" in dref:
        raise _fail("care_relationship.decision_ref.description is not accepted")
    dref_id = dref.get("id")
    if not isinstance(dref_id, str) or not _DECISION_ID.match(dref_id):
        raise _fail("care_relationship.decision_ref.id must be 1–64 of A-Z a-z 0-9 _ . -")
    user_selected = dref.get("user_selected")
    if not isinstance(user_selected, bool):
        raise _fail("care_relationship.decision_ref.user_selected must be a boolean (ATT-48)")

    raw_patients = top.get("patients")
    if not isinstance(raw_patients, list):
        raise _fail("patients must be an array (it may be empty, ATT-6)")
    patients = []
    for i, raw in enumerate(raw_patients):
        where = f"patients[{i}]"
        if isinstance(raw, Mapping) and "identifier" in raw:
            raise _fail(f"{where}.identifier: no patient identifier may be sent to the STS")
        pat = r.obj(raw, where, {"point_of_care", "department", "identifier_digest"})
        pat_poc = pat_dep = None
        if pat.get("point_of_care") is not None:
            pat_poc = r.identifier(pat["point_of_care"], f"{where}.point_of_care")
            _orgnr(pat_poc, f"{where}.point_of_care")
        if pat.get("department") is not None:
            pat_dep = r.identifier(pat["department"], f"{where}.department")
        digest = pat.get("identifier_digest")
        if digest is not None and (
            not isinstance(digest, str) or not re.fullmatch(r"[A-Za-z0-9_-]{43}", digest)
        ):
            raise _fail(f"{where}.identifier_digest must be base64url SHA-256 (43 characters)")
        patients.append(PatientRef(pat_poc, pat_dep, digest))

    toa = top.get("toa")
    if toa is not None and (
        not isinstance(toa, int) or isinstance(toa, bool) or not 0 <= toa <= _MAX_TOA
    ):
        raise _fail("toa must be Unix seconds (integer)")
    emergency = None
    if top.get(EMERGENCY_MEMBER) is not None:
        emergency = parse_emergency_grant(top[EMERGENCY_MEMBER])
        if purpose.code != "BTG":
            raise _fail(f"{EMERGENCY_MEMBER} goes only with purpose_of_use BTG (issue 11, #7)")
    return Attestation(
        practitioner=PractitionerPart(
            legal_entity=legal_entity,
            point_of_care=point_of_care,
            authorization=authorization,
            department=department,
            identifier=identifier,
            hpr_nr=hpr_nr,
        ),
        care_relationship=CareRelationship(
            purpose_of_use=purpose,
            decision_ref=DecisionRef(dref_id, user_selected),
            healthcare_service=service,
            purpose_of_use_details=details,
        ),
        patients=tuple(patients),
        toa=toa,
        emergency=emergency,
    )


def _person_number(identifier: AttestIdentifier) -> NationalIdentityNumber:
    """Return the practitioner's F- or D-number; refuse H-numbers and others (ATT-10)."""
    system = strip_urn_oid(identifier.system)
    if system not in (FNR_SYSTEM, DNR_SYSTEM):
        kind = "an H-number" if system == HNR_SYSTEM else "not an F- or D-number system"
        raise _fail(f"practitioner.identifier.system is {kind} (ATT-10)")
    try:
        nin = NationalIdentityNumber(identifier.id)
    except InvalidIdentifier as exc:
        raise _fail(f"practitioner.identifier.id: {exc.message}") from None
    if nin.kind not in _PERSON_SYSTEMS or _PERSON_SYSTEMS[nin.kind] != system:
        raise _fail("practitioner.identifier is not an F- or D-number of its system (ATT-10)")
    return nin


def _select(raw: Any) -> Mapping[str, Any]:
    if isinstance(raw, str | bytes):
        try:
            raw = orjson.loads(raw)  # strict JSON: no NaN, nesting bounded
        except ValueError:
            raise _fail("authorization_details is not JSON") from None
    items = raw if isinstance(raw, list) else [raw]
    found = [i for i in items if isinstance(i, Mapping) and i.get("type") == ATTESTATION_TYPE]
    if len(found) != 1:
        raise _fail(f"authorization_details must hold exactly one {ATTESTATION_TYPE} object")
    return found[0]


def _parent_of(record: OrganisationRecord, orgnr: str) -> str:
    parent = record.legal_entity
    if isinstance(parent, bool) or parent is None:
        return orgnr
    return str(getattr(parent, "orgnr", parent))


def parse_authorization_details(raw: Any, *, registers: Registers) -> Attestation:
    """Parse and validate a client's attestation as HelseID does; raise on the first fault.

    Person-dependent checks (HPR authorisation, identifier = user) are made by `enrich`.
    References: RFC 9396 §2; TRUST-FRAMEWORK §2.1, §3.2 (what HelseID validates), ATT-12.
    """
    attestation = _parse(_select(raw), strict=True)
    p = attestation.practitioner
    legal = registers.organisation(p.legal_entity.id)
    if legal is None or _parent_of(legal, p.legal_entity.id) != p.legal_entity.id:
        raise _fail("practitioner.legal_entity is not a legal entity in Enhetsregisteret")
    if not legal.helsenett_member:
        raise _fail("practitioner.legal_entity is not a Helsenett member (ATT-12)")
    poc = registers.organisation(p.point_of_care.id)
    if poc is None or _parent_of(poc, p.point_of_care.id) != p.legal_entity.id:
        raise _fail("practitioner.point_of_care is not a unit of the legal entity (ATT-18)")
    department = p.department
    if (
        department is not None
        and strip_urn_oid(department.system) == RESH_SYSTEM
        and department.id not in poc.departments
    ):
        raise _fail("practitioner.department is not a department of the point of care (ATT-21)")
    for i, pat in enumerate(attestation.patients):
        if pat.point_of_care is not None and registers.organisation(pat.point_of_care.id) is None:
            raise _fail(f"patients[{i}].point_of_care is not in Enhetsregisteret")
    return attestation


def parse_attestation_claim(claim: Any) -> Attestation:
    """Parse the enriched attestation from a validated access token (no register lookups)."""
    if not isinstance(claim, Mapping):
        raise _fail(f"{ATTESTATION_TYPE} claim must be a JSON object")
    return _parse(claim, strict=False)


def _named(ident: AttestIdentifier, registers: Registers) -> AttestIdentifier:
    org = registers.organisation(ident.id)
    return replace(ident, name=org.name if org else ident.name, authority=_BRREG)


def _named_department(
    department: AttestIdentifier | None, point_of_care: str, registers: Registers
) -> AttestIdentifier | None:
    """Name a RESH department from the register, as the units are named (§1.1, ATT-21).

    The client sends the narrow form (id and system only), so without this the department
    reached the regions' audit, and the citizen's access log, without a name.
    """
    if department is None or strip_urn_oid(department.system) != RESH_SYSTEM:
        return department
    org = registers.organisation(point_of_care)
    names = dict(org.department_names) if org is not None else {}
    return replace(department, name=names.get(department.id, department.name))


def enrich(
    attestation: Attestation,
    registers: Registers,
    user: NationalIdentityNumber,
    *,
    authorization_texts: Mapping[str, str] | None = None,
) -> Attestation:
    """Check the attestation against the authenticated user and fill what HelseID fills.

    Adds practitioner.identifier (with name) and hpr_nr from the registers, organisation
    names, and the authorisation text. References: TRUST-FRAMEWORK §1.1, §8; ATT-11, ATT-29,
    ATT-32.
    """
    p = attestation.practitioner
    if user.kind is IdentityKind.HNR:
        raise _fail("the authenticated user has an H-number (ATT-10)")
    if p.identifier is not None and _person_number(p.identifier) != user:
        raise _fail("practitioner.identifier is not the authenticated user (ATT-11)")
    person = registers.practitioner(user.value)
    if person is None:
        raise _fail("the authenticated user is not in the practitioner register")
    if p.point_of_care.id not in person.employments:
        raise _fail(
            "practitioner.point_of_care is not a unit the user works at (HPR employment, ATT-18)"
        )
    if p.authorization is not None:
        if person.hpr is None:
            raise _fail("practitioner.authorization given, but the user has no HPR entry")
        if p.authorization.code not in person.categories:
            raise _fail(
                f"practitioner.authorization {p.authorization.code} is not in HPR for this "
                "user (ATT-32)"
            )
    if p.hpr_nr is not None and (person.hpr is None or p.hpr_nr.id != person.hpr.value):
        raise _fail("practitioner.hpr_nr does not match HPR")
    name = f"{person.given} {person.family}"
    identifier = AttestIdentifier(
        id=user.value,
        system=f"urn:oid:{_PERSON_SYSTEMS[user.kind]}",
        name=name,
        authority=_SKATTEETATEN,
    )
    hpr_nr = None
    if person.hpr is not None:
        hpr_nr = AttestIdentifier(
            id=person.hpr.value, system=f"urn:oid:{HPR_SYSTEM}", authority=_HPR_AUTHORITY
        )
    authorization = p.authorization
    if authorization is not None and authorization_texts is not None:
        authorization = replace(authorization, text=authorization_texts.get(authorization.code))
    practitioner = replace(
        p,
        identifier=identifier,
        hpr_nr=hpr_nr,
        authorization=authorization,
        legal_entity=_named(p.legal_entity, registers),
        point_of_care=_named(p.point_of_care, registers),
        department=_named_department(p.department, p.point_of_care.id, registers),
    )
    patients = tuple(
        replace(pat, point_of_care=_named(pat.point_of_care, registers))
        if pat.point_of_care is not None
        else pat
        for pat in attestation.patients
    )
    care = attestation.care_relationship
    care = replace(
        care,
        healthcare_service=_worded(care.healthcare_service),
        purpose_of_use_details=_worded(care.purpose_of_use_details),
    )
    return replace(
        attestation, practitioner=practitioner, patients=patients, care_relationship=care
    )


def _worded(coding: AttestCoding | None) -> AttestCoding | None:
    """Fill a code's text from the code tables (Volven), as HelseID fills names (§1.1).

    The regions' audit and the citizen's access log show it («Psykisk helsevern»).
    """
    if coding is None or coding.text is not None:
        return coding
    return replace(coding, text=code_tables().display(coding.system, coding.code))
