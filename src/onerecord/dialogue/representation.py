"""Who may use the GP office's services for whom: self, parent, proxy — and who never.

Rules (TRUST-FRAMEWORK §5.2; helsenorge "Bruke Helsenorge på vegne av barn"):
- oneself from 16 (helserettslig myndig, pasient- og brukerrettighetsloven §4-3);
- a parent with parental responsibility for a child under 16, only where a parent is registered
  at the child's address (then both parents may); for a child of 12–15 only the practical
  services (appointments, prescription renewal, flu vaccine), never the e-consultation or the
  messages to the office, since from 12 the young person may keep matters from the parents
  (pbrl §3-4 second paragraph);
- a proxy (fullmakt) whose giver is 16 or older and whose holder is 18 or older;
- whoever acts for another person is 18 or older: a young person books only on their own behalf;
- nobody with a protected address (fortrolig/strengt fortrolig, kode 7/6) represents or is
  represented, and nobody acts for another person without a relation.

Each rule answers with one reason code, checked in the order above.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from onerecord.dialogue.model import Service

__all__ = [
    "ADULT_AGE",
    "OWN_ACCESS_AGE",
    "PARENT_SERVICES_12_15",
    "ActingFacts",
    "Relation",
    "RepresentationRefusal",
    "may_act",
]

OWN_ACCESS_AGE = 16
ADULT_AGE = 18
_CHILD_FULL_ACCESS_BELOW = 12
PARENT_SERVICES_12_15 = frozenset(
    {Service.APPOINTMENT_BOOKING, Service.PRESCRIPTION_RENEWAL, Service.FLU_VACCINE}
)


class Relation(StrEnum):
    """How the actor stands to the person the service is for."""

    SELF = "self"
    PARENT = "parent"
    PROXY = "proxy"
    NONE = "none"


class RepresentationRefusal(StrEnum):
    """Why the actor may not use a service for the person."""

    UNDER_16 = "under-16"
    PROTECTED_ADDRESS = "protected-address"
    NO_RELATION = "no-relation"
    ACTOR_UNDER_18 = "actor-under-18"
    CHILD_16_OR_OLDER = "child-16-or-older"
    NOT_CO_REGISTERED = "not-co-registered"
    SERVICE_NOT_FOR_PARENT = "service-not-for-parent-of-12-15"
    PROXY_GIVER_UNDER_16 = "proxy-giver-under-16"


@dataclass(frozen=True, slots=True)
class ActingFacts:
    """The population facts one decision needs (from the token and the office's list)."""

    actor_born: date
    person_born: date
    relation: Relation
    actor_address_protected: bool = False
    person_address_protected: bool = False
    parent_at_child_address: bool = False


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def may_act(facts: ActingFacts, service: Service, today: date) -> RepresentationRefusal | None:
    """Return None when the actor may use `service` for the person today, else why not."""
    person_age = _age(facts.person_born, today)
    if facts.relation is Relation.SELF:
        return None if person_age >= OWN_ACCESS_AGE else RepresentationRefusal.UNDER_16
    if facts.actor_address_protected or facts.person_address_protected:
        return RepresentationRefusal.PROTECTED_ADDRESS
    if facts.relation is Relation.NONE:
        return RepresentationRefusal.NO_RELATION
    if _age(facts.actor_born, today) < ADULT_AGE:
        return RepresentationRefusal.ACTOR_UNDER_18
    if facts.relation is Relation.PARENT:
        if person_age >= OWN_ACCESS_AGE:
            return RepresentationRefusal.CHILD_16_OR_OLDER
        if not facts.parent_at_child_address:
            return RepresentationRefusal.NOT_CO_REGISTERED
        if person_age >= _CHILD_FULL_ACCESS_BELOW and service not in PARENT_SERVICES_12_15:
            return RepresentationRefusal.SERVICE_NOT_FOR_PARENT
        return None
    if person_age < OWN_ACCESS_AGE:
        return RepresentationRefusal.PROXY_GIVER_UNDER_16
    return None
