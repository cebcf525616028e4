"""The look and layout of both portals in chromium (issue 11, "The look", defects 6 and 8).

Against the network `onerecord demo` starts, at 1280 × 800 and 390 × 844:
- every page of both portals (start, the two login pages, the health worker's workplace,
  patient, overview, a lab report and the emergency page; the citizen's documents, a document,
  privacy, access log, representation, and the 14-year-old's page) is no wider than the window
  and axe-clean (screenshots test-artefacts/screenshots/layout-*);
- on the phone the lab report's table is one card per analysis, and its out-of-range remark is
  on the screen;
- paging links and the other link rows in menus are targets of at least 24 × 24 px (2.5.8);
- printed, a page has no menus, buttons or forms, and says who it is about and when it was
  fetched;
- the second Tab stop is «Hopp til dokumentene», and from it one Tab reaches the first document.
  The number of Tab stops from the top to the first document link, straight and by the skip
  link, is written to test-artefacts/tab-stops.json.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from onerecord.portals.i18n import LANGUAGES, Translator
from onerecord.portals.listing import PAGE_SIZES
from tests.browser.artefacts import ARTEFACTS_DIR, screenshot
from tests.browser.axe import assert_accessible
from tests.browser.conftest import LOCALE
from tests.browser.sizes import SIZES, fits_the_viewport
from tests.browser.test_accessibility import in_language, log_in, state_basis
from tests.network.conftest import Network

pytestmark = [pytest.mark.slow, pytest.mark.shared_network]

T = Translator("nb")
TS = {code: Translator(code) for code in LANGUAGES}
PRINTED = {
    "nb": r"Side hentet \d\d\.\d\d\.\d{4} kl\. \d\d\.\d\d",
    "nn": r"Side henta \d\d\.\d\d\.\d{4} kl\. \d\d\.\d\d",
    "en": r"Page fetched \d{1,2} [A-Z][a-z]+ \d{4}, \d\d:\d\d",
}
OVERVIEW = "/helsepersonell/oversikt"
LAB = "urn:no:kith:xmlstds:svarrapport"
FIRST_DOCUMENT = "table.documents tbody tr.document a"
MIN_TARGET_PX = 24


@pytest.fixture(params=list(SIZES))
def sized(request: pytest.FixtureRequest, browser: Browser) -> Iterator[tuple[str, Browser]]:
    """One of the two sizes, and the browser to open contexts at it in."""
    yield str(request.param), browser


def new_page(browser: Browser, size: str, *, bypass_csp: bool = True) -> Page:
    context = browser.new_context(locale=LOCALE, viewport=SIZES[size], bypass_csp=bypass_csp)
    return context.new_page()


def checked(page: Page, name: str, size: str) -> None:
    """Screenshot, axe, and no sideways scrolling."""
    screenshot(page, f"layout-{name}-{size}")
    assert_accessible(page, f"{name} at {size}")
    fits_the_viewport(page)


def doctor_at_overview(page: Page, portal_url: str, network: Network, patient: str) -> None:
    log_in(page, portal_url, "helsepersonell", network.manifest["staff"]["doctor"]["nin"])
    expect(page).to_have_url(re.compile(r"/helsepersonell/arbeidssted$"))
    page.locator('form[action="/helsepersonell/arbeidssted"] button[type=submit]').click()
    expect(page).to_have_url(re.compile(r"/helsepersonell/pasient$"))
    state_basis(page, patient)
    expect(page).to_have_url(re.compile(r"/helsepersonell/oversikt$"))


def within_window(page: Page, selector: str) -> None:
    """The first element matching `selector` is shown, and wholly inside the window's width."""
    element = page.locator(selector).first
    element.scroll_into_view_if_needed()
    expect(element).to_be_visible()
    box = element.bounding_box()
    width = page.evaluate("() => window.innerWidth")
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (box, width)


def test_health_worker_pages_fit_the_window_and_pass_axe(
    network: Network, portal_url: str, sized: tuple[str, Browser]
) -> None:
    size, browser = sized
    page = new_page(browser, size)
    try:
        for path, name in (
            ("/", "start"),
            ("/helsepersonell/logg-inn", "hcp-login"),
            ("/innbygger/logg-inn", "citizen-login"),
        ):
            page.goto(f"{portal_url}{path}")
            checked(page, name, size)

        log_in(page, portal_url, "helsepersonell", network.manifest["staff"]["doctor"]["nin"])
        expect(page).to_have_url(re.compile(r"/helsepersonell/arbeidssted$"))
        checked(page, "hcp-workplace", size)
        page.locator('form[action="/helsepersonell/arbeidssted"] button[type=submit]').click()
        expect(page).to_have_url(re.compile(r"/helsepersonell/pasient$"))
        checked(page, "hcp-patient", size)
        state_basis(page, network.manifest["patients"]["adult"])
        expect(page).to_have_url(re.compile(r"/helsepersonell/oversikt$"))
        checked(page, "hcp-overview", size)
        if size == "phone":
            # The documents table is one card per document, each value led by its column.
            first = page.locator("table.documents tbody tr.document").first
            expect(first.locator("td").first).to_have_css("display", "block")
            label = first.locator("td").first.evaluate(
                "td => getComputedStyle(td, '::before').content"
            )
            assert label == f'"{T("overview.col.date")}"', label

        # A lab report: on the phone its out-of-range remark is on the screen.
        # The first of the patient's lab reports with a result outside its range (which
        # report has one depends on the generator's draws).
        page.goto(f"{portal_url}{OVERVIEW}?antall=200")
        links = page.locator(f'tr.document[data-format="{LAB}"] a')
        hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
        flagged = page.locator("tr.outside-range")
        for href in hrefs:
            page.goto(f"{portal_url}{href}")
            expect(page.locator(".rendered table.lab-results")).to_have_count(1)
            if flagged.count():
                break
        assert flagged.count() >= 1, "none of the cast's lab reports has a result outside its range"
        within_window(page, 'tr.outside-range td[data-label="Merknad"]')
        expect(page.locator('tr.outside-range td[data-label="Merknad"]').first).to_contain_text(
            "utenfor referanseområdet"
        )
        within_window(page, 'tr.outside-range td[data-label="Resultat"]')
        checked(page, "hcp-document-lab", size)

        # The doctor stated a non-acute basis: the emergency page says an acute need is
        # required (the form itself at both sizes: test_emergency_override.py).
        page.goto(f"{portal_url}/helsepersonell/nodtilgang")
        expect(page.locator("h1")).to_have_text(T("hcp.override.not-acute-heading"))
        checked(page, "hcp-emergency", size)
    finally:
        page.context.close()


def test_citizen_pages_fit_the_window_and_pass_axe(
    network: Network, portal_url: str, sized: tuple[str, Browser]
) -> None:
    size, browser = sized
    patients = network.manifest["patients"]
    page = new_page(browser, size)
    try:
        log_in(page, portal_url, "innbygger", patients["parent"])
        expect(page).to_have_url(re.compile(r"/innbygger/dokumenter"))
        checked(page, "citizen-documents", size)
        href = page.locator(FIRST_DOCUMENT).first.get_attribute("href")
        assert href
        page.goto(f"{portal_url}{href}")
        checked(page, "citizen-document", size)
        for path in ("personvern", "tilgangslogg", "representasjon"):
            answer = page.goto(f"{portal_url}/innbygger/{path}")
            assert answer is not None and answer.status == 200, path
            checked(page, f"citizen-{path}", size)
        if size == "phone":
            # «Sperr» on the phone: every block button of the documents list is on the screen.
            page.goto(f"{portal_url}/innbygger/dokumenter")
            within_window(page, "table.documents tbody form.row-action button")
    finally:
        page.context.close()

    page = new_page(browser, size)
    try:
        log_in(page, portal_url, "innbygger", patients["teen14"])
        expect(page).to_have_url(re.compile(r"/innbygger/dokumenter$"))
        expect(page.locator("h1")).to_have_text(T("citizen.young.title.young"))
        checked(page, "citizen-young-person", size)
    finally:
        page.context.close()


def boxes_too_small(page: Page, selector: str) -> list[str]:
    """Return the targets matching `selector` smaller than 24 × 24 CSS px, described."""
    small = page.locator(selector).evaluate_all(
        """(elements, min) => elements
            .map(e => [e.textContent.trim(), e.getBoundingClientRect()])
            .filter(([, r]) => r.width < min || r.height < min)
            .map(([text, r]) => `${text}: ${r.width.toFixed(1)} × ${r.height.toFixed(1)}`)""",
        MIN_TARGET_PX,
    )
    return [str(s) for s in small]


def test_paging_and_menu_targets_are_at_least_24_px(
    network: Network, portal_url: str, sized: tuple[str, Browser]
) -> None:
    size, browser = sized
    page = new_page(browser, size)
    try:
        doctor_at_overview(page, portal_url, network, network.manifest["patients"]["adult"])
        page.goto(f"{portal_url}{OVERVIEW}?antall={min(PAGE_SIZES)}")
        paging = page.locator("nav.paging a, nav.paging [aria-current]")
        assert paging.count() >= 2, "too few documents to page"
        assert boxes_too_small(page, "nav.paging a, nav.paging [aria-current]") == []
        assert boxes_too_small(page, "nav.languages a, nav.languages [aria-current]") == []
        assert boxes_too_small(page, "table.documents th a") == []
    finally:
        page.context.close()

    page = new_page(browser, size)
    try:
        log_in(page, portal_url, "innbygger", network.manifest["patients"]["adult"])
        expect(page).to_have_url(re.compile(r"/innbygger/dokumenter"))
        assert boxes_too_small(page, "nav.citizen-nav a") == []
    finally:
        page.context.close()


def test_print_has_no_menus_and_says_whose_page_and_when(
    network: Network, portal_url: str, browser: Browser
) -> None:
    page = new_page(browser, "desktop", bypass_csp=False)
    try:
        adult = network.manifest["patients"]["adult"]
        doctor_at_overview(page, portal_url, network, adult)
        printed = page.locator(".printed")
        expect(printed).to_be_hidden()  # on screen the header does not say it
        page.emulate_media(media="print")
        for hidden in ("nav.languages", "form.logout", "form.filters", ".ds-skip-link"):
            expect(page.locator(hidden).first).to_be_hidden()
        assert page.locator("button:visible, form:visible, nav:visible").count() == 0
        expect(printed).to_be_visible()
        expect(printed).to_have_text(re.compile(PRINTED["nb"]))
        header = page.locator(".patient-header")
        expect(header).to_be_visible()
        expect(header).to_contain_text(adult)
        expect(page.locator("table.documents")).to_be_visible()
        page.pdf(path=ARTEFACTS_DIR / "print-hcp-overview.pdf")

        # A document printed: the patient header and the time; no back link's form, no menu.
        page.emulate_media(media="screen")
        page.locator(f'tr.document[data-format="{LAB}"] a').first.click()
        page.emulate_media(media="print")
        expect(page.locator(".patient-header")).to_contain_text(adult)
        expect(printed).to_be_visible()
        assert page.locator("button:visible, form:visible, nav:visible").count() == 0
        for language in ("nn", "en"):
            in_language(page, portal_url, language, OVERVIEW)
            expect(printed).to_have_text(re.compile(PRINTED[language]))
            expect(page.locator(".patient-header")).to_contain_text(adult)
    finally:
        page.context.close()

    page = new_page(browser, "desktop", bypass_csp=False)
    try:
        log_in(page, portal_url, "innbygger", network.manifest["patients"]["adult"])
        expect(page).to_have_url(re.compile(r"/innbygger/dokumenter"))
        name = page.locator(".site-header .who strong").inner_text()
        page.emulate_media(media="print")
        expect(page.locator("nav.citizen-nav")).to_be_hidden()
        assert page.locator("button:visible, form:visible, nav:visible").count() == 0
        expect(page.locator(".site-header .who")).to_contain_text(name)
        expect(page.locator(".printed")).to_be_visible()
    finally:
        page.context.close()


_DESCRIBE = """() => {
    const e = document.activeElement;
    const name = (e.getAttribute('aria-label') || e.textContent || e.id || '').trim();
    return `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''} ${name.slice(0, 30)}`;
}"""


def tab_stops_to_first_document(
    page: Page, *, by_skip_link: bool, seen: list[str] | None = None
) -> int:
    """Press Tab from the top of the page until a document link has focus; return the count.

    Each stop is described in `seen` when given (to tell which stops there are)."""
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); }")
    presses = 0
    for _ in range(80):
        page.keyboard.press("Tab")
        presses += 1
        if seen is not None:
            seen.append(str(page.evaluate(_DESCRIBE)))
        if by_skip_link and page.evaluate(
            "() => document.activeElement.getAttribute('href') === '#dokumenter'"
        ):
            page.keyboard.press("Enter")
            by_skip_link = False
            continue
        if page.evaluate(
            "() => document.activeElement.matches('table.documents tbody tr.document a')"
        ):
            return presses
    pytest.fail("no document link was reached with Tab")


def test_a_skip_link_leads_to_the_documents(
    network: Network, portal_url: str, browser: Browser
) -> None:
    page = new_page(browser, "desktop", bypass_csp=False)
    try:
        doctor_at_overview(page, portal_url, network, network.manifest["patients"]["adult"])
        page.goto(f"{portal_url}{OVERVIEW}")
        page.keyboard.press("Tab")
        expect(page.locator(":focus")).to_have_text(T("site.skip"))
        page.keyboard.press("Tab")
        skip = page.locator(":focus")
        expect(skip).to_have_text(T("site.skip-documents"))
        expect(skip).to_be_visible()
        page.keyboard.press("Enter")
        expect(page.locator("tbody#dokumenter")).to_be_focused()
        page.keyboard.press("Tab")
        expect(page.locator(":focus")).to_have_attribute(
            "href", page.locator(FIRST_DOCUMENT).first.get_attribute("href") or ""
        )
        for language in ("nn", "en"):
            in_language(page, portal_url, language, OVERVIEW)
            expect(page.locator('a.skip[href="#dokumenter"]')).to_have_text(
                TS[language]("site.skip-documents")
            )
        # Not on a page without documents to skip to.
        in_language(page, portal_url, "nb", "/helsepersonell/nodtilgang")
        expect(page.locator('a.skip[href="#dokumenter"]')).to_have_count(0)
    finally:
        page.context.close()


def test_tab_stops_to_the_first_document_are_counted(
    network: Network, portal_url: str, browser: Browser
) -> None:
    counts: dict[str, dict[str, int]] = {}
    stops_seen: dict[str, list[str]] = {}
    page = new_page(browser, "desktop", bypass_csp=False)
    try:
        doctor_at_overview(page, portal_url, network, network.manifest["patients"]["adult"])
        for way in ("straight", "by-skip-link"):
            page.goto(f"{portal_url}{OVERVIEW}")
            seen = stops_seen.setdefault(f"hcp-overview-{way}", [])
            stops = tab_stops_to_first_document(page, by_skip_link=way != "straight", seen=seen)
            counts.setdefault("hcp-overview", {})[way] = stops
    finally:
        page.context.close()

    page = new_page(browser, "desktop", bypass_csp=False)
    try:
        log_in(page, portal_url, "innbygger", network.manifest["patients"]["adult"])
        expect(page).to_have_url(re.compile(r"/innbygger/dokumenter"))
        for way in ("straight", "by-skip-link"):
            page.goto(f"{portal_url}/innbygger/dokumenter")
            seen = stops_seen.setdefault(f"citizen-documents-{way}", [])
            stops = tab_stops_to_first_document(page, by_skip_link=way != "straight", seen=seen)
            counts.setdefault("citizen-documents", {})[way] = stops
    finally:
        page.context.close()

    ARTEFACTS_DIR.mkdir(parents=True, exist_ok=True)
    (ARTEFACTS_DIR / "tab-stops.json").write_text(
        json.dumps({"counts": counts, "stops": stops_seen}, indent=2, ensure_ascii=False)
    )
    for where, count in counts.items():
        assert count["by-skip-link"] <= 3, (where, count)
