"""The development SAML issuer: a key and self-signed certificate for demos and tests only.

Its certificate's common name starts with the development marker (as every development key's
kid does, `onerecord.trust.keys.DEV_KEY_MARKER`), and a gateway refuses to trust it outside dev
mode (`is_development_certificate`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

__all__ = [
    "DEV_SAML_ISSUER",
    "create_development_issuer",
    "is_development_certificate",
]

DEV_SAML_ISSUER = "https://dev-saml-issuer.onerecord.invalid"
_DEV_COMMON_NAME = "dev-saml-issuer (development only)"


def is_development_certificate(certificate: x509.Certificate) -> bool:
    """True for a certificate made by `create_development_issuer` (common name "dev…")."""
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return any(str(n.value).startswith("dev") for n in names)


def create_development_issuer(
    key_file: Path, certificate_file: Path
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """Write a new RSA-2048 key and its one-year self-signed certificate as PEM files."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _DEV_COMMON_NAME)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key, certificate
