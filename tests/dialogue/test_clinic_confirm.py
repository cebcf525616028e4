"""Confirming a booking from the work list (issue 15): at an office that confirms bookings, the
calendar page shows the patient's booking as waiting with «Bekreft timen»; the button books it.

Real parts on 127.0.0.1 (clinic_harness); the setting switched on the office page.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from tests.dialogue.clinic_harness import ClinicStack
from tests.dialogue.test_api import _booking
from tests.dialogue.test_clinic_photos import CLINIC, clinic, gp
from tests.portals.pages import csrf_token

__all__ = ["clinic", "gp"]


def test_the_office_confirms_a_booking_from_the_calendar(
    clinic: ClinicStack, gp: httpx.Client
) -> None:
    office = gp.get(f"{clinic.portal}{CLINIC}/kontor")
    assert 'id="confirming" data-active="off"' in office.text
    switched = gp.post(
        f"{clinic.portal}{CLINIC}/bekreftelse",
        data={"csrf_token": csrf_token(office), "active": "on"},
    )
    assert switched.status_code in (302, 303), switched.text[:2000]
    office = gp.get(f"{clinic.portal}{CLINIC}/kontor")
    assert 'id="confirming" data-active="on"' in office.text
    page = gp.get(f"{clinic.portal}{CLINIC}/timer")
    day = (datetime.now(UTC).astimezone(ZoneInfo("Europe/Oslo")) + timedelta(days=2)).date()
    published = gp.post(
        f"{clinic.portal}{CLINIC}/timer",
        data={
            "csrf_token": csrf_token(page),
            "day": day.isoformat(),
            "time": "10:00",
            "minutes": "20",
            "mode": "in-person",
        },
    )
    assert published.status_code in (302, 303), published.text[:2000]
    patient = clinic.patient("adult")
    me = clinic.citizen(patient)
    slots = clinic.get(me, "Slot", patient=patient).json()["entry"]
    made = clinic.post(me, "Appointment", _booking(patient, slots[0]["resource"]["id"]))
    assert made.status_code == 201 and made.json()["status"] == "proposed", made.text
    appointment = made.json()["id"]

    calendar = gp.get(f"{clinic.portal}{CLINIC}/timer")
    assert f'data-appointment="{appointment}" data-status="proposed"' in calendar.text
    assert re.search(rf'action="{CLINIC}/timer/{appointment}/bekreft"', calendar.text)
    done = gp.post(
        f"{clinic.portal}{CLINIC}/timer/{appointment}/bekreft",
        data={"csrf_token": csrf_token(calendar)},
    )
    assert done.status_code in (302, 303), done.text[:2000]
    mine = clinic.get(clinic.citizen(patient), "Appointment", patient=patient).json()["entry"]
    assert {e["resource"]["id"]: e["resource"]["status"] for e in mine}[appointment] == "booked"
    after = gp.get(f"{clinic.portal}{CLINIC}/timer")
    assert f'data-appointment="{appointment}" data-status="booked"' in after.text
    again = gp.post(
        f"{clinic.portal}{CLINIC}/timer/{appointment}/bekreft",
        data={"csrf_token": csrf_token(after)},
    )
    assert again.status_code == 409
    bad = gp.post(
        f"{clinic.portal}{CLINIC}/bekreftelse",
        data={"csrf_token": csrf_token(after), "active": "maybe"},
    )
    assert bad.status_code == 400
    gp.post(
        f"{clinic.portal}{CLINIC}/bekreftelse",
        data={"csrf_token": csrf_token(after), "active": "off"},
    )
    office = gp.get(f"{clinic.portal}{CLINIC}/kontor")
    assert 'id="confirming" data-active="off"' in office.text
