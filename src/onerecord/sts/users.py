"""The synthetic users a developer can log in as on the STS's login page.

The login page lists the fixed cast (citizens) or staff (health personnel) of the synthetic
population first, then a few others; any other synthetic number can be typed in. Every person
shown is synthetic test data (month + 80), so showing the fødselsnummer is fine here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

__all__ = ["LOGIN_OTHERS", "SyntheticUser", "UserDirectory", "UserKind"]

LOGIN_OTHERS = 20
"""How many people beyond the fixed cast or staff the login page lists."""


class UserKind(StrEnum):
    """Who logs in: a citizen (ID-porten, helsenorge) or health personnel (HelseID)."""

    CITIZEN = "citizen"
    HEALTH_PERSONNEL = "health-personnel"

    @classmethod
    def parse(cls, value: str) -> UserKind:
        """Read `onerecord_user_kind`: citizen, health-personnel or practitioner (the same)."""
        if value == "practitioner":
            return cls.HEALTH_PERSONNEL
        return cls(value)


@dataclass(frozen=True, slots=True)
class SyntheticUser:
    """One person offered on the login page.

    `description` is one line: the age for a citizen, profession, HPR number and organisation
    for health personnel. `role` is the cast or staff key ("parent", "doctor") if any.
    """

    nin: str
    name: str
    description: str
    role: str | None = None


class UserDirectory(Protocol):
    """Lists the people a developer may log in as."""

    def login_candidates(self, kind: UserKind, *, others: int) -> Sequence[SyntheticUser]:
        """Return the fixed cast or staff of `kind` first, then at most `others` more."""
        ...
