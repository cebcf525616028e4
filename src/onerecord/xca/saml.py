"""SAML 2.0 XUA assertions: parse, verify (signature, issuer, audience, validity, bearer).

An assertion arrives in wsse:Security of every ITI-38/39/18/43 request. `verify_assertion`
checks, in this order: the issuer is configured; the enveloped XML signature (exc-c14n,
RSA-SHA256, SHA-256 digest) verifies with one of that issuer's configured certificates (the
certificate in KeyInfo is never trusted by itself) and covers the whole assertion; an audience is
ours; NotBefore - skew <= now < NotOnOrAfter + skew; the subject is confirmed by `bearer`. Only
what the signature covers is read afterwards (signxml's `signed_xml`), so a wrapped or moved
assertion cannot lend its attributes to the signed one.

`read_assertion` parses without verifying: the pretty-printed samples of the network have
signatures broken by reformatting, and their attributes are still worth testing.

References: IHE ITI TF-2 3.40.4.1 (XUA: SAML 2.0, bearer, audience); OASIS SAML 2.0 Core §2.5
(Conditions), §2.4.1 (SubjectConfirmation); W3C XML-DSig (enveloped signature, exc-c14n);
TRUST-FRAMEWORK §2.4 (issuers, audiences, 5 minutes skew, scenarios C2–C4).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from signxml import (  # type: ignore[attr-defined]
    DigestAlgorithm,
    SignatureConfiguration,
    SignatureMethod,
    XMLVerifier,
)
from signxml.exceptions import InvalidInput, SignXMLException

from onerecord.domain.xml import hardened_xml_parser
from onerecord.xca.dev_issuer import is_development_certificate
from onerecord.xca.errors import SamlProblem, SamlRefused, XcaParseError
from onerecord.xca.xml import NS, SAML2, XSI, element_text, qname

__all__ = [
    "BEARER",
    "DEFAULT_CLOCK_SKEW",
    "SamlAssertion",
    "TrustedIssuer",
    "XuaSettings",
    "certificate_from_key_info",
    "load_certificate",
    "load_xua_settings",
    "parse_saml_instant",
    "read_assertion",
    "verify_assertion",
]

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
DEFAULT_CLOCK_SKEW = timedelta(minutes=5)
"""TRUST-FRAMEWORK §2.4: the reference source allows 5 minutes of clock skew (C4)."""

_MAX_ATTRIBUTES = 64
_MAX_VALUES = 16
_MAX_VALUE_LEN = 4096


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    """An assertion issuer (HelseID's SAML issuer, helsenorge) and its signing certificates.

    Several certificates may be listed during a key rollover; any of them may sign.
    """

    issuer: str
    certificates: tuple[x509.Certificate, ...]

    def __post_init__(self) -> None:
        if not self.issuer or not self.certificates:
            raise ValueError("a trusted issuer needs a name and at least one certificate")


@dataclass(frozen=True, slots=True)
class XuaSettings:
    """What a gateway trusts: issuers with their certificates, its audiences, the clock skew."""

    issuers: tuple[TrustedIssuer, ...]
    audiences: frozenset[str]
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW

    def issuer(self, name: str) -> TrustedIssuer | None:
        return next((i for i in self.issuers if i.issuer == name), None)


def load_certificate(data: bytes) -> x509.Certificate:
    """Load a PEM or DER certificate (configuration input)."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def load_xua_settings(
    issuers: Mapping[str, Sequence[Path]], audiences: Iterable[str], *, dev_mode: bool
) -> XuaSettings | None:
    """What a gateway trusts, from configuration: each issuer's certificate files (PEM or DER).

    None when no issuer is configured (every assertion is then refused). A development
    certificate (`dev_issuer`) is refused outside dev mode, as the other development keys are.
    """
    trusted = []
    for name, files in issuers.items():
        certificates = tuple(load_certificate(path.read_bytes()) for path in files)
        if not dev_mode and any(map(is_development_certificate, certificates)):
            raise ValueError(
                f"refusing the development SAML certificate of {name!r} outside dev mode"
            )
        trusted.append(TrustedIssuer(name, certificates))
    if not trusted:
        return None
    return XuaSettings(issuers=tuple(trusted), audiences=frozenset(audiences))


@dataclass(frozen=True, slots=True)
class SamlAssertion:
    """The parts of a SAML 2.0 assertion XUA needs; `attributes` maps Name → values.

    A value is None when the AttributeValue is xsi:nil="true". Attribute names are kept as sent;
    `onerecord.xca.xua` knows the old and the new names of each trust-framework attribute.
    """

    id: str
    issuer: str
    issue_instant: datetime
    subject: str
    confirmation_methods: tuple[str, ...]
    not_before: datetime | None
    not_on_or_after: datetime | None
    audiences: tuple[str, ...]
    attributes: Mapping[str, tuple[str | None, ...]]

    def values(self, *names: str) -> tuple[str | None, ...]:
        """All values of the attributes with any of `names`, in the order of `names`."""
        out: list[str | None] = []
        for name in names:
            out.extend(self.attributes.get(name, ()))
        return tuple(out)


def parse_saml_instant(value: str | None, *, what: str) -> datetime:
    """Parse an xs:dateTime with a time zone (SAML requires UTC, "Z")."""
    if not value or len(value) > 40:
        raise XcaParseError(f"{what} is missing or too long")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise XcaParseError(f"{what} is not an xs:dateTime") from None
    if moment.tzinfo is None:
        raise XcaParseError(f"{what} must carry a time zone")
    return moment


def _optional_instant(element: Any, name: str, what: str) -> datetime | None:
    value = element.get(name)
    return None if value is None else parse_saml_instant(value, what=what)


def _attribute_values(attribute: Any) -> tuple[str | None, ...]:
    values: list[str | None] = []
    for value in attribute.findall("saml:AttributeValue", NS):
        if value.get(qname(XSI, "nil"), "").strip().lower() == "true":
            values.append(None)
            continue
        values.append(element_text(value, what="saml:AttributeValue", max_len=_MAX_VALUE_LEN))
    if len(values) > _MAX_VALUES:
        raise XcaParseError("a SAML attribute has too many values")
    return tuple(values)


def read_assertion(element: Any) -> SamlAssertion:
    """Parse an assertion element's shape; verify nothing. XcaParseError on a bad shape."""
    if element.tag != qname(SAML2, "Assertion"):
        raise XcaParseError("expected a SAML 2.0 Assertion")
    if element.get("Version") != "2.0":
        raise XcaParseError("the SAML assertion must have Version 2.0")
    assertion_id = element.get("ID")
    if not assertion_id or len(assertion_id) > 256:
        raise XcaParseError("the SAML assertion needs an ID")
    issued = parse_saml_instant(element.get("IssueInstant"), what="IssueInstant")
    issuers = element.findall("saml:Issuer", NS)
    if len(issuers) != 1:
        raise XcaParseError("the SAML assertion must have exactly one Issuer")
    issuer = element_text(issuers[0], what="saml:Issuer", max_len=512)
    subjects = element.findall("saml:Subject", NS)
    if len(subjects) != 1:
        raise XcaParseError("the SAML assertion must have exactly one Subject")
    name_ids = subjects[0].findall("saml:NameID", NS)
    if len(name_ids) != 1:
        raise XcaParseError("the SAML Subject must have exactly one NameID")
    subject = element_text(name_ids[0], what="saml:NameID", max_len=256)
    methods = tuple(
        c.get("Method", "") for c in subjects[0].findall("saml:SubjectConfirmation", NS)
    )
    conditions = element.findall("saml:Conditions", NS)
    if len(conditions) > 1:
        raise XcaParseError("the SAML assertion has more than one Conditions")
    not_before = not_after = None
    audiences: tuple[str, ...] = ()
    if conditions:
        not_before = _optional_instant(conditions[0], "NotBefore", "NotBefore")
        not_after = _optional_instant(conditions[0], "NotOnOrAfter", "NotOnOrAfter")
        audiences = tuple(
            element_text(a, what="saml:Audience", max_len=512)
            for a in conditions[0].findall("saml:AudienceRestriction/saml:Audience", NS)
        )
    attributes: dict[str, tuple[str | None, ...]] = {}
    found = element.findall("saml:AttributeStatement/saml:Attribute", NS)
    if len(found) > _MAX_ATTRIBUTES:
        raise XcaParseError("the SAML assertion has too many attributes")
    for attribute in found:
        name = attribute.get("Name")
        if not name or len(name) > 256:
            raise XcaParseError("a SAML Attribute needs a Name")
        attributes[name] = attributes.get(name, ()) + _attribute_values(attribute)
    return SamlAssertion(
        id=assertion_id,
        issuer=issuer,
        issue_instant=issued,
        subject=subject,
        confirmation_methods=methods,
        not_before=not_before,
        not_on_or_after=not_after,
        audiences=audiences,
        attributes=attributes,
    )


_SIGNATURE_METHODS = frozenset({SignatureMethod.RSA_SHA256})
_DIGESTS = frozenset({DigestAlgorithm.SHA256})


def _signed_element(element: Any, issuer: TrustedIssuer, now: datetime) -> Any:
    """Return the element the signature covers, verified with one of the issuer's certificates."""
    config = SignatureConfiguration(
        signature_methods=_SIGNATURE_METHODS,
        digest_algorithms=_DIGESTS,
        expect_references=1,
        verification_time=now,
    )
    last = "no certificate"
    for certificate in issuer.certificates:
        try:
            result = XMLVerifier().verify(
                element,
                x509_cert=certificate,
                parser=hardened_xml_parser(remove_comments=True),
                expect_config=config,
            )
        except (SignXMLException, InvalidInput, ValueError, binascii.Error) as exc:
            last = type(exc).__name__
            continue
        except Exception as exc:  # lxml errors from signxml's own parsing of the copy
            last = type(exc).__name__
            continue
        signed = result.signed_xml  # type: ignore[union-attr]
        if signed is None or signed.tag != element.tag or signed.get("ID") != element.get("ID"):
            raise SamlRefused(
                "the signature does not cover the assertion", problem=SamlProblem.SIGNATURE
            )
        return signed
    raise SamlRefused(
        f"the assertion's signature does not verify with the issuer's certificates ({last})",
        problem=SamlProblem.SIGNATURE,
    )


def verify_assertion(element: Any, settings: XuaSettings, *, now: datetime) -> SamlAssertion:
    """Verify an assertion and return what its signature covers; SamlRefused on any fault.

    `now` is the clock (injected: tests freeze it at the captured assertion's IssueInstant).
    References: ITI TF-2 3.40.4.1.2 (the X-Service Provider's checks); TRUST-FRAMEWORK §2.4.
    """
    if element is None:
        raise SamlRefused("the request carries no SAML assertion", problem=SamlProblem.MISSING)
    try:
        unverified = read_assertion(element)
    except XcaParseError as exc:
        raise SamlRefused(exc.message, problem=SamlProblem.SHAPE) from None
    trusted = settings.issuer(unverified.issuer)
    if trusted is None:
        raise SamlRefused("the assertion's issuer is not trusted", problem=SamlProblem.ISSUER)
    signed = _signed_element(element, trusted, now)
    try:
        assertion = read_assertion(signed)
    except XcaParseError as exc:
        raise SamlRefused(exc.message, problem=SamlProblem.SHAPE) from None
    if assertion.issuer != trusted.issuer:
        raise SamlRefused("the signed issuer differs", problem=SamlProblem.ISSUER)
    if not set(assertion.audiences) & settings.audiences:
        raise SamlRefused(
            "the assertion is not meant for this gateway", problem=SamlProblem.AUDIENCE
        )
    skew = settings.clock_skew
    if assertion.not_on_or_after is None or assertion.not_before is None:
        raise SamlRefused(
            "the assertion needs NotBefore and NotOnOrAfter", problem=SamlProblem.SHAPE
        )
    if now + skew < assertion.not_before or now + skew < assertion.issue_instant:
        raise SamlRefused("the assertion is not valid yet", problem=SamlProblem.NOT_YET_VALID)
    if now >= assertion.not_on_or_after + skew:
        raise SamlRefused("the assertion has expired", problem=SamlProblem.EXPIRED)
    if BEARER not in assertion.confirmation_methods:
        raise SamlRefused(
            "the subject must be confirmed by bearer", problem=SamlProblem.SUBJECT_CONFIRMATION
        )
    return assertion


def certificate_from_key_info(element: Any) -> x509.Certificate:
    """Return the certificate in an assertion's KeyInfo (for tests and configuration tooling).

    Never trust it for verification: a gateway verifies with configured certificates only.
    """
    text = element.findtext("ds:Signature/ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=NS)
    if not text:
        raise XcaParseError("the assertion has no X509Certificate in KeyInfo")
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join(text.split())))
    except (ValueError, binascii.Error):
        raise XcaParseError("the KeyInfo certificate is not a certificate") from None
