"""Issue 15, the clinic's side in chromium: the GP office's work list in the hcp portal.

Real parts on 127.0.0.1 (tests/dialogue/clinic_harness.py): the STS with a synthetic
population, the dialogue service (SQLite, its clock moved by the tests) and the portals. The
GP (staff `gp`) logs in through the STS's test-user page and chooses the workplace, as for the
record. Citizens' requests are made over the dialogue service's FHIR API with STS tokens. At
desktop and phone size, in bokmål and English, axe-core on every page, no page wider than the
window; the answer is written and sent with the keyboard.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from onerecord.portals.i18n import Translator
from tests.browser.artefacts import screenshot
from tests.browser.axe import assert_accessible
from tests.browser.sizes import fits_the_viewport
from tests.browser.test_accessibility import in_language, log_in
from tests.dialogue.clinic_harness import ClinicStack, _off_thread, running_clinic

pytestmark = [pytest.mark.slow]

NB, EN = Translator("nb"), Translator("en")
BASE = "/helsepersonell/legekontor"
OSLO = ZoneInfo("Europe/Oslo")


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClinicStack]:
    with running_clinic(Path(tmp_path_factory.mktemp("clinic"))) as stack:
        yield stack


@pytest.fixture(autouse=True)
def _real_time(clinic: ClinicStack) -> Iterator[None]:
    clinic.clock.now = datetime.now(UTC)
    yield
    clinic.clock.now = datetime.now(UTC)


def checked(page: Page, name: str) -> None:
    screenshot(page, name)
    assert_accessible(page, name)
    fits_the_viewport(page)


def open_work_list(page: Page, clinic: ClinicStack) -> None:
    """Log the GP in, keep the workplace, and follow the link to the work list."""
    log_in(page, clinic.portal, "helsepersonell", clinic.gp)
    expect(page.locator("h1")).to_have_text(NB("hcp.workplace.heading"))
    page.get_by_role("button", name=NB("hcp.workplace.button")).click()
    expect(page.locator("h1")).to_have_text(NB("hcp.patient.heading"))
    page.get_by_role("link", name=NB("clinic.open")).click()
    expect(page.locator("h1")).to_have_text(NB("clinic.inbox.heading"))


def task_for(clinic: ClinicStack, patient: str, focus: str) -> dict[str, Any]:
    tasks = clinic.get(clinic.citizen(patient), "Task", patient=patient).json()
    return next(
        e["resource"] for e in tasks["entry"] if e["resource"]["focus"]["reference"] == focus
    )


def row(page: Page, task_id: str) -> Any:
    return page.locator(f'tr[data-task="{task_id}"]')


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 140, 90)).save(out, format="PNG")
    return out.getvalue()


def test_the_office_answers_an_e_consultation_in_the_work_list(
    clinic: ClinicStack, sized_page: tuple[str, Page]
) -> None:
    size, page = sized_page
    patient = clinic.patient("adult")
    question = f"Utslett på armen i to uker ({secrets.token_hex(3)})"
    sent = clinic.e_consultation(patient, question)
    task = task_for(clinic, patient, f"Communication/{sent['id']}")

    open_work_list(page, clinic)
    expect(row(page, task["id"])).to_contain_text(NB("clinic.kind.e-consultation"))
    expect(row(page, task["id"])).to_contain_text(patient)
    checked(page, f"clinic-inbox-nb-{size}")
    in_language(page, clinic.portal, "en", BASE)
    expect(page.locator("h1")).to_have_text(EN("clinic.inbox.heading"))
    expect(row(page, task["id"])).to_contain_text(EN("clinic.kind.e-consultation"))
    checked(page, f"clinic-inbox-en-{size}")
    in_language(page, clinic.portal, "nb", BASE)

    row(page, task["id"]).get_by_role("link").click()
    expect(page.locator("h1")).to_have_text(NB("clinic.kind.e-consultation"))
    expect(page.locator(".thread")).to_contain_text(question)
    checked(page, f"clinic-case-nb-{size}")

    # A photo chosen for the answer; then written and sent with the keyboard: the answer field,
    # Tab past the photos to «Send svar», Enter.
    photos = page.get_by_label(NB("clinic.case.photo.label"))
    photos.set_input_files({"name": "krem.png", "mimeType": "image/png", "buffer": _png()})
    answer = f"Smør med hydrokortison i en uke ({size})."
    page.get_by_label(NB("clinic.case.answer")).focus()
    page.keyboard.type(answer)
    page.keyboard.press("Tab")
    expect(photos).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name=NB("clinic.case.send"))).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#flash")).to_have_text(NB("clinic.flash.answered"))
    expect(row(page, task["id"])).to_have_count(0)  # answered: off the waiting list

    thread = clinic.get(clinic.citizen(patient), "Communication", patient=patient).json()
    texts = [e["resource"]["payload"][0]["contentString"] for e in thread["entry"]]
    assert answer in texts
    sent_answer = next(
        e["resource"] for e in thread["entry"]
        if e["resource"]["payload"][0]["contentString"] == answer
    )  # fmt: skip
    assert sent_answer["payload"][1]["contentAttachment"]["contentType"] == "image/png"
    assert task_for(clinic, patient, f"Communication/{sent['id']}")["status"] == "completed"
    # The office's reads and its answer are in the service's audit, with the GP's HPR number.
    hpr = clinic.population.staff["gp"].hpr
    assert hpr is not None
    events = clinic.audit_events(patient)
    assert any(e["hpr"] == hpr.value and e["action"] == "retrieve" for e in events)
    assert any(e["hpr"] == hpr.value and e["action"] == "store" for e in events)


def test_overdue_requests_are_flagged(clinic: ClinicStack, sized_page: tuple[str, Page]) -> None:
    size, page = sized_page
    patient = clinic.patient("elderly")
    sent = clinic.e_consultation(patient, f"Hoste i tre uker ({secrets.token_hex(3)})")
    task = task_for(clinic, patient, f"Communication/{sent['id']}")
    open_work_list(page, clinic)
    expect(row(page, task["id"])).not_to_have_class(re.compile("overdue"))

    # Two weeks on (the service's clock): past the 5-working-day limit.
    clinic.clock.now = datetime.now(UTC) + timedelta(days=14)
    page.reload()
    expect(row(page, task["id"])).to_have_class(re.compile("overdue"))
    expect(row(page, task["id"])).to_contain_text(NB("clinic.inbox.overdue"))
    checked(page, f"clinic-overdue-nb-{size}")
    in_language(page, clinic.portal, "en", BASE)
    expect(row(page, task["id"])).to_contain_text(EN("clinic.inbox.overdue"))
    in_language(page, clinic.portal, "nb", BASE)

    # Filtered to contact threads, the e-consultation is not listed; all types again, it is.
    page.get_by_label(NB("clinic.inbox.type")).select_option("contact-office")
    page.get_by_role("button", name=NB("clinic.inbox.show")).click()
    expect(row(page, task["id"])).to_have_count(0)
    page.get_by_label(NB("clinic.inbox.type")).select_option("")
    page.get_by_role("button", name=NB("clinic.inbox.show")).click()
    expect(row(page, task["id"])).to_have_count(1)

    # Closed without an answer: off the list.
    row(page, task["id"]).get_by_role("link").click()
    page.get_by_role("button", name=NB("clinic.case.close")).click()
    expect(page.locator("#flash")).to_have_text(NB("clinic.flash.closed"))
    expect(row(page, task["id"])).to_have_count(0)


def test_the_gp_renews_and_refuses_renewals(
    clinic: ClinicStack, sized_page: tuple[str, Page]
) -> None:
    size, page = sized_page
    patient = clinic.patient("parent")
    first = clinic.renewal(patient, "med-parent-1", "Går tom neste uke")
    second = clinic.renewal(patient, "med-parent-1", "Trenger mer")
    open_work_list(page, clinic)

    row(page, first["id"]).get_by_role("link").click()
    expect(page.locator("#medication")).to_contain_text("Metformin 500 mg")
    checked(page, f"clinic-renewal-nb-{size}")
    page.get_by_label(NB("clinic.renewal.renew")).check()
    page.get_by_role("button", name=NB("clinic.renewal.send")).click()
    expect(page.locator("#flash")).to_have_text(NB("clinic.flash.renewed"))

    row(page, second["id"]).get_by_role("link").click()
    in_language(page, clinic.portal, "en", f"{BASE}/sak/{second['id']}")
    expect(page.locator("h1")).to_have_text(EN("clinic.kind.prescription-renewal"))
    checked(page, f"clinic-renewal-en-{size}")
    page.get_by_label(EN("clinic.renewal.refuse")).check()
    page.get_by_role("button", name=EN("clinic.renewal.send")).click()
    expect(page.locator("#error")).to_have_text(EN("clinic.renewal.reason-missing"))
    page.get_by_label(EN("clinic.renewal.refuse")).check()
    page.get_by_label(EN("clinic.renewal.reason")).fill("Må til kontroll først.")
    page.get_by_role("button", name=EN("clinic.renewal.send")).click()
    expect(page.locator("#flash")).to_have_text(EN("clinic.flash.refused"))
    in_language(page, clinic.portal, "nb", BASE)

    mine = clinic.get(clinic.citizen(patient), "Task", patient=patient).json()
    by_id = {e["resource"]["id"]: e["resource"] for e in mine["entry"]}
    assert by_id[first["id"]]["status"] == "completed"
    assert by_id[second["id"]]["status"] == "rejected"
    assert by_id[second["id"]]["statusReason"]["text"] == "Må til kontroll først."


async def _fail_notice(db_url: str, ident: str, at: datetime) -> None:
    """Mark a notice failed as the sender does after its last attempt (this stack has no SMTP
    server; the sender's retries are tested against a real one in tests/dialogue)."""
    from onerecord.dialogue.database import make_engine
    from onerecord.dialogue.outbox import NotificationStatus
    from onerecord.dialogue.store import SqlDialogueStore

    engine = make_engine(db_url)
    try:
        await SqlDialogueStore(engine).notification_done(
            ident, status=NotificationStatus.FAILED, error="ConnectionRefusedError", failed_at=at
        )
    finally:
        await engine.dispose()


def test_a_notice_that_failed_is_shown_on_its_request(
    clinic: ClinicStack, sized_page: tuple[str, Page]
) -> None:
    """The e-mail telling the patient that the renewal was handled never arrived: the work list
    says so on the request, with when, and the case page says to call the patient."""
    size, page = sized_page
    patient = clinic.patient("parent")
    asked = clinic.renewal(patient, "med-parent-1", "Snart tom")
    open_work_list(page, clinic)
    row(page, asked["id"]).get_by_role("link").click()
    page.get_by_label(NB("clinic.renewal.refuse")).check()
    page.get_by_label(NB("clinic.renewal.reason")).fill("Ring kontoret for en time.")
    page.get_by_role("button", name=NB("clinic.renewal.send")).click()
    expect(page.locator("#flash")).to_have_text(NB("clinic.flash.refused"))
    failed_at = datetime.now(UTC).replace(microsecond=0)
    _off_thread(_fail_notice(clinic.db_url, f"renewal-handled-{asked['id']}", failed_at))

    # The work list's first page (waiting rows) lists it in its own box, with a link.
    page.goto(f"{clinic.portal}{BASE}")
    said = NB("clinic.notice.failed", when=NB.datetime(failed_at))
    box = page.locator("section.failed-notices")
    expect(box.locator("h2")).to_have_text(NB("clinic.notice.list-heading"))
    expect(box.locator(f'li[data-failed="{asked["id"]}"]')).to_contain_text(said)
    checked(page, f"clinic-notice-failed-box-nb-{size}")
    # And on its row among the done ones.
    page.goto(f"{clinic.portal}{BASE}?status=ferdig&antall=50")
    expect(row(page, asked["id"])).to_contain_text(said)
    checked(page, f"clinic-notice-failed-nb-{size}")
    row(page, asked["id"]).get_by_role("link").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(said)
    expect(alert).to_contain_text(NB("clinic.notice.failed-advice"))
    expect(page.locator("main")).not_to_contain_text("@")  # never the address
    checked(page, f"clinic-notice-failed-case-nb-{size}")
    in_language(page, clinic.portal, "en", f"{BASE}/sak/{asked['id']}")
    expect(page.get_by_role("alert")).to_contain_text(
        EN("clinic.notice.failed", when=EN.datetime(failed_at))
    )
    in_language(page, clinic.portal, "nb", BASE)
    # A request whose notice did not fail says nothing of it.
    other = clinic.renewal(patient, "med-parent-1", "Enda en")
    page.goto(f"{clinic.portal}{BASE}/sak/{other['id']}")
    expect(page.locator(".notice-failed")).to_have_count(0)


def test_slots_are_published_and_appointments_moved_and_cancelled(
    clinic: ClinicStack, sized_page: tuple[str, Page]
) -> None:
    size, page = sized_page
    patient = clinic.patient("proxy_holder")
    day = (datetime.now(OSLO) + timedelta(days=3 if size == "desktop" else 5)).date()
    open_work_list(page, clinic)
    page.get_by_role("link", name=NB("clinic.nav.calendar")).click()
    expect(page.locator("h1")).to_have_text(NB("clinic.calendar.heading"))
    for time, mode in (("09:00", "in-person"), ("13:40", "video")):
        page.get_by_label(NB("clinic.calendar.day")).fill(day.isoformat())
        page.get_by_label(NB("clinic.calendar.time")).fill(time)
        page.get_by_label(NB(f"clinic.mode.{mode}")).check()
        page.get_by_role("button", name=NB("clinic.calendar.publish-button")).click()
        expect(page.locator("#flash")).to_have_text(NB("clinic.flash.published"))
    checked(page, f"clinic-calendar-nb-{size}")

    me = clinic.citizen(patient)
    free = clinic.get(me, "Slot", patient=patient).json()["entry"]
    mine = [s["resource"] for s in free if s["resource"]["start"].startswith(day.isoformat())]
    morning = next(s for s in mine if s["serviceType"][0]["coding"][0]["code"] == "in-person")
    afternoon = next(s for s in mine if s["serviceType"][0]["coding"][0]["code"] == "video")
    booked = clinic.post(
        me,
        "Appointment",
        {
            "resourceType": "Appointment",
            "status": "booked",
            "slot": [{"reference": f"Slot/{morning['id']}"}],
            "participant": [
                {
                    "actor": {
                        "identifier": {
                            "system": "urn:oid:2.16.578.1.12.4.1.4.1",
                            "value": patient,
                        }
                    }
                }
            ],
        },
    )
    assert booked.status_code == 201, booked.text
    appointment = booked.json()["id"]

    page.reload()
    item = page.locator(f'li[data-appointment="{appointment}"]')
    expect(item).to_contain_text(patient)
    in_language(page, clinic.portal, "en", f"{BASE}/timer")
    expect(page.locator("h1")).to_have_text(EN("clinic.calendar.heading"))
    checked(page, f"clinic-calendar-en-{size}")
    in_language(page, clinic.portal, "nb", f"{BASE}/timer")

    item.get_by_label(NB("clinic.calendar.move-to")).select_option(afternoon["id"])
    item.get_by_role("button", name=NB("clinic.calendar.move")).click()
    expect(page.locator("#flash")).to_have_text(NB("clinic.flash.moved"))
    moved = clinic.get(me, "Appointment", patient=patient).json()["entry"]
    now = next(a["resource"] for a in moved if a["resource"]["id"] == appointment)
    assert now["slot"] == [{"reference": f"Slot/{afternoon['id']}"}]

    page.locator(f'li[data-appointment="{appointment}"]').get_by_role(
        "button", name=NB("clinic.calendar.cancel")
    ).click()
    expect(page.locator("#flash")).to_have_text(NB("clinic.flash.cancelled"))
    expect(page.locator(f'li[data-appointment="{appointment}"]')).to_have_count(0)
    after = clinic.get(me, "Appointment", patient=patient).json()["entry"]
    assert next(a["resource"] for a in after if a["resource"]["id"] == appointment)["status"] == (
        "cancelled"
    )


def _e_consultation_status(clinic: ClinicStack, patient: str) -> int:
    from tests.dialogue.harness import communication

    return clinic.post(
        clinic.citizen(patient), "Communication", communication(patient, "Et spørsmål")
    ).status_code


def test_an_absence_is_previewed_registered_and_closes_the_service_on_its_days(
    clinic: ClinicStack, sized_page: tuple[str, Page]
) -> None:
    size, page = sized_page
    patient = clinic.patient("adult")
    # Weeks ahead (a different stretch per size), so that no other test meets it.
    start = (datetime.now(OSLO) + timedelta(days=40 if size == "desktop" else 60)).date()
    reopens = start + timedelta(days=4)
    open_work_list(page, clinic)
    page.get_by_role("link", name=NB("clinic.nav.office")).click()
    expect(page.locator("h1")).to_contain_text(NB("clinic.office.heading"))
    page.get_by_label(NB("clinic.absence.start-day")).fill(start.isoformat())
    page.get_by_label(NB("clinic.absence.end-day")).fill(reopens.isoformat())
    page.get_by_label(NB("clinic.service.e-consultation")).check()
    page.get_by_label(NB("clinic.absence.substitute")).fill("Dr. Vikar, Bakkehaugen legesenter")
    page.get_by_role("button", name=NB("clinic.absence.preview-button")).click()
    preview = page.locator("#preview")
    expect(preview).to_contain_text("E-konsultasjon er midlertidig stengt av fastlegen din")
    expect(preview).to_contain_text(f"{reopens.day}.")
    expect(preview).to_contain_text("Dr. Vikar")
    checked(page, f"clinic-absence-preview-nb-{size}")
    page.get_by_role("button", name=NB("clinic.absence.register")).click()
    expect(page.locator("#flash")).to_have_text(NB("clinic.flash.absence"))

    # On its first day the service is closed, in words, on the office page and for patients.
    clinic.clock.now = datetime.combine(start, datetime.min.time(), OSLO) + timedelta(hours=9)
    page.reload()
    closed = page.locator('li[data-service="e-consultation"] .closed')
    expect(closed).to_contain_text("midlertidig stengt")
    in_language(page, clinic.portal, "en", f"{BASE}/kontor")
    expect(page.locator("h1")).to_contain_text(EN("clinic.office.heading"))
    checked(page, f"clinic-office-en-{size}")
    in_language(page, clinic.portal, "nb", f"{BASE}/kontor")
    assert _e_consultation_status(clinic, patient) == 409
    # The day it reopens, open again.
    clinic.clock.now = datetime.combine(reopens, datetime.min.time(), OSLO) + timedelta(hours=1)
    page.reload()
    expect(page.locator('li[data-service="e-consultation"] .closed')).to_have_count(0)
    assert _e_consultation_status(clinic, patient) == 201


def test_services_are_switched_and_the_message_set(
    clinic: ClinicStack, sized_page: tuple[str, Page]
) -> None:
    size, page = sized_page
    patient = clinic.patient("adult")
    open_work_list(page, clinic)
    page.get_by_role("link", name=NB("clinic.nav.office")).click()
    flu = page.locator('li[data-service="flu-vaccine"]')
    off = NB("clinic.office.switch-off", service=NB("clinic.service.flu-vaccine"))
    on = NB("clinic.office.switch-on", service=NB("clinic.service.flu-vaccine"))
    flu.get_by_role("button", name=off).click()
    expect(page.locator("#flash")).to_have_text(NB("clinic.flash.service-off"))

    def active() -> bool:
        services = clinic.get(clinic.citizen(patient), "HealthcareService", patient=patient)
        found = [
            e["resource"]
            for e in services.json()["entry"]
            if e["resource"]["type"][0]["coding"][0]["code"] == "flu-vaccine"
        ]
        return bool(found[0]["active"])

    assert active() is False
    checked(page, f"clinic-office-nb-{size}")
    flu.get_by_role("button", name=on).click()
    expect(page.locator("#flash")).to_have_text(NB("clinic.flash.service-on"))
    assert active() is True

    message = f"Kontoret er stengt 24. desember ({size})."
    page.get_by_label(NB("clinic.office.message")).fill(message)
    page.get_by_role("button", name=NB("clinic.office.save")).click()
    expect(page.locator("#flash")).to_have_text(NB("clinic.flash.information"))
    services = clinic.get(clinic.citizen(patient), "HealthcareService", patient=patient).json()
    assert services["entry"][0]["resource"]["comment"] == message
