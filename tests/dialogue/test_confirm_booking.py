"""Confirming appointments (issue 15): at an office that chose «confirm bookings», a patient's
booking is `proposed` until the office confirms it (`$confirm`), and the one who booked it is
told then (the e-mail outbox); elsewhere a booking is `booked` at once, as before.

A real dialogue service on 127.0.0.1 with SQLite (harness); the outbox read from the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from onerecord.dialogue.database import make_engine
from onerecord.dialogue.store import SqlDialogueStore
from tests.dialogue.harness import ADULT, ORG, OTHER_ORG, START, Dialogue, running_dialogue
from tests.dialogue.test_api import _booking, _slot


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dialogue]:
    path: Path = tmp_path_factory.mktemp("confirm") / "dialogue.db"
    with running_dialogue(f"sqlite:///{path}", None) as running:
        yield running


def _confirming(active: object) -> dict[str, object]:
    return {"resourceType": "Parameters", "parameter": [{"name": "active", "valueBoolean": active}]}


def _notices(dialogue: Dialogue, appointment: str) -> list[str]:
    async def read() -> list[Any]:
        engine = make_engine(dialogue.db_url)
        try:
            return list(await SqlDialogueStore(engine).notifications(ADULT))
        finally:
            await engine.dispose()

    return [n.kind for n in asyncio.run(read()) if appointment in n.id]


def _set(dialogue: Dialogue, active: bool) -> None:
    r = dialogue.post(
        dialogue.staff(), f"Organization/{ORG}/$set-confirm-bookings", _confirming(active)
    )
    assert r.status_code == 200, r.text


def test_a_booking_waits_for_the_office_that_confirms_and_is_told_when_confirmed(
    dialogue: Dialogue,
) -> None:
    me, gp = dialogue.citizen(ADULT), dialogue.staff()
    _set(dialogue, True)
    try:
        slot = dialogue.post(gp, "Slot", _slot(START + timedelta(days=6))).json()["id"]
        made = dialogue.post(me, "Appointment", _booking(ADULT, slot))
        assert made.status_code == 201, made.text
        appointment = made.json()["id"]
        assert made.json()["status"] == "proposed"
        assert _notices(dialogue, appointment) == []
        mine = {a["id"]: a["status"] for a in dialogue.entries(me, "Appointment", patient=ADULT)}
        assert mine[appointment] == "proposed"
        office = dialogue.entries(gp, "Appointment", organization=ORG)
        assert any(a["id"] == appointment and a["status"] == "proposed" for a in office)

        # Only the office confirms, and only once.
        assert dialogue.post(me, f"Appointment/{appointment}/$confirm", {}).status_code == 403
        elsewhere = dialogue.staff(office=OTHER_ORG)
        assert (
            dialogue.post(elsewhere, f"Appointment/{appointment}/$confirm", {}).status_code == 403
        )
        assert _notices(dialogue, appointment) == []
        done = dialogue.post(gp, f"Appointment/{appointment}/$confirm", {})
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "booked"
        assert _notices(dialogue, appointment) == ["booking-confirmed"]
        again = dialogue.post(gp, f"Appointment/{appointment}/$confirm", {})
        assert again.status_code == 409
        mine = {a["id"]: a["status"] for a in dialogue.entries(me, "Appointment", patient=ADULT)}
        assert mine[appointment] == "booked"
    finally:
        _set(dialogue, False)


def test_a_proposed_booking_can_be_cancelled_and_frees_its_slot(dialogue: Dialogue) -> None:
    me, gp = dialogue.citizen(ADULT), dialogue.staff()
    _set(dialogue, True)
    try:
        slot = dialogue.post(gp, "Slot", _slot(START + timedelta(days=7))).json()["id"]
        appointment = dialogue.post(me, "Appointment", _booking(ADULT, slot)).json()["id"]
        cancelled = dialogue.post(gp, f"Appointment/{appointment}/$cancel", {})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert dialogue.post(gp, f"Appointment/{appointment}/$confirm", {}).status_code == 409
        free = dialogue.entries(me, "Slot", patient=ADULT)
        assert any(s["id"] == slot for s in free)
    finally:
        _set(dialogue, False)


def test_without_the_setting_a_booking_is_booked_at_once(dialogue: Dialogue) -> None:
    me, gp = dialogue.citizen(ADULT), dialogue.staff()
    slot = dialogue.post(gp, "Slot", _slot(START + timedelta(days=8))).json()["id"]
    made = dialogue.post(me, "Appointment", _booking(ADULT, slot))
    assert made.status_code == 201 and made.json()["status"] == "booked"
    assert _notices(dialogue, made.json()["id"]) == ["booking-confirmed"]
    assert dialogue.post(gp, f"Appointment/{made.json()['id']}/$confirm", {}).status_code == 409


@pytest.mark.parametrize("active", ["true", 1, None, [True]])
def test_a_bad_setting_is_400_and_changes_nothing(dialogue: Dialogue, active: object) -> None:
    gp = dialogue.staff()
    r = dialogue.post(gp, f"Organization/{ORG}/$set-confirm-bookings", _confirming(active))
    assert r.status_code == 400, r.text
    me = dialogue.citizen(ADULT)
    slot = dialogue.post(
        gp, "Slot", _slot(START + timedelta(days=9, hours=len(str(active))))
    ).json()["id"]
    assert dialogue.post(me, "Appointment", _booking(ADULT, slot)).json()["status"] == "booked"


def test_the_setting_is_the_offices_staff_only(dialogue: Dialogue) -> None:
    me = dialogue.citizen(ADULT)
    path = f"Organization/{ORG}/$set-confirm-bookings"
    assert dialogue.post(me, path, _confirming(True)).status_code == 403
    elsewhere = dialogue.staff(office=OTHER_ORG)
    assert dialogue.post(elsewhere, path, _confirming(True)).status_code == 403
