"""Acting for a child or a proxy giver, the pages name that person (issue 11, defect 3).

In chromium against the demo network, at 1280 × 800 and 390 × 844, in bokmål, nynorsk and
English, axe-core on each page: the cast parent acts for the child of 10 and the cast proxy
holder for the giver; the menu says «Dokumentene til NN» (not «Mine dokumenter»), the
documents page says whose documents a block hides, and the privacy page names the person in
its title and throughout («Reserverer NN seg …»), never «Reserverer du deg». The privacy page
is no wider than the phone. (The documents table's width on a phone is defect 6 of the issue.)
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from onerecord.portals.i18n import LANGUAGES, Translator
from tests.browser.artefacts import screenshot
from tests.browser.axe import assert_accessible
from tests.browser.sizes import fits_the_viewport
from tests.browser.test_accessibility import in_language, log_in
from tests.network.conftest import Network

pytestmark = [pytest.mark.slow, pytest.mark.shared_network]

T = {code: Translator(code) for code in LANGUAGES}
# "You" said of oneself, which a page about someone else must not say.
SELF_KEYS = (
    "citizen.nav.documents",
    "citizen.reservation.explain",
    "citizen.reservation.choice-on",
    "citizen.privacy.documents.none",
    "citizen.privacy.practitioners.none",
    "citizen.privacy.practitioners.explain",
)


def act_for(page: Page, portal_url: str, who: str, nin: str) -> str:
    """Log `who` in, choose the person `nin` on the representation page; return their name."""
    log_in(page, portal_url, "innbygger", who)
    expect(page).to_have_url(re.compile(r"/innbygger/dokumenter$"))
    page.goto(f"{portal_url}/innbygger/representasjon")
    item = page.locator("ul.people li", has=page.locator(f'input[value="{nin}"]'))
    name = re.sub(r" \([^)]*\)$", "", item.locator(".person").inner_text().strip())
    assert name
    item.get_by_role("button").click()
    expect(page).to_have_url(re.compile(r"/innbygger/dokumenter$"))
    return name


def check_named(page: Page, portal_url: str, name: str, shot: str) -> None:
    """The documents and privacy pages name `name` in each language, with no «you» of oneself."""
    for language in LANGUAGES:
        t = T[language]
        in_language(page, portal_url, language, "/innbygger/dokumenter")
        menu = page.locator(".citizen-nav a[aria-current=page]")
        expect(menu).to_have_text(t("citizen.nav.documents-other", name=name))
        expect(page.locator("h1")).to_have_text(t("citizen.documents.title-other", name=name))
        expect(page.locator("main")).to_contain_text(
            t("citizen.documents.block-intro-other", name=name)
        )
        screenshot(page, f"{shot}-documents-{language}")
        assert_accessible(page, f"{shot}-documents-{language}")

        page.goto(f"{portal_url}/innbygger/personvern")
        expect(page.locator("h1")).to_have_text(t("citizen.privacy.title-other", name=name))
        main = page.locator("main")
        for key in (
            "citizen.privacy.intro",
            "citizen.reservation.explain",
            "citizen.reservation.legend",
            "citizen.reservation.choice-on",
            "citizen.privacy.practitioners.explain",
        ):
            expect(main).to_contain_text(t(f"{key}-other", name=name))
        text = page.locator("body").inner_text()
        for key in SELF_KEYS:
            assert t(key) not in text, (language, key)
        screenshot(page, f"{shot}-privacy-{language}")
        assert_accessible(page, f"{shot}-privacy-{language}")
        fits_the_viewport(page)


def test_a_parent_acting_for_a_child_sees_the_child_named(
    network: Network, portal_url: str, sized_page: tuple[str, Page]
) -> None:
    size, page = sized_page
    patients = network.manifest["patients"]
    name = act_for(page, portal_url, patients["parent"], patients["child10"])
    check_named(page, portal_url, name, f"acting-child-{size}")


def test_a_proxy_sees_the_giver_named(
    network: Network, portal_url: str, sized_page: tuple[str, Page]
) -> None:
    size, page = sized_page
    patients = network.manifest["patients"]
    name = act_for(page, portal_url, patients["proxy_holder"], patients["proxy_giver"])
    check_named(page, portal_url, name, f"acting-proxy-{size}")
