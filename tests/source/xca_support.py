"""SAML assertions from the development issuer, a zeep client, and the schema check (XCA tests).

The assertions carry the trust-framework attributes as HelseID and helsenorge send them (see
../shared/xca-vectors), built for the synthetic population's people and signed with the
development SAML issuer's key (enveloped, exc-c14n, RSA-SHA256).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from signxml import XMLSigner  # type: ignore[attr-defined]

from onerecord.synth.population import Population, Practitioner
from onerecord.xca.dev_issuer import DEV_SAML_ISSUER, create_development_issuer
from onerecord.xca.xml import SAML2, WSSE

HCID = "urn:oid:2.16.578.1.12.4.5.100.1"
FNR = "2.16.578.1.12.4.1.4.1"
_HL7 = 'xmlns="urn:hl7-org:v3"'


@dataclass(frozen=True)
class DevIssuer:
    """The development SAML issuer's key and certificate, and the file the source trusts."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    certificate_file: Path


def make_dev_issuer(folder: Path) -> DevIssuer:
    key, cert = create_development_issuer(folder / "saml-dev.key", folder / "saml-dev.crt")
    return DevIssuer(key, cert, folder / "saml-dev.crt")


def source_overrides(issuer: DevIssuer) -> dict[str, Any]:
    """The source settings that make it trust the development issuer (dev mode)."""
    return {"dev_mode": True, "xca_issuers": {DEV_SAML_ISSUER: (issuer.certificate_file,)}}


def _ce(tag: str, code: str, system: str, display: str = "") -> str:
    shown = f' displayName="{display}"' if display else ""
    return f'<{tag} {_HL7} xsi:type="CE" code="{code}" codeSystem="urn:oid:{system}"{shown}/>'


def _ii(extension: str, root: str) -> str:
    return f'<id {_HL7} xsi:type="II" extension="{extension}" root="urn:oid:{root}"/>'


def patient_cx(nin: str) -> str:
    return f"{nin}^^^&{FNR}&ISO"


def hcp_attributes(
    population: Population,
    who: Practitioner,
    patient: str,
    *,
    purpose: str = "TREAT",
    acp: str | None = None,
) -> dict[str, str | None]:
    """A health worker's HelseID attributes, the same person as `Network.hcp_token` logs in."""
    org = population.organisation(who.organisation)
    assert who.hpr is not None
    out: dict[str, str | None] = {
        "urn:oasis:names:tc:xacml:1.0:subject:subject-id": who.name,
        "urn:ihe:iti:xua:2017:subject:provider-identifier": (
            f'<id {_HL7} type="II" extension="{who.hpr.value}" root="2.16.578.1.12.4.1.4.4"/>'
        ),
        "urn:oasis:names:tc:xspa:1.0:subject:npi": who.hpr.value,
        "urn:oasis:names:tc:xspa:1.0:subject:organization": org.name,
        "urn:oasis:names:tc:xspa:1.0:subject:organization-id": _ii(
            org.legal_entity.value, "2.16.578.1.12.4.1.4.101"
        ),
        "urn:oasis:names:tc:xspa:1.0:subject:child-organization": _ii(
            org.orgnr.value, "2.16.578.1.12.4.1.4.101"
        ),
        "urn:nhn:trust-framework:1.0:ext:subject:child-organization-name": org.name,
        "urn:oasis:names:tc:xacml:2.0:action:purpose": _ce(
            "Purpose", purpose, "2.16.840.1.113883.1.11.20448"
        ),
        "urn:nhn:trust-framework:1.0:ext:care-relationship:healthcare-service": _ce(
            "HealthcareService", "01", "2.16.578.1.12.4.1.1.8666"
        ),
        "urn:nhn:trust-framework:1.0:ext:care-relationship:decision-ref": (
            '<decision-ref><id value="beslutning-42"/><user-selected value="True"/></decision-ref>'
        ),
        "urn:oasis:names:tc:xacml:1.0:resource:resource-id": patient_cx(patient),
        "urn:no:ehelse:saml:1.0:subject:SecurityLevel": "4",
        "urn:no:ehelse:saml:1.0:subject:Scope": "journaldokumenter_helsepersonell",
        "urn:ihe:iti:xca:2010:homeCommunityId": "2.16.578.1.12.4.1.7.1.1",
        "urn:ihe:iti:xua:2012:acp": acp,
    }
    if who.categories:
        out["urn:oasis:names:tc:xacml:2.0:subject:role"] = _ce(
            "Role", who.categories[0], "2.16.578.1.12.4.1.1.9060"
        )
    if who.department is not None:
        out["urn:oasis:names:tc:xspa:1.0:subject:facility"] = _ii(
            who.department.value, "2.16.578.1.12.4.1.4.102"
        )
        # HelseID names the department as the STS now does in the JWT's attestation.
        names = {str(d.resh): d.name for d in org.departments}
        if who.department.value in names:
            out["urn:nhn:trust-framework:1.0:ext:subject:facility-name"] = names[
                who.department.value
            ]
    return out


def citizen_attributes(nin: str, patient: str | None = None) -> dict[str, str | None]:
    """A citizen's helsenorge attributes (self, or `patient` as a parent: ACP …7.2.1.1)."""
    return {
        "urn:ihe:iti:xua:2017:subject:provider-identifier": (
            f'<id {_HL7} type="II" extension="{nin}" root="{FNR}"/>'
        ),
        "urn:oasis:names:tc:xacml:1.0:resource:resource-id": patient_cx(patient or nin),
        "urn:no:ehelse:saml:1.0:subject:SecurityLevel": "4",
        "urn:no:ehelse:saml:1.0:subject:Scope": "openid",
        "urn:ihe:iti:xua:2012:acp": None if patient in (None, nin) else "2.16.578.1.12.4.1.7.2.1.1",
    }


def make_assertion(
    issuer: DevIssuer,
    subject: str,
    attributes: dict[str, str | None],
    *,
    audience: str = HCID,
    issued: dt.datetime | None = None,
    lifetime: dt.timedelta = dt.timedelta(minutes=60),
) -> Any:
    """A signed SAML 2.0 assertion (an lxml element) with `attributes` as text values."""
    now = issued or dt.datetime.now(dt.UTC)

    def instant(t: dt.datetime) -> str:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    values = []
    for name, value in attributes.items():
        if value is None:
            body = (
                '<saml:AttributeValue xmlns:a="http://www.w3.org/2001/XMLSchema-instance" '
                'a:nil="true"/>'
            )
        else:
            body = f"<saml:AttributeValue>{escape(value)}</saml:AttributeValue>"
        values.append(f'<saml:Attribute Name="{name}">{body}</saml:Attribute>')
    ident = f"_{uuid.uuid4()}"
    text = (
        f'<saml:Assertion xmlns:saml="{SAML2}" ID="{ident}" IssueInstant="{instant(now)}" '
        f'Version="2.0"><saml:Issuer>{DEV_SAML_ISSUER}</saml:Issuer>'
        f"<saml:Subject><saml:NameID>{subject}</saml:NameID>"
        '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"/>'
        f'</saml:Subject><saml:Conditions NotBefore="{instant(now)}" '
        f'NotOnOrAfter="{instant(now + lifetime)}"><saml:AudienceRestriction>'
        f"<saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction>"
        f"</saml:Conditions><saml:AttributeStatement>{''.join(values)}"
        "</saml:AttributeStatement></saml:Assertion>"
    )
    signer = XMLSigner(
        signature_algorithm="rsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    element = etree.fromstring(text.encode())
    signed = signer.sign(
        element, key=issuer.key, cert=[issuer.certificate], reference_uri="#" + ident
    )
    # The signature goes after the Issuer (SAML 2.0 Core §2.3.3), as the network sends it.
    signature = signed.find("{http://www.w3.org/2000/09/xmldsig#}Signature")
    signed.remove(signature)
    signed.insert(1, signature)
    return etree.fromstring(etree.tostring(signed))


def security_header(assertion: Any) -> Any:
    """wsse:Security holding the assertion, for zeep's `_soapheaders`."""
    security = etree.Element(f"{{{WSSE}}}Security", nsmap={"wsse": WSSE})
    security.append(assertion)
    return security


# --- zeep and the schemas --------------------------------------------------------------------

WSDL_DIR = Path(str(resources.files("onerecord.xca").joinpath("wsdl")))
QUERY_BINDING = "{urn:ihe:iti:xds-b:2007}RespondingGateway_CrossGatewayQuery_Binding_Soap12"
RETRIEVE_BINDING = "{urn:ihe:iti:xds-b:2007}RespondingGateway_CrossGatewayRetrieve_Binding_Soap12"


def response_schema() -> Any:
    """One lxml XMLSchema over the shipped ebRS 3.0 / XDS.b schema subsets."""
    imports = "".join(
        f'<xs:import namespace="{ns}" schemaLocation="{(WSDL_DIR / name).as_uri()}"/>'
        for ns, name in (
            ("urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0", "query.xsd"),
            ("urn:ihe:iti:xds-b:2007", "XDS.b_DocumentRepository.xsd"),
        )
    )
    text = f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">{imports}</xs:schema>'
    return etree.XMLSchema(etree.fromstring(text.encode()))
