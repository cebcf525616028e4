"""Helpers for the SAML tests: the captured ITI-39's SOAP part, and a test signer."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import XMLSigner  # type: ignore[attr-defined]

from onerecord.xca.xml import DS, NS, parse_xml
from tests.xca.vectors import vector

CAPTURED = "captured/iti39-request-multipart-signed.txt"


def captured_soap_part() -> bytes:
    """The SOAP part of the captured MTOM request, its one Latin-1 "Ø" re-encoded as UTF-8.

    The capture declares charset=UTF-8 but its bytes are Latin-1 (README); its first MIME part
    runs from the blank line after the part headers to the next boundary line.
    """
    text = vector(CAPTURED).decode("latin-1")
    boundary = text.split("\n", 1)[0].strip()
    assert boundary.startswith("--")
    first = text.split(boundary)[1]
    _, _, body = first.partition("\n\n")
    return body.strip().encode("utf-8")


def captured_assertion(soap: bytes | None = None) -> Any:
    root = parse_xml(soap if soap is not None else captured_soap_part())
    return root.find("env:Header/wsse:Security/saml:Assertion", NS)


def make_key_and_cert(name: str = "test-issuer") -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def resign(assertion: Any, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> Any:
    """Return a copy of `assertion` with its signature replaced by one from `key`."""
    copy = etree.fromstring(etree.tostring(assertion))
    for old in copy.findall(f"{{{DS}}}Signature"):
        copy.remove(old)
    signer = XMLSigner(
        signature_algorithm="rsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    )
    signed = signer.sign(copy, key=key, cert=[cert], reference_uri="#" + copy.get("ID"))
    return parse_xml(etree.tostring(signed))
