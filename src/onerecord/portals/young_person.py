"""The age rules a young citizen meets, worked out from the birth date in their number (pure).

A citizen under 16 who logs in for themselves gets no documents: every region answers empty
with the reason `citizen-under-age` (TRUST-FRAMEWORK §5.2 "Self, 12–15", E2). The portal then
explains the rule instead of showing an empty list, with the dates on which it changes:

- under 12 (`Stage.CHILD`): the parents see the documents and the access log (a parent with
  parental responsibility, when a parent lives at the child's address; E4, E6); the child
  does not use the portal alone;
- 12 to 15 (`Stage.YOUNG`): nobody sees the documents through the portal — not the young
  person (E2), not the parents (from the 12th birthday, E5); the young person reads their own
  access log (`citizen_access_log_policy`);
- from the 16th birthday: own access to everything (E1, E3); the parents have none.

Ages are counted as the policy counts them (`onerecord.trust.policy`): a birthday on 29
February falls on 1 March in other years. The birth date is that of the identity number
(synthetic numbers add 80 to the month).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from onerecord.domain import InvalidIdentifier, NationalIdentityNumber
from onerecord.trust.policy import CITIZEN_MIN_AGE, OWN_ACCESS_LOG_MIN_AGE, PARENT_ACCESS_BELOW_AGE

__all__ = ["AgeRule", "Stage", "age_rule", "birthday"]


class Stage(StrEnum):
    """Where a citizen under 16 stands."""

    CHILD = "child"
    """Under 12: the parents see the documents and the access log."""
    YOUNG = "young"
    """12 to 15: nobody sees the documents here; the young person reads their own log."""


@dataclass(frozen=True, slots=True)
class AgeRule:
    """The rule for one citizen under 16 on one day, and when it changes."""

    stage: Stage
    age: int
    parents_until: date
    """The 12th birthday: the parents' access ends, the own access log opens."""
    own_access_from: date
    """The 16th birthday: the person sees their own documents and may set blocks."""

    @property
    def reads_own_log(self) -> bool:
        return self.stage is Stage.YOUNG


def birthday(born: date, years: int) -> date:
    """The day someone born on `born` turns `years` (29 February → 1 March in other years)."""
    try:
        return born.replace(year=born.year + years)
    except ValueError:
        return date(born.year + years, 3, 1)


def age_rule(nin: str, today: date) -> AgeRule | None:
    """Return the rule for the person with this number on `today`; None from 16 (or no number)."""
    try:
        born = NationalIdentityNumber(nin).birth_date
    except (InvalidIdentifier, ValueError):
        return None
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    if age >= CITIZEN_MIN_AGE or age < 0:
        return None
    return AgeRule(
        stage=Stage.YOUNG if age >= OWN_ACCESS_LOG_MIN_AGE else Stage.CHILD,
        age=age,
        parents_until=birthday(born, PARENT_ACCESS_BELOW_AGE),
        own_access_from=birthday(born, CITIZEN_MIN_AGE),
    )
