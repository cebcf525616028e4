"""The portal in front of the real network: log in, state a basis, see the national overview."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.network.conftest import Network
from tests.portals.pages import csrf_token, set_cookie_header

pytestmark = pytest.mark.slow

BASIS = {
    "healthcare_service": "01",
    "purpose_of_use": "TREAT",
    "purpose_of_use_details": "BEHANDLER",
    "access_basis": "SAMTYKKE",
}


@pytest.fixture
def browser(portal_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=portal_url, timeout=30) as client:
        yield client


def _login(browser: httpx.Client, staff: str = "doctor") -> httpx.Response:
    page = browser.get("/helsepersonell/logg-inn")
    assert page.status_code == 200
    return browser.post(
        "/helsepersonell/logg-inn", data={"staff": staff, "csrf_token": csrf_token(page)}
    )


def test_doctor_states_a_basis_and_sees_documents_from_several_regions(
    network: Network, browser: httpx.Client
) -> None:
    login = _login(browser)
    assert login.status_code == 303
    cookie = set_cookie_header(login).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # plain http on 127.0.0.1 in dev mode only
    form = browser.get("/helsepersonell/pasient")
    assert form.status_code == 200
    assert network.manifest["staff"]["doctor"]["organisation"] in form.text
    patient = network.manifest["patients"]["adult"]
    chosen = browser.post(
        "/helsepersonell/pasient",
        data={"patient": patient, "csrf_token": csrf_token(form), **BASIS},
    )
    assert chosen.status_code == 303, chosen.text
    page = browser.get(chosen.headers["location"])
    assert page.status_code == 200, page.text
    html = page.text
    # Documents from at least two regions, each region's answer stated plainly.
    rows = re.findall(r'<tr class="document">(.*?)</tr>', html, re.S)
    assert rows
    regions = {r["name"] for r in network.manifest["regions"]}
    seen = {name for name in regions for row in rows if f"<td>{name}</td>" in row}
    assert len(seen) >= 2, seen
    for name in regions:
        assert f"{name} svarte." in html
    # The cast's adult has blocked documents: shown as placeholders, with their count.
    blocked = re.findall(r'<tr class="blocked">', html)
    assert blocked
    assert f"{len(blocked)} dokument" in html and "sperret av pasienten" in html
    # The token never reaches the page.
    assert "DPoP" not in html and "eyJ" not in html


def test_bad_number_gives_the_form_back_with_a_message(browser: httpx.Client) -> None:
    _login(browser)
    form = browser.get("/helsepersonell/pasient")
    r = browser.post(
        "/helsepersonell/pasient",
        data={"patient": "12345678901", "csrf_token": csrf_token(form), **BASIS},
    )
    assert r.status_code == 400
    assert "Fødselsnummeret er ikke gyldig" in r.text


def test_post_without_csrf_token_is_refused(network: Network, browser: httpx.Client) -> None:
    _login(browser)
    r = browser.post(
        "/helsepersonell/pasient",
        data={"patient": network.manifest["patients"]["adult"], **BASIS},
    )
    assert r.status_code == 403
    assert "Traceback" not in r.text


def test_logout_ends_the_session(network: Network, browser: httpx.Client) -> None:
    _login(browser)
    form = browser.get("/helsepersonell/pasient")
    token = csrf_token(form)
    old_cookie = dict(browser.cookies)
    out = browser.post("/logg-ut", data={"csrf_token": token})
    assert out.status_code == 303
    assert "max-age=0" in set_cookie_header(out).lower()
    assert browser.get("/helsepersonell/pasient").status_code == 401
    # The old cookie, replayed, is dead on the server too.
    with httpx.Client(base_url=str(browser.base_url), cookies=old_cookie) as replay:
        assert replay.get("/helsepersonell/pasient").status_code == 401
