"""The trust-framework attributes of a XUA assertion, mapped onto the policy's own caller types.

A health worker's assertion (HelseID's SAML issuer) becomes the same `HealthPersonnel` principal
with the same `Attestation` the MHD path builds from an access token; a citizen's (helsenorge)
becomes the same `Citizen`. The access policy, the audit and the answers are therefore the MHD
path's. The claims a JWT would carry (`nhn:tillitsrammeverk:parameters`, pid, HPR number,
security level, scope) are put into `AccessTokenClaims.raw` in the JWT's own shape, so that
everything downstream (the hub's assertion, the audit) reads them as it does for MHD.

Attribute names (TRUST-FRAMEWORK §2.4): old (v1.x) and new names arrive together; both are read,
and every name of one attribute must agree (code + system, id + root), else the assertion is
refused as ambiguous. HL7 v3 values (Role, PurposeOfUse, id, decision-ref …) arrive as escaped
XML text; they are read leniently — an undeclared `xsi` or `tf` prefix is declared for them, a
`type=` is read as `xsi:type`, the element's namespace may be HL7 v3 or none — but
unambiguously: two different values of one attribute (`type="CE"` beside `xsi:type="II"`) are
refused, and a declared type must be the one expected (CE for codes, II for identifiers).

Which channel: `provider-identifier`'s root says who the subject is — HPR (…4.4) for health
personnel, F/D-number (…4.1/…4.2) for a citizen.

References: TRUST-FRAMEWORK §1.3 (attestation), §2.4 (SAML attributes), §4.3 (ACP equivalents of
the access basis), §5.2 (representation ACPs); ATT-4 (patient binding), ATT-9 (level 4), ATT-19
(point of care = legal entity when there is no sub-unit); IHE ITI TF-2 3.40.4.1 (XUA); HL7 v3 CE
and II data types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from onerecord.domain import (
    DNR_SYSTEM,
    FNR_SYSTEM,
    HNR_SYSTEM,
    HPR_SYSTEM,
    HomeCommunityId,
    InvalidIdentifier,
    NationalIdentityNumber,
    Oid,
    normalise_system,
    strip_urn_oid,
)
from onerecord.domain.xml import hardened_xml_parser
from onerecord.trust.access_token import (
    HPR_NUMBER_CLAIM,
    PID_CLAIM,
    SECURITY_LEVEL_CLAIM,
    AccessTokenClaims,
    Citizen,
    HealthPersonnel,
    Principal,
)
from onerecord.trust.attestation import (
    ATTESTATION_TYPE,
    Attestation,
    parse_attestation_claim,
)
from onerecord.trust.errors import InvalidAuthorizationDetails
from onerecord.trust.principal import (
    READ_DOCUMENTREFERENCES_SCOPE,
    AccessBasis,
    RelationKind,
    Representation,
)
from onerecord.xca.errors import SamlProblem, SamlRefused
from onerecord.xca.saml import SamlAssertion
from onerecord.xca.xml import HL7V3, XSI

__all__ = [
    "ACP_ACCESS_BASIS",
    "ACP_RELATION",
    "ATTRIBUTE_NAMES",
    "HCP_SCOPE",
    "Hl7Code",
    "Hl7Id",
    "SamlPatient",
    "XuaCaller",
    "caller_from_assertion",
    "parse_cx",
    "patient_matches",
    "read_hl7_value",
]

# Every trust-framework attribute: the new (v2.x) name first, then the old names it replaces.
ATTRIBUTE_NAMES: dict[str, tuple[str, ...]] = {
    "subject_name": (
        "urn:oasis:names:tc:xacml:1.0:subject:subject-id",
        "urn:oasis:names:tc:xspa:1.0:subject:subject-id",
    ),
    "npi": ("urn:oasis:names:tc:xspa:1.0:subject:npi", "urn:oasis:names:tc:xspa:2.0:subject:npi"),
    "provider_identifier": ("urn:ihe:iti:xua:2017:subject:provider-identifier",),
    "role": (
        "urn:oasis:names:tc:xacml:2.0:subject:role",
        "urn:oasis:names:tc:xspa:1.0:subject:role",
    ),
    "organization": ("urn:oasis:names:tc:xspa:1.0:subject:organization",),
    "organization_id": ("urn:oasis:names:tc:xspa:1.0:subject:organization-id",),
    "child_organization": ("urn:oasis:names:tc:xspa:1.0:subject:child-organization",),
    "child_organization_name": ("urn:nhn:trust-framework:1.0:ext:subject:child-organization-name",),
    "facility": ("urn:oasis:names:tc:xspa:1.0:subject:facility",),
    "facility_name": ("urn:nhn:trust-framework:1.0:ext:subject:facility-name",),
    "healthcare_service": ("urn:nhn:trust-framework:1.0:ext:care-relationship:healthcare-service",),
    "purpose": (
        "urn:oasis:names:tc:xacml:2.0:action:purpose",
        "urn:oasis:names:tc:xspa:1.0:subject:purposeOfUse",
        "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse",  # helsenorge's spelling
    ),
    "purpose_details": (
        "urn:nhn:trust-framework:1.0:ext:care-relationship:purpose-of-use-details",
    ),
    "decision_ref": ("urn:nhn:trust-framework:1.0:ext:care-relationship:decision-ref",),
    "resource_id": (
        "urn:oasis:names:tc:xacml:1.0:resource:resource-id",
        "urn:oasis:names:tc:xacml:2.0:resource:resource-id",
    ),
    "resource_child_organization": ("urn:nhn:trust-framework:1.0:ext:resource:child-organization",),
    "resource_child_organization_name": (
        "urn:nhn:trust-framework:1.0:ext:resource:child-organization-name",
    ),
    "resource_facility": ("urn:nhn:trust-framework:1.0:ext:resource:facility",),
    "resource_facility_name": ("urn:nhn:trust-framework:1.0:ext:resource:facility-name",),
    "home_community_id": (
        "urn:ihe:iti:xca:2010:homeCommunityId",
        "urn:no:ehelse:saml:1.0:subject:homeCommunityId",
    ),
    "security_level": ("urn:no:ehelse:saml:1.0:subject:SecurityLevel", "SecurityLevel"),
    "scope": ("urn:no:ehelse:saml:1.0:subject:Scope", "Scope"),
    "client_id": ("urn:no:ehelse:saml:1.0:subject:client_id", "client_id"),
    "acp": ("urn:ihe:iti:xua:2012:acp",),
    "bppc_docid": ("urn:ihe:iti:bppc:2007:docid",),
}

HCP_SCOPE = "journaldokumenter_helsepersonell"
"""The SAML Scope of HelseID's document-sharing assertion; it stands for the Helsepersonelloven
§45 document list (READ_DOCUMENTREFERENCES_SCOPE). The MHD scope strings are also accepted
verbatim, so the hub can carry the kjernejournalforskriften scope to an XCA region."""

_ACP_ROOT = "2.16.578.1.12.4.1.7.2.1."
ACP_RELATION = {
    _ACP_ROOT + "1": RelationKind.PARENT,
    _ACP_ROOT + "2": RelationKind.PROXY,
    _ACP_ROOT + "3": RelationKind.PROXY_UNABLE_TO_CONSENT,
}
"""Citizen ACPs for representation (TRUST-FRAMEWORK §5.2)."""

ACP_ACCESS_BASIS = {
    _ACP_ROOT + "4": AccessBasis.UNNTAK,
    _ACP_ROOT + "5": AccessBasis.FORHOYET_SAMTYKKE,
    _ACP_ROOT + "6": AccessBasis.AKUTT,
    _ACP_ROOT + "7": AccessBasis.FORHOYET_AKUTT,
    _ACP_ROOT + "8": AccessBasis.SAMTYKKE,
}
"""Health-personnel ACPs as the access basis they stand for (TRUST-FRAMEWORK §4.3)."""

_SELF_ACPS = frozenset({_ACP_ROOT + "0"})
_PERSON_ROOTS = {FNR_SYSTEM, DNR_SYSTEM, HNR_SYSTEM}
_TF_NAMESPACE = "urn:nhn:trust-framework:1.0"
_MAX_FRAGMENT = 2048


def _refuse(message: str) -> SamlRefused:
    return SamlRefused(message, problem=SamlProblem.ATTRIBUTE)


@dataclass(frozen=True, slots=True)
class Hl7Code:
    """An HL7 v3 CE value: code, codeSystem (urn:oid form) and displayName."""

    code: str
    system: str
    display: str | None = None


@dataclass(frozen=True, slots=True)
class Hl7Id:
    """An HL7 v3 II value: extension and root (urn:oid form)."""

    extension: str
    root: str


def _fragment(text: str, what: str) -> Any:
    """Parse escaped HL7 XML with the undeclared prefixes the network uses declared for it."""
    if len(text) > _MAX_FRAGMENT:
        raise _refuse(f"{what} is too long")
    wrapped = f'<w xmlns:xsi="{XSI}" xmlns:tf="{_TF_NAMESPACE}">{text}</w>'.encode()
    try:
        root = etree.fromstring(wrapped, hardened_xml_parser(remove_comments=True))
    except (etree.LxmlError, ValueError):
        raise _refuse(f"{what} is not an HL7 v3 value") from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise _refuse(f"{what} is not an HL7 v3 value")
    children = [c for c in root if isinstance(c.tag, str)]
    if len(children) != 1 or (root.text or "").strip() or (children[0].tail or "").strip():
        raise _refuse(f"{what} must hold exactly one HL7 v3 element")
    element = children[0]
    namespace = etree.QName(element).namespace
    if namespace not in (None, HL7V3, _TF_NAMESPACE):
        raise _refuse(f"{what} is not in the HL7 v3 namespace")
    return element


def _attributes(element: Any, what: str) -> dict[str, str]:
    """Return the element's attributes by local name; refuse two different values of one name."""
    out: dict[str, str] = {}
    for name, value in element.attrib.items():
        local = etree.QName(name).localname
        if local in out and out[local] != value:
            raise _refuse(f"{what} has two different values for {local!r}")
        out[local] = value
    return out


def read_hl7_value(text: str, *, kind: str, what: str) -> Hl7Code | Hl7Id:
    """Read one escaped HL7 v3 CE (`kind`="CE") or II (`kind`="II") value, leniently."""
    element = _fragment(text, what)
    attrs = _attributes(element, what)
    declared = attrs.get("type")
    if declared is not None and declared.rpartition(":")[2] != kind:
        raise _refuse(f"{what} is of type {declared!r}, not {kind}")
    if kind == "CE":
        code, system = attrs.get("code", "").strip(), attrs.get("codeSystem", "").strip()
        if not code or not system or len(code) > 64 or len(system) > 256:
            raise _refuse(f"{what} needs code and codeSystem")
        return Hl7Code(code, normalise_system(system), attrs.get("displayName"))
    extension, root = attrs.get("extension", "").strip(), attrs.get("root", "").strip()
    if not extension or not root or len(extension) > 64 or len(root) > 256:
        raise _refuse(f"{what} needs extension and root")
    return Hl7Id(extension, normalise_system(root))


def _decision_ref(text: str) -> tuple[str, bool]:
    element = _fragment(text, "decision-ref")
    if etree.QName(element).localname != "decision-ref":
        raise _refuse("decision-ref must be a <decision-ref> element")
    values: dict[str, str] = {}
    for child in element:
        if not isinstance(child.tag, str):
            continue
        local = etree.QName(child).localname
        value = _attributes(child, f"decision-ref/{local}").get("value")
        if local in values or value is None:
            raise _refuse(f"decision-ref/{local} must occur once with a value")
        values[local] = value
    if set(values) != {"id", "user-selected"}:
        raise _refuse("decision-ref needs id and user-selected")
    selected = values["user-selected"].strip().lower()
    if selected not in ("true", "false"):
        raise _refuse("decision-ref user-selected must be true or false (ATT-48)")
    return values["id"].strip(), selected == "true"


@dataclass(frozen=True, slots=True)
class SamlPatient:
    """The patient of `resource-id` (HL7 v2 CX: id^^^&<assigning authority OID>&ISO)."""

    id: str
    authority: str

    @property
    def nin(self) -> NationalIdentityNumber:
        """The patient as a national identity number (InvalidIdentifier when it is not one)."""
        number = NationalIdentityNumber(self.id)
        if number.system != self.authority:
            raise InvalidIdentifier("the patient's number is not of its assigning authority")
        return number


def parse_cx(value: str) -> SamlPatient | None:
    """Parse a CX patient id as the network sends it, or None when it is not one.

    The HelseID assertions escape the ampersands twice (`&amp;amp;` in the XML), so `&amp;` in
    the text is read as `&`; the query sends it quoted ('…'), and the quotes are dropped.
    """
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        text = text[1:-1]
    text = text.replace("&amp;", "&")
    if len(text) > 256:
        return None
    ident, _, rest = text.partition("^^^")
    parts = rest.split("&")
    if not ident or len(parts) != 3 or parts[0] or parts[2] != "ISO":
        return None
    if not ident.isascii() or not ident.isalnum():
        return None
    try:
        authority = Oid(parts[1]).value
    except InvalidIdentifier:
        return None
    return SamlPatient(ident, authority)


class _Attributes:
    """Reads each trust-framework attribute under all its names; refuses disagreement."""

    def __init__(self, assertion: SamlAssertion) -> None:
        self.assertion = assertion

    def raw(self, key: str) -> list[str]:
        values = self.assertion.values(*ATTRIBUTE_NAMES[key])
        return [v for v in values if v is not None and v.strip()]

    def one(self, key: str, parse: Any = str.strip) -> Any:
        parsed = {parse(v) for v in self.raw(key)}
        if len(parsed) > 1:
            raise _refuse(f"the names of {key} carry conflicting values")
        return next(iter(parsed), None)

    def code(self, key: str) -> Hl7Code | None:
        def parse(text: str) -> tuple[str, str, str | None]:
            value = read_hl7_value(text, kind="CE", what=key)
            assert isinstance(value, Hl7Code)
            return (value.code, value.system, value.display)

        found = {parse(v) for v in self.raw(key)}
        if len({(c, s) for c, s, _ in found}) > 1:
            raise _refuse(f"the names of {key} carry conflicting values")
        if not found:
            return None
        code, system, display = sorted(found, key=lambda t: t[2] is None)[0]
        return Hl7Code(code, system, display)

    def ident(self, key: str) -> Hl7Id | None:
        def parse(text: str) -> Hl7Id:
            text = text.strip()
            if text.startswith("<"):
                value = read_hl7_value(text, kind="II", what=key)
                assert isinstance(value, Hl7Id)
                return value
            # helsenorge sends organization-id as a bare organisation number.
            return Hl7Id(text, "urn:oid:2.16.578.1.12.4.1.4.101")

        return self.one(key, parse)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class XuaCaller:
    """Who asks, as the policy sees it, and what the assertion binds the request to.

    `principal` is the MHD path's own type; `patient` is `resource-id` (ATT-4), checked against
    the query by `patient_matches`; `access_basis` is what the health worker's ACP stands for
    (the MHD path reads it from the `nhn-access-basis` header).
    """

    principal: Principal
    patient: SamlPatient | None
    access_basis: AccessBasis | None
    home_community_id: HomeCommunityId | None
    assertion_id: str


def _scope(values: list[str]) -> frozenset[str]:
    out: set[str] = set()
    for value in values:
        for item in value.replace(",", " ").split():
            out.add(READ_DOCUMENTREFERENCES_SCOPE if item == HCP_SCOPE else item)
    return frozenset(out)


def _acp(reader: _Attributes) -> str | None:
    value = reader.one("acp")
    return None if value is None else strip_urn_oid(value)


def _org(ident: Hl7Id | None, name: str | None) -> dict[str, str] | None:
    if ident is None:
        return None
    out = {"id": ident.extension, "system": ident.root}
    if name:
        out["name"] = name
    return out


def _coding(code: Hl7Code | None) -> dict[str, str] | None:
    if code is None:
        return None
    out = {"code": code.code, "system": code.system}
    if code.display:
        out["text"] = code.display
    return out


def _attestation(reader: _Attributes, subject: NationalIdentityNumber, hpr: str) -> Attestation:
    legal = reader.ident("organization_id")
    if legal is None:
        raise _refuse("organization-id is required for health personnel")
    point_of_care = reader.ident("child_organization") or legal  # ATT-19
    decision = reader.one("decision_ref", _decision_ref)
    if decision is None:
        raise _refuse("decision-ref is required for health personnel")
    purpose = reader.code("purpose")
    if purpose is None:
        raise _refuse("the purpose of use is required")
    practitioner: dict[str, Any] = {
        "identifier": {
            "id": subject.value,
            "system": f"urn:oid:{subject.system}",
            **({"name": n} if (n := reader.one("subject_name")) else {}),
        },
        "hpr_nr": {"id": hpr, "system": f"urn:oid:{HPR_SYSTEM}"},
        "legal_entity": _org(legal, reader.one("organization")),
        "point_of_care": _org(
            point_of_care,
            reader.one("child_organization_name")
            if reader.ident("child_organization")
            else reader.one("organization"),
        ),
    }
    if (role := _coding(reader.code("role"))) is not None:
        practitioner["authorization"] = role
    if (department := _org(reader.ident("facility"), reader.one("facility_name"))) is not None:
        practitioner["department"] = department
    care: dict[str, Any] = {
        "purpose_of_use": _coding(purpose),
        "decision_ref": {"id": decision[0], "user_selected": decision[1]},
    }
    if (service := _coding(reader.code("healthcare_service"))) is not None:
        care["healthcare_service"] = service
    if (details := _coding(reader.code("purpose_details"))) is not None:
        care["purpose_of_use_details"] = details
    patient: dict[str, Any] = {}
    resource_poc = _org(
        reader.ident("resource_child_organization"), reader.one("resource_child_organization_name")
    )
    if resource_poc is not None:
        patient["point_of_care"] = resource_poc
    resource_dep = _org(reader.ident("resource_facility"), reader.one("resource_facility_name"))
    if resource_dep is not None:
        patient["department"] = resource_dep
    claim = {
        "type": ATTESTATION_TYPE,
        "practitioner": practitioner,
        "care_relationship": care,
        "patients": [patient] if patient else [],
    }
    try:
        # The MHD path's own validation of an enriched attestation (code lists, ATT-43, …).
        return parse_attestation_claim(claim)
    except InvalidAuthorizationDetails as exc:
        raise _refuse(f"attestation: {exc.description}") from None


def caller_from_assertion(assertion: SamlAssertion) -> XuaCaller:
    """Map a verified assertion onto the policy's principal; SamlRefused when it cannot be.

    References: TRUST-FRAMEWORK §2.4 (attributes), §1.3 (attestation), §5.2 (ACP); ATT-9.
    """
    reader = _Attributes(assertion)
    try:
        subject = NationalIdentityNumber(assertion.subject)
    except InvalidIdentifier:
        raise _refuse("the subject NameID is not a national identity number") from None
    level = reader.one("security_level")
    if level != "4":
        raise SamlRefused(
            "the subject must be authenticated at level 4 (ATT-9)", problem=SamlProblem.ATTRIBUTE
        )
    provider = reader.ident("provider_identifier")
    if provider is None:
        raise _refuse("provider-identifier is required to tell health personnel from citizens")
    npi = reader.one("npi")
    patient = reader.one("resource_id", lambda v: parse_cx(v) or _bad_patient())
    acp = _acp(reader)
    home = reader.one("home_community_id")
    try:
        home_id = HomeCommunityId(Oid(home)) if home else None
    except InvalidIdentifier:
        raise _refuse("homeCommunityId is not an OID") from None
    client_id = reader.one("client_id")
    scope = _scope(reader.raw("scope"))
    raw: dict[str, Any] = {
        "sub": assertion.subject,
        PID_CLAIM: subject.value,
        SECURITY_LEVEL_CLAIM: level,
        "scope": " ".join(sorted(scope)),
    }
    if client_id:
        raw["client_id"] = client_id
    root = strip_urn_oid(provider.root)
    if root == HPR_SYSTEM:
        if npi is not None and npi != provider.extension:
            raise _refuse("npi and provider-identifier name different HPR numbers")
        attestation = _attestation(reader, subject, provider.extension)
        raw[ATTESTATION_TYPE] = attestation.to_claim()
        raw[HPR_NUMBER_CLAIM] = provider.extension
        if acp is not None and acp not in ACP_ACCESS_BASIS and acp not in _SELF_ACPS:
            raise _refuse("the ACP is not one a health worker may assert")
        principal: Principal = HealthPersonnel(
            _claims(assertion, raw, scope, client_id), attestation, subject
        )
        basis = ACP_ACCESS_BASIS.get(acp) if acp else None
        return XuaCaller(principal, patient, basis, home_id, assertion.id)
    if root in (FNR_SYSTEM, DNR_SYSTEM):
        if provider.extension != subject.value:
            raise _refuse("a citizen's provider-identifier must be the subject")
        representation: tuple[Representation, ...] = ()
        if acp is not None and acp not in _SELF_ACPS:
            relation = ACP_RELATION.get(acp)
            if relation is None:
                raise _refuse("the ACP is not one a citizen may assert")
            if patient is None:
                raise _refuse("a representation ACP needs the represented patient (resource-id)")
            try:
                represented = patient.nin
            except InvalidIdentifier:
                raise _refuse("the represented patient is not a national identity number") from None
            representation = (Representation(represented, relation),)
            raw["onerecord:representation"] = [
                {"nin": represented.value, "relation": relation.value}
            ]
        else:
            raw["onerecord:representation"] = []
        principal = Citizen(_claims(assertion, raw, scope, client_id), subject, representation)
        return XuaCaller(principal, patient, None, home_id, assertion.id)
    raise _refuse("provider-identifier is neither an HPR number nor a national identity number")


def _bad_patient() -> SamlPatient:
    raise _refuse("resource-id is not a CX patient identifier")


def _claims(
    assertion: SamlAssertion, raw: dict[str, Any], scope: frozenset[str], client_id: str | None
) -> AccessTokenClaims:
    audience = assertion.audiences[0] if assertion.audiences else ""
    expires = assertion.not_on_or_after or assertion.issue_instant
    return AccessTokenClaims(
        issuer=assertion.issuer,
        audience=audience,
        subject=assertion.subject,
        jti=assertion.id,
        issued_at=int(assertion.issue_instant.timestamp()),
        expires_at=int(expires.timestamp()),
        jkt="",  # a SAML bearer assertion is not DPoP-bound (as the hub assertion)
        client_id=client_id,
        scope=scope,
        pid=raw[PID_CLAIM],
        security_level=raw[SECURITY_LEVEL_CLAIM],
        acr=None,
        toa=None,  # not carried in SAML (TRUST-FRAMEWORK §1.1); the assertion's 60 min bound it
        raw=raw,
    )


def patient_matches(assertion: SamlAssertion, query_patient: str) -> bool:
    """True when the assertion's `resource-id` patient is the query's patient (ATT-4, C5).

    Both must be valid CX values with the same id and assigning authority; every name of
    resource-id must agree. Anything else (absent, unparsable, conflicting) is False.
    """
    values = [v for v in assertion.values(*ATTRIBUTE_NAMES["resource_id"]) if v]
    asserted = {parse_cx(v) for v in values}
    wanted = parse_cx(query_patient)
    return (
        len(asserted) == 1 and None not in asserted and wanted is not None and asserted == {wanted}
    )
