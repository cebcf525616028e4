"""What the population register says about one person beyond the access rules: sex, death, GP.

The population (`population.py`) holds each citizen's name, address, address protection and a
deceased flag. The patient lookup (IHE PDQm) also shows legal sex, the date of death and the
regular GP (fastlege). They are derived here from the person's synthetic identity number, never
drawn from the population's random generator, so that adding them changes no person, address or
document that the demo and the tests already rely on:

- sex: the third digit of the individual number (odd: male), as Folkeregisteret encodes it;
- date of death: a stable day within the three years before the register's reference date;
- GP: a physician at a GP office (fastlegekontor) in the person's home region, chosen by a
  stable digest of the number (the fastlegeordning lists every resident with one GP);
- e-mail: a synthetic address in the reserved `.example` domain (RFC 2606) for every living
  person of 16 or more without a protected address, as the contact register (Kontakt- og
  reservasjonsregisteret) would give it; used only to tell the person that emergency access
  was used (issue 11, defect 7). None for a protected address (kode 6/7, see docs/pdqm.md).
- contact details (`contact_details`): the contact register's whole entry for a person, the
  e-mail above, a synthetic mobile number under the same rules, and the language the person
  prefers (bokmål, nynorsk or English; the portal's default language for them). The dialogue
  service reads it to tell a person by e-mail that there is something to read (issue 15).

References: Skatteetaten, "Fødselsnummer" (individual number, sex digit); Forskrift om
fastlegeordning i kommunene §§ 5, 12 (every resident is offered a GP, one list per GP).
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta

from onerecord.domain import NationalIdentityNumber
from onerecord.synth.numbers import Sex, ensure_synthetic
from onerecord.synth.population import (
    AddressProtection,
    Citizen,
    Organisation,
    Population,
    Practitioner,
)

__all__ = [
    "CONTACT_LANGUAGES",
    "EMAIL_DOMAIN",
    "EMAIL_MIN_AGE",
    "ContactDetails",
    "GeneralPractitioner",
    "contact_details",
    "date_of_death",
    "email_address",
    "general_practitioner",
    "sex_of",
]

EMAIL_DOMAIN = "innbygger.example"
"""Reserved for examples (RFC 2606 §3): no mail to a synthetic person can reach anyone."""
EMAIL_MIN_AGE = 16
"""Own digital access from 16 (TRUST-FRAMEWORK §5.2); younger people get no notice by e-mail."""

_GP_OFFICE = "86.211"
"""Volven 1303 facility type of a GP office (allmennlegetjeneste)."""
_DEATH_WINDOW_DAYS = 3 * 365


@dataclass(frozen=True, slots=True)
class GeneralPractitioner:
    """A person's fastlege: the physician and the office whose list the person is on."""

    practitioner: Practitioner
    office: Organisation


def _stable(nin: NationalIdentityNumber, purpose: str) -> int:
    """A number fixed by the identity number and the purpose; no random state is consumed."""
    digest = hashlib.sha256(f"{purpose}:{nin.value}".encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big")


def sex_of(nin: NationalIdentityNumber) -> Sex:
    """Return the legal sex a synthetic identity number encodes (odd ninth digit: male)."""
    ensure_synthetic(nin)
    return Sex.MALE if int(nin.value[8]) % 2 else Sex.FEMALE


def date_of_death(citizen: Citizen, reference_date: date) -> date | None:
    """Return the date of death of a deceased citizen (None for the living).

    A stable day within the three years before `reference_date`, never before the birth date.
    """
    if not citizen.deceased:
        return None
    earliest = max(citizen.birth_date, reference_date - timedelta(days=_DEATH_WINDOW_DAYS))
    span = (reference_date - earliest).days
    if span <= 0:
        return reference_date
    return earliest + timedelta(days=_stable(citizen.nin, "death") % span)


def general_practitioner(population: Population, citizen: Citizen) -> GeneralPractitioner | None:
    """Return the citizen's fastlege, or None when the home region has no GP with an HPR number."""
    region = population.address_of(citizen.nin).region_slug
    offices = [o for o in population.organisations_in(region) if o.facility_type.code == _GP_OFFICE]
    office_ids = {o.orgnr.value: o for o in offices}
    doctors = [
        p
        for p in population.practitioners
        if p.organisation.value in office_ids and p.hpr is not None and "LE" in p.categories
    ]
    if not doctors:
        return None
    chosen = doctors[_stable(citizen.nin, "fastlege") % len(doctors)]
    return GeneralPractitioner(chosen, office_ids[chosen.organisation.value])


def _mailbox_part(text: str) -> str:
    """ASCII letters of a name for an e-mail local part («Ærlig Øyen» → "aerlig.oyen")."""
    folded = text.lower().replace("æ", "ae").replace("ø", "o").replace("å", "a")
    plain = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode("ascii")
    return ".".join("".join(ch for ch in word if ch.isalnum()) for word in plain.split()) or "x"


def email_address(citizen: Citizen, reference_date: date) -> str | None:
    """Return the person's synthetic e-mail address, or None (see the module docstring).

    Stable for a person (`given.family.NNN@innbygger.example`, NNN from a digest of the
    number), drawn from no random state.
    """
    if citizen.deceased or citizen.protection is not AddressProtection.NONE:
        return None
    if citizen.age_on(reference_date) < EMAIL_MIN_AGE:
        return None
    number = _stable(citizen.nin, "e-post") % 1000
    local = f"{_mailbox_part(citizen.given)}.{_mailbox_part(citizen.family)}.{number:03d}"
    return f"{local}@{EMAIL_DOMAIN}"


CONTACT_LANGUAGES = ("nb", "nn", "en")
"""The languages a person may prefer in the contact register (the portal's three)."""


@dataclass(frozen=True, slots=True)
class ContactDetails:
    """A person's entry in the (synthetic) contact register."""

    email: str | None
    mobile: str | None
    """Eight digits (a Norwegian mobile number starts with 4 or 9), synthetic."""
    language: str
    """"nb", "nn" or "en"."""


def contact_details(citizen: Citizen, reference_date: date) -> ContactDetails:
    """Return the contact register's entry for the person (see the module docstring).

    Language by a stable digest: about 1 in 8 nynorsk, 1 in 16 English, the rest bokmål; the
    mobile number and the e-mail are given under the same rules (none for a protected address,
    the deceased or under 16).
    """
    email = email_address(citizen, reference_date)
    mobile = None
    if email is not None:
        mobile = f"4{_stable(citizen.nin, 'mobil') % 10**7:07d}"
    share = _stable(citizen.nin, "maalform") % 16
    language = "en" if share == 0 else "nn" if share <= 2 else "nb"
    return ContactDetails(email, mobile, language)
