"""Issue 11, defect 8 in chromium: an ended login, no login, and a form too old, each said plainly.

Against the real network (`onerecord demo`), at 1280 × 800 and 390 × 844, in bokmål, nynorsk
and English, axe-core on each page, no page wider than the window:
- logged out elsewhere (another tab of the same browser logs out; this tab still holds the old
  cookie): the health worker's overview, with its sort in the address, becomes «Økten din er
  avsluttet» with «Logg inn på nytt»; logging in leads through the workplace and the basis back
  to that overview, query kept. The citizen's access log likewise, straight back to it;
- never logged in: «Du er ikke logget inn» with «Logg inn», and back to the page afterwards;
- a form whose page is too old (its CSRF token no longer the session's): «Skjemaet er for
  gammelt» in words, nothing changed, a link back to the form's page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from onerecord.portals.i18n import LANGUAGES, Translator
from onerecord.portals.sessions import COOKIE_NAME
from tests.browser.artefacts import screenshot
from tests.browser.axe import assert_accessible
from tests.browser.conftest import LOCALE
from tests.browser.sizes import SIZES, fits_the_viewport
from tests.browser.test_accessibility import BASIS, in_language, log_in, submit
from tests.browser.test_portals import hcp_open_patient, sts_login
from tests.network.conftest import Network

pytestmark = [pytest.mark.slow, pytest.mark.shared_network]

T = {code: Translator(code) for code in LANGUAGES}
OVERVIEW = "/helsepersonell/oversikt?sorter=tittel&retning=synkende&antall=50"
ACCESS_LOG = "/innbygger/tilgangslogg"


@pytest.fixture(params=list(SIZES))
def sized(request: pytest.FixtureRequest, browser: Browser) -> Iterator[tuple[str, BrowserContext]]:
    size = str(request.param)
    context = browser.new_context(locale=LOCALE, viewport=SIZES[size], bypass_csp=True)
    try:
        yield size, context
    finally:
        context.close()


def checked(page: Page, name: str) -> None:
    screenshot(page, name)
    assert_accessible(page, name)
    fits_the_viewport(page)


def log_out_elsewhere(context: BrowserContext, portal_url: str, area: str) -> None:
    """Log out in another tab, then put the old session cookie back, as a stale tab holds it."""
    old = [c for c in context.cookies() if c["name"] == COOKIE_NAME]
    assert len(old) == 1
    other = context.new_page()
    logged_in_page = "/helsepersonell/pasient" if area == "helsepersonell" else ACCESS_LOG
    other.goto(f"{portal_url}{logged_in_page}")
    other.locator("form.logout button").click()
    expect(other).to_have_url(re.compile(rf"/{area}/logg-inn$"))
    other.close()
    now = [c["value"] for c in context.cookies() if c["name"] == COOKIE_NAME]
    assert old[0]["value"] not in now  # the login page after logout starts a new session
    context.add_cookies(old)


def expect_login_page(page: Page, language: str, *, ended: bool) -> None:
    t = T[language]
    title = "error.session-ended.title" if ended else "error.not-logged-in.title"
    message = "error.session-ended" if ended else "error.not-logged-in"
    button = "error.relogin.button" if ended else "error.login.button"
    expect(page.locator("h1")).to_have_text(t(title))
    expect(page.locator("main [role=alert]")).to_have_text(t(message))
    expect(page.locator("form.relogin button")).to_have_text(t(button))
    expect(page.locator("main")).not_to_contain_text(t("error.title"))


def test_a_health_worker_logged_out_elsewhere_logs_in_again_and_is_back(
    network: Network, portal_url: str, sized: tuple[str, BrowserContext]
) -> None:
    size, context = sized
    page = context.new_page()
    doctor = network.manifest["staff"]["doctor"]
    hcp_open_patient(page, portal_url, network, network.manifest["patients"]["adult"], shots=False)
    page.goto(f"{portal_url}{OVERVIEW}")
    log_out_elsewhere(context, portal_url, "helsepersonell")

    for language in LANGUAGES:
        answer = in_language(page, portal_url, language, OVERVIEW)
        assert answer is not None and answer.status == 401
        expect_login_page(page, language, ended=True)
        checked(page, f"error-session-ended-hcp-{language}-{size}")

    in_language(page, portal_url, "nb", OVERVIEW)
    page.locator("form.relogin button").click()
    sts_login(page, doctor["nin"])
    expect(page).to_have_url(re.compile(r"/helsepersonell/arbeidssted\?neste="))
    page.get_by_role("button", name="Fortsett").click()
    expect(page).to_have_url(re.compile(r"/helsepersonell/pasient\?neste="))
    page.fill("#patient", network.manifest["patients"]["adult"])
    for field in ("healthcare_service", "purpose_of_use", "purpose_of_use_details"):
        page.select_option(f"#{field}", BASIS[field])
    page.check(f"#basis-{BASIS['access_basis']}")
    page.get_by_role("button", name="Vis dokumenter").click()
    expect(page).to_have_url(f"{portal_url}{OVERVIEW}")
    expect(page.locator("table.documents tbody tr").first).to_be_visible()


def test_a_citizen_logged_out_elsewhere_and_one_never_logged_in_come_back_to_the_page(
    network: Network, portal_url: str, sized: tuple[str, BrowserContext]
) -> None:
    size, context = sized
    page = context.new_page()
    adult = network.manifest["patients"]["adult"]

    # Never logged in: the page asks to log in, and comes back afterwards.
    for language in LANGUAGES:
        answer = in_language(page, portal_url, language, "/innbygger/personvern")
        assert answer is not None and answer.status == 401
        expect_login_page(page, language, ended=False)
        checked(page, f"error-not-logged-in-citizen-{language}-{size}")
    in_language(page, portal_url, "nb", "/innbygger/personvern")
    page.locator("form.relogin button").click()
    sts_login(page, adult)
    expect(page).to_have_url(f"{portal_url}/innbygger/personvern")

    # Logged out in another tab: this tab's access log asks to log in again, and is back.
    page.goto(f"{portal_url}{ACCESS_LOG}")
    log_out_elsewhere(context, portal_url, "innbygger")
    for language in LANGUAGES:
        answer = in_language(page, portal_url, language, ACCESS_LOG)
        assert answer is not None and answer.status == 401
        expect_login_page(page, language, ended=True)
        checked(page, f"error-session-ended-citizen-{language}-{size}")
    in_language(page, portal_url, "nb", ACCESS_LOG)
    page.locator("form.relogin button").click()
    sts_login(page, adult)
    expect(page).to_have_url(f"{portal_url}{ACCESS_LOG}")


def test_a_form_too_old_is_said_in_words(
    network: Network, portal_url: str, sized: tuple[str, BrowserContext]
) -> None:
    size, context = sized
    page = context.new_page()
    log_in(page, portal_url, "helsepersonell", network.manifest["staff"]["doctor"]["nin"])
    page.get_by_role("button", name="Fortsett").click()
    expect(page).to_have_url(re.compile(r"/helsepersonell/pasient$"))
    for language in LANGUAGES:
        t = T[language]
        in_language(page, portal_url, language, "/helsepersonell/pasient")
        # The page's token as it would be after a new login in another tab: no longer valid.
        page.eval_on_selector(
            'main form input[name="csrf_token"]', "e => { e.value = e.value + 'old'; }"
        )
        page.fill("#patient", network.manifest["patients"]["adult"])
        for field in ("healthcare_service", "purpose_of_use", "purpose_of_use_details"):
            page.select_option(f"#{field}", BASIS[field])
        page.check(f"#basis-{BASIS['access_basis']}")
        assert submit(page, page.locator('form[action="/helsepersonell/pasient"] button')) == 403
        expect(page.locator("h1")).to_have_text(t("error.csrf.title"))
        expect(page.locator("main [role=alert]")).to_have_text(t("error.csrf"))
        back = page.get_by_role("link", name=t("error.back-to-page"))
        expect(back).to_have_attribute("href", "/helsepersonell/pasient")
        checked(page, f"error-form-too-old-{language}-{size}")
        back.click()
        expect(page).to_have_url(f"{portal_url}/helsepersonell/pasient")
