"""Walk every page of both portals in chromium against a running demo network.

Shared by bench/screenshots.py (a PNG of each page at both sizes for docs/portals.md) and
bench/page_budget.py (bytes transferred and first contentful paint per page). The network is
the one the tests start (`tests.network.conftest.start_network`: `onerecord demo` with the
short hub deadlines); the steps are the journeys' (tests/browser/journeys.py), so a page is
reached as its user reaches it: through the STS login page, by role, label and text.

Pages, in order: the start page, both login pages and the STS's test-user page; the health
worker's workplace, patient and basis, overview, a lab report and the emergency override; the
citizen's documents, a document, privacy, access log, representation (a parent with children)
and the young-person page (a 14-year-old).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import journeys as step  # noqa: E402
from tests.network.conftest import Network, start_network, stop_network  # noqa: E402

__all__ = [
    "CHROMIUM",
    "PAGES",
    "SIZES",
    "Stop",
    "chromium",
    "demo_network",
    "walk",
]

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
SIZES: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 800},
    "phone": {"width": 390, "height": 844},
}
PAGES = (
    "start",
    "hcp-login",
    "citizen-login",
    "sts-login",
    "hcp-workplace",
    "hcp-patient",
    "hcp-overview",
    "hcp-document-lab",
    "hcp-emergency",
    "citizen-documents",
    "citizen-document",
    "citizen-privacy",
    "citizen-access-log",
    "citizen-representation",
    "citizen-young-person",
)


@dataclass(frozen=True)
class Stop:
    """A page of the walk, shown in `page` (logged in as its user); reload `page.url` to revisit."""

    name: str
    page: Page


@contextlib.contextmanager
def demo_network() -> Iterator[Network]:
    """Start `onerecord demo` in a temporary folder as the tests do; stop it on leaving."""
    with tempfile.TemporaryDirectory(prefix="onerecord-walk-") as folder:
        network = start_network(Path(folder))
        try:
            yield network
        finally:
            code, out = stop_network(network)
            if code != 0:
                print(f"the demo ended with {code}:\n{out[-2000:]}", file=sys.stderr)


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's headless chromium, driven by playwright (as tests/browser/conftest.py)."""
    if not os.access(CHROMIUM, os.X_OK):
        raise SystemExit(f"chromium is not installed at {CHROMIUM}; run scripts/install-browser")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def _context(browser: Browser, size: str) -> BrowserContext:
    return browser.new_context(locale="nb-NO", viewport=SIZES[size])


def walk(browser: Browser, cast: step.Cast, size: str) -> Iterator[Stop]:
    """Yield each page of PAGES in order, shown at `size`; each user has a context of their own.

    A context stays open while its pages are yielded (so a caller may reload them), and closes
    when the walk moves on to the next user.
    """
    url = cast.portal_url
    with contextlib.closing(_context(browser, size)) as anonymous:
        page = anonymous.new_page()
        page.goto(f"{url}/")
        yield Stop("start", page)
        page.goto(f"{url}/helsepersonell/logg-inn")
        yield Stop("hcp-login", page)
        page.goto(f"{url}/innbygger/logg-inn")
        yield Stop("citizen-login", page)
        page.get_by_role("main").get_by_role("button", name=step.NB("citizen.login.button")).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("testbrukere")
        yield Stop("sts-login", page)

    doctor = cast.staff("doctor")
    with contextlib.closing(_context(browser, size)) as hcp:
        page = hcp.new_page()
        step.log_in(page, url, "helsepersonell", doctor["nin"])
        yield Stop("hcp-workplace", page)
        step.choose_workplace(page, doctor["organisation"])
        yield Stop("hcp-patient", page)
        step.state_basis(page, cast.nin("adult"), step.ACUTE_BASIS)
        step.see_patient_header(page, cast.name("adult"), cast.nin("adult"))
        yield Stop("hcp-overview", page)
        step.open_lab_result(page)
        yield Stop("hcp-document-lab", page)
        page.goto(f"{url}/helsepersonell/nodtilgang")
        expect(page.get_by_role("heading", level=1)).to_have_text(step.NB("hcp.emergency.heading"))
        yield Stop("hcp-emergency", page)

    with contextlib.closing(_context(browser, size)) as citizen:
        page = citizen.new_page()
        step.log_in(page, url, "innbygger", cast.nin("adult"))
        page.goto(f"{url}/innbygger/dokumenter")
        yield Stop("citizen-documents", page)
        step.open_a_document(page)
        yield Stop("citizen-document", page)
        page.goto(f"{url}/innbygger/personvern")
        yield Stop("citizen-privacy", page)
        page.goto(f"{url}/innbygger/tilgangslogg")
        yield Stop("citizen-access-log", page)

    with contextlib.closing(_context(browser, size)) as parent:
        page = parent.new_page()
        step.log_in(page, url, "innbygger", cast.nin("parent"))
        page.goto(f"{url}/innbygger/representasjon")
        yield Stop("citizen-representation", page)

    with contextlib.closing(_context(browser, size)) as young:
        page = young.new_page()
        step.log_in(page, url, "innbygger", cast.nin("teen14"))
        step.see_young_person_page(page, cast.nin("teen14"))
        yield Stop("citizen-young-person", page)
