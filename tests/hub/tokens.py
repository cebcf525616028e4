"""Test helpers: access tokens from a test issuer, DPoP proofs, attested patient headers."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from onerecord.trust.access_token import issue_access_token
from onerecord.trust.dpop import make_proof
from onerecord.trust.keys import SigningKey
from onerecord.trust.patient_binding import encode_salt, make_digest, new_salt
from tests.sts.fakes import DOCTOR, attestation_details

ISSUER = "https://sts.test"
HUB_AUDIENCE = "onerecord:hub"
FNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.1"


def practitioner_details(patient_nin: str | None, salt: bytes | None) -> dict[str, Any]:
    """An enriched attestation for DOCTOR, bound to `patient_nin` when given."""
    details = attestation_details()
    details["practitioner"]["identifier"] = {
        "id": DOCTOR,
        "system": FNR_SYSTEM,
        "name": "Kari Lege",
    }
    details["practitioner"]["hpr_nr"] = {"id": "1234567", "system": "urn:oid:2.16.578.1.12.4.1.4.4"}
    if patient_nin is not None and salt is not None:
        details["patients"] = [{"identifier_digest": make_digest(patient_nin, salt)}]
    return details


@dataclass
class ApiCaller:
    """A caller with its own DPoP key; makes the headers of one request to the hub."""

    sts_key: SigningKey
    dpop_key: SigningKey = field(default_factory=lambda: SigningKey.generate(kid="client"))

    def practitioner_token(self, patient_nin: str | None) -> tuple[str, str | None]:
        """Return (access token, salt header) for DOCTOR attested for `patient_nin`."""
        salt = new_salt() if patient_nin else None
        now = int(time.time())
        token = issue_access_token(
            key=self.sts_key,
            issuer=ISSUER,
            audience=HUB_AUDIENCE,
            subject=f"hp:{DOCTOR}",
            jkt=self.dpop_key.thumbprint(),
            scope=["nhn:phr/mhd/read-documentreferences"],
            now=now,
            claims={
                "helseid://claims/identity/pid": DOCTOR,
                "helseid://claims/identity/security_level": "4",
                "nhn:tillitsrammeverk:parameters": practitioner_details(patient_nin, salt),
                "toa": now - 30,
            },
        )
        return token, encode_salt(salt) if salt else None

    def citizen_token(self, nin: str, represents: list[dict[str, str]] | None = None) -> str:
        now = int(time.time())
        return issue_access_token(
            key=self.sts_key,
            issuer=ISSUER,
            audience=HUB_AUDIENCE,
            subject=nin,
            jkt=self.dpop_key.thumbprint(),
            scope=["nhn:phr/mhd/read-documentreferences"],
            now=now,
            claims={
                "helseid://claims/identity/pid": nin,
                "acr": "idporten-loa-high",
                "onerecord:representation": represents or [],
            },
        )

    def headers(
        self,
        token: str,
        url: str,
        *,
        method: str = "GET",
        patient: str | None = None,
        salt: str | None = None,
    ) -> dict[str, str]:
        headers = {
            "authorization": f"DPoP {token}",
            "dpop": make_proof(self.dpop_key, htm=method, htu=url, access_token=token),
        }
        if patient:
            headers["nhn-patient-nin"] = patient
        if salt:
            headers["onerecord-patient-salt"] = salt
        return headers
