"""Identifiers of the Norwegian health sector and of IHE XDS, as frozen value objects.

Every class validates on construction, so a value that exists is a valid value.

References:
- Fødselsnummer / D-number: Skatteetaten, "Fødselsnummer" (check digits k1/k2, modulus 11);
  synthetic test population (Tenor): month + 80.
- OID: ISO/IEC 9834-1; XDS limits an OID to 64 characters (IHE ITI TF-3 4.2.3.1.7).
- uniqueId: IHE ITI TF-3 4.2.3.2.26 (OID, optionally "^" + extension of at most 16 characters).
- homeCommunityId: IHE ITI TF-3 4.2.3.2.6 ("urn:oid:" + OID).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from onerecord.domain.errors import InvalidIdentifier

__all__ = [
    "FNR_SYSTEM",
    "DNR_SYSTEM",
    "HNR_SYSTEM",
    "HPR_SYSTEM",
    "ORGNR_SYSTEM",
    "RESH_SYSTEM",
    "DocumentUniqueId",
    "HomeCommunityId",
    "HprNumber",
    "IdentityKind",
    "NationalIdentityNumber",
    "Oid",
    "OrganisationNumber",
    "RepositoryUniqueId",
    "ReshId",
    "strip_urn_oid",
]

FNR_SYSTEM = "2.16.578.1.12.4.1.4.1"
DNR_SYSTEM = "2.16.578.1.12.4.1.4.2"
HNR_SYSTEM = "2.16.578.1.12.4.1.4.3"
HPR_SYSTEM = "2.16.578.1.12.4.1.4.4"
ORGNR_SYSTEM = "2.16.578.1.12.4.1.4.101"
RESH_SYSTEM = "2.16.578.1.12.4.1.4.102"

_OID_RE = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_ORGNR_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)


def strip_urn_oid(value: str) -> str:
    """Return the bare OID of "urn:oid:1.2.3" or "1.2.3" (both forms appear in the field)."""
    return value[8:] if value.lower().startswith("urn:oid:") else value


def _mod11(digits: str, weights: tuple[int, ...]) -> int | None:
    """Return the modulus-11 check digit, or None when the remainder makes the number invalid."""
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    check = (11 - remainder) % 11
    return None if check == 10 else check


@dataclass(frozen=True, slots=True)
class Oid:
    """An ISO object identifier in dotted form, at most 64 characters (XDS)."""

    value: str

    def __post_init__(self) -> None:
        bare = strip_urn_oid(self.value)
        if bare != self.value:
            object.__setattr__(self, "value", bare)
        if len(bare) > 64 or not _OID_RE.match(bare):
            raise InvalidIdentifier(f"{self.value!r} is not an OID (dotted digits, at most 64)")

    @property
    def urn(self) -> str:
        return f"urn:oid:{self.value}"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class HomeCommunityId:
    """The XCA community identifier, always rendered "urn:oid:<oid>"."""

    oid: Oid

    @classmethod
    def parse(cls, value: str) -> HomeCommunityId:
        if not value.lower().startswith("urn:oid:"):
            raise InvalidIdentifier(f"homeCommunityId {value!r} must have the form urn:oid:<OID>")
        return cls(Oid(value))

    @property
    def urn(self) -> str:
        return self.oid.urn

    def __str__(self) -> str:
        return self.oid.urn


@dataclass(frozen=True, slots=True)
class RepositoryUniqueId:
    """The OID of a document repository."""

    oid: Oid

    @classmethod
    def parse(cls, value: str) -> RepositoryUniqueId:
        return cls(Oid(value))

    def __str__(self) -> str:
        return self.oid.value


@dataclass(frozen=True, slots=True)
class DocumentUniqueId:
    """XDS DocumentEntry.uniqueId: an OID, optionally followed by "^" and an extension."""

    value: str

    def __post_init__(self) -> None:
        bare = strip_urn_oid(self.value)
        if bare != self.value:
            object.__setattr__(self, "value", bare)
        if len(bare) > 128:
            raise InvalidIdentifier("document uniqueId is longer than 128 characters")
        root, sep, extension = bare.partition("^")
        if not _OID_RE.match(root) or len(root) > 64:
            raise InvalidIdentifier(f"document uniqueId {self.value!r} does not start with an OID")
        if sep and not (1 <= len(extension) <= 16 and extension.isprintable()):
            raise InvalidIdentifier("uniqueId extension must be 1 to 16 printable characters")

    @property
    def urn(self) -> str:
        return f"urn:oid:{self.value}" if "^" not in self.value else self.value

    def __str__(self) -> str:
        return self.value


class IdentityKind(StrEnum):
    """What kind of national identity number a value is."""

    FNR = "fnr"
    DNR = "dnr"
    HNR = "hnr"

    @property
    def system(self) -> str:
        return {IdentityKind.FNR: FNR_SYSTEM, IdentityKind.DNR: DNR_SYSTEM}.get(self, HNR_SYSTEM)


def _century(year2: int, individual: int) -> int | None:
    """Return the birth century from the individual number (Skatteetaten ranges)."""
    if individual <= 499:
        return 1900
    if individual <= 749 and year2 >= 54:
        return 1800
    if year2 <= 39:
        return 2000
    if individual >= 900:
        return 1900
    return None


@dataclass(frozen=True, slots=True)
class NationalIdentityNumber:
    """A Norwegian fødselsnummer, D-number or H-number (11 digits, two mod-11 check digits).

    The synthetic test population adds 80 to the month; such numbers are accepted and flagged
    with `synthetic`. `require_synthetic()` is what the data generator calls.
    """

    value: str
    kind: IdentityKind = field(init=False, compare=False)
    synthetic: bool = field(init=False, compare=False)
    birth_date: date = field(init=False, compare=False)

    def __post_init__(self) -> None:
        v = self.value
        if len(v) != 11 or not v.isascii() or not v.isdigit():
            raise InvalidIdentifier("national identity number must be exactly 11 digits")
        if _mod11(v[:9], _K1_WEIGHTS) != int(v[9]) or _mod11(v[:10], _K2_WEIGHTS) != int(v[10]):
            raise InvalidIdentifier("national identity number has wrong check digits (mod 11)")
        day, month, year2, individual = int(v[0:2]), int(v[2:4]), int(v[4:6]), int(v[6:9])
        synthetic = False
        if month > 80:
            month -= 80
            synthetic = True
        kind = IdentityKind.FNR
        if month > 40:
            month -= 40
            kind = IdentityKind.HNR
        if day > 40:
            if kind is IdentityKind.HNR:
                raise InvalidIdentifier("national identity number is both a D- and an H-number")
            day -= 40
            kind = IdentityKind.DNR
        century = _century(year2, individual)
        if century is None:
            raise InvalidIdentifier("individual number does not fit the birth year")
        try:
            born = date(century + year2, month, day)
        except ValueError:
            raise InvalidIdentifier("national identity number does not hold a real date") from None
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "synthetic", synthetic)
        object.__setattr__(self, "birth_date", born)

    @property
    def system(self) -> str:
        return self.kind.system

    def require_synthetic(self) -> NationalIdentityNumber:
        """Return self if synthetic (month + 80), else raise: real numbers are never generated."""
        if not self.synthetic:
            raise InvalidIdentifier(
                "refusing a real-form national identity number: only synthetic numbers "
                "(month + 80) are allowed here"
            )
        return self

    def age_on(self, day: date) -> int:
        """Age in whole years on `day`."""
        b = self.birth_date
        return day.year - b.year - ((day.month, day.day) < (b.month, b.day))

    @staticmethod
    def with_check_digits(first_nine: str) -> str | None:
        """Append the two check digits to nine digits, or None if no valid number exists."""
        k1 = _mod11(first_nine, _K1_WEIGHTS)
        if k1 is None:
            return None
        k2 = _mod11(first_nine + str(k1), _K2_WEIGHTS)
        return None if k2 is None else f"{first_nine}{k1}{k2}"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        # Never print a whole identity number in logs or tracebacks.
        return f"NationalIdentityNumber('{self.value[:6]}*****')"


@dataclass(frozen=True, slots=True)
class HprNumber:
    """A number in Helsepersonellregisteret (HPR): 4 to 9 digits."""

    value: str

    def __post_init__(self) -> None:
        if not (4 <= len(self.value) <= 9 and self.value.isascii() and self.value.isdigit()):
            raise InvalidIdentifier("HPR number must be 4 to 9 digits")

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class OrganisationNumber:
    """An organisation number in Enhetsregisteret: 9 digits, mod-11 check digit."""

    value: str

    def __post_init__(self) -> None:
        v = self.value
        if len(v) != 9 or not v.isascii() or not v.isdigit():
            raise InvalidIdentifier("organisation number must be exactly 9 digits")
        if _mod11(v[:8], _ORGNR_WEIGHTS) != int(v[8]):
            raise InvalidIdentifier("organisation number has a wrong check digit (mod 11)")

    @staticmethod
    def with_check_digit(first_eight: str) -> str | None:
        check = _mod11(first_eight, _ORGNR_WEIGHTS)
        return None if check is None else f"{first_eight}{check}"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class ReshId:
    """A department id in the RESH register (Register for enheter i spesialisthelsetjenesten)."""

    value: str

    def __post_init__(self) -> None:
        if not (1 <= len(self.value) <= 12 and self.value.isascii() and self.value.isdigit()):
            raise InvalidIdentifier("RESH id must be 1 to 12 digits")

    def __str__(self) -> str:
        return self.value
