"""A confidential portal client of the STS, step by step: authorize, login page, code, refresh.

Used by the login, refresh and userinfo tests against a real STS on 127.0.0.1 with a generated
synthetic population (`population.cast`, `population.staff`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import lxml.html

from onerecord.search_client import StaffMember, practitioner_attestation
from onerecord.sts import pkce_challenge
from onerecord.synth.population import Population
from onerecord.trust.dpop import make_proof
from onerecord.trust.keys import SigningKey
from tests.sts.fakes import client_assertion

PORTAL_ID = "onerecord-portal"
PORTAL_URL = "http://127.0.0.1:8299"
HCP_REDIRECT = f"{PORTAL_URL}/helsepersonell/innlogget"
CITIZEN_REDIRECT = f"{PORTAL_URL}/innbygger/innlogget"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def new_dpop_key() -> SigningKey:
    return SigningKey.generate(kid=f"dpop-{secrets.token_hex(4)}")


def page(response: httpx.Response) -> Any:
    """Parse an HTML answer of the STS (our own output)."""
    return lxml.html.fromstring(response.text)


def request_id(response: httpx.Response) -> str:
    """Return the hidden request_id of a login page."""
    (value,) = page(response).xpath('//form//input[@name="request_id"]/@value')
    return str(value)


def query_of(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


@dataclass
class PortalSts:
    """The STS as the portal sees it."""

    base: str
    client_key: SigningKey
    population: Population
    client_id: str = PORTAL_ID

    def nin(self, key: str) -> str:
        """The fødselsnummer of a cast member or staff key."""
        person = self.population.cast.get(key) or self.population.staff[key]
        return person.nin.value

    def authorize(
        self, *, verifier: str, redirect_uri: str = HCP_REDIRECT, **params: str
    ) -> httpx.Response:
        query = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": "openid helseid://scopes/identity/pid",
            "state": "st-1",
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
            **params,
        }
        return httpx.get(f"{self.base}/authorize", params=query, timeout=10)

    def login(self, request_id: str, **form: str) -> httpx.Response:
        return httpx.post(
            f"{self.base}/authorize/login", data={"request_id": request_id, **form}, timeout=10
        )

    def token(
        self,
        form: dict[str, str],
        dpop_key: SigningKey,
        *,
        assertion_extra: dict[str, Any] | None = None,
        client: tuple[str, SigningKey] | None = None,
    ) -> httpx.Response:
        client_id, key = client or (self.client_id, self.client_key)
        body = {
            **form,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(key, client_id, self.base, extra=assertion_extra),
        }
        proof = make_proof(dpop_key, htm="POST", htu=f"{self.base}/token")
        return httpx.post(f"{self.base}/token", data=body, headers={"DPoP": proof}, timeout=10)

    def redeem(
        self, code: str, verifier: str, dpop_key: SigningKey, redirect_uri: str = HCP_REDIRECT
    ) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        return self.token(form, dpop_key)

    def refresh(
        self,
        refresh_token: str,
        dpop_key: SigningKey,
        *,
        attestation: dict[str, Any] | None = None,
        client: tuple[str, SigningKey] | None = None,
        **form: str,
    ) -> httpx.Response:
        extra = {"authorization_details": [attestation]} if attestation is not None else None
        body = {"grant_type": "refresh_token", "refresh_token": refresh_token, **form}
        return self.token(body, dpop_key, assertion_extra=extra, client=client)

    def userinfo(self, access_token: str, dpop_key: SigningKey) -> httpx.Response:
        url = f"{self.base}/userinfo"
        headers = {
            "Authorization": f"DPoP {access_token}",
            "DPoP": make_proof(dpop_key, htm="GET", htu=url, access_token=access_token),
        }
        return httpx.get(url, headers=headers, timeout=10)

    def log_in(self, key: str, dpop_key: SigningKey) -> dict[str, Any]:
        """Log a cast member (citizen) or staff member in through the page; return /token's body."""
        citizen = key in self.population.cast
        redirect = CITIZEN_REDIRECT if citizen else HCP_REDIRECT
        verifier = secrets.token_urlsafe(48)
        extra = {"acr_values": "idporten-loa-high"} if citizen else {}
        shown = self.authorize(verifier=verifier, redirect_uri=redirect, **extra)
        assert shown.status_code == 200, shown.text
        code = query_of(self.login(request_id(shown), subject=self.nin(key)))["code"]
        response = self.redeem(code, verifier, dpop_key, redirect)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def attestation(self, staff_key: str, patient_digest: str) -> dict[str, Any]:
        """An attestation of a staff member for one patient (purpose TREAT)."""
        person = self.population.staff[staff_key]
        org = self.population.organisation(person.organisation)
        staff = StaffMember(
            nin=person.nin.value,
            category=person.categories[0],
            legal_entity=str(org.legal_entity),
            point_of_care=str(org.orgnr),
            department=str(person.department) if person.department else None,
        )
        return practitioner_attestation(staff, patient_digest=patient_digest)
