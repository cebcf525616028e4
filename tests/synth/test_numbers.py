from __future__ import annotations

import random
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onerecord.domain import IdentityKind, InvalidIdentifier, NationalIdentityNumber
from onerecord.synth.numbers import (
    RealFormNumber,
    Sex,
    ensure_synthetic,
    synthetic_dnr,
    synthetic_fnr,
    synthetic_hpr,
    synthetic_orgnr,
    synthetic_resh,
)
from onerecord.synth.population import AddressProtection, Citizen


def _valid_number(day: int, month: int, year2: int) -> str:
    for individual in range(500):
        value = NationalIdentityNumber.with_check_digits(
            f"{day:02d}{month:02d}{year2:02d}{individual:03d}"
        )
        if value is not None:
            return value
    raise AssertionError("no valid number")


birth_dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2039, 12, 31))


@given(seed=st.integers(0, 2**32), born=birth_dates)
def test_synthetic_fnr_is_valid_synthetic_and_born_that_day(seed: int, born: date) -> None:
    nin = synthetic_fnr(random.Random(seed), born)
    assert nin.synthetic
    assert nin.kind is IdentityKind.FNR
    assert nin.birth_date == born
    assert int(nin.value[2:4]) == born.month + 80
    assert NationalIdentityNumber(nin.value) == nin  # check digits hold


@given(seed=st.integers(0, 2**32), born=birth_dates)
def test_synthetic_dnr_adds_forty_to_the_day(seed: int, born: date) -> None:
    nin = synthetic_dnr(random.Random(seed), born)
    assert nin.synthetic
    assert nin.kind is IdentityKind.DNR
    assert int(nin.value[0:2]) == born.day + 40
    assert nin.birth_date == born


@given(seed=st.integers(0, 2**32), sex=st.sampled_from(Sex))
def test_sex_is_encoded_in_the_individual_number(seed: int, sex: Sex) -> None:
    nin = synthetic_fnr(random.Random(seed), date(1980, 5, 17), sex=sex)
    assert (int(nin.value[8]) % 2 == 1) == (sex is Sex.MALE)


def test_same_seed_same_number() -> None:
    a = synthetic_fnr(random.Random(3), date(1990, 1, 1))
    b = synthetic_fnr(random.Random(3), date(1990, 1, 1))
    assert a == b


def test_ensure_synthetic_refuses_real_form_numbers() -> None:
    real = _valid_number(15, 3, 85)
    with pytest.raises(RealFormNumber, match="month \\+ 80") as info:
        ensure_synthetic(real)
    assert real not in str(info.value)  # the refused number is not echoed in full
    with pytest.raises(RealFormNumber):
        ensure_synthetic(NationalIdentityNumber(real))


def test_ensure_synthetic_accepts_test_population_numbers_and_rejects_garbage() -> None:
    synthetic = ensure_synthetic(_valid_number(15, 83, 85))
    assert synthetic.synthetic and synthetic.birth_date == date(1985, 3, 15)
    with pytest.raises(InvalidIdentifier):
        ensure_synthetic("12345678901")


def test_register_refuses_real_form_citizen() -> None:
    real = NationalIdentityNumber(_valid_number(1, 2, 70))
    with pytest.raises(RealFormNumber):
        Citizen(real, "Kari", "Nordmann", "a1", AddressProtection.NONE)


def test_organisation_hpr_and_resh_numbers() -> None:
    rng = random.Random(11)
    orgnrs = [synthetic_orgnr(rng) for _ in range(200)]
    assert all(o.value.startswith("3") and len(o.value) == 9 for o in orgnrs)
    assert len({o.value for o in orgnrs}) > 190
    assert all(4 <= len(synthetic_hpr(rng).value) <= 9 for _ in range(50))
    assert all(synthetic_resh(rng).value.isdigit() for _ in range(50))
