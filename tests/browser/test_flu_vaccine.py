"""Issue 15, the flu vaccine in chromium: the office publishes a vaccination day on its calendar
page, a citizen books a vaccine slot from «Bestill influensavaksine» on the Fastlegen page, the
office sees the booking, the citizen cancels it.

Real parts on 127.0.0.1 (tests/dialogue/clinic_harness.py): the STS with a synthetic
population, the dialogue service (SQLite) and the portals (citizen and health personnel). The
GP (staff `gp`) and the citizen (cast `elderly`, on the GP's list) each log in through the STS's
test-user page in their own browser context. At desktop and phone size, bokmål (and the citizen's
page in nynorsk and English), axe-core on every page, no page wider than the window.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from onerecord.portals.i18n import Translator
from tests.browser.artefacts import screenshot
from tests.browser.axe import assert_accessible
from tests.browser.sizes import SIZES, fits_the_viewport
from tests.browser.test_accessibility import in_language, log_in
from tests.browser.test_clinic_worklist import open_work_list
from tests.browser.test_layout import boxes_too_small
from tests.dialogue.clinic_harness import ClinicStack, running_clinic

pytestmark = [pytest.mark.slow]

NB, NN, EN = Translator("nb"), Translator("nn"), Translator("en")
GP = "/innbygger/fastlege"
CALENDAR = "/helsepersonell/legekontor/timer"
OSLO = ZoneInfo("Europe/Oslo")


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClinicStack]:
    with running_clinic(Path(tmp_path_factory.mktemp("flu"))) as stack:
        yield stack


def checked(page: Page, name: str) -> None:
    screenshot(page, name)
    assert_accessible(page, name)
    fits_the_viewport(page)


@pytest.fixture
def citizen_page(browser: Browser, sized_page: tuple[str, Page]) -> Iterator[Page]:
    """The citizen's own browser context, at the same size as the GP's."""
    size, _gp = sized_page
    context = browser.new_context(locale="nb-NO", viewport=SIZES[size], bypass_csp=True)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_a_citizen_books_a_vaccine_slot_and_the_office_sees_it(
    clinic: ClinicStack, sized_page: tuple[str, Page], citizen_page: Page
) -> None:
    size, gp = sized_page
    patient = clinic.patient("elderly")
    day = (datetime.now(OSLO) + timedelta(days=2 if size == "desktop" else 4)).date()

    # The office: a vaccination day, 09.00–10.00 in 5-minute slots.
    open_work_list(gp, clinic)
    gp.get_by_role("link", name=NB("clinic.nav.calendar")).click()
    expect(gp.locator("h1")).to_have_text(NB("clinic.calendar.heading"))
    gp.fill("#flu_day", day.isoformat())
    gp.fill("#flu_from", "09:00")
    gp.fill("#flu_to", "10:00")
    gp.fill("#flu_minutes", "5")
    gp.get_by_role("button", name=NB("clinic.calendar.flu-publish-button")).click()
    expect(gp.locator("#flash")).to_have_text(NB("clinic.flash.flu-published"))
    vaccine_day = gp.locator(f'#free-vaccine-days li[data-day="{day.isoformat()}"]')
    expect(vaccine_day).to_have_attribute("data-free", "12")
    checked(gp, f"flu-clinic-published-nb-{size}")

    # The citizen: «Bestill influensavaksine» on the Fastlegen page, then a slot of that day.
    page = citizen_page
    log_in(page, clinic.portal, "innbygger", patient)
    expect(page).to_have_url(re.compile(r"/innbygger/dokumenter$"))
    in_language(page, clinic.portal, "nb", GP)
    link = page.get_by_role("link", name=NB("citizen.gp.flu.book-link"))
    expect(link).to_be_visible()
    checked(page, f"flu-gp-home-nb-{size}")
    link.click()
    expect(page).to_have_url(re.compile(r"/fastlege/influensavaksine$"))
    expect(page.locator("h1")).to_have_text(NB("citizen.gp.flu.title"))
    legend = NB("citizen.gp.flu.day", day=NB.date(day, long=True))
    that_day = page.locator("fieldset.flu-day", has=page.locator("legend", has_text=legend))
    expect(that_day.locator("input[type=radio]")).to_have_count(12)
    if size == "phone":  # every slot's radio and label at least 24 × 24 px (WCAG 2.5.8)
        assert boxes_too_small(page, ".flu-day label, nav.gp-nav a") == []
    checked(page, f"flu-slots-nb-{size}")
    that_day.get_by_label("09.00").check()
    page.get_by_role("button", name=NB("citizen.gp.flu.send")).click()
    expect(page.locator(".notice.done")).to_contain_text(NB("citizen.gp.flu.done", when="")[:10])
    booked = page.locator("section[aria-labelledby=flu-booked]")
    expect(booked).to_contain_text("kl. 09.00")
    expect(booked).to_contain_text(NB("citizen.gp.flu.what"))
    expect(that_day.locator("input[type=radio]")).to_have_count(11)
    checked(page, f"flu-booked-nb-{size}")

    # Among the upcoming appointments too, as a flu vaccine; the page in nynorsk and English.
    in_language(page, clinic.portal, "nn", f"{GP}/timer")
    upcoming = page.locator("section[aria-labelledby=upcoming]")
    expect(upcoming).to_contain_text(NN("citizen.gp.flu.what"))
    in_language(page, clinic.portal, "en", f"{GP}/influensavaksine")
    expect(page.locator("h1")).to_have_text(EN("citizen.gp.flu.title"))
    checked(page, f"flu-booked-en-{size}")

    # The office sees it on its calendar page, one vaccine slot fewer.
    gp.goto(f"{clinic.portal}{CALENDAR}")
    item = gp.locator("#booked li", has_text=patient)
    expect(item).to_contain_text(NB("clinic.calendar.flu-what"))
    expect(vaccine_day).to_have_attribute("data-free", "11")
    checked(gp, f"flu-clinic-booked-nb-{size}")

    # The citizen cancels; the office no longer has it, the slot is free again.
    in_language(page, clinic.portal, "nb", f"{GP}/influensavaksine")
    booked.get_by_role("button").first.click()
    expect(page.locator(".notice.done")).to_contain_text("er avbestilt")
    expect(booked).to_contain_text(NB("citizen.gp.flu.none"))
    gp.reload()
    expect(gp.locator("#booked li", has_text=patient)).to_have_count(0)
    expect(vaccine_day).to_have_attribute("data-free", "12")
