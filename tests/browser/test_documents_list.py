"""The documents list in chromium (issue 11, "The look"; defects 4 and 8), against the demo.

At 1280 × 800 and 390 × 844, in bokmål, nynorsk and English, axe-core on every page and a
screenshot of each:
- the health worker's overview of the cast adult is grouped by institution and stay (row-group
  headers), with department and format; in English no class or type is left in Norwegian;
- a view (page 2 of 25, a class filter) survives opening a document and «Tilbake til
  oversikten», in both portals;
- «Ny» marks nothing on a first visit and marks documents after a later login once the last
  visit lies before them (the test moves the stored visit back, as time would);
- «Mine dokumenter» says the reservation at the top with a link to the privacy page, and
  explains in plain words what is withheld and what «Sperret fra før» means.
The phone layout of the table itself (cards) is defect 6, another part of the issue; this
module does not assert that the list fits 390 px.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from onerecord.portals.i18n import LANGUAGES, Translator
from onerecord.synth.dataset import load_population
from onerecord.synth.population import Population
from tests.browser.conftest import LOCALE
from tests.browser.sizes import SIZES
from tests.browser.test_accessibility import checked, in_language, log_in
from tests.browser.test_portals import hcp_open_patient
from tests.network.conftest import Network

pytestmark = [pytest.mark.slow, pytest.mark.shared_network]

T = {code: Translator(code) for code in LANGUAGES}
OVERVIEW = "/helsepersonell/oversikt"
DOCUMENTS = "/innbygger/dokumenter"


@pytest.fixture(scope="module")
def population(network: Network) -> Population:
    return load_population(Path(network.manifest["dataset"]))


@pytest.fixture(params=list(SIZES))
def sized(request: pytest.FixtureRequest, browser: Browser) -> tuple[str, Browser]:
    return str(request.param), browser


def _page(browser: Browser, size: str) -> Page:
    context = browser.new_context(locale=LOCALE, viewport=SIZES[size], bypass_csp=True)
    return context.new_page()


def _view_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def _visits_file(network: Network) -> Path:
    return Path(network.manifest["workdir"]) / "portal" / "visits.sqlite3"


def test_health_worker_list_grouped_labelled_and_the_way_back_keeps_the_view(
    network: Network, portal_url: str, population: Population, sized: tuple[str, Browser]
) -> None:
    size, browser = sized
    page = _page(browser, size)
    try:
        hcp_open_patient(page, portal_url, network, population.cast["adult"].nin.value, shots=False)
        groups = page.locator("table.documents tbody.group th[scope=rowgroup]")
        expect(groups.first).to_be_visible()
        assert groups.count() >= 2
        assert page.locator("th[scope=rowgroup] .stay", has_text="Opphold").count() >= 1
        klasse = "A00-1"
        view = f"?klasse={klasse}&antall=25"
        for language in LANGUAGES:
            t = T[language]
            in_language(page, portal_url, language, f"{OVERVIEW}{view}")
            expect(page.locator("caption")).to_be_visible()
            cells = page.locator("tr.document td[data-label]")
            assert cells.count() > 0
            classes = page.locator(f'tr.document td[data-label="{t("overview.col.class")}"]')
            expected = t(f"code.class.{klasse}")
            assert all(expected in c for c in classes.all_inner_texts())
            formats = page.locator(f'tr.document td[data-label="{t("listing.col.format")}"]')
            assert all(f.strip() for f in formats.all_inner_texts())
            body = page.locator("main").inner_text()
            if language == "en":
                assert "Epikriser og sammenfatninger" not in body
                assert "Discharge summaries and summaries" in body
            checked(page, f"documents-list-hcp-{language}-{size}")
            page.locator("tr.document td a").first.click()
            expect(page).to_have_url(re.compile(r"/helsepersonell/dokument/"))
            checked(page, f"documents-list-hcp-document-{language}-{size}")
            page.get_by_role("link", name=t("document.back")).click()
            expect(page).to_have_url(re.compile(rf"{OVERVIEW}\?"))
            assert _view_of(page.url) == {"klasse": [klasse]}
        # Page 2 survives the way back too (the adult has more than 25 documents).
        page.goto(f"{portal_url}{OVERVIEW}?side=2&antall=25&sorter=tittel&retning=stigende")
        page.locator("tr.document td a").first.click()
        page.get_by_role("link", name=T["en"]("document.back")).click()
        assert _view_of(page.url) == {
            "sorter": ["tittel"],
            "retning": ["stigende"],
            "side": ["2"],
        }
        expect(page.locator(".paging [aria-current=page]")).to_have_text("2")
    finally:
        page.context.close()


def test_new_since_the_last_visit_after_a_second_login(
    network: Network, portal_url: str, population: Population, sized: tuple[str, Browser]
) -> None:
    size, browser = sized
    patient = population.cast["teen17"].nin.value
    first = _page(browser, size)
    try:
        hcp_open_patient(first, portal_url, network, patient, shots=False)
        expect(first.locator("tr.document").first).to_be_visible()
        assert first.locator(".tag.new").count() == 0  # a first visit marks nothing
    finally:
        first.context.close()
    # Time passes: the stored last visit lies before the patient's documents now.
    with sqlite3.connect(_visits_file(network)) as db:
        moved = db.execute("UPDATE visit SET at = '2000-01-01T00:00:00+00:00'").rowcount
    assert moved >= 1
    second = _page(browser, size)
    try:
        hcp_open_patient(second, portal_url, network, patient, shots=False)
        for language in LANGUAGES:
            in_language(second, portal_url, language, OVERVIEW)
            tags = second.locator("tr.document .tag.new")
            expect(tags.first).to_be_visible()
            expect(tags.first).to_have_text(T[language]("listing.new"))
            expect(second.locator(".new-since")).to_be_visible()
            checked(second, f"documents-list-new-{language}-{size}")
    finally:
        second.context.close()


def test_citizen_sees_the_reservation_what_is_withheld_and_keeps_the_view(
    network: Network, portal_url: str, population: Population, sized: tuple[str, Browser]
) -> None:
    size, browser = sized
    citizen = population.cast["teen17"].nin.value
    page = _page(browser, size)
    try:
        log_in(page, portal_url, "innbygger", citizen)
        expect(page).to_have_url(re.compile(rf"{DOCUMENTS}$"))
        assert page.locator("p.notice.reserved").count() == 0
        page.goto(f"{portal_url}/innbygger/personvern")
        page.check("#reservation-on")
        page.locator('form[action="/innbygger/sperringer/reservasjon"] button').click()
        for language in LANGUAGES:
            t = T[language]
            in_language(page, portal_url, language, f"{DOCUMENTS}?sorter=tittel")
            notice = page.locator("p.notice.reserved")
            expect(notice).to_contain_text(t("listing.citizen.reserved.self")[:30])
            link = notice.get_by_role("link", name=t("listing.citizen.reserved.link"))
            expect(link).to_be_visible()
            withheld = page.locator("details.withheld")
            withheld.locator("summary").click()
            expect(withheld).to_contain_text(t("listing.citizen.withheld.body")[:40])
            labelled = page.locator("details.labelled")
            labelled.locator("summary").click()
            expect(labelled).to_contain_text(t("listing.citizen.labelled.body")[:40])
            checked(page, f"documents-list-citizen-{language}-{size}")
            page.locator("tr.document td a").first.click()
            expect(page).to_have_url(re.compile(r"/innbygger/dokument/"))
            page.get_by_role("link", name=t("document.back")).click()
            assert _view_of(page.url) == {"sorter": ["tittel"]}
        notice = page.locator("p.notice.reserved")
        notice.get_by_role("link").click()
        expect(page).to_have_url(re.compile(r"/innbygger/personvern$"))
    finally:
        page.goto(f"{portal_url}/innbygger/personvern")
        page.check("#reservation-off")
        page.locator('form[action="/innbygger/sperringer/reservasjon"] button').click()
        page.context.close()
