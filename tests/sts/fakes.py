"""A small fake population (registers) and client-side helpers for trust and STS tests.

Every identity number is synthetic (month + 80). Children's numbers are drawn relative to today
so that age rules (under 12) hold whenever the suite runs.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from onerecord.domain import HprNumber, NationalIdentityNumber
from onerecord.sts.users import SyntheticUser, UserKind
from onerecord.trust.keys import SigningKey
from onerecord.trust.principal import RelationKind


def synthetic_nin(born: date) -> str:
    """Return a valid synthetic fødselsnummer (month + 80) for someone born on `born`."""
    start = 500 if born.year >= 2000 else 100
    for individual in range(start, start + 400):
        nine = f"{born.day:02d}{born.month + 80:02d}{born.year % 100:02d}{individual:03d}"
        value = NationalIdentityNumber.with_check_digits(nine)
        if value is not None:
            assert NationalIdentityNumber(value).birth_date == born
            return value
    raise AssertionError("no valid number")


def years_ago(years: int, days: int = 30) -> date:
    today = date.today()
    born = date(today.year - years, today.month, min(today.day, 28))
    return date.fromordinal(born.toordinal() - days)


DOCTOR = synthetic_nin(date(1980, 1, 1))
SECRETARY = synthetic_nin(date(1960, 8, 5))
NURSE = synthetic_nin(date(1990, 4, 20))
PARENT = synthetic_nin(date(1975, 6, 15))
OTHER_PARENT = synthetic_nin(date(1976, 3, 9))
CHILD_8 = synthetic_nin(years_ago(8))
CHILD_13 = synthetic_nin(years_ago(13))
CHILD_AWAY = synthetic_nin(years_ago(6))
PROTECTED = synthetic_nin(date(1985, 9, 3))
PROTECTED_CHILD = synthetic_nin(years_ago(5))
GIVER = synthetic_nin(date(1950, 2, 2))

LEGAL_ENTITY = "974000016"
POINT_OF_CARE = "974000024"
NON_MEMBER = "974000032"
NON_MEMBER_UNIT = "974000040"


DEPARTMENT = "4001031"
DEPARTMENT_NAME = "Medisinsk klinikk"
OTHER_UNIT = "974000059"
"""Another unit of LEGAL_ENTITY, where nobody in the fake HPR works."""


@dataclass(frozen=True)
class FakePractitioner:
    given: str
    family: str
    hpr: HprNumber | None
    categories: tuple[str, ...]
    employments: tuple[str, ...] = (POINT_OF_CARE,)


@dataclass(frozen=True)
class FakeOrganisation:
    name: str
    legal_entity: str
    helsenett_member: bool
    departments: tuple[str, ...] = ()
    department_names: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FakePerson:
    address: str | None
    address_protection: str | None = None
    deceased: bool = False
    name: str | None = None


@dataclass
class FakePopulation:
    """Implements the Registers (attestation) and CitizenRegisters (STS) lookups."""

    practitioners: dict[str, FakePractitioner] = field(default_factory=dict)
    organisations: dict[str, FakeOrganisation] = field(default_factory=dict)
    people: dict[str, FakePerson] = field(default_factory=dict)
    parent_links: list[tuple[str, str]] = field(default_factory=list)
    proxies: list[tuple[str, str, RelationKind]] = field(default_factory=list)

    def practitioner(self, nin: str) -> FakePractitioner | None:
        return self.practitioners.get(nin)

    def organisation(self, orgnr: str) -> FakeOrganisation | None:
        return self.organisations.get(orgnr)

    def person(self, nin: str) -> FakePerson | None:
        return self.people.get(nin)

    def children(self, nin: str) -> Sequence[str]:
        return [c for p, c in self.parent_links if p == nin]

    def parents(self, nin: str) -> Sequence[str]:
        return [p for p, c in self.parent_links if c == nin]

    def proxies_held(self, nin: str) -> Sequence[tuple[str, RelationKind]]:
        return [(g, r) for h, g, r in self.proxies if h == nin]

    def login_candidates(self, kind: UserKind, *, others: int) -> Sequence[SyntheticUser]:
        if kind is UserKind.CITIZEN:
            return [SyntheticUser(n, p.name or n, "innbygger") for n, p in self.people.items()]
        return [
            SyntheticUser(n, f"{p.given} {p.family}", "helsepersonell")
            for n, p in self.practitioners.items()
        ]


def make_population() -> FakePopulation:
    return FakePopulation(
        practitioners={
            DOCTOR: FakePractitioner("Kari", "Lege", HprNumber("1234567"), ("LE",)),
            NURSE: FakePractitioner("Ola", "Pleier", HprNumber("7654321"), ("SP",)),
            SECRETARY: FakePractitioner("Siri", "Sekretær", None, ()),
        },
        organisations={
            LEGAL_ENTITY: FakeOrganisation("Testsykehuset HF", LEGAL_ENTITY, True),
            POINT_OF_CARE: FakeOrganisation(
                "Testsykehuset HF, Ullevål",
                LEGAL_ENTITY,
                True,
                departments=(DEPARTMENT,),
                department_names=((DEPARTMENT, DEPARTMENT_NAME),),
            ),
            OTHER_UNIT: FakeOrganisation("Testsykehuset HF, Aker", LEGAL_ENTITY, True),
            NON_MEMBER: FakeOrganisation("Uten Helsenett AS", NON_MEMBER, False),
            NON_MEMBER_UNIT: FakeOrganisation("Uten Helsenett AS avd", NON_MEMBER, False),
        },
        people={
            DOCTOR: FakePerson("Gate 1"),
            PARENT: FakePerson("Gate 2"),
            OTHER_PARENT: FakePerson("Gate 9"),
            CHILD_8: FakePerson("Gate 2"),
            CHILD_13: FakePerson("Gate 2"),
            CHILD_AWAY: FakePerson("Gate 7"),
            PROTECTED: FakePerson(None, address_protection="6"),
            PROTECTED_CHILD: FakePerson(None, address_protection="6"),
            GIVER: FakePerson("Gate 3"),
        },
        parent_links=[
            (PARENT, CHILD_8),
            (PARENT, CHILD_13),
            (PARENT, CHILD_AWAY),
            (OTHER_PARENT, CHILD_8),
            (PROTECTED, PROTECTED_CHILD),
        ],
        proxies=[(PARENT, GIVER, RelationKind.PROXY)],
    )


def attestation_details(**changes: Any) -> dict[str, Any]:
    """Return a valid narrow attestation (A1); `changes` maps dotted paths to new values.

    A value of `...` (Ellipsis) deletes the member.
    """
    details: dict[str, Any] = {
        "type": "nhn:tillitsrammeverk:parameters",
        "practitioner": {
            "authorization": {"code": "LE", "system": "urn:oid:2.16.578.1.12.4.1.1.9060"},
            "legal_entity": {"id": LEGAL_ENTITY, "system": "urn:oid:2.16.578.1.12.4.1.4.101"},
            "point_of_care": {"id": POINT_OF_CARE, "system": "2.16.578.1.12.4.1.4.101"},
            "department": {"id": DEPARTMENT, "system": "urn:oid:2.16.578.1.12.4.1.4.102"},
        },
        "care_relationship": {
            "healthcare_service": {"code": "01", "system": "urn:oid:2.16.578.1.12.4.1.1.8666"},
            "purpose_of_use": {"code": "TREAT", "system": "urn:oid:2.16.840.1.113883.1.11.20448"},
            "purpose_of_use_details": {
                "code": "BEHANDLER",
                "system": "urn:AuditEventHL7Norway/CodeSystem/carerelation",
            },
            "decision_ref": {"id": "7f1c2a9e-3d4b-4c5d-9e8f-0a1b2c3d4e5f", "user_selected": True},
        },
        "patients": [],
    }
    for path, value in changes.items():
        *parents, last = path.split(".")
        target = details
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    return details


def client_assertion(
    key: SigningKey,
    client_id: str,
    audience: str,
    *,
    typ: str = "client-authentication+jwt",
    lifetime: int = 30,
    jti: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": jti or secrets.token_urlsafe(16),
        **(extra or {}),
    }
    return key.sign(claims, typ=typ)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
