"""The hub as a resource server: DPoP-bound tokens in, hub assertions out, every access audited."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from onerecord.audit import (
    AuditAction,
    AuditOutcome,
    MemoryAuditSink,
    SqlAuditSink,
    create_audit_tables,
    make_audit_engine,
)
from onerecord.hub.app import create_hub_app
from onerecord.hub.client import FakeRegionClient, RegionResponse
from onerecord.hub.directory import RegionDirectory
from onerecord.hub.security import HubSecurity, load_hub_key
from onerecord.hub.settings import HubSettings
from onerecord.trust.access_token import AuthSettings
from onerecord.trust.assertion import HUB_ASSERTION_HEADER, verify_hub_assertion
from onerecord.trust.errors import DevelopmentKeyRefused
from onerecord.trust.keys import SigningKey, StaticJwks
from onerecord.trust.replay import MemoryReplayCache
from tests.hub.conftest import HCID_HSO, HCID_VEST, make_docref, make_region, patient_asked
from tests.hub.tokens import HUB_AUDIENCE, ISSUER, ApiCaller
from tests.sts.fakes import CHILD_8, DOCTOR, PARENT

pytestmark = pytest.mark.anyio
BASE = "http://hub.test"
PATIENT_A = PARENT
PATIENT_B = CHILD_8


def _searchset(*resources: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r} for r in resources],
        }
    )


class Recorder:
    """Fake regions: HSO answers one document, Vest refuses connections."""

    def __init__(self) -> None:
        self.client = FakeRegionClient()
        self.headers: list[dict[str, str]] = []

        async def hso(url: str, headers: Mapping[str, str]) -> RegionResponse:
            self.headers.append(dict(headers))
            doc = make_docref("2.25.11", hcid=HCID_HSO, patient=patient_asked(url))
            return RegionResponse(200, {}, _searchset(doc))

        self.client.route("http://region1.test/fhir", hso)


@pytest.fixture
def sts_key() -> SigningKey:
    return SigningKey.generate(kid="sts-test")


@pytest.fixture
def hub_key() -> SigningKey:
    return SigningKey.generate(kid="hub-test")


def _security(sts_key: SigningKey, hub_key: SigningKey) -> HubSecurity:
    return HubSecurity(
        auth=AuthSettings(issuer=ISSUER, audience=HUB_AUDIENCE),
        keys=StaticJwks([sts_key]),
        replay=MemoryReplayCache(),
        signing_key=hub_key,
        assertion_issuer=BASE,
        public_base_url=BASE,
    )


@pytest.fixture
async def hub(
    sts_key: SigningKey, hub_key: SigningKey
) -> AsyncIterator[tuple[httpx.AsyncClient, Recorder, MemoryAuditSink]]:
    regions = Recorder()
    audit = MemoryAuditSink()
    directory = RegionDirectory.from_regions(
        [make_region(HCID_HSO), make_region(HCID_VEST, base_url="http://refused.test/fhir")]
    )
    app = create_hub_app(
        HubSettings(public_base_url=BASE, retry_delay_s=0.001),
        region_client=regions.client,
        directory=directory,
        security=_security(sts_key, hub_key),
        audit=audit,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client, regions, audit


SEARCH = f"{BASE}/fhir/DocumentReference"


def _query(nin: str) -> dict[str, str]:
    return {"patient.identifier": f"urn:oid:2.16.578.1.12.4.1.4.1|{nin}"}


async def test_no_token_is_401_outcome_with_challenge_and_audited(
    hub: tuple[httpx.AsyncClient, Recorder, MemoryAuditSink],
) -> None:
    client, regions, audit = hub
    r = await client.get(SEARCH, params=_query(PATIENT_A))
    assert r.status_code == 401
    assert r.json()["resourceType"] == "OperationOutcome"
    assert r.headers["www-authenticate"].startswith('DPoP error="invalid_request"')
    assert regions.headers == []
    (record,) = audit.records
    assert record.action is AuditAction.SEARCH
    assert record.outcome is AuditOutcome.DENIED
    assert record.patient_id == PATIENT_A


async def test_forged_token_is_401(
    hub: tuple[httpx.AsyncClient, Recorder, MemoryAuditSink],
) -> None:
    client, regions, _audit = hub
    caller = ApiCaller(SigningKey.generate(kid="sts-test"))  # same kid, other key
    token, salt = caller.practitioner_token(PATIENT_A)
    r = await client.get(
        SEARCH,
        params=_query(PATIENT_A),
        headers=caller.headers(token, SEARCH, patient=PATIENT_A, salt=salt),
    )
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert regions.headers == []


async def test_practitioner_search_sends_fresh_assertion_per_region_and_audits(
    hub: tuple[httpx.AsyncClient, Recorder, MemoryAuditSink],
    sts_key: SigningKey,
    hub_key: SigningKey,
) -> None:
    client, regions, audit = hub
    caller = ApiCaller(sts_key)
    token, salt = caller.practitioner_token(PATIENT_A)
    assert salt is not None
    for _ in range(2):
        r = await client.get(
            SEARCH,
            params=_query(PATIENT_A),
            headers={
                **caller.headers(token, SEARCH, patient=PATIENT_A, salt=salt),
                "x-correlation-id": "corr-1",
            },
        )
        assert r.status_code == 200, r.text
    assert len(regions.headers) == 2
    first, second = regions.headers
    assert "authorization" not in first and "dpop" not in first
    assert first["nhn-patient-nin"] == PATIENT_A
    assert first["onerecord-patient-salt"] == salt
    assert first[HUB_ASSERTION_HEADER] != second[HUB_ASSERTION_HEADER]
    claims = await verify_hub_assertion(
        first[HUB_ASSERTION_HEADER],
        keys=StaticJwks([hub_key]),
        issuer=BASE,
        audience=HCID_HSO,
        now=time.time(),
        replay=MemoryReplayCache(),
    )
    assert claims.pid == DOCTOR
    assert claims.raw["patient"] == {"nin": PATIENT_A, "salt": salt}
    assert claims.raw["correlation_id"] == "corr-1"
    assert claims.raw["original_iss"] == ISSUER

    record = audit.records[-1]
    assert record.outcome is AuditOutcome.SUCCESS
    assert record.practitioner is not None and record.practitioner.nin == DOCTOR
    assert record.patient_id == PATIENT_A
    assert record.returned_count == 1
    assert (HCID_HSO, "ok") in record.regions
    assert (HCID_VEST, "unavailable") in record.regions
    assert record.token_jti is not None


async def test_practitioner_cannot_search_another_patient_than_attested(
    hub: tuple[httpx.AsyncClient, Recorder, MemoryAuditSink], sts_key: SigningKey
) -> None:
    client, regions, audit = hub
    caller = ApiCaller(sts_key)
    token, salt = caller.practitioner_token(PATIENT_A)
    # Headers claim A (bound) but the query asks for B.
    r = await client.get(
        SEARCH,
        params=_query(PATIENT_B),
        headers=caller.headers(token, SEARCH, patient=PATIENT_A, salt=salt),
    )
    assert r.status_code == 403
    # Headers claim B with A's salt: the digest does not match.
    r = await client.get(
        SEARCH,
        params=_query(PATIENT_B),
        headers=caller.headers(token, SEARCH, patient=PATIENT_B, salt=salt),
    )
    assert r.status_code == 403
    assert "insufficient_scope" in r.headers["www-authenticate"]
    # B under the D- or H-number system is B all the same: refused at the door too.
    for system in ("2.16.578.1.12.4.1.4.2", "2.16.578.1.12.4.1.4.3"):
        r = await client.get(
            SEARCH,
            params={"patient.identifier": f"urn:oid:{system}|{PATIENT_B}"},
            headers=caller.headers(token, SEARCH, patient=PATIENT_A, salt=salt),
        )
        assert r.status_code == 403, (system, r.text)
    assert regions.headers == []
    assert [rec.outcome for rec in audit.records] == [AuditOutcome.DENIED] * 4


async def test_citizen_sees_self_and_represented_but_not_strangers(
    hub: tuple[httpx.AsyncClient, Recorder, MemoryAuditSink], sts_key: SigningKey
) -> None:
    client, regions, _audit = hub
    caller = ApiCaller(sts_key)
    token = caller.citizen_token(PATIENT_A, [{"nin": PATIENT_B, "relation": "parent"}])
    for nin in (PATIENT_A, PATIENT_B):
        r = await client.get(SEARCH, params=_query(nin), headers=caller.headers(token, SEARCH))
        assert r.status_code == 200, r.text
    stranger = DOCTOR
    r = await client.get(SEARCH, params=_query(stranger), headers=caller.headers(token, SEARCH))
    assert r.status_code == 403
    assert len(regions.headers) == 2
    assert all("nhn-patient-nin" not in h for h in regions.headers)


async def test_replayed_dpop_proof_is_refused(
    hub: tuple[httpx.AsyncClient, Recorder, MemoryAuditSink], sts_key: SigningKey
) -> None:
    client, _regions, _audit = hub
    caller = ApiCaller(sts_key)
    token = caller.citizen_token(PATIENT_A)
    headers = caller.headers(token, SEARCH)
    assert (await client.get(SEARCH, params=_query(PATIENT_A), headers=headers)).status_code == 200
    again = await client.get(SEARCH, params=_query(PATIENT_A), headers=headers)
    assert again.status_code == 401
    assert "invalid_dpop_proof" in again.headers["www-authenticate"]


async def test_snapshot_pages_belong_to_the_token_holder(
    sts_key: SigningKey, hub_key: SigningKey
) -> None:
    client = FakeRegionClient()
    docs = [make_docref(f"2.25.{i}", hcid=HCID_HSO, patient=PATIENT_A) for i in range(5)]

    async def hso(url: str, headers: Mapping[str, str]) -> RegionResponse:
        return RegionResponse(200, {}, _searchset(*docs))

    client.route("http://region1.test/fhir", hso)
    app = create_hub_app(
        HubSettings(public_base_url=BASE),
        region_client=client,
        directory=RegionDirectory.from_regions([make_region(HCID_HSO)]),
        security=_security(sts_key, hub_key),
    )
    alice, mallory = ApiCaller(sts_key), ApiCaller(sts_key)
    a_token, m_token = alice.citizen_token(PATIENT_A), mallory.citizen_token(PATIENT_A)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        first = await http.get(
            SEARCH,
            params={**_query(PATIENT_A), "_count": "2"},
            headers=alice.headers(a_token, SEARCH),
        )
        assert first.status_code == 200
        next_url = next(lk["url"] for lk in first.json()["link"] if lk["relation"] == "next")
        # Same person, another DPoP key (a stolen snapshot id): not found.
        other = await http.get(next_url, headers=mallory.headers(m_token, next_url))
        assert other.status_code == 404
        mine = await http.get(next_url, headers=alice.headers(a_token, next_url))
        assert mine.status_code == 200
        assert len(mine.json()["entry"]) == 2


async def test_jwks_serves_the_hub_key(
    hub: tuple[httpx.AsyncClient, Recorder, MemoryAuditSink], hub_key: SigningKey
) -> None:
    client, _regions, _audit = hub
    for path in ("/jwks", "/.well-known/jwks.json"):
        keys = (await client.get(path)).json()["keys"]
        assert [k["kid"] for k in keys] == [hub_key.kid]
        assert "d" not in keys[0]


def test_development_key_is_refused_outside_dev_mode(tmp_path: Path) -> None:
    with pytest.raises(DevelopmentKeyRefused):
        load_hub_key(HubSettings(key_dir=tmp_path))
    assert list(tmp_path.iterdir()) == [], "no development key is written outside dev mode"
    key = load_hub_key(HubSettings(key_dir=tmp_path, dev_mode=True))
    assert key.is_development
    assert load_hub_key(HubSettings(key_dir=tmp_path, dev_mode=True)).kid == key.kid


def test_open_access_needs_dev_mode() -> None:
    with pytest.raises(ValueError, match="dev_mode"):
        HubSettings(dev_open_access=True)


async def test_audit_rows_are_hash_chained_in_the_hubs_database(
    tmp_path: Path, sts_key: SigningKey, hub_key: SigningKey
) -> None:
    regions = Recorder()
    settings = HubSettings(
        public_base_url=BASE, audit_db_url=f"sqlite:///{tmp_path / 'audit.db'}", hub_id="hub-1"
    )
    app = create_hub_app(
        settings,
        region_client=regions.client,
        directory=RegionDirectory.from_regions([make_region(HCID_HSO)]),
        security=_security(sts_key, hub_key),
    )
    caller = ApiCaller(sts_key)
    token = caller.citizen_token(PATIENT_A)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            for _ in range(3):
                r = await http.get(
                    SEARCH, params=_query(PATIENT_A), headers=caller.headers(token, SEARCH)
                )
                assert r.status_code == 200
            assert (await http.get(SEARCH, params=_query(PATIENT_A))).status_code == 401
    engine = make_audit_engine(settings.audit_db_url or "")
    try:
        await create_audit_tables(engine)
        sink = SqlAuditSink(engine, "hub-1")
        result = await sink.verify()
        assert result.ok and result.checked == 4, result
        records = await sink.records([PATIENT_A])
        assert [r.outcome for r in records] == [AuditOutcome.SUCCESS] * 3 + [AuditOutcome.DENIED]
        assert all(r.citizen is not None and r.citizen.nin == PATIENT_A for r in records[:3])
    finally:
        await engine.dispose()
