"""The citizen portal on its own: the app over ASGI, the STS and hub answered by a fake.

The fake (an httpx.MockTransport behind the portal's own client) keeps the state a hub would
(documents, controls, the access log) and records every request, so a test can see what the
portal asked for, for whom, and with which token.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from onerecord.portals import PortalSettings, create_portal_app
from onerecord.trust.keys import SigningKey
from tests.portals.pages import csrf_token, set_cookie_header

pytestmark = pytest.mark.anyio

STS = "https://sts.example"
HUB = "https://hub.example"
PORTAL = "https://portal.example"
PARENT = "14928301045"
CHILD11 = "02861569910"
CHILD13 = "23841357663"
HSO = "urn:oid:2.16.578.1.12.4.5.100.1"
VEST = "urn:oid:2.16.578.1.12.4.5.100.2"
REGIONS = (
    {"name": "Helse Sør-Øst", "home_community_id": HSO},
    {"name": "Helse Vest", "home_community_id": VEST},
)
ACCESS_TOKEN = "header.eyJzdWIiOiJjaXRpemVuIn0.signature"
HPR_DOCTOR = "6926956"
_EXT_HCID = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-HomeCommunityId"
_EXT_STATUS = "https://onerecord.no/fhir/StructureDefinition/region-status"
_EXT_AUDIT_HCID = "https://onerecord.example/fhir/StructureDefinition/home-community-id"
_EXT_EMERGENCY = "https://onerecord.example/fhir/StructureDefinition/emergency-access"
_EXT_BASE = "https://onerecord.example/fhir/StructureDefinition"
_HPR_CATEGORY = "urn:oid:2.16.578.1.12.4.1.1.9060"


def document(unique_id: str, title: str, hcid: str) -> dict[str, Any]:
    token = f"{hcid.removeprefix('urn:oid:')}~repo~{unique_id}"
    return {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"value": f"urn:oid:{unique_id}"},
        "date": "2026-02-01T10:00:00+01:00",
        "type": {"text": "Epikrise"},
        "category": [{"text": "Epikriser og sammenfatninger"}],
        "content": [
            {
                "attachment": {
                    "title": title,
                    "contentType": "application/pdf",
                    "url": f"{HUB}/fhir/Binary/{token}",
                }
            }
        ],
        "extension": [{"url": _EXT_HCID, "valueUri": hcid}],
    }


def access_event(
    hcid: str,
    *,
    opened: bool,
    emergency: bool,
    recorded: str = "2026-03-02T13:05:00+00:00",
    titles: tuple[str, ...] = (),
    grant: tuple[str, str] | None = None,
    who: str = "Ane Aasen",
    hpr: str = HPR_DOCTOR,
) -> dict[str, Any]:
    extensions: list[dict[str, Any]] = [{"url": _EXT_AUDIT_HCID, "valueString": hcid}]
    if emergency:
        extensions.append({"url": _EXT_EMERGENCY, "valueBoolean": True})
    if grant is not None:
        extensions.append({"url": f"{_EXT_BASE}/emergency-basis", "valueCode": grant[0]})
        extensions.append({"url": f"{_EXT_BASE}/emergency-reason", "valueCode": grant[1]})
    return {
        "resourceType": "AuditEvent",
        "subtype": [{"code": "read" if opened else "search"}],
        "action": "R" if opened else "E",
        "recorded": recorded,
        "agent": [
            {
                "requestor": True,
                "who": {
                    "display": who,
                    "identifier": {"system": "urn:oid:2.16.578.1.12.4.1.4.4", "value": hpr},
                },
                "role": [{"coding": [{"system": _HPR_CATEGORY, "code": "LE"}]}],
            },
            {"requestor": False, "who": {"display": "Oslo universitetssykehus HF"}},
            {"requestor": False, "who": {"display": "Medisinsk klinikk"}},
        ],
        "purposeOfEvent": [{"text": "Behandling"}, {"text": "Spesialisthelsetjeneste"}],
        "entity": [{"description": "Dokumentliste"}, *({"name": t} for t in titles)],
        "extension": extensions,
    }


def outcome_issue(hcid: str, status: str) -> dict[str, Any]:
    return {
        "severity": "warning",
        "code": "timeout",
        "extension": [
            {"url": _EXT_STATUS, "valueCode": status},
            {"url": _EXT_HCID, "valueUri": hcid},
        ],
    }


@dataclass
class FakeNetwork:
    """The STS and the hub as the portal sees them, with their state and every request."""

    userinfo: dict[str, Any] = field(default_factory=dict)
    expires_in: int = 300
    documents: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    log_failed: tuple[str, ...] = ()
    log_all_failed: bool = False
    reserved: dict[str, bool] = field(default_factory=dict)
    blocked_documents: dict[str, set[str]] = field(default_factory=dict)
    blocked_practitioners: dict[str, set[str]] = field(default_factory=dict)
    failing_change: str | None = None
    pending_region: str | None = None
    """A region's name: every change is kept pending for it (202) until this is cleared."""
    pending: list[dict[str, Any]] = field(default_factory=list)
    controls_broken: bool = False
    refuse_search: bool = False
    requests: list[httpx.Request] = field(default_factory=list)
    search_gate: tuple[asyncio.Event, asyncio.Event] | None = None
    """(asked, release): a document search sets `asked`, then waits for `release`."""

    def handle(self, request: httpx.Request) -> httpx.Response | Awaitable[httpx.Response]:
        if self.search_gate is not None and request.url.path == "/fhir/DocumentReference":
            return self._held(request, *self.search_gate)
        return self._answer(request)

    async def _held(
        self, request: httpx.Request, asked: asyncio.Event, release: asyncio.Event
    ) -> httpx.Response:
        asked.set()
        await release.wait()
        return self._answer(request)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = str(request.url)
        if url.startswith(STS):
            return self._sts(request)
        assert request.headers["authorization"] == f"DPoP {ACCESS_TOKEN}"
        assert request.headers["dpop"].count(".") == 2
        path = request.url.path
        query = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        if path == "/fhir/DocumentReference" and self.refuse_search:
            return httpx.Response(403, json={"resourceType": "OperationOutcome"})
        if path == "/fhir/DocumentReference":
            nin = query["patient.identifier"].rpartition("|")[2]
            docs = self.documents.get(nin, [])
            body = {"resourceType": "Bundle", "total": len(docs), "entry": []}
            body["entry"] = [{"resource": d} for d in docs]
            return httpx.Response(200, json=body)
        if path == "/fhir/AuditEvent":
            return self._log()
        if path.startswith("/controls"):
            return self._controls(request, path, query.get("patient") or PARENT)
        return httpx.Response(404)

    def _sts(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            assert "dpop" in request.headers
            return httpx.Response(
                200,
                json={
                    "access_token": ACCESS_TOKEN,
                    "refresh_token": "refresh-1",
                    "token_type": "DPoP",
                    "expires_in": self.expires_in,
                },
            )
        if request.url.path == "/userinfo":
            return httpx.Response(200, json=self.userinfo)
        return httpx.Response(404)

    def _log(self) -> httpx.Response:
        if self.log_all_failed:
            issues = [outcome_issue(r["home_community_id"], "unavailable") for r in REGIONS]
            return httpx.Response(502, json={"resourceType": "OperationOutcome", "issue": issues})
        entries: list[dict[str, Any]] = [{"resource": e} for e in self.events]
        if self.log_failed:
            issues = [outcome_issue(h, "timeout") for h in self.log_failed]
            entries.append({"resource": {"resourceType": "OperationOutcome", "issue": issues}})
        return httpx.Response(200, json={"resourceType": "Bundle", "entry": entries})

    def controls_of(self, patient: str, failed: tuple[str, ...] = ()) -> dict[str, Any]:
        return {
            "patient": patient,
            "reserved": self.reserved.get(patient, False),
            "blockedDocuments": sorted(self.blocked_documents.get(patient, set())),
            "blockedPractitioners": sorted(self.blocked_practitioners.get(patient, set())),
            "pending": list(self.pending) if self.pending_region else [],
            "regions": [
                {
                    "homeCommunityId": r["home_community_id"],
                    "name": r["name"],
                    "status": "timeout" if r["home_community_id"] in failed else "ok",
                    "detail": None,
                }
                for r in REGIONS
            ],
        }

    def _controls(self, request: httpx.Request, path: str, patient: str) -> httpx.Response:
        if request.method == "GET":
            if self.controls_broken:
                return httpx.Response(502, json={"resourceType": "OperationOutcome"})
            return httpx.Response(200, json=self.controls_of(patient))
        on = request.method == "PUT"
        parts = path.split("/")
        kind = parts[2]
        if kind == "reservation":
            self.reserved[patient] = on
        else:
            store = (
                self.blocked_documents if kind == "document-blocks" else self.blocked_practitioners
            )
            target = unquote(parts[3])
            values = store.setdefault(patient, set())
            (values.add if on else values.discard)(target)
        if self.pending_region is not None:
            target = unquote(parts[3]) if len(parts) > 3 else None
            self.pending.append(
                {"kind": kind, "target": target, "on": on, "name": self.pending_region}
            )
            return httpx.Response(202, json=self.controls_of(patient))
        if self.failing_change is not None:
            return httpx.Response(502, json=self.controls_of(patient, (self.failing_change,)))
        return httpx.Response(200, json=self.controls_of(patient))

    def hub_calls(self, path: str, method: str = "GET") -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if str(r.url).startswith(HUB) and r.url.path.startswith(path) and r.method == method
        ]


def parent_userinfo() -> dict[str, Any]:
    return {
        "sub": PARENT,
        "name": "Guro Pettersen",
        "pid": PARENT,
        "security_level": "4",
        "acr": "idporten-loa-high",
        "onerecord:representation": [
            {"nin": CHILD11, "name": "Terje Pettersen", "relation": "parent", "acp": "x"}
        ],
        "onerecord:representation_refused": [
            {
                "nin": CHILD13,
                "name": "Anne Pettersen",
                "relation": "parent",
                "reason": "child-12-15",
            }
        ],
    }


def _key_file(folder: Path) -> Path:
    path = folder / "portal.jwk.json"
    path.write_text(json.dumps(SigningKey.generate(kid="portal-test").private_jwk()))
    return path


@pytest.fixture
def fake() -> FakeNetwork:
    return FakeNetwork(
        userinfo=parent_userinfo(),
        documents={
            PARENT: [
                document("2.16.578.1.99.1", "Epikrise – astma", HSO),
                document("2.16.578.1.99.2", "Brev fra fastlegen", VEST),
            ],
            CHILD11: [document("2.16.578.1.99.3", "Barnets journalnotat", HSO)],
        },
    )


@pytest.fixture
async def browser(tmp_path: Path, fake: FakeNetwork) -> AsyncIterator[httpx.AsyncClient]:
    settings = PortalSettings(
        public_url=PORTAL,
        hub_fhir=f"{HUB}/fhir",
        sts_url=STS,
        session_secret="a-production-secret-of-some-length",
        client_key_file=_key_file(tmp_path),
        regions=REGIONS,
        staff={"doctor": {"hpr": HPR_DOCTOR, "name": "Ane Aasen", "nin": "04837317679"}},
        override_log_file=tmp_path / "overrides.jsonl",
    )
    app = create_portal_app(settings)
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handle)) as upstream:
        app.state.portal.http = upstream
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=PORTAL) as client:
            yield client


async def log_in(browser: httpx.AsyncClient) -> httpx.Response:
    """Press the login button, come back from the STS with a code; return the landing page."""
    page = await browser.get("/innbygger/logg-inn")
    assert page.status_code == 200
    sent = await browser.post("/innbygger/logg-inn", data={"csrf_token": csrf_token(page)})
    assert sent.status_code == 303
    authorize = urlsplit(sent.headers["location"])
    query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    assert f"{authorize.scheme}://{authorize.netloc}{authorize.path}" == f"{STS}/authorize"
    assert query["onerecord_user_kind"] == "citizen"
    assert query["acr_values"] == "idporten-loa-high"
    assert query["redirect_uri"] == f"{PORTAL}/innbygger/innlogget"
    back = await browser.get(
        "/innbygger/innlogget", params={"code": "the-code", "state": query["state"]}
    )
    return back


async def logged_in(browser: httpx.AsyncClient) -> httpx.Response:
    back = await log_in(browser)
    assert back.status_code == 303, back.text
    assert back.headers["location"] == "/innbygger/dokumenter"
    return await browser.get("/innbygger/dokumenter")


def notice(page: httpx.Response) -> tuple[str, str]:
    match = re.search(r'<p class="notice [a-z]+" role="(status|alert)">([^<]*)</p>', page.text)
    assert match, page.text[:3000]
    return match.group(1), match.group(2)


def row_of(page: httpx.Response, title: str) -> str:
    for row in re.findall(r"<tr class=\"document[^\"]*\"[^>]*>(.*?)</tr>", page.text, re.S):
        if title in row:
            return str(row)
    raise AssertionError(f"no row for {title}")


def form_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', html))


def undo_form(page: httpx.Response) -> dict[str, str]:
    """The fields of the first document block's undo form on a page."""
    undo = re.search(
        r'<form method="post" action="/innbygger/sperringer/dokument" class="row-action">(.*?)'
        r"</form>",
        page.text,
        re.S,
    )
    assert undo, page.text[-3000:]
    return form_fields(undo.group(1))


# --- login ----------------------------------------------------------------------------------


async def test_login_lands_on_own_documents_with_a_new_session(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    before = set_cookie_header(await browser.get("/innbygger/logg-inn"))
    back = await log_in(browser)
    assert back.status_code == 303
    assert set_cookie_header(back) != before  # rotated at login: no session fixation
    page = await browser.get("/innbygger/dokumenter")
    assert page.status_code == 200
    html = page.text
    assert "Guro Pettersen" in html
    assert "Du ser dine egne dokumenter." in html
    assert '<a href="/innbygger/dokumenter" aria-current="page">Mine dokumenter</a>' in html
    assert '<nav class="citizen-nav" aria-label="Innbyggermeny">' in html
    assert "Epikrise – astma" in html and "Brev fra fastlegen" in html
    assert "Helse Sør-Øst svarte." in html and "Helse Vest svarte." in html
    # The overview was asked for the citizen, with the login token.
    (search,) = fake.hub_calls("/fhir/DocumentReference")
    assert search.url.params["patient.identifier"].endswith(f"|{PARENT}")
    assert ACCESS_TOKEN not in html and "refresh-1" not in html


async def test_a_login_below_level_four_is_refused(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    fake.userinfo = parent_userinfo() | {"acr": "idporten-loa-substantial", "security_level": "3"}
    back = await log_in(browser)
    assert back.status_code == 400
    assert "høyeste sikkerhetsnivå" in back.text and "Traceback" not in back.text
    assert (await browser.get("/innbygger/dokumenter")).status_code == 401


async def test_a_wrong_state_is_refused(browser: httpx.AsyncClient) -> None:
    page = await browser.get("/innbygger/logg-inn")
    await browser.post("/innbygger/logg-inn", data={"csrf_token": csrf_token(page)})
    back = await browser.get("/innbygger/innlogget", params={"code": "c", "state": "forged"})
    assert back.status_code == 400
    assert "Innloggingen ble ikke fullført" in back.text


async def test_pages_need_a_citizen_login_and_citizens_stay_out_of_the_hcp_pages(
    browser: httpx.AsyncClient,
) -> None:
    for path in ("dokumenter", "tilgangslogg", "representasjon", "personvern", "dokument/x"):
        page = await browser.get(f"/innbygger/{path}")
        assert page.status_code == 401, path
        assert 'action="/innbygger/logg-inn"' in page.text  # the login, right there
    await logged_in(browser)
    for path in ("/helsepersonell/pasient", "/helsepersonell/oversikt"):
        assert (await browser.get(path)).status_code == 401, path


async def test_logout_ends_the_citizen_session(browser: httpx.AsyncClient) -> None:
    page = await logged_in(browser)
    out = await browser.post("/logg-ut", data={"csrf_token": csrf_token(page)})
    assert out.status_code == 303 and out.headers["location"] == "/innbygger/logg-inn"
    assert (await browser.get("/innbygger/dokumenter")).status_code == 401


async def test_a_refused_overview_tells_a_citizen_what_to_do(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    fake.refuse_search = True
    back = await log_in(browser)
    page = await browser.get(back.headers["location"])
    assert page.status_code == 403
    assert "Du har ikke tilgang til dette for personen du valgte." in page.text
    assert "Bytt person" in page.text and "grunnlaget for tilgang" not in page.text


async def test_the_login_token_is_refreshed_before_it_expires(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    fake.expires_in = 5
    await logged_in(browser)
    grants = [
        parse_qs(r.content.decode())["grant_type"][0]
        for r in fake.requests
        if r.url.path == "/token"
    ]
    assert grants == ["authorization_code", "refresh_token"]


# --- documents and blocks -------------------------------------------------------------------


async def test_block_a_document_and_lift_the_block(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    page = await logged_in(browser)
    row = row_of(page, "Epikrise – astma")
    assert ">Sperr</button>" in row and 'aria-label="Sperr Epikrise – astma"' in row
    fields = form_fields(row)
    assert fields["unique_id"] == "2.16.578.1.99.1" and fields["home_community_id"] == HSO
    assert fields["handling"] == "sperr"
    # A block without the CSRF token is refused and changes nothing.
    forged = await browser.post(
        "/innbygger/sperringer/dokument",
        data={k: v for k, v in fields.items() if k != "csrf_token"},
    )
    assert forged.status_code == 403 and not fake.hub_calls("/controls", "PUT")
    done = await browser.post("/innbygger/sperringer/dokument", data=fields)
    assert done.status_code == 303 and done.headers["location"] == "/innbygger/dokumenter"
    (put,) = fake.hub_calls("/controls/document-blocks", "PUT")
    assert put.url.path == "/controls/document-blocks/2.16.578.1.99.1"
    assert put.url.params["homeCommunityId"] == HSO and "patient" not in put.url.params
    after = await browser.get(done.headers["location"])
    assert notice(after) == ("status", "Sperringen gjelder nå. Helsepersonell ser den med en gang.")
    blocked = row_of(after, "Epikrise – astma")
    assert "Sperret av deg." in blocked and ">Opphev sperring</button>" in blocked
    assert ">Sperr</button>" in row_of(after, "Brev fra fastlegen")
    # The notice is shown once.
    assert 'class="notice' not in (await browser.get("/innbygger/dokumenter")).text
    undo = await browser.post("/innbygger/sperringer/dokument", data=form_fields(blocked))
    (delete,) = fake.hub_calls("/controls/document-blocks", "DELETE")
    assert delete.url.path.endswith("/2.16.578.1.99.1")
    again = await browser.get(undo.headers["location"])
    assert "Sperringen er opphevet" in notice(again)[1]
    assert ">Sperr</button>" in row_of(again, "Epikrise – astma")


async def test_a_block_some_regions_missed_says_which(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    page = await logged_in(browser)
    fake.failing_change = VEST
    fields = form_fields(row_of(page, "Brev fra fastlegen"))
    done = await browser.post("/innbygger/sperringer/dokument", data=fields)
    role, text = notice(await browser.get(done.headers["location"]))
    assert role == "alert" and "Helse Vest" in text and "ikke på plass" in text


async def test_a_forged_document_id_is_refused_with_a_message(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    page = await logged_in(browser)
    fields = form_fields(row_of(page, "Brev fra fastlegen")) | {"unique_id": "<script>"}
    done = await browser.post("/innbygger/sperringer/dokument", data=fields)
    role, text = notice(await browser.get(done.headers["location"]))
    assert role == "alert" and "kunne ikke sperres" in text
    assert not fake.hub_calls("/controls/document-blocks", "PUT")
    # An open redirect through `neste` is not possible.
    fields["neste"] = "https://evil.example/"
    away = await browser.post("/innbygger/sperringer/dokument", data=fields)
    assert away.headers["location"] == "/innbygger/dokumenter"


@pytest.mark.parametrize("handling", ["sperr", "opphev"])
@pytest.mark.parametrize(
    "changes",
    [
        {"unique_id": "2.16.578.1.99.77"},  # well-formed, but nobody's listed document
        {"home_community_id": HSO},  # a listed uniqueId, named in another region
        {"home_community_id": ""},
    ],
)
async def test_a_block_of_a_document_not_in_the_overview_is_refused(
    browser: httpx.AsyncClient, fake: FakeNetwork, handling: str, changes: dict[str, str]
) -> None:
    page = await logged_in(browser)
    fields = form_fields(row_of(page, "Brev fra fastlegen")) | changes | {"handling": handling}
    refused = await browser.post("/innbygger/sperringer/dokument", data=fields)
    assert refused.status_code == 403
    assert "Dokumentet står ikke i dokumentlisten" in refused.text
    assert "last listen på nytt" in refused.text and "Traceback" not in refused.text
    assert not fake.hub_calls("/controls/document-blocks", "PUT")
    assert not fake.hub_calls("/controls/document-blocks", "DELETE")
    assert fake.blocked_documents.get(PARENT, set()) == set()


async def test_a_block_of_ones_own_document_while_acting_for_a_child_is_refused(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    own = await logged_in(browser)
    fields = form_fields(row_of(own, "Epikrise – astma"))
    people = await browser.get("/innbygger/representasjon")
    await browser.post(
        "/innbygger/representasjon", data={"csrf_token": csrf_token(people), "person": CHILD11}
    )
    await browser.get("/innbygger/dokumenter")  # the child's overview
    browser.cookies.set("onerecord_lang", "en", domain="portal.example")
    refused = await browser.post("/innbygger/sperringer/dokument", data=fields)
    assert refused.status_code == 403
    assert "The document is not in the document list of the person" in refused.text
    assert '<html lang="en">' in refused.text
    assert not fake.hub_calls("/controls/document-blocks", "PUT")
    assert fake.blocked_documents == {}


async def test_a_block_listed_only_on_the_privacy_page_can_be_lifted(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    fake.blocked_documents[PARENT] = {"2.16.578.1.99.9"}
    page = await logged_in(browser)
    assert "2.16.578.1.99.9" not in page.text  # not among the overview's documents
    privacy = await browser.get("/innbygger/personvern")
    fields = undo_form(privacy)
    assert fields["unique_id"] == "2.16.578.1.99.9" and fields["home_community_id"] == ""
    done = await browser.post("/innbygger/sperringer/dokument", data=fields)
    assert done.status_code == 303 and done.headers["location"] == "/innbygger/personvern"
    (delete,) = fake.hub_calls("/controls/document-blocks", "DELETE")
    assert delete.url.path == "/controls/document-blocks/2.16.578.1.99.9"
    assert fake.blocked_documents[PARENT] == set()
    assert "Sperringen er opphevet" in notice(await browser.get(done.headers["location"]))[1]
    # Lifting it again: no longer blocked, not listed, so refused.
    again = await browser.post("/innbygger/sperringer/dokument", data=fields)
    assert again.status_code == 403
    assert len(fake.hub_calls("/controls/document-blocks", "DELETE")) == 1


async def test_a_person_switched_while_the_documents_load_is_not_mixed_in(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    own = await logged_in(browser)
    fields = form_fields(row_of(own, "Epikrise – astma"))
    link = re.search(r'<a href="(/innbygger/dokument/[^"]+)">Epikrise – astma</a>', own.text)
    assert link
    people = await browser.get("/innbygger/representasjon")
    asked, release = asyncio.Event(), asyncio.Event()
    fake.search_gate = (asked, release)
    # «Oppdater»: the list is fetched afresh (else the rows of the login's page would serve).
    loading = asyncio.create_task(browser.get("/innbygger/dokumenter?oppdater=1"))
    await asyncio.wait_for(asked.wait(), 5)
    # Meanwhile, in another tab: act for the child.
    switched = await browser.post(
        "/innbygger/representasjon", data={"csrf_token": csrf_token(people), "person": CHILD11}
    )
    assert switched.status_code == 303
    release.set()
    page = await asyncio.wait_for(loading, 5)
    fake.search_gate = None
    # The page about the citizen says so, above the citizen's documents.
    assert page.status_code == 200
    assert "Du ser dine egne dokumenter." in page.text and "Epikrise – astma" in page.text
    assert "Terje Pettersen (barn)" not in page.text
    search = fake.hub_calls("/fhir/DocumentReference")[-1]
    assert search.url.params["patient.identifier"].endswith(f"|{PARENT}")
    assert "patient" not in fake.hub_calls("/controls")[-1].url.params
    # The citizen's rows were not kept as the child's: neither opened nor blocked as the child's.
    assert (await browser.get(link.group(1))).status_code == 404
    refused = await browser.post("/innbygger/sperringer/dokument", data=fields)
    assert refused.status_code == 403 and not fake.hub_calls("/controls/document-blocks", "PUT")
    child = await browser.get("/innbygger/dokumenter")
    assert "Du ser dokumentene til Terje Pettersen (barn)." in child.text
    assert "Barnets journalnotat" in child.text and "Epikrise – astma" not in child.text


async def test_without_controls_the_block_buttons_are_hidden_and_that_is_said(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    fake.controls_broken = True
    page = await logged_in(browser)
    assert page.status_code == 200
    assert "Vi fikk ikke hentet sperringene dine nå" in page.text
    assert ">Sperr</button>" not in page.text and "Ukjent nå" in page.text


async def test_a_listed_document_opens_and_an_unlisted_one_does_not(
    browser: httpx.AsyncClient,
) -> None:
    page = await logged_in(browser)
    link = re.search(r'<a href="(/innbygger/dokument/[^"]+)">Epikrise – astma</a>', page.text)
    assert link
    opened = await browser.get(link.group(1))
    assert opened.status_code == 200
    assert "<h1>Epikrise – astma</h1>" in opened.text
    assert link.group(1) + "/innhold" in opened.text
    missing = await browser.get("/innbygger/dokument/1.2.3~4.5.6~7.8.9")
    assert missing.status_code == 404 and "Dokumentet kan ikke vises" in missing.text


# --- representation -------------------------------------------------------------------------


async def test_act_for_a_child_under_12_and_go_back(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    await logged_in(browser)
    people = await browser.get("/innbygger/representasjon")
    assert "Se dokumentene til Terje Pettersen" in people.text
    assert "Barn mellom 12 og 16 år har rett til å holde opplysninger for seg selv" in people.text
    chosen = await browser.post(
        "/innbygger/representasjon",
        data={"csrf_token": csrf_token(people), "person": CHILD11},
    )
    assert chosen.status_code == 303
    page = await browser.get(chosen.headers["location"])
    assert "Du ser dokumentene til Terje Pettersen (barn)." in page.text
    assert notice(page) == ("status", "Du ser nå dokumentene til Terje Pettersen.")
    assert "Barnets journalnotat" in page.text and "Epikrise – astma" not in page.text
    assert (
        fake.hub_calls("/fhir/DocumentReference")[-1]
        .url.params["patient.identifier"]
        .endswith(f"|{CHILD11}")
    )
    assert fake.hub_calls("/controls")[-1].url.params["patient"] == CHILD11
    # A block while acting for the child is the child's block.
    fields = form_fields(row_of(page, "Barnets journalnotat"))
    await browser.post("/innbygger/sperringer/dokument", data=fields)
    (put,) = fake.hub_calls("/controls/document-blocks", "PUT")
    assert put.url.params["patient"] == CHILD11
    # The way back to one's own documents is on every page.
    log = await browser.get("/innbygger/tilgangslogg")
    assert "Hvem har sett dokumentene til Terje Pettersen" in log.text
    back_form = re.search(
        r'<form method="post" action="/innbygger/representasjon">(.*?)</form>', log.text, re.S
    )
    assert back_form and "Tilbake til dine egne dokumenter" in back_form.group(1)
    back = await browser.post("/innbygger/representasjon", data=form_fields(back_form.group(1)))
    own = await browser.get(back.headers["location"])
    assert "Du ser dine egne dokumenter." in own.text and "Epikrise – astma" in own.text


@pytest.mark.parametrize(
    ("person", "message"),
    [
        (CHILD13, "Du kan ikke se dokumentene til Anne Pettersen digitalt. Barn mellom 12 og 16"),
        ("07908621837", "Du kan ikke se dokumentene til denne personen digitalt."),
        ("not-a-number", "Du kan ikke se dokumentene til denne personen digitalt."),
    ],
)
async def test_a_person_not_allowed_is_refused_plainly_and_nothing_switches(
    browser: httpx.AsyncClient, fake: FakeNetwork, person: str, message: str
) -> None:
    await logged_in(browser)
    people = await browser.get("/innbygger/representasjon")
    refused = await browser.post(
        "/innbygger/representasjon", data={"csrf_token": csrf_token(people), "person": person}
    )
    assert refused.status_code == 403
    assert re.search(r'<p class="error" role="alert">' + re.escape(message), refused.text)
    page = await browser.get("/innbygger/dokumenter")
    assert "Du ser dine egne dokumenter." in page.text
    assert all(
        r.url.params["patient.identifier"].endswith(f"|{PARENT}")
        for r in fake.hub_calls("/fhir/DocumentReference")
    )


# --- access log -----------------------------------------------------------------------------


def visit_items(html: str) -> list[str]:
    return re.findall(r'<li class="visit[^"]*">(.*?)</li>\s*(?=<li class="visit|</ol>)', html, re.S)


async def test_access_log_shows_one_line_per_visit_and_never_the_number(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    fake.events = [
        access_event(
            HSO,
            opened=True,
            emergency=True,
            recorded="2026-03-02T13:20:00+00:00",
            titles=("Epikrise – astma",),
            grant=("AKUTT", "unconscious"),
        ),
        access_event(HSO, opened=False, emergency=False, recorded="2026-03-02T13:06:00+00:00"),
        access_event(VEST, opened=False, emergency=False),
        # The same reader, the next day: another visit.
        access_event(HSO, opened=False, emergency=False, recorded="2026-03-03T09:00:00+00:00"),
    ]
    fake.log_failed = (VEST,)
    await logged_in(browser)
    page = await browser.get("/innbygger/tilgangslogg")
    assert page.status_code == 200
    html = page.text
    assert '<a href="/innbygger/tilgangslogg" aria-current="page">' in html
    visits = visit_items(html)
    assert len(visits) == 2, visits
    later, first = visits
    for text in (
        "02.03.2026 kl. 14.05 til 02.03.2026 kl. 14.20",
        "Ane Aasen",
        "Lege",
        "Oslo universitetssykehus HF",
        "Medisinsk klinikk",
        "Behandling – Spesialisthelsetjeneste",
        "Helse Sør-Øst, Helse Vest",
        "<li>Epikrise – astma</li>",
        "Nødtilgang",
        "Grunnlag: akutt behov for helsehjelp.",
        "Årsak: pasienten var bevisstløs.",
        "Dokumenter du hadde sperret, ble vist.",
    ):
        assert text in first, text
    assert "Ingen dokumenter åpnet" in later and "Nødtilgang" not in later
    assert "03.03.2026 kl. 10.00</dd>" in later  # one moment, not «10.00 til 10.00»
    assert "1 besøk var nødtilgang." in html and "2 besøk, nyeste først." in html
    assert "Helse Vest svarte ikke i tide. Loggen kan mangle oppslag derfra." in html
    assert "Loggen er ufullstendig" in html
    assert HPR_DOCTOR not in html
    (call,) = fake.hub_calls("/fhir/AuditEvent")
    assert call.url.params["patient.identifier"].endswith(f"|{PARENT}")


async def test_access_log_filters_by_days_and_person(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    fake.events = [
        access_event(HSO, opened=False, emergency=False, recorded="2026-03-02T13:05:00+00:00"),
        access_event(
            HSO,
            opened=False,
            emergency=False,
            recorded="2026-03-05T08:00:00+00:00",
            who="Per Pleier",
            hpr="7654321",
        ),
    ]
    await logged_in(browser)
    whole = await browser.get("/innbygger/tilgangslogg")
    assert len(visit_items(whole.text)) == 2
    options = dict(re.findall(r'<option value="([^"]+)"[^>]*>([^<,]+)', whole.text))
    assert sorted(options.values()) == ["Ane Aasen", "Per Pleier"]
    assert HPR_DOCTOR not in "".join(options) and "7654321" not in whole.text
    per = next(ref for ref, name in options.items() if name == "Per Pleier")
    theirs = await browser.get("/innbygger/tilgangslogg", params={"person": per})
    assert [("Per Pleier" in v) for v in visit_items(theirs.text)] == [True]
    assert f'<option value="{per}" selected>' in theirs.text
    days = await browser.get(
        "/innbygger/tilgangslogg", params={"fra": "2026-03-01", "til": "2026-03-02"}
    )
    (only,) = visit_items(days.text)
    assert "Ane Aasen" in only and 'value="2026-03-02"' in days.text
    nothing = await browser.get("/innbygger/tilgangslogg", params={"fra": "2026-04-01"})
    assert (
        visit_items(nothing.text) == [] and "Ingen besøk passer til valgene dine." in nothing.text
    )
    for params, message in (
        ({"fra": "02.03.2026"}, "Skriv datoen som dag, måned og år"),
        ({"fra": "2026-02-30"}, "Skriv datoen som dag, måned og år"),
        ({"fra": "2026-03-05", "til": "2026-03-01"}, "Til-datoen kan ikke være før fra-datoen."),
        ({"person": "<script>"}, "Velg helsepersonell fra listen."),
        ({"person": "AAAAAAAAAAAAAAAAAAAAAA"}, "Velg helsepersonell fra listen."),
    ):
        bad = await browser.get("/innbygger/tilgangslogg", params=params)
        assert bad.status_code == 400, params
        assert message in bad.text and 'aria-invalid="true"' in bad.text, params
        assert "<script>" not in bad.text.split("<main", 1)[1]
        assert len(visit_items(bad.text)) == 2  # the whole log, with the message


async def test_block_a_reader_from_the_visit_row(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    fake.events = [access_event(HSO, opened=False, emergency=False)]
    await logged_in(browser)
    page = await browser.get("/innbygger/tilgangslogg")
    (visit,) = visit_items(page.text)
    form = re.search(
        r'<form method="post" action="/innbygger/tilgangslogg/sperr" class="row-action">'
        r"(.*?)</form>",
        visit,
        re.S,
    )
    assert form and 'aria-label="Sperr Ane Aasen fra å se dokumentene"' in form.group(1)
    fields = form_fields(form.group(1))
    assert set(fields) == {"csrf_token", "leser"} and HPR_DOCTOR not in fields["leser"]
    stale = await browser.post("/innbygger/tilgangslogg/sperr", data={**fields, "leser": "x" * 22})
    assert stale.status_code == 303 and stale.headers["location"] == "/innbygger/tilgangslogg"
    assert (
        "Loggen er endret siden du åpnet den."
        in (await browser.get("/innbygger/tilgangslogg")).text
    )
    assert not fake.hub_calls("/controls/practitioner-blocks", "PUT")
    page = await browser.get("/innbygger/tilgangslogg")
    fields = form_fields(visit_items(page.text)[0])
    done = await browser.post("/innbygger/tilgangslogg/sperr", data=fields)
    assert done.status_code == 303 and done.headers["location"] == "/innbygger/personvern"
    (put,) = fake.hub_calls("/controls/practitioner-blocks", "PUT")
    assert put.url.path == f"/controls/practitioner-blocks/{HPR_DOCTOR}"
    after = await browser.get("/innbygger/personvern")
    assert notice(after)[1].startswith(f"Ane Aasen (HPR {HPR_DOCTOR}) er sperret.")


async def test_access_log_page_number_in_other_digits_falls_back_to_page_one(
    browser: httpx.AsyncClient,
) -> None:
    await logged_in(browser)
    for odd in ("²", "١٢", "-1", "x"):
        page = await browser.get("/innbygger/tilgangslogg", params={"side": odd})
        assert page.status_code == 200, odd


async def test_access_log_when_no_region_answers(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    fake.log_all_failed = True
    await logged_in(browser)
    page = await browser.get("/innbygger/tilgangslogg")
    assert page.status_code == 200
    assert "Helse Sør-Øst er ikke tilgjengelig nå. Loggen mangler oppslag derfra." in page.text
    assert "Helse Vest er ikke tilgjengelig nå." in page.text


async def test_access_log_in_nynorsk_and_english(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    fake.events = [access_event(HSO, opened=True, emergency=False)]
    await logged_in(browser)
    browser.cookies.set("onerecord_lang", "nn", domain="portal.example")
    nn = await browser.get("/innbygger/tilgangslogg")
    assert '<html lang="nn">' in nn.text
    assert (
        "Kven har sett dokumenta mine" in nn.text and "Dokument du ikkje sjølv kan sjå" in nn.text
    )
    assert "Lege" in nn.text and "Frå dato" in nn.text
    browser.cookies.set("onerecord_lang", "en", domain="portal.example")
    en = await browser.get("/innbygger/tilgangslogg")
    assert "Who has seen my documents" in en.text and "2 March 2026, 14:05" in en.text
    assert "Doctor" in en.text and "1 visit, newest first." in en.text


# --- privacy --------------------------------------------------------------------------------


async def test_reservation_on_and_off(browser: httpx.AsyncClient, fake: FakeNetwork) -> None:
    await logged_in(browser)
    page = await browser.get("/innbygger/personvern")
    assert "Du er ikke reservert." in page.text
    assert "<legend>Skal helsepersonell kunne se dokumentene?</legend>" in page.text
    token = csrf_token(page)
    done = await browser.post(
        "/innbygger/sperringer/reservasjon", data={"csrf_token": token, "handling": "reserver"}
    )
    assert done.headers["location"] == "/innbygger/personvern"
    (put,) = fake.hub_calls("/controls/reservation", "PUT")
    assert "patient" not in put.url.params
    after = await browser.get("/innbygger/personvern")
    assert notice(after)[0] == "status" and "Reservasjonen gjelder nå" in notice(after)[1]
    assert "Du er reservert mot deling nå." in after.text
    await browser.post(
        "/innbygger/sperringer/reservasjon", data={"csrf_token": token, "handling": "opphev"}
    )
    assert fake.hub_calls("/controls/reservation", "DELETE")
    odd = await browser.post(
        "/innbygger/sperringer/reservasjon", data={"csrf_token": token, "handling": "kanskje"}
    )
    assert notice(await browser.get(odd.headers["location"]))[0] == "alert"


async def test_block_a_health_worker_by_hpr_number(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    await logged_in(browser)
    page = await browser.get("/innbygger/personvern")
    token = csrf_token(page)
    bad = await browser.post(
        "/innbygger/sperringer/helsepersonell",
        data={"csrf_token": token, "handling": "sperr", "hpr": "12ab"},
    )
    assert bad.status_code == 400
    assert 'role="alert">HPR-nummeret må ha 4 til 9 siffer' in bad.text
    assert 'aria-invalid="true"' in bad.text and 'value="12ab"' in bad.text
    assert not fake.hub_calls("/controls/practitioner-blocks", "PUT")
    # An HPR number of no health worker the portal knows: said so, nothing sent (defect 8).
    unknown = await browser.post(
        "/innbygger/sperringer/helsepersonell",
        data={"csrf_token": token, "handling": "sperr", "hpr": "1234567"},
    )
    assert unknown.status_code == 422
    assert 'role="alert">Finner ingen helsepersonell med HPR-nummer 1234567' in unknown.text
    assert 'aria-invalid="true"' in unknown.text and 'value="1234567"' in unknown.text
    assert not fake.hub_calls("/controls/practitioner-blocks", "PUT")
    done = await browser.post(
        "/innbygger/sperringer/helsepersonell",
        data={"csrf_token": token, "handling": "sperr", "hpr": HPR_DOCTOR},
    )
    assert done.status_code == 303
    # A block set elsewhere, of someone the portal does not know, is still listed.
    fake.blocked_practitioners[PARENT].add("1234567")
    after = await browser.get("/innbygger/personvern")
    assert notice(after)[1].startswith(f"Ane Aasen (HPR {HPR_DOCTOR}) er sperret.")
    assert "heller ikke i en nødsituasjon" in notice(after)[1]
    rows = re.findall(r"<tr>\s*<td[^>]*>([^<]*)</td>\s*<td[^>]*>(\d+)</td>", after.text)
    assert rows == [("Navn ikke kjent", "1234567"), ("Ane Aasen", HPR_DOCTOR)]
    undo = re.search(
        r'<form method="post" action="/innbygger/sperringer/helsepersonell" class="row-action">'
        r"(.*?)</form>",
        after.text,
        re.S,
    )
    assert undo
    await browser.post("/innbygger/sperringer/helsepersonell", data=form_fields(undo.group(1)))
    (delete,) = fake.hub_calls("/controls/practitioner-blocks", "DELETE")
    assert delete.url.path == "/controls/practitioner-blocks/1234567"


async def test_privacy_lists_blocked_documents_with_their_titles_and_undo(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    fake.blocked_documents[PARENT] = {"2.16.578.1.99.2", "2.16.578.1.99.9"}
    await logged_in(browser)
    page = await browser.get("/innbygger/personvern")
    assert "<caption>2 sperrede dokumenter</caption>" in page.text
    assert re.search(r"<td[^>]*>Brev fra fastlegen</td>", page.text)
    assert re.search(r"<td[^>]*>Dokument 2\.16\.578\.1\.99\.9</td>", page.text)
    fields = undo_form(page)
    assert fields["handling"] == "opphev" and fields["neste"] == "/innbygger/personvern"
    done = await browser.post("/innbygger/sperringer/dokument", data=fields)
    assert done.headers["location"] == "/innbygger/personvern"
    assert fake.hub_calls("/controls/document-blocks", "DELETE")


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        (
            "/innbygger/sperringer/dokument",
            {"unique_id": "2.16.578.1.99.1", "home_community_id": HSO, "handling": "sperr"},
        ),
        ("/innbygger/sperringer/reservasjon", {"handling": "reserver"}),
        ("/innbygger/sperringer/helsepersonell", {"hpr": HPR_DOCTOR, "handling": "sperr"}),
        ("/innbygger/representasjon", {"person": CHILD11}),
        ("/logg-ut", {}),
    ],
)
async def test_every_citizen_form_needs_the_sessions_csrf_token(
    browser: httpx.AsyncClient, fake: FakeNetwork, path: str, fields: dict[str, str]
) -> None:
    """A complete form without the token, or with another, changes nothing (403)."""
    await logged_in(browser)
    for token in (None, "x" * 43):
        form = fields if token is None else {**fields, "csrf_token": token}
        refused = await browser.post(path, data=form)
        assert refused.status_code == 403, (path, refused.text[-500:])
    for method in ("PUT", "DELETE"):
        assert fake.hub_calls("/controls/", method) == []
    page = await browser.get("/innbygger/dokumenter")
    assert page.status_code == 200 and "Du ser dine egne dokumenter." in page.text


async def test_the_contact_registers_language_is_the_default_until_one_is_chosen(
    browser: httpx.AsyncClient, fake: FakeNetwork
) -> None:
    fake.userinfo = parent_userinfo() | {"locale": "nn"}
    back = await log_in(browser)
    assert any(v.startswith("onerecord_lang=nn;") for v in back.headers.get_list("set-cookie"))
    page = await browser.get("/innbygger/dokumenter")
    assert '<html lang="nn"' in page.text
    # A language the person chose stays theirs at the next login.
    browser.cookies.clear()
    browser.cookies.set("onerecord_lang", "en")
    again = await log_in(browser)
    assert not any("onerecord_lang" in v for v in again.headers.get_list("set-cookie"))
    page = await browser.get("/innbygger/dokumenter")
    assert '<html lang="en"' in page.text
