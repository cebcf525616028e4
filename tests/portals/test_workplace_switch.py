"""Changing workplace or department from any health-personnel page (issue 11, defect 8).

The portal over ASGI with the STS and the hub faked (`test_app.running_portal`): the header's
«Bytt arbeidssted» on every page after the workplace is chosen, the workplace page with the
current one chosen and the way back, a change that asks for the basis again with the number
kept and then returns to the overview the worker came from (its filters kept), the same
workplace again changing nothing, and `neste` taken only as a path of the health-personnel
pages.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onerecord.portals.return_to import (
    CITIZEN_AREA,
    HCP_AREA,
    MAX_RETURN_PATH,
    after_basis,
    after_login,
    local_page,
)
from tests.portals.pages import csrf_token
from tests.portals.test_app import BASIS, PATIENT_NIN, App, Fakes, _at_overview, running_portal

pytestmark = pytest.mark.anyio

OVERVIEW = "/helsepersonell/oversikt?sorter=dato&retning=stigende&antall=25"


@pytest.fixture
async def portal(tmp_path: Path) -> AsyncIterator[App]:
    async with running_portal(tmp_path, Fakes()) as app:
        yield app


def switch_link(html: str) -> str:
    match = re.search(r'<p class="workplace-switch"><a href="([^"]+)">([^<]+)</a>', html)
    assert match, html[:3000]
    return unescape(match.group(1))


def hidden(html: str, name: str) -> str | None:
    match = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)">', html)
    return unescape(match.group(1)) if match else None


async def test_every_page_after_the_workplace_has_the_switch_coming_back_to_it(
    portal: App,
) -> None:
    client = portal.client
    await _at_overview(client)
    for path in (OVERVIEW, "/helsepersonell/pasient", "/helsepersonell/nodtilgang"):
        page = await client.get(path)
        assert page.status_code == 200, path
        who = re.search(r'<p class="who">(.*?)</p>', page.text)
        assert who and unescape(who.group(1)).endswith("sykehuset</i> HF, Medisinsk klinikk")
        link = switch_link(page.text)
        assert link == f"/helsepersonell/arbeidssted?neste={quote(path, safe='')}"
    workplace = await client.get("/helsepersonell/arbeidssted")
    assert 'class="workplace-switch"' not in workplace.text  # not on the page it leads to


async def test_a_department_switch_asks_for_the_basis_again_and_returns_to_the_overview(
    portal: App,
) -> None:
    client = portal.client
    await _at_overview(client)
    overview = await client.get(OVERVIEW)
    page = await client.get(switch_link(overview.text))
    assert page.status_code == 200
    # The current workplace is the one chosen, marked; the change is said to need the basis.
    assert re.search(r'value="974000024:111" checked>\s*<label[^>]*>[^<]*\(nåværende\)', page.text)
    assert "må du oppgi grunnlaget for tilgang på nytt" in page.text
    assert hidden(page.text, "neste") == OVERVIEW
    assert f'<a href="{OVERVIEW.replace("&", "&amp;")}">Avbryt og behold' in page.text

    tokens_before = len(portal.fakes.token_forms)
    changed = await client.post(
        "/helsepersonell/arbeidssted",
        data={"csrf_token": csrf_token(page), "workplace": "974000024:222", "neste": OVERVIEW},
    )
    assert changed.status_code == 303
    target = urlsplit(changed.headers["location"])
    assert target.path == "/helsepersonell/pasient"
    assert parse_qs(target.query) == {"neste": [OVERVIEW]}
    # Nothing is asked of the STS or the hub until the basis is stated again.
    assert len(portal.fakes.token_forms) == tokens_before
    assert (await client.get("/helsepersonell/oversikt")).status_code == 303

    form = await client.get(changed.headers["location"])
    assert f'value="{PATIENT_NIN}"' in form.text  # the number kept
    assert "Du arbeider nå ved Test" in unescape(form.text)
    assert "Akuttmottaket" in form.text
    assert hidden(form.text, "neste") == OVERVIEW
    sent = await client.post(
        "/helsepersonell/pasient",
        data={
            "csrf_token": csrf_token(form),
            "patient": PATIENT_NIN,
            "neste": OVERVIEW,
            **BASIS,
        },
    )
    assert sent.status_code == 303 and sent.headers["location"] == OVERVIEW
    back = await client.get(OVERVIEW)
    assert back.status_code == 200
    assert "Akuttmottaket" in back.text and "Medisinsk klinikk" not in back.text
    # The number is not kept any longer than needed.
    again = await client.get("/helsepersonell/pasient")
    assert f'value="{PATIENT_NIN}"' not in again.text


async def test_the_same_workplace_again_changes_nothing(portal: App) -> None:
    client = portal.client
    await _at_overview(client)
    page = await client.get(f"/helsepersonell/arbeidssted?neste={quote(OVERVIEW, safe='')}")
    tokens_before = len(portal.fakes.token_forms)
    same = await client.post(
        "/helsepersonell/arbeidssted",
        data={"csrf_token": csrf_token(page), "workplace": "974000024:111", "neste": OVERVIEW},
    )
    assert same.status_code == 303 and same.headers["location"] == OVERVIEW
    assert (await client.get(OVERVIEW)).status_code == 200  # the basis stands
    assert len(portal.fakes.token_forms) == tokens_before


@pytest.mark.parametrize(
    "neste",
    [
        "//evil.example/helsepersonell/oversikt",
        "https://evil.example/",
        "/innbygger/dokumenter",
        "/helsepersonell/../innbygger/dokumenter",
        "/helsepersonell/%2E%2E/innbygger",
        "/helsepersonell/logg-inn",
        "/helsepersonell\\oversikt",
    ],
)
async def test_a_foreign_or_odd_neste_is_ignored(portal: App, neste: str) -> None:
    client = portal.client
    await _at_overview(client)
    page = await client.get("/helsepersonell/arbeidssted", params={"neste": neste})
    assert hidden(page.text, "neste") is None
    sent = await client.post(
        "/helsepersonell/arbeidssted",
        data={"csrf_token": csrf_token(page), "workplace": "974000024:222", "neste": neste},
    )
    assert sent.headers["location"] == "/helsepersonell/pasient"
    form = await client.get("/helsepersonell/pasient", params={"neste": neste})
    assert hidden(form.text, "neste") is None
    done = await client.post(
        "/helsepersonell/pasient",
        data={"csrf_token": csrf_token(form), "patient": PATIENT_NIN, "neste": neste, **BASIS},
    )
    assert done.headers["location"] == "/helsepersonell/oversikt"


def test_where_each_page_leads_back_to() -> None:
    assert after_basis("/helsepersonell/oversikt?klasse=x&side=2") == (
        "/helsepersonell/oversikt?klasse=x&side=2"
    )
    assert after_basis("/helsepersonell/dokument/abc") == "/helsepersonell/oversikt"
    assert after_basis(None) == "/helsepersonell/oversikt"
    assert after_login(CITIZEN_AREA, "/innbygger/dokument/abc") == "/innbygger/dokumenter"
    assert after_login(CITIZEN_AREA, "/innbygger/tilgangslogg?side=2") == (
        "/innbygger/tilgangslogg?side=2"
    )
    assert after_login(CITIZEN_AREA, "/helsepersonell/oversikt") is None
    assert after_login(HCP_AREA, "/helsepersonell/dokument/abc") == "/helsepersonell/dokument/abc"
    assert local_page("/helsepersonell/" + "x" * MAX_RETURN_PATH, HCP_AREA) is None
    assert local_page("/helsepersonell/oversikt\n", HCP_AREA) is None


@given(st.text(max_size=200))
def test_a_return_page_is_always_a_path_of_its_area(value: str) -> None:
    for area in (HCP_AREA, CITIZEN_AREA):
        page = local_page(value, area)
        if page is None:
            continue
        assert page == value and page.startswith(f"{area}/")
        assert not page.startswith("//") and "\\" not in page and ".." not in page
        assert all(ord(c) >= 0x20 and ord(c) != 0x7F for c in page)
        assert after_basis(value).startswith("/helsepersonell/oversikt")
