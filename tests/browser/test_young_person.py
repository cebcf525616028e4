"""A 14-year-old and an 11-year-old log in on their own (issue 11, defect 1), in chromium.

Against the network `onerecord demo` starts (every region answers the young person's own
search empty with `citizen-under-age`, E2): at 1280 × 800 and 390 × 844, in bokmål, nynorsk
and English, each page checked with axe-core and saved as a screenshot:
- the 14-year-old lands on a page that explains the rule (what they see, what their parents
  see, the day they turn 16, computed from the birth date in their number) — no empty list,
  no "try again" warning — reads their own access log, where the cast doctor's look at their
  documents shows, and is told on the privacy page when the controls open;
- the 11-year-old alone is told that the parents see the documents and the log, and when that
  changes, on the documents, access-log and privacy pages alike.
No page is wider than the phone's viewport.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

import pytest
from playwright.sync_api import Page, expect

from onerecord.domain import NationalIdentityNumber
from onerecord.portals.i18n import LANGUAGES, Translator
from tests.browser.artefacts import screenshot
from tests.browser.axe import assert_accessible
from tests.browser.sizes import fits_the_viewport
from tests.browser.test_accessibility import in_language, log_in
from tests.network.conftest import Network

pytestmark = [pytest.mark.slow, pytest.mark.shared_network]

T = {code: Translator(code) for code in LANGUAGES}
FALSE_WARNINGS = ("citizen.documents.controls-unknown", "overview.incomplete", "overview.retry")


def birthday(born: date, years: int) -> date:
    """The day one turns `years` (29 February → 1 March in other years), counted here anew."""
    try:
        return date(born.year + years, born.month, born.day)
    except ValueError:
        return date(born.year + years, 3, 1)


def long_date(day: date, language: str) -> str:
    return T[language].date(day, long=True)


def no_false_warning(page: Page, language: str) -> None:
    text = page.locator("main").inner_text()
    for key in FALSE_WARNINGS:
        assert T[language](key) not in text, key
    expect(page.locator("main .warning")).to_have_count(0)
    expect(page.locator("main table")).to_have_count(0)


def checked(page: Page, name: str) -> None:
    screenshot(page, name)
    assert_accessible(page, name)
    fits_the_viewport(page)


def doctor_looks_at(network: Network, patient: str) -> None:
    """The cast doctor searches the patient's documents (off the main thread: see conftest)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: network.hub_search(network.practitioner(patient), patient)).result()


def test_a_14_year_old_gets_the_rules_and_their_own_access_log(
    network: Network, portal_url: str, sized_page: tuple[str, Page]
) -> None:
    size, page = sized_page
    teen = network.manifest["patients"]["teen14"]
    born = NationalIdentityNumber(teen).birth_date
    doctor = network.manifest["staff"]["doctor"]
    doctor_looks_at(network, teen)

    log_in(page, portal_url, "innbygger", teen)
    expect(page).to_have_url(re.compile(r"/innbygger/dokumenter$"))
    for language in LANGUAGES:
        in_language(page, portal_url, language, "/innbygger/dokumenter")
        t = T[language]
        expect(page.locator("h1")).to_have_text(t("citizen.young.title.young"))
        main = page.locator("main")
        expect(main).to_contain_text(long_date(birthday(born, 16), language))
        expect(main).to_contain_text(t("citizen.young.parents.heading"))
        expect(main).to_contain_text(
            t("citizen.young.parents.young", date12=long_date(birthday(born, 12), language))
        )
        no_false_warning(page, language)
        checked(page, f"young-14-documents-{language}-{size}")

        # Their own access log: the doctor's look shows, and the parents cannot see it.
        page.locator("main").get_by_role("link", name=t("citizen.nav.access-log")).click()
        expect(page).to_have_url(re.compile(r"/innbygger/tilgangslogg$"))
        expect(page.locator("h1")).to_have_text(t("citizen.log.title"))
        expect(page.locator(".young-own")).to_have_text(
            t("citizen.log.young-own", date16=long_date(birthday(born, 16), language))
        )
        expect(page.locator("ol.visits")).to_contain_text(doctor["name"])
        # The controls open at 16: no «Sperr» on the visits of their own log.
        expect(page.locator('form[action="/innbygger/tilgangslogg/sperr"]')).to_have_count(0)
        assert doctor["nin"] not in page.locator("main").inner_text()
        checked(page, f"young-14-access-log-{language}-{size}")

        page.goto(f"{portal_url}/innbygger/personvern")
        expect(page.locator(".lead")).to_have_text(
            t(
                "citizen.young.lead.privacy",
                age=NationalIdentityNumber(teen).age_on(datetime.now(UTC).date()),
                date16=long_date(birthday(born, 16), language),
            )
        )
        expect(page.locator('form[action^="/innbygger/sperringer"]')).to_have_count(0)
        checked(page, f"young-14-privacy-{language}-{size}")


def test_an_11_year_old_alone_is_told_plainly(
    network: Network, portal_url: str, sized_page: tuple[str, Page]
) -> None:
    size, page = sized_page
    child = network.manifest["patients"]["child11"]
    born = NationalIdentityNumber(child).birth_date
    log_in(page, portal_url, "innbygger", child)
    expect(page).to_have_url(re.compile(r"/innbygger/dokumenter$"))
    for language in LANGUAGES:
        t = T[language]
        date12 = long_date(birthday(born, 12), language)
        for path in ("dokumenter", "tilgangslogg", "personvern"):
            answer = in_language(page, portal_url, language, f"/innbygger/{path}")
            assert answer is not None and answer.status == 200, path
            expect(page.locator("h1")).to_have_text(t("citizen.young.title.child"))
            expect(page.locator(f'.citizen-nav a[href="/innbygger/{path}"]')).to_have_attribute(
                "aria-current", "page"
            )
            main = page.locator("main")
            expect(main).to_contain_text(t("citizen.young.parents.child", date12=date12))
            expect(main).to_contain_text(t("citizen.young.child.ask"))
            expect(main).to_contain_text(long_date(birthday(born, 16), language))
            no_false_warning(page, language)
            checked(page, f"young-11-{path}-{language}-{size}")
