"""The health-personnel portal (the Kjernejournal view): log in, workplace, basis, overview.

Flow: `/helsepersonell/logg-inn` → the STS (authorization code + PKCE) →
`/helsepersonell/innlogget` → workplace (`/arbeidssted`) → patient and basis for access
(`/pasient`) → the national overview (`/oversikt`), with the emergency override
(`/nodtilgang`) and documents opened in place (`/dokument/{ref}`).
Routes stay thin: check the session and CSRF token, call one gateway function, render.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from onerecord.portals.basis import (
    ACCESS_BASES,
    CARE_RELATIONS,
    PURPOSES_OF_USE,
    AccessRequest,
    InvalidAccessRequest,
    healthcare_services,
    parse_access_request,
)
from onerecord.portals.document_pages import document_content, document_page
from onerecord.portals.errors import DocumentUnavailable, NotLoggedIn, PortalError
from onerecord.portals.gateway import fetch_overview, open_patient
from onerecord.portals.listing import PAGE_SIZES, SORT_KEYS, apply_listing, parse_listing_query
from onerecord.portals.oauth import token_claims
from onerecord.portals.override_log import EmergencyOverride
from onerecord.portals.overview import DocumentRow
from onerecord.portals.sessions import PortalSession
from onerecord.portals.web import Portal
from onerecord.portals.workplaces import Workplace, workplaces_of
from onerecord.search_client import HubSession, StaffMember
from onerecord.trust.access_token import PID_CLAIM

__all__ = ["EMERGENCY_BASIS", "EMERGENCY_PURPOSE", "install_hcp_routes"]

EMERGENCY_PURPOSE = "BTG"
"""Break the glass: opens blocked entries (TRUST-FRAMEWORK §4.5, D2)."""
EMERGENCY_BASIS = "FORHOYET_AKUTT"
"""The elevated access basis sent with the override (§4.3 item 3)."""
_REFRESH_MARGIN_S = 30.0
_MIN_REASON = 10
_MAX_REASON = 500
_BASE = "/helsepersonell"


def install_hcp_routes(app: FastAPI, portal: Portal) -> None:
    """Add the health-personnel pages to `app`."""
    settings = portal.settings

    def logged_in(request: Request) -> PortalSession:
        session = portal.session(request)
        if session is None or not session.logged_in:
            raise NotLoggedIn()
        return session

    def identified(request: Request) -> PortalSession:
        """A session whose user has logged in at the STS (workplace maybe not chosen yet)."""
        session = portal.session(request)
        if session is None or session.role != "hcp" or session.tokens is None:
            raise NotLoggedIn()
        return session

    @app.get(f"{_BASE}/logg-inn")
    async def login_page(request: Request) -> Response:
        session = portal.session_or_new(request)
        return portal.render(request, "hcp/login.html", session)

    @app.post(f"{_BASE}/logg-inn")
    async def login(request: Request) -> Response:
        session, _form = await portal.checked_form(request)
        return portal.begin_login(session, role="hcp", callback_path=f"{_BASE}/innlogget")

    @app.get(f"{_BASE}/innlogget")
    async def logged_in_callback(request: Request) -> Response:
        session, tokens = await portal.complete_login(request, role="hcp")
        claims = token_claims(tokens.access_token)
        session.user_nin = str(claims.get(PID_CLAIM) or "")
        session.user_name = str(claims.get("name") or "")
        # Nothing of an earlier login in this browser carries over to the new user.
        session.staff = None
        session.staff_key = None
        session.staff_name = None
        session.hpr_number = None
        session.workplace_name = None
        session.access = None
        session.emergency_reason = None
        session.hub = None
        session.rows = {}
        return portal.redirect(f"{_BASE}/arbeidssted", session)

    def staff_record(session: PortalSession) -> tuple[str, dict[str, Any]] | None:
        for key, data in settings.staff.items():
            if str(data.get("nin")) == session.user_nin and data.get("category"):
                return key, data
        return None

    def workplace_page(
        request: Request, session: PortalSession, status_code: int = 200, error: str | None = None
    ) -> Response:
        found = staff_record(session)
        places = workplaces_of(found[1]) if found else ()
        return portal.render(
            request,
            "hcp/workplace.html",
            session,
            status_code=status_code,
            workplaces=places,
            error=error,
        )

    @app.get(f"{_BASE}/arbeidssted")
    async def workplace_get(request: Request) -> Response:
        return workplace_page(request, identified(request))

    @app.post(f"{_BASE}/arbeidssted")
    async def workplace_post(request: Request) -> Response:
        session, form = await portal.checked_form(request)
        if session.role != "hcp" or session.tokens is None:
            raise NotLoggedIn()
        found = staff_record(session)
        places: tuple[Workplace, ...] = workplaces_of(found[1]) if found else ()
        chosen = next((p for p in places if p.key == form.get("workplace")), None)
        if found is None or chosen is None:
            return workplace_page(request, session, 400, "hcp.workplace.choose")
        key, data = found
        session.staff_key = key
        session.staff = StaffMember(
            nin=str(data["nin"]),
            category=str(data["category"]),
            legal_entity=chosen.legal_entity,
            point_of_care=chosen.point_of_care,
            department=chosen.department,
        )
        session.staff_name = str(data.get("name") or session.user_name or key)
        session.hpr_number = str(data["hpr"]) if data.get("hpr") else None
        session.workplace_name = chosen.label
        # The patient token's attestation names the old workplace: state the basis anew.
        session.access = None
        session.emergency_reason = None
        session.hub = None
        session.rows = {}
        return portal.redirect(f"{_BASE}/pasient", session)

    def patient_form(
        request: Request, session: PortalSession, status_code: int = 200, **extra: Any
    ) -> Response:
        return portal.render(
            request,
            "hcp/patient.html",
            session,
            status_code=status_code,
            services=healthcare_services(),
            purposes=PURPOSES_OF_USE,
            relations=CARE_RELATIONS,
            bases=ACCESS_BASES,
            **({"error": None, "form": {}} | extra),
        )

    @app.get(f"{_BASE}/pasient")
    async def patient_page(request: Request) -> Response:
        return patient_form(request, logged_in(request))

    @app.post(f"{_BASE}/pasient")
    async def choose_patient(request: Request) -> Response:
        session, form = await portal.checked_form(request)
        if not session.logged_in or session.staff is None or session.tokens is None:
            raise NotLoggedIn()
        try:
            access = parse_access_request(form)
        except InvalidAccessRequest as exc:
            return patient_form(request, session, 400, error=exc, form=form)
        session.emergency_reason = None
        await open_for_patient(session, access)
        session.rows = {}
        return portal.redirect(f"{_BASE}/oversikt", session)

    async def open_for_patient(
        session: PortalSession, access: AccessRequest, *, only_if_expiring: bool = False
    ) -> None:
        """Get a token stating `access` (the emergency purpose once overridden) for its patient.

        One renewal at a time per session (the refresh token rotates); the token and the basis
        it states change together, so no request pairs one patient's token with another's.
        """
        async with session.refresh_lock:
            assert session.staff is not None and session.tokens is not None
            left = session.tokens.expires_at - time.time()
            if only_if_expiring and left >= _REFRESH_MARGIN_S:
                return
            session.tokens, session.hub = await open_patient(
                portal.client(),
                sts_url=settings.sts_url,
                client_id=settings.client_id,
                client_key=portal.client_key,
                audience=settings.hub_audience,
                tokens=session.tokens,
                staff=session.staff,
                request=access,
                purpose_of_use=EMERGENCY_PURPOSE if session.emergency_reason else None,
            )
            session.access = access

    async def patient_hub(session: PortalSession) -> HubSession | None:
        """Return the patient's hub session, renewed shortly before its token expires."""
        if session.hub is None or session.access is None or session.tokens is None:
            return None
        if session.tokens.expires_at - time.time() < _REFRESH_MARGIN_S:
            await open_for_patient(session, session.access, only_if_expiring=True)
        return session.hub

    def access_basis(session: PortalSession) -> str | None:
        if session.emergency_reason is not None:
            return EMERGENCY_BASIS
        return session.access.access_basis if session.access else None

    @app.get(f"{_BASE}/oversikt")
    async def overview_page(request: Request) -> Response:
        session = logged_in(request)
        started = time.perf_counter()
        hub = await patient_hub(session)
        if hub is None or session.access is None:
            return portal.redirect(f"{_BASE}/pasient", session)
        overview = await fetch_overview(
            portal.client(),
            hub,
            hub_fhir=settings.hub_fhir,
            regions=settings.regions,
            patient=session.access.patient,
            access_basis=access_basis(session),
        )
        session.rows = {r.ref: r for r in overview.rows if r.ref}
        query = parse_listing_query(dict(request.query_params))
        page = apply_listing(overview.rows, query)
        response = portal.render(
            request,
            "hcp/overview.html",
            session,
            overview=overview,
            page=page,
            query=query,
            sort_keys=SORT_KEYS,
            page_sizes=PAGE_SIZES,
            access=session.access,
            emergency=session.emergency_reason is not None,
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        response.headers["server-timing"] = f"portal;dur={elapsed_ms:.1f}"
        return response

    @app.get(f"{_BASE}/nodtilgang")
    async def emergency_page(request: Request) -> Response:
        session = logged_in(request)
        if session.access is None:
            return portal.redirect(f"{_BASE}/pasient", session)
        return portal.render(request, "hcp/emergency.html", session, error=None, reason="")

    @app.post(f"{_BASE}/nodtilgang")
    async def emergency_override(request: Request) -> Response:
        session, form = await portal.checked_form(request)
        if not session.logged_in or session.access is None or session.tokens is None:
            raise NotLoggedIn()
        assert session.staff is not None
        reason = " ".join(form.get("reason", "").split())
        if not _MIN_REASON <= len(reason) <= _MAX_REASON:
            return portal.render(
                request,
                "hcp/emergency.html",
                session,
                status_code=400,
                error="hcp.emergency.reason-length",
                reason=reason[:_MAX_REASON],
            )
        session.emergency_reason = reason
        try:
            await open_for_patient(session, session.access)
        except PortalError:
            session.emergency_reason = None
            raise
        assert session.tokens is not None
        portal.override_log.write(
            EmergencyOverride(
                at=datetime.now(UTC).isoformat(),
                practitioner_hpr=session.hpr_number,
                practitioner_name=session.staff_name or "",
                legal_entity=session.staff.legal_entity,
                point_of_care=session.staff.point_of_care,
                department=session.staff.department,
                patient=session.access.patient,
                reason=reason,
                decision_ref=session.access.decision_ref,
                token_jti=str(token_claims(session.tokens.access_token).get("jti") or "") or None,
            )
        )
        return portal.redirect(f"{_BASE}/oversikt", session)

    async def listed(session: PortalSession, ref: str) -> tuple[DocumentRow, HubSession]:
        """Return a document of the last overview and the hub session to fetch it with."""
        row = session.rows.get(ref)
        hub = await patient_hub(session)
        if row is None or row.blocked or hub is None:
            raise DocumentUnavailable()
        return row, hub

    @app.get(f"{_BASE}/dokument/{{ref}}")
    async def document(ref: str, request: Request) -> Response:
        session = logged_in(request)
        row, hub = await listed(session, ref)
        return await document_page(
            portal,
            request,
            session,
            hub=hub,
            row=row,
            access_basis=access_basis(session),
            back_url=f"{_BASE}/oversikt",
            content_url=f"{_BASE}/dokument/{ref}/innhold",
        )

    @app.get(f"{_BASE}/dokument/{{ref}}/innhold")
    async def document_bytes(ref: str, request: Request) -> Response:
        session = logged_in(request)
        row, hub = await listed(session, ref)
        return await document_content(
            portal,
            hub=hub,
            row=row,
            access_basis=access_basis(session),
            download=request.query_params.get("last-ned") == "1",
        )
