"""A journey per role, from login to the goal (issue 11, "What must be shown").

In Debian's chromium against the network `onerecord demo` starts, at 1280 × 800 and on a
390 × 844 phone, axe-core (WCAG 2.x A/AA, no serious or critical violations) after every step.
The steps live in journeys.py, one function per step, found by role, label and text:
- GP: workplace, patient with a basis, the patient header and one list from several regions,
  a lab result, log out;
- emergency nurse: acute basis, «Sperret» rows, the emergency override with a reason, the
  document it opened;
- citizen: «Mine dokumenter», a document, blocks a document and a health worker on the privacy
  page, reads the access log (and lifts the blocks again);
- parent of a child under 12: switches to the child, sees the child's documents, named;
- a 14-year-old: the young-person page with the rules, and their own access log;
- a proxy: acts for the giver, the pages name the giver.

At both sizes each page also fits the viewport (defect 6: no sideways scrolling).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Page

from tests.browser import journeys as step
from tests.browser.axe import assert_accessible
from tests.browser.conftest import LOCALE
from tests.browser.sizes import SIZES
from tests.browser.test_young_person import doctor_looks_at
from tests.network.conftest import Network

pytestmark = [pytest.mark.slow, pytest.mark.shared_network]


@dataclass
class Journey:
    """One person's tab at one size; `check` runs axe and fails a page wider than the window."""

    page: Page
    size: str

    def check(self, name: str) -> None:
        assert_accessible(self.page, f"{name} ({self.size})")
        width, viewport = self.page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert width <= viewport, f"{self.page.url}: {name}: {width} px in {viewport} px"


@pytest.fixture(scope="module")
def cast(network: Network) -> step.Cast:
    return step.Cast.of(network.manifest)


@pytest.fixture(params=list(SIZES))
def journey(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Journey]:
    """A fresh tab at one of the two sizes, in a context that lets axe-core in (see axe.py)."""
    size = str(request.param)
    context = browser.new_context(locale=LOCALE, viewport=SIZES[size], bypass_csp=True)
    try:
        yield Journey(context.new_page(), size)
    finally:
        context.close()


def test_gp_finds_the_patient_reads_a_lab_result_and_logs_out(
    cast: step.Cast, journey: Journey
) -> None:
    page, url, gp = journey.page, cast.portal_url, cast.staff("gp")
    step.log_in(page, url, "helsepersonell", gp["nin"])
    journey.check("workplace")
    step.choose_workplace(page, gp["organisation"])
    journey.check("patient and basis")
    step.state_basis(page, cast.nin("adult"), step.GP_BASIS)
    step.see_patient_header(page, cast.name("adult"), cast.nin("adult"))
    page.goto(f"{url}/helsepersonell/oversikt?antall=200")
    assert len(step.regions_in_rows(page, cast.region_names)) >= 3
    journey.check("overview")
    step.open_lab_result(page)
    step.see_patient_header(page, cast.name("adult"), cast.nin("adult"))
    journey.check("lab result")
    step.log_out(page, url, "helsepersonell")
    journey.check("logged out")


def test_emergency_nurse_opens_a_blocked_document_with_a_reason(
    cast: step.Cast, journey: Journey
) -> None:
    page, url, nurse = journey.page, cast.portal_url, cast.staff("nurse")
    step.log_in(page, url, "helsepersonell", nurse["nin"])
    step.choose_workplace(page, nurse["organisation"])
    step.state_basis(page, cast.nin("adult"), step.ACUTE_BASIS)
    page.goto(f"{url}/helsepersonell/oversikt?antall=200")
    blocked = step.see_blocked_rows(page)
    journey.check("overview with blocked rows")
    step.use_emergency_override(page)
    journey.check("override in use")
    step.open_document_opened_by_override(page, url, blocked)
    step.see_patient_header(page, cast.name("adult"), cast.nin("adult"))
    journey.check("document opened by override")


def test_citizen_reads_blocks_and_checks_who_looked(
    network: Network, cast: step.Cast, journey: Journey
) -> None:
    page, url, doctor = journey.page, cast.portal_url, cast.staff("doctor")
    doctor_looks_at(network, cast.nin("adult"))
    step.log_in(page, url, "innbygger", cast.nin("adult"))
    step.see_my_documents(page, url)
    journey.check("my documents")
    step.open_a_document(page)
    journey.check("a document")
    title = step.block_a_document(page, url)
    journey.check("document blocked")
    try:
        step.block_health_worker(page, url, doctor["hpr"], doctor["name"])
        step.see_blocks_on_privacy_page(page, url, title, doctor["name"])
        journey.check("privacy with blocks")
        step.read_access_log(page, url, doctor, title=step.NB("citizen.log.title"))
        journey.check("access log")
    finally:
        step.lift_blocks(page, url, title, doctor["name"])


def test_parent_switches_to_a_child_under_12(cast: step.Cast, journey: Journey) -> None:
    page, url = journey.page, cast.portal_url
    step.log_in(page, url, "innbygger", cast.nin("parent"))
    page.goto(f"{url}/innbygger/representasjon")
    journey.check("representation")
    step.act_for(page, url, cast.name("child10"))
    step.see_page_names(page, url, cast.name("child10"))
    journey.check("child's privacy page")
    page.goto(f"{url}/innbygger/dokumenter")
    journey.check("child's documents")


def test_a_14_year_old_reads_the_rules_and_their_own_access_log(
    network: Network, cast: step.Cast, journey: Journey
) -> None:
    page, url = journey.page, cast.portal_url
    doctor_looks_at(network, cast.nin("teen14"))
    step.log_in(page, url, "innbygger", cast.nin("teen14"))
    step.see_young_person_page(page, cast.nin("teen14"))
    journey.check("young-person page")
    step.read_own_access_log(page, cast.staff("doctor"))
    journey.check("own access log")


def test_a_proxy_acts_for_the_giver(cast: step.Cast, journey: Journey) -> None:
    page, url = journey.page, cast.portal_url
    step.log_in(page, url, "innbygger", cast.nin("proxy_holder"))
    step.act_for(page, url, cast.name("proxy_giver"))
    step.see_page_names(page, url, cast.name("proxy_giver"))
    journey.check("giver's privacy page")
    page.goto(f"{url}/innbygger/dokumenter")
    journey.check("giver's documents")
