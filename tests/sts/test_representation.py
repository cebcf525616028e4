"""Whom a citizen may act for, and the reason for everyone they may not (pure rules)."""

from __future__ import annotations

from datetime import date

from onerecord.sts.representation import (
    RefusalReason,
    assess_representation,
    dialogue_only_representations,
    representations_for,
)
from onerecord.trust.principal import RelationKind
from tests.sts.fakes import FakePerson, FakePopulation, synthetic_nin, years_ago

PARENT = synthetic_nin(date(1975, 6, 15))
CHILD_8 = synthetic_nin(years_ago(8))
CHILD_13 = synthetic_nin(years_ago(13))
CHILD_16 = synthetic_nin(years_ago(16))
CHILD_AWAY = synthetic_nin(years_ago(6))
CHILD_SHIELDED = synthetic_nin(years_ago(7))
CHILD_DEAD = synthetic_nin(years_ago(3))
CHILD_UNKNOWN = synthetic_nin(years_ago(4))
GIVER = synthetic_nin(date(1950, 2, 2))
YOUNG_GIVER = synthetic_nin(years_ago(15))
DEAD_GIVER = synthetic_nin(date(1940, 1, 1))
YOUNG_HOLDER = synthetic_nin(years_ago(17))


def _population(*, parent_protection: str | None = None) -> FakePopulation:
    people = {
        PARENT: FakePerson("Gate 2", parent_protection),
        CHILD_8: FakePerson("Gate 2"),
        CHILD_13: FakePerson("Gate 2"),
        CHILD_16: FakePerson("Gate 2"),
        CHILD_AWAY: FakePerson("Gate 7"),
        CHILD_SHIELDED: FakePerson(None, address_protection="7"),
        CHILD_DEAD: FakePerson("Gate 2", deceased=True),
        GIVER: FakePerson("Gate 3"),
        YOUNG_GIVER: FakePerson("Gate 4"),
        DEAD_GIVER: FakePerson("Gate 5", deceased=True),
        YOUNG_HOLDER: FakePerson("Gate 6"),
    }
    children = (CHILD_8, CHILD_13, CHILD_16, CHILD_AWAY, CHILD_SHIELDED, CHILD_DEAD, CHILD_UNKNOWN)
    return FakePopulation(
        people=people,
        parent_links=[(PARENT, c) for c in children],
        proxies=[
            (PARENT, GIVER, RelationKind.PROXY),
            (PARENT, YOUNG_GIVER, RelationKind.PROXY),
            (PARENT, DEAD_GIVER, RelationKind.PROXY_UNABLE_TO_CONSENT),
            (YOUNG_HOLDER, GIVER, RelationKind.PROXY),
        ],
    )


def test_every_relation_is_allowed_or_refused_with_its_reason() -> None:
    today = date.today()
    registers = _population()
    result = assess_representation(PARENT, registers, today)
    assert {(r.person.value, r.relation) for r in result.allowed} == {
        (CHILD_8, RelationKind.PARENT),
        (GIVER, RelationKind.PROXY),
    }
    assert {r.person.value: r.reason for r in result.refused} == {
        CHILD_13: RefusalReason.CHILD_12_15,
        CHILD_16: RefusalReason.CHILD_16_OR_OLDER,
        CHILD_AWAY: RefusalReason.NOT_CO_REGISTERED,
        CHILD_SHIELDED: RefusalReason.PROTECTED_ADDRESS,
        CHILD_DEAD: RefusalReason.DECEASED,
        YOUNG_GIVER: RefusalReason.PROXY_GIVER_UNDER_16,
        DEAD_GIVER: RefusalReason.DECEASED,
    }
    assert CHILD_UNKNOWN not in {r.person.value for r in (*result.allowed, *result.refused)}
    assert representations_for(PARENT, registers, today) == result.allowed


def test_holder_under_18_represents_nobody() -> None:
    result = assess_representation(YOUNG_HOLDER, _population(), date.today())
    assert result.allowed == ()
    assert [(r.person.value, r.reason) for r in result.refused] == [
        (GIVER, RefusalReason.HOLDER_UNDER_18)
    ]


def test_a_citizen_with_protected_address_is_refused_everyone() -> None:
    result = assess_representation(PARENT, _population(parent_protection="6"), date.today())
    assert result.allowed == ()
    assert {r.reason for r in result.refused} == {RefusalReason.PROTECTED_ADDRESS}
    assert len(result.refused) == 9


def test_unknown_citizen_relates_to_nobody() -> None:
    result = assess_representation(synthetic_nin(date(1999, 9, 9)), _population(), date.today())
    assert result.allowed == () and result.refused == ()


# -- the dialogue with the GP office: a child of 12–15 at a parent's address ----------------------

CHILD_12_TODAY = synthetic_nin(years_ago(12, days=0))
CHILD_15_LAST_DAY = synthetic_nin(date.fromordinal(years_ago(16, days=0).toordinal() + 1))
CHILD_14_AWAY = synthetic_nin(years_ago(14))
CHILD_14_SHIELDED = synthetic_nin(years_ago(14, days=60))


def _teenagers(*, parent_protection: str | None = None) -> FakePopulation:
    people = {
        PARENT: FakePerson("Gate 2", parent_protection),
        CHILD_8: FakePerson("Gate 2"),
        CHILD_12_TODAY: FakePerson("Gate 2"),
        CHILD_13: FakePerson("Gate 2"),
        CHILD_15_LAST_DAY: FakePerson("Gate 2"),
        CHILD_16: FakePerson("Gate 2"),
        CHILD_14_AWAY: FakePerson("Gate 9"),
        CHILD_14_SHIELDED: FakePerson(None, address_protection="6"),
        GIVER: FakePerson("Gate 3"),
    }
    children = (CHILD_8, CHILD_12_TODAY, CHILD_13, CHILD_15_LAST_DAY, CHILD_16, CHILD_14_AWAY)
    return FakePopulation(
        people=people,
        parent_links=[(PARENT, c) for c in (*children, CHILD_14_SHIELDED)],
        proxies=[(PARENT, GIVER, RelationKind.PROXY)],
    )


def test_a_child_of_12_to_15_at_the_parents_address_is_represented_in_the_dialogue_only() -> None:
    today, registers = date.today(), _teenagers()
    dialogue = assess_representation(PARENT, registers, today, dialogue=True)
    assert {r.person.value for r in dialogue.allowed} == {
        CHILD_8,
        CHILD_12_TODAY,
        CHILD_13,
        CHILD_15_LAST_DAY,
        GIVER,
    }
    assert all(
        r.relation is RelationKind.PARENT for r in dialogue.allowed if r.person.value != GIVER
    )
    # The record's rule is unchanged: the same children are refused there, 12–15.
    record = assess_representation(PARENT, registers, today)
    assert {r.person.value for r in record.allowed} == {CHILD_8, GIVER}
    refused = {r.person.value: r.reason for r in record.refused}
    for teen in (CHILD_12_TODAY, CHILD_13, CHILD_15_LAST_DAY):
        assert refused[teen] is RefusalReason.CHILD_12_15
    assert {r.person.value for r in dialogue_only_representations(PARENT, registers, today)} == {
        CHILD_12_TODAY,
        CHILD_13,
        CHILD_15_LAST_DAY,
    }


def test_the_dialogue_never_reaches_a_child_of_16() -> None:
    dialogue = assess_representation(PARENT, _teenagers(), date.today(), dialogue=True)
    assert {r.person.value: r.reason for r in dialogue.refused}[
        CHILD_16
    ] is RefusalReason.CHILD_16_OR_OLDER


def test_the_dialogue_needs_a_parent_at_the_childs_address() -> None:
    dialogue = assess_representation(PARENT, _teenagers(), date.today(), dialogue=True)
    assert {r.person.value: r.reason for r in dialogue.refused}[
        CHILD_14_AWAY
    ] is RefusalReason.NOT_CO_REGISTERED


def test_the_dialogue_never_represents_a_child_with_a_protected_address() -> None:
    dialogue = assess_representation(PARENT, _teenagers(), date.today(), dialogue=True)
    assert {r.person.value: r.reason for r in dialogue.refused}[
        CHILD_14_SHIELDED
    ] is RefusalReason.PROTECTED_ADDRESS


def test_a_parent_with_a_protected_address_represents_no_teenager_in_the_dialogue() -> None:
    registers = _teenagers(parent_protection="7")
    dialogue = assess_representation(PARENT, registers, date.today(), dialogue=True)
    assert dialogue.allowed == ()
    assert {r.reason for r in dialogue.refused} == {RefusalReason.PROTECTED_ADDRESS}
    assert dialogue_only_representations(PARENT, registers, date.today()) == ()
