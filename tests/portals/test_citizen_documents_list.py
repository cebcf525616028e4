"""«Mine dokumenter» (issue 11, defects 4 and 8): the rows already fetched, the way back, and
what the page tells a citizen — the reservation, what is withheld, what «Sperret fra før» means.

The citizen portal over ASGI with the STS and the hub faked (the fixtures of
test_citizen_app.py, whose fake records every request).
"""

from __future__ import annotations

import re
from html import unescape

import httpx
import pytest

from onerecord.portals.i18n import LANGUAGE_COOKIE
from tests.portals import test_citizen_app
from tests.portals.pages import csrf_token
from tests.portals.test_citizen_app import CHILD11, PARENT, FakeNetwork, logged_in

pytestmark = pytest.mark.anyio

fake = test_citizen_app.fake
browser = test_citizen_app.browser


def _searches(fake: FakeNetwork) -> int:
    return len(fake.hub_calls("/fhir/DocumentReference"))


def _controls_reads(fake: FakeNetwork) -> int:
    return len(fake.hub_calls("/controls"))


def _back_link(page: httpx.Response) -> str:
    match = re.search(r'<p><a href="([^"]+)">[^<]+</a></p>\s*<h1>', page.text)
    assert match, page.text[:3000]
    return unescape(match.group(1))


async def test_sorting_paging_and_going_back_do_not_ask_the_hub_again(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    """Defect 4: each of these re-ran the search (one audit event per region each time)."""
    await logged_in(browser)
    searches, reads = _searches(fake), _controls_reads(fake)
    assert searches == 1
    view = {"sorter": "tittel", "retning": "stigende", "antall": "50", "gruppering": "ingen"}
    page = await browser.get("/innbygger/dokumenter", params=view)
    assert page.status_code == 200
    link = re.search(r'<a href="(/innbygger/dokument/[^"]+)">Epikrise – astma</a>', page.text)
    assert link
    document = await browser.get(unescape(link.group(1)))
    assert document.status_code == 200
    back = _back_link(document)
    assert back.startswith("/innbygger/dokumenter?")
    assert dict(httpx.URL(back).params) == view
    again = await browser.get(back)
    assert again.status_code == 200 and "Epikrise – astma" in again.text
    assert (_searches(fake), _controls_reads(fake)) == (searches, reads)
    # «Oppdater» asks afresh.
    fresh = await browser.get("/innbygger/dokumenter", params={**view, "oppdater": "1"})
    assert fresh.status_code == 200
    assert (_searches(fake), _controls_reads(fake)) == (searches + 1, reads + 1)


async def test_a_change_and_another_person_fetch_afresh(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    page = await logged_in(browser)
    fields = dict(
        re.findall(r'name="([a-z_]+)" value="([^"]*)"', page.text.split("Epikrise – astma")[1])
    )
    blocked = await browser.post("/innbygger/sperringer/dokument", data=fields)
    assert blocked.status_code == 303
    after = await browser.get("/innbygger/dokumenter")
    assert _searches(fake) == 2  # the block is shown at once, from the hub
    assert "Opphev sperring" in after.text
    people = await browser.get("/innbygger/representasjon")
    await browser.post(
        "/innbygger/representasjon", data={"csrf_token": csrf_token(people), "person": CHILD11}
    )
    child = await browser.get("/innbygger/dokumenter")
    assert "Barnets journalnotat" in child.text and "Epikrise – astma" not in child.text
    assert _searches(fake) == 3


async def test_the_reservation_is_said_at_the_top_with_a_link_to_privacy(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    """Defect 8: the reservation was not shown on «Mine dokumenter»."""
    page = await logged_in(browser)
    assert "reservert deg mot deling" not in page.text
    fake.reserved[PARENT] = True
    page = await browser.get("/innbygger/dokumenter", params={"oppdater": "1"})
    notice = re.search(r'<p class="notice reserved" role="status">(.*?)</p>', page.text, re.S)
    assert notice, page.text[:3000]
    assert "Du har reservert deg mot deling" in notice.group(1)
    assert 'href="/innbygger/personvern"' in notice.group(1)
    assert page.text.index("notice reserved") < page.text.index("<table")
    browser.cookies.set(LANGUAGE_COOKIE, "en")
    english = await browser.get("/innbygger/dokumenter")
    assert "You have reserved against sharing" in english.text
    assert "Change this under Privacy" in english.text


async def test_what_is_withheld_and_what_already_blocked_means_are_explained(
    browser: httpx.AsyncClient,
) -> None:
    """Defect 8: nothing told a citizen that documents are withheld, or what «Sperret fra før»
    means."""
    page = await logged_in(browser)
    text = unescape(page.text)
    assert "<summary>Hvorfor ser jeg ikke alle dokumentene?</summary>" in text
    assert "Noen dokumenter vises ikke her, og listen sier ikke hvor mange" in text
    assert "<summary>Hva betyr «Sperret fra før»?</summary>" in text
    assert "Sperringen kan bare oppheves der dokumentet ble skrevet" in text
    for language, summary in (
        ("nn", "Kvifor ser eg ikkje alle dokumenta?"),
        ("en", "Why do I not see every document?"),
    ):
        browser.cookies.set(LANGUAGE_COOKIE, language)
        assert summary in unescape((await browser.get("/innbygger/dokumenter")).text)
