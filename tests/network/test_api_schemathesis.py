"""Schemathesis against the OpenAPI document of every service of a running network: zero 5xx.

The demo network runs as processes (token service, hub, four regions, the portals). Each
service's own `/openapi.json` is read from the running server, and every operation in it gets
generated requests — valid ones and, in schemathesis' negative mode, ones that break the schema
(wrong types, missing and extra parameters, odd strings) — sent over real HTTP with real
credentials: the hub and a region with a health worker's DPoP-bound token (a fresh proof per
request), the portals with a logged-in session cookie, the token service as anyone reaches it
and once more with a token for its patient lookup (PDQm ITI-78, a known patient among the
queries).
Every answer must be below 500. Bounded: a few examples per operation and mode, a few minutes
in all (docs/testing.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from onerecord.search_client import HubSession, patient_identifier, practitioner_session
from tests.network.conftest import Network
from tests.portals.test_portal_network import Browser, _open_overview

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 12
"""Per operation, positive and negative generation together; the run stays within minutes."""

AuthHeaders = Callable[[str, str], dict[str, str]]


def _no_auth(_method: str, _url: str) -> dict[str, str]:
    return {}


def _fuzz_service(
    base: str,
    auth: AuthHeaders,
    *,
    cookies: dict[str, str] | None = None,
    fixed_query: dict[str, str] | None = None,
) -> list[str]:
    """Send generated requests to every operation of `base`'s OpenAPI; return each 5xx seen."""
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    session = requests.Session()
    if cookies:
        session.cookies.update(cookies)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, f"{base}/openapi.json names no operation"
    for operation in operations:
        modes = [
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        ]
        if fixed_query and any(p.name in fixed_query for p in operation.query):
            # The patient asked for is real, so the parsers behind the identity check run too.
            modes += [
                operation.as_strategy(GenerationMode.POSITIVE, query=fixed_query),
                operation.as_strategy(GenerationMode.NEGATIVE, query=fixed_query),
            ]
        cases = st.one_of(*modes)

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            phases=(Phase.explicit, Phase.generate),
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases)
        def send(case: Any) -> None:
            url = f"{base}{case.formatted_path}"
            response = case.call(
                base_url=base,
                session=session,
                headers=auth(case.method.upper(), url),
                timeout=15,
                allow_redirects=False,
            )
            if response.status_code >= 500:
                failures.append(
                    f"{response.status_code} {case.method} {case.formatted_path} "
                    f"query={case.query!r} headers={case.headers!r}: {response.text[:300]!r}"
                )

        send()
    return failures


@pytest.fixture(scope="module")
def practitioner_headers(network: Network) -> AuthHeaders:
    session = network.practitioner(str(network.manifest["patients"]["adult"]))
    return session.headers


@pytest.fixture(scope="module")
def source_headers(network: Network) -> AuthHeaders:
    session = network.practitioner_at_source(str(network.manifest["patients"]["adult"]))
    return session.headers


@pytest.fixture(scope="module")
def portal_cookies(network: Network) -> Iterator[dict[str, str]]:
    """A doctor logged in at the portal with a workplace, a patient and a basis chosen."""
    browser = Browser(str(network.manifest["portal"]["url"]))
    try:
        _open_overview(network, browser)
        yield dict(browser.http.cookies.items())
    finally:
        browser.http.close()


def _patient_query(network: Network) -> dict[str, str]:
    return {"patient.identifier": patient_identifier(str(network.manifest["patients"]["adult"]))}


def test_hub_answers_no_generated_request_with_5xx(
    network: Network, practitioner_headers: AuthHeaders
) -> None:
    hub = network.hub_fhir.rsplit("/fhir", 1)[0]
    assert _fuzz_service(hub, practitioner_headers, fixed_query=_patient_query(network)) == []


def test_region_answers_no_generated_request_with_5xx(
    network: Network, source_headers: AuthHeaders
) -> None:
    region = network.region_fhir(0).rsplit("/fhir", 1)[0]
    assert _fuzz_service(region, source_headers, fixed_query=_patient_query(network)) == []


def test_token_service_answers_no_generated_request_with_5xx(network: Network) -> None:
    sts = str(network.manifest["sts"]["issuer"]).rstrip("/")
    assert _fuzz_service(sts, _no_auth) == []


@pytest.fixture(scope="module")
def register_headers(network: Network) -> AuthHeaders:
    """A doctor's token for the patient lookup on the STS, bound to the cast's adult."""
    patient = str(network.manifest["patients"]["adult"])

    async def run() -> HubSession:
        async with httpx.AsyncClient(timeout=30) as http:
            return await practitioner_session(
                http,
                sts_url=network.manifest["sts"]["issuer"],
                client_id=network.manifest["client"]["client_id"],
                client_key=network.client_key,
                staff=network.staff(),
                patient=patient,
                audience=network.manifest["register"]["audience"],
            )

    return asyncio.run(run()).headers


def test_patient_lookup_answers_no_generated_request_with_5xx(
    network: Network, register_headers: AuthHeaders
) -> None:
    """The PDQm lookup on the STS, with a real token and a known patient among the queries."""
    sts = str(network.manifest["sts"]["issuer"]).rstrip("/")
    adult = str(network.manifest["patients"]["adult"])
    query = {"identifier": f"urn:oid:2.16.578.1.12.4.1.4.1|{adult}"}
    assert _fuzz_service(sts, register_headers, fixed_query=query) == []


def test_portals_answer_no_generated_request_with_5xx(
    network: Network, portal_cookies: dict[str, str]
) -> None:
    portal = str(network.manifest["portal"]["url"]).rstrip("/")
    assert _fuzz_service(portal, _no_auth, cookies=portal_cookies) == []
