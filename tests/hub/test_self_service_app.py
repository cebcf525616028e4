"""The citizen's self-service through the hub's HTTP face, against fake regions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx
import orjson
import pytest

from onerecord.audit import (
    AuditAction,
    AuditOutcome,
    CitizenLogEntry,
    MemoryAuditSink,
    make_audit_engine,
)
from onerecord.domain import DocumentUniqueId, NationalIdentityNumber
from onerecord.hub.app import create_hub_app
from onerecord.hub.client import FakeRegionClient, RegionResponse
from onerecord.hub.directory import Region, RegionDirectory
from onerecord.hub.outbox import OutboxWorker
from onerecord.hub.outbox_db import SqlOutbox, create_outbox_table
from onerecord.hub.security import HubSecurity
from onerecord.hub.self_service import EXT_AUDIT_HOME_COMMUNITY_ID
from onerecord.hub.settings import HubSettings
from onerecord.mhd import Issue
from onerecord.search_client import (
    HubSession,
    hub_access_log,
    hub_change_control,
    hub_controls,
    refusal_reasons,
)
from onerecord.source.self_service import access_log_bundle, controls_json
from onerecord.trust.access_token import AuthSettings
from onerecord.trust.assertion import HUB_ASSERTION_HEADER, verify_hub_assertion
from onerecord.trust.keys import SigningKey, StaticJwks
from onerecord.trust.policy import PatientControls
from onerecord.trust.replay import MemoryReplayCache
from tests.conftest import Database
from tests.hub.conftest import HCID_HSO, HCID_MIDT, HCID_NORD, HCID_VEST, make_region
from tests.hub.tokens import HUB_AUDIENCE, ISSUER, ApiCaller
from tests.sts.fakes import CHILD_8, DOCTOR, PARENT

pytestmark = pytest.mark.anyio
BASE = "http://hub.test"
FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
LOG = f"{BASE}/fhir/AuditEvent"
CONTROLS = f"{BASE}/controls"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
REGIONS = [make_region(h) for h in (HCID_HSO, HCID_VEST, HCID_MIDT)]
HSO, VEST, MIDT = REGIONS


def _entry(minutes: int, who: str) -> CitizenLogEntry:
    return CitizenLogEntry(
        time=T0 + timedelta(minutes=minutes),
        who_name=who,
        organisation="Sykehuset",
        department=None,
        healthcare_service=None,
        purpose="Behandling",
        action="search",
        documents_opened=False,
        emergency=False,
    )


@dataclass
class FakeSource:
    """One region's self-service as a source answers it; the caller is read from the assertion."""

    region: Region
    hub_key: SigningKey
    log: list[CitizenLogEntry] = field(default_factory=list)
    refuse: frozenset[str] = frozenset()
    """Patients this region refuses (403), as a source does for, say, a 13-year-old's parent."""
    reason: str | None = None
    """The denial-reason code its refusals carry (None: none, as an older source)."""
    status: int | None = None
    """Answer every call with this HTTP status instead."""
    hang: bool = False
    controls: dict[str, PatientControls] = field(default_factory=dict)
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    async def _caller(self, headers: Mapping[str, str]) -> str:
        claims = await verify_hub_assertion(
            headers[HUB_ASSERTION_HEADER],
            keys=StaticJwks([self.hub_key]),
            issuer=BASE,
            audience=self.region.hcid,
            now=time.time(),
            replay=MemoryReplayCache(),
        )
        assert claims.pid is not None
        return claims.pid

    async def handle(self, method: str, url: str, headers: Mapping[str, str]) -> RegionResponse:
        self.seen.append((method, url, dict(headers)))
        if self.hang:
            await asyncio.sleep(30)
        if self.status is not None:
            return RegionResponse(self.status, {}, b'{"resourceType":"OperationOutcome"}')
        caller = await self._caller(headers)
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path.endswith("/fhir/AuditEvent"):
            patient = query["patient.identifier"].rpartition("|")[2]
        else:
            patient = query.get("patient", caller)
        if patient in self.refuse:
            issue = Issue(code="forbidden", diagnostics="not allowed", reason=self.reason)
            outcome = {"resourceType": "OperationOutcome", "issue": [issue.render()]}
            return RegionResponse(403, {}, orjson.dumps(outcome))
        if parts.path.endswith("/fhir/AuditEvent"):
            return RegionResponse(200, {}, orjson.dumps(access_log_bundle(self.log, self_url=url)))
        nin = NationalIdentityNumber(patient)
        now = self.controls.get(patient, PatientControls(nin))
        segments = parts.path.split("/controls", 1)[1].strip("/").split("/")
        if method != "GET":
            on = method == "PUT"
            if segments == ["reservation"]:
                now = PatientControls(
                    nin, T0 if on else None, now.blocked_documents, now.blocked_practitioners
                )
            elif segments[0] == "document-blocks":
                doc = DocumentUniqueId(unquote(segments[1]))
                docs = now.blocked_documents | {doc} if on else now.blocked_documents - {doc}
                now = PatientControls(nin, now.reserved_since, docs, now.blocked_practitioners)
            else:
                hpr = segments[1]
                hprs = (
                    now.blocked_practitioners | {hpr} if on else now.blocked_practitioners - {hpr}
                )
                now = PatientControls(nin, now.reserved_since, now.blocked_documents, hprs)
            self.controls[patient] = now
        return RegionResponse(200, {}, orjson.dumps(controls_json(now)))


@dataclass
class Hub:
    http: httpx.AsyncClient
    sources: dict[str, FakeSource]
    audit: MemoryAuditSink
    caller: ApiCaller
    worker: OutboxWorker


def _security(sts_key: SigningKey, hub_key: SigningKey) -> HubSecurity:
    return HubSecurity(
        auth=AuthSettings(issuer=ISSUER, audience=HUB_AUDIENCE),
        keys=StaticJwks([sts_key]),
        replay=MemoryReplayCache(),
        signing_key=hub_key,
        assertion_issuer=BASE,
        public_base_url=BASE,
    )


async def _hub(
    sources: list[FakeSource], sts_key: SigningKey, hub_key: SigningKey, **settings: Any
) -> AsyncIterator[Hub]:
    client = FakeRegionClient()
    for source in sources:
        root = source.region.base_url.removesuffix("/fhir")

        async def get(url: str, headers: Mapping[str, str], s: FakeSource = source) -> Any:
            return await s.handle("GET", url, headers)

        client.route(root, get)
        client.route_send(root, source.handle)
    directory = RegionDirectory.from_regions([s.region for s in sources])
    audit = MemoryAuditSink()
    app = create_hub_app(
        HubSettings(public_base_url=BASE, retry_delay_s=0.001, **settings),
        region_client=client,
        directory=directory,
        security=_security(sts_key, hub_key),
        audit=audit,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        sources_by_id = {s.region.hcid: s for s in sources}
        try:
            yield Hub(http, sources_by_id, audit, ApiCaller(sts_key), app.state.outbox_worker)
        finally:
            outbox = app.state.citizens.outbox
            if isinstance(outbox, SqlOutbox):  # the lifespan that would dispose it is not run
                await outbox.engine.dispose()


@pytest.fixture
def sts_key() -> SigningKey:
    return SigningKey.generate(kid="sts-test")


@pytest.fixture
def hub_key() -> SigningKey:
    return SigningKey.generate(kid="hub-test")


@pytest.fixture
async def hub(sts_key: SigningKey, hub_key: SigningKey) -> AsyncIterator[Hub]:
    sources = [
        FakeSource(HSO, hub_key, log=[_entry(1, "Kari Lege"), _entry(30, "Per Sykepleier")]),
        FakeSource(VEST, hub_key, log=[_entry(10, "Ola Fastlege")]),
        FakeSource(MIDT, hub_key),
    ]
    async for hub in _hub(sources, sts_key, hub_key):
        yield hub


def _citizen(hub: Hub, nin: str = PARENT, represents: tuple[str, ...] = (CHILD_8,)) -> str:
    return hub.caller.citizen_token(nin, [{"nin": r, "relation": "parent"} for r in represents])


async def _get(hub: Hub, url: str, token: str, **params: str) -> httpx.Response:
    return await hub.http.get(url, params=params, headers=hub.caller.headers(token, url))


async def _send(hub: Hub, method: str, url: str, token: str, **params: str) -> httpx.Response:
    headers = hub.caller.headers(token, url, method=method)
    return await hub.http.request(method, url, params=params, headers=headers)


def _tag(event: dict[str, Any]) -> str:
    (ext,) = [e for e in event["extension"] if e["url"] == EXT_AUDIT_HOME_COMMUNITY_ID]
    return str(ext["valueString"])


# --- access log ------------------------------------------------------------------------------


async def test_access_log_merges_every_region_newest_first_and_is_audited(hub: Hub) -> None:
    token = _citizen(hub)
    r = await _get(hub, LOG, token, **{"patient.identifier": f"{FNR}|{PARENT}"})
    assert r.status_code == 200, r.text
    bundle = r.json()
    events = [e["resource"] for e in bundle["entry"]]
    assert [e["agent"][0]["who"]["display"] for e in events] == [
        "Per Sykepleier",
        "Ola Fastlege",
        "Kari Lege",
    ]
    assert [_tag(e) for e in events] == [HCID_HSO, HCID_VEST, HCID_HSO]
    assert bundle["total"] == 3
    # Each region got the citizen as a hub assertion, never the caller's own token.
    for source in hub.sources.values():
        ((method, url, headers),) = source.seen
        assert method == "GET" and url.startswith(f"{source.region.base_url}/AuditEvent?")
        assert "authorization" not in headers and HUB_ASSERTION_HEADER in headers
    (record,) = hub.audit.records
    assert record.action is AuditAction.ACCESS_LOG_READ
    assert record.outcome is AuditOutcome.SUCCESS
    assert record.citizen is not None and record.citizen.nin == PARENT
    assert record.patient_id == PARENT and record.returned_count == 3
    assert set(record.regions) == {(h, "ok") for h in (HCID_HSO, HCID_VEST, HCID_MIDT)}


async def test_access_log_names_the_region_that_failed(
    sts_key: SigningKey, hub_key: SigningKey
) -> None:
    sources = [
        FakeSource(HSO, hub_key, log=[_entry(1, "Kari Lege")]),
        FakeSource(VEST, hub_key, status=500),
    ]
    async for hub in _hub(sources, sts_key, hub_key):
        r = await _get(hub, LOG, _citizen(hub), **{"patient.identifier": f"{FNR}|{PARENT}"})
        assert r.status_code == 200
        *matches, outcome = r.json()["entry"]
        assert len(matches) == 1 and outcome["search"]["mode"] == "outcome"
        (issue,) = outcome["resource"]["issue"]
        assert issue["location"] == [HCID_VEST] and issue["code"] == "exception"
        assert (HCID_VEST, "error") in hub.audit.records[-1].regions


async def test_access_log_of_a_represented_child_is_forwarded_for_that_child(hub: Hub) -> None:
    r = await _get(hub, LOG, _citizen(hub), **{"patient.identifier": CHILD_8})
    assert r.status_code == 200, r.text
    url = hub.sources[HCID_HSO].seen[0][1]
    assert parse_qs(urlsplit(url).query)["patient.identifier"] == [f"{FNR}|{CHILD_8}"]
    assert hub.audit.records[-1].patient_id == CHILD_8


async def test_every_region_refusing_is_403(sts_key: SigningKey, hub_key: SigningKey) -> None:
    sources = [FakeSource(r, hub_key, refuse=frozenset({CHILD_8})) for r in REGIONS]
    async for hub in _hub(sources, sts_key, hub_key):
        r = await _get(hub, LOG, _citizen(hub), **{"patient.identifier": CHILD_8})
        assert r.status_code == 403
        assert r.json()["resourceType"] == "OperationOutcome"
        assert hub.audit.records[-1].outcome is AuditOutcome.DENIED
        assert set(hub.audit.records[-1].regions) == {(s.hcid, "denied") for s in REGIONS}
        r = await _get(hub, CONTROLS, _citizen(hub), patient=CHILD_8)
        assert r.status_code == 403
        r = await _send(hub, "PUT", f"{CONTROLS}/reservation", _citizen(hub), patient=CHILD_8)
        assert r.status_code == 403
        assert r.json()["resourceType"] == "OperationOutcome"
        assert hub.audit.records[-1].action is AuditAction.CONTROL_CHANGE
        assert hub.audit.records[-1].outcome is AuditOutcome.DENIED


async def test_a_controls_refusal_passes_on_each_regions_reason(
    sts_key: SigningKey, hub_key: SigningKey
) -> None:
    # The citizen's portal says why in words (issue 11, defect 8): the child has turned 12.
    sources = [
        FakeSource(r, hub_key, refuse=frozenset({CHILD_8}), reason="child-too-old") for r in REGIONS
    ]
    async for hub in _hub(sources, sts_key, hub_key):
        read = await _get(hub, CONTROLS, _citizen(hub), patient=CHILD_8)
        change = await _send(hub, "PUT", f"{CONTROLS}/reservation", _citizen(hub), patient=CHILD_8)
        for answer in (read, change):
            assert answer.status_code == 403
            assert refusal_reasons(answer.json()) == ["child-too-old"] * len(REGIONS)


async def test_every_region_timing_out_is_504(sts_key: SigningKey, hub_key: SigningKey) -> None:
    sources = [FakeSource(r, hub_key, hang=True) for r in REGIONS[:2]]
    short = {
        "per_region_timeout_s": 0.05,
        "aggregation_deadline_s": 0.1,
        "request_deadline_s": 2.0,
    }
    async for hub in _hub(sources, sts_key, hub_key, **short):
        r = await _get(hub, LOG, _citizen(hub), **{"patient.identifier": PARENT})
        assert r.status_code == 504
        assert {i["code"] for i in r.json()["issue"]} == {"timeout"}
        r = await _get(hub, CONTROLS, _citizen(hub))
        assert r.status_code == 504


async def test_without_a_token_nothing_is_asked_and_the_refusal_is_audited(hub: Hub) -> None:
    r = await hub.http.get(LOG, params={"patient.identifier": PARENT})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("DPoP")
    r = await hub.http.put(f"{CONTROLS}/reservation")
    assert r.status_code == 401
    assert all(not s.seen for s in hub.sources.values())
    assert [(x.action, x.outcome) for x in hub.audit.records] == [
        (AuditAction.ACCESS_LOG_READ, AuditOutcome.DENIED),
        (AuditAction.CONTROL_CHANGE, AuditOutcome.DENIED),
    ]
    assert hub.audit.records[0].patient_id == PARENT


@pytest.mark.parametrize(
    ("params", "expression"),
    [
        ({"patient.identifier": f"{FNR}|12345678901"}, "patient.identifier"),
        ({"patient.identifier": "urn:oid:1.2.3|" + PARENT}, "patient.identifier"),
        ({}, "patient.identifier"),
    ],
)
async def test_bad_patient_in_access_log_is_400(
    hub: Hub, params: dict[str, str], expression: str
) -> None:
    r = await _get(hub, LOG, _citizen(hub), **params)
    assert r.status_code == 400
    (issue,) = r.json()["issue"]
    assert issue["expression"] == [expression]
    assert all(not s.seen for s in hub.sources.values())
    assert hub.audit.records[-1].outcome is AuditOutcome.ERROR


async def test_stranger_and_health_personnel_are_stopped_at_the_door(hub: Hub) -> None:
    r = await _get(hub, LOG, _citizen(hub), **{"patient.identifier": DOCTOR})
    assert r.status_code == 403
    r = await _get(hub, CONTROLS, _citizen(hub), patient=DOCTOR)
    assert r.status_code == 403
    token, salt = hub.caller.practitioner_token(PARENT)
    headers = hub.caller.headers(token, CONTROLS, patient=PARENT, salt=salt)
    r = await hub.http.get(CONTROLS, headers=headers)
    assert r.status_code == 403
    assert r.json()["resourceType"] == "OperationOutcome"
    assert all(not s.seen for s in hub.sources.values())
    assert [x.outcome for x in hub.audit.records] == [AuditOutcome.DENIED] * 3


# --- controls --------------------------------------------------------------------------------


async def test_controls_are_read_from_every_region_and_merged(hub: Hub) -> None:
    hub.sources[HCID_VEST].controls[PARENT] = PatientControls(
        NationalIdentityNumber(PARENT),
        reserved_since=T0,
        blocked_documents=frozenset({DocumentUniqueId("2.25.9")}),
    )
    r = await _get(hub, CONTROLS, _citizen(hub))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["patient"] == PARENT and body["reserved"] is True
    assert body["blockedDocuments"] == ["2.25.9"] and body["blockedPractitioners"] == []
    assert [(x["homeCommunityId"], x["status"]) for x in body["regions"]] == [
        (HCID_HSO, "ok"),
        (HCID_VEST, "ok"),
        (HCID_MIDT, "ok"),
    ]
    # Without ?patient= the regions are asked without it too: the citizen themselves.
    assert all(urlsplit(s.seen[0][1]).query == "" for s in hub.sources.values())
    record = hub.audit.records[-1]
    assert record.action is AuditAction.ACCESS_LOG_READ and record.query == "controls"
    assert record.patient_id == PARENT


async def test_control_change_reaches_every_region_and_a_failure_is_pending(
    sts_key: SigningKey, hub_key: SigningKey
) -> None:
    sources = [FakeSource(HSO, hub_key), FakeSource(VEST, hub_key), FakeSource(MIDT, hub_key)]
    async for hub in _hub(sources, sts_key, hub_key):
        token = _citizen(hub)
        url = f"{CONTROLS}/practitioner-blocks/1234567"
        r = await _send(hub, "PUT", url, token, patient=CHILD_8)
        assert r.status_code == 200, r.text
        assert r.json()["patient"] == CHILD_8
        assert r.json()["blockedPractitioners"] == ["1234567"]
        for source in sources:
            (method, sent, _headers) = source.seen[-1]
            assert method == "PUT"
            root = source.region.base_url.removesuffix("/fhir")
            assert sent == f"{root}/controls/practitioner-blocks/1234567?patient={CHILD_8}"
        record = hub.audit.records[-1]
        assert record.action is AuditAction.CONTROL_CHANGE
        assert record.query == "practitioner-blocks:set:1234567"
        assert record.patient_id == CHILD_8

        # Midt stops answering: the change is in place in two regions, and the body says so;
        # the hub keeps it for Midt and answers 202 (issue 11 defect 5).
        sources[2].status = 503
        r = await _send(hub, "DELETE", url, token, patient=CHILD_8)
        assert r.status_code == 202
        body = r.json()
        assert [(p["name"], p["on"], p["state"], p["target"]) for p in body["pending"]] == [
            (MIDT.name, False, "pending", "1234567")
        ]
        assert body["blockedPractitioners"] == []
        states = {x["homeCommunityId"]: (x["status"], x["detail"]) for x in body["regions"]}
        assert states[HCID_HSO] == ("ok", None) and states[HCID_VEST] == ("ok", None)
        assert states[HCID_MIDT][0] == "error" and "503" in states[HCID_MIDT][1]
        assert set(hub.audit.records[-1].regions) == {
            (HCID_HSO, "ok"),
            (HCID_VEST, "ok"),
            (HCID_MIDT, "error"),
        }
        # Read back: still pending for Midt until it confirms.
        r = await _get(hub, CONTROLS, token, patient=CHILD_8)
        assert [p["homeCommunityId"] for p in r.json()["pending"]] == [HCID_MIDT]


async def test_a_pending_change_is_resent_in_order_as_the_citizen_when_the_region_returns(
    sts_key: SigningKey, hub_key: SigningKey
) -> None:
    """Block, then unblock, while Midt is down: Midt later gets only the unblock, asserted as
    the citizen with `deferred_since`, and nothing is pending after (issue 11 defect 5)."""
    sources = [FakeSource(HSO, hub_key), FakeSource(VEST, hub_key), FakeSource(MIDT, hub_key)]
    async for hub in _hub(sources, sts_key, hub_key, outbox_retry_base_s=0.01):
        token = _citizen(hub)
        url = f"{CONTROLS}/practitioner-blocks/1234567"
        sources[2].status = 503
        assert (await _send(hub, "PUT", url, token)).status_code == 202
        r = await _send(hub, "DELETE", url, token)
        assert r.status_code == 202
        assert [(p["on"], p["name"]) for p in r.json()["pending"]] == [(False, MIDT.name)]
        sources[2].status = None
        sources[2].seen.clear()
        await asyncio.sleep(0.05)
        assert await hub.worker.run_once() == 1
        [(method, sent, headers)] = sources[2].seen
        assert method == "DELETE" and sent.endswith("/controls/practitioner-blocks/1234567")
        claims = await verify_hub_assertion(
            headers[HUB_ASSERTION_HEADER],
            keys=StaticJwks([hub_key]),
            issuer=BASE,
            audience=MIDT.hcid,
            now=time.time(),
            replay=MemoryReplayCache(),
        )
        assert claims.pid == PARENT and isinstance(claims.raw["deferred_since"], int)
        assert sources[2].controls[PARENT].blocked_practitioners == frozenset()
        r = await _get(hub, CONTROLS, token)
        assert r.json()["pending"] == []


async def test_a_refused_retry_is_kept_as_refused_and_not_sent_again(
    sts_key: SigningKey, hub_key: SigningKey
) -> None:
    sources = [FakeSource(HSO, hub_key), FakeSource(MIDT, hub_key)]
    async for hub in _hub(sources, sts_key, hub_key, outbox_retry_base_s=0.01):
        token = _citizen(hub)
        sources[1].status = 504
        r = await _send(hub, "PUT", f"{CONTROLS}/reservation", token)
        assert r.status_code == 202
        sources[1].status = 403
        await asyncio.sleep(0.05)
        assert await hub.worker.run_once() == 0
        r = await _get(hub, CONTROLS, token)
        assert [(p["kind"], p["state"]) for p in r.json()["pending"]] == [
            ("reservation", "refused")
        ]
        sources[1].seen.clear()
        await asyncio.sleep(0.05)
        await hub.worker.run_once()
        assert sources[1].seen == []


async def test_document_block_in_one_region_only(hub: Hub) -> None:
    token = _citizen(hub)
    url = f"{CONTROLS}/document-blocks/urn:oid:2.25.77"
    r = await _send(hub, "PUT", url, token, homeCommunityId=HCID_VEST)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["blockedDocuments"] == ["2.25.77"]
    assert [x["homeCommunityId"] for x in body["regions"]] == [HCID_VEST]
    assert hub.sources[HCID_VEST].seen and not hub.sources[HCID_HSO].seen
    assert not hub.sources[HCID_MIDT].seen
    assert hub.audit.records[-1].regions == ((HCID_VEST, "ok"),)
    # Read back across all regions: blocked in Vest, and the merged list shows it.
    r = await _get(hub, CONTROLS, token)
    assert r.json()["blockedDocuments"] == ["2.25.77"]
    r = await _send(hub, "DELETE", url, token, homeCommunityId=HCID_VEST)
    assert r.status_code == 200 and r.json()["blockedDocuments"] == []


@pytest.mark.parametrize(
    ("method", "path", "params", "expression"),
    [
        ("PUT", "document-blocks/2.25.1", {"homeCommunityId": HCID_NORD}, "homeCommunityId"),
        ("PUT", "document-blocks/2.25.1", {"homeCommunityId": "vest"}, "homeCommunityId"),
        ("PUT", "reservation", {"homeCommunityId": HCID_VEST}, "homeCommunityId"),
        ("PUT", "document-blocks/not-an-oid", {}, "document-blocks"),
        ("DELETE", "practitioner-blocks/12", {}, "practitioner-blocks"),
        ("PUT", "reservation", {"patient": "123"}, "patient"),
    ],
)
async def test_bad_control_change_is_400_without_asking_a_region(
    hub: Hub, method: str, path: str, params: dict[str, str], expression: str
) -> None:
    r = await _send(hub, method, f"{CONTROLS}/{path}", _citizen(hub), **params)
    assert r.status_code == 400, r.text
    (issue,) = r.json()["issue"]
    assert issue["expression"] == [expression]
    assert all(not s.seen for s in hub.sources.values())
    assert hub.audit.records[-1].action is AuditAction.CONTROL_CHANGE


async def test_unique_id_with_an_extension_is_signed_and_sent_encoded(hub: Hub) -> None:
    """The DPoP proof names the path as sent (`%5E`), and the region gets the same uniqueId."""
    url = f"{CONTROLS}/document-blocks/{quote('2.25.78^v1', safe='')}"
    r = await _send(hub, "PUT", url, _citizen(hub))
    assert r.status_code == 200, r.text
    assert r.json()["blockedDocuments"] == ["2.25.78^v1"]
    assert hub.sources[HCID_HSO].seen[-1][1].endswith("/controls/document-blocks/2.25.78%5Ev1")


async def test_the_portals_client_helpers_speak_to_the_hub(hub: Hub) -> None:
    session = HubSession(_citizen(hub), hub.caller.dpop_key)
    r = await hub_change_control(
        hub.http,
        session,
        hub_base=BASE,
        method="PUT",
        path="document-blocks/2.25.79^x",
        patient=CHILD_8,
        home_community_id=HCID_MIDT,
    )
    assert r.status_code == 200, r.text
    assert r.json()["patient"] == CHILD_8 and r.json()["blockedDocuments"] == ["2.25.79^x"]
    r = await hub_controls(hub.http, session, hub_base=BASE, patient=CHILD_8)
    assert r.status_code == 200 and r.json()["blockedDocuments"] == ["2.25.79^x"]
    r = await hub_access_log(hub.http, session, hub_fhir=f"{BASE}/fhir", patient=PARENT)
    assert r.status_code == 200 and r.json()["total"] == 3


async def test_a_pending_change_survives_a_new_hub_on_the_same_database(
    sts_key: SigningKey, hub_key: SigningKey, database: Database
) -> None:
    """Durable: a hub accepts a change Midt cannot take, stops; a new hub process (a new app on
    the same database, SQLite or PostgreSQL) sends it when Midt is back (issue 11 defect 5)."""
    sources = [FakeSource(HSO, hub_key), FakeSource(MIDT, hub_key)]
    store = {
        "audit_db_url": database.url,
        "audit_db_schema": database.schema,
        "outbox_retry_base_s": 0.01,
    }
    engine = make_audit_engine(database.url, schema=database.schema)
    try:
        await create_outbox_table(engine)  # what the hub's start-up does (no lifespan here)
    finally:
        await engine.dispose()
    async for hub in _hub(sources, sts_key, hub_key, **store):
        sources[1].status = 503
        r = await _send(hub, "PUT", f"{CONTROLS}/practitioner-blocks/1234567", _citizen(hub))
        assert r.status_code == 202, r.text
    sources[1].status = None
    async for hub in _hub(sources, sts_key, hub_key, **store):
        await asyncio.sleep(0.05)
        assert await hub.worker.run_once() == 1
        assert sources[1].controls[PARENT].blocked_practitioners == frozenset({"1234567"})
        assert (await _get(hub, CONTROLS, _citizen(hub))).json()["pending"] == []
