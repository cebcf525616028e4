"""Patient binding by salted digest (the project's extension; ATT-4, ATT-6)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace

import pytest

from onerecord.domain import NationalIdentityNumber
from onerecord.trust.attestation import PatientRef, parse_authorization_details
from onerecord.trust.errors import PatientBindingFailed
from onerecord.trust.patient_binding import (
    decode_salt,
    encode_salt,
    make_digest,
    new_salt,
    verify_binding,
)
from tests.sts.fakes import CHILD_8, PARENT, attestation_details, make_population


def _attestation(*digests: str) -> object:
    base = parse_authorization_details(attestation_details(), registers=make_population())
    return replace(base, patients=tuple(PatientRef(identifier_digest=d) for d in digests))


def test_digest_is_sha256_of_salt_then_number() -> None:
    salt = bytes(range(16))
    expected = base64.urlsafe_b64encode(hashlib.sha256(salt + PARENT.encode()).digest())
    assert make_digest(PARENT, salt) == expected.rstrip(b"=").decode()
    assert make_digest(NationalIdentityNumber(PARENT), salt) == make_digest(PARENT, salt)


def test_fresh_salts_differ_and_survive_the_header() -> None:
    a, b = new_salt(), new_salt()
    assert a != b and len(a) == 16
    assert decode_salt(encode_salt(a)) == a


def test_bound_patient_is_accepted() -> None:
    salt = new_salt()
    att = _attestation(make_digest(PARENT, salt))
    ref = verify_binding(att, PARENT, encode_salt(salt))  # type: ignore[arg-type]
    assert ref.identifier_digest == make_digest(PARENT, salt)


def test_other_patient_or_salt_is_refused() -> None:
    salt = new_salt()
    att = _attestation(make_digest(PARENT, salt))
    with pytest.raises(PatientBindingFailed, match="another patient"):
        verify_binding(att, CHILD_8, salt)  # type: ignore[arg-type]
    with pytest.raises(PatientBindingFailed, match="another patient"):
        verify_binding(att, PARENT, new_salt())  # type: ignore[arg-type]


def test_token_without_digest_is_refused_for_patient_data() -> None:
    with pytest.raises(PatientBindingFailed, match="ATT-6"):
        verify_binding(_attestation(), PARENT, new_salt())  # type: ignore[arg-type]


@pytest.mark.parametrize("header", ["short", "!!!!", encode_salt(bytes(15))])
def test_malformed_salt_header_is_refused(header: str) -> None:
    with pytest.raises(PatientBindingFailed):
        decode_salt(header)
