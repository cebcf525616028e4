"""The synthetic population as the registers the token service looks users up in.

HPR (practitioners and their categories), Enhetsregisteret with the Helsenett member list
(organisations), Folkeregisteret (addresses, address protection, parental responsibility) and the
proxy register (fullmakter in force today), all read from one `synth.population.Population`;
and the development login page's list of synthetic users (cast and staff first).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import islice

from onerecord.domain import HprNumber, code_tables
from onerecord.sts.users import SyntheticUser, UserKind
from onerecord.synth import places
from onerecord.synth.demographics import (
    contact_details,
    date_of_death,
    email_address,
    general_practitioner,
    sex_of,
)
from onerecord.synth.population import (
    HPR_CATEGORY_SYSTEM,
    AddressProtection,
    Citizen,
    Population,
    Practitioner,
)
from onerecord.trust.principal import RelationKind

__all__ = [
    "PopulationRegisters",
    "RegisterAddress",
    "RegisterGp",
    "RegisterOrganisation",
    "RegisterPatient",
    "RegisterPerson",
    "RegisterPractitioner",
]


@dataclass(frozen=True, slots=True)
class RegisterPractitioner:
    """A health worker as HPR knows them."""

    given: str
    family: str
    hpr: HprNumber | None
    categories: tuple[str, ...]
    employments: tuple[str, ...] = ()
    """The orgnr of each unit (underenhet) the person works at."""


@dataclass(frozen=True, slots=True)
class RegisterOrganisation:
    """A unit as Enhetsregisteret and the Helsenett member list know it, with its departments."""

    name: str
    legal_entity: str
    helsenett_member: bool
    departments: tuple[str, ...] = ()
    """RESH ids of the unit's departments."""
    department_names: tuple[tuple[str, str], ...] = ()
    """(RESH id, name) of each department."""


@dataclass(frozen=True, slots=True)
class RegisterPerson:
    """A person as Folkeregisteret knows them: name, address, protection ("6"/"7"), deceased."""

    name: str | None
    address: str | None
    address_protection: str | None
    deceased: bool


@dataclass(frozen=True, slots=True)
class RegisterAddress:
    """A home address (bostedsadresse) as the register gives it out."""

    street: str
    postal_code: str
    city: str


@dataclass(frozen=True, slots=True)
class RegisterGp:
    """A person's regular GP (fastlege) and the office whose list the person is on."""

    name: str
    hpr: str
    office: str
    office_orgnr: str


@dataclass(frozen=True, slots=True)
class RegisterPatient:
    """A person as the patient lookup (PDQm) gives them out: who they are, not where they live
    when the address is protected.

    `address` is None whenever `address_protection` is set ("6" strengt fortrolig, "7"
    fortrolig): a protected address never leaves the register.
    """

    nin: str
    given: str
    family: str
    birth_date: date
    sex: str
    deceased: bool
    deceased_on: date | None
    address_protection: str | None
    address: RegisterAddress | None
    gp: RegisterGp | None
    email: str | None = None
    """The contact e-mail (synthetic, synth.demographics.email_address); never with protection."""

    def __post_init__(self) -> None:
        if self.address_protection is not None and self.address is not None:
            raise ValueError("a protected address is never given out")
        if self.address_protection is not None and self.email is not None:
            raise ValueError("no e-mail is given out for a protected address (docs/pdqm.md)")


def _today() -> date:
    return datetime.now(UTC).date()


class PopulationRegisters:
    """Implements `sts.StsRegisters` (registers and login user directory) over a Population."""

    def __init__(self, population: Population, *, today: Callable[[], date] = _today) -> None:
        self.population = population
        self._today = today
        # A municipality is the hovedenhet of its care units but gives no care itself, so the
        # population lists only the unit; Enhetsregisteret knows the municipality as well.
        self._hovedenheter: dict[str, RegisterOrganisation] = {}
        for org in population.organisations:
            parent = org.legal_entity.value
            if parent != org.orgnr.value and parent not in self._hovedenheter:
                name = places.MUNICIPALITIES.get(org.region_slug, (org.name, ""))[0]
                self._hovedenheter[parent] = RegisterOrganisation(
                    name, parent, org.helsenett_member
                )

    def practitioner(self, nin: str) -> RegisterPractitioner | None:
        try:
            p = self.population.practitioner(nin)
        except KeyError:
            return None
        return RegisterPractitioner(
            p.given, p.family, p.hpr, p.categories, employments=(p.organisation.value,)
        )

    def organisation(self, orgnr: str) -> RegisterOrganisation | None:
        try:
            org = self.population.organisation(orgnr)
        except KeyError:
            return self._hovedenheter.get(orgnr)
        return RegisterOrganisation(
            org.name,
            org.legal_entity.value,
            org.helsenett_member,
            departments=tuple(str(d.resh) for d in org.departments),
            department_names=tuple((str(d.resh), d.name) for d in org.departments),
        )

    def person(self, nin: str) -> RegisterPerson | None:
        try:
            citizen = self.population.citizen(nin)
        except KeyError:
            return None
        protection = (
            None if citizen.protection is AddressProtection.NONE else citizen.protection.value
        )
        return RegisterPerson(citizen.name, citizen.address_id, protection, citizen.deceased)

    def patient(self, nin: str) -> RegisterPatient | None:
        """Return what the patient lookup may give out about `nin` (None: not in the register)."""
        try:
            citizen = self.population.citizen(nin)
        except KeyError:
            return None
        protection = (
            None if citizen.protection is AddressProtection.NONE else citizen.protection.value
        )
        address = None
        if protection is None:
            home = self.population.address(citizen.address_id)
            address = RegisterAddress(home.street, home.postal_code, home.city)
        gp = None
        found = general_practitioner(self.population, citizen)
        if found is not None and found.practitioner.hpr is not None:
            gp = RegisterGp(
                found.practitioner.name,
                found.practitioner.hpr.value,
                found.office.name,
                found.office.orgnr.value,
            )
        return RegisterPatient(
            nin=citizen.nin.value,
            given=citizen.given,
            family=citizen.family,
            birth_date=citizen.birth_date,
            sex=sex_of(citizen.nin).value,
            deceased=citizen.deceased,
            deceased_on=date_of_death(citizen, self.population.reference_date),
            address_protection=protection,
            address=address,
            gp=gp,
            email=email_address(citizen, self.population.reference_date),
        )

    def preferred_language(self, nin: str) -> str | None:
        """The language the person chose in the contact register (nb, nn, en), or None."""
        try:
            citizen = self.population.citizen(nin)
        except KeyError:
            return None
        return contact_details(citizen, self.population.reference_date).language

    def children(self, nin: str) -> Sequence[str]:
        return [c.nin.value for c in self.population.children_of(nin)]

    def parents(self, nin: str) -> Sequence[str]:
        return [p.nin.value for p in self.population.parents_of(nin)]

    def proxies_held(self, nin: str) -> Sequence[tuple[str, RelationKind]]:
        today = self._today()
        return [
            (p.giver.value, RelationKind.PROXY)
            for p in self.population.proxies_for(nin)
            if p.valid_on(today)
        ]

    def login_candidates(self, kind: UserKind, *, others: int) -> Sequence[SyntheticUser]:
        if kind is UserKind.CITIZEN:
            cast = {c.nin.value: key for key, c in self.population.cast.items()}
            rest = (
                c for c in self.population.citizens if c.nin.value not in cast and not c.deceased
            )
            citizens = [*self.population.cast.values(), *islice(rest, max(others, 0))]
            return [self._citizen(c, cast.get(c.nin.value)) for c in citizens]
        staff = {p.nin.value: key for key, p in self.population.staff.items()}
        more = (p for p in self.population.practitioners if p.nin.value not in staff)
        people = [*self.population.staff.values(), *islice(more, max(others, 0))]
        return [self._practitioner(p, staff.get(p.nin.value)) for p in people]

    def _citizen(self, citizen: Citizen, role: str | None) -> SyntheticUser:
        age = citizen.age_on(self._today())
        return SyntheticUser(citizen.nin.value, citizen.name, f"{age} år", role)

    def _practitioner(self, person: Practitioner, role: str | None) -> SyntheticUser:
        tables = code_tables()
        professions = [
            tables.display(HPR_CATEGORY_SYSTEM, code) or code for code in person.categories
        ]
        parts = [", ".join(professions) or "uten autorisasjon"]
        parts.append(f"HPR {person.hpr.value}" if person.hpr else "uten HPR-nummer")
        org = self.population.organisation(person.organisation)
        place = org.name
        if person.department is not None:
            place += f", {org.department(person.department).name}"
        parts.append(place)
        return SyntheticUser(person.nin.value, person.name, " · ".join(parts), role)
