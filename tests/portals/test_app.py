"""The portal app on its own: cookies, CSRF, login callback, escaping, language, error pages.

The app runs over an ASGI transport; the STS's token endpoint and the hub are fakes behind
httpx.MockTransport (the real network: test_portal_network.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from structlog.testing import capture_logs

from onerecord.portals import PortalSettings, create_portal_app
from onerecord.portals.i18n import LANGUAGE_COOKIE
from onerecord.portals.oauth import TokenSet
from onerecord.portals.sessions import COOKIE_NAME, sign_session_id
from onerecord.synth.numbers import synthetic_fnr
from onerecord.trust.access_token import PID_CLAIM
from onerecord.trust.errors import DevelopmentKeyRefused
from onerecord.trust.keys import SigningKey
from tests.portals.pages import csrf_token, set_cookie_header

pytestmark = pytest.mark.anyio

PORTAL = "https://portal.example"
STS = "https://sts.example"
HUB = "https://hub.example/fhir"
SECRET = "a-production-secret-of-some-length"
DOCTOR_NIN = synthetic_fnr(random.Random(1), date(1975, 1, 18)).value
PATIENT_NIN = synthetic_fnr(random.Random(2), date(1980, 8, 15)).value
OTHER_PATIENT_NIN = synthetic_fnr(random.Random(3), date(1991, 2, 3)).value
HSO = "urn:oid:2.16.578.1.12.4.5.100.1"
STAFF = {
    "doctor": {
        "nin": DOCTOR_NIN,
        "name": "Kari <b>Lege</b>",
        "category": "LE",
        "hpr": "1234567",
        "legal_entity": "974000016",
        "point_of_care": "974000024",
        "organisation": "Test<i>sykehuset</i> HF",
        "department": "111",
        "departments": [
            {"resh": "111", "name": "Medisinsk klinikk"},
            {"resh": "222", "name": "Akuttmottaket"},
        ],
    }
}
BASIS = {
    "healthcare_service": "01",
    "purpose_of_use": "TREAT",
    "purpose_of_use_details": "BEHANDLER",
    "access_basis": "SAMTYKKE",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _key_file(folder: Path, kid: str) -> Path:
    path = folder / f"{kid}.jwk.json"
    path.write_text(json.dumps(SigningKey.generate(kid=kid).private_jwk()))
    return path


def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'ES256', 'typ': 'at+jwt'})}.{part(claims)}.c2lnbmF0dXJl"


@dataclass
class Fakes:
    """The STS's token endpoint and the hub, as the portal's HTTP client sees them."""

    subject: str = DOCTOR_NIN
    name: str = "Kari <b>Lege</b>"
    token_forms: list[dict[str, str]] = field(default_factory=list)
    hub_requests: list[httpx.Request] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == f"{STS}/token":
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            self.token_forms.append(form)
            claims = {PID_CLAIM: self.subject, "name": self.name}
            token = _jwt(claims | {"jti": f"j{len(self.issued)}"})
            self.issued.append(token)
            body = {"access_token": token, "expires_in": 300, "refresh_token": "r"}
            return httpx.Response(200, json=body)
        if str(request.url).startswith(f"{HUB}/DocumentReference"):
            self.hub_requests.append(request)
            return httpx.Response(200, json=_bundle())
        return httpx.Response(404)


def _bundle() -> dict[str, Any]:
    def doc(title: str, token: str, *, blocked: bool = False) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "DocumentReference",
            "date": "2024-03-05T10:00:00+01:00",
            "extension": [
                {
                    "url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-HomeCommunityId",
                    "valueIdentifier": {"value": HSO},
                }
            ],
            "content": [
                {
                    "attachment": {
                        "title": title,
                        "contentType": "application/pdf",
                        "url": f"{HUB}/Binary/{token}",
                    }
                }
            ],
        }
        if blocked:
            resource["securityLabel"] = [{"coding": [{"code": "NORS"}]}]
            del resource["content"][0]["attachment"]["url"]
        else:
            resource["masterIdentifier"] = {"value": f"urn:oid:1.2.{token}"}
        return resource

    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 2,
        "entry": [
            {"resource": doc("<script>alert(1)</script>", "t1")},
            {"resource": doc("Sperret", "t2", blocked=True)},
        ],
    }


@dataclass
class App:
    app: FastAPI
    client: httpx.AsyncClient
    fakes: Fakes
    override_log: Path


@contextlib.asynccontextmanager
async def running_portal(tmp_path: Path, fakes: Fakes, **settings: Any) -> AsyncIterator[App]:
    """The portal over ASGI with its outgoing calls answered by `fakes` (extra `settings`)."""
    portal_settings = PortalSettings(
        public_url=PORTAL,
        sts_url=STS,
        hub_fhir=HUB,
        session_secret=SECRET,
        client_key_file=_key_file(tmp_path, "portal-test"),
        override_log_file=tmp_path / "portal" / "emergency-overrides.jsonl",
        staff=STAFF,
        regions=({"name": "Helse Sør-Øst", "home_community_id": HSO},),
        **settings,
    )
    app = create_portal_app(portal_settings)
    # No lifespan over an ASGI transport: give the portal its outgoing client here.
    app.state.portal.http = httpx.AsyncClient(transport=httpx.MockTransport(fakes.handler))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=PORTAL) as client:
        yield App(app, client, fakes, portal_settings.override_log_file)
    await app.state.portal.http.aclose()


@pytest.fixture
async def portal(tmp_path: Path) -> AsyncIterator[App]:
    async with running_portal(tmp_path, Fakes()) as app:
        yield app


def _browser(portal: App, cookies: dict[str, str] | None = None) -> httpx.AsyncClient:
    """Another browser in front of the same portal."""
    transport = httpx.ASGITransport(app=portal.app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=PORTAL, cookies=cookies)


@pytest.fixture
def client(portal: App) -> httpx.AsyncClient:
    return portal.client


async def _to_sts(client: httpx.AsyncClient) -> dict[str, str]:
    """Send the login form; return the /authorize query the browser is sent to."""
    page = await client.get("/helsepersonell/logg-inn")
    sent = await client.post("/helsepersonell/logg-inn", data={"csrf_token": csrf_token(page)})
    assert sent.status_code == 303, sent.text
    parts = urlsplit(sent.headers["location"])
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{STS}/authorize"
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


async def _log_in(client: httpx.AsyncClient) -> httpx.Response:
    """Do the whole login as if the STS had sent the browser back; return the workplace page."""
    query = await _to_sts(client)
    back = await client.get(
        "/helsepersonell/innlogget", params={"code": "the-code", "state": query["state"]}
    )
    assert back.status_code == 303, back.text
    assert back.headers["location"] == "/helsepersonell/arbeidssted"
    return await client.get("/helsepersonell/arbeidssted")


async def _at_overview(client: httpx.AsyncClient) -> httpx.Response:
    workplace = await _log_in(client)
    chosen = await client.post(
        "/helsepersonell/arbeidssted",
        data={"csrf_token": csrf_token(workplace), "workplace": "974000024:111"},
    )
    assert chosen.status_code == 303 and chosen.headers["location"] == "/helsepersonell/pasient"
    form = await client.get("/helsepersonell/pasient")
    sent = await client.post(
        "/helsepersonell/pasient",
        data={"csrf_token": csrf_token(form), "patient": PATIENT_NIN, **BASIS},
    )
    assert sent.status_code == 303, sent.text
    return await client.get("/helsepersonell/oversikt")


def test_development_client_key_refused_outside_dev_mode(tmp_path: Path) -> None:
    settings = PortalSettings(
        session_secret=SECRET,
        client_key_file=_key_file(tmp_path, "dev-client"),
        override_log_file=tmp_path / "o.jsonl",
    )
    with pytest.raises(DevelopmentKeyRefused):
        create_portal_app(settings)


async def test_session_cookie_is_secure_httponly_lax(client: httpx.AsyncClient) -> None:
    page = await client.get("/helsepersonell/logg-inn")
    assert page.status_code == 200
    cookie = set_cookie_header(page).lower()
    for flag in ("secure", "httponly", "samesite=lax", "path=/"):
        assert flag in cookie, cookie
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"


async def test_login_goes_to_the_sts_and_the_callback_rotates_the_session(
    portal: App,
) -> None:
    client = portal.client
    page = await client.get("/helsepersonell/logg-inn")
    before = client.cookies[COOKIE_NAME]
    query = await _to_sts(client)
    assert query["client_id"] == "onerecord-portal"
    assert query["redirect_uri"] == f"{PORTAL}/helsepersonell/innlogget"
    assert query["code_challenge_method"] == "S256"
    back = await client.get(
        "/helsepersonell/innlogget", params={"code": "the-code", "state": query["state"]}
    )
    assert back.status_code == 303
    after = set_cookie_header(back)
    assert before not in after  # a new session id at login: no session fixation
    (form,) = portal.fakes.token_forms
    assert form["grant_type"] == "authorization_code" and form["code"] == "the-code"
    # The session's old id and CSRF token are dead.
    with_old = await client.post(
        "/helsepersonell/arbeidssted",
        data={"csrf_token": csrf_token(page), "workplace": "974000024:111"},
    )
    assert with_old.status_code == 403
    async with _browser(portal, cookies={COOKIE_NAME: before}) as replay:
        assert (await replay.get("/helsepersonell/arbeidssted")).status_code == 401


async def test_callback_with_a_wrong_state_or_an_error_does_not_log_in(portal: App) -> None:
    client = portal.client
    query = await _to_sts(client)
    with capture_logs() as logs:
        forged = await client.get(
            "/helsepersonell/innlogget",
            params={"code": "c", "state": query["state"] + "x"},
            headers={"x-correlation-id": "cid-login-1"},
        )
    assert forged.status_code == 400
    # One event says why, for whoever reads the log; the page does not.
    (event,) = [e for e in logs if e["event"] == "portal.refused"]
    assert event["kind"] == "LoginFailed" and event["status"] == 400
    assert event["reason"] == "state differs from the pending login's"
    assert event["correlation_id"] == "cid-login-1"
    assert "state differs" not in forged.text
    assert "Innloggingen ble ikke fullført" in forged.text and "Traceback" not in forged.text
    refused = await client.get(
        "/helsepersonell/innlogget", params={"error": "access_denied", "state": query["state"]}
    )
    assert refused.status_code == 400
    assert portal.fakes.token_forms == []
    assert (await client.get("/helsepersonell/arbeidssted")).status_code == 401
    # Without any session the callback is refused the same way.
    async with _browser(portal) as stranger:
        cold = await stranger.get("/helsepersonell/innlogget", params={"code": "c", "state": "s"})
        assert cold.status_code == 400


async def test_names_are_escaped(client: httpx.AsyncClient) -> None:
    page = await _log_in(client)
    assert page.status_code == 200
    assert "Kari &lt;b&gt;Lege&lt;/b&gt;" in page.text
    assert "Test&lt;i&gt;sykehuset&lt;/i&gt; HF, Medisinsk klinikk" in page.text
    assert "<b>Lege</b>" not in page.text and "<i>sykehuset</i>" not in page.text


async def test_document_titles_from_the_hub_are_escaped(portal: App) -> None:
    page = await _at_overview(portal.client)
    assert page.status_code == 200, page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert" not in page.text
    assert page.text.count('<tr class="blocked"') == 1
    # The hub was asked with the stated basis; the token never reaches the page.
    (request,) = portal.fakes.hub_requests
    assert request.headers["nhn-access-basis"] == "SAMTYKKE"
    for token in portal.fakes.issued:
        assert token not in page.text
    assert "eyJ" not in page.text


# The emergency override's tests: tests/portals/test_emergency_override.py (issue 11, #7).


async def test_another_patient_chosen_while_the_overview_loads_is_not_mixed_in(
    portal: App,
) -> None:
    client = portal.client
    await _at_overview(client)
    asked, release = asyncio.Event(), asyncio.Event()

    async def slow_hub(request: httpx.Request) -> httpx.Response:
        if "/DocumentReference" in str(request.url):
            asked.set()
            await release.wait()
        return portal.fakes.handler(request)

    await portal.app.state.portal.http.aclose()
    portal.app.state.portal.http = httpx.AsyncClient(transport=httpx.MockTransport(slow_hub))
    form = await client.get("/helsepersonell/pasient")
    # «Oppdater»: the list is fetched afresh (else the rows of the first overview would serve).
    loading = asyncio.create_task(client.get("/helsepersonell/oversikt?oppdater=1"))
    await asyncio.wait_for(asked.wait(), 5)
    # Meanwhile, in another tab: patient B.
    switched = await client.post(
        "/helsepersonell/pasient",
        data={"csrf_token": csrf_token(form), "patient": OTHER_PATIENT_NIN, **BASIS},
    )
    assert switched.status_code == 303
    release.set()
    page = await asyncio.wait_for(loading, 5)
    # The page asked about A shows A's number above A's documents, never B's.
    assert page.status_code == 200
    assert PATIENT_NIN in page.text and OTHER_PATIENT_NIN not in page.text
    asked_for = portal.fakes.hub_requests[-1].url.params["patient.identifier"]
    assert asked_for.endswith(PATIENT_NIN)
    # A's rows were not kept under B's basis: A's document does not open with B's token.
    assert (await client.get("/helsepersonell/dokument/t1")).status_code == 404
    again = await client.get("/helsepersonell/oversikt")
    assert OTHER_PATIENT_NIN in again.text and PATIENT_NIN not in again.text
    asked_for = portal.fakes.hub_requests[-1].url.params["patient.identifier"]
    assert asked_for.endswith(OTHER_PATIENT_NIN)
    assert (await client.get("/helsepersonell/dokument/t1")).status_code == 200


async def test_post_without_or_with_wrong_csrf_token_is_403(client: httpx.AsyncClient) -> None:
    page = await client.get("/helsepersonell/logg-inn")
    token = csrf_token(page)
    missing = await client.post("/helsepersonell/logg-inn", data={})
    assert missing.status_code == 403
    assert "Skjemaet er for gammelt" in missing.text  # said in words (issue 11, defect 8)
    wrong = await client.post("/helsepersonell/logg-inn", data={"csrf_token": token + "x"})
    assert wrong.status_code == 403
    odd = await client.post("/helsepersonell/logg-inn", data={"csrf_token": "søt-nøkkel"})
    assert odd.status_code == 403
    ok = await client.post("/helsepersonell/logg-inn", data={"csrf_token": token})
    assert ok.status_code == 303 and ok.headers["location"].startswith(f"{STS}/authorize?")


async def test_an_oversized_form_is_refused_before_it_is_read_in_full(portal: App) -> None:
    client = portal.client
    page = await client.get("/helsepersonell/logg-inn")
    token = csrf_token(page)
    seen: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        yield f"csrf_token={token}&padding=".encode()
        for _ in range(64):  # 4 MiB in all, unless the portal stops reading
            seen.append(1)
            yield b"x" * 65536

    big = await client.post(
        "/helsepersonell/logg-inn",
        content=body(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert big.status_code == 413 and "Traceback" not in big.text
    assert len(seen) < 64
    # Without a session nothing is read at all.
    async with _browser(portal) as stranger:
        anonymous = await stranger.post("/helsepersonell/logg-inn", data={"csrf_token": token})
    assert anonymous.status_code == 403


async def test_forged_cookie_is_not_a_session(portal: App) -> None:
    forged = (b"made-up.0000", b"no-dot", b"made-up.\xe9\xe9", b"." + b"0" * 64)
    async with _browser(portal) as browser:
        for value in forged:
            cookie = b"onerecord_portal=" + value
            page = await browser.get("/helsepersonell/pasient", headers={b"cookie": cookie})
            assert page.status_code == 401, value
            assert "Logg inn på nytt" in page.text


async def test_unknown_workplace_is_refused_with_a_message(client: httpx.AsyncClient) -> None:
    page = await _log_in(client)
    r = await client.post(
        "/helsepersonell/arbeidssted", data={"workplace": "nowhere", "csrf_token": csrf_token(page)}
    )
    assert r.status_code == 400
    assert "Velg et arbeidssted fra listen." in r.text
    # Without a workplace there is no patient page yet.
    assert (await client.get("/helsepersonell/pasient")).status_code == 401


async def test_a_new_workplace_asks_for_the_basis_again(portal: App) -> None:
    client = portal.client
    assert (await _at_overview(client)).status_code == 200
    workplace = await client.get("/helsepersonell/arbeidssted")
    changed = await client.post(
        "/helsepersonell/arbeidssted",
        data={"csrf_token": csrf_token(workplace), "workplace": "974000024:222"},
    )
    assert changed.status_code == 303
    # The old patient token names the old workplace; it is not used any more.
    again = await client.get("/helsepersonell/oversikt")
    assert again.status_code == 303 and again.headers["location"] == "/helsepersonell/pasient"
    assert (await client.get("/helsepersonell/nodtilgang")).status_code == 303
    assert len(portal.fakes.hub_requests) == 1


async def test_a_second_login_in_the_same_browser_starts_clean(portal: App) -> None:
    client = portal.client
    assert (await _at_overview(client)).status_code == 200
    portal.fakes.subject, portal.fakes.name = PATIENT_NIN, "Per Annen"
    page = await _log_in(client)
    assert "<strong>Per Annen</strong>" in page.text
    assert "Kari" not in page.text and "Medisinsk klinikk" not in page.text
    assert (await client.get("/helsepersonell/oversikt")).status_code == 401


async def test_user_outside_the_staff_directory_gets_no_workplace(portal: App) -> None:
    portal.fakes.subject = PATIENT_NIN
    page = await _log_in(portal.client)
    assert page.status_code == 200
    assert "Vi fant ingen arbeidssted for deg" in page.text
    assert 'name="workplace"' not in page.text


async def test_a_citizen_session_cannot_open_health_personnel_pages(portal: App) -> None:
    store = portal.app.state.portal.sessions
    citizen = store.create(now=time.time())
    citizen.role = "citizen"
    citizen.citizen_nin = PATIENT_NIN
    citizen.tokens = TokenSet(_jwt({PID_CLAIM: PATIENT_NIN}), "r", SigningKey.generate(), 1e12)
    client = portal.client
    client.cookies.set(COOKIE_NAME, sign_session_id(citizen.id, SECRET), domain="portal.example")
    for path in (
        "/helsepersonell/arbeidssted",
        "/helsepersonell/pasient",
        "/helsepersonell/oversikt",
        "/helsepersonell/nodtilgang",
        "/helsepersonell/dokument/t1",
    ):
        assert (await client.get(path)).status_code == 401, path
    for path, data in (
        ("/helsepersonell/arbeidssted", {"workplace": "974000024:111"}),
        ("/helsepersonell/pasient", {"patient": PATIENT_NIN, **BASIS}),
        ("/helsepersonell/nodtilgang", {"reason": "a long enough reason"}),
    ):
        answer = await client.post(path, data={"csrf_token": citizen.csrf_token, **data})
        assert answer.status_code == 401, path
    assert portal.fakes.token_forms == [] and portal.fakes.hub_requests == []


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    page = await _log_in(client)
    cookie = client.cookies[COOKIE_NAME]
    out = await client.post("/logg-ut", data={"csrf_token": csrf_token(page)})
    assert out.status_code == 303 and out.headers["location"] == "/helsepersonell/logg-inn"
    assert "max-age=0" in set_cookie_header(out).lower()
    client.cookies.set(COOKIE_NAME, cookie, domain="portal.example")
    assert (await client.get("/helsepersonell/arbeidssted")).status_code == 401


async def test_error_pages_say_what_to_do_without_a_trace(portal: App) -> None:
    client = portal.client
    missing = await client.get("/finnes-ikke")
    assert missing.status_code == 404
    assert "Siden finnes ikke" in missing.text and "Traceback" not in missing.text
    assert missing.headers["content-type"].startswith("text/html")
    wrong_method = await client.delete("/helsepersonell/logg-inn")
    assert wrong_method.status_code == 405
    assert "Hva du kan gjøre" in wrong_method.text

    @portal.app.get("/test-only/boom")
    async def boom() -> None:
        raise RuntimeError("internal detail at /srv/secret.py line 42")

    crash = await client.get("/test-only/boom")
    assert crash.status_code == 500
    assert "Noe gikk galt i portalen" in crash.text
    assert "internal detail" not in crash.text and "Traceback" not in crash.text
    # Even an unexpected error's page carries the security headers.
    assert "frame-ancestors 'none'" in crash.headers["content-security-policy"]
    assert crash.headers["cache-control"] == "no-store"


async def test_unexpected_portal_error_is_logged_once_by_type_without_its_message(
    portal: App,
) -> None:
    @portal.app.get("/test-only/boom-logged")
    async def boom() -> None:
        raise RuntimeError("patient 01010112345 internal detail")

    with capture_logs() as logs:
        crash = await portal.client.get(
            "/test-only/boom-logged", headers={"x-correlation-id": "cid-portal-1"}
        )
    assert crash.status_code == 500
    (event,) = logs
    assert event["event"] == "portal.unexpected_error"
    assert event["correlation_id"] == "cid-portal-1"
    assert isinstance(event["exc_info"], RuntimeError)  # summarised by onerecord.logs
    assert "01010112345" not in str({k: v for k, v in event.items() if k != "exc_info"})


async def test_error_page_in_english_when_the_language_cookie_says_so(
    client: httpx.AsyncClient,
) -> None:
    client.cookies.set(LANGUAGE_COOKIE, "en", domain="portal.example")
    missing = await client.get("/finnes-ikke")
    assert missing.status_code == 404
    assert '<html lang="en">' in missing.text
    assert "The page does not exist." in missing.text and "What you can do:" in missing.text
    assert "Siden finnes ikke" not in missing.text
    refused = await client.get("/helsepersonell/pasient")
    assert refused.status_code == 401 and "You must log in to see this page." in refused.text
    client.cookies.set(LANGUAGE_COOKIE, "klingon", domain="portal.example")
    fallback = await client.get("/finnes-ikke")
    assert '<html lang="nb">' in fallback.text and "Siden finnes ikke" in fallback.text


async def test_language_switch_sets_the_cookie_and_goes_back(client: httpx.AsyncClient) -> None:
    switched = await client.get("/sprak/nn", params={"neste": "/helsepersonell/logg-inn?x=1"})
    assert switched.status_code == 303
    assert switched.headers["location"] == "/helsepersonell/logg-inn?x=1"
    cookie = set_cookie_header(switched).lower()
    assert cookie.startswith(f"{LANGUAGE_COOKIE}=nn;")
    for flag in ("secure", "httponly", "samesite=lax", "path=/"):
        assert flag in cookie, cookie
    page = await client.get("/helsepersonell/logg-inn")
    assert '<html lang="nn">' in page.text and "Logg inn som helsepersonell" in page.text
    assert "Du blir send til tilgangstenesta" in page.text
    unknown = await client.get("/sprak/xx", params={"neste": "/"})
    assert unknown.status_code == 303 and "set-cookie" not in unknown.headers


@pytest.mark.parametrize(
    "target",
    ["//evil.example", "https://evil.example", "/\\evil.example", "\\\\evil", "evil", ""],
)
async def test_language_switch_refuses_an_open_redirect(
    client: httpx.AsyncClient, target: str
) -> None:
    switched = await client.get("/sprak/en", params={"neste": target})
    assert switched.status_code == 303
    assert switched.headers["location"] == "/"


def test_portal_serve_refuses_the_dev_secret_without_dev(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from onerecord.cli import app

    manifest = {
        "hub": {"fhir_base": "http://127.0.0.1:1/fhir"},
        "sts": {"issuer": "http://127.0.0.1:2"},
        "client": {"client_id": "c", "key_file": str(_key_file(tmp_path, "dev-client"))},
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    result = CliRunner().invoke(app, ["portal", "serve", "--manifest", str(path)])
    assert result.exit_code == 2
    assert "session secret" in result.output


def _attestation_sent(form: dict[str, str]) -> dict[str, Any]:
    """The attestation in a token request's client assertion (read, not verified: the fake STS
    stands in for the real one, whose checks the STS tests cover)."""
    payload = form["client_assertion"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    (details,) = claims["authorization_details"]
    attestation: dict[str, Any] = details["attest"] if "attest" in details else details
    return attestation


async def test_the_basis_form_preselects_nothing_and_the_token_states_what_was_chosen(
    portal: App,
) -> None:
    """Nothing is stated for the worker: each choice is theirs, and the attestation says it."""
    client = portal.client
    workplace = await _log_in(client)
    await client.post(
        "/helsepersonell/arbeidssted",
        data={"csrf_token": csrf_token(workplace), "workplace": "974000024:111"},
    )
    form = await client.get("/helsepersonell/pasient")
    assert "checked" not in form.text and "selected" not in form.text
    for name in ("healthcare_service", "purpose_of_use", "purpose_of_use_details"):
        assert f'name="{name}" required' in form.text
    radios = re.findall(r'<input type="radio"[^>]*name="access_basis"[^>]*>', form.text)
    assert len(radios) == 3 and all("required" in r for r in radios), radios
    assert "Formålsdetaljer: relasjon til pasienten" in form.text
    chosen = {
        "healthcare_service": "03",
        "purpose_of_use": "COC",
        "purpose_of_use_details": "POLBESOK",
        "access_basis": "UNNTAK",
    }
    sent = await client.post(
        "/helsepersonell/pasient",
        data={"csrf_token": csrf_token(form), "patient": PATIENT_NIN, **chosen},
    )
    assert sent.status_code == 303, sent.text
    care = json.dumps(_attestation_sent(portal.fakes.token_forms[-1]))
    for code in ("03", "COC", "POLBESOK"):
        assert f'"code": "{code}"' in care, care
    page = await client.get("/helsepersonell/oversikt")
    assert "Psykisk helsevern" in page.text
    assert portal.fakes.hub_requests[-1].headers["nhn-access-basis"] == "UNNTAK"
    # Under UNNTAK there is no emergency override (issue 11, defect 7): no BTG token.
    grants = len(portal.fakes.token_forms)
    override = await client.get("/helsepersonell/nodtilgang")
    refused = await client.post(
        "/helsepersonell/nodtilgang",
        data={"csrf_token": csrf_token(override), "reason": "Bevisstløs pasient i akuttmottaket"},
    )
    assert refused.status_code == 403 and len(portal.fakes.token_forms) == grants


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/helsepersonell/arbeidssted", {"workplace": "974000024:111"}),
        ("/helsepersonell/pasient", {"patient": OTHER_PATIENT_NIN, **BASIS}),
        ("/helsepersonell/nodtilgang", {"reason": "Bevisstløs pasient i akuttmottaket"}),
        ("/logg-ut", {}),
    ],
)
async def test_every_health_personnel_form_needs_the_sessions_csrf_token(
    portal: App, path: str, fields: dict[str, str]
) -> None:
    """A complete form without the token, or with another, changes nothing (403)."""
    client = portal.client
    await _at_overview(client)
    grants, searches = len(portal.fakes.token_forms), len(portal.fakes.hub_requests)
    for token in (None, "x" * 43):
        form = fields if token is None else {**fields, "csrf_token": token}
        refused = await client.post(path, data=form)
        assert refused.status_code == 403, (path, refused.text[-500:])
    assert len(portal.fakes.token_forms) == grants
    page = await client.get("/helsepersonell/oversikt")
    assert page.status_code == 200 and PATIENT_NIN in page.text
    assert "Nødtilgang er i bruk" not in page.text
    # The rows already fetched serve the page: nothing changed, so the hub is not asked again.
    assert len(portal.fakes.hub_requests) == searches
