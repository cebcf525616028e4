"""The synthetic population as the registers the token service looks users up in.

HPR (practitioners and their categories), Enhetsregisteret with the Helsenett member list
(organisations), Folkeregisteret (addresses, address protection, parental responsibility) and the
proxy register (fullmakter in force today), all read from one `synth.population.Population`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from onerecord.domain import HprNumber
from onerecord.synth.population import AddressProtection, Population
from onerecord.trust.principal import RelationKind

__all__ = ["PopulationRegisters", "RegisterOrganisation", "RegisterPerson", "RegisterPractitioner"]


@dataclass(frozen=True, slots=True)
class RegisterPractitioner:
    """A health worker as HPR knows them."""

    given: str
    family: str
    hpr: HprNumber | None
    categories: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RegisterOrganisation:
    """A unit as Enhetsregisteret and the Helsenett member list know it."""

    name: str
    legal_entity: str
    helsenett_member: bool


@dataclass(frozen=True, slots=True)
class RegisterPerson:
    """A person as Folkeregisteret knows them: address, protection ("6"/"7"), deceased."""

    address: str | None
    address_protection: str | None
    deceased: bool


def _today() -> date:
    return datetime.now(UTC).date()


class PopulationRegisters:
    """Implements `sts.StsRegisters` (Registers + CitizenRegisters) over a Population."""

    def __init__(self, population: Population, *, today: Callable[[], date] = _today) -> None:
        self.population = population
        self._today = today

    def practitioner(self, nin: str) -> RegisterPractitioner | None:
        try:
            p = self.population.practitioner(nin)
        except KeyError:
            return None
        return RegisterPractitioner(p.given, p.family, p.hpr, p.categories)

    def organisation(self, orgnr: str) -> RegisterOrganisation | None:
        try:
            org = self.population.organisation(orgnr)
        except KeyError:
            return None
        return RegisterOrganisation(org.name, org.legal_entity.value, org.helsenett_member)

    def person(self, nin: str) -> RegisterPerson | None:
        try:
            citizen = self.population.citizen(nin)
        except KeyError:
            return None
        protection = (
            None if citizen.protection is AddressProtection.NONE else citizen.protection.value
        )
        return RegisterPerson(citizen.address_id, protection, citizen.deceased)

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
