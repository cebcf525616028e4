"""The emergency override in the health-personnel portal (issue 11, defect 7).

The app over an ASGI transport with the STS, the register and the hub as fakes. The fake hub
unmasks what the last token's grant names, as a region does (the regions' own enforcement:
tests/trust/test_emergency_grant.py, tests/source/test_trust_scenarios.py and the real network
in tests/portals/test_override_network.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from onerecord.portals.override_log import FileOverrideLog
from tests.portals.pages import csrf_token
from tests.portals.test_app import (
    BASIS,
    HSO,
    HUB,
    PATIENT_NIN,
    App,
    _log_in,
    running_portal,
)
from tests.portals.test_patient_header import REGISTER, RegisterFakes, _patient, _searchset

pytestmark = pytest.mark.anyio

KLASS = "urn:oid:2.16.578.1.12.4.1.1.9602"
EPIKRISE_ID = "masked-" + "1" * 32
LAB_ID = "masked-" + "2" * 32
EMAIL = "ingrid.berg.042@innbygger.example"
ACUTE = BASIS | {"access_basis": "AKUTT"}


def _grant_of(form: dict[str, str]) -> dict[str, Any] | None:
    """The emergency grant the portal put in the attestation of a token request."""
    assertion = form.get("client_assertion", "")
    claims = json.loads(_b64(assertion.split(".")[1])) if assertion.count(".") == 2 else {}
    details = claims.get("authorization_details") or []
    details = details if isinstance(details, list) else [details]
    for item in details:
        if isinstance(item, dict) and "emergency_access" in item:
            grant = item["emergency_access"]
            return grant if isinstance(grant, dict) else None
    return None


def _purpose_of(form: dict[str, str]) -> str:
    assertion = form.get("client_assertion", "")
    claims = json.loads(_b64(assertion.split(".")[1]))
    details = claims["authorization_details"]
    item = details[0] if isinstance(details, list) else details
    return str(item["care_relationship"]["purpose_of_use"]["code"])


def _b64(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _doc(title: str, ref: str, klass: str, *, masked_id: str = "") -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "date": "2024-03-05T10:00:00+01:00",
        "category": [{"coding": [{"system": KLASS, "code": klass, "display": klass}]}],
        "extension": [
            {
                "url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-HomeCommunityId",
                "valueIdentifier": {"value": HSO},
            }
        ],
        "content": [{"attachment": {"title": title, "contentType": "application/pdf"}}],
    }
    if masked_id:
        resource["id"] = masked_id
        resource["securityLabel"] = [{"coding": [{"code": "NORS"}]}]
    else:
        resource["masterIdentifier"] = {"value": f"urn:oid:1.2.{ref}"}
        resource["content"][0]["attachment"]["url"] = f"{HUB}/Binary/{ref}"
    return resource


@dataclass
class OverrideFakes(RegisterFakes):
    """A hub with two blocked documents (an epikrise, a lab report) that honours the grant."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        if str(request.url).startswith(f"{HUB}/DocumentReference"):
            self.hub_requests.append(request)
            grant = _grant_of(self.token_forms[-1]) if self.token_forms else None
            named = set(grant["documents"]) if grant else set()
            classes = {c["code"] for c in grant["classes"]} if grant else set()
            entries = [_doc("Henvisning", "t1", "I00-1")]
            for masked_id, klass, ref in ((EPIKRISE_ID, "A00-1", "t2"), (LAB_ID, "C00-1", "t3")):
                opened = masked_id in named or klass in classes
                entries.append(
                    _doc(f"Sperret {klass}", ref, klass)
                    | ({"securityLabel": [{"coding": [{"code": "NORS"}]}]} if opened else {})
                    if opened
                    else _doc("Sperret", ref, klass, masked_id=masked_id)
                )
            bundle = {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(entries),
                "entry": [{"resource": e} for e in entries],
            }
            return httpx.Response(200, json=bundle)
        if str(request.url).startswith(f"{HUB}/Binary/"):
            return httpx.Response(200, content=b"%PDF-1.4", headers={"content-type": "text/plain"})
        return super().handler(request)


@pytest.fixture
async def portal(tmp_path: Path) -> AsyncIterator[App]:
    fakes = OverrideFakes(
        answer=lambda _r: httpx.Response(
            200, json=_searchset(_patient(telecom=[{"system": "email", "value": EMAIL}]))
        )
    )
    async with running_portal(tmp_path, fakes, register_fhir=REGISTER) as app:
        yield app


async def _at_overview(portal: App, basis: dict[str, str] = ACUTE) -> httpx.Response:
    client = portal.client
    workplace = await _log_in(client)
    await client.post(
        "/helsepersonell/arbeidssted",
        data={"csrf_token": csrf_token(workplace), "workplace": "974000024:111"},
    )
    form = await client.get("/helsepersonell/pasient")
    sent = await client.post(
        "/helsepersonell/pasient",
        data={"csrf_token": csrf_token(form), "patient": PATIENT_NIN, **basis},
    )
    assert sent.status_code == 303, sent.text
    return await client.get("/helsepersonell/oversikt")


async def _override(portal: App, wanted: str, **extra: str) -> httpx.Response:
    form = await portal.client.get("/helsepersonell/nodtilgang")
    data = {
        "csrf_token": csrf_token(form),
        "scope": wanted,
        "category": "unconscious",
        "reason": "Bevisstløs pasient i akuttmottaket",
    } | extra
    return await portal.client.post("/helsepersonell/nodtilgang", data=data)


async def test_a_blocked_row_offers_the_override_for_that_document(portal: App) -> None:
    page = await _at_overview(portal)
    assert f"/helsepersonell/nodtilgang?dokument={EPIKRISE_ID}" in page.text
    asked = await portal.client.get(f"/helsepersonell/nodtilgang?dokument={EPIKRISE_ID}")
    assert asked.status_code == 200
    assert f'value="dokument:{EPIKRISE_ID}" required' in asked.text
    assert "checked" in asked.text.split(f'value="dokument:{EPIKRISE_ID}"')[1].split(">")[0]
    assert "Alle sperrede dokumenter i klassen «C00-1» (1)" in asked.text


async def test_one_document_opens_and_the_other_stays_blocked(portal: App) -> None:
    await _at_overview(portal)
    sent = await _override(portal, f"dokument:{EPIKRISE_ID}")
    assert sent.status_code == 303 and sent.headers["location"] == "/helsepersonell/oversikt"
    form = portal.fakes.token_forms[-1]
    grant = _grant_of(form)
    assert grant is not None and _purpose_of(form) == "BTG"
    assert grant["documents"] == [EPIKRISE_ID] and grant["classes"] == []
    assert grant["access_basis"] == "AKUTT" and grant["reason_category"] == "unconscious"
    assert 29 * 60 <= grant["until"] - time.time() <= 30 * 60
    page = await portal.client.get("/helsepersonell/oversikt")
    assert portal.fakes.hub_requests[-1].headers["nhn-access-basis"] == "FORHOYET_AKUTT"
    assert "Sperret A00-1" in page.text and f"dokument={LAB_ID}" in page.text
    assert f"dokument={EPIKRISE_ID}" not in page.text
    assert "Nødtilgang til ett sperret dokument (A00-1, 05.03.2024), utløper kl." in page.text
    assert "Avslutt nødtilgang" in page.text
    (entry,) = FileOverrideLog(portal.override_log).read()
    assert entry["scope"] == [f"dokument:{EPIKRISE_ID}"]
    assert entry["reason_category"] == "unconscious" and entry["until"]
    doc = await portal.client.get("/helsepersonell/dokument/t2")
    assert doc.status_code == 200
    assert "Åpnet med nødtilgang – pasienten er bevisstløs, til kl." in doc.text


async def test_a_class_opens_every_blocked_document_of_it(portal: App) -> None:
    await _at_overview(portal)
    sent = await _override(portal, f"klasse:{KLASS}|C00-1")
    assert sent.status_code == 303
    grant = _grant_of(portal.fakes.token_forms[-1])
    assert grant is not None and grant["classes"] == [{"code": "C00-1", "system": KLASS}]
    page = await portal.client.get("/helsepersonell/oversikt")
    assert "Nødtilgang til sperrede dokumenter i klassen «C00-1», utløper kl." in page.text
    assert f"dokument={EPIKRISE_ID}" in page.text  # the epikrise stays blocked


async def test_ending_drops_the_grant_and_blocks_again(portal: App) -> None:
    await _at_overview(portal)
    await _override(portal, f"dokument:{EPIKRISE_ID}")
    page = await portal.client.get("/helsepersonell/oversikt")
    ended = await portal.client.post(
        "/helsepersonell/nodtilgang/avslutt", data={"csrf_token": csrf_token(page)}
    )
    assert ended.status_code == 303
    form = portal.fakes.token_forms[-1]
    assert form["grant_type"] == "refresh_token" and _grant_of(form) is None
    assert _purpose_of(form) == "TREAT"
    page = await portal.client.get("/helsepersonell/oversikt")
    assert "Nødtilgangen er avsluttet" in page.text and "Avslutt nødtilgang" not in page.text
    assert portal.fakes.hub_requests[-1].headers["nhn-access-basis"] == "AKUTT"
    assert f"dokument={EPIKRISE_ID}" in page.text
    assert (await portal.client.get("/helsepersonell/dokument/t2")).status_code == 404


async def test_the_override_ends_by_itself_on_time(
    portal: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _at_overview(portal)
    await _override(portal, f"dokument:{EPIKRISE_ID}")
    later = time.time() + 30 * 60
    monkeypatch.setattr("onerecord.portals.hcp_routes._now_s", lambda: later)
    page = await portal.client.get("/helsepersonell/oversikt")
    assert "Nødtilgangen er utløpt" in page.text and "Avslutt nødtilgang" not in page.text
    assert _grant_of(portal.fakes.token_forms[-1]) is None
    assert f"dokument={EPIKRISE_ID}" in page.text


async def test_a_gp_with_unntak_is_not_offered_the_override(portal: App) -> None:
    page = await _at_overview(portal, BASIS | {"access_basis": "UNNTAK"})
    assert "nodtilgang" not in page.text
    asked = await portal.client.get("/helsepersonell/nodtilgang")
    assert "Nødtilgang krever akutt behov" in asked.text and 'name="scope"' not in asked.text
    grants = len(portal.fakes.token_forms)
    refused = await _override(portal, f"dokument:{EPIKRISE_ID}")
    assert refused.status_code == 403
    assert len(portal.fakes.token_forms) == grants
    assert not portal.override_log.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scope": "dokument:masked-" + "9" * 32}, "Velg hva som skal åpnes"),
        ({"scope": f"klasse:{KLASS}|I00-1"}, "Velg hva som skal åpnes"),
        ({"scope": ""}, "Velg hva som skal åpnes"),
        ({"category": "curious"}, "Velg årsaken"),
        ({"reason": "kort"}, "Begrunnelsen må ha mellom 10 og 500 tegn"),
        ({"reason": "\u200b\u00ad\ufeff\x07 " * 10}, "Begrunnelsen må ha mellom 10 og 500 tegn"),
        ({"reason": "- . - . - . - . - . -"}, "skriv minst 5 bokstaver eller tall"),
    ],
)
async def test_a_bad_request_opens_nothing(
    portal: App, change: dict[str, str], message: str
) -> None:
    await _at_overview(portal)
    grants = len(portal.fakes.token_forms)
    sent = await _override(portal, f"dokument:{EPIKRISE_ID}", **change)
    assert sent.status_code == 400 and message in sent.text
    assert "\u200b" not in sent.text
    assert len(portal.fakes.token_forms) == grants
    assert not portal.override_log.exists()


async def test_no_notice_without_smtp_and_no_address_in_the_logs(portal: App) -> None:
    """With no SMTP configured the override works and nothing is sent or logged about it."""
    await _at_overview(portal)
    with capture_logs() as logs:
        assert (await _override(portal, f"dokument:{EPIKRISE_ID}")).status_code == 303
    assert EMAIL not in json.dumps(logs, default=str)
    assert PATIENT_NIN not in json.dumps(logs, default=str)


async def test_the_citizen_gets_one_e_mail_per_override_without_the_page_waiting(
    tmp_path: Path,
) -> None:
    """A real local SMTP server (aiosmtpd) receives the notice; a second scope sends none."""
    from onerecord.demo_mail import MailSink
    from onerecord.demo_nats import free_port

    sink = MailSink(tmp_path / "mail", port=free_port()).start()
    fakes = OverrideFakes(
        answer=lambda _r: httpx.Response(
            200, json=_searchset(_patient(telecom=[{"system": "email", "value": EMAIL}]))
        )
    )
    try:
        async with running_portal(
            tmp_path,
            fakes,
            register_fhir=REGISTER,
            smtp_host="127.0.0.1",
            smtp_port=sink.port,
            notice_outbox_dir=tmp_path / "outbox",
        ) as portal:
            await _at_overview(portal)
            assert (await _override(portal, f"dokument:{EPIKRISE_ID}")).status_code == 303
            assert (await _override(portal, f"klasse:{KLASS}|C00-1")).status_code == 303
            notifier = portal.app.state.portal.notifier
            assert notifier.wait_idle()
            (mail,) = sink.mails()
            assert mail["To"] == EMAIL
            assert "/innbygger/tilgangslogg" in mail.get_content()
            notifier.close()
    finally:
        sink.stop()


async def test_a_mail_server_that_is_down_does_not_hold_up_the_override(tmp_path: Path) -> None:
    from onerecord.demo_nats import free_port

    fakes = OverrideFakes(
        answer=lambda _r: httpx.Response(
            200, json=_searchset(_patient(telecom=[{"system": "email", "value": EMAIL}]))
        )
    )
    async with running_portal(
        tmp_path,
        fakes,
        register_fhir=REGISTER,
        smtp_host="127.0.0.1",
        smtp_port=free_port(),
        notice_outbox_dir=tmp_path / "outbox",
    ) as portal:
        await _at_overview(portal)
        started = time.monotonic()
        sent = await _override(portal, f"dokument:{EPIKRISE_ID}")
        assert sent.status_code == 303 and time.monotonic() - started < 5.0
        notifier = portal.app.state.portal.notifier
        assert notifier.pending() == 1  # kept in the outbox while the server is away
        notifier.close(timeout=0.1)
