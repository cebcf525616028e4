"""Error pages of their own (issue 11, defect 8), over ASGI with the STS and the hub faked.

- An ended login — the hub's 401, the STS refusing the refresh token, a portal session that
  expired or was logged out elsewhere — is «Økten din er avsluttet» with a button that starts
  that portal's login at once and comes back to the page (health personnel through the
  workplace and the basis, to the overview with its filters; citizens straight back).
- A patient's block of the health worker is said on the document page as on the overview.
- A form too old is said in words, with the way back to its page.
- A citizen is told why the hub refused, naming the person acted for (defect 3).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from onerecord.domain import DocumentUniqueId, HomeCommunityId, RepositoryUniqueId
from onerecord.mhd import Issue, RetrieveKey
from onerecord.portals import PortalSettings, create_portal_app
from onerecord.portals.errors import SessionEnded, TokenRefused
from onerecord.portals.i18n import LANGUAGES, Translator, catalog
from onerecord.portals.oauth import TokenSet, refresh
from onerecord.portals.sessions import COOKIE_NAME, sign_session_id
from onerecord.trust.keys import SigningKey
from tests.portals import test_citizen_app as citizen
from tests.portals.pages import csrf_token
from tests.portals.test_app import (
    BASIS,
    HSO,
    HUB,
    PATIENT_NIN,
    SECRET,
    STS,
    App,
    Fakes,
    _log_in,
    _to_sts,
    running_portal,
)

pytestmark = pytest.mark.anyio

OVERVIEW = "/helsepersonell/oversikt?sorter=tittel&retning=synkende"
DENIAL = "https://onerecord.no/fhir/CodeSystem/denial-reason"
T = {code: Translator(code) for code in LANGUAGES}


def _token(unique_id: str) -> str:
    return RetrieveKey(
        HomeCommunityId.parse(HSO),
        RepositoryUniqueId.parse("2.16.578.1.12.4.5.100.1.2"),
        DocumentUniqueId(unique_id),
    ).token()


LAB = _token("2.16.578.1.99.7")


def _lab_report() -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "date": "2024-03-05T10:00:00+01:00",
        "masterIdentifier": {"value": "urn:oid:2.16.578.1.99.7"},
        "extension": [
            {
                "url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-HomeCommunityId",
                "valueIdentifier": {"value": HSO},
            }
        ],
        "content": [
            {
                "attachment": {
                    "title": "Svarrapport",
                    "contentType": "text/xml",
                    "url": f"{HUB}/Binary/{LAB}",
                }
            }
        ],
    }


@dataclass
class RefusingHub(Fakes):
    """The fakes of test_app, with a hub that can refuse as the real one does."""

    search_status: int = 200
    binary: httpx.Response | None = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url.startswith(f"{HUB}/DocumentReference"):
            self.hub_requests.append(request)
            if self.search_status != 200:
                outcome = {"resourceType": "OperationOutcome", "issue": []}
                return httpx.Response(self.search_status, json=outcome)
            bundle = {"resourceType": "Bundle", "type": "searchset", "total": 1}
            return httpx.Response(200, json=bundle | {"entry": [{"resource": _lab_report()}]})
        if url.startswith(f"{HUB}/Binary/") and self.binary is not None:
            return self.binary
        return super().handler(request)


@pytest.fixture
async def portal(tmp_path: Path) -> AsyncIterator[App]:
    async with running_portal(tmp_path, RefusingHub()) as app:
        yield app


def fakes(portal: App) -> RefusingHub:
    assert isinstance(portal.fakes, RefusingHub)
    return portal.fakes


async def at_overview(client: httpx.AsyncClient, path: str = OVERVIEW) -> httpx.Response:
    workplace = await _log_in(client)
    await client.post(
        "/helsepersonell/arbeidssted",
        data={"csrf_token": csrf_token(workplace), "workplace": "974000024:111"},
    )
    form = await client.get("/helsepersonell/pasient")
    sent = await client.post(
        "/helsepersonell/pasient",
        data={"csrf_token": csrf_token(form), "patient": PATIENT_NIN, **BASIS},
    )
    assert sent.status_code == 303
    return await client.get(path)


def relogin_form(page: httpx.Response) -> dict[str, str]:
    """The fields of the error page's login button (its action under the key `action`)."""
    form = re.search(
        r'<form method="post" action="([^"]+)" class="relogin">(.*?)</form>', page.text, re.S
    )
    assert form, page.text[-3000:]
    fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', form.group(2)))
    return {k: unescape(v) for k, v in fields.items()} | {"action": form.group(1)}


def heading(page: httpx.Response) -> str:
    match = re.search(r"<h1>(.*?)</h1>", page.text, re.S)
    assert match, page.text[:2000]
    return unescape(match.group(1))


# --- an ended login -----------------------------------------------------------------------------


async def test_a_hub_401_ends_the_login_and_logging_in_again_returns_to_the_overview(
    portal: App,
) -> None:
    client = portal.client
    assert (await at_overview(client)).status_code == 200
    old_cookie = client.cookies[COOKIE_NAME]
    fakes(portal).search_status = 401
    # «Oppdater»: the list fetched a moment ago is kept (listing_cache.py); a refresh asks the
    # hub, which no longer takes the login's token.
    refresh = f"{OVERVIEW}&oppdater=1"
    ended = await client.get(refresh)
    assert ended.status_code == 401
    assert heading(ended) == "Økten din er avsluttet"
    assert "Feil" not in heading(ended) and "Traceback" not in ended.text
    button = relogin_form(ended)
    assert button["action"] == "/helsepersonell/logg-inn"
    assert button["neste"] == refresh
    assert ">Logg inn på nytt</button>" in ended.text
    # The old session is over: its cookie opens nothing any more.
    assert client.cookies[COOKIE_NAME] != old_cookie
    stale = httpx.Cookies({COOKIE_NAME: old_cookie})
    async with httpx.AsyncClient(
        transport=client._transport, base_url=str(client.base_url), cookies=stale
    ) as other:
        assert (await other.get("/helsepersonell/pasient")).status_code == 401

    fakes(portal).search_status = 200
    sent = await client.post(button["action"], data=button)
    assert sent.status_code == 303 and sent.headers["location"].startswith(f"{STS}/authorize?")
    state = parse_qs(urlsplit(sent.headers["location"]).query)["state"][0]
    back = await client.get("/helsepersonell/innlogget", params={"code": "c", "state": state})
    assert (
        back.headers["location"] == f"/helsepersonell/arbeidssted?neste={quote(refresh, safe='')}"
    )
    workplace = await client.get(back.headers["location"])
    chosen = await client.post(
        "/helsepersonell/arbeidssted",
        data={"csrf_token": csrf_token(workplace), "workplace": "974000024:111", "neste": refresh},
    )
    target = urlsplit(chosen.headers["location"])
    assert target.path == "/helsepersonell/pasient" and parse_qs(target.query)["neste"] == [refresh]
    form = await client.get(chosen.headers["location"])
    assert f'value="{PATIENT_NIN}"' not in form.text  # nothing of the ended login is kept
    done = await client.post(
        "/helsepersonell/pasient",
        data={"csrf_token": csrf_token(form), "patient": PATIENT_NIN, "neste": refresh, **BASIS},
    )
    assert done.headers["location"] == refresh
    assert (await client.get(refresh)).status_code == 200


async def test_an_expired_session_says_so_and_no_session_says_log_in(portal: App) -> None:
    client = portal.client
    fresh = await client.get("/helsepersonell/oversikt")
    assert fresh.status_code == 401 and heading(fresh) == "Du er ikke logget inn"
    assert relogin_form(fresh)["neste"] == "/helsepersonell/oversikt"
    assert ">Logg inn</button>" in fresh.text

    gone = sign_session_id(secrets.token_urlsafe(32), SECRET)  # signed, but no longer kept
    client.cookies.set(COOKIE_NAME, gone)
    for language in LANGUAGES:
        client.cookies.set("onerecord_lang", language)
        page = await client.get(OVERVIEW)
        t = T[language]
        assert page.status_code == 401
        # The same page in each language, also once the button's new session is in place.
        assert heading(page) == t("error.session-ended.title"), language
        assert t("error.session-ended") in unescape(page.text)
        assert f">{t('error.relogin.button')}</button>" in page.text
        assert relogin_form(page)["neste"] == OVERVIEW


async def test_a_refresh_token_refused_by_the_sts_ends_the_login(portal: App) -> None:
    client = portal.client
    await at_overview(client)
    portal.app.state.portal.http = httpx.AsyncClient(
        transport=httpx.MockTransport(
            lambda r: (
                httpx.Response(400, json={"error": "invalid_grant"})
                if str(r.url) == f"{STS}/token"
                else fakes(portal).handler(r)
            )
        )
    )
    form = await client.get("/helsepersonell/pasient")
    page = await client.post(
        "/helsepersonell/pasient",
        data={"csrf_token": csrf_token(form), "patient": PATIENT_NIN, **BASIS},
    )
    assert page.status_code == 401 and heading(page) == "Økten din er avsluttet"
    # A form has no page to come back to but its own address.
    assert relogin_form(page)["neste"] == "/helsepersonell/pasient"


async def test_refresh_refusals_other_than_invalid_grant_stay_token_refused() -> None:
    tokens = TokenSet("a.b.c", "r", SigningKey.generate(kid="d"), 0.0)
    key = SigningKey.generate(kid="client")
    for answer, error in (
        (httpx.Response(400, json={"error": "invalid_grant"}), SessionEnded),
        (httpx.Response(400, json={"error": "invalid_authorization_details"}), TokenRefused),
        (httpx.Response(400, text="not json"), TokenRefused),
    ):
        transport = httpx.MockTransport(lambda _r, a=answer: a)
        async with httpx.AsyncClient(transport=transport) as http:
            with pytest.raises(error):
                await refresh(http, sts_url=STS, client_id="c", client_key=key, tokens=tokens)


# --- a patient's block, a form too old ---------------------------------------------------------


def _blocked_outcome() -> dict[str, Any]:
    issue = Issue(code="forbidden", diagnostics="access denied", reason="practitioner-blocked")
    return {"resourceType": "OperationOutcome", "issue": [issue.render()]}


@pytest.mark.parametrize("language", list(LANGUAGES))
async def test_a_block_on_the_document_page_is_said_as_on_the_overview(
    portal: App, language: str
) -> None:
    client = portal.client
    await at_overview(client)
    client.cookies.set("onerecord_lang", language)
    fakes(portal).binary = httpx.Response(403, json=_blocked_outcome())
    t = T[language]
    for path in (f"/helsepersonell/dokument/{LAB}", f"/helsepersonell/dokument/{LAB}/innhold"):
        page = await client.get(path)
        assert page.status_code == 403, path
        assert heading(page) == t("error.practitioner-blocked.title")
        assert '<p class="who">' in page.text  # still logged in: who, where, and log out
        assert t("error.practitioner-blocked") in unescape(page.text)
        assert t("error.document-unavailable.advice") not in unescape(page.text)
    # Any other refusal of the retrieve keeps the document's own sentence.
    fakes(portal).binary = httpx.Response(403, json={"resourceType": "OperationOutcome"})
    page = await client.get(f"/helsepersonell/dokument/{LAB}")
    assert page.status_code == 404 and t("error.document-unavailable") in unescape(page.text)
    fakes(portal).binary = httpx.Response(401, json={"resourceType": "OperationOutcome"})
    page = await client.get(f"/helsepersonell/dokument/{LAB}")
    assert page.status_code == 401 and heading(page) == t("error.session-ended.title")
    assert relogin_form(page)["neste"] == f"/helsepersonell/dokument/{LAB}"


async def test_a_form_too_old_is_said_in_words_with_the_way_back(portal: App) -> None:
    client = portal.client
    await at_overview(client)
    page = await client.post(
        "/helsepersonell/pasient",
        data={"csrf_token": "from-before-the-last-login", "patient": PATIENT_NIN, **BASIS},
    )
    assert page.status_code == 403
    assert heading(page) == "Skjemaet er for gammelt"
    assert "Ingenting er endret." in page.text
    assert '<a href="/helsepersonell/pasient">Tilbake til siden</a>' in page.text
    # A form whose session has ended asks to log in again instead.
    client.cookies.set(COOKIE_NAME, sign_session_id(secrets.token_urlsafe(32), SECRET))
    ended = await client.post("/helsepersonell/pasient", data={"csrf_token": "x"})
    assert ended.status_code == 401 and heading(ended) == "Økten din er avsluttet"


async def test_the_login_page_takes_only_a_local_page_to_return_to(portal: App) -> None:
    client = portal.client
    await _to_sts(client)
    page = await client.get("/helsepersonell/logg-inn")
    for neste in ("https://evil.example/", "//evil.example", "/innbygger/dokumenter"):
        sent = await client.post(
            "/helsepersonell/logg-inn", data={"csrf_token": csrf_token(page), "neste": neste}
        )
        state = parse_qs(urlsplit(sent.headers["location"]).query)["state"][0]
        back = await client.get("/helsepersonell/innlogget", params={"code": "c", "state": state})
        assert back.headers["location"] == "/helsepersonell/arbeidssted", neste
        page = await client.get("/helsepersonell/logg-inn")


# --- citizens ----------------------------------------------------------------------------------


@dataclass
class RefusingCitizenHub(citizen.FakeNetwork):
    """The citizen fakes, with a hub that can answer 401 or refuse the controls with a reason."""

    status: int | None = None
    controls_reason: str | None = None

    def _answer(self, request: httpx.Request) -> httpx.Response:
        if str(request.url).startswith(citizen.HUB):
            if self.status is not None:
                self.requests.append(request)
                return httpx.Response(self.status, json={"resourceType": "OperationOutcome"})
            if request.url.path.startswith("/controls") and self.controls_reason is not None:
                self.requests.append(request)
                issues = [
                    citizen.outcome_issue(r["home_community_id"], "denied")
                    | {"details": {"coding": [{"system": DENIAL, "code": self.controls_reason}]}}
                    for r in citizen.REGIONS
                ]
                outcome = {"resourceType": "OperationOutcome", "issue": issues}
                return httpx.Response(403, json=outcome)
        return super()._answer(request)


@pytest.fixture
def fake() -> RefusingCitizenHub:
    return RefusingCitizenHub(
        userinfo=citizen.parent_userinfo(),
        documents={
            citizen.PARENT: [citizen.document("2.16.578.1.99.1", "Epikrise – astma", citizen.HSO)],
            citizen.CHILD11: [
                citizen.document("2.16.578.1.99.3", "Barnets journalnotat", citizen.HSO)
            ],
        },
    )


@pytest.fixture
async def browser(tmp_path: Path, fake: RefusingCitizenHub) -> AsyncIterator[httpx.AsyncClient]:
    settings = PortalSettings(
        public_url=citizen.PORTAL,
        hub_fhir=f"{citizen.HUB}/fhir",
        sts_url=citizen.STS,
        session_secret=SECRET,
        client_key_file=citizen._key_file(tmp_path),
        regions=citizen.REGIONS,
        staff={},
        override_log_file=tmp_path / "overrides.jsonl",
    )
    app = create_portal_app(settings)
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handle)) as upstream:
        app.state.portal.http = upstream
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=citizen.PORTAL) as client:
            yield client


async def act_for_child(browser: httpx.AsyncClient) -> None:
    page = await citizen.logged_in(browser)
    chosen = await browser.post(
        "/innbygger/representasjon",
        data={"csrf_token": csrf_token(page), "person": citizen.CHILD11},
    )
    assert chosen.status_code == 303


async def test_a_citizens_ended_login_returns_to_the_page(
    browser: httpx.AsyncClient, fake: RefusingCitizenHub
) -> None:
    await citizen.logged_in(browser)
    fake.status = 401
    ended = await browser.get("/innbygger/tilgangslogg?side=2")
    assert ended.status_code == 401 and heading(ended) == "Økten din er avsluttet"
    button = relogin_form(ended)
    assert button["action"] == "/innbygger/logg-inn"
    assert button["neste"] == "/innbygger/tilgangslogg?side=2"
    fake.status = None
    sent = await browser.post(button["action"], data=button)
    state = parse_qs(urlsplit(sent.headers["location"]).query)["state"][0]
    back = await browser.get("/innbygger/innlogget", params={"code": "c", "state": state})
    assert back.status_code == 303 and back.headers["location"] == "/innbygger/tilgangslogg?side=2"


async def test_a_change_whose_login_ended_asks_to_log_in_not_a_notice(
    browser: httpx.AsyncClient, fake: RefusingCitizenHub
) -> None:
    page = await citizen.logged_in(browser)
    fake.status = 401
    sent = await browser.post(
        "/innbygger/sperringer/reservasjon",
        data={"csrf_token": csrf_token(page), "handling": "reserver"},
    )
    assert sent.status_code == 401 and heading(sent) == "Økten din er avsluttet"
    assert relogin_form(sent)["neste"] == "/innbygger/dokumenter"


@pytest.mark.parametrize("language", list(LANGUAGES))
async def test_a_controls_refusal_says_the_regions_reason_naming_the_child(
    browser: httpx.AsyncClient, fake: RefusingCitizenHub, language: str
) -> None:
    await act_for_child(browser)
    browser.cookies.set("onerecord_lang", language)
    fake.controls_reason = "child-too-old"
    page = await browser.get("/innbygger/personvern")
    t = T[language]
    assert page.status_code == 403
    said = t("citizen.hub-refused.child-too-old-other", name="Terje Pettersen")
    assert said in unescape(page.text)
    fake.controls_reason = "something-new"  # a reason the portal has no words for
    page = await browser.get("/innbygger/personvern")
    assert t("citizen.error.refused-other", name="Terje Pettersen") in unescape(page.text)


async def test_a_refused_change_for_a_child_names_the_child_in_the_notice(
    browser: httpx.AsyncClient, fake: RefusingCitizenHub
) -> None:
    await act_for_child(browser)
    page = await browser.get("/innbygger/dokumenter")
    fake.controls_reason = "no-parent-at-address"
    sent = await browser.post(
        "/innbygger/sperringer/reservasjon",
        data={"csrf_token": csrf_token(page), "handling": "reserver"},
    )
    assert sent.status_code == 303
    fake.controls_reason = None
    after = await browser.get(sent.headers["location"])
    role, text = citizen.notice(after)
    assert role == "alert"
    assert unescape(text).startswith("Du er ikke registrert på samme adresse som Terje Pettersen")


async def test_a_block_not_listed_while_acting_names_the_childs_documents(
    browser: httpx.AsyncClient,
) -> None:
    await act_for_child(browser)
    page = await browser.get("/innbygger/dokumenter")
    refused = await browser.post(
        "/innbygger/sperringer/dokument",
        data={
            "csrf_token": csrf_token(page),
            "unique_id": "2.16.578.1.99.1",  # the parent's own document, not the child's
            "home_community_id": citizen.HSO,
            "handling": "sperr",
        },
    )
    assert refused.status_code == 403
    text = unescape(refused.text)
    assert "«Dokumentene til Terje Pettersen»" in text and "Mine dokumenter" not in text


def test_the_new_messages_are_in_every_language_with_the_same_placeholders() -> None:
    texts = catalog()
    keys = [
        k
        for k in texts
        if k.startswith(("error.session-ended", "citizen.hub-refused.", "hcp.workplace."))
        or k
        in (
            "error.not-logged-in.title",
            "error.relogin.button",
            "error.login.button",
            "error.csrf.title",
            "error.back-to-page",
            "error.practitioner-blocked.title",
            "citizen.error.refused-other",
            "citizen.block.not-listed.advice-other",
        )
    ]
    assert len(keys) >= 20
    for key in keys:
        assert set(texts[key]) == {"nb", "nn", "en"}, key
        fields = {lang: set(re.findall(r"{(\w+)}", text)) for lang, text in texts[key].items()}
        assert fields["nb"] == fields["nn"] == fields["en"], key
