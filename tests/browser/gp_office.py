"""The GP office's side of the browser journeys: a health worker at the citizen's office calling
the demo's dialogue service (FHIR API, docs/dialogue.md) as the clinic's system would.

Synchronous httpx only: a browser test module must not run an event loop in the main thread
(tests/browser/conftest.py). The staff token comes from the demo's STS (the test-user grant,
with an attestation naming the office as point of care); the office is the citizen's fastlege
as the synthetic population register says (`synth.demographics.general_practitioner`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from onerecord.dialogue import OSLO
from onerecord.dialogue.fhir import FNR_SYSTEM
from onerecord.search_client import (
    CLIENT_ASSERTION_TYPE,
    TEST_USER_GRANT,
    StaffMember,
    client_assertion,
    practitioner_attestation,
)
from onerecord.synth.dataset import load_population
from onerecord.synth.demographics import general_practitioner
from onerecord.trust.dpop import make_proof
from onerecord.trust.keys import SigningKey
from onerecord.trust.patient_binding import make_digest, new_salt

__all__ = ["GpOfficeDesk"]


@dataclass
class GpOfficeDesk:
    """The GP of `patient`, logged in at their office, with a token for the dialogue service."""

    fhir: str
    office: str
    gp_name: str
    token: str
    key: SigningKey

    @classmethod
    def of(cls, manifest: dict[str, Any], patient: str) -> GpOfficeDesk:
        population = load_population(Path(manifest["dataset"]) / "population.json")
        gp = general_practitioner(population, population.citizen(patient))
        assert gp is not None, "the demo gives every citizen a GP"
        staff = StaffMember(
            nin=gp.practitioner.nin.value,
            category=gp.practitioner.categories[0],
            legal_entity=gp.office.legal_entity.value,
            point_of_care=gp.office.orgnr.value,
        )
        client_key = SigningKey.from_jwk(
            json.loads(Path(manifest["client"]["key_file"]).read_bytes())
        )
        sts = manifest["sts"]["issuer"]
        key = SigningKey.generate(kid="gp-desk")
        token_url = f"{sts}/token"
        attestation = practitioner_attestation(
            staff, patient_digest=make_digest(patient, new_salt())
        )
        form = {
            "grant_type": TEST_USER_GRANT,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": client_assertion(
                client_key, manifest["client"]["client_id"], sts, now=time.time()
            ),
            "subject": staff.nin,
            "resource": manifest["dialogue"]["audience"],
            "scope": "openid helseid://scopes/identity/pid",
            "authorization_details": json.dumps([attestation]),
        }
        answer = httpx.post(
            token_url, data=form, headers={"DPoP": make_proof(key, htm="POST", htu=token_url)}
        )
        assert answer.status_code == 200, answer.text
        return cls(
            manifest["dialogue"]["fhir_base"],
            staff.point_of_care,
            gp.practitioner.name,
            answer.json()["access_token"],
            key,
        )

    def _headers(self, method: str, url: str) -> dict[str, str]:
        return {
            "Authorization": f"DPoP {self.token}",
            "DPoP": make_proof(self.key, htm=method, htu=url, access_token=self.token),
        }

    def get(self, path: str, **params: str) -> list[dict[str, Any]]:
        url = f"{self.fhir}/{path}"
        answer = httpx.get(url, params=params, headers=self._headers("GET", url), timeout=30)
        assert answer.status_code == 200, answer.text
        return [e["resource"] for e in answer.json()["entry"]]

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.fhir}/{path}"
        headers = {**self._headers("POST", url), "Content-Type": "application/fhir+json"}
        answer = httpx.post(url, json=body, headers=headers, timeout=30)
        assert answer.status_code in (200, 201), answer.text
        result: dict[str, Any] = answer.json()
        return result

    def answer_latest(self, patient: str, text: str) -> None:
        """Answer the patient's latest message in the office's inbox."""
        inbox = [
            m
            for m in self.get("Communication", organization=self.office)
            if m["subject"]["identifier"]["value"] == patient
            and m["sender"]["identifier"]["system"] == FNR_SYSTEM
        ]
        latest = max(inbox, key=lambda m: m["sent"])
        self.post(
            "Communication",
            {
                "resourceType": "Communication",
                "inResponseTo": [{"reference": f"Communication/{latest['id']}"}],
                "payload": [{"contentString": text}],
            },
        )

    def handle_renewals(self, patient: str, *, renewed: bool, reason: str | None = None) -> int:
        """Renew or refuse every open renewal of the patient; return how many."""
        tasks = [
            t
            for t in self.get("Task", organization=self.office)
            if t["for"]["identifier"]["value"] == patient
            and t["status"] == "requested"
            and t["code"]["coding"][0]["code"] == "prescription-renewal"
        ]
        for task in tasks:
            params: list[dict[str, Any]] = [
                {"name": "status", "valueCode": "completed" if renewed else "rejected"}
            ]
            if reason:
                params.append({"name": "reason", "valueString": reason})
            self.post(
                f"Task/{task['id']}/$handle", {"resourceType": "Parameters", "parameter": params}
            )
        return len(tasks)

    def appointments(self, patient: str) -> set[str]:
        """The ids of the patient's appointments (any office, any status)."""
        return {str(a["id"]) for a in self.get("Appointment", patient=patient)}

    def cancel_bookings_since(self, patient: str, before: set[str]) -> None:
        """Cancel the patient's bookings at this office that are not among `before` (put back
        what a test booked on the shared network; the slot is free again)."""
        for made in self.get("Appointment", patient=patient):
            if made["id"] in before or made["status"] not in ("booked", "proposed"):
                continue
            if any(p["actor"].get("identifier", {}).get("value") == self.office
                   for p in made["participant"]):  # fmt: skip
                self.post(f"Appointment/{made['id']}/$cancel", {"resourceType": "Parameters"})

    def clock_ahead(self, seconds: float) -> None:
        """Move the dialogue service's clock `seconds` ahead of the real time (the demo starts it
        with --dev --dev-clock; 0 puts it back). Tokens keep the real time."""
        url = f"{self.fhir.removesuffix('/fhir')}/dev/clock"
        answer = httpx.post(url, json={"offset_seconds": seconds}, timeout=30)
        assert answer.status_code == 200, answer.text

    def absence_at(
        self, start: datetime, service: str, minutes: int, substitute: str | None
    ) -> datetime:
        """Close `service` from `start` (a whole Oslo minute, naive) for `minutes`; return when
        it reopens (Oslo)."""
        end = start + timedelta(minutes=minutes)
        params: list[dict[str, Any]] = [
            {"name": "start", "valueDateTime": f"{start:%Y-%m-%dT%H:%M}"},
            {"name": "end", "valueDateTime": f"{end:%Y-%m-%dT%H:%M}"},
            {"name": "service", "valueCode": service},
        ]
        if substitute:
            params.append({"name": "substitute", "valueString": substitute})
        self.post(
            f"Organization/{self.office}/$register-absence",
            {"resourceType": "Parameters", "parameter": params},
        )
        return end.replace(tzinfo=OSLO)
