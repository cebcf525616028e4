"""Bind an attestation to one patient without sending the patient's number to the STS.

The project's extension (TRUST-FRAMEWORK §1.1 "no patient identifier goes to HelseID", ATT-4):
the client draws a fresh random 16-byte salt and puts
`patients[].identifier_digest = base64url(SHA-256(salt || nin))` into the attestation; the STS
carries it into the token unseen. Each API call sends the identifier and the salt in the
`nhn-patient-nin` and `onerecord-patient-salt` headers; the API recomputes the digest and
compares it in constant time. A token whose attestation has no digest is refused for patient
data (ATT-6).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from onerecord.domain import InvalidIdentifier, NationalIdentityNumber
from onerecord.trust.attestation import Attestation, PatientRef
from onerecord.trust.errors import PatientBindingFailed

__all__ = [
    "PATIENT_NIN_HEADER",
    "PATIENT_SALT_HEADER",
    "SALT_BYTES",
    "decode_salt",
    "encode_salt",
    "make_digest",
    "new_salt",
    "verify_binding",
]

PATIENT_NIN_HEADER = "nhn-patient-nin"
PATIENT_SALT_HEADER = "onerecord-patient-salt"
SALT_BYTES = 16


def new_salt() -> bytes:
    """Return a fresh random salt (one per attestation, never reused across patients)."""
    return secrets.token_bytes(SALT_BYTES)


def encode_salt(salt: bytes) -> str:
    """Return the salt as sent in the onerecord-patient-salt header (base64url, no padding)."""
    return base64.urlsafe_b64encode(salt).rstrip(b"=").decode("ascii")


def decode_salt(value: str) -> bytes:
    """Read the onerecord-patient-salt header; refuse anything but 16 base64url bytes."""
    try:
        salt = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise PatientBindingFailed(f"{PATIENT_SALT_HEADER} is not base64url") from None
    if len(salt) != SALT_BYTES:
        raise PatientBindingFailed(f"{PATIENT_SALT_HEADER} must hold {SALT_BYTES} bytes")
    return salt


def make_digest(nin: NationalIdentityNumber | str, salt: bytes) -> str:
    """Return base64url(SHA-256(salt || nin)) without padding."""
    if len(salt) != SALT_BYTES:
        raise ValueError(f"salt must be {SALT_BYTES} bytes")
    digest = hashlib.sha256(salt + str(nin).encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify_binding(
    attestation: Attestation, nin: NationalIdentityNumber | str, salt: bytes | str
) -> PatientRef:
    """Return the patients[] entry bound to `nin`, or raise PatientBindingFailed (ATT-4, ATT-6)."""
    try:
        patient = nin if isinstance(nin, NationalIdentityNumber) else NationalIdentityNumber(nin)
    except InvalidIdentifier:
        raise PatientBindingFailed(
            f"{PATIENT_NIN_HEADER} is not a national identity number"
        ) from None
    raw_salt = decode_salt(salt) if isinstance(salt, str) else salt
    if len(raw_salt) != SALT_BYTES:
        raise PatientBindingFailed(f"{PATIENT_SALT_HEADER} must hold {SALT_BYTES} bytes")
    bound = [p for p in attestation.patients if p.identifier_digest is not None]
    if not bound:
        raise PatientBindingFailed("the attestation is not bound to a patient (ATT-6)")
    expected = make_digest(patient, raw_salt).encode("ascii")
    match = None
    for ref in bound:
        assert ref.identifier_digest is not None
        if hmac.compare_digest(expected, ref.identifier_digest.encode("ascii")):
            match = ref
    if match is None:
        raise PatientBindingFailed("the attestation is bound to another patient (ATT-4)")
    return match
