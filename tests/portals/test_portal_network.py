"""The health-personnel portal as `onerecord demo` starts it, in front of the real network.

The cast doctor logs in through the STS (authorization code + PKCE), chooses a workplace,
states a basis for the patient "adult" and works with the national overview: filter, sort,
page, open documents, the emergency override (logged at the portal and flagged in the
regions' audit, which the citizen reads) and logout.

On the worker's shared demo network (docs/testing.md "Shared network"): the override is the
portal session's own and ended in the test; the access log and the mails are read for what
came after the override (by time and by Message-ID), not counted from empty.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from markupsafe import escape

from onerecord.portals.listing import PAGE_SIZES
from onerecord.search_client import FNR_SYSTEM
from tests.network.conftest import Network
from tests.portals.pages import (
    TableRow,
    csrf_token,
    follow_redirects,
    login_through_sts,
    region_answered_or_spared,
    set_cookie_header,
    table_rows,
)

pytestmark = [pytest.mark.slow, pytest.mark.shared_network]

BASIS = {
    "healthcare_service": "01",
    "purpose_of_use": "TREAT",
    "purpose_of_use_details": "BEHANDLER",
    "access_basis": "SAMTYKKE",
}
OVERVIEW = "/helsepersonell/oversikt"
EMERGENCY_EXT = "https://onerecord.example/fhir/StructureDefinition/emergency-access"


class Browser:
    """A browser at the portal: httpx without automatic redirects, every page kept."""

    def __init__(self, portal_url: str) -> None:
        self.portal_url = portal_url
        self.http = httpx.Client(base_url=portal_url, timeout=30)
        self.pages: list[httpx.Response] = []

    def get(self, url: str, **params: Any) -> httpx.Response:
        if params:
            url = f"{url}?{urlencode(params)}"
        page = self.http.get(url)
        self.pages.append(page)
        return page

    def post(self, url: str, data: dict[str, str]) -> httpx.Response:
        page = self.http.post(url, data=data)
        self.pages.append(page)
        return page

    def follow(self, response: httpx.Response) -> httpx.Response:
        page = follow_redirects(self.http, response)
        self.pages.append(page)
        return page


@pytest.fixture
def browser(portal_url: str) -> Iterator[Browser]:
    b = Browser(portal_url)
    try:
        yield b
    finally:
        b.http.close()


def _log_in(network: Network, browser: Browser) -> httpx.Response:
    """Log the cast doctor in through the STS; return the workplace page."""
    nin = network.manifest["staff"]["doctor"]["nin"]
    page = login_through_sts(browser.http, browser.portal_url, "helsepersonell", nin)
    browser.pages.append(page)
    assert page.status_code == 200, page.text[:2000]
    assert str(page.url).endswith("/helsepersonell/arbeidssted")
    return page


def _choose_workplace(browser: Browser, page: httpx.Response) -> httpx.Response:
    keys = re.findall(r'name="workplace" value="([^"]+)"', page.text)
    assert keys, page.text[:3000]
    chosen = browser.post(
        "/helsepersonell/arbeidssted", data={"csrf_token": csrf_token(page), "workplace": keys[0]}
    )
    assert chosen.status_code == 303 and chosen.headers["location"] == "/helsepersonell/pasient"
    return browser.follow(chosen)


def _open_overview(
    network: Network, browser: Browser, patient: str = "adult", basis: dict[str, str] = BASIS
) -> httpx.Response:
    form = _choose_workplace(browser, _log_in(network, browser))
    assert form.status_code == 200
    chosen = browser.post(
        "/helsepersonell/pasient",
        data={
            "patient": network.manifest["patients"][patient],
            "csrf_token": csrf_token(form),
            **basis,
        },
    )
    assert chosen.status_code == 303, chosen.text[:2000]
    assert chosen.headers["location"] == OVERVIEW
    page = browser.follow(chosen)
    assert page.status_code == 200, page.text[:2000]
    return page


def _all_rows(browser: Browser, **params: str) -> list[TableRow]:
    page = browser.get(OVERVIEW, antall="200", **params)
    assert page.status_code == 200
    return table_rows(page)


def _assert_no_token(browser: Browser) -> None:
    for page in browser.pages:
        body = page.text if "text" in page.headers.get("content-type", "") else ""
        assert "eyJ" not in body and "DPoP " not in body, page.url


def test_doctor_logs_in_through_the_sts_and_sees_the_national_overview(
    network: Network, browser: Browser
) -> None:
    staff = network.manifest["staff"]["doctor"]
    workplace = _log_in(network, browser)
    cookie = set_cookie_header(workplace)
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert "secure" not in cookie.lower()  # plain http on 127.0.0.1 in dev mode only
    assert staff["name"] in workplace.text and staff["organisation"] in workplace.text
    form = _choose_workplace(browser, workplace)
    assert staff["organisation"] in form.text
    chosen = browser.post(
        "/helsepersonell/pasient",
        data={
            "patient": network.manifest["patients"]["adult"],
            "csrf_token": csrf_token(form),
            **BASIS,
        },
    )
    overview = browser.follow(chosen)
    assert overview.status_code == 200
    # Each region's answer stated plainly.
    regions = {r["name"] for r in network.manifest["regions"]}
    for name in regions:
        assert region_answered_or_spared(overview.text, name)
    rows = _all_rows(browser)
    documents = [r for r in rows if not r.blocked]
    assert len({r.region for r in documents} & regions) >= 3, {r.region for r in documents}
    # The cast's adult has blocked documents: placeholders, counted in a sentence.
    blocked = [r for r in rows if r.blocked]
    assert blocked and all(r.title == "Sperret" and not r.links for r in blocked)
    assert f"{len(blocked)} dokumenter er sperret av pasienten" in overview.text or (
        len(blocked) == 1 and "1 dokument er sperret av pasienten" in overview.text
    )
    # Under SAMTYKKE no emergency override is offered (issue 11, defect 7).
    assert "/helsepersonell/nodtilgang" not in overview.text
    assert all(r.links and r.links[0].startswith("/helsepersonell/dokument/") for r in documents)
    _assert_no_token(browser)


def test_filter_sort_and_page_the_overview(network: Network, browser: Browser) -> None:
    _open_overview(network, browser)
    rows = _all_rows(browser)
    regions = sorted({r.region for r in rows})
    assert len(regions) >= 3
    # Filter by region: only that region, fewer rows.
    by_region = _all_rows(browser, region=regions[0])
    assert by_region and {r.region for r in by_region} == {regions[0]}
    assert len(by_region) < len(rows)
    assert len(by_region) == sum(1 for r in rows if r.region == regions[0])
    # Filter by class (the filter's values are the Volven codes; the cells say their names).
    classes = sorted({r.cells[3] for r in rows if r.cells[3]})
    assert len(classes) >= 2
    by_class = _all_rows(browser, klasse="A00-1")
    assert by_class and len({r.cells[3] for r in by_class}) == 1
    assert by_class[0].cells[3].startswith("Epikriser og sammenfatninger")
    assert len(by_class) < len(rows)
    # Sort by title, both ways (placeholders aside: their title is masked).
    up = [r.title.casefold() for r in _all_rows(browser, sorter="tittel", retning="stigende")]
    down = [r.title.casefold() for r in _all_rows(browser, sorter="tittel", retning="synkende")]
    assert up == sorted(up) and down == sorted(down, reverse=True)
    assert sorted(up) == sorted(r.title.casefold() for r in rows)
    # Newest first as one list (dates shown as dd.mm.yyyy); grouped, newest first in a group.
    flat = _all_rows(browser, gruppering="ingen")
    days = [datetime.strptime(r.cells[0], "%d.%m.%Y") for r in flat if r.cells[0]]
    assert days == sorted(days, reverse=True)
    # Paging by the smallest page size, which the cast's adult has more documents than.
    size = min(PAGE_SIZES)
    assert len(rows) > size, f"{len(rows)} rows are too few to page by {size}"
    pages = -(-len(rows) // size)
    first = browser.get(OVERVIEW, antall=str(size))
    first_rows = table_rows(first)
    assert len(first_rows) == size
    assert f"side 1 av {pages}" in first.text.lower()
    assert 'class="paging"' in first.text
    assert 'rel="next"' in first.text and 'rel="prev"' not in first.text
    last = browser.get(OVERVIEW, antall=str(size), side=str(pages))
    last_rows = table_rows(last)
    assert len(last_rows) == len(rows) - size * (pages - 1)
    assert f"side {pages} av {pages}" in last.text.lower()
    assert 'rel="prev"' in last.text and 'rel="next"' not in last.text
    # Each row is on exactly one page.
    paged = [
        tuple(r.cells)
        for n in range(1, pages + 1)
        for r in table_rows(browser.get(OVERVIEW, antall=str(size), side=str(n)))
    ]
    assert sorted(paged) == sorted(tuple(r.cells) for r in rows)
    # A bad parameter is named, not a failure.
    odd = browser.get(OVERVIEW, sorter="pris", antall="7")
    assert odd.status_code == 200 and "sorter, antall" in odd.text
    _assert_no_token(browser)


def test_open_a_pdf_and_a_lab_result_and_download(network: Network, browser: Browser) -> None:
    _open_overview(network, browser)
    rows = [r for r in _all_rows(browser) if not r.blocked]
    pdf = next(r for r in rows if r.attrs.get("data-mime") == "application/pdf")
    lab = next(r for r in rows if r.attrs.get("data-format", "").endswith("svarrapport"))
    # The link carries the overview's view (for the way back); the document is its path.
    pdf_path = pdf.links[0].split("?")[0]
    page = browser.get(pdf.links[0])
    assert page.status_code == 200
    assert 'data-kind="pdf"' in page.text and escape(pdf.title) in page.text
    content = browser.get(f"{pdf_path}/innhold")
    assert content.status_code == 200
    assert content.headers["content-type"] == "application/pdf"
    assert content.content.startswith(b"%PDF")
    assert content.headers["content-disposition"].startswith("inline")
    # Inline PDFs are not sandboxed (Chromium's viewer refuses to run sandboxed), but nothing
    # may load from them; downloads and every other kind are sandboxed as well.
    assert "default-src 'none'" in content.headers["content-security-policy"]
    assert "sandbox" not in content.headers["content-security-policy"]
    assert f'data="{pdf_path}/innhold"' in page.text
    download = browser.get(f"{pdf_path}/innhold", **{"last-ned": "1"})
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in download.headers["content-security-policy"]
    assert download.content == content.content
    result = browser.get(lab.links[0])
    assert result.status_code == 200
    assert 'data-kind="html"' in result.text and 'class="rendered"' in result.text
    table = re.search(r'<table class="lab-results">(.*?)</table>', result.text, re.S)
    assert table and table.group(1).count("<tr") >= 2, result.text[:3000]
    # Not in the overview (or not a token at all): refused with the error page.
    missing = browser.get("/helsepersonell/dokument/1.2.3~4.5~6.7")
    assert missing.status_code == 404 and "Dokumentet kan ikke vises" in missing.text
    _assert_no_token(browser)


def _access_log(network: Network, patient: str) -> list[dict[str, Any]]:
    """The citizen's own access log across the regions (the hub's GET /fhir/AuditEvent)."""
    session = network.citizen(patient)
    url = f"{network.hub_fhir}/AuditEvent"
    answer = httpx.get(
        url,
        params={"patient.identifier": f"{FNR_SYSTEM}|{patient}"},
        headers=session.headers("GET", url),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text[:2000]
    return [
        e["resource"]
        for e in answer.json().get("entry", [])
        if e["resource"]["resourceType"] == "AuditEvent"
    ]


def _emergency(event: dict[str, Any]) -> bool:
    return any(
        x.get("url") == EMERGENCY_EXT and x.get("valueBoolean") for x in event.get("extension", [])
    )


def test_emergency_override_opens_one_document_logs_it_and_tells_the_citizen(
    network: Network, browser: Browser
) -> None:
    """Issue 11, defect 7: one blocked document, acute basis, logged, flagged, e-mailed."""
    adult = network.manifest["patients"]["adult"]
    staff = network.manifest["staff"]["doctor"]
    mail = Path(network.manifest["mail"]["folder"])
    from onerecord.demo_mail import read_mails

    def new_notices() -> list[Any]:
        """The emergency notices mailed since the test began (other mails may arrive too)."""
        return [
            m
            for m in read_mails(mail)
            if m["Message-ID"] not in mails_before
            and not m.is_multipart()
            and "brukte nødtilgang" in m.get_content()
        ]

    mails_before = {m["Message-ID"] for m in read_mails(mail)}
    overview = _open_overview(network, browser, basis=BASIS | {"access_basis": "AKUTT"})
    placeholders = re.findall(r"nodtilgang\?dokument=(masked-[0-9a-f]{32})", overview.text)
    before = _all_rows(browser)
    blocked = [r for r in before if r.blocked]
    assert len(blocked) >= 2 and len(placeholders) >= 2
    form = browser.get("/helsepersonell/nodtilgang", dokument=placeholders[0])
    assert form.status_code == 200
    short = browser.post(
        "/helsepersonell/nodtilgang",
        data={
            "csrf_token": csrf_token(form),
            "scope": f"dokument:{placeholders[0]}",
            "category": "unconscious",
            "reason": "akutt",
        },
    )
    assert short.status_code == 400
    assert "Begrunnelsen må ha mellom 10 og 500 tegn." in short.text
    reason = f"Bevisstløs pasient i akuttmottaket, sak {secrets.token_hex(4)}"
    started = datetime.now(UTC)
    sent = browser.post(
        "/helsepersonell/nodtilgang",
        data={
            "csrf_token": csrf_token(form),
            "scope": f"dokument:{placeholders[0]}",
            "category": "unconscious",
            "reason": reason,
        },
    )
    assert sent.status_code == 303 and sent.headers["location"] == OVERVIEW
    page = browser.follow(sent)
    assert page.status_code == 200
    assert "Nødtilgang til ett sperret dokument" in page.text and "utløper kl." in page.text
    after = _all_rows(browser)
    # One document opened; the region keeps every other blocked document masked.
    assert len([r for r in after if r.blocked]) == len(blocked) - 1
    opened = [r for r in after if "emergency" in r.classes]
    assert len(opened) == 1 and len(after) == len(before)
    assert browser.get(opened[0].links[0]).status_code == 200
    # The portal's override log: one line with the reason, scope and the doctor's HPR number.
    log = Path(network.manifest["workdir"]) / "portal" / "emergency-overrides.jsonl"
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    mine = [entry for entry in lines if entry["reason"] == reason]
    assert len(mine) == 1
    assert mine[0]["practitioner_hpr"] == staff["hpr"] and mine[0]["patient"] == adult
    assert mine[0]["scope"] == [f"dokument:{placeholders[0]}"]
    # The regions flag the access as emergency; the citizen sees it (but not the reason).
    flagged = [
        e
        for e in _access_log(network, adult)
        if _emergency(e) and datetime.fromisoformat(e["recorded"]) >= started
    ]
    assert flagged
    assert all(e["agent"][0]["who"]["display"] == staff["name"] for e in flagged)
    assert reason not in json.dumps(flagged, ensure_ascii=False)
    # The citizen's e-mail reached the demo's SMTP server (aiosmtpd): no health information.
    deadline = time.monotonic() + 20
    while not new_notices() and time.monotonic() < deadline:
        time.sleep(0.2)
    received = new_notices()
    assert len(received) == 1
    body = received[0].get_content()
    assert "/innbygger/tilgangslogg" in body and "brukte nødtilgang" in body
    assert reason not in body and adult not in body and "Epikrise" not in body
    # Ending it blocks the document again.
    ended = browser.post(
        "/helsepersonell/nodtilgang/avslutt", data={"csrf_token": csrf_token(page)}
    )
    assert ended.status_code == 303
    assert len([r for r in _all_rows(browser) if r.blocked]) == len(blocked)
    assert browser.get(opened[0].links[0]).status_code == 404
    _assert_no_token(browser)


def test_bad_number_gives_the_form_back_with_a_message(network: Network, browser: Browser) -> None:
    form = _choose_workplace(browser, _log_in(network, browser))
    r = browser.post(
        "/helsepersonell/pasient",
        data={"patient": "12345678901", "csrf_token": csrf_token(form), **BASIS},
    )
    assert r.status_code == 400
    assert "Fødselsnummeret er ikke gyldig" in r.text


def test_post_without_csrf_token_is_refused(network: Network, browser: Browser) -> None:
    _choose_workplace(browser, _log_in(network, browser))
    r = browser.post(
        "/helsepersonell/pasient",
        data={"patient": network.manifest["patients"]["adult"], **BASIS},
    )
    assert r.status_code == 403
    assert "Traceback" not in r.text


def test_logout_ends_the_session(network: Network, browser: Browser) -> None:
    page = _open_overview(network, browser)
    old_cookie = dict(browser.http.cookies)
    out = browser.post("/logg-ut", data={"csrf_token": csrf_token(page)})
    assert out.status_code == 303
    assert "max-age=0" in set_cookie_header(out).lower()
    assert browser.get(OVERVIEW).status_code == 401
    # The old cookie, replayed, is dead on the server too.
    with httpx.Client(base_url=browser.portal_url, cookies=old_cookie) as replay:
        assert replay.get(OVERVIEW).status_code == 401
        assert replay.get("/helsepersonell/pasient").status_code == 401


def test_a_citizen_session_cannot_open_health_personnel_pages(
    network: Network, browser: Browser
) -> None:
    assert browser.get("/innbygger/logg-inn").status_code == 200
    page = login_through_sts(
        browser.http, browser.portal_url, "innbygger", network.manifest["patients"]["adult"]
    )
    assert page.status_code == 200
    for path in ("/helsepersonell/arbeidssted", "/helsepersonell/pasient", OVERVIEW):
        assert browser.get(path).status_code == 401, path
    refused = browser.post(
        "/helsepersonell/pasient",
        data={
            "patient": network.manifest["patients"]["adult"],
            "csrf_token": csrf_token(page),
            **BASIS,
        },
    )
    assert refused.status_code == 401
