"""Per-caller limits at a document source over real HTTP (issue 10 A): a direct caller over its
limit gets 429 with Retry-After while another is served; calls the hub relays are limited per
end user, not as one caller."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from onerecord.domain import NationalIdentityNumber
from onerecord.source.access import CallerContext
from onerecord.trust.access_token import AccessTokenClaims, Citizen, validate_access_token
from onerecord.trust.assertion import mint_hub_assertion
from onerecord.trust.caller_limits import CallerQuota, CallerThrottled
from onerecord.trust.keys import StaticJwks
from onerecord.trust.patient_binding import encode_salt
from tests.source.trust_harness import FNR, HCID, HUB_ISSUER, Network, Token, start_network
from tests.sts.fakes import PARENT
from tests.trust.policy_factories import access_token_claims

LIMITS = {
    "caller_rate_per_s": 0.05,
    "caller_burst": 3,
    "caller_concurrency": 0,
    "caller_via_hub_factor": 2.0,
}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with start_network(tmp_path_factory.mktemp("limits"), source_overrides=LIMITS) as network:
        yield network


def _throttled(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text[:300]
    assert int(r.headers["retry-after"]) >= 1
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "throttled"


def test_a_direct_caller_over_its_rate_gets_429_while_another_caller_is_served(
    net: Network,
) -> None:
    mallory = net.citizen_token("adult")
    alice = net.citizen_token("elderly")
    with ThreadPoolExecutor(max_workers=6) as pool:
        flood = [pool.submit(net.search, mallory, net.citizen("adult")) for _ in range(8)]
        served = [net.search(alice, net.citizen("elderly")) for _ in range(3)]
        answers = [f.result() for f in flood]
    assert [r.status_code for r in served] == [200, 200, 200]
    assert sorted(r.status_code for r in answers) == [200] * 3 + [429] * 5
    for r in answers:
        if r.status_code == 429:
            _throttled(r)


def _claims(net: Network, token: Token) -> AccessTokenClaims:
    return asyncio.run(
        validate_access_token(
            token.value,
            keys=StaticJwks([net.sts_key]),
            issuer=net.sts_url,
            audience=HCID,
            now=time.time(),
        )
    )


def _via_hub(net: Network, token: Token, claims: AccessTokenClaims) -> httpx.Response:
    """One search as the hub relays it: a fresh hub assertion for the end user of `token`."""
    assert token.salt is not None and token.patient is not None
    salt = encode_salt(token.salt)
    assertion = mint_hub_assertion(
        key=net.hub_key,
        issuer=HUB_ISSUER,
        audience=HCID,
        claims=claims,
        patient_nin=token.patient,
        patient_salt=salt,
        correlation_id="hub-limits",
        now=time.time(),
    )
    headers = {
        "onerecord-hub-assertion": assertion,
        "nhn-patient-nin": token.patient,
        "onerecord-patient-salt": salt,
    }
    return httpx.get(
        f"{net.fhir}/DocumentReference",
        params={"patient.identifier": f"{FNR}|{token.patient}"},
        headers=headers,
        timeout=30,
    )


def test_calls_the_hub_relays_are_limited_per_end_user_not_as_one_caller(net: Network) -> None:
    patient = net.citizen("adult")
    doctor = net.hcp_token(patient, staff="doctor")
    nurse = net.hcp_token(patient, staff="nurse")
    doctor_claims, nurse_claims = _claims(net, doctor), _claims(net, nurse)
    # The hub relays each user at twice the direct quota (caller_via_hub_factor 2: burst 6).
    statuses = [_via_hub(net, doctor, doctor_claims).status_code for _ in range(7)]
    assert statuses == [200] * 6 + [429]
    _throttled(_via_hub(net, doctor, doctor_claims))
    # Another user behind the same hub is not throttled by the first one's traffic.
    assert _via_hub(net, nurse, nurse_claims).status_code == 200


def _caller(principal: Citizen | None, *, via_hub: bool) -> CallerContext:
    return CallerContext(correlation_id="c", principal=principal, via_hub=via_hub)


def test_source_limits_key_by_subject_and_client_and_leave_open_access_unlimited() -> None:
    from onerecord.source.security import SourceCallerLimits

    now = [0.0]
    limits = SourceCallerLimits(
        CallerQuota(concurrency=0, rate_per_s=1.0, burst=1), via_hub_factor=2, clock=lambda: now[0]
    )

    def principal(sub: str, client: str | None) -> Citizen:
        claims = access_token_claims(sub, client)
        return Citizen(claims=claims, nin=NationalIdentityNumber(PARENT))

    limits.admit(_caller(principal("a", "ehr"), via_hub=False))
    with pytest.raises(CallerThrottled):
        limits.admit(_caller(principal("a", "ehr"), via_hub=False))
    limits.admit(_caller(principal("a", "portal"), via_hub=False))
    limits.admit(_caller(principal("b", "ehr"), via_hub=False))
    for _ in range(2):  # relayed by the hub: its own bucket, twice the size
        limits.admit(_caller(principal("a", "ehr"), via_hub=True))
    with pytest.raises(CallerThrottled):
        limits.admit(_caller(principal("a", "ehr"), via_hub=True))
    for _ in range(50):  # no verified principal (development open access): not limited
        assert limits.admit(_caller(None, via_hub=False)) is None
