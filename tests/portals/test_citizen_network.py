"""The citizen portal in front of the real network: STS login page, hub, regions, audit.

The portal is the one `onerecord demo` starts, with its own client (`onerecord-portal`). A
citizen logs in the way a browser does: the portal sends them to the STS, the STS page lists
synthetic citizens as radio buttons, the choice is posted and the STS sends them back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.network.conftest import Network
from tests.portals.pages import (
    csrf_token,
    follow_redirects,
    login_through_sts,
    region_answered_or_spared,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def log_in(browser: httpx.Client, portal_url: str, nin: str) -> httpx.Response:
    """Log in as citizen `nin` through the STS page; return the first portal page."""
    page = browser.get(f"{portal_url}/innbygger/logg-inn")
    assert page.status_code == 200
    sent = browser.post(f"{portal_url}/innbygger/logg-inn", data={"csrf_token": csrf_token(page)})
    assert sent.status_code == 303
    sts_page = browser.get(sent.headers["location"])
    assert sts_page.status_code == 200, sts_page.text[:500]
    choices = re.findall(
        r'<input type="radio" name="subject" id="[^"]*" value="(\d{11})">', sts_page.text
    )
    assert nin in choices, "the STS page does not list this citizen"
    action = re.search(r'<form method="post" action="([^"]+)">', sts_page.text)
    request_id = re.search(r'name="request_id" value="([^"]+)"', sts_page.text)
    assert action and request_id
    back = browser.post(
        str(sts_page.url.join(action.group(1))),
        data={"request_id": request_id.group(1), "subject": nin},
    )
    assert back.status_code in (302, 303), back.text[:500]
    assert back.headers["location"].startswith(f"{portal_url}/innbygger/innlogget?")
    landed = browser.get(back.headers["location"])
    assert landed.status_code == 303, landed.text[:1000]
    first = browser.get(f"{portal_url}{landed.headers['location']}")
    assert first.status_code == 200, first.text[:1000]
    return first


def document_rows(page: httpx.Response) -> list[str]:
    return re.findall(r'<tr class="document[^"]*"[^>]*>(.*?)</tr>', page.text, re.S)


def form_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', html))


def practitioner_view(network: Network, patient: str) -> tuple[set[str], int]:
    """Search the hub as the cast doctor: the uniqueIds shown in full, and the masked count."""
    bundle = network.hub_search(network.practitioner(patient), patient)
    docs = [
        e["resource"]
        for e in bundle.get("entry", [])
        if e["resource"].get("resourceType") == "DocumentReference"
    ]
    shown = {
        d["masterIdentifier"]["value"].removeprefix("urn:oid:")
        for d in docs
        if "masterIdentifier" in d
    }
    return shown, sum(1 for d in docs if "masterIdentifier" not in d)


def test_parent_sees_own_documents_acts_for_child11_and_is_refused_child13(
    network: Network, portal_url: str, browser: httpx.Client
) -> None:
    patients = network.manifest["patients"]
    page = log_in(browser, portal_url, patients["parent"])
    assert "Du ser dine egne dokumenter." in page.text
    for region in network.manifest["regions"]:
        assert region_answered_or_spared(page.text, region["name"])
    assert "eyJ" not in page.text and "DPoP" not in page.text

    people = browser.get(f"{portal_url}/innbygger/representasjon")
    assert people.status_code == 200
    token = csrf_token(people)
    chosen = browser.post(
        f"{portal_url}/innbygger/representasjon",
        data={"csrf_token": token, "person": patients["child11"]},
    )
    assert chosen.status_code == 303
    child_page = browser.get(f"{portal_url}{chosen.headers['location']}")
    assert child_page.status_code == 200
    assert re.search(r"Du ser dokumentene til [^<(]+ \(barn\)\.", child_page.text)
    assert document_rows(child_page), "child11 has documents in the cast"

    refused = browser.post(
        f"{portal_url}/innbygger/representasjon",
        data={"csrf_token": token, "person": patients["child13"]},
    )
    assert refused.status_code == 403
    assert "Barn mellom 12 og 16 år har rett til å holde opplysninger for seg selv." in refused.text
    # Still acting for child11: the refusal switched nothing.
    assert "(barn)." in browser.get(f"{portal_url}/innbygger/dokumenter").text
    # Chosen for the GP pages (the STS lists the child for the dialogue only), the child of 13
    # opens «Fastlegen», and the record's pages are the parent's own again, never the child's.
    for_gp = browser.post(
        f"{portal_url}/innbygger/representasjon",
        data={"csrf_token": token, "person": patients["child13"], "for": "fastlege"},
    )
    assert for_gp.status_code == 303
    assert for_gp.headers["location"].endswith("/innbygger/fastlege")
    own = browser.get(f"{portal_url}/innbygger/dokumenter").text
    assert "(barn)." not in own and patients["child13"] not in own


def test_adult_blocks_a_document_health_personnel_then_see_it_masked_and_the_visit_is_logged(
    network: Network, portal_url: str, browser: httpx.Client
) -> None:
    adult = network.manifest["patients"]["adult"]
    page = log_in(browser, portal_url, adult)
    rows = document_rows(page)
    regions = {r["name"] for r in network.manifest["regions"]}
    seen = {
        name
        for name in regions
        for row in rows
        if re.search(f"<td[^>]*>{re.escape(name)}</td>", row)
    }
    assert len(seen) >= 3, seen

    shown_before, masked_before = practitioner_view(network, adult)
    target = next(
        row
        for row in rows
        if ">Sperr</button>" in row and form_fields(row)["unique_id"] in shown_before
    )
    fields = form_fields(target)
    unique_id = fields["unique_id"]
    done = browser.post(f"{portal_url}/innbygger/sperringer/dokument", data=fields)
    assert done.status_code == 303
    after = browser.get(f"{portal_url}{done.headers['location']}")
    assert "Sperringen gjelder nå. Helsepersonell ser den med en gang." in after.text

    shown, masked = practitioner_view(network, adult)
    assert unique_id not in shown
    assert masked == masked_before + 1

    blocked_row = next(
        r for r in document_rows(after) if form_fields(r).get("unique_id") == unique_id
    )
    assert ">Opphev sperring</button>" in blocked_row
    undo = browser.post(
        f"{portal_url}/innbygger/sperringer/dokument", data=form_fields(blocked_row)
    )
    assert undo.status_code == 303
    assert "Sperringen er opphevet" in browser.get(f"{portal_url}/innbygger/dokumenter").text
    shown_again, masked_again = practitioner_view(network, adult)
    assert unique_id in shown_again and masked_again == masked_before

    doctor = network.manifest["staff"]["doctor"]
    log = browser.get(f"{portal_url}/innbygger/tilgangslogg")
    assert log.status_code == 200
    visits = re.findall(r'<li class="visit[^"]*">(.*?)</article>', log.text, re.S)
    mine = [v for v in visits if doctor["name"] in v]
    assert len(mine) == 1, log.text[-3000:]  # one visit, whatever the number of searches
    assert doctor["organisation"] in mine[0]
    assert "Behandling – Helsetjenester generelt" in mine[0]
    assert "Ingen dokumenter åpnet" in mine[0]
    assert doctor["nin"] not in log.text and str(doctor["hpr"]) not in log.text


def _hcp_overview(portal_url: str, doctor_nin: str, patient: str) -> httpx.Response:
    """Log the doctor in at the health-personnel portal, state a basis, open the overview."""
    with httpx.Client(timeout=30) as hcp:
        page = login_through_sts(hcp, portal_url, "helsepersonell", doctor_nin)
        workplace = re.findall(r'name="workplace" value="([^"]+)"', page.text)
        chosen = hcp.post(
            f"{portal_url}/helsepersonell/arbeidssted",
            data={"csrf_token": csrf_token(page), "workplace": workplace[0]},
        )
        form = follow_redirects(hcp, chosen)
        opened = hcp.post(
            f"{portal_url}/helsepersonell/pasient",
            data={
                "csrf_token": csrf_token(form),
                "patient": patient,
                "healthcare_service": "01",
                "purpose_of_use": "TREAT",
                "purpose_of_use_details": "BEHANDLER",
                "access_basis": "SAMTYKKE",
            },
        )
        assert opened.status_code == 303, opened.text[:2000]
        return follow_redirects(hcp, opened)


def _privacy_change(browser: httpx.Client, portal_url: str, path: str, **fields: str) -> None:
    form = browser.get(f"{portal_url}/innbygger/personvern")
    done = browser.post(
        f"{portal_url}/innbygger/sperringer/{path}",
        data={"csrf_token": csrf_token(form), **fields},
    )
    assert done.status_code == 303, done.text[:2000]
    after = browser.get(f"{portal_url}{done.headers['location']}")
    assert 'role="alert"' not in after.text, after.text[-3000:]


def test_a_blocked_health_worker_and_a_reservation_are_told_plainly_in_the_hcp_portal(
    network: Network, portal_url: str, browser: httpx.Client
) -> None:
    """The citizen's block of a named doctor and reservation take effect at once, and say so."""
    patient = network.manifest["patients"]["elderly"]
    doctor = network.manifest["staff"]["doctor"]
    log_in(browser, portal_url, patient)
    before = _hcp_overview(portal_url, doctor["nin"], patient)
    assert before.status_code == 200 and document_rows(before)

    _privacy_change(browser, portal_url, "helsepersonell", hpr=str(doctor["hpr"]), handling="sperr")
    try:
        blocked = _hcp_overview(portal_url, doctor["nin"], patient)
        assert blocked.status_code == 403, blocked.text[-2000:]
        assert "Pasienten har sperret deg fra å se dokumentene sine." in blocked.text, blocked.text[
            blocked.text.find("<main") :
        ]
        assert "Sperringen gjelder også ved nødtilgang." in blocked.text
        assert not document_rows(blocked)
    finally:
        _privacy_change(
            browser, portal_url, "helsepersonell", hpr=str(doctor["hpr"]), handling="opphev"
        )

    _privacy_change(browser, portal_url, "reservasjon", handling="reserver")
    try:
        reserved = _hcp_overview(portal_url, doctor["nin"], patient)
        assert reserved.status_code == 200
        assert "Pasienten har reservert seg mot deling av dokumenter" in reserved.text
        assert not document_rows(reserved)
        for region in network.manifest["regions"]:
            assert region_answered_or_spared(reserved.text, region["name"])
    finally:
        _privacy_change(browser, portal_url, "reservasjon", handling="opphev")

    after = _hcp_overview(portal_url, doctor["nin"], patient)
    assert after.status_code == 200 and len(document_rows(after)) == len(document_rows(before))
    assert "reservert" not in after.text
