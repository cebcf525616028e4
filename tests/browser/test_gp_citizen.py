"""The citizen's dialogue with the GP office in chromium (issue 15), against `onerecord demo`.

The demo starts the dialogue service with the synthetic GP offices; the office's side is the
FHIR API called as the clinic's system would (`gp_office.GpOfficeDesk`). Journeys, each page
checked with axe-core, in bokmål, nynorsk and English, at desktop and phone width:
- the adult sees «Fastlegen din» (GP, office, the information message, 113 / 116 117), sends
  an e-consultation only after ticking the fee and answer-time acknowledgement, reads it back
  on the receipt, and sees the office's answer in the thread (nb, desktop);
- renews a prescription: refused with a reason, then renewed (en, phone);
- books a free slot and cancels it, with the hospital appointment beside them (nn, phone);
- a parent acting for a child of 10 books for the child (en, desktop);
- the GP closes the e-consultation for two minutes with a substitute: the citizen reads the
  sentence (nb, and English), the form is gone; after the end it is open again (nb, desktop).

On the worker's shared demo network (docs/testing.md "Shared network"): bookings are cancelled
and open renewals handled in a `finally`; the absence lies tomorrow, seen by moving the dialogue
service's development clock into it (and back in a `finally`), so the office is never closed
in real time for another module. The threads sent stay (as access-log entries do); no test here
counts a person's threads, and no other module books or renews for the people booked for here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta

import pytest
from playwright.sync_api import Browser, Page, expect

from onerecord.dialogue import OSLO
from onerecord.portals.i18n import LANGUAGES, Translator
from tests.browser.artefacts import screenshot
from tests.browser.axe import assert_accessible
from tests.browser.gp_office import GpOfficeDesk
from tests.browser.sizes import SIZES, fits_the_viewport
from tests.browser.test_accessibility import in_language, log_in
from tests.browser.test_acting_for import act_for
from tests.browser.test_layout import boxes_too_small
from tests.dialogue.test_photos import camera_jpeg
from tests.network.conftest import Network

pytestmark = [pytest.mark.slow, pytest.mark.shared_network]

T = {code: Translator(code) for code in LANGUAGES}
GP = "/innbygger/fastlege"


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="nb-NO", viewport=SIZES["phone"], bypass_csp=True)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def desktop(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="nb-NO", viewport=SIZES["desktop"], bypass_csp=True)
    try:
        yield context.new_page()
    finally:
        context.close()


@contextmanager
def bookings_put_back(network: Network, patient: str) -> Iterator[None]:
    """Cancel, afterwards, whatever the block booked for `patient` at their GP office."""
    desk = GpOfficeDesk.of(network.manifest, patient)
    before = desk.appointments(patient)
    try:
        yield
    finally:
        desk.cancel_bookings_since(patient, before)


def logged_in(page: Page, portal_url: str, nin: str) -> None:
    log_in(page, portal_url, "innbygger", nin)
    expect(page).to_have_url(re.compile(r"/innbygger/dokumenter$"))


def checked(page: Page, name: str) -> None:
    assert_accessible(page, name)
    fits_the_viewport(page)
    screenshot(page, name)


def test_an_e_consultation_is_acknowledged_sent_and_answered(
    network: Network, portal_url: str, desktop: Page
) -> None:
    page, t = desktop, T["nb"]
    adult = network.manifest["patients"]["adult"]
    desk = GpOfficeDesk.of(network.manifest, adult)
    logged_in(page, portal_url, adult)
    in_language(page, portal_url, "nb", GP)
    expect(page.locator("h1")).to_have_text(t("citizen.gp.title"))
    main = page.locator("main")
    expect(main).to_contain_text(desk.gp_name)
    expect(main).to_contain_text(t("citizen.gp.information"))
    urgent = page.locator(".urgent")
    for words in ("113", "116 117", "legekontoret på"):
        expect(urgent).to_contain_text(words)
    checked(page, "gp-home-nb-desktop")

    page.get_by_role("link", name=t("citizen.gp.service.e-consultation")).first.click()
    expect(page).to_have_url(re.compile(r"/fastlege/e-konsultasjon$"))
    expect(main).to_contain_text(t("citizen.gp.econ.fee"))
    page.fill("#tekst", "Jeg har hatt et utslett på armen i to uker. Bilde kommer.")
    # Not ticked: the form does not go (the server refuses it too, test_gp_portal.py).
    page.get_by_role("button", name=t("citizen.gp.write.send")).click()
    expect(page).to_have_url(re.compile(r"/fastlege/e-konsultasjon$"))
    page.check("#gebyr")
    page.set_input_files(
        "#bilde", files=[{"name": "arm.jpg", "mimeType": "image/jpeg", "buffer": camera_jpeg()}]
    )
    checked(page, "gp-econ-form-nb-desktop")
    page.get_by_role("button", name=t("citizen.gp.write.send")).click()
    expect(page).to_have_url(re.compile(r"/fastlege/meldinger/[A-Za-z0-9.-]+$"))
    # The photo is in the thread, upright and without the camera's metadata (GPS, make).
    photo = page.locator(".message.from-citizen img.photo")
    expect(photo).to_have_count(1)
    shown = page.request.get(f"{portal_url}{photo.get_attribute('src')}")
    assert shown.status == 200 and shown.headers["content-type"] == "image/jpeg"
    assert b"Synthetic Phone" not in shown.body() and b"Exif" not in shown.body()
    receipt = page.locator(".receipt")
    expect(receipt).to_contain_text(t("citizen.gp.receipt.ack"))
    expect(receipt).to_contain_text("Bekreftet forstått")
    expect(receipt).to_contain_text(t("citizen.gp.task.requested"))
    checked(page, "gp-econ-receipt-nb-desktop")

    desk.answer_latest(
        adult, "Takk. Smør med hydrokortisonkrem i en uke; kom innom om det ikke går over."
    )
    page.reload()
    expect(page.locator(".message.from-office")).to_contain_text("hydrokortisonkrem")
    expect(receipt).to_contain_text(t("citizen.gp.task.completed"))
    page.goto(f"{portal_url}{GP}/meldinger")
    expect(page.locator(".threads")).to_contain_text(t("citizen.gp.thread.answered"))
    checked(page, "gp-threads-nb-desktop")


def test_a_prescription_renewal_is_refused_with_a_reason_then_renewed(
    network: Network, portal_url: str, phone: Page
) -> None:
    page, t = phone, T["en"]
    adult = network.manifest["patients"]["adult"]
    desk = GpOfficeDesk.of(network.manifest, adult)
    try:
        logged_in(page, portal_url, adult)
        in_language(page, portal_url, "en", f"{GP}/resept")
        expect(page.locator("h1")).to_have_text(t("citizen.gp.service.prescription-renewal"))
        page.check("#med-1")
        page.fill("#merknad", "Running low, two weeks left.")
        page.get_by_role("button", name=t("citizen.gp.renewal.send")).click()
        renewals = page.locator(".renewals")
        expect(renewals).to_contain_text(t("citizen.gp.renewal.status.requested"))
        checked(page, "gp-renewal-en-phone")

        assert desk.handle_renewals(adult, renewed=False, reason="Blood test first, please") == 1
        page.reload()
        refused = renewals.locator("li", has_text="Reason: Blood test first, please")
        expect(refused).to_have_count(1)
        expect(refused).to_contain_text(t("citizen.gp.renewal.status.rejected"))

        # By keyboard alone: the first medication, Tab to the note, Tab to the button, Enter.
        page.locator("#med-1").focus()
        page.keyboard.press("Space")
        page.keyboard.press("Tab")
        page.keyboard.type("Same dose as before.")
        page.keyboard.press("Tab")
        expect(page.get_by_role("button", name=t("citizen.gp.renewal.send"))).to_be_focused()
        # Counted, not read from the top of the list: on the shared network another module may
        # have left the adult's renewals dated later (its development clock moved ahead).
        completed = renewals.locator("li", has_text=t("citizen.gp.renewal.status.completed"))
        requested = renewals.locator("li", has_text=t("citizen.gp.renewal.status.requested"))
        completed_before = completed.count()
        page.keyboard.press("Enter")
        expect(requested).to_have_count(1)
        assert desk.handle_renewals(adult, renewed=True) == 1
        page.reload()
        expect(completed).to_have_count(completed_before + 1)
        expect(requested).to_have_count(0)
        checked(page, "gp-renewal-answered-en-phone")
    finally:
        desk.handle_renewals(adult, renewed=False, reason="Closed by the test's clean-up")


def test_a_citizen_books_and_cancels_beside_the_hospital_appointment(
    network: Network, portal_url: str, phone: Page
) -> None:
    page, t = phone, T["nn"]
    adult = network.manifest["patients"]["adult"]
    with bookings_put_back(network, adult):
        logged_in(page, portal_url, adult)
        in_language(page, portal_url, "nn", f"{GP}/timer")
        expect(page.locator(".appointments.hospital")).to_contain_text(
            "Poliklinikk for hjertesykdommer"
        )
        expect(page.locator("main")).to_contain_text(t("citizen.gp.appointments.none"))
        # On a phone every menu link and every slot's radio is at least 24 × 24 px (WCAG 2.5.8).
        assert boxes_too_small(page, "nav.gp-nav a, nav.citizen-nav a") == []
        assert boxes_too_small(page, ".slots label") == []
        slot = page.locator("label[for=slot-1]").inner_text()
        page.check("#slot-1")
        page.get_by_role("button", name=t("citizen.gp.appointments.book.send"), exact=True).click()
        expect(page.locator(".notice.done")).to_contain_text("er bestilt")
        upcoming = page.locator("section[aria-labelledby=upcoming]")
        expect(upcoming).to_contain_text(slot.split(",")[0])
        checked(page, "gp-booked-nn-phone")

        upcoming.get_by_role("button").first.click()
        expect(page.locator(".notice.done")).to_contain_text("er avbestilt")
        expect(page.locator(".appointments.past")).to_contain_text(
            t("citizen.gp.appointments.cancelled")
        )
        expect(upcoming).to_contain_text(t("citizen.gp.appointments.none"))
        checked(page, "gp-cancelled-nn-phone")


def test_a_parent_books_for_a_child(network: Network, portal_url: str, desktop: Page) -> None:
    page, t = desktop, T["en"]
    patients = network.manifest["patients"]
    with bookings_put_back(network, patients["child10"]):
        name = act_for(page, portal_url, patients["parent"], patients["child10"])
        in_language(page, portal_url, "en", GP)
        expect(page.locator("h1")).to_have_text(t("citizen.gp.title-other", name=name))
        # A child under 12: the parent uses the GP services for the child, and may read the
        # child's record too, so the menu names the child's documents (unlike for 12-15 below).
        relation = t("citizen.relation.parent")
        banner = t("citizen.acting.gp-other", name=name, relation=relation)
        expect(page.locator(".acting")).to_have_text(re.compile(re.escape(banner)))
        expect(page.locator(".citizen-nav")).to_contain_text(name)
        page.goto(f"{portal_url}{GP}/timer")
        booked = page.locator("section[aria-labelledby=upcoming] li")
        before = booked.count()
        page.check("#slot-1")
        page.get_by_role("button", name=t("citizen.gp.appointments.book.send"), exact=True).click()
        expect(page.locator(".notice.done")).to_contain_text("is booked")
        expect(booked).to_have_count(before + 1)
        checked(page, "gp-parent-booked-en-desktop")


def test_an_absence_closes_the_e_consultation_in_words_and_it_opens_again(
    network: Network, portal_url: str, desktop: Page
) -> None:
    """The GP closes the e-consultation for two minutes tomorrow; the service's clock (the
    demo's development clock) is moved into the absence and past its end rather than waiting,
    and put back in the `finally`: in real time the office stays open for the other modules."""
    page = desktop
    adult = network.manifest["patients"]["adult"]
    desk = GpOfficeDesk.of(network.manifest, adult)
    substitute = "Dr. Vera Vikar, telefon 22 00 00 00"
    starts = datetime.combine(datetime.now(OSLO).date() + timedelta(days=1), time(12, 0))
    reopens = desk.absence_at(starts, "e-consultation", 2, substitute)

    def ahead_until(moment: datetime, seconds: float) -> None:
        """The service's clock at `moment` plus `seconds`."""
        now = datetime.now(UTC)
        desk.clock_ahead((moment.astimezone(UTC) - now).total_seconds() + seconds)

    months = ("januar", "februar", "mars", "april", "mai", "juni", "juli", "august",
              "september", "oktober", "november", "desember")  # fmt: skip
    when = f"{reopens.day}. {months[reopens.month - 1]} kl. {reopens:%H.%M}"
    sentence = (
        f"E-konsultasjon er midlertidig stengt av fastlegen din, og åpner igjen {when}. "
        f"Vikar i mellomtiden: {substitute}."
    )
    try:
        ahead_until(starts.replace(tzinfo=OSLO), 1.0)
        logged_in(page, portal_url, adult)
        in_language(page, portal_url, "nb", GP)
        expect(page.locator(".gp-services")).to_contain_text(sentence)
        page.goto(f"{portal_url}{GP}/e-konsultasjon")
        expect(page.locator(".closed-text")).to_contain_text(sentence)
        expect(page.locator("#tekst")).to_have_count(0)
        checked(page, "gp-closed-nb-desktop")
        in_language(page, portal_url, "en", f"{GP}/e-konsultasjon")
        month = ("January", "February", "March", "April", "May", "June", "July", "August",
                 "September", "October", "November", "December")[reopens.month - 1]  # fmt: skip
        expect(page.locator(".closed-text")).to_contain_text(
            f"E-consultation is temporarily closed by your GP, and opens again on {reopens.day} "
            f"{month} at {reopens:%H:%M}. Substitute in the meantime: {substitute}."
        )
        checked(page, "gp-closed-en-desktop")
        # A minute before the end, still closed; a second after, open.
        ahead_until(reopens, -60.0)
        in_language(page, portal_url, "nb", f"{GP}/e-konsultasjon")
        expect(page.locator(".closed-text")).to_contain_text(sentence)
        expect(page.locator("#tekst")).to_have_count(0)
        ahead_until(reopens, 1.0)
        in_language(page, portal_url, "nb", f"{GP}/e-konsultasjon")
        expect(page.locator("#tekst")).to_have_count(1)
        page.goto(f"{portal_url}{GP}")
        expect(page.locator(".gp-services")).not_to_contain_text("midlertidig stengt")
    finally:
        desk.clock_ahead(0)
    # In real time the absence has not begun: the form is there.
    in_language(page, portal_url, "nb", f"{GP}/e-konsultasjon")
    expect(page.locator("#tekst")).to_have_count(1)


def test_a_parent_books_for_a_child_of_13(network: Network, portal_url: str, desktop: Page) -> None:
    """The STS lists the child of 13 for the GP services only: the parent books for them, and
    neither the child's messages nor the child's documents are offered."""
    page, t = desktop, T["nb"]
    patients = network.manifest["patients"]
    parent, child = patients["parent"], patients["child13"]
    with bookings_put_back(network, child):
        logged_in(page, portal_url, parent)
        page.goto(f"{portal_url}/innbygger/representasjon")
        # Still refused for the record (12–15), and offered for the GP services.
        expect(page.locator("ul.people.refused")).to_contain_text("12")
        item = page.locator("ul.people.gp-only li", has=page.locator(f'input[value="{child}"]'))
        name = re.sub(r" \([^)]*\)$", "", item.locator(".person").inner_text().strip())
        checked(page, "gp-representation-13-nb-desktop")
        item.get_by_role("button").click()
        expect(page).to_have_url(re.compile(rf"{GP}$"))
        expect(page.locator("h1")).to_have_text(t("citizen.gp.title-other", name=name))
        # The banner says what the parent does for the child here; the record is not theirs.
        banner = t("citizen.acting.gp-only", name=name, relation=t("citizen.relation.parent"))
        expect(page.locator(".acting")).to_have_text(re.compile(re.escape(banner)))
        expect(page.locator(".acting")).not_to_contain_text("dokumentene")
        expect(page.locator(".citizen-nav")).not_to_contain_text(name)
        page.goto(f"{portal_url}{GP}/timer")
        booked = page.locator("section[aria-labelledby=upcoming] li")
        before = booked.count()
        page.check("#slot-1")
        page.get_by_role("button", name=t("citizen.gp.appointments.book.send"), exact=True).click()
        expect(page.locator(".notice.done")).to_contain_text("er bestilt")
        expect(booked).to_have_count(before + 1)
        checked(page, "gp-parent-booked-13-nb-desktop")
        # The e-consultation is not the parent's to write for a child of 13.
        for path in ("/e-konsultasjon", "/kontakt", "/meldinger"):
            page.goto(f"{portal_url}{GP}{path}")
            expect(page.locator("h1")).to_have_text(t("citizen.gp.refused.title"))
            expect(page.locator("form textarea")).to_have_count(0)
            expect(page.locator(".acting")).to_have_text(re.compile(re.escape(banner)))
        # The record's pages stay the parent's own: the child's documents are not shown.
        page.goto(f"{portal_url}/innbygger/dokumenter")
        expect(page.locator("main")).not_to_contain_text(name)
        expect(page.locator(".acting")).to_contain_text(t("citizen.acting.self"))


def test_a_citizen_writes_to_the_treating_unit_at_the_hospital(
    network: Network, portal_url: str, phone: Page
) -> None:
    """The hospital of the adult's appointment is their treating unit: a message to it, free of
    charge, from beside the hospital appointment; it lands in the threads (en, phone)."""
    page, t = phone, T["en"]
    adult = network.manifest["patients"]["adult"]
    logged_in(page, portal_url, adult)
    in_language(page, portal_url, "en", f"{GP}/timer")
    form = page.locator("form.unit-contact")
    expect(form).to_have_count(1)
    expect(form).to_contain_text("free of charge")
    form.locator("textarea").fill("Should I fast before the appointment?")
    checked(page, "gp-unit-write-en-phone")
    form.get_by_role("button", name=t("citizen.gp.unit.send")).click()
    expect(page).to_have_url(re.compile(rf"{GP}/meldinger/[A-Za-z0-9\-.]+$"))
    expect(page.locator("main")).to_contain_text("Should I fast before the appointment?")
    checked(page, "gp-unit-thread-en-phone")
