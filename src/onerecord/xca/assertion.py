"""The initiating gateway's XUA assertion: the caller's attributes, signed by the hub's key.

The inverse of `xua.caller_from_assertion`: a health worker's attestation or a citizen's
identity and representation become the trust-framework attributes (new names, HL7 v3 values as
escaped XML) that a responding gateway maps back onto the same principal. The assertion is a
bearer assertion for one audience and a short lifetime, signed enveloped with exc-c14n and
RSA-SHA256 as the national network signs.

References: IHE ITI TF-2 3.40.4.1 (XUA: the initiating gateway asserts the user);
TRUST-FRAMEWORK §2.4 (SAML attributes), §4.3 (ACP of the access basis), §5.2 (ACP of a
representation); SAML 2.0 Core §2.3.3 (the Signature follows the Issuer).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree  # type: ignore[import-untyped]
from signxml import XMLSigner  # type: ignore[attr-defined]

from onerecord.domain import HPR_SYSTEM, NationalIdentityNumber, strip_urn_oid
from onerecord.trust.access_token import Citizen, HealthPersonnel, Principal
from onerecord.trust.attestation import AttestCoding, AttestIdentifier
from onerecord.trust.principal import AccessBasis
from onerecord.xca.saml import BEARER
from onerecord.xca.xml import DS, HL7V3, SAML2, XSI, parse_xml
from onerecord.xca.xua import ACP_ACCESS_BASIS, ATTRIBUTE_NAMES

__all__ = ["assertion_attributes", "patient_cx", "sign_assertion"]

_ACP_OF_BASIS = {basis: acp for acp, basis in ACP_ACCESS_BASIS.items()}
_SELF_ACP = "2.16.578.1.12.4.1.7.2.1.0"
_EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


def _name(key: str) -> str:
    """The attribute's current (first) name, as the mapper lists it."""
    return ATTRIBUTE_NAMES[key][0]


def _ii(identifier: AttestIdentifier | None, *, tag: str = "id") -> str | None:
    if identifier is None:
        return None
    return (
        f'<{tag} xmlns="{HL7V3}" xmlns:xsi="{XSI}" xsi:type="II" '
        f"extension={quoteattr(identifier.id)} root={quoteattr(identifier.system)}/>"
    )


def _ce(coding: AttestCoding | None, tag: str) -> str | None:
    if coding is None:
        return None
    shown = f" displayName={quoteattr(coding.text)}" if coding.text else ""
    return (
        f'<{tag} xmlns="{HL7V3}" xmlns:xsi="{XSI}" xsi:type="CE" '
        f"code={quoteattr(coding.code)} codeSystem={quoteattr(coding.system)}{shown}/>"
    )


def patient_cx(patient: NationalIdentityNumber) -> str:
    """The patient as an HL7 v2 CX value (id^^^&<assigning authority OID>&ISO)."""
    return f"{patient.value}^^^&{strip_urn_oid(patient.system)}&ISO"


def _health_personnel(
    principal: HealthPersonnel, access_basis: AccessBasis | None
) -> dict[str, str | None]:
    practitioner = principal.attestation.practitioner
    care = principal.attestation.care_relationship
    hpr = practitioner.hpr_nr.id if practitioner.hpr_nr else principal.claims.raw.get("hpr")
    patients = principal.attestation.patients
    patient_ref = patients[0] if patients else None
    decision = (
        f'<decision-ref><id value={quoteattr(care.decision_ref.id)}/><user-selected value="'
        f'{"true" if care.decision_ref.user_selected else "false"}"/></decision-ref>'
    )
    legal, poc = practitioner.legal_entity, practitioner.point_of_care
    return {
        "subject_name": practitioner.identifier.name if practitioner.identifier else None,
        "provider_identifier": _ii(AttestIdentifier(str(hpr), f"urn:oid:{HPR_SYSTEM}")),
        "npi": str(hpr),
        "role": _ce(practitioner.authorization, "Role"),
        "organization": legal.name,
        "organization_id": _ii(legal),
        # ATT-19: a point of care equal to the legal entity means there is no sub-unit.
        "child_organization": _ii(poc) if poc.id != legal.id else None,
        "child_organization_name": poc.name if poc.id != legal.id else None,
        "facility": _ii(practitioner.department),
        "facility_name": practitioner.department.name if practitioner.department else None,
        "healthcare_service": _ce(care.healthcare_service, "HealthcareService"),
        "purpose": _ce(care.purpose_of_use, "PurposeOfUse"),
        "purpose_details": _ce(care.purpose_of_use_details, "PurposeOfUseDetails"),
        "decision_ref": decision,
        "resource_child_organization": _ii(patient_ref.point_of_care) if patient_ref else None,
        "resource_child_organization_name": (
            patient_ref.point_of_care.name if patient_ref and patient_ref.point_of_care else None
        ),
        "resource_facility": _ii(patient_ref.department) if patient_ref else None,
        "resource_facility_name": (
            patient_ref.department.name if patient_ref and patient_ref.department else None
        ),
        "acp": _ACP_OF_BASIS.get(access_basis) if access_basis is not None else None,
    }


def _citizen(principal: Citizen, patient: NationalIdentityNumber | None) -> dict[str, str | None]:
    acp = None
    if patient is not None and patient != principal.nin:
        relation = next((r.relation for r in principal.representation if r.person == patient), None)
        acp = relation.acp if relation is not None else None
    return {
        "provider_identifier": _ii(
            AttestIdentifier(principal.nin.value, f"urn:oid:{principal.nin.system}")
        ),
        "acp": acp or _SELF_ACP,
    }


def assertion_attributes(
    principal: Principal,
    *,
    patient: NationalIdentityNumber | None,
    access_basis: AccessBasis | None = None,
    home_community_id: str | None = None,
) -> dict[str, str]:
    """The trust-framework attributes (by their current names) that assert `principal`.

    `patient` becomes `resource-id` (ATT-4: the responding gateway binds the query to it);
    `access_basis` the health worker's ACP; `home_community_id` the initiating community.
    """
    if isinstance(principal, HealthPersonnel):
        values = _health_personnel(principal, access_basis)
    else:
        values = _citizen(principal, patient)
    claims = principal.claims
    values["security_level"] = str(claims.security_level or claims.raw.get("security_level") or "")
    values["scope"] = " ".join(sorted(claims.scope)) or None
    values["client_id"] = claims.client_id
    values["resource_id"] = patient_cx(patient) if patient is not None else None
    values["home_community_id"] = (
        strip_urn_oid(home_community_id) if home_community_id is not None else None
    )
    return {_name(key): value for key, value in values.items() if value}


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _attribute_statement(attributes: Iterable[tuple[str, str]]) -> str:
    return "".join(
        f"<saml:Attribute Name={quoteattr(name)}>"
        f"<saml:AttributeValue>{escape(value)}</saml:AttributeValue></saml:Attribute>"
        for name, value in attributes
    )


def sign_assertion(
    *,
    key: rsa.RSAPrivateKey,
    certificate: x509.Certificate,
    issuer: str,
    subject: str,
    attributes: dict[str, str],
    audience: str,
    now: datetime,
    lifetime: timedelta,
) -> Any:
    """Return a signed SAML 2.0 bearer assertion (an lxml element) for one audience."""
    ident = f"_{uuid.uuid4()}"
    text = (
        f'<saml:Assertion xmlns:saml="{SAML2}" ID="{ident}" IssueInstant="{_instant(now)}" '
        f'Version="2.0"><saml:Issuer>{escape(issuer)}</saml:Issuer>'
        f"<saml:Subject><saml:NameID>{escape(subject)}</saml:NameID>"
        f'<saml:SubjectConfirmation Method="{BEARER}"/></saml:Subject>'
        f'<saml:Conditions NotBefore="{_instant(now)}" '
        f'NotOnOrAfter="{_instant(now + lifetime)}"><saml:AudienceRestriction>'
        f"<saml:Audience>{escape(audience)}</saml:Audience></saml:AudienceRestriction>"
        f"</saml:Conditions><saml:AttributeStatement>"
        f"{_attribute_statement(attributes.items())}</saml:AttributeStatement></saml:Assertion>"
    )
    signer = XMLSigner(
        signature_algorithm="rsa-sha256", digest_algorithm="sha256", c14n_algorithm=_EXC_C14N
    )
    signed = signer.sign(
        etree.fromstring(text.encode()), key=key, cert=[certificate], reference_uri="#" + ident
    )
    signature = signed.find(f"{{{DS}}}Signature")
    signed.remove(signature)
    signed.insert(1, signature)
    return parse_xml(etree.tostring(signed))
