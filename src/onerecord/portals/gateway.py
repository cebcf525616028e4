"""The portals as hub clients: a token for the stated basis, the overview, one document.

Health personnel: the refresh token gets a new access token whose attestation states the
basis, bound to the patient by a salted digest (TRUST-FRAMEWORK §1.1, ATT-4). The access basis
travels as `nhn-access-basis` (the hub forwards it); the emergency override sends the elevated
`FORHOYET_AKUTT` (§4.3, D2). Citizens use their login token as it is.
References: RFC 9449 (DPoP), IHE ITI TF-2 3.67 (Find Document References), 3.68 (Retrieve).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

import httpx
import orjson

from onerecord.domain import DomainError
from onerecord.mhd import MhdError, RetrieveKey, denial_reason
from onerecord.portals.basis import AccessRequest, build_attestation
from onerecord.portals.errors import (
    DocumentUnavailable,
    HubRefused,
    HubUnavailable,
    PractitionerBlocked,
    RegionUnreachable,
    SessionEnded,
)
from onerecord.portals.oauth import TokenSet, refresh
from onerecord.portals.overview import PRACTITIONER_BLOCKED, Overview, build_overview
from onerecord.search_client import (
    HubSession,
    StaffMember,
    patient_identifier,
    refusal_reasons,
)
from onerecord.trust.emergency import EMERGENCY_MEMBER, EmergencyGrant
from onerecord.trust.keys import SigningKey
from onerecord.trust.patient_binding import encode_salt, make_digest, new_salt

__all__ = [
    "ACCESS_BASIS_HEADER",
    "MASKED_COUNT_HEADER",
    "MAX_DOCUMENT_BYTES",
    "RetrievedDocument",
    "fetch_document",
    "fetch_overview",
    "open_patient",
    "within_deadline",
]

MASKED_COUNT_HEADER = "x-onerecord-masked-count"
ACCESS_BASIS_HEADER = "nhn-access-basis"
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
_MAX_ENTRIES = 2000
_MAX_REFUSAL_BYTES = 64 * 1024
_PAGE = 200
_T = TypeVar("_T")


async def within_deadline(deadline_s: float | None, call: Awaitable[_T]) -> _T:
    """Await one hub exchange (all its pages) for at most `deadline_s`; past it the hub is
    unavailable. The one deadline of both portals (`PortalSettings.hub_deadline_s`)."""
    if deadline_s is None:
        return await call
    try:
        async with asyncio.timeout(deadline_s):
            return await call
    except TimeoutError:
        raise HubUnavailable() from None


async def open_patient(
    http: httpx.AsyncClient,
    *,
    sts_url: str,
    client_id: str,
    client_key: SigningKey,
    audience: str,
    tokens: TokenSet,
    staff: StaffMember,
    request: AccessRequest,
    purpose_of_use: str | None = None,
    emergency: EmergencyGrant | None = None,
) -> tuple[TokenSet, HubSession]:
    """Get a token whose attestation states `request` (or an emergency purpose), for its patient.

    `emergency`: the override's grant (scope, acute basis, end), signed into the token by the
    STS with purpose BTG, so no party on the way can widen it (issue 11, defect 7).
    """
    salt = new_salt()
    digest = make_digest(request.patient, salt)
    attestation = build_attestation(staff, request, patient_digest=digest)
    if emergency is not None:
        purpose_of_use = "BTG"
        attestation[EMERGENCY_MEMBER] = emergency.to_json()
    if purpose_of_use is not None:
        attestation["care_relationship"]["purpose_of_use"]["code"] = purpose_of_use
    new_tokens = await refresh(
        http,
        sts_url=sts_url,
        client_id=client_id,
        client_key=client_key,
        tokens=tokens,
        attestation=attestation,
        audience=audience,
    )
    return new_tokens, new_tokens.hub_session(request.patient, encode_salt(salt))


def _headers(
    session: HubSession, method: str, url: str, access_basis: str | None
) -> dict[str, str]:
    headers = session.headers(method, url)
    if access_basis:
        headers[ACCESS_BASIS_HEADER] = access_basis
    return headers


def _merge_pages(first: Mapping[str, Any], later: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    merged = dict(first)
    entries = list(first.get("entry", []))
    for page in later:
        entries.extend(
            e
            for e in page.get("entry", [])
            if e.get("resource", {}).get("resourceType") == "DocumentReference"
        )
    merged["entry"] = entries
    return merged


def _next_url(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link", []):
        if link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None


async def _get_bundle(
    http: httpx.AsyncClient,
    session: HubSession,
    url: str,
    params: Mapping[str, str] | None,
    access_basis: str | None,
) -> httpx.Response:
    try:
        return await http.get(
            url, params=params, headers=_headers(session, "GET", url, access_basis)
        )
    except httpx.HTTPError:
        raise HubUnavailable() from None


def _refusal_reasons(content: bytes) -> tuple[str | None, ...]:
    """The denial-reason code each region gave in a 403's OperationOutcome (nothing if none).

    A search refusal names its regions (`refusal_reasons`); a retrieve refusal is the one
    region's own OperationOutcome, passed on by the hub, whose issues carry the code alone.
    """
    try:
        outcome = orjson.loads(content) if len(content) <= _MAX_REFUSAL_BYTES else None
    except orjson.JSONDecodeError:
        outcome = None
    if not isinstance(outcome, dict):
        return ()
    reasons = refusal_reasons(outcome)
    if reasons:
        return tuple(reasons)
    issues = outcome.get("issue")
    return tuple(denial_reason(i) for i in issues) if isinstance(issues, list) else ()


def _refusal(content: bytes) -> HubRefused:
    """Say why the hub refused: the patient's block of this health worker has its own page.

    The hub answers 403 when every region refused; each region's issue carries its reason.
    """
    reasons = _refusal_reasons(content)
    if reasons and all(reason == PRACTITIONER_BLOCKED for reason in reasons):
        refused: HubRefused = PractitionerBlocked()
    else:
        refused = HubRefused()
    refused.reasons = reasons
    return refused


def _checked(response: httpx.Response) -> dict[str, Any]:
    if response.status_code == 401:
        raise SessionEnded()  # the hub no longer accepts the login's token
    if response.status_code == 403:
        raise _refusal(response.content)
    if response.status_code != 200:
        raise HubUnavailable("error.hub-status", status=response.status_code)
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise HubUnavailable("error.hub-garbled") from None
    if not isinstance(body, dict):
        raise HubUnavailable("error.hub-garbled")
    return body


async def fetch_overview(
    http: httpx.AsyncClient,
    session: HubSession,
    *,
    hub_fhir: str,
    regions: Sequence[Mapping[str, str]],
    patient: str,
    access_basis: str | None = None,
    limit: int = _MAX_ENTRIES,
    deadline_s: float | None = None,
) -> Overview:
    """Ask the hub for the patient's documents in every region (all pages, up to `limit`),
    all pages within `deadline_s` together."""
    return await within_deadline(
        deadline_s,
        _fetch_overview(
            http,
            session,
            hub_fhir=hub_fhir,
            regions=regions,
            patient=patient,
            access_basis=access_basis,
            limit=limit,
        ),
    )


async def _fetch_overview(
    http: httpx.AsyncClient,
    session: HubSession,
    *,
    hub_fhir: str,
    regions: Sequence[Mapping[str, str]],
    patient: str,
    access_basis: str | None,
    limit: int,
) -> Overview:
    url = f"{hub_fhir.rstrip('/')}/DocumentReference"
    params = {"patient.identifier": patient_identifier(patient), "_count": str(_PAGE)}
    response = await _get_bundle(http, session, url, params, access_basis)
    first = _checked(response)
    raw = response.headers.get(MASKED_COUNT_HEADER)
    masked = int(raw) if raw is not None and raw.isascii() and raw.isdigit() else None
    later: list[dict[str, Any]] = []
    count = len(first.get("entry", []))
    next_url = _next_url(first)
    while next_url and count < limit:
        if not next_url.startswith(f"{hub_fhir.rstrip('/')}/"):
            # The token and its proofs go only to the hub, whatever a next link says.
            raise HubUnavailable("error.hub-garbled")
        page = _checked(await _get_bundle(http, session, next_url, None, access_basis))
        later.append(page)
        count += len(page.get("entry", []))
        next_url = _next_url(page)
    return build_overview(_merge_pages(first, later), regions, masked_count=masked)


class RetrievedDocument:
    """A document's bytes and media type, as the hub returned them."""

    def __init__(self, content: bytes, media_type: str) -> None:
        self.content = content
        self.media_type = media_type


async def fetch_document(
    http: httpx.AsyncClient,
    session: HubSession,
    *,
    hub_fhir: str,
    ref: str,
    access_basis: str | None = None,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    region: str | None = None,
) -> RetrievedDocument:
    """Retrieve one document (ITI-68) through the hub; refuse a malformed reference.

    `region`: the name of the region that holds it (from the overview row). When the hub
    cannot reach that region (502, 503, 504) the user is told so by name, not that the
    document may be withdrawn. A 401 ends the login (`SessionEnded`); a 403 because the patient
    has blocked this health worker says so (`PractitionerBlocked`), as the overview does.
    """
    try:
        key = RetrieveKey.parse(ref)
    except (DomainError, MhdError, ValueError):
        raise DocumentUnavailable() from None
    url = f"{hub_fhir.rstrip('/')}/Binary/{key.token()}"
    headers = _headers(session, "GET", url, access_basis)
    try:
        async with http.stream("GET", url, headers=headers) as response:
            if response.status_code == 401:
                raise SessionEnded()
            if response.status_code == 403:
                # The region's OperationOutcome, passed on by the hub: read a small one only.
                content = b""
                async for chunk in response.aiter_bytes():
                    content += chunk
                    if len(content) > _MAX_REFUSAL_BYTES:
                        break
                if isinstance(_refusal(content), PractitionerBlocked):
                    raise PractitionerBlocked()
                raise DocumentUnavailable()
            if response.status_code in (404, 410):
                raise DocumentUnavailable()
            if response.status_code in (502, 503, 504) and region:
                raise RegionUnreachable(region=region)
            if response.status_code != 200:
                raise HubUnavailable("error.hub-status", status=response.status_code)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise DocumentUnavailable()
                chunks.append(chunk)
            media = response.headers.get("content-type", "application/octet-stream")
    except httpx.HTTPError:
        raise HubUnavailable() from None
    return RetrievedDocument(b"".join(chunks), media.split(";")[0].strip().lower())
