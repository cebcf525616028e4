"""Outages told truthfully in the citizen portal (issue 11 defect 5), in chromium.

Against the demo network (with a quick outbox, tests/portals/test_outage_network.py), at
1280 × 800 and 390 × 844, in bokmål, nynorsk and English, axe-core on each page:

- A health worker blocked while a region hangs shows «Venter på <region>» after the POST and on
  the privacy page; the region comes back and, with no user action (the hub re-sends the
  change), the page shows the block «I kraft i alle regioner».
- Opening a document of a region that hangs names the region («Helse Vest svarer ikke nå»),
  not «kan være trukket tilbake».
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from onerecord.portals.i18n import LANGUAGES, Translator
from tests.browser.artefacts import screenshot
from tests.browser.axe import assert_accessible
from tests.browser.sizes import fits_the_viewport
from tests.browser.test_accessibility import in_language, log_in
from tests.network.conftest import Network
from tests.portals.test_outage_network import hanging
from tests.portals.test_outage_network import network as network  # noqa: F401 - quick outbox

pytestmark = pytest.mark.slow

T = {code: Translator(code) for code in LANGUAGES}


def answering_region(network: Network, page: Page) -> tuple[int, str]:
    """A region the documents page says answered: it holds the citizen's documents."""
    text = page.locator("main").inner_text()
    for index, region in enumerate(network.manifest["regions"]):
        if f"{region['name']} svarte." in text:
            return index, str(region["name"])
    raise AssertionError("no region answered")


def check(page: Page, shot: str) -> None:
    screenshot(page, shot)
    assert_accessible(page, shot)
    fits_the_viewport(page)


def test_a_block_waits_for_a_hanging_region_then_is_in_force(
    network: Network, portal_url: str, sized_page: tuple[str, Page]
) -> None:
    size, page = sized_page
    nurse = network.manifest["staff"]["nurse"]
    hpr, nurse_name = str(nurse["hpr"]), str(nurse["name"])
    log_in(page, portal_url, "innbygger", network.manifest["patients"]["adult"])
    expect(page).to_have_url(re.compile(r"/innbygger/dokumenter$"))
    index, region = answering_region(network, page)
    row = page.locator("table.blocked-practitioners tbody tr", has_text=hpr)
    with hanging(network, index):
        in_language(page, portal_url, "nb", "/innbygger/personvern")
        page.fill("#hpr", hpr)
        page.locator("form.add-block button[type=submit]").click()
        expect(page).to_have_url(re.compile(r"/innbygger/personvern$"))
        notice = page.locator("p.notice")
        expect(notice).to_contain_text(T["nb"]("citizen.pending.waiting", regions=region))
        expect(notice).not_to_contain_text(T["nb"]("citizen.block.practitioner.on"))
        for language in LANGUAGES:
            t = T[language]
            in_language(page, portal_url, language, "/innbygger/personvern")
            waiting = t("citizen.pending.waiting", regions=region)
            expect(page.locator(".pending-changes")).to_contain_text(
                t("citizen.pending.practitioner.on", what=f"{nurse_name} (HPR {hpr})")
            )
            expect(page.locator(".pending-changes")).to_contain_text(waiting)
            expect(row).to_contain_text(waiting)
            check(page, f"pending-waiting-{size}-{language}")
    # The region is back: nobody does anything, the hub re-sends the block. Poll in bokmål:
    # the loop above left the page in English, where the bokmål words never appear (the poll
    # then used to run its whole 45 s on every run).
    in_language(page, portal_url, "nb", "/innbygger/personvern")
    deadline = time.monotonic() + 45
    in_force = T["nb"]("citizen.pending.in-force")
    while time.monotonic() < deadline:
        page.reload()
        if row.count() and in_force in row.inner_text():
            break
        time.sleep(0.5)
    for language in LANGUAGES:
        t = T[language]
        in_language(page, portal_url, language, "/innbygger/personvern")
        expect(row).to_contain_text(t("citizen.pending.in-force"))
        expect(page.locator(".pending-changes")).to_have_count(0)
        check(page, f"pending-in-force-{size}-{language}")
    # Lift it again, so that the next size starts from the same place.
    in_language(page, portal_url, "nb", "/innbygger/personvern")
    row.get_by_role("button").click()
    expect(page.locator("p.notice")).to_be_visible()
    expect(row).to_have_count(0)


def test_a_document_of_a_hanging_region_names_the_region(
    network: Network, portal_url: str, sized_page: tuple[str, Page]
) -> None:
    size, page = sized_page
    log_in(page, portal_url, "innbygger", network.manifest["patients"]["adult"])
    expect(page).to_have_url(re.compile(r"/innbygger/dokumenter$"))
    in_language(page, portal_url, "nb", "/innbygger/dokumenter?antall=100")
    index, region = answering_region(network, page)
    links = page.locator("tbody tr", has_text=region).locator('a[href^="/innbygger/dokument/"]')
    hrefs = [h for h in (links.nth(i).get_attribute("href") for i in range(links.count())) if h]
    assert hrefs, f"no document of {region} on the page"
    with hanging(network, index):
        # A PDF or an image is shown in a frame of its own (its page answers at once); a
        # document the portal renders is fetched for the page itself: the one to open.
        rendered = None
        for href in hrefs[:10]:
            answer = in_language(page, portal_url, "nb", href)
            if answer is not None and answer.status == 502:
                rendered = href
                break
        assert rendered, f"no rendered document of {region} among {hrefs[:10]}"
        for language in LANGUAGES:
            t = T[language]
            answer = in_language(page, portal_url, language, rendered)
            assert answer is not None and answer.status == 502, answer and answer.status
            main = page.locator("main")
            expect(main).to_contain_text(t("error.region-unreachable", region=region))
            expect(main).not_to_contain_text(t("error.document-unavailable"))
            check(page, f"region-unreachable-{size}-{language}")
