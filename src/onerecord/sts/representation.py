"""Whom a citizen may act for, and whom not and why, read from the population register at login.

Rules (TRUST-FRAMEWORK §5.2): a parent with parental responsibility for a child under 12
(deny from the 12th birthday), only when at least one parent is registered at the child's
address — and, in tokens for the dialogue with the GP office only (`dialogue=True`), for a
child of 12–15 on the same condition (docs/dialogue.md: the practical services; the record's
rule is unchanged, and such a token, of another audience, never reaches the record); a proxy
(fullmakt) whose giver is at least 16 and whose holder is at least 18; nobody with a
fortrolig/strengt fortrolig address (kode 7/6) represents or is represented; the deceased are
not represented.

Every relation the register knows ends up in exactly one of two lists (`assess_representation`):
allowed, or refused with one reason code (`RefusalReason`, checked in the order listed there).
The allowed list goes into the access token as the claim `onerecord:representation`:
`[{"nin": "<11 digits>", "relation": "parent" | "proxy" | "proxy-unable-to-consent",
"acp": "<XUA ACP OID>"}]` — empty when the citizen represents nobody. Both lists, with names,
are what the STS's userinfo endpoint tells the citizen portal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Protocol

from onerecord.domain import InvalidIdentifier, NationalIdentityNumber
from onerecord.trust.principal import RelationKind, Representation

__all__ = [
    "CHILD_AGE_LIMIT",
    "CitizenRegisters",
    "PersonRecord",
    "RefusalReason",
    "RefusedRepresentation",
    "RepresentationAssessment",
    "assess_representation",
    "dialogue_only_representations",
    "representation_claim",
    "representations_for",
]

CHILD_AGE_LIMIT = 12
_CHILD_OLDER_LIMIT = 16
_PROXY_GIVER_MIN_AGE = 16
_PROXY_HOLDER_MIN_AGE = 18


class RefusalReason(StrEnum):
    """Why a citizen may not act for a person the register relates them to."""

    PROTECTED_ADDRESS = "protected-address"
    """Either of the two has a kode 6/7 address (whose is not said)."""
    DECEASED = "deceased"
    CHILD_16_OR_OLDER = "child-16-or-older"
    CHILD_12_15 = "child-12-15"
    NOT_CO_REGISTERED = "not-co-registered"
    """No parent with parental responsibility lives at the child's address."""
    HOLDER_UNDER_18 = "holder-under-18"
    PROXY_GIVER_UNDER_16 = "proxy-giver-under-16"


class PersonRecord(Protocol):
    """What Folkeregisteret knows about a person that matters for representation."""

    @property
    def name(self) -> str | None: ...
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


@dataclass(frozen=True, slots=True)
class RefusedRepresentation:
    """A person the citizen is related to but may not act for, and the first rule that says no."""

    person: NationalIdentityNumber
    relation: RelationKind
    reason: RefusalReason


@dataclass(frozen=True, slots=True)
class RepresentationAssessment:
    """Every relation of one citizen: the ones allowed today and the ones refused."""

    allowed: tuple[Representation, ...]
    refused: tuple[RefusedRepresentation, ...]


def _nin(value: str) -> NationalIdentityNumber | None:
    try:
        return NationalIdentityNumber(value)
    except InvalidIdentifier:
        return None


def _protected(record: PersonRecord | None) -> bool:
    return record is not None and record.address_protection is not None


def _own_refusal(record: PersonRecord) -> RefusalReason | None:
    if _protected(record):
        return RefusalReason.PROTECTED_ADDRESS
    return RefusalReason.DECEASED if record.deceased else None


def _child_refusal(
    child: NationalIdentityNumber,
    record: PersonRecord,
    registers: CitizenRegisters,
    today: date,
    *,
    dialogue: bool,
) -> RefusalReason | None:
    if (own := _own_refusal(record)) is not None:
        return own
    age = child.age_on(today)
    if age >= _CHILD_OLDER_LIMIT:
        return RefusalReason.CHILD_16_OR_OLDER
    if age >= CHILD_AGE_LIMIT and not dialogue:
        return RefusalReason.CHILD_12_15
    co_registered = any(
        (p := registers.person(parent)) is not None
        and p.address is not None
        and p.address == record.address
        for parent in registers.parents(child.value)
    )
    return None if co_registered else RefusalReason.NOT_CO_REGISTERED


def _proxy_refusal(
    giver: NationalIdentityNumber, record: PersonRecord, holder_age: int, today: date
) -> RefusalReason | None:
    if (own := _own_refusal(record)) is not None:
        return own
    if holder_age < _PROXY_HOLDER_MIN_AGE:
        return RefusalReason.HOLDER_UNDER_18
    if giver.age_on(today) < _PROXY_GIVER_MIN_AGE:
        return RefusalReason.PROXY_GIVER_UNDER_16
    return None


def assess_representation(
    nin: str, registers: CitizenRegisters, today: date, *, dialogue: bool = False
) -> RepresentationAssessment:
    """Sort every child and fullmakt giver of `nin` into allowed and refused, by the rules above.

    `dialogue`: for a token of the dialogue service (a child of 12–15 allowed as under 12);
    False, the default, for everything else (the record's rules).
    A citizen the register does not know relates to nobody; so does a relation to a person the
    register does not know (there is nothing to show about them).
    """
    me, my_nin = registers.person(nin), _nin(nin)
    if me is None or my_nin is None:
        return RepresentationAssessment((), ())
    mine = _own_refusal(me)
    allowed: list[Representation] = []
    refused: list[RefusedRepresentation] = []

    def sort(
        person: NationalIdentityNumber, relation: RelationKind, no: RefusalReason | None
    ) -> None:
        no = mine or no
        if no is None:
            allowed.append(Representation(person, relation))
        else:
            refused.append(RefusedRepresentation(person, relation, no))

    for value in registers.children(nin):
        child, record = _nin(value), registers.person(value)
        if child is not None and record is not None:
            refusal = _child_refusal(child, record, registers, today, dialogue=dialogue)
            sort(child, RelationKind.PARENT, refusal)
    holder_age = my_nin.age_on(today)
    for value, relation in registers.proxies_held(nin):
        giver, record = _nin(value), registers.person(value)
        if giver is not None and record is not None:
            sort(giver, relation, _proxy_refusal(giver, record, holder_age, today))
    return RepresentationAssessment(tuple(allowed), tuple(refused))


def representations_for(
    nin: str, registers: CitizenRegisters, today: date, *, dialogue: bool = False
) -> tuple[Representation, ...]:
    """Return the persons `nin` may act for today (the allowed half of assess_representation)."""
    return assess_representation(nin, registers, today, dialogue=dialogue).allowed


def dialogue_only_representations(
    nin: str, registers: CitizenRegisters, today: date
) -> tuple[Representation, ...]:
    """Return the persons `nin` may act for in the dialogue services but not in the record.

    Today exactly the children of 12–15 with a parent at their address (neither side's address
    protected); the portal offers them for the GP pages only.
    """
    record = set(representations_for(nin, registers, today))
    return tuple(
        r for r in representations_for(nin, registers, today, dialogue=True) if r not in record
    )


def representation_claim(representations: Sequence[Representation]) -> list[dict[str, Any]]:
    """Return the `onerecord:representation` claim value."""
    return [
        {"nin": r.person.value, "relation": r.relation.value, "acp": r.relation.acp}
        for r in representations
    ]
