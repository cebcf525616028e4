"""The portal as a hub client: a token for the stated basis, then the overview from the hub.

Reuses `onerecord.search_client` (client assertion, DPoP, patient digest, ITI-67 call).
References: RFC 9449 (DPoP), TRUST-FRAMEWORK §1.1 and ATT-4 (attestation bound to the patient),
IHE ITI TF-2 3.67 (Find Document References).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import httpx

from onerecord.portals.basis import AccessRequest, build_attestation
from onerecord.portals.errors import HubRefused, HubUnavailable, TokenRefused
from onerecord.portals.overview import Overview, build_overview
from onerecord.search_client import HubSession, StaffMember, practitioner_session, search_hub
from onerecord.trust.keys import SigningKey

__all__ = ["MASKED_COUNT_HEADER", "fetch_overview", "open_patient"]

MASKED_COUNT_HEADER = "x-onerecord-masked-count"


async def open_patient(
    http: httpx.AsyncClient,
    *,
    sts_url: str,
    client_id: str,
    client_key: SigningKey,
    audience: str,
    staff: StaffMember,
    request: AccessRequest,
) -> HubSession:
    """Get a DPoP-bound token whose attestation states `request`, bound to its patient."""
    try:
        return await practitioner_session(
            http,
            sts_url=sts_url,
            client_id=client_id,
            client_key=client_key,
            staff=staff,
            patient=request.patient,
            audience=audience,
            attestation_for=lambda digest: build_attestation(staff, request, patient_digest=digest),
        )
    except httpx.HTTPError:
        raise TokenRefused("Tilgangstjenesten svarte ikke.") from None
    except RuntimeError:  # search_client's way of saying the STS refused
        raise TokenRefused() from None


async def fetch_overview(
    http: httpx.AsyncClient,
    session: HubSession,
    *,
    hub_fhir: str,
    regions: Sequence[Mapping[str, str]],
    count: int = 200,
) -> Overview:
    """Ask the hub for the patient's documents across the regions and build the overview."""
    if session.patient_nin is None:
        raise HubRefused("Ingen pasient er valgt.", advice="Velg pasient først.")
    try:
        response = await search_hub(
            http, session, hub_fhir=hub_fhir, patient=session.patient_nin, count=count
        )
    except httpx.HTTPError:
        raise HubUnavailable() from None
    if response.status_code in (401, 403):
        raise HubRefused()
    if response.status_code != 200:
        raise HubUnavailable(
            f"Den nasjonale tjenesten svarte med feil (HTTP {response.status_code})."
        )
    try:
        bundle = response.json()
    except ValueError:
        raise HubUnavailable("Den nasjonale tjenesten svarte med noe uleselig.") from None
    raw = response.headers.get(MASKED_COUNT_HEADER)
    masked = int(raw) if raw is not None and raw.isdigit() else None
    return build_overview(bundle, regions, masked_count=masked)
