"""Issue 11, defect 7 through the real hub and regions: the signed emergency grant.

A token whose attestation carries `emergency_access` (scope, acute basis, end) opens exactly the
blocked entries it names, in every region: a placeholder named by its id opens, the other
blocked documents stay masked and their retrieve is refused; BTG without the grant is refused
and audited.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from onerecord.search_client import (
    FNR_SYSTEM,
    HubSession,
    fetch_token,
    practitioner_attestation,
)
from onerecord.trust.keys import SigningKey
from onerecord.trust.patient_binding import encode_salt, make_digest, new_salt
from tests.network.conftest import Network
from tests.network.test_network import attachment_url, documents, follow, search

pytestmark = [pytest.mark.slow, pytest.mark.shared_network]

KLASS = "urn:oid:2.16.578.1.12.4.1.1.9602"


@pytest.fixture(scope="module")
def patient_a(network: Network) -> str:
    return str(network.manifest["patients"]["adult"])


def session(
    network: Network,
    patient: str,
    decision: str,
    *,
    purpose: str = "TREAT",
    emergency: dict[str, Any] | None = None,
) -> HubSession:
    """A hub token for the cast doctor, with this decision_ref, purpose and grant."""

    async def run() -> HubSession:
        salt = new_salt()
        dpop = SigningKey.generate(kid="override")
        attestation = practitioner_attestation(
            network.staff(), patient_digest=make_digest(patient, salt), decision_ref=decision
        )
        attestation["care_relationship"]["purpose_of_use"]["code"] = purpose
        if emergency is not None:
            attestation["emergency_access"] = emergency
        async with httpx.AsyncClient(timeout=30) as http:
            token = await fetch_token(
                http,
                sts_url=network.manifest["sts"]["issuer"],
                client_id=network.manifest["client"]["client_id"],
                client_key=network.client_key,
                dpop_key=dpop,
                subject=network.staff().nin,
                audience=network.manifest["hub"].get("audience", "onerecord:hub"),
                attestation=attestation,
            )
        return HubSession(token, dpop, patient, encode_salt(salt))

    return asyncio.run(run())


def grant(*, documents: tuple[str, ...] = (), classes: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "access_basis": "AKUTT",
        "reason_category": "unconscious",
        "until": int(time.time()) + 600,
        "documents": list(documents),
        "classes": [{"code": c, "system": KLASS} for c in classes],
    }


def test_a_grant_opens_the_named_placeholder_only(network: Network, patient_a: str) -> None:
    decision = f"override-{uuid.uuid4().hex[:12]}"
    plain = session(network, patient_a, decision)
    answer, _ = search(network, plain, patient_a, _count="200")
    assert answer.status_code == 200, answer.text
    placeholders = [d["id"] for d in documents(answer.json()) if d["id"].startswith("masked-")]
    assert len(placeholders) >= 2, "the cast's adult has a blocked epikrise in several regions"
    # The ids are stable within one access decision, so the portal can name one.
    again, _ = search(network, plain, patient_a, _count="200")
    assert placeholders[0] in {d["id"] for d in documents(again.json())}

    btg = session(
        network, patient_a, decision, purpose="BTG", emergency=grant(documents=(placeholders[0],))
    )
    opened, _ = search(network, btg, patient_a, _count="200")
    assert opened.status_code == 200, opened.text
    assert int(opened.headers["x-onerecord-masked-count"]) == len(placeholders) - 1
    ids = {d["id"] for d in documents(opened.json())}
    assert placeholders[0] not in ids and set(placeholders[1:]) <= ids

    # Every blocked document (as the patient's consent would list them) can be named; with the
    # grant only the one in scope is returned by its region, the others are refused.
    consent = session(network, patient_a, decision)
    url = f"{network.hub_fhir}/DocumentReference"
    headers = {**consent.headers("GET", url), "nhn-access-basis": "FORHOYET_SAMTYKKE"}
    query = {"patient.identifier": f"{FNR_SYSTEM}|{patient_a}", "_count": "200"}
    everything = httpx.get(url, params=query, headers=headers, timeout=10).json()
    blocked_urls = [
        attachment_url(d)
        for d in documents(everything)
        if any(c.get("code") == "NORS" for s in d.get("securityLabel", []) for c in s["coding"])
    ]
    assert len(blocked_urls) == len(placeholders)
    answers = [follow(u, btg).status_code for u in blocked_urls if u]
    assert answers.count(200) == 1, answers
    assert all(code in (403, 404) for code in answers if code != 200), answers


def test_btg_without_the_acute_grant_is_refused(network: Network, patient_a: str) -> None:
    bare = session(network, patient_a, f"override-{uuid.uuid4().hex[:12]}", purpose="BTG")
    refused, _ = search(network, bare, patient_a)
    assert refused.status_code == 403, refused.text
    assert "emergency-basis-required" in refused.text
