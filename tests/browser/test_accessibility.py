"""Accessibility of the pages test_portals.py does not check, in bokmål, nynorsk and English.

axe-core (no serious or critical violations) on: the workplace page; the patient/basis form
with an invalid fødselsnummer; the overview with paging; an image document; the emergency
override refusing a too-short reason; the citizen's documents and access log; the privacy page
with a blocked health worker and an HPR-number error; the representation page refusing a
tampered choice (403); and the 404 and 401 error pages. The language is switched with
`GET /sprak/{nb|nn|en}?neste=<path>`, as the header links do, and every text is checked against
the message catalogue in that language. Each page is saved as test-artefacts/screenshots/a11y-*.

One flow per kind of user, one login each. The only state created, the parent's block of the
cast doctor, is lifted again (also when the test fails half-way).

A keyboard test: the skip link is the first Tab stop, Enter on it moves focus into <main>, and
the overview's filter form and the language switch work with the keyboard alone.
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus

import pytest
from playwright.sync_api import ElementHandle, Locator, Page, Response, expect

from onerecord.portals.i18n import LANGUAGES, Translator
from onerecord.portals.listing import PAGE_SIZES
from tests.browser.artefacts import screenshot
from tests.browser.axe import assert_accessible
from tests.network.conftest import Network

pytestmark = [pytest.mark.slow, pytest.mark.shared_network]

T = {code: Translator(code) for code in LANGUAGES}
OTHER_LANGUAGES = ("nn", "en")
OVERVIEW = "/helsepersonell/oversikt"
BASIS = {
    "healthcare_service": "01",
    "purpose_of_use": "TREAT",
    "purpose_of_use_details": "BEHANDLER",
    "access_basis": "SAMTYKKE",
}
INVALID_NIN = "12345678901"  # eleven digits, wrong check digits


def checked(page: Page, name: str) -> None:
    """Save the page as a screenshot and check it with axe-core."""
    screenshot(page, name)
    assert_accessible(page, name)


def in_language(page: Page, portal_url: str, language: str, path: str) -> Response | None:
    """Switch the language as the header links do and land on `path`; return the answer."""
    answer = page.goto(f"{portal_url}/sprak/{language}?neste={quote(path, safe='')}")
    expect(page.locator("html")).to_have_attribute("lang", language)
    return answer


def submit(page: Page, button: Locator | ElementHandle) -> int:
    """Click a form's button, wait for the page it leads to, and return that page's status."""
    with page.expect_navigation() as navigation:
        button.click()
    answer = navigation.value
    assert answer is not None
    return answer.status


def log_in(page: Page, portal_url: str, area: str, nin: str) -> None:
    """Log `nin` in at the portal `area` through the STS's test-user page."""
    page.goto(f"{portal_url}/{area}/logg-inn")
    page.locator(f'form[action="/{area}/logg-inn"] button').click()
    expect(page.locator("h1")).to_contain_text("testbrukere")
    page.check(f"#user-{nin}")
    page.get_by_role("button", name="Logg inn").click()


def fill_basis(page: Page, patient: str) -> Locator:
    """Fill every field of the patient/basis form; return its submit button."""
    page.fill("#patient", patient)
    for field in ("healthcare_service", "purpose_of_use", "purpose_of_use_details"):
        page.select_option(f"#{field}", BASIS[field])
    page.check(f"#basis-{BASIS['access_basis']}")
    return page.locator('form[action="/helsepersonell/pasient"] button[type=submit]')


def state_basis(page: Page, patient: str) -> None:
    """Fill the patient/basis form in place and submit it."""
    fill_basis(page, patient).click()


def name_in(sentence: str, key: str, language: str) -> str:
    """Return the {name} that message `key` in `language` was filled with to give `sentence`."""
    before, _, after = T[language](key, name="\0").partition("\0")
    after = after.split("\0")[0]
    assert sentence.startswith(before) and after in sentence, (sentence, key, language)
    return sentence[len(before) : sentence.index(after, len(before))]


def test_health_worker_pages_in_three_languages(
    network: Network, portal_url: str, a11y_page: Page
) -> None:
    page = a11y_page
    log_in(page, portal_url, "helsepersonell", network.manifest["staff"]["doctor"]["nin"])
    expect(page).to_have_url(re.compile(r"/helsepersonell/arbeidssted$"))

    # The workplace page.
    for language in LANGUAGES:
        in_language(page, portal_url, language, "/helsepersonell/arbeidssted")
        expect(page.locator("h1")).to_have_text(T[language]("hcp.workplace.heading"))
        expect(page.locator('input[name="workplace"]:checked')).to_have_count(1)
        checked(page, f"a11y-hcp-workplace-{language}")
    page.locator('form[action="/helsepersonell/arbeidssted"] button[type=submit]').click()
    expect(page).to_have_url(re.compile(r"/helsepersonell/pasient$"))

    # The patient/basis form refusing a fødselsnummer with wrong check digits.
    for language in LANGUAGES:
        in_language(page, portal_url, language, "/helsepersonell/pasient")
        assert submit(page, fill_basis(page, INVALID_NIN)) == 400
        expect(page.locator("#form-error")).to_have_text(T[language]("hcp.patient.invalid-nin"))
        expect(page.locator("#patient")).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#patient")).to_have_attribute("aria-describedby", "form-error")
        expect(page.locator("#patient")).to_have_value(INVALID_NIN)
        for field in ("healthcare_service", "purpose_of_use", "purpose_of_use_details"):
            expect(page.locator(f"#{field}")).to_have_value(BASIS[field])  # the choices kept
        checked(page, f"a11y-hcp-patient-error-{language}")
    state_basis(page, network.manifest["patients"]["adult"])
    expect(page).to_have_url(re.compile(r"/helsepersonell/oversikt$"))

    # The overview paged by the smallest page size (the cast's adult has more documents).
    page.goto(f"{portal_url}{OVERVIEW}?antall=200")
    total = page.locator("table.documents tbody tr:not(.group-header)").count()
    size = min(PAGE_SIZES)
    assert total > size, f"{total} rows are too few to page by {size}"
    pages = -(-total // size)
    for language in LANGUAGES:
        in_language(page, portal_url, language, f"{OVERVIEW}?antall={size}")
        expect(page.locator("h1")).to_have_text(T[language]("overview.heading"))
        expect(page.locator("table.documents tbody tr:not(.group-header)")).to_have_count(size)
        caption = T[language]("overview.page-of", page=1, pages=pages)
        expect(page.locator("table.documents caption")).to_contain_text(caption)
        paging = page.get_by_role("navigation", name=T[language]("overview.paging"))
        expect(paging.locator('[aria-current="page"]')).to_have_text("1")
        expect(paging.locator('a[rel="next"]')).to_have_text(T[language]("overview.next"))
        checked(page, f"a11y-hcp-overview-paged-{language}")
    page.goto(f"{portal_url}{OVERVIEW}?antall={size}&side={pages}")
    expect(page.locator("table.documents tbody tr:not(.group-header)")).to_have_count(
        total - size * (pages - 1)
    )
    expect(page.locator('nav.paging [aria-current="page"]')).to_have_text(str(pages))
    expect(page.locator('nav.paging a[rel="prev"]')).to_have_count(1)
    checked(page, "a11y-hcp-overview-last-page-nb")

    # An image document, shown as an image.
    page.goto(f"{portal_url}{OVERVIEW}?antall=200")
    link = page.locator('tr.document[data-mime="image/png"] td:nth-child(2) a').first
    href = link.get_attribute("href")
    assert href and href.startswith("/helsepersonell/dokument/")
    for language in LANGUAGES:
        in_language(page, portal_url, language, href)
        image = page.locator("img.document-image")
        expect(image).to_be_visible()
        assert image.evaluate("img => img.complete && img.naturalWidth > 0") is True
        assert (image.get_attribute("alt") or "").strip()
        checked(page, f"a11y-hcp-document-image-{language}")

    # Under SAMTYKKE the emergency override is not offered: the page says why (issue 11,
    # defect 7); the override's own pages: tests/browser/test_emergency_override.py.
    for language in LANGUAGES:
        in_language(page, portal_url, language, "/helsepersonell/nodtilgang")
        expect(page.locator("h1")).to_have_text(T[language]("hcp.override.not-acute-heading"))
        expect(page.locator("#reason")).to_have_count(0)
        checked(page, f"a11y-hcp-emergency-not-acute-{language}")
    in_language(page, portal_url, "nb", f"{OVERVIEW}?antall=200")
    expect(page.locator(".override-status")).to_have_count(0)
    assert page.locator("tr.blocked").count() >= 1


def test_keyboard_skip_link_filter_form_and_language_switch(
    network: Network, portal_url: str, page: Page
) -> None:
    # Set-up with the mouse; the checks below use the keyboard alone.
    log_in(page, portal_url, "helsepersonell", network.manifest["staff"]["doctor"]["nin"])
    page.locator('form[action="/helsepersonell/arbeidssted"] button[type=submit]').click()
    state_basis(page, network.manifest["patients"]["parent"])
    expect(page).to_have_url(re.compile(r"/helsepersonell/oversikt$"))
    page.goto(f"{portal_url}{OVERVIEW}")

    # The first Tab stop is the skip link, shown when focused; Enter moves focus into <main>.
    page.keyboard.press("Tab")
    skip = page.locator(":focus")
    expect(skip).to_have_text(T["nb"]("site.skip"))
    expect(skip).to_have_attribute("href", "#innhold")
    box = skip.bounding_box()
    assert box is not None and box["x"] >= 0 and box["y"] >= 0, box
    page.keyboard.press("Enter")
    expect(page.locator("main#innhold")).to_be_focused()

    # Tab on from there to the region filter: every stop on the way is inside <main>.
    for _ in range(40):
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.closest('main') !== null")
        if page.evaluate("() => document.activeElement.id") == "f-region":
            break
    else:
        pytest.fail("the region filter was not reached with Tab")
    page.keyboard.press("ArrowDown")  # «Alle» → the first region
    region = page.locator("#f-region").input_value()
    assert region, "ArrowDown did not choose a region"
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.matches('form.filters [type=submit]')"):
            break
    else:
        pytest.fail("the filter form's button was not reached with Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"[?&]region={re.escape(quote_plus(region))}(&|$)"))
    expect(page.locator("#f-region")).to_have_value(region)
    regions = page.locator("table.documents tbody tr td:nth-child(7)").all_inner_texts()
    assert regions and {r.strip() for r in regions} == {region}

    # The language switch in the header, by keyboard: the filtered view stays as it was.
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.textContent.trim()") == "Nynorsk":
            break
    else:
        pytest.fail("the Nynorsk link was not reached with Tab")
    assert page.evaluate("() => document.activeElement.closest('header') !== null")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.locator("html")).to_have_attribute("lang", "nn")
    expect(page.locator("h1")).to_have_text(T["nn"]("overview.heading"))
    expect(page.locator("#f-region")).to_have_value(region)
    expect(page.locator("table.documents tbody tr:not(.group-header)")).to_have_count(len(regions))


def test_citizen_pages_in_three_languages(
    network: Network, portal_url: str, a11y_page: Page
) -> None:
    page = a11y_page
    patients = network.manifest["patients"]
    doctor = network.manifest["staff"]["doctor"]
    log_in(page, portal_url, "innbygger", patients["parent"])
    expect(page).to_have_url(re.compile(r"/innbygger/dokumenter"))
    csrf = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    assert csrf

    # The documents page and the access log in nynorsk and English.
    for language in OTHER_LANGUAGES:
        in_language(page, portal_url, language, "/innbygger/dokumenter")
        expect(page.locator("h1")).to_have_text(T[language]("citizen.documents.title"))
        expect(page.locator(".acting")).to_contain_text(T[language]("citizen.acting.self"))
        assert page.locator("tr.document").count() >= 1
        checked(page, f"a11y-citizen-documents-{language}")
        in_language(page, portal_url, language, "/innbygger/tilgangslogg")
        expect(page.locator("h1")).to_have_text(T[language]("citizen.log.title"))
        expect(page.locator('nav.citizen-nav a[aria-current="page"]')).to_have_text(
            T[language]("citizen.nav.access-log")
        )
        checked(page, f"a11y-citizen-access-log-{language}")

    # The representation page after a tampered choice: the child of 13 put in the form of the
    # child of 10 is refused (403) with the refusal sentence, and nothing switches.
    for language in LANGUAGES:
        in_language(page, portal_url, language, "/innbygger/representasjon")
        child10 = page.locator(
            "ul.people li form", has=page.locator(f'input[value="{patients["child10"]}"]')
        ).element_handle()
        child10.eval_on_selector(
            'input[name="person"]', "(e, nin) => { e.value = nin; }", patients["child13"]
        )
        button = child10.query_selector("button[type=submit]")
        assert button is not None
        assert submit(page, button) == 403
        alert = page.locator("main [role=alert]")
        said = " ".join(alert.inner_text().split())
        name = name_in(said, "citizen.refused.child-12-15", language)
        expect(page.locator("ul.refused strong").filter(has_text=name)).to_have_count(1)
        expect(page.locator(".acting")).to_contain_text(T[language]("citizen.acting.self"))
        checked(page, f"a11y-citizen-representation-refused-{language}")
    in_language(page, portal_url, "nb", "/innbygger/dokumenter")
    expect(page.locator(".acting")).to_contain_text(T["nb"]("citizen.acting.self"))

    # The privacy page with a blocked health worker listed, and with an HPR-number error.
    blocked = page.locator("table.blocked-practitioners")
    add = page.locator("form.add-block button[type=submit]")
    blocking = False
    try:
        page.goto(f"{portal_url}/innbygger/personvern")
        expect(blocked).to_have_count(0)
        page.fill("#hpr", str(doctor["hpr"]))
        blocking = True
        assert submit(page, add) == 200
        expect(page.locator("p.notice[role=status]")).to_be_visible()
        expect(blocked).to_contain_text(doctor["name"])
        checked(page, "a11y-citizen-privacy-blocked-nb")
        for language in LANGUAGES:
            in_language(page, portal_url, language, "/innbygger/personvern")
            page.fill("#hpr", "12")
            assert submit(page, add) == 400
            error = T[language]("citizen.privacy.hpr-invalid")
            expect(page.locator("#hpr-error")).to_have_text(error)
            expect(page.locator("#hpr")).to_have_attribute("aria-invalid", "true")
            expect(page.locator("#hpr")).to_have_attribute("aria-describedby", "hpr-hint hpr-error")
            expect(blocked.locator("tbody tr")).to_have_count(1)
            expect(blocked).to_contain_text(doctor["name"])
            checked(page, f"a11y-citizen-privacy-hpr-error-{language}")
        # Lift the block again, with the page's own button.
        in_language(page, portal_url, "nb", "/innbygger/personvern")
        assert submit(page, blocked.get_by_role("button")) == 200
        expect(blocked).to_have_count(0)
        expect(page.locator("main")).to_contain_text(T["nb"]("citizen.privacy.practitioners.none"))
        blocking = False
    finally:
        if blocking:
            page.request.post(
                f"{portal_url}/innbygger/sperringer/helsepersonell",
                form={"csrf_token": csrf, "hpr": str(doctor["hpr"]), "handling": "opphev"},
            )


def test_error_pages_in_three_languages(network: Network, portal_url: str, a11y_page: Page) -> None:
    page = a11y_page
    for language in LANGUAGES:
        missing = in_language(page, portal_url, language, "/finnes-ikke")
        assert missing is not None and missing.status == 404
        expect(page.locator("h1")).to_have_text(T[language]("error.title"))
        expect(page.locator("[role=alert]")).to_have_text(T[language]("error.http.404"))
        checked(page, f"a11y-error-404-{language}")

        refused = page.goto(f"{portal_url}{OVERVIEW}")
        assert refused is not None and refused.status == 401
        expect(page.locator("html")).to_have_attribute("lang", language)
        expect(page.locator("[role=alert]")).to_have_text(T[language]("error.not-logged-in"))
        checked(page, f"a11y-error-401-{language}")
        assert page.request.get(f"{portal_url}/innbygger/dokumenter").status == 401
