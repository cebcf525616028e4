"""Whom a citizen may act for, read from the population register at login.

Rules (TRUST-FRAMEWORK §5.2): a parent with parental responsibility for a child under 12
(deny from the 12th birthday), only when at least one parent is registered at the child's
address; a proxy (fullmakt) whose giver is at least 16 and whose holder is at least 18; nobody
with a fortrolig/strengt fortrolig address (kode 7/6) represents or is represented; the
deceased are not represented.

The result goes into the access token as the claim `onerecord:representation`:
`[{"nin": "<11 digits>", "relation": "parent" | "proxy" | "proxy-unable-to-consent",
"acp": "<XUA ACP OID>"}]` — empty when the citizen represents nobody.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, Protocol

from onerecord.domain import InvalidIdentifier, NationalIdentityNumber
from onerecord.trust.principal import RelationKind, Representation

__all__ = [
    "CHILD_AGE_LIMIT",
    "CitizenRegisters",
    "PersonRecord",
    "representation_claim",
    "representations_for",
]

CHILD_AGE_LIMIT = 12
_PROXY_GIVER_MIN_AGE = 16
_PROXY_HOLDER_MIN_AGE = 18


class PersonRecord(Protocol):
    """What Folkeregisteret knows about a person that matters for representation."""

    @property
    def address(self) -> str | None: ...
    @property
    def address_protection(self) -> str | None:
        """ "6" (strengt fortrolig), "7" (fortrolig) or None."""
        ...

    @property
    def deceased(self) -> bool: ...


class CitizenRegisters(Protocol):
    """Folkeregisteret lookups (parents, children) and the proxy register."""

    def person(self, nin: str) -> PersonRecord | None: ...
    def children(self, nin: str) -> Sequence[str]:
        """Children this person has parental responsibility for."""
        ...

    def parents(self, nin: str) -> Sequence[str]: ...
    def proxies_held(self, nin: str) -> Sequence[tuple[str, RelationKind]]:
        """(giver nin, relation) of every fullmakt this person holds."""
        ...


def _age(nin: str, today: date) -> int | None:
    try:
        return NationalIdentityNumber(nin).age_on(today)
    except InvalidIdentifier:
        return None


def _open(record: PersonRecord | None) -> bool:
    return record is not None and record.address_protection is None and not record.deceased


def representations_for(
    nin: str, registers: CitizenRegisters, today: date
) -> tuple[Representation, ...]:
    """Return the persons `nin` may act for today, by the rules in this module's docstring."""
    me = registers.person(nin)
    if not _open(me):
        return ()
    out: list[Representation] = []
    for child in registers.children(nin):
        record = registers.person(child)
        age = _age(child, today)
        if not _open(record) or age is None or age >= CHILD_AGE_LIMIT:
            continue
        assert record is not None
        co_registered = any(
            (p := registers.person(parent)) is not None
            and p.address is not None
            and p.address == record.address
            for parent in registers.parents(child)
        )
        if co_registered:
            out.append(Representation(NationalIdentityNumber(child), RelationKind.PARENT))
    my_age = _age(nin, today)
    if my_age is not None and my_age >= _PROXY_HOLDER_MIN_AGE:
        for giver, relation in registers.proxies_held(nin):
            giver_age = _age(giver, today)
            if giver_age is None or giver_age < _PROXY_GIVER_MIN_AGE:
                continue
            if _open(registers.person(giver)):
                out.append(Representation(NationalIdentityNumber(giver), relation))
    return tuple(out)


def representation_claim(representations: Sequence[Representation]) -> list[dict[str, Any]]:
    """Return the `onerecord:representation` claim value."""
    return [
        {"nin": r.person.value, "relation": r.relation.value, "acp": r.relation.acp}
        for r in representations
    ]
