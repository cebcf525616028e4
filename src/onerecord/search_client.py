"""`onerecord search`: fetch a DPoP-bound token from the STS and ask the hub for an overview.

The client is what an EHR or portal does, in a few lines: private_key_jwt client assertion and
a DPoP proof at the STS (test-user grant, development only), for health personnel an
attestation (purpose TREAT, healthcare service, decision_ref, the patient bound by a salted
digest); then ITI-67 at the hub with `Authorization: DPoP`, a fresh DPoP proof and the patient
headers. The overview is printed as a table with one status line per region. A citizen portal
reads the access log and sets controls through the hub with `hub_access_log`, `hub_controls` and
`hub_change_control`.

References: RFC 9449 §4–§7 (DPoP); RFC 7523 §2.2 (private_key_jwt); TRUST-FRAMEWORK §1.1
(attestation, patient digest), ATT-4; IHE MHD ITI-67; docs/hub.md (region status issues).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from onerecord.domain import InvalidIdentifier, NationalIdentityNumber
from onerecord.mhd import denial_reason
from onerecord.trust.dpop import make_proof
from onerecord.trust.keys import SigningKey
from onerecord.trust.patient_binding import (
    PATIENT_NIN_HEADER,
    PATIENT_SALT_HEADER,
    encode_salt,
    make_digest,
    new_salt,
)

__all__ = [
    "CLIENT_ASSERTION_TYPE",
    "FNR_SYSTEM",
    "TEST_USER_GRANT",
    "HubSession",
    "OverviewRow",
    "RegionLine",
    "StaffMember",
    "citizen_session",
    "client_assertion",
    "fetch_token",
    "hub_access_log",
    "hub_change_control",
    "hub_controls",
    "load_manifest",
    "overview_rows",
    "patient_identifier",
    "practitioner_attestation",
    "practitioner_session",
    "refusal_reasons",
    "region_lines",
    "region_reasons",
    "search_hub",
]

TEST_USER_GRANT = "urn:onerecord:params:oauth:grant-type:test-user"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.1"

_ORGNR = "urn:oid:2.16.578.1.12.4.1.4.101"
_RESH = "urn:oid:2.16.578.1.12.4.1.4.102"
_HPR_CATEGORY = "urn:oid:2.16.578.1.12.4.1.1.9060"
_HEALTHCARE_SERVICE = "urn:oid:2.16.578.1.12.4.1.1.8666"
_PURPOSE = "urn:oid:2.16.840.1.113883.1.11.20448"
_CARE_RELATION = "urn:AuditEventHL7Norway/CodeSystem/carerelation"
_EXT_HCID = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-HomeCommunityId"
_EXT_STATUS = "https://onerecord.no/fhir/StructureDefinition/region-status"
NOT_ASKED = "not-asked"
"""The region status of a region the hub's locator spared (docs/hub.md "Locator")."""
_EXT_LATENCY = "https://onerecord.no/fhir/StructureDefinition/region-latency-ms"


def patient_identifier(patient: str) -> str:
    """Return the ITI-67 `patient.identifier` token for a fødselsnummer, D- or H-number.

    The system follows the number's kind (the sources refuse a D-number under the fødselsnummer
    system); a value that is no valid number goes out under the fødselsnummer system, for the
    hub to refuse with its own message.
    """
    try:
        system = f"urn:oid:{NationalIdentityNumber(patient).system}"
    except InvalidIdentifier:
        system = FNR_SYSTEM
    return f"{system}|{patient}"


@dataclass(frozen=True, slots=True)
class StaffMember:
    """What the client knows of the health worker: identity, role, where they work."""

    nin: str
    category: str
    legal_entity: str
    point_of_care: str
    department: str | None = None

    @classmethod
    def from_manifest(cls, data: Mapping[str, Any]) -> StaffMember:
        return cls(
            nin=str(data["nin"]),
            category=str(data["category"]),
            legal_entity=str(data["legal_entity"]),
            point_of_care=str(data["point_of_care"]),
            department=str(data["department"]) if data.get("department") else None,
        )


def practitioner_attestation(
    staff: StaffMember, *, patient_digest: str, decision_ref: str | None = None
) -> dict[str, Any]:
    """Return the `nhn:tillitsrammeverk:parameters` attestation for one patient (purpose TREAT).

    References: TRUST-FRAMEWORK §1.1 (attestation fields); ATT-4 (patient digest).
    """
    practitioner: dict[str, Any] = {
        "authorization": {"code": staff.category, "system": _HPR_CATEGORY},
        "legal_entity": {"id": staff.legal_entity, "system": _ORGNR},
        "point_of_care": {"id": staff.point_of_care, "system": _ORGNR},
    }
    if staff.department:
        practitioner["department"] = {"id": staff.department, "system": _RESH}
    return {
        "type": "nhn:tillitsrammeverk:parameters",
        "practitioner": practitioner,
        "care_relationship": {
            "healthcare_service": {"code": "01", "system": _HEALTHCARE_SERVICE},
            "purpose_of_use": {"code": "TREAT", "system": _PURPOSE},
            "purpose_of_use_details": {"code": "BEHANDLER", "system": _CARE_RELATION},
            "decision_ref": {"id": decision_ref or str(uuid.uuid4()), "user_selected": True},
        },
        "patients": [{"identifier_digest": patient_digest}],
    }


def client_assertion(
    key: SigningKey,
    client_id: str,
    audience: str,
    *,
    now: float,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Sign a private_key_jwt client assertion (typ client-authentication+jwt, 30 s).

    `extra` adds claims, e.g. `authorization_details` carrying an attestation (HelseID).
    """
    iat = int(now)
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": iat,
        "nbf": iat,
        "exp": iat + 30,
        "jti": secrets.token_urlsafe(16),
        **(extra or {}),
    }
    return key.sign(claims, typ="client-authentication+jwt")


async def fetch_token(
    http: httpx.AsyncClient,
    *,
    sts_url: str,
    client_id: str,
    client_key: SigningKey,
    dpop_key: SigningKey,
    subject: str,
    audience: str,
    attestation: Mapping[str, Any] | None = None,
    scope: str | None = None,
) -> str:
    """Return a DPoP-bound access token for `subject` from the development STS.

    `scope`: the scopes beside the identity ones (default: the document-list read scope).
    """
    token_url = f"{sts_url.rstrip('/')}/token"
    form = {
        "grant_type": TEST_USER_GRANT,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": client_assertion(client_key, client_id, sts_url, now=time.time()),
        "subject": subject,
        "resource": audience,
        "scope": "openid helseid://scopes/identity/pid "
        + (scope or "nhn:phr/mhd/read-documentreferences"),
    }
    if attestation is not None:
        form["authorization_details"] = json.dumps([attestation], separators=(",", ":"))
    proof = make_proof(dpop_key, htm="POST", htu=token_url)
    response = await http.post(token_url, data=form, headers={"DPoP": proof})
    if response.status_code != 200:
        raise RuntimeError(f"the STS refused the token request: {response.text}")
    token: str = response.json()["access_token"]
    return token


@dataclass
class HubSession:
    """A token and the key it is bound to; signs a proof for each request to the hub."""

    token: str
    dpop_key: SigningKey
    patient_nin: str | None = None
    patient_salt: str | None = None

    def headers(self, method: str, url: str) -> dict[str, str]:
        headers = {
            "authorization": f"DPoP {self.token}",
            "dpop": make_proof(self.dpop_key, htm=method, htu=url, access_token=self.token),
        }
        if self.patient_nin:
            # Every retrieve names its patient (B11); health personnel also bind it (ATT-4).
            headers[PATIENT_NIN_HEADER] = self.patient_nin
            if self.patient_salt:
                headers[PATIENT_SALT_HEADER] = self.patient_salt
        return headers


async def practitioner_session(
    http: httpx.AsyncClient,
    *,
    sts_url: str,
    client_id: str,
    client_key: SigningKey,
    staff: StaffMember,
    patient: str,
    audience: str = "onerecord:hub",
    attestation_for: Callable[[str], dict[str, Any]] | None = None,
    scope: str | None = None,
) -> HubSession:
    """Log a health worker in with an attestation bound to `patient` (fresh salt).

    `attestation_for(patient_digest)` builds the attestation; by default the standard one of
    `practitioner_attestation` (a portal passes the basis its user stated).
    """
    salt = new_salt()
    digest = make_digest(patient, salt)
    dpop_key = SigningKey.generate(kid=f"dpop-{secrets.token_hex(4)}")
    token = await fetch_token(
        http,
        sts_url=sts_url,
        client_id=client_id,
        client_key=client_key,
        dpop_key=dpop_key,
        subject=staff.nin,
        audience=audience,
        attestation=(
            attestation_for(digest)
            if attestation_for is not None
            else practitioner_attestation(staff, patient_digest=digest)
        ),
        scope=scope,
    )
    return HubSession(token, dpop_key, patient, encode_salt(salt))


async def citizen_session(
    http: httpx.AsyncClient,
    *,
    sts_url: str,
    client_id: str,
    client_key: SigningKey,
    citizen: str,
    audience: str = "onerecord:hub",
) -> HubSession:
    """Log a citizen in (level 4)."""
    dpop_key = SigningKey.generate(kid=f"dpop-{secrets.token_hex(4)}")
    token = await fetch_token(
        http,
        sts_url=sts_url,
        client_id=client_id,
        client_key=client_key,
        dpop_key=dpop_key,
        subject=citizen,
        audience=audience,
    )
    return HubSession(token, dpop_key)


async def search_hub(
    http: httpx.AsyncClient,
    session: HubSession,
    *,
    hub_fhir: str,
    patient: str,
    count: int = 50,
) -> httpx.Response:
    """Send ITI-67 for `patient` to the hub with the session's token and a fresh proof."""
    url = f"{hub_fhir.rstrip('/')}/DocumentReference"
    params = {"patient.identifier": patient_identifier(patient), "_count": str(count)}
    return await http.get(url, params=params, headers=session.headers("GET", url))


async def hub_access_log(
    http: httpx.AsyncClient, session: HubSession, *, hub_fhir: str, patient: str
) -> httpx.Response:
    """Read `patient`'s access log from every region through the hub (a citizen session)."""
    url = f"{hub_fhir.rstrip('/')}/AuditEvent"
    params = {"patient.identifier": patient_identifier(patient)}
    return await http.get(url, params=params, headers=session.headers("GET", url))


async def hub_controls(
    http: httpx.AsyncClient, session: HubSession, *, hub_base: str, patient: str | None = None
) -> httpx.Response:
    """Read the patient controls merged over every region (`patient`: a represented person)."""
    url = f"{hub_base.rstrip('/')}/controls"
    params = {"patient": patient} if patient else {}
    return await http.get(url, params=params, headers=session.headers("GET", url))


async def hub_change_control(
    http: httpx.AsyncClient,
    session: HubSession,
    *,
    hub_base: str,
    method: str,
    path: str,
    patient: str | None = None,
    home_community_id: str | None = None,
) -> httpx.Response:
    """Set (PUT) or remove (DELETE) one control in every region, or in one for a document block.

    `path` is what follows `/controls/`: `reservation`, `document-blocks/<uniqueId>` or
    `practitioner-blocks/<hpr>`; each segment is percent-encoded here, so the DPoP proof names
    the URL exactly as sent.
    """
    segments = "/".join(quote(part, safe=":") for part in path.strip("/").split("/"))
    url = f"{hub_base.rstrip('/')}/controls/{segments}"
    params = {"patient": patient} if patient else {}
    if home_community_id:
        params["homeCommunityId"] = home_community_id
    return await http.request(method, url, params=params, headers=session.headers(method, url))


@dataclass(frozen=True, slots=True)
class OverviewRow:
    """One line of the overview table."""

    date: str
    title: str
    type: str
    author: str
    organisation: str
    region: str


@dataclass(frozen=True, slots=True)
class RegionLine:
    """One region's status under the table.

    `reason`: the region's denial-reason code — why it refused (status `denied`, e.g.
    `practitioner-blocked`) or why it answered with nothing by rule (status `ok`, e.g.
    `patient-reserved`).
    """

    home_community_id: str
    name: str
    status: str
    latency_ms: int | None
    reason: str | None = None


def _text(concept: Any) -> str:
    if not isinstance(concept, Mapping):
        return ""
    if concept.get("text"):
        return str(concept["text"])
    codings = concept.get("coding") or []
    return str(codings[0].get("display") or codings[0].get("code") or "") if codings else ""


def _hcid(resource: Mapping[str, Any]) -> str:
    for ext in resource.get("extension", []):
        if ext.get("url", "").lower() == _EXT_HCID.lower():
            value = ext.get("valueIdentifier", {}).get("value") or ext.get("valueUri")
            return str(value or "")
    return ""


def _contained_names(doc: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Return author names and their institutions from the contained author resources."""
    people: list[str] = []
    orgs: list[str] = []
    for res in doc.get("contained", []):
        kind = res.get("resourceType")
        if kind == "Practitioner":
            for name in res.get("name", [])[:1]:
                people.append(" ".join([*name.get("given", []), name.get("family", "")]).strip())
        elif kind == "Organization" and "partOf" not in res and res.get("name"):
            orgs.append(str(res["name"]))
    return people, list(dict.fromkeys(orgs))


def overview_rows(
    bundle: Mapping[str, Any], region_names: Mapping[str, str] | None = None
) -> list[OverviewRow]:
    """Return the table rows of a searchset Bundle's DocumentReferences, in Bundle order."""
    names = region_names or {}
    rows = []
    for entry in bundle.get("entry", []):
        doc = entry.get("resource", {})
        if doc.get("resourceType") != "DocumentReference":
            continue
        people, orgs = _contained_names(doc)
        attachment = (doc.get("content") or [{}])[0].get("attachment", {})
        hcid = _hcid(doc)
        rows.append(
            OverviewRow(
                date=str(doc.get("date", ""))[:10],
                title=str(attachment.get("title") or doc.get("description") or ""),
                type=_text(doc.get("type")),
                author=", ".join(people),
                organisation=", ".join(orgs),
                region=names.get(hcid, hcid),
            )
        )
    return rows


def _outcome_issues(bundle: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The issues of an OperationOutcome, or of the OperationOutcome entries of a Bundle."""
    issues: list[Mapping[str, Any]] = []
    if bundle.get("resourceType") == "OperationOutcome":
        issues = list(bundle.get("issue", []))
    for entry in bundle.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") == "OperationOutcome":
            issues.extend(resource.get("issue", []))
    return issues


def _issue_hcid(issue: Mapping[str, Any]) -> str | None:
    for ext in issue.get("extension", []):
        if ext.get("url") == _EXT_HCID and ext.get("valueUri"):
            return str(ext["valueUri"])
    return None


def region_reasons(bundle: Mapping[str, Any]) -> dict[str, str]:
    """Return each region's denial-reason code by homeCommunityId (the first one it gave).

    A refusing region's issue carries why it refused (e.g. `practitioner-blocked`); a region's
    own warning passed on by the hub carries why it answered with nothing (`patient-reserved`).
    """
    reasons: dict[str, str] = {}
    for issue in _outcome_issues(bundle):
        hcid = _issue_hcid(issue)
        reason = denial_reason(issue)
        if hcid is not None and reason is not None:
            reasons.setdefault(hcid, reason)
    return reasons


def refusal_reasons(outcome: Mapping[str, Any]) -> list[str | None]:
    """Return, for each region the hub names as failed, the reason it gave (None: none given).

    A region the hub's locator did not ask (status `not-asked`) refused nothing and is left out.
    """
    return [
        denial_reason(issue)
        for issue in _outcome_issues(outcome)
        if _issue_hcid(issue) is not None
        and any(
            e.get("url") == _EXT_STATUS and e.get("valueCode") != NOT_ASKED
            for e in issue.get("extension", [])
        )
    ]


def region_lines(
    bundle: Mapping[str, Any], regions: Sequence[Mapping[str, str]]
) -> list[RegionLine]:
    """Return each known region's status (`ok` unless an outcome issue names it) and reason."""
    failures: dict[str, tuple[str, int | None]] = {}
    for issue in _outcome_issues(bundle):
        values = {e.get("url"): e for e in issue.get("extension", [])}
        status = values.get(_EXT_STATUS, {}).get("valueCode")
        hcid = values.get(_EXT_HCID, {}).get("valueUri")
        if status and hcid:
            latency = values.get(_EXT_LATENCY, {}).get("valueInteger")
            failures[str(hcid)] = (str(status), int(latency) if latency is not None else None)
    reasons = region_reasons(bundle)
    lines = []
    for region in regions:
        hcid = region["home_community_id"]
        status, latency = failures.get(hcid, ("ok", None))
        lines.append(RegionLine(hcid, region.get("name", hcid), status, latency, reasons.get(hcid)))
    return lines


def load_manifest(path: Path) -> dict[str, Any]:
    """Read the demo's manifest (endpoints, client, staff, patients)."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
