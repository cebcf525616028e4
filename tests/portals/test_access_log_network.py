"""The citizen's access log as visits, against the real network (issue 11, defect 4).

A doctor opens the adult's overview (one search per region), sorts and pages it and opens one
document; a nurse, on an acute basis, opens one blocked document by emergency override. The
adult's log then shows one line per visit: profession, organisation, department, the regions
searched once, the title opened, the emergency marked with its basis and cause; the filters
narrow it; «Sperr» on the doctor's line blocks the doctor as the privacy page does.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import httpx
import pytest

from tests.network.conftest import Network
from tests.portals.pages import csrf_token, login_through_sts
from tests.portals.test_citizen_network import log_in
from tests.portals.test_portal_network import BASIS, Browser, _all_rows, _open_overview

pytestmark = pytest.mark.slow


def visit_items(page: str) -> list[str]:
    return re.findall(r'<li class="visit[^"]*">(.*?)</article>', page, re.S)


def text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)))


def citizen_sees(network: Network, portal_url: str) -> set[str]:
    """The uniqueIds in the adult's own documents list (what the log may name by title)."""
    with httpx.Client(timeout=30) as citizen:
        page = log_in(citizen, portal_url, network.manifest["patients"]["adult"])
        page = citizen.get(f"{portal_url}/innbygger/dokumenter", params={"antall": "200"})
        return set(re.findall(r'name="unique_id" value="([^"]+)"', page.text))


def _doctor_visit(network: Network, portal_url: str, visible: set[str]) -> str:
    """The doctor's visit: overview, sorting and paging, one document opened; its title.

    The document is one the adult sees in their own list: the log names only those by title.
    """
    browser = Browser(portal_url)
    try:
        _open_overview(network, browser)
        rows = _all_rows(browser)
        _all_rows(browser, sorter="tittel")
        opened = next(
            r
            for r in rows
            if not r.blocked
            and r.links
            and unquote(r.links[0]).split("?")[0].rpartition("~")[2] in visible
        )
        assert browser.get(opened.links[0]).status_code == 200
        assert browser.get(f"{opened.links[0].split('?')[0]}/innhold").status_code == 200
        return opened.title
    finally:
        browser.http.close()


def _nurse_emergency(network: Network, portal_url: str) -> str:
    """The nurse, on an acute basis, opens one blocked document (cause: unconscious); its title."""
    browser = Browser(portal_url)
    try:
        nurse = network.manifest["staff"]["nurse"]["nin"]
        page = login_through_sts(browser.http, portal_url, "helsepersonell", nurse)
        keys = re.findall(r'name="workplace" value="([^"]+)"', page.text)
        chosen = browser.post(
            "/helsepersonell/arbeidssted",
            data={"csrf_token": csrf_token(page), "workplace": keys[0]},
        )
        form = browser.follow(chosen)
        sent = browser.post(
            "/helsepersonell/pasient",
            data={
                "patient": network.manifest["patients"]["adult"],
                "csrf_token": csrf_token(form),
                **BASIS,
                "access_basis": "AKUTT",
            },
        )
        overview = browser.follow(sent)
        handles = re.findall(r"nodtilgang\?dokument=(masked-[0-9a-f]{32})", overview.text)
        assert handles, overview.text[-2000:]
        ask = browser.get("/helsepersonell/nodtilgang", dokument=handles[0])
        done = browser.post(
            "/helsepersonell/nodtilgang",
            data={
                "csrf_token": csrf_token(ask),
                "scope": f"dokument:{handles[0]}",
                "category": "unconscious",
                "reason": "Bevisstløs pasient i akuttmottaket.",
            },
        )
        assert done.status_code == 303, done.text[-2000:]
        opened = [r for r in _all_rows(browser) if "emergency" in r.classes]
        assert len(opened) == 1
        assert browser.get(opened[0].links[0]).status_code == 200
        # The bytes (a PDF is shown in a frame that loads them): the region's retrieve.
        content = f"{opened[0].links[0].split('?')[0]}/innhold"
        assert browser.get(content).status_code == 200
        return opened[0].title.removesuffix(" (åpnet med nødtilgang)")
    finally:
        browser.http.close()


def test_the_log_shows_visits_filters_them_and_blocks_from_the_row(
    network: Network, portal_url: str
) -> None:
    staff = network.manifest["staff"]
    doctor, nurse = staff["doctor"], staff["nurse"]
    department = next(d["name"] for d in doctor["departments"] if d["resh"] == doctor["department"])
    visible = citizen_sees(network, portal_url)
    assert visible
    title = _doctor_visit(network, portal_url, visible)
    blocked_title = _nurse_emergency(network, portal_url)

    with httpx.Client(timeout=30) as citizen:
        log_in(citizen, portal_url, network.manifest["patients"]["adult"])
        page = citizen.get(f"{portal_url}/innbygger/tilgangslogg")
        assert page.status_code == 200, page.text[-2000:]
        visits = [text_of(v) for v in visit_items(page.text)]
        by_doctor = [v for v in visits if v.startswith(f" {doctor['name']} ")]
        by_nurse = [v for v in visits if v.startswith(f" {nurse['name']} ")]
        assert len(by_doctor) == 1 and len(by_nurse) == 1, visits
        seen = by_doctor[0]
        for words in ("Yrke Lege", doctor["organisation"], f"Avdeling {department}", title):
            assert words in seen, (words, seen)
        regions = [r["name"] for r in network.manifest["regions"]]
        assert all(seen.count(name) <= 1 for name in regions)  # each region named once
        assert any(name in seen for name in regions)
        assert "Nødtilgang" not in seen
        urgent = by_nurse[0]
        for words in (
            "Yrke Sykepleier",
            f"Avdeling {department}",
            "Nødtilgang",
            "Grunnlag: akutt behov for helsehjelp.",
            "Årsak: pasienten var bevisstløs.",
            "Dokumenter du hadde sperret, ble vist.",
            blocked_title,  # the citizen's own blocked document: theirs to see
        ):
            assert words in urgent, (words, urgent)
        assert "Bevisstløs pasient i akuttmottaket" not in page.text  # the free text, never
        for person in (doctor, nurse):
            assert str(person["hpr"]) not in page.text and person["nin"] not in page.text

        # Filters: the nurse alone; today; nothing tomorrow; a bad date is a 400 with the form.
        refs = dict(re.findall(r'<option value="([^"]+)"[^>]*>([^<,]+),', page.text))
        nurse_ref = next(ref for ref, name in refs.items() if name == nurse["name"])
        theirs = citizen.get(f"{portal_url}/innbygger/tilgangslogg", params={"person": nurse_ref})
        assert [nurse["name"] in text_of(v) for v in visit_items(theirs.text)] == [True]
        today = datetime.now(UTC).date()
        on_day = citizen.get(
            f"{portal_url}/innbygger/tilgangslogg",
            params={"fra": (today - timedelta(days=1)).isoformat(), "til": today.isoformat()},
        )
        assert len(visit_items(on_day.text)) == len(visits)
        later = citizen.get(
            f"{portal_url}/innbygger/tilgangslogg",
            params={"fra": (today + timedelta(days=2)).isoformat()},
        )
        assert visit_items(later.text) == [] and "Ingen besøk passer" in later.text
        bad = citizen.get(f"{portal_url}/innbygger/tilgangslogg", params={"til": "i morgen"})
        assert bad.status_code == 400 and "Skriv datoen" in bad.text

        # «Sperr» on the doctor's line: the block is set and shown on the privacy page.
        row = next(v for v in visit_items(page.text) if doctor["name"] in v)
        fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', row))
        assert set(fields) == {"csrf_token", "leser"}
        done = citizen.post(f"{portal_url}/innbygger/tilgangslogg/sperr", data=fields)
        assert done.status_code == 303, done.text[-2000:]
        assert done.headers["location"] == "/innbygger/personvern"
        privacy = citizen.get(f"{portal_url}/innbygger/personvern")
        assert f"{doctor['name']} (HPR {doctor['hpr']}) er sperret." in privacy.text
        undo = re.search(
            r'<form method="post" action="/innbygger/sperringer/helsepersonell"'
            r' class="row-action">(.*?)</form>',
            privacy.text,
            re.S,
        )
        assert undo
        lifted = citizen.post(
            f"{portal_url}/innbygger/sperringer/helsepersonell",
            data=dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', undo.group(1))),
        )
        assert lifted.status_code == 303
