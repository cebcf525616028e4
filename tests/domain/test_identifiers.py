from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onerecord.domain import (
    DocumentUniqueId,
    HomeCommunityId,
    HprNumber,
    IdentityKind,
    InvalidIdentifier,
    NationalIdentityNumber,
    Oid,
    OrganisationNumber,
    ReshId,
)


def _number(day: int, month: int, year2: int, individual: int) -> str | None:
    return NationalIdentityNumber.with_check_digits(
        f"{day:02d}{month:02d}{year2:02d}{individual:03d}"
    )


def _first_valid(day: int, month: int, year2: int, start: int = 0) -> str:
    for individual in range(start, 1000):
        value = _number(day, month, year2, individual)
        if value is not None:
            return value
    raise AssertionError("no valid number")


def test_synthetic_fodselsnummer_is_accepted_and_flagged() -> None:
    value = _first_valid(15, 83, 85)
    nin = NationalIdentityNumber(value)
    assert nin.synthetic
    assert nin.kind is IdentityKind.FNR
    assert nin.birth_date == date(1985, 3, 15)
    assert nin.require_synthetic() is nin


def test_real_form_number_is_refused_by_require_synthetic() -> None:
    nin = NationalIdentityNumber(_first_valid(15, 3, 85))
    assert not nin.synthetic
    with pytest.raises(InvalidIdentifier, match="synthetic"):
        nin.require_synthetic()


def test_d_number_adds_forty_to_the_day() -> None:
    nin = NationalIdentityNumber(_first_valid(55, 81, 90))
    assert nin.kind is IdentityKind.DNR
    assert nin.birth_date == date(1990, 1, 15)
    assert nin.system == "2.16.578.1.12.4.1.4.2"


def test_century_from_individual_number() -> None:
    assert NationalIdentityNumber(_first_valid(1, 81, 10, 500)).birth_date.year == 2010
    assert NationalIdentityNumber(_first_valid(1, 81, 60, 0)).birth_date.year == 1960


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1234567890", "11 digits"),
        ("1234567890a", "11 digits"),
        ("１２３４５６７８９０１", "11 digits"),
    ],
)
def test_malformed_numbers_are_refused(value: str, message: str) -> None:
    with pytest.raises(InvalidIdentifier, match=message):
        NationalIdentityNumber(value)


def test_wrong_check_digit_is_refused() -> None:
    good = _first_valid(15, 83, 85)
    bad = good[:10] + str((int(good[10]) + 1) % 10)
    with pytest.raises(InvalidIdentifier, match="check digits"):
        NationalIdentityNumber(bad)


def test_impossible_date_is_refused() -> None:
    value = _first_valid(31, 82, 85)  # 31 February
    with pytest.raises(InvalidIdentifier, match="real date"):
        NationalIdentityNumber(value)


@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_any_eleven_digits_either_validate_or_raise_cleanly(value: str) -> None:
    try:
        nin = NationalIdentityNumber(value)
    except InvalidIdentifier:
        return
    assert nin.value == value
    assert 1 <= nin.birth_date.month <= 12


def test_repr_hides_the_personal_number() -> None:
    value = _first_valid(15, 83, 85)
    assert value[6:] not in repr(NationalIdentityNumber(value))


def test_oid_forms() -> None:
    assert Oid("urn:oid:2.16.578.1").value == "2.16.578.1"
    assert Oid("2.16.578.1").urn == "urn:oid:2.16.578.1"
    for bad in ["", "3.1", "1.02", "1..2", "1", "1." + "1" * 70]:
        with pytest.raises(InvalidIdentifier):
            Oid(bad)


def test_home_community_id_requires_urn_form() -> None:
    assert str(HomeCommunityId.parse("urn:oid:2.16.578.1.12.4.5.100.1")).startswith("urn:oid:")
    with pytest.raises(InvalidIdentifier, match="urn:oid"):
        HomeCommunityId.parse("2.16.578.1")


def test_document_unique_id_with_extension() -> None:
    assert DocumentUniqueId("1.2.3^abc").value == "1.2.3^abc"
    assert DocumentUniqueId("urn:oid:1.2.3").value == "1.2.3"
    with pytest.raises(InvalidIdentifier):
        DocumentUniqueId("1.2.3^" + "x" * 17)
    with pytest.raises(InvalidIdentifier):
        DocumentUniqueId("not-an-oid")


def test_hpr_organisation_and_resh() -> None:
    assert HprNumber("1234567").value == "1234567"
    with pytest.raises(InvalidIdentifier):
        HprNumber("12a")
    orgnr = OrganisationNumber.with_check_digit("99300000")
    assert orgnr is not None
    assert OrganisationNumber(orgnr).value == orgnr
    with pytest.raises(InvalidIdentifier, match="check digit"):
        OrganisationNumber(orgnr[:8] + str((int(orgnr[8]) + 1) % 10))
    with pytest.raises(InvalidIdentifier):
        ReshId("")
