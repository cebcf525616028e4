"""GET /userinfo: who the token's holder is, and whom a citizen may and may not act for."""

from __future__ import annotations

from typing import Any

import httpx

from onerecord.trust.dpop import make_proof
from tests.sts.portal_flow import PortalSts, new_dpop_key


def _userinfo(sts: PortalSts, key: str) -> dict[str, Any]:
    dpop_key = new_dpop_key()
    token = sts.log_in(key, dpop_key)["access_token"]
    response = sts.userinfo(token, dpop_key)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def test_parent_sees_children_under_12_allowed_and_child13_refused(portal_sts: PortalSts) -> None:
    body = _userinfo(portal_sts, "parent")
    cast = portal_sts.population.cast
    parent = cast["parent"]
    assert body["sub"] == parent.nin.value and body["pid"] == parent.nin.value
    assert body["name"] == parent.name and body["security_level"] == "4"
    assert body["acr"] == "idporten-loa-high"
    assert body["onerecord:representation"] == [
        {
            "nin": cast[key].nin.value,
            "name": cast[key].name,
            "relation": "parent",
            "acp": "2.16.578.1.12.4.1.7.2.1.1",
        }
        for key in ("child10", "child11")
    ]
    refused = {r["nin"]: r for r in body["onerecord:representation_refused"]}
    assert refused[cast["child13"].nin.value] == {
        "nin": cast["child13"].nin.value,
        "name": cast["child13"].name,
        "relation": "parent",
        "reason": "child-12-15",
    }
    assert refused[cast["child12_yesterday"].nin.value]["reason"] == "child-12-15"
    assert len(refused) == 2
    # The same two, at the parent's address, for the dialogue with the GP office only.
    assert sorted(body["onerecord:representation_dialogue"], key=lambda r: r["nin"]) == sorted(
        (
            {"nin": cast[key].nin.value, "name": cast[key].name, "relation": "parent"}
            for key in ("child13", "child12_yesterday")
        ),
        key=lambda r: r["nin"],
    )


def test_protected_address_refuses_representation_both_ways(portal_sts: PortalSts) -> None:
    body = _userinfo(portal_sts, "protected6")
    child = portal_sts.population.cast["protected6_child"]
    assert body["onerecord:representation"] == []
    assert body["onerecord:representation_dialogue"] == []
    assert body["onerecord:representation_refused"] == [
        {
            "nin": child.nin.value,
            "name": child.name,
            "relation": "parent",
            "reason": "protected-address",
        }
    ]


def test_parent_living_apart_and_proxy_holder(portal_sts: PortalSts) -> None:
    cast = portal_sts.population.cast
    apart = _userinfo(portal_sts, "parent_apart")
    assert [(r["nin"], r["reason"]) for r in apart["onerecord:representation_refused"]] == [
        (cast["child11_apart"].nin.value, "not-co-registered")
    ]
    holder = _userinfo(portal_sts, "proxy_holder")
    assert [(r["nin"], r["relation"], r["name"]) for r in holder["onerecord:representation"]] == [
        (cast["proxy_giver"].nin.value, "proxy", cast["proxy_giver"].name)
    ]
    assert holder["onerecord:representation_refused"] == []


def test_health_worker_userinfo(portal_sts: PortalSts) -> None:
    body = _userinfo(portal_sts, "doctor")
    doctor = portal_sts.population.staff["doctor"]
    assert doctor.hpr is not None
    assert body == {
        "sub": f"hp:{doctor.nin.value}",
        "name": doctor.name,
        "pid": doctor.nin.value,
        "security_level": "4",
        "hpr_number": doctor.hpr.value,
    }


def test_userinfo_needs_a_dpop_bound_token_and_a_matching_proof(portal_sts: PortalSts) -> None:
    dpop_key = new_dpop_key()
    token = portal_sts.log_in("adult", dpop_key)["access_token"]
    url = f"{portal_sts.base}/userinfo"

    def call(headers: dict[str, str]) -> httpx.Response:
        response = httpx.get(url, headers=headers, timeout=10)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("DPoP error=")
        return response

    call({})
    call({"Authorization": f"Bearer {token}"})
    call({"Authorization": f"DPoP {token}"})
    other_key = make_proof(new_dpop_key(), htm="GET", htu=url, access_token=token)
    call({"Authorization": f"DPoP {token}", "DPoP": other_key})
    wrong_url = make_proof(dpop_key, htm="GET", htu=f"{portal_sts.base}/token", access_token=token)
    call({"Authorization": f"DPoP {token}", "DPoP": wrong_url})
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    proof = make_proof(dpop_key, htm="GET", htu=url, access_token=forged)
    call({"Authorization": f"DPoP {forged}", "DPoP": proof})
    proof = make_proof(dpop_key, htm="GET", htu=url, access_token=token)
    assert httpx.get(url, headers={"Authorization": f"DPoP {token}", "DPoP": proof}).is_success
    # the same proof twice is a replay
    call({"Authorization": f"DPoP {token}", "DPoP": proof})


def test_discovery_names_userinfo_and_refresh(portal_sts: PortalSts) -> None:
    conf = httpx.get(f"{portal_sts.base}/.well-known/openid-configuration").json()
    assert conf["userinfo_endpoint"] == f"{portal_sts.base}/userinfo"
    assert "refresh_token" in conf["grant_types_supported"]


def test_a_citizens_locale_is_the_contact_registers_language(portal_sts: PortalSts) -> None:
    from onerecord.synth.demographics import contact_details

    population = portal_sts.population
    for key in ("parent", "protected7"):
        citizen = population.cast[key]
        expected = contact_details(citizen, population.reference_date).language
        assert _userinfo(portal_sts, key)["locale"] == expected
