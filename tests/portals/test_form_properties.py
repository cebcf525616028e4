"""Property: no form or query string a browser can send makes the portal answer 5xx.

Hostile fields — random names and values, unicode and control characters, very long strings,
repeats, the fields of one form sent to another — are posted to every form of the health
personnel portal with a valid CSRF token (so the parsers behind the token check run), and random
filters are put in the overview's URL. Every answer is below 500, and a refused form changes
nothing: the session keeps its patient (issue 10, B: no wire shape reaches the logic unvalidated).

The portal runs over an ASGI transport with the STS and the hub as fakes (tests/portals/
test_app.py); the real network gets the same treatment from schemathesis
(tests/network/test_api_schemathesis.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onerecord.portals import PortalSettings, create_portal_app
from tests.portals.pages import csrf_token
from tests.portals.test_app import (
    HSO,
    HUB,
    PATIENT_NIN,
    PORTAL,
    SECRET,
    STAFF,
    STS,
    Fakes,
    _at_overview,
    _key_file,
)

FIELDS = (
    "csrf_token",
    "workplace",
    "patient",
    "healthcare_service",
    "purpose_of_use",
    "purpose_of_use_details",
    "access_basis",
    "reason",
    "fra",
    "til",
    "type",
    "side",
    "antall",
    "sorter",
    "region",
    "klasse",
    "retning",
    "gruppering",
    "oppdater",
    "x",
)

_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "0" * 11,
            "9" * 40,
            "1e309",
            "NaN",
            "-1",
            "²",
            "٣",
            "2024-13-40",
            "0001-01-01",
            "9999-12-31",
            "<script>",
            "%",
            "a" * 5000,
        ]
    ),
)
_forms = st.lists(st.tuples(st.sampled_from(FIELDS) | st.text(max_size=20), _text), max_size=12)


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as r:
        yield r


@pytest.fixture
def browser(tmp_path: Path, runner: asyncio.Runner) -> Iterator[httpx.AsyncClient]:
    """A doctor at the overview of PATIENT_NIN, in front of a portal with fake STS and hub."""
    settings = PortalSettings(
        public_url=PORTAL,
        sts_url=STS,
        hub_fhir=HUB,
        session_secret=SECRET,
        client_key_file=_key_file(tmp_path, "portal-test"),
        override_log_file=tmp_path / "portal" / "emergency-overrides.jsonl",
        staff=STAFF,
        regions=({"name": "Helse Sør-Øst", "home_community_id": HSO},),
    )
    app = create_portal_app(settings)
    app.state.portal.http = httpx.AsyncClient(transport=httpx.MockTransport(Fakes().handler))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    client = httpx.AsyncClient(transport=transport, base_url=PORTAL)
    page = runner.run(_at_overview(client))
    assert page.status_code == 200, page.text[:2000]
    try:
        yield client
    finally:
        runner.run(client.aclose())
        runner.run(app.state.portal.http.aclose())


PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None
)


@pytest.mark.parametrize("form", ["arbeidssted", "pasient", "nodtilgang"])
def test_hostile_form_fields_never_give_5xx_and_keep_the_patient(
    form: str, browser: httpx.AsyncClient, runner: asyncio.Runner
) -> None:
    token = csrf_token(runner.run(browser.get("/helsepersonell/pasient")))

    @PROPERTY
    @given(fields=_forms, with_token=st.booleans())
    def post(fields: list[tuple[str, str]], with_token: bool) -> None:
        data = [("csrf_token", token), *fields] if with_token else fields
        body = urlencode(data).encode()
        headers = {"content-type": "application/x-www-form-urlencoded"}
        answer = runner.run(browser.post(f"/helsepersonell/{form}", content=body, headers=headers))
        assert answer.status_code < 500, (form, data, answer.text[:500])

    post()
    if form != "pasient":  # a valid patient form may legitimately change the patient
        overview = runner.run(browser.get("/helsepersonell/oversikt"))
        assert overview.status_code == 200
        assert PATIENT_NIN[:6] in overview.text


def test_hostile_overview_filters_never_give_5xx(
    browser: httpx.AsyncClient, runner: asyncio.Runner
) -> None:
    @PROPERTY
    @given(params=_forms)
    def get(params: list[tuple[str, str]]) -> None:
        answer = runner.run(browser.get("/helsepersonell/oversikt", params=params))
        assert answer.status_code < 500, (params, answer.text[:500])

    get()


def test_hostile_document_page_views_never_give_5xx(
    browser: httpx.AsyncClient, runner: asyncio.Runner
) -> None:
    """The document page reads the overview's view from its query (its way back, defect 8)."""

    @PROPERTY
    @given(params=_forms)
    def get(params: list[tuple[str, str]]) -> None:
        answer = runner.run(browser.get("/helsepersonell/dokument/t1", params=params))
        assert answer.status_code < 500, (params, answer.text[:500])
        assert answer.status_code == 200

    get()
