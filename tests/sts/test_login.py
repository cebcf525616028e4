"""The STS's login page: authorization code + PKCE with a synthetic user picked in a browser."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from onerecord.sts import ClientConfig, StsSettings, create_sts_app, pkce_challenge
from onerecord.sts.login import LoginProblem, choose_subject
from onerecord.sts.registers import PopulationRegisters
from onerecord.synth.population import CAST_KEYS, STAFF_KEYS
from onerecord.trust.keys import SigningKey
from tests.sts.fakes import client_assertion
from tests.sts.portal_flow import (
    CITIZEN_REDIRECT,
    HCP_REDIRECT,
    PORTAL_ID,
    PortalSts,
    new_dpop_key,
    page,
    query_of,
    request_id,
)
from tests.support.servers import free_port, serve_in_thread

CITIZEN = {"acr_values": "idporten-loa-high"}
REAL_FORM = "01018012371"  # valid check digits, but not synthetic (month not + 80)
UNKNOWN = "01818012337"  # synthetic, in nobody's register


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _radios(response: httpx.Response) -> dict[str, str]:
    """Return {value: label text} of the page's radio buttons, checking each has its label."""
    doc = page(response)
    out = {}
    for radio in doc.xpath('//fieldset//input[@type="radio"]'):
        assert radio.get("name") == "subject" and radio.get("id") == f"user-{radio.get('value')}"
        (label,) = doc.xpath(f'//label[@for="{radio.get("id")}"]')
        out[radio.get("value")] = " ".join(label.text_content().split())
    return out


def test_citizen_page_lists_the_cast_first_and_is_accessible(portal_sts: PortalSts) -> None:
    response = portal_sts.authorize(
        verifier=secrets.token_urlsafe(48), redirect_uri=CITIZEN_REDIRECT, **CITIZEN
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["cache-control"] == "no-store"
    doc = page(response)
    assert doc.get("lang") == "nb"
    assert doc.findtext(".//title") == "Logg inn – testbrukere (kun utvikling)"
    assert len(doc.xpath("//main")) == 1 and len(doc.xpath("//main//h1")) == 1
    (form,) = doc.xpath("//form")
    assert form.get("method") == "post" and form.get("action") == "/authorize/login"
    assert doc.xpath("//form//fieldset/legend") and doc.xpath('//form//button[@type="submit"]')
    (typed,) = doc.xpath('//input[@name="nin"]')
    assert doc.xpath(f'//label[@for="{typed.get("id")}"]/text()') == ["eller fødselsnummer"]
    assert not doc.xpath("//script") and not doc.xpath("//*[@style]")
    assert all(href.startswith("/") for href in doc.xpath("//@href | //@src"))
    radios = _radios(response)
    cast = [portal_sts.nin(key) for key in CAST_KEYS]
    assert list(radios)[: len(cast)] == cast
    assert len(CAST_KEYS) < len(radios) <= len(CAST_KEYS) + 20
    parent = portal_sts.population.cast["parent"]
    assert parent.name in radios[parent.nin.value] and "42 år" in radios[parent.nin.value]
    assert parent.nin.value in radios[parent.nin.value]
    css = httpx.get(f"{portal_sts.base}{doc.xpath('//link/@href')[0]}")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_personnel_page_lists_the_staff_by_default(portal_sts: PortalSts) -> None:
    response = portal_sts.authorize(verifier=secrets.token_urlsafe(48))
    assert response.status_code == 200, response.text
    radios = _radios(response)
    staff = [portal_sts.nin(key) for key in STAFF_KEYS]
    assert list(radios)[: len(staff)] == staff and len(radios) <= len(STAFF_KEYS) + 20
    doctor = portal_sts.population.staff["doctor"]
    assert doctor.hpr is not None
    label = radios[doctor.nin.value]
    assert "Lege" in label and doctor.hpr.value in label
    assert portal_sts.population.organisation(doctor.organisation).name in label
    # the query parameter asks for citizens without acr_values
    other = portal_sts.authorize(verifier=secrets.token_urlsafe(48), onerecord_user_kind="citizen")
    assert portal_sts.nin("child11") in _radios(other)


def test_choosing_a_user_yields_a_code_and_the_token_is_for_that_user(
    portal_sts: PortalSts,
) -> None:
    verifier = secrets.token_urlsafe(48)
    shown = portal_sts.authorize(verifier=verifier, redirect_uri=CITIZEN_REDIRECT, **CITIZEN)
    chosen = portal_sts.nin("parent")
    back = portal_sts.login(request_id(shown), subject=chosen)
    assert back.headers["location"].startswith(f"{CITIZEN_REDIRECT}?")
    query = query_of(back)
    assert query["state"] == "st-1" and query["code"]
    dpop_key = new_dpop_key()
    response = portal_sts.redeem(query["code"], verifier, dpop_key, CITIZEN_REDIRECT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP" and body["refresh_token"]
    claims = _claims(body["access_token"])
    assert claims["sub"] == chosen and claims["helseid://claims/identity/pid"] == chosen
    assert claims["cnf"]["jkt"] == dpop_key.thumbprint()
    assert claims["acr"] == "idporten-loa-high" and claims["aud"] == "onerecord:hub"
    assert claims["client_id"] == PORTAL_ID
    assert {r["nin"] for r in claims["onerecord:representation"]} == {
        portal_sts.nin("child10"),
        portal_sts.nin("child11"),
    }


def test_health_worker_logs_in_without_attestation(portal_sts: PortalSts) -> None:
    body = portal_sts.log_in("doctor", new_dpop_key())
    claims = _claims(body["access_token"])
    doctor = portal_sts.population.staff["doctor"]
    assert claims["sub"] == f"hp:{doctor.nin.value}" and claims["name"] == doctor.name
    assert claims["helseid://claims/identity/security_level"] == "4"
    assert "nhn:tillitsrammeverk:parameters" not in claims
    assert "onerecord:representation" not in claims


def test_typed_number_logs_in_and_practitioner_kind_is_understood(portal_sts: PortalSts) -> None:
    verifier = secrets.token_urlsafe(48)
    shown = portal_sts.authorize(verifier=verifier, onerecord_user_kind="practitioner")
    nurse = portal_sts.nin("nurse")
    back = portal_sts.login(request_id(shown), nin=f"{nurse[:6]} {nurse[6:]}")
    response = portal_sts.redeem(query_of(back)["code"], verifier, new_dpop_key())
    assert response.status_code == 200, response.text
    assert _claims(response.json()["access_token"])["sub"] == f"hp:{nurse}"


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({}, "Velg en testbruker"),
        ({"nin": "12345678901"}, "kontrollsiffer"),
        ({"nin": REAL_FORM}, "syntetiske"),
        ({"nin": UNKNOWN}, "Fant ingen"),
        ({"subject": "xx", "nin": UNKNOWN}, "bare ett"),
    ],
)
def test_a_bad_choice_shows_the_page_again_with_a_new_request_id(
    portal_sts: PortalSts, form: dict[str, str], problem: str
) -> None:
    verifier = secrets.token_urlsafe(48)
    shown = portal_sts.authorize(verifier=verifier, redirect_uri=CITIZEN_REDIRECT, **CITIZEN)
    first = request_id(shown)
    again = portal_sts.login(first, **form)
    assert again.status_code == 400 and "text/html" in again.headers["content-type"]
    (message,) = page(again).xpath('//p[@id="problem"]')
    assert problem in message.text_content()
    second = request_id(again)
    assert second != first
    assert portal_sts.login(first, subject=portal_sts.nin("parent")).status_code == 400
    back = portal_sts.login(second, subject=portal_sts.nin("parent"))
    assert query_of(back)["code"]


def test_the_health_personnel_page_refuses_a_citizen(portal_sts: PortalSts) -> None:
    shown = portal_sts.authorize(
        verifier=secrets.token_urlsafe(48), onerecord_user_kind="health-personnel"
    )
    again = portal_sts.login(request_id(shown), nin=portal_sts.nin("parent"))
    assert again.status_code == 400 and "helsepersonell" in again.text


def test_tampered_and_reused_request_ids_are_refused(portal_sts: PortalSts) -> None:
    shown = portal_sts.authorize(verifier=secrets.token_urlsafe(48))
    rid = request_id(shown)
    tampered = portal_sts.login(rid[:-2] + ("AA" if rid[-2:] != "AA" else "BB"), subject="x")
    assert tampered.status_code == 400 and "location" not in tampered.headers
    assert "utløpt" in page(tampered).xpath("//main")[0].text_content()
    doctor = portal_sts.nin("doctor")
    assert portal_sts.login(rid, subject=doctor).status_code == 302
    reused = portal_sts.login(rid, subject=doctor)
    assert reused.status_code == 400 and "location" not in reused.headers
    assert "unknown, used or expired" in reused.text


def test_wrong_code_verifier_is_refused(portal_sts: PortalSts) -> None:
    verifier = secrets.token_urlsafe(48)
    shown = portal_sts.authorize(verifier=verifier)
    code = query_of(portal_sts.login(request_id(shown), subject=portal_sts.nin("doctor")))["code"]
    response = portal_sts.redeem(code, secrets.token_urlsafe(48), new_dpop_key())
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    # the code was spent on the failed attempt
    again = portal_sts.redeem(code, verifier, new_dpop_key())
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_invalid_authorization_request_is_never_a_page_nor_a_redirect(
    portal_sts: PortalSts,
) -> None:
    for changes in (
        {"redirect_uri": "http://127.0.0.1:9/evil"},
        {"code_challenge_method": "plain"},
        {"acr_values": "3"},
        {"onerecord_user_kind": "robot"},
    ):
        response = portal_sts.authorize(verifier=secrets.token_urlsafe(48), **changes)
        assert response.status_code == 400 and "location" not in response.headers
        assert response.json()["error"] in {"invalid_request", "access_denied"}, changes
    unknown = httpx.get(
        f"{portal_sts.base}/authorize", params={"client_id": "nobody", "redirect_uri": HCP_REDIRECT}
    )
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_request"


def test_login_page_is_reachable_through_par(portal_sts: PortalSts) -> None:
    verifier = secrets.token_urlsafe(48)
    form = {
        "client_id": PORTAL_ID,
        "response_type": "code",
        "redirect_uri": CITIZEN_REDIRECT,
        "code_challenge": pkce_challenge(verifier),
        "code_challenge_method": "S256",
        "acr_values": "idporten-loa-high",
        "state": "par-state",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": client_assertion(portal_sts.client_key, PORTAL_ID, portal_sts.base),
    }
    pushed = httpx.post(f"{portal_sts.base}/par", data=form, timeout=10)
    assert pushed.status_code == 201, pushed.text
    shown = httpx.get(
        f"{portal_sts.base}/authorize",
        params={"client_id": PORTAL_ID, "request_uri": pushed.json()["request_uri"]},
    )
    assert shown.status_code == 200 and portal_sts.nin("parent") in _radios(shown)
    query = query_of(portal_sts.login(request_id(shown), subject=portal_sts.nin("parent")))
    assert query["state"] == "par-state"
    response = portal_sts.redeem(query["code"], verifier, new_dpop_key(), CITIZEN_REDIRECT)
    assert response.status_code == 200, response.text


class _Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clocked_sts(portal_sts: PortalSts) -> Iterator[tuple[PortalSts, _Clock]]:
    clock = _Clock()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = StsSettings(
        issuer=base,
        dev_mode=True,
        clients={
            PORTAL_ID: ClientConfig(
                jwk=portal_sts.client_key.public_jwk(), redirect_uris=(HCP_REDIRECT,)
            )
        },
    )
    app = create_sts_app(
        settings,
        registers=PopulationRegisters(portal_sts.population),
        key=SigningKey.generate(kid="dev-sts-clock"),
        clock=clock,
    )
    with serve_in_thread(app, port):
        yield PortalSts(base, portal_sts.client_key, portal_sts.population), clock


def test_expired_login_request_is_refused(clocked_sts: tuple[PortalSts, _Clock]) -> None:
    sts, clock = clocked_sts
    shown = sts.authorize(verifier=secrets.token_urlsafe(48))
    clock.offset = 601
    late = sts.login(request_id(shown), subject=sts.nin("doctor"))
    assert late.status_code == 400 and "location" not in late.headers


@pytest.mark.parametrize(
    ("choice", "typed", "expected"),
    [
        ("01818012337", None, "01818012337"),
        (None, " 018180 12337 ", "01818012337"),
        ("01818012337", "01818012337", "01818012337"),
        (None, None, LoginProblem.NO_CHOICE),
        ("01818012337", "15828012344", LoginProblem.TWO_CHOICES),
        (None, "0181801233", LoginProblem.NOT_A_NUMBER),
        (None, REAL_FORM, LoginProblem.NOT_SYNTHETIC),
    ],
)
def test_choose_subject(choice: str | None, typed: str | None, expected: object) -> None:
    assert choose_subject(choice, typed) == expected


def test_a_form_that_is_not_utf8_or_too_large_is_a_400_not_a_500(portal_sts: PortalSts) -> None:
    shown = portal_sts.authorize(verifier=secrets.token_urlsafe(48), **CITIZEN)
    form = {"content-type": "application/x-www-form-urlencoded"}
    body = b"request_id=" + request_id(shown).encode() + b"&nin=\xff\xfe"
    login = httpx.post(f"{portal_sts.base}/authorize/login", content=body, headers=form)
    assert login.status_code == 400 and "location" not in login.headers
    assert "Traceback" not in login.text
    token = httpx.post(f"{portal_sts.base}/token", content=b"grant_type=\xff", headers=form)
    assert token.status_code == 400 and token.json()["error"] == "invalid_request"
    huge = httpx.post(f"{portal_sts.base}/token", content=b"a=" + b"b" * 70_000, headers=form)
    assert huge.status_code == 400 and huge.json()["error"] == "invalid_request"
