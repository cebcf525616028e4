"""Issue 11, defect 4 in chromium: the citizen's access log as one line per visit.

Against the real network (`onerecord demo`). A doctor opens the adult's overview, sorts it and
opens a document the adult sees themselves; a nurse opens a blocked document by emergency
override (cause: unconscious). At 1280 × 800 and 390 × 844, each page checked with axe-core,
saved as a screenshot and no wider than the window:
- the doctor's visit is one line, with profession, organisation, department and the title
  opened; the nurse's visit is marked as emergency access with its basis and cause;
- the person filter and the day filter narrow the list; a bad date is said plainly;
- the page in nynorsk and English;
- «Sperr» on the doctor's line blocks the doctor, as the privacy page then shows; undone there.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from onerecord.portals.i18n import LANGUAGES, Translator
from tests.browser.artefacts import screenshot
from tests.browser.axe import assert_accessible
from tests.browser.sizes import fits_the_viewport
from tests.browser.test_accessibility import in_language, log_in
from tests.network.conftest import Network
from tests.portals.test_access_log_network import _doctor_visit, _nurse_emergency, citizen_sees

pytestmark = pytest.mark.slow

T = {code: Translator(code) for code in LANGUAGES}
LOG = "/innbygger/tilgangslogg"


@pytest.fixture(scope="module")
def opened_title(network: Network, portal_url: str) -> str:
    """Make the two visits once (off the main thread: see conftest); the doctor's title."""

    def visits() -> str:
        title = _doctor_visit(network, portal_url, citizen_sees(network, portal_url))
        _nurse_emergency(network, portal_url)
        return title

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(visits).result()


def checked(page: Page, name: str) -> None:
    screenshot(page, name)
    assert_accessible(page, name)
    fits_the_viewport(page)


def test_visits_filters_languages_and_block_from_the_row(
    network: Network, portal_url: str, opened_title: str, sized_page: tuple[str, Page]
) -> None:
    size, page = sized_page
    staff = network.manifest["staff"]
    doctor, nurse = staff["doctor"], staff["nurse"]
    department = next(d["name"] for d in doctor["departments"] if d["resh"] == doctor["department"])
    nb = T["nb"]
    log_in(page, portal_url, "innbygger", network.manifest["patients"]["adult"])
    expect(page).to_have_url(re.compile(r"/innbygger/dokumenter"))
    page.goto(f"{portal_url}{LOG}")
    expect(page.locator("h1")).to_have_text(nb("citizen.log.title"))
    visits = page.locator("li.visit")
    by_doctor = visits.filter(has=page.locator("h3", has_text=doctor["name"]))
    by_nurse = visits.filter(has=page.locator("h3", has_text=nurse["name"]))
    expect(by_doctor).to_have_count(1)
    expect(by_nurse).to_have_count(1)
    for words in (nb("citizen.log.profession.LE"), doctor["organisation"], department):
        expect(by_doctor).to_contain_text(words)
    expect(by_doctor.locator("ul.titles li", has_text=opened_title)).to_have_count(1)
    expect(by_doctor).not_to_contain_text(nb("citizen.log.emergency"))
    expect(by_nurse).to_have_class(re.compile(r"\bemergency\b"))
    expect(by_nurse).to_contain_text(nb("citizen.log.profession.SP"))
    basis = nb("citizen.log.emergency-basis.AKUTT")
    expect(by_nurse).to_contain_text(nb("citizen.log.emergency-basis", basis=basis))
    cause = nb("citizen.log.emergency-reason.unconscious")
    expect(by_nurse).to_contain_text(nb("citizen.log.emergency-reason", reason=cause))
    main = page.locator("main").inner_text()
    for person in (doctor, nurse):
        assert str(person["hpr"]) not in page.content() and person["nin"] not in main
    checked(page, f"access-log-visits-{size}")

    # The person filter: the nurse alone.
    page.select_option("#log-person", label=f"{nurse['name']}, {nurse['organisation']}")
    page.get_by_role("button", name=nb("citizen.log.filter.submit"), exact=True).click()
    expect(page).to_have_url(re.compile(r"person="))
    expect(page.locator("li.visit")).to_have_count(1)
    expect(page.locator("li.visit h3")).to_contain_text(nurse["name"])
    checked(page, f"access-log-person-{size}")
    # The days: from tomorrow on, nothing; a reversed span is said plainly, with the form.
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    page.goto(f"{portal_url}{LOG}?fra={tomorrow}")
    expect(page.locator("li.visit")).to_have_count(0)
    expect(page.locator("main")).to_contain_text(nb("citizen.log.filter.none"))
    answer = page.goto(f"{portal_url}{LOG}?fra={tomorrow}&til=2026-01-01")
    assert answer is not None and answer.status == 400
    expect(page.get_by_role("alert")).to_have_text(nb("citizen.log.filter.reversed"))
    expect(page.locator("#log-til")).to_have_attribute("aria-invalid", "true")
    checked(page, f"access-log-bad-filter-{size}")

    # Nynorsk and English.
    for language in ("nn", "en"):
        t = T[language]
        in_language(page, portal_url, language, LOG)
        expect(page.locator("h1")).to_have_text(t("citizen.log.title"))
        expect(by_doctor).to_contain_text(t("citizen.log.profession.LE"))
        expect(by_nurse).to_contain_text(t("citizen.log.emergency"))
        checked(page, f"access-log-{language}-{size}")
    in_language(page, portal_url, "nb", LOG)

    # «Sperr» on the doctor's line: the block shows on the privacy page; lifted there again.
    block = by_doctor.get_by_role("button", name=nb("citizen.log.block-label", name=doctor["name"]))
    block.click()
    expect(page).to_have_url(re.compile(r"/innbygger/personvern$"))
    expect(page.locator("main")).to_contain_text(f"{doctor['name']} (HPR {doctor['hpr']})")
    checked(page, f"access-log-blocked-{size}")
    page.get_by_role(
        "button", name=nb("citizen.privacy.practitioners.unblock-named", name=doctor["name"])
    ).click()
    expect(page).to_have_url(re.compile(r"/innbygger/personvern$"))
    expect(
        page.get_by_role(
            "button", name=nb("citizen.privacy.practitioners.unblock-named", name=doctor["name"])
        )
    ).to_have_count(0)
