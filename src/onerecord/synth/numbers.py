"""Synthetic identity numbers: fødselsnummer, D-number, HPR, organisation number, RESH id.

National identity numbers are always generated in the synthetic form of the Norwegian test
population (Tenor): 80 is added to the birth month, so no generated number can belong to a
real person. Organisation numbers start with 3, as the test entities of Enhetsregisteret do;
HPR and RESH numbers carry no marker and are random.

References: Skatteetaten, "Fødselsnummer" (individual number ranges, k1/k2 modulus 11);
Brønnøysundregistrene, organisation number check digit (weights 3 2 7 6 5 4 3 2).
"""

from __future__ import annotations

import random
from datetime import date
from enum import StrEnum

from onerecord.domain import (
    HprNumber,
    InvalidIdentifier,
    NationalIdentityNumber,
    OrganisationNumber,
    ReshId,
)

__all__ = [
    "RealFormNumber",
    "Sex",
    "ensure_synthetic",
    "synthetic_dnr",
    "synthetic_fnr",
    "synthetic_hpr",
    "synthetic_orgnr",
    "synthetic_resh",
]


class RealFormNumber(InvalidIdentifier):
    """A national identity number in real form reached the synthetic data generator."""


class Sex(StrEnum):
    """Legal sex as encoded in the third digit of the individual number (odd: male)."""

    FEMALE = "female"
    MALE = "male"


def ensure_synthetic(value: str | NationalIdentityNumber) -> NationalIdentityNumber:
    """Return the number if it is synthetic (month + 80); refuse a real-form number loudly."""
    text = value.value if isinstance(value, NationalIdentityNumber) else value
    nin = value if isinstance(value, NationalIdentityNumber) else NationalIdentityNumber(text)
    if not nin.synthetic:
        raise RealFormNumber(
            f"refusing national identity number {text[:4]}*******: its month digits "
            f"({text[2:4]}) are a real-form month; the synthetic generator only accepts "
            "test-population numbers with month + 80 (81–92)"
        )
    return nin


def _individual_range(year: int) -> range:
    """Return the individual numbers (digits 7–9) allowed for a birth year."""
    if 1854 <= year <= 1899:
        return range(500, 750)
    if 1900 <= year <= 1999:
        return range(0, 500)
    if 2000 <= year <= 2039:
        return range(500, 1000)
    raise ValueError(f"no fødselsnummer exists for birth year {year}")


def _generate(rng: random.Random, birth_date: date, *, day_offset: int, sex: Sex | None) -> str:
    allowed = _individual_range(birth_date.year)
    head = (
        f"{birth_date.day + day_offset:02d}{birth_date.month + 80:02d}{birth_date.year % 100:02d}"
    )
    for _ in range(10_000):
        individual = rng.randrange(allowed.start, allowed.stop)
        if sex is not None and (individual % 2 == 1) != (sex is Sex.MALE):
            individual = individual + 1 if individual + 1 < allowed.stop else individual - 1
        value = NationalIdentityNumber.with_check_digits(f"{head}{individual:03d}")
        if value is not None:
            return value
    raise RuntimeError("no valid individual number found")  # pragma: no cover - 1 in 10^400


def synthetic_fnr(
    rng: random.Random, birth_date: date, *, sex: Sex | None = None
) -> NationalIdentityNumber:
    """Return a synthetic fødselsnummer (month + 80) born on `birth_date`."""
    return ensure_synthetic(_generate(rng, birth_date, day_offset=0, sex=sex))


def synthetic_dnr(
    rng: random.Random, birth_date: date, *, sex: Sex | None = None
) -> NationalIdentityNumber:
    """Return a synthetic D-number (day + 40, month + 80) born on `birth_date`."""
    return ensure_synthetic(_generate(rng, birth_date, day_offset=40, sex=sex))


def synthetic_hpr(rng: random.Random) -> HprNumber:
    """Return a random seven-digit number in the form of an HPR number."""
    return HprNumber(str(rng.randrange(1_000_000, 10_000_000)))


def synthetic_orgnr(rng: random.Random) -> OrganisationNumber:
    """Return an organisation number of the test range (first digit 3) with a valid check digit."""
    while True:
        value = OrganisationNumber.with_check_digit(f"3{rng.randrange(10**7):07d}")
        if value is not None:
            return OrganisationNumber(value)


def synthetic_resh(rng: random.Random) -> ReshId:
    """Return a random six- to nine-digit RESH id."""
    return ReshId(str(rng.randrange(100_000, 1_000_000_000)))
