"""The health-personnel portal (the Kjernejournal view): log in, workplace, basis, overview.

Flow: `/helsepersonell/logg-inn` → the STS (authorization code + PKCE) →
`/helsepersonell/innlogget` → workplace (`/arbeidssted`; changed later from the header's
«Bytt arbeidssted», which asks for the basis again and comes back) → patient and basis for access
(`/pasient`; the number looked up in the population register, `patient_lookup.py`) → the
national overview (`/oversikt`) under a header saying who the patient is, with the emergency
override (`/nodtilgang`) and documents opened in place (`/dokument/{ref}`).
Routes stay thin: check the session and CSRF token, call one gateway function, render.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import structlog
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
from onerecord.portals.code_labels import CodeLabels
from onerecord.portals.document_pages import document_content, document_page
from onerecord.portals.emergency import (
    REASON_CATEGORIES,
    ActiveOverride,
    find_choice,
    override_offered,
    scope_choices,
    widen,
)
from onerecord.portals.errors import DocumentUnavailable, NotLoggedIn
from onerecord.portals.gateway import fetch_overview, open_patient
from onerecord.portals.i18n import Translator
from onerecord.portals.imaging_pages import (
    compare_page,
    imaging_page,
    imaging_proxy,
    is_imaging,
    load_manifest,
    require_imaging,
)
from onerecord.portals.listing import (
    PAGE_SIZES,
    SORT_KEYS,
    ListingQuery,
    apply_listing,
    parse_listing_query,
    refresh_url,
)
from onerecord.portals.listing_cache import REFRESH_PARAM, CachedOverview
from onerecord.portals.notify import OverrideNotice
from onerecord.portals.oauth import token_claims
from onerecord.portals.override_log import (
    MAX_REASON,
    EmergencyOverride,
    normalise_reason,
    reason_problem,
)
from onerecord.portals.overview import DocumentRow
from onerecord.portals.patient_lookup import LookupStatus, PatientLookupResult, look_up_patient
from onerecord.portals.return_to import (
    HCP_AREA,
    after_basis,
    after_login,
    local_page,
    needs_patient,
)
from onerecord.portals.sessions import PortalSession
from onerecord.portals.visits import arrived_after
from onerecord.portals.web import Portal, language_of
from onerecord.portals.workplaces import Workplace, workplaces_of
from onerecord.search_client import HubSession, StaffMember
from onerecord.trust.access_token import PID_CLAIM

__all__ = ["EMERGENCY_BASIS", "EMERGENCY_PURPOSE", "install_hcp_routes"]

EMERGENCY_PURPOSE = "BTG"
"""Break the glass: opens blocked entries (TRUST-FRAMEWORK §4.5, D2)."""
EMERGENCY_BASIS = "FORHOYET_AKUTT"
"""The elevated access basis sent with the override (§4.3 item 3)."""
_REFRESH_MARGIN_S = 30.0
log = structlog.get_logger("onerecord.portals.hcp")
_BASE = "/helsepersonell"
_OSLO = ZoneInfo("Europe/Oslo")


@dataclass(frozen=True, slots=True)
class _OpenPatient:
    """One consistent view of the session's patient: the stated basis, the override, the token.

    Taken once at the start of a request and used for its hub calls and its page, so that a
    patient chosen in another tab meanwhile cannot mix one patient's header with another's
    documents.
    """

    access: AccessRequest
    override: ActiveOverride | None
    hub: HubSession
    lookup: PatientLookupResult | None = None
    """Who the population register says the patient is (None: no register configured)."""

    @property
    def emergency_reason(self) -> str | None:
        return self.override.reason if self.override is not None else None

    @property
    def access_basis(self) -> str:
        return EMERGENCY_BASIS if self.override is not None else self.access.access_basis

    def held_by(self, session: PortalSession) -> bool:
        """True while the session still states this basis (rows fetched with it belong)."""
        return session.access == self.access and session.override is self.override


def _now_s() -> float:
    """Now, in Unix seconds: when an override ends (a function, so tests can move time)."""
    return time.time()


def _today() -> date:
    """Today in Norway, for the patient's age in the header."""
    return datetime.now(_OSLO).date()


def _is_current(place: Workplace, staff: StaffMember | None) -> bool:
    """True when `place` is the workplace the worker acts for now."""
    return (
        staff is not None
        and staff.legal_entity == place.legal_entity
        and staff.point_of_care == place.point_of_care
        and staff.department == place.department
    )


def _with_next(url: str, back: str | None) -> str:
    return f"{url}?neste={quote(back, safe='')}" if back else url


def _patient_form_url(back: str | None) -> str:
    """The patient form, going on afterwards to the patient page the worker came from."""
    onward = after_basis(back) if back is not None and needs_patient(back) else None
    return _with_next(f"{_BASE}/pasient", onward)


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
        session, form = await portal.checked_form(request)
        # Logging in again from «Økten din er avsluttet»: come back to that page (defect 8).
        session.return_to = after_login(HCP_AREA, form.get("neste"))
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
        session.patient_lookup = None
        session.rows = {}
        session.kept_patient = None  # never carried over to another login
        back, session.return_to = session.return_to, None
        return portal.redirect(_with_next(f"{_BASE}/arbeidssted", back), session)

    def staff_record(session: PortalSession) -> tuple[str, dict[str, Any]] | None:
        for key, data in settings.staff.items():
            if str(data.get("nin")) == session.user_nin and data.get("category"):
                return key, data
        return None

    def workplace_page(
        request: Request,
        session: PortalSession,
        status_code: int = 200,
        error: str | None = None,
        back: str | None = None,
    ) -> Response:
        found = staff_record(session)
        places = workplaces_of(found[1]) if found else ()
        current = next((p.key for p in places if _is_current(p, session.staff)), None)
        return portal.render(
            request,
            "hcp/workplace.html",
            session,
            status_code=status_code,
            workplaces=places,
            error=error,
            current=current,
            neste=back,
        )

    @app.get(f"{_BASE}/arbeidssted")
    async def workplace_get(request: Request) -> Response:
        """Choose (after login) or change (the header's «Bytt arbeidssted») the workplace."""
        back = local_page(request.query_params.get("neste"), HCP_AREA)
        return workplace_page(request, identified(request), back=back)

    @app.post(f"{_BASE}/arbeidssted")
    async def workplace_post(request: Request) -> Response:
        session, form = await portal.checked_form(request)
        if session.role != "hcp" or session.tokens is None:
            raise NotLoggedIn()
        back = local_page(form.get("neste"), HCP_AREA)
        found = staff_record(session)
        places: tuple[Workplace, ...] = workplaces_of(found[1]) if found else ()
        chosen = next((p for p in places if p.key == form.get("workplace")), None)
        if found is None or chosen is None:
            return workplace_page(request, session, 400, "hcp.workplace.choose", back)
        if _is_current(chosen, session.staff):
            # The same workplace again: nothing changes, the basis stands; back to the page.
            if session.access is not None:
                return portal.redirect(back or f"{_BASE}/oversikt", session)
            return portal.redirect(_patient_form_url(back), session)
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
        # The patient token's attestation names the old workplace: state the basis anew, for
        # the same patient (their number is filled in), then back to where the worker was.
        if session.access is not None:
            session.kept_patient = session.access.patient
        session.access = None
        session.emergency_reason = None
        session.hub = None
        session.patient_lookup = None
        session.rows = {}
        return portal.redirect(_patient_form_url(back), session)

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
        session = logged_in(request)
        # `neste`: the overview to go on to; the number a workplace change kept, filled in.
        back = local_page(request.query_params.get("neste"), HCP_AREA)
        form = {"patient": session.kept_patient or "", "neste": back or ""}
        return patient_form(request, session, form=form)

    @app.post(f"{_BASE}/pasient")
    async def choose_patient(request: Request) -> Response:
        session, form = await portal.checked_form(request)
        if not session.logged_in or session.staff is None or session.tokens is None:
            raise NotLoggedIn()
        try:
            access = parse_access_request(form)
        except InvalidAccessRequest as exc:
            return patient_form(request, session, 400, error=exc, form=form)
        lookup = None
        if settings.register_fhir is not None:
            lookup = await look_up(session, access, settings.register_fhir)
            if lookup is None:
                return portal.redirect(f"{_BASE}/pasient", session)
            if lookup.status is LookupStatus.UNKNOWN:
                # A number with valid check digits that nobody has: say so, open no record.
                unknown = InvalidAccessRequest("hcp.patient.unknown")
                return patient_form(request, session, 404, error=unknown, form=form)
        if await open_for_patient(session, access, lookup=lookup) is None:
            # Another workplace or login meanwhile: state the basis again for that one.
            return portal.redirect(f"{_BASE}/pasient", session)
        session.kept_patient = None
        return portal.redirect(after_basis(form.get("neste")), session)

    def open_patient_of(session: PortalSession) -> _OpenPatient | None:
        """Return what the session states now, read in one go (no await in between)."""
        if session.hub is None or session.access is None:
            return None
        return _OpenPatient(session.access, session.override, session.hub, session.patient_lookup)

    async def look_up(
        session: PortalSession, access: AccessRequest, register_fhir: str
    ) -> PatientLookupResult | None:
        """Ask the population register who `access.patient` is (IHE PDQm ITI-78).

        With a token of the register's own audience whose attestation states this basis and
        is bound to this number, like the hub's. None when a new login or another workplace
        came in meanwhile.
        """
        async with session.refresh_lock:
            staff, tokens = session.staff, session.tokens
            if staff is None or tokens is None:
                return None
            new_tokens, register = await open_patient(
                portal.client(),
                sts_url=settings.sts_url,
                client_id=settings.client_id,
                client_key=portal.client_key,
                audience=settings.register_audience,
                tokens=tokens,
                staff=staff,
                request=access,
            )
            if session.tokens is not tokens:
                return None
            session.tokens = new_tokens  # the refresh token has rotated
            if session.staff is not staff:
                return None
        return await look_up_patient(
            portal.client(), register, register_fhir=register_fhir, patient=access.patient
        )

    async def open_for_patient(
        session: PortalSession,
        access: AccessRequest | None,
        *,
        override: ActiveOverride | None = None,
        lookup: PatientLookupResult | None = None,
    ) -> _OpenPatient | None:
        """Get a token stating `access` (with an emergency override's grant) for its patient.

        `access` None renews the token of the basis the session states when the lock is taken,
        and only when it expires within the margin — or when the override ends within it: the
        renewal then drops the override (issue 11, defect 7). One renewal at a time per session (the
        refresh token rotates); the token, the basis and the override change together once the
        STS has answered, so no request pairs one patient's token with another's basis; a new
        patient's register `lookup` changes with them (renewals keep the one held). Return
        what the session states afterwards; None when a new login or another workplace came
        in meanwhile, since the token then states neither.
        """
        async with session.refresh_lock:
            staff, tokens = session.staff, session.tokens
            if staff is None or tokens is None:
                return None
            if access is None:
                now = _now_s()
                left = tokens.expires_at - now
                override = session.override
                ending = override is not None and override.ended(now + _REFRESH_MARGIN_S)
                if session.access is None or (left >= _REFRESH_MARGIN_S and not ending):
                    return open_patient_of(session)
                access, lookup = session.access, session.patient_lookup
                if ending:
                    override = None
                    session.flash = "hcp.override.expired"
            new_tokens, hub = await open_patient(
                portal.client(),
                sts_url=settings.sts_url,
                client_id=settings.client_id,
                client_key=portal.client_key,
                audience=settings.hub_audience,
                tokens=tokens,
                staff=staff,
                request=access,
                emergency=override.grant if override is not None else None,
            )
            if session.tokens is not tokens:
                return None  # a new login meanwhile: nothing of this one applies
            session.tokens = new_tokens  # the refresh token has rotated
            if session.staff is not staff:
                return None  # another workplace meanwhile: the token names the old one
            if session.access != access or session.override is not override:
                session.rows = {}  # the last overview was of another patient, basis or scope
            session.hub, session.access, session.override = hub, access, override
            session.patient_lookup = lookup
            return open_patient_of(session)

    async def patient_view(session: PortalSession) -> _OpenPatient | None:
        """Return the session's patient, basis and token, renewed shortly before it expires."""
        if session.hub is None or session.access is None or session.tokens is None:
            return None
        now = _now_s()
        ending = session.override is not None and session.override.ended(now + _REFRESH_MARGIN_S)
        if session.tokens.expires_at - now < _REFRESH_MARGIN_S or ending:
            return await open_for_patient(session, None)
        return open_patient_of(session)

    @app.get(f"{_BASE}/oversikt")
    async def overview_page(request: Request) -> Response:
        session = logged_in(request)
        started = time.perf_counter()
        opened = await patient_view(session)
        if opened is None:
            return portal.redirect(f"{_BASE}/pasient", session)
        query = parse_listing_query(dict(request.query_params))
        # Whose rows these are: the worker at this workplace, the patient, basis and override.
        owner = ("hcp", session.staff, opened.access, opened.override)
        refresh = REFRESH_PARAM in request.query_params
        cached = session.overview_cache
        if (
            not refresh
            and cached is not None
            and cached.usable(owner, time.monotonic(), settings.listing_max_age_s)
        ):
            # Sorting, filtering, paging and back links: the rows already fetched (defect 4).
            overview, since, fetched = cached.overview, cached.since, cached.fetched_wall
        else:
            overview = await fetch_overview(
                portal.client(),
                opened.hub,
                hub_fhir=settings.hub_fhir,
                deadline_s=settings.hub_deadline_s,
                regions=settings.regions,
                patient=opened.access.patient,
                access_basis=opened.access_basis,
            )
            since = await portal.visits.since(
                session.visits_seen, user=session.user_nin or "", patient=opened.access.patient
            )
            fetched = datetime.now(UTC)
            if opened.held_by(session):
                # Else another patient or basis was chosen meanwhile: these rows are not
                # theirs, and the next overview fetches afresh.
                session.rows = {r.ref: r for r in overview.rows if r.ref}
                session.blocked_rows = tuple(r for r in overview.rows if r.blocked)
                session.overview_cache = CachedOverview(
                    owner, time.monotonic(), fetched, overview, since
                )
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
            access=opened.access,
            emergency=opened.override is not None,
            patient=opened.lookup,
            today=_today(),
            codes=CodeLabels(Translator(language_of(request))),
            new_since=since,
            is_new=arrived_after,
            fetched=fetched,
            refresh_url=refresh_url(f"{_BASE}/oversikt", query),
            **override_context(session, opened),
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        response.headers["server-timing"] = f"portal;dur={elapsed_ms:.1f}"
        return response

    def overview_url(query: ListingQuery) -> str:
        """The overview in the view `query` states (the document page's way back)."""
        params = query.params()
        return f"{_BASE}/oversikt?{params}" if params else f"{_BASE}/oversikt"

    # --- emergency override (issue 11, defect 7; TRUST-FRAMEWORK §4.3, §4.5, D2) ----------

    def override_context(session: PortalSession, opened: _OpenPatient) -> dict[str, Any]:
        """What the overview shows of the override: offered, in force, just ended."""
        notice = session.flash if (session.flash or "").startswith("hcp.override.") else None
        if notice is not None:
            session.flash = None
        return {
            "override": opened.override,
            "override_offered": override_offered(opened.access),
            "override_notice": notice,
        }

    def emergency_form(
        request: Request,
        session: PortalSession,
        *,
        status_code: int = 200,
        error: str | None = None,
        form: Mapping[str, str] | None = None,
    ) -> Response:
        access = session.access
        if not override_offered(access):
            # Under UNNTAK or SAMTYKKE the override is not offered: say why and how (a request
            # for it is refused, 403).
            return portal.render(
                request,
                "hcp/emergency.html",
                session,
                status_code=403 if request.method == "POST" else 200,
                not_acute=True,
                basis=access.access_basis if access else "",
                patient=session.patient_lookup,
                today=_today(),
            )
        form = form or {}
        return portal.render(
            request,
            "hcp/emergency.html",
            session,
            status_code=status_code,
            not_acute=False,
            error=error,
            choices=scope_choices(session.blocked_rows),
            selected=form.get("scope", ""),
            categories=REASON_CATEGORIES,
            category=form.get("category", ""),
            reason=form.get("reason", "")[:MAX_REASON],
            minutes=settings.emergency_minutes,
            patient=session.patient_lookup,
            today=_today(),
        )

    @app.get(f"{_BASE}/nodtilgang")
    async def emergency_page(request: Request) -> Response:
        session = logged_in(request)
        if session.access is None:
            return portal.redirect(f"{_BASE}/pasient", session)
        # Asked from a «Sperret» row (one document) or for one class; else chosen on the page.
        document = request.query_params.get("dokument", "")[:64]
        klass = request.query_params.get("klasse", "")[:300]
        selected = f"dokument:{document}" if document else (f"klasse:{klass}" if klass else "")
        return emergency_form(request, session, form={"scope": selected} if selected else None)

    @app.post(f"{_BASE}/nodtilgang")
    async def emergency_override(request: Request) -> Response:
        session, form = await portal.checked_form(request)
        # The patient whose page sent the form, and who they are, whatever comes next.
        access, lookup, before = session.access, session.patient_lookup, session.override
        if not session.logged_in or access is None or session.tokens is None:
            raise NotLoggedIn()
        if not override_offered(access):
            return emergency_form(request, session, form=form)
        choice = find_choice(form.get("scope", ""), scope_choices(session.blocked_rows))
        category = form.get("category", "")
        reason = normalise_reason(form.get("reason", ""))
        problem = (
            "hcp.override.scope-missing"
            if choice is None
            else "hcp.override.category-missing"
            if category not in REASON_CATEGORIES
            else reason_problem(reason)
        )
        if problem is not None or choice is None:
            shown = dict(form) | {"reason": reason}
            return emergency_form(request, session, status_code=400, error=problem, form=shown)
        until = int(_now_s()) + settings.emergency_minutes * 60
        override = widen(before, choice, reason_category=category, reason=reason, until=until)
        opened = await open_for_patient(session, access, override=override, lookup=lookup)
        if opened is None or session.staff is None or session.tokens is None:
            # Another workplace or login meanwhile: nothing was opened, nothing is logged.
            return portal.redirect(f"{_BASE}/pasient", session)
        # No await since the token came: this worker and this token opened the documents.
        staff = session.staff
        jti = str(token_claims(session.tokens.access_token).get("jti") or "") or None
        portal.override_log.write(
            EmergencyOverride(
                at=datetime.now(UTC).isoformat(),
                practitioner_hpr=session.hpr_number,
                practitioner_name=session.staff_name or "",
                legal_entity=staff.legal_entity,
                point_of_care=staff.point_of_care,
                department=staff.department,
                patient=opened.access.patient,
                reason=reason,
                decision_ref=opened.access.decision_ref,
                token_jti=jti,
                reason_category=category,
                scope=tuple(c.value for c in override.opened),
                until=datetime.fromtimestamp(until, UTC).isoformat(),
            )
        )
        if before is None:
            notify_citizen(session, lookup, key=jti or opened.access.decision_ref)
        return portal.redirect(f"{_BASE}/oversikt", session)

    def notify_citizen(
        session: PortalSession, lookup: PatientLookupResult | None, *, key: str
    ) -> None:
        """Queue the citizen's e-mail (one per override episode); never waits for SMTP."""
        notifier = portal.notifier
        header = lookup.header if lookup is not None else None
        if notifier is None:
            return
        if header is None or header.contact_email is None:
            log.info("notice.no-address", override=key)
            return
        notifier.notify(
            OverrideNotice(
                key=key,
                to=header.contact_email,
                organisation=session.workplace_name or "",
                day=_today().isoformat(),
                log_url=f"{settings.public_url}/innbygger/tilgangslogg",
            )
        )

    @app.post(f"{_BASE}/nodtilgang/avslutt")
    async def end_override(request: Request) -> Response:
        """End the override at once: the token without the grant replaces the one with it."""
        session, _form = await portal.checked_form(request)
        access, lookup = session.access, session.patient_lookup
        if not session.logged_in or access is None or session.tokens is None:
            raise NotLoggedIn()
        if session.override is not None:
            opened = await open_for_patient(session, access, override=None, lookup=lookup)
            if opened is None:
                return portal.redirect(f"{_BASE}/pasient", session)
            session.flash = "hcp.override.ended"
        return portal.redirect(f"{_BASE}/oversikt", session)

    async def listed(session: PortalSession, ref: str) -> tuple[DocumentRow, _OpenPatient]:
        """Return a document of the last overview and the patient view to fetch it with."""
        opened = await patient_view(session)
        # Read right after the view, with no await between: the session only ever holds rows
        # fetched with the basis it states, so the row and the token are of one patient.
        row = session.rows.get(ref)
        if opened is None or row is None or row.blocked:
            raise DocumentUnavailable()
        return row, opened

    def imaging_context(request: Request, opened: _OpenPatient) -> dict[str, Any]:
        return {
            "codes": CodeLabels(Translator(language_of(request))),
            "patient": opened.lookup,
            "today": _today(),
            "override": opened.override,
        }

    @app.get(f"{_BASE}/dokument/{{ref}}")
    async def document(ref: str, request: Request) -> Response:
        session = logged_in(request)
        row, opened = await listed(session, ref)
        query = parse_listing_query(dict(request.query_params))
        if is_imaging(row):
            return await imaging_page(
                portal,
                request,
                session,
                hub=opened.hub,
                row=row,
                rows=tuple(session.rows.values()),
                access_basis=opened.access_basis,
                page_url=f"{_BASE}/dokument/{ref}",
                back_url=overview_url(query),
                view=query.params(),
                template="hcp/imaging.html",
                **imaging_context(request, opened),
            )
        return await document_page(
            portal,
            request,
            session,
            hub=opened.hub,
            row=row,
            access_basis=opened.access_basis,
            back_url=overview_url(parse_listing_query(dict(request.query_params))),
            content_url=f"{_BASE}/dokument/{ref}/innhold",
            template="hcp/document.html",
            codes=CodeLabels(Translator(language_of(request))),
            patient=opened.lookup,
            today=_today(),
            override=opened.override,
        )

    @app.get(f"{_BASE}/dokument/{{ref}}/sammenlign/{{other}}")
    async def compare_photos(ref: str, other: str, request: Request) -> Response:
        session = logged_in(request)
        row, opened = await listed(session, ref)
        second = session.rows.get(other)
        if second is None or second.blocked or second.ref == row.ref:
            raise DocumentUnavailable()
        require_imaging(row)
        require_imaging(second)
        query = parse_listing_query(dict(request.query_params))
        return await compare_page(
            portal,
            request,
            session,
            hub=opened.hub,
            pair=(row, second),
            access_basis=opened.access_basis,
            page_urls=(f"{_BASE}/dokument/{ref}", f"{_BASE}/dokument/{other}"),
            back_url=f"{_BASE}/dokument/{ref}" + (f"?{query.params()}" if query.params() else ""),
            view=query.params(),
            template="hcp/compare.html",
            **imaging_context(request, opened),
        )

    @app.get(f"{_BASE}/dokument/{{ref}}/bilder/{{path:path}}")
    async def imaging_pixels(ref: str, path: str, request: Request) -> Response:
        session = logged_in(request)
        row, opened = await listed(session, ref)
        require_imaging(row)
        manifest = await load_manifest(
            portal, session, hub=opened.hub, row=row, access_basis=opened.access_basis
        )
        return await imaging_proxy(
            portal,
            request,
            hub=opened.hub,
            row=row,
            manifest=manifest,
            path=path,
            access_basis=opened.access_basis,
        )

    @app.get(f"{_BASE}/dokument/{{ref}}/innhold")
    async def document_bytes(ref: str, request: Request) -> Response:
        session = logged_in(request)
        row, opened = await listed(session, ref)
        return await document_content(
            portal,
            hub=opened.hub,
            row=row,
            access_basis=opened.access_basis,
            download=request.query_params.get("last-ned") == "1",
        )
