"""The dialogue rules, one test each: calendar, absence (DST under hypothesis), representation."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onerecord.dialogue import (
    OSLO,
    Absence,
    ActingFacts,
    BadInput,
    Conflict,
    Office,
    Relation,
    RepresentationRefusal,
    Service,
    answer_due,
    closed_sentence,
    is_closed,
    is_working_day,
    local_to_utc,
    may_act,
    service_state,
)
from onerecord.dialogue.calendar import easter_sunday
from onerecord.dialogue.rules import check_e_consultation, check_text, require_open

TODAY = date(2026, 12, 3)


# --- calendar --------------------------------------------------------------------------------


def test_easter_sunday_known_years() -> None:
    assert easter_sunday(2025) == date(2025, 4, 20)
    assert easter_sunday(2026) == date(2026, 4, 5)
    assert easter_sunday(2027) == date(2027, 3, 28)


def test_weekends_and_public_holidays_are_not_working_days() -> None:
    assert not is_working_day(date(2026, 12, 5))  # Saturday
    assert not is_working_day(date(2026, 12, 6))  # Sunday
    assert not is_working_day(date(2026, 5, 14))  # Ascension Day 2026
    assert not is_working_day(date(2026, 5, 25))  # Whit Monday 2026
    assert not is_working_day(date(2026, 12, 25))
    assert is_working_day(date(2026, 12, 3))


def test_answer_due_counts_five_working_days_after_the_day_sent() -> None:
    # Thursday 3 Dec 2026, 14:00 Oslo: Fri 4, Mon 7, Tue 8, Wed 9, Thu 10 → due at the end of 10th.
    sent = datetime(2026, 12, 3, 14, 0, tzinfo=OSLO)
    assert answer_due(sent) == datetime(2026, 12, 11, 0, 0, tzinfo=OSLO)


def test_answer_due_skips_christmas() -> None:
    # Tue 22 Dec 2026: Wed 23, Thu 24, (Fri 25 and Sat 26 holidays, Sun), Mon 28, Tue 29, Wed 30.
    sent = datetime(2026, 12, 22, 9, 0, tzinfo=OSLO)
    assert answer_due(sent) == datetime(2026, 12, 31, 0, 0, tzinfo=OSLO)


def test_answer_due_needs_a_time_zone() -> None:
    with pytest.raises(ValueError):
        answer_due(datetime(2026, 12, 3, 9, 0))


def test_local_time_in_the_spring_gap_reads_as_summer_time() -> None:
    # 29 March 2026: 02:00 → 03:00. 02:30 does not exist; it is read as 01:30 UTC (03:30 CEST).
    assert local_to_utc(datetime(2026, 3, 29, 2, 30)) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_ambiguous_autumn_time_reads_as_the_first() -> None:
    # 25 October 2026: 03:00 → 02:00; 02:30 happens twice, the first at 00:30 UTC.
    assert local_to_utc(datetime(2026, 10, 25, 2, 30)) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


# --- absence ---------------------------------------------------------------------------------


def _absence(
    start: datetime, end: datetime, *services: Service, substitute: str | None = None
) -> Absence:
    return Absence(
        "a1", "974600019", start, end, frozenset(services or {Service.E_CONSULTATION}), substitute
    )


def test_absence_closes_from_the_first_minute_to_the_last() -> None:
    a = _absence(datetime(2027, 4, 14), datetime(2027, 4, 25))
    first = local_to_utc(datetime(2027, 4, 14))
    assert not a.closes(Service.E_CONSULTATION, first - timedelta(minutes=1))
    assert a.closes(Service.E_CONSULTATION, first)
    last = local_to_utc(datetime(2027, 4, 25))
    assert a.closes(Service.E_CONSULTATION, last - timedelta(minutes=1))
    assert not a.closes(Service.E_CONSULTATION, last)


def test_absence_closes_only_the_services_it_names() -> None:
    a = _absence(datetime(2027, 4, 14), datetime(2027, 4, 25), Service.E_CONSULTATION)
    during = local_to_utc(datetime(2027, 4, 20, 12))
    assert a.closes(Service.E_CONSULTATION, during)
    assert not a.closes(Service.APPOINTMENT_BOOKING, during)


def test_closed_sentence_names_the_day_it_opens_again() -> None:
    a = _absence(datetime(2027, 4, 14), datetime(2027, 4, 25))
    assert closed_sentence(a, Service.E_CONSULTATION) == (
        "E-konsultasjon er midlertidig stengt av fastlegen din, og åpner igjen 25. april."
    )


def test_closed_sentence_with_time_and_substitute() -> None:
    a = _absence(datetime(2027, 4, 14), datetime(2027, 4, 25, 8, 0), substitute="Dr. Vikar Hansen")
    assert closed_sentence(a, Service.E_CONSULTATION) == (
        "E-konsultasjon er midlertidig stengt av fastlegen din, og åpner igjen 25. april kl. 08.00."
        " Vikar i mellomtiden: Dr. Vikar Hansen."
    )


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2027, 4, 25), datetime(2027, 4, 14)),  # ends before it starts
        (datetime(2027, 4, 14, 8, 0, 30), datetime(2027, 4, 25)),  # not a whole minute
        (datetime(2027, 4, 14, tzinfo=UTC), datetime(2027, 4, 25, tzinfo=UTC)),  # offset given
    ],
)
def test_bad_absences_are_refused(start: datetime, end: datetime) -> None:
    with pytest.raises(BadInput):
        _absence(start, end)


_DAYS = st.dates(min_value=date(2025, 1, 1), max_value=date(2030, 12, 31))


@given(
    first=_DAYS,
    length=st.integers(min_value=0, max_value=40),
    offset_minutes=st.integers(min_value=-3 * 24 * 60, max_value=45 * 24 * 60),
)
def test_whole_day_absence_is_closed_exactly_on_its_local_days(
    first: date, length: int, offset_minutes: int
) -> None:
    """Across daylight-saving changes: closed iff the Oslo local date lies in [first, last]."""
    last = first + timedelta(days=length)
    a = _absence(
        datetime.combine(first, time()), datetime.combine(last + timedelta(days=1), time())
    )
    at = local_to_utc(datetime.combine(first, time())) + timedelta(minutes=offset_minutes)
    local_day = at.astimezone(OSLO).date()
    assert is_closed([a], Service.E_CONSULTATION, at) == (first <= local_day <= last)


@given(
    start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2030, 12, 31)),
    minutes=st.integers(min_value=1, max_value=60 * 24 * 30),
)
def test_absence_closes_to_the_minute(start: datetime, minutes: int) -> None:
    """Whatever the local start, closed at its first minute and open at the minute before."""
    start = start.replace(second=0, microsecond=0)
    end = start + timedelta(minutes=minutes)
    if local_to_utc(end) <= local_to_utc(start):
        return  # a span that lies within the repeated autumn hour or the skipped spring hour
    a = _absence(start, end)
    assert a.closes(Service.E_CONSULTATION, a.start_utc)
    assert not a.closes(Service.E_CONSULTATION, a.start_utc - timedelta(minutes=1))
    assert a.closes(Service.E_CONSULTATION, a.end_utc - timedelta(minutes=1))
    assert not a.closes(Service.E_CONSULTATION, a.end_utc)


# --- service state and input rules ----------------------------------------------------------

OFFICE = Office("974600019", "Legekontor", "22 00 00 00", frozenset({Service.E_CONSULTATION}))


def test_a_service_switched_off_is_refused() -> None:
    state = service_state(OFFICE, [], Service.APPOINTMENT_BOOKING, datetime.now(UTC))
    assert not state.offered
    with pytest.raises(Conflict, match="does not offer"):
        require_open(state)


def test_a_service_closed_by_absence_says_when_it_opens() -> None:
    a = _absence(datetime(2027, 4, 14), datetime(2027, 4, 25))
    state = service_state(OFFICE, [a], Service.E_CONSULTATION, local_to_utc(datetime(2027, 4, 20)))
    assert state.offered and not state.open
    with pytest.raises(Conflict, match="åpner igjen 25. april"):
        require_open(state)


def test_e_consultation_needs_the_fee_acknowledged() -> None:
    with pytest.raises(BadInput, match="acknowledged"):
        check_e_consultation(fee_acknowledged=False, urgent=False)
    check_e_consultation(fee_acknowledged=True, urgent=False)


def test_e_consultation_is_not_for_urgent_matters() -> None:
    with pytest.raises(BadInput, match="113"):
        check_e_consultation(fee_acknowledged=True, urgent=True)


def test_text_is_checked() -> None:
    assert check_text("  hei  ") == "hei"
    for bad in ("", "   ", "x" * 4001, "a\x00b"):
        with pytest.raises(BadInput):
            check_text(bad)


# --- representation ---------------------------------------------------------------------------


def _born(age: int) -> date:
    return date(TODAY.year - age, 1, 1)


def _facts(actor: int, person: int, relation: Relation, **kw: bool) -> ActingFacts:
    return ActingFacts(_born(actor), _born(person), relation, **kw)


def test_self_from_16() -> None:
    assert may_act(_facts(16, 16, Relation.SELF), Service.E_CONSULTATION, TODAY) is None


def test_self_under_16_is_refused() -> None:
    assert (
        may_act(_facts(15, 15, Relation.SELF), Service.APPOINTMENT_BOOKING, TODAY)
        is RepresentationRefusal.UNDER_16
    )


def test_parent_for_child_under_12_at_the_same_address() -> None:
    facts = _facts(40, 8, Relation.PARENT, parent_at_child_address=True)
    for service in Service:
        assert may_act(facts, service, TODAY) is None


def test_parent_not_co_registered_is_refused() -> None:
    facts = _facts(40, 8, Relation.PARENT)
    assert may_act(facts, Service.APPOINTMENT_BOOKING, TODAY) is (
        RepresentationRefusal.NOT_CO_REGISTERED
    )


def test_parent_of_child_12_15_only_for_practical_services() -> None:
    facts = _facts(40, 13, Relation.PARENT, parent_at_child_address=True)
    assert may_act(facts, Service.APPOINTMENT_BOOKING, TODAY) is None
    assert may_act(facts, Service.PRESCRIPTION_RENEWAL, TODAY) is None
    assert may_act(facts, Service.E_CONSULTATION, TODAY) is (
        RepresentationRefusal.SERVICE_NOT_FOR_PARENT
    )
    assert may_act(facts, Service.CONTACT_OFFICE, TODAY) is (
        RepresentationRefusal.SERVICE_NOT_FOR_PARENT
    )


def test_parent_of_child_16_is_refused() -> None:
    facts = _facts(45, 16, Relation.PARENT, parent_at_child_address=True)
    assert may_act(facts, Service.APPOINTMENT_BOOKING, TODAY) is (
        RepresentationRefusal.CHILD_16_OR_OLDER
    )


def test_proxy_for_an_adult() -> None:
    assert may_act(_facts(30, 80, Relation.PROXY), Service.E_CONSULTATION, TODAY) is None


def test_proxy_giver_under_16_is_refused() -> None:
    assert may_act(_facts(30, 15, Relation.PROXY), Service.E_CONSULTATION, TODAY) is (
        RepresentationRefusal.PROXY_GIVER_UNDER_16
    )


def test_young_person_books_only_for_themselves() -> None:
    assert may_act(_facts(17, 80, Relation.PROXY), Service.APPOINTMENT_BOOKING, TODAY) is (
        RepresentationRefusal.ACTOR_UNDER_18
    )
    facts = _facts(17, 1, Relation.PARENT, parent_at_child_address=True)
    assert may_act(facts, Service.APPOINTMENT_BOOKING, TODAY) is (
        RepresentationRefusal.ACTOR_UNDER_18
    )


@pytest.mark.parametrize("side", ["actor_address_protected", "person_address_protected"])
@pytest.mark.parametrize("relation", [Relation.PARENT, Relation.PROXY])
def test_protected_address_never_represents_nor_is_represented(
    side: str, relation: Relation
) -> None:
    facts = _facts(40, 8 if relation is Relation.PARENT else 50, relation, **{side: True})
    facts = ActingFacts(
        facts.actor_born,
        facts.person_born,
        relation,
        parent_at_child_address=True,
        **{side: True},
    )
    assert may_act(facts, Service.APPOINTMENT_BOOKING, TODAY) is (
        RepresentationRefusal.PROTECTED_ADDRESS
    )


def test_no_relation_is_refused() -> None:
    assert may_act(_facts(40, 40, Relation.NONE), Service.CONTACT_OFFICE, TODAY) is (
        RepresentationRefusal.NO_RELATION
    )
