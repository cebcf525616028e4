"""The citizen portal (the helsenorge journal view): own documents, access log, people, privacy.

Flow: `/innbygger/logg-inn` → the STS (authorization code + PKCE, level 4, a citizen chosen)
→ `/innbygger/innlogget` (userinfo: name, whom the citizen may act for, whom not and why) →
`/innbygger/dokumenter` (the overview across regions, with a block form per document),
`/innbygger/tilgangslogg` (who has looked), `/innbygger/representasjon` (act for a child under
12 or a proxy giver) and `/innbygger/personvern` (reservation, blocked documents and health
workers). A citizen under 16 on their own gets, in place of what the rules close to them, a
page that explains those rules and when they change (`young_person.py`, E2). Every page
names the person whose documents it shows; every change is a POST with the session's CSRF
token, sent to the hub with the citizen's own token.
Routes stay thin: check the session, call one gateway function, render.
References: TRUST-FRAMEWORK §5.2 (representation), §5.4 (access log), §4.5 (blocks, reservation).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from onerecord.portals.access_log import ACCESS_LOG_PAGE_SIZE, AccessLogRow, region_message_key
from onerecord.portals.access_log_filter import (
    InvalidLogFilter,
    LogFilter,
    apply_filter,
    parse_log_filter,
)
from onerecord.portals.access_visits import (
    EMERGENCY_BASES,
    EMERGENCY_REASONS,
    PROFESSIONS,
    group_visits,
    reader_ref,
    readers_of,
)
from onerecord.portals.citizen_gateway import (
    ControlChange,
    ControlKind,
    InvalidControl,
    PatientControls,
    UnderAgeRefused,
    change_control,
    fetch_access_log,
    fetch_controls,
)
from onerecord.portals.citizen_refusals import citizen_refusal
from onerecord.portals.citizen_view import (
    BlockState,
    Notice,
    Person,
    acting_person,
    block_state,
    citizen_row,
    find_person,
    is_level_four_citizen,
    may_change_document_block,
    practitioner_names,
    read_dialogue_people,
    read_people,
)
from onerecord.portals.code_labels import CodeLabels
from onerecord.portals.dialogue_access import with_dialogue_reads
from onerecord.portals.document_pages import document_content, document_page
from onerecord.portals.errors import (
    DocumentNotListed,
    DocumentUnavailable,
    HubRefused,
    LoginFailed,
    NotLoggedIn,
    PortalError,
    SessionEnded,
)
from onerecord.portals.gateway import fetch_overview
from onerecord.portals.i18n import LANGUAGE_COOKIE, LANGUAGES, Translator
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
from onerecord.portals.oauth import refresh, userinfo
from onerecord.portals.overview import DocumentRow
from onerecord.portals.pending_view import pending_lines
from onerecord.portals.return_to import CITIZEN_AREA, after_login
from onerecord.portals.sessions import PortalSession
from onerecord.portals.visits import arrived_after
from onerecord.portals.web import Portal, language_of, safe_next
from onerecord.portals.young_person import AgeRule, age_rule
from onerecord.search_client import HubSession

__all__ = ["CITIZEN_BASE", "CITIZEN_PAGES", "acting", "citizen", "install_citizen_routes"]

CITIZEN_BASE = "/innbygger"
CITIZEN_PAGES = (
    ("dokumenter", "citizen.nav.documents"),
    ("tilgangslogg", "citizen.nav.access-log"),
    ("representasjon", "citizen.nav.representation"),
    ("personvern", "citizen.nav.privacy"),
    ("fastlege", "citizen.nav.gp"),
)
"""The pages in the citizen menu: (path under /innbygger, message id of the link)."""
_REFRESH_MARGIN_S = 30.0
_BASE = CITIZEN_BASE


def citizen(session: PortalSession | None) -> PortalSession:
    """The session of a logged-in citizen; NotLoggedIn (to the login page) otherwise."""
    if session is None or not session.citizen_logged_in:
        raise NotLoggedIn()
    return session


def acting(session: PortalSession) -> Person:
    """The person a logged-in citizen's pages are about (`citizen_view.acting_person`)."""
    assert session.citizen_nin is not None
    return acting_person(
        citizen_nin=session.citizen_nin,
        user_name=session.user_name,
        acting_for=session.acting_for,
        representations=session.representations,
    )


def install_citizen_routes(app: FastAPI, portal: Portal) -> None:
    """Add the citizen pages to `app`."""
    settings = portal.settings
    staff_names = practitioner_names(settings.staff)
    # The key of the access log's reader references: derived from the session secret, so it
    # is the server's alone and never the session cookie's own key.
    reader_key = hmac.new(
        settings.session_secret.get_secret_value().encode(), b"access-log-reader", hashlib.sha256
    ).digest()

    def patient_param(session: PortalSession, person: Person | None = None) -> str | None:
        """`?patient=` for the hub: the person acted for; None for the citizen themselves."""
        person = person or acting(session)
        return None if person.is_self else person.nin

    async def hub_of(session: PortalSession) -> HubSession:
        """Return the hub session, refreshing the login token shortly before it expires."""
        tokens = session.tokens
        if tokens is None:
            raise NotLoggedIn()
        async with session.refresh_lock:
            tokens = session.tokens or tokens
            if tokens.expires_at - time.time() < _REFRESH_MARGIN_S:
                if tokens.refresh_token is None:
                    raise SessionEnded()
                tokens = await refresh(
                    portal.client(),
                    sts_url=settings.sts_url,
                    client_id=settings.client_id,
                    client_key=portal.client_key,
                    tokens=tokens,
                    audience=settings.hub_audience,
                )
                session.tokens = tokens
                session.hub = None
        if session.hub is None:
            session.hub = tokens.hub_session()
        return session.hub

    def frame(
        session: PortalSession, active: str | None, person: Person | None = None
    ) -> dict[str, Any]:
        """What citizen/_layout.html needs: menu, whom the page is about, the last notice.

        `person` is whom the page's data is about, when it was read before an await.
        """
        notice = Notice.decode(session.flash)
        session.flash = None
        return {
            "notice": notice,
            "acting": person or acting(session),
            "nav": CITIZEN_PAGES,
            "active": active,
            "base": _BASE,
        }

    def page(
        request: Request,
        session: PortalSession,
        template: str,
        *,
        active: str | None,
        status_code: int = 200,
        person: Person | None = None,
        **context: Any,
    ) -> Response:
        return portal.render(
            request,
            template,
            session,
            status_code=status_code,
            **frame(session, active, person),
            **context,
        )

    def rule_for(person: Person) -> AgeRule | None:
        """The age rule of a citizen under 16 looking at their own pages; None otherwise.

        Counted on the UTC date, as the regions count it (`onerecord.source.security`).
        """
        return age_rule(person.nin, datetime.now(UTC).date()) if person.is_self else None

    def young_page(
        request: Request, session: PortalSession, person: Person, *, active: str
    ) -> Response:
        """Explain the rules for a citizen under 16 where a page is closed to them (E2)."""
        return page(
            request,
            session,
            "citizen/young_person.html",
            active=active,
            person=person,
            rule=rule_for(person),
        )

    # -- login --------------------------------------------------------------------------------

    @app.get(_BASE)
    async def citizen_home(request: Request) -> Response:
        session = portal.session(request)
        if session is not None and session.citizen_logged_in:
            return portal.redirect(f"{_BASE}/dokumenter", session)
        return portal.redirect(f"{_BASE}/logg-inn", session)

    @app.get(f"{_BASE}/logg-inn")
    async def login_page(request: Request) -> Response:
        session = portal.session_or_new(request)
        if session.citizen_logged_in:
            return portal.redirect(f"{_BASE}/dokumenter", session)
        return portal.render(request, "citizen/login.html", session)

    @app.post(f"{_BASE}/logg-inn")
    async def login(request: Request) -> Response:
        session, form = await portal.checked_form(request)
        # Logging in again from «Økten din er avsluttet»: come back to that page (defect 8).
        session.return_to = after_login(CITIZEN_AREA, form.get("neste"))
        return portal.begin_login(session, role="citizen", callback_path=f"{_BASE}/innlogget")

    @app.get(f"{_BASE}/innlogget")
    async def logged_in_callback(request: Request) -> Response:
        session, tokens = await portal.complete_login(request, role="citizen")
        try:
            info = await userinfo(portal.client(), sts_url=settings.sts_url, tokens=tokens)
            if not is_level_four_citizen(info):
                raise LoginFailed("citizen.error.level", advice_key="citizen.error.level.advice")
        except PortalError:
            session.role = session.tokens = None  # a failed login leaves no token behind
            raise
        representations, refused = read_people(info)
        session.hub = tokens.hub_session()
        session.citizen_nin = str(info["pid"]).strip()
        session.user_nin = session.citizen_nin
        name = info.get("name")
        session.user_name = name if isinstance(name, str) and name else None
        session.representations = representations
        session.refused = refused
        session.dialogue_representations = read_dialogue_people(info)
        session.acting_for = None
        session.rows = {}
        session.flash = None
        # Nothing of a health-personnel login in the same browser carries over.
        session.staff = session.access = session.staff_key = None
        session.staff_name = session.hpr_number = session.workplace_name = None
        session.emergency_reason = None
        back, session.return_to = session.return_to, None
        response = portal.redirect(back or f"{_BASE}/dokumenter", session)
        locale = info.get("locale")
        if LANGUAGE_COOKIE not in request.cookies and locale in LANGUAGES:
            # The contact register's language is the default until the person chooses one;
            # for this browser session only (a choice is kept a year).
            response.set_cookie(
                LANGUAGE_COOKIE,
                str(locale),
                httponly=True,
                secure=settings.secure_cookies,
                samesite="lax",
                path="/",
            )
        return response

    # -- documents ----------------------------------------------------------------------------

    async def read_controls_quietly(
        session: PortalSession, hub: HubSession, person: Person
    ) -> PatientControls | None:
        """The controls for the block forms; None when the hub cannot say (forms are hidden)."""
        try:
            return await fetch_controls(
                portal.client(),
                hub,
                hub_fhir=settings.hub_fhir,
                deadline_s=settings.hub_deadline_s,
                patient=patient_param(session, person),
            )
        except PortalError:
            return None

    @app.get(f"{_BASE}/dokumenter")
    async def documents(request: Request) -> Response:
        session = citizen(portal.session(request))
        # Whom this page is about, read once: another tab may switch person while it loads.
        person = acting(session)
        query = parse_listing_query(dict(request.query_params))
        owner = ("citizen", session.citizen_nin, person.nin)
        refresh = REFRESH_PARAM in request.query_params
        cached = session.overview_cache
        if (
            not refresh
            and cached is not None
            and cached.usable(owner, time.monotonic(), settings.listing_max_age_s)
        ):
            # Sorting, filtering, paging and back links: the rows already fetched (defect 4).
            overview, controls = cached.overview, cached.extra
            since, fetched = cached.since, cached.fetched_wall
        else:
            hub = await hub_of(session)
            # The controls are read while the documents are searched, not after: the page
            # waits for the hub at most one deadline (issue 11 defect 5: 8.3 s with one region
            # hanging).
            reading = asyncio.create_task(read_controls_quietly(session, hub, person))
            try:
                overview = await fetch_overview(
                    portal.client(),
                    hub,
                    hub_fhir=settings.hub_fhir,
                    deadline_s=settings.hub_deadline_s,
                    regions=settings.regions,
                    patient=person.nin,
                )
            except HubRefused as exc:
                reading.cancel()
                # Said for a citizen: why, naming the person; the advice is whom to choose, not
                # a basis for access.
                raise citizen_refusal(exc, person) from None
            except BaseException:
                reading.cancel()
                raise
            if overview.under_age and person.is_self:
                # Empty by rule, not by chance or outage: say the rule (the controls are closed
                # until 16 too, and what they said is not shown, so no false "try again").
                reading.cancel()
                if acting(session) == person:
                    session.rows = {}
                    session.overview_cache = None
                return young_page(request, session, person, active="dokumenter")
            controls = await reading
            overview = replace(overview, rows=tuple(citizen_row(r) for r in overview.rows))
            since = await portal.visits.since(
                session.visits_seen, user=session.citizen_nin or "", patient=person.nin
            )
            fetched = datetime.now(UTC)
            if acting(session) == person:
                # Else the person was switched meanwhile: these rows are not theirs, and the
                # next page fetches afresh.
                session.rows = {r.ref: r for r in overview.rows if r.ref}
                session.overview_cache = CachedOverview(
                    owner, time.monotonic(), fetched, overview, since, extra=controls
                )
        blocked = controls.blocked_documents if controls is not None else None
        states = {r.unique_id: block_state(r, blocked) for r in overview.rows if r.unique_id}
        listing = apply_listing(overview.rows, query)
        return page(
            request,
            session,
            "citizen/documents.html",
            active="dokumenter",
            person=person,
            overview=overview,
            page=listing,
            query=query,
            sort_keys=SORT_KEYS,
            page_sizes=PAGE_SIZES,
            states=states,
            controls=controls,
            block=BlockState,
            codes=CodeLabels(Translator(language_of(request))),
            new_since=since,
            is_new=arrived_after,
            fetched=fetched,
            refresh_url=refresh_url(f"{_BASE}/dokumenter", query),
        )

    def documents_url(query: ListingQuery) -> str:
        """«Mine dokumenter» in the view `query` states (the document page's way back)."""
        params = query.params()
        return f"{_BASE}/dokumenter?{params}" if params else f"{_BASE}/dokumenter"

    def listed(session: PortalSession, ref: str) -> DocumentRow:
        row = session.rows.get(ref)
        if row is None or row.blocked:
            raise DocumentUnavailable()
        return row

    async def listed_for(
        session: PortalSession, ref: str
    ) -> tuple[DocumentRow, HubSession, Person]:
        """Return a listed document, the hub session naming its person, and that person."""
        hub = await hub_of(session)
        # Read together, with no await between: the session's rows are always those of the
        # person it acts for now (they are dropped on a switch and kept only if still theirs).
        person = acting(session)
        row = listed(session, ref)
        return row, replace(hub, patient_nin=person.nin), person

    @app.get(f"{_BASE}/dokument/{{ref}}")
    async def document(ref: str, request: Request) -> Response:
        session = citizen(portal.session(request))
        row, hub, person = await listed_for(session, ref)
        if is_imaging(row):
            query = parse_listing_query(dict(request.query_params))
            return await imaging_page(
                portal,
                request,
                session,
                hub=hub,
                row=row,
                rows=tuple(session.rows.values()),
                access_basis=None,
                page_url=f"{_BASE}/dokument/{ref}",
                back_url=documents_url(query),
                view=query.params(),
                template="citizen/imaging.html",
                codes=CodeLabels(Translator(language_of(request))),
                **frame(session, "dokumenter", person),
            )
        return await document_page(
            portal,
            request,
            session,
            hub=hub,
            row=row,
            access_basis=None,
            back_url=documents_url(parse_listing_query(dict(request.query_params))),
            content_url=f"{_BASE}/dokument/{ref}/innhold",
            template="citizen/document.html",
            codes=CodeLabels(Translator(language_of(request))),
            **frame(session, "dokumenter", person),
        )

    @app.get(f"{_BASE}/dokument/{{ref}}/sammenlign/{{other}}")
    async def compare_photos(ref: str, other: str, request: Request) -> Response:
        session = citizen(portal.session(request))
        row, hub, person = await listed_for(session, ref)
        second = listed(session, other)
        if second.ref == row.ref:
            raise DocumentUnavailable()
        require_imaging(row)
        require_imaging(second)
        query = parse_listing_query(dict(request.query_params))
        return await compare_page(
            portal,
            request,
            session,
            hub=hub,
            pair=(row, second),
            access_basis=None,
            page_urls=(f"{_BASE}/dokument/{ref}", f"{_BASE}/dokument/{other}"),
            back_url=f"{_BASE}/dokument/{ref}" + (f"?{query.params()}" if query.params() else ""),
            view=query.params(),
            template="citizen/compare.html",
            codes=CodeLabels(Translator(language_of(request))),
            **frame(session, "dokumenter", person),
        )

    @app.get(f"{_BASE}/dokument/{{ref}}/bilder/{{path:path}}")
    async def imaging_pixels(ref: str, path: str, request: Request) -> Response:
        session = citizen(portal.session(request))
        row, hub, _person = await listed_for(session, ref)
        require_imaging(row)
        manifest = await load_manifest(portal, session, hub=hub, row=row, access_basis=None)
        return await imaging_proxy(
            portal,
            request,
            hub=hub,
            row=row,
            manifest=manifest,
            path=path,
            access_basis=None,
        )

    @app.get(f"{_BASE}/dokument/{{ref}}/innhold")
    async def document_bytes(ref: str, request: Request) -> Response:
        session = citizen(portal.session(request))
        row, hub, _person = await listed_for(session, ref)
        return await document_content(
            portal,
            hub=hub,
            row=row,
            access_basis=None,
            download=request.query_params.get("last-ned") == "1",
        )

    # -- controls -----------------------------------------------------------------------------

    async def apply(
        session: PortalSession,
        change: ControlChange,
        done_key: str,
        person: Person,
        done_params: dict[str, str] | None = None,
    ) -> None:
        """Send one change to the hub and leave a notice saying whether it is in place, or
        which regions it still waits for (the hub re-sends it there; issue 11 defect 5).

        `person`: whom the change is for, to name them if the hub refuses it. An ended login is
        not a notice but the page that asks to log in again.
        """
        session.overview_cache = None  # the next list shows the change (listing_cache.py)
        try:
            outcome = await change_control(
                portal.client(),
                await hub_of(session),
                hub_fhir=settings.hub_fhir,
                change=change,
                deadline_s=settings.hub_deadline_s,
            )
        except NotLoggedIn:
            raise
        except PortalError as exc:
            if isinstance(exc, HubRefused):
                exc = citizen_refusal(exc, person)
            params = {k: str(v) for k, v in exc.params.items()}
            session.flash = Notice(exc.message_key, params, problem=True).encode()
            return
        if outcome.applied:
            session.flash = Notice(done_key, done_params or {}).encode()
        elif outcome.pending:
            waiting = outcome.controls.waiting_for(change.kind, change.target)
            regions = ", ".join(waiting or outcome.controls.failed_regions)
            session.flash = Notice("citizen.change.pending", {"regions": regions}).encode()
        else:
            failed = ", ".join(outcome.controls.failed_regions)
            session.flash = Notice("citizen.change.partial", {"regions": failed}, True).encode()

    async def checked_citizen_form(request: Request) -> tuple[PortalSession, dict[str, str]]:
        session, form = await portal.checked_form(request)
        return citizen(session), dict(form)

    @app.post(f"{_BASE}/sperringer/dokument")
    async def change_document_block(request: Request) -> Response:
        session, form = await checked_citizen_form(request)
        # Read together, with no await between: the rows are those of the person acted for.
        person = acting(session)
        rows = tuple(session.rows.values())
        back = safe_next(form.get("neste"), f"{_BASE}/dokumenter")
        action = form.get("handling")
        try:
            if action not in ("sperr", "opphev"):
                raise InvalidControl("citizen.block.bad-document")
            change = ControlChange.document_block(
                form.get("unique_id", ""),
                form.get("home_community_id", ""),
                on=action == "sperr",
                patient=patient_param(session, person),
            )
        except InvalidControl as exc:
            session.flash = Notice(exc.message_key, problem=True).encode()
            return portal.redirect(back, session)
        assert change.target is not None
        allowed = may_change_document_block(
            change.target, change.home_community_id, on=change.on, rows=rows
        )
        if not allowed and not change.on:
            # Not in the last overview, but a block to lift may be one the privacy page lists
            # from the person's controls, which name documents the overview need not show.
            controls = await fetch_controls(
                portal.client(),
                await hub_of(session),
                hub_fhir=settings.hub_fhir,
                deadline_s=settings.hub_deadline_s,
                patient=change.patient,
            )
            allowed = may_change_document_block(
                change.target,
                change.home_community_id,
                on=False,
                rows=(),
                blocked=controls.blocked_documents,
            )
        if not allowed:
            advice = person.key("citizen.block.not-listed.advice")
            raise DocumentNotListed(advice_key=advice, name=person.name)
        done = "citizen.block.document.on" if change.on else "citizen.block.document.off"
        await apply(session, change, done, person)
        return portal.redirect(back, session)

    @app.post(f"{_BASE}/sperringer/reservasjon")
    async def change_reservation(request: Request) -> Response:
        session, form = await checked_citizen_form(request)
        action = form.get("handling")
        if action not in ("reserver", "opphev"):
            session.flash = Notice("citizen.privacy.choose", problem=True).encode()
            return portal.redirect(f"{_BASE}/personvern", session)
        person = acting(session)
        change = ControlChange.reservation(
            on=action == "reserver", patient=patient_param(session, person)
        )
        done = "citizen.reservation.on" if change.on else "citizen.reservation.off"
        await apply(session, change, done, person)
        return portal.redirect(f"{_BASE}/personvern", session)

    @app.post(f"{_BASE}/sperringer/helsepersonell")
    async def change_practitioner_block(request: Request) -> Response:
        session, form = await checked_citizen_form(request)
        return await practitioner_block(
            request, session, hpr=form.get("hpr", ""), action=form.get("handling")
        )

    async def practitioner_block(
        request: Request, session: PortalSession, *, hpr: str, action: str | None
    ) -> Response:
        """Block (`sperr`) or unblock (`opphev`) one health worker by HPR number, then show the
        privacy page. A block names someone the portal knows (the synthetic HPR, `staff`), or
        the form comes back with 422 and nothing is sent (issue 11 defect 8)."""
        person = acting(session)
        try:
            if action not in ("sperr", "opphev"):
                raise InvalidControl("citizen.privacy.choose")
            change = ControlChange.practitioner_block(
                hpr, on=action == "sperr", patient=patient_param(session, person)
            )
        except InvalidControl as exc:
            return await privacy_page(
                request, session, status_code=400, hpr_error=exc.message_key, hpr_value=hpr[:20]
            )
        assert change.target is not None
        name = staff_names.get(change.target)
        if change.on and name is None and staff_names:
            return await privacy_page(
                request,
                session,
                status_code=422,
                hpr_error="citizen.privacy.hpr-unknown",
                hpr_value=change.target,
            )
        if name is not None:
            done = (
                "citizen.block.practitioner.on-named"
                if change.on
                else ("citizen.block.practitioner.off-named")
            )
            await apply(
                session, change, done, acting(session), {"name": name, "hpr": change.target}
            )
        else:
            done = (
                "citizen.block.practitioner.on" if change.on else ("citizen.block.practitioner.off")
            )
            await apply(session, change, done, person)
        return portal.redirect(f"{_BASE}/personvern", session)

    async def privacy_page(
        request: Request,
        session: PortalSession,
        *,
        status_code: int = 200,
        hpr_error: str | None = None,
        hpr_value: str = "",
    ) -> Response:
        person = acting(session)  # whom the page is about, whatever another tab does meanwhile
        try:
            controls = await fetch_controls(
                portal.client(),
                await hub_of(session),
                hub_fhir=settings.hub_fhir,
                deadline_s=settings.hub_deadline_s,
                patient=patient_param(session, person),
            )
        except HubRefused as exc:
            # Refused for the citizen themselves under 16: the controls open at 16 (§5.2).
            if rule_for(person) is None:
                raise citizen_refusal(exc, person) from None
            return young_page(request, session, person, active="personvern")
        rows = session.rows.values() if acting(session) == person else ()
        by_unique_id = {r.unique_id: r for r in rows if r.unique_id}
        titles = {uid: r.title for uid, r in by_unique_id.items() if r.title}
        return page(
            request,
            session,
            "citizen/privacy.html",
            active="personvern",
            status_code=status_code,
            person=person,
            controls=controls,
            documents=[(uid, by_unique_id.get(uid)) for uid in sorted(controls.blocked_documents)],
            practitioners=[(hpr, staff_names.get(hpr)) for hpr in controls.blocked_practitioners],
            hpr_error=hpr_error,
            hpr_value=hpr_value,
            pending=pending_lines(controls, staff_names=staff_names, titles=titles),
            kinds=ControlKind,
        )

    @app.get(f"{_BASE}/personvern")
    async def privacy(request: Request) -> Response:
        return await privacy_page(request, citizen(portal.session(request)))

    # -- access log ---------------------------------------------------------------------------

    @app.get(f"{_BASE}/tilgangslogg")
    async def access_log(request: Request) -> Response:
        """One line per visit, filtered by days and person (issue 11 defect 4)."""
        session = citizen(portal.session(request))
        person = acting(session)  # whom the page is about, whatever another tab does meanwhile
        problem: InvalidLogFilter | None = None
        try:
            chosen = parse_log_filter(request.query_params)
        except InvalidLogFilter as exc:
            problem, chosen = exc, LogFilter()
        try:
            log = await fetch_access_log(
                portal.client(),
                await hub_of(session),
                hub_fhir=settings.hub_fhir,
                deadline_s=settings.hub_deadline_s,
                regions=settings.regions,
                patient=person.nin,
            )
        except UnderAgeRefused as exc:
            # A child under 12 on their own: the log is the parents' to read (§5.2).
            if not person.is_self:
                raise citizen_refusal(exc, person) from None
            return young_page(request, session, person, active="tilgangslogg")
        except HubRefused as exc:
            raise citizen_refusal(exc, person) from None
        # The clinic's reads of the person's messages (issue 15), when the dialogue runs.
        log = await with_dialogue_reads(portal, session, log, person.nin)

        def ref(row: AccessLogRow) -> str:
            return reader_ref(reader_key, person.nin, row)

        visits = group_visits(log.rows, ref)
        # «Sperr» names a reader by reference; the number stays here (never in the page).
        session.log_readers = {ref(r): (person.nin, r.reader_hpr) for r in log.rows if r.reader_hpr}
        readers = readers_of(visits)
        if problem is None and chosen.person is not None:
            if chosen.person not in {r.ref for r in readers}:
                problem = InvalidLogFilter("citizen.log.filter.bad-person", "person")
        shown = apply_filter(visits, chosen) if problem is None else visits
        pages = max(1, -(-len(shown) // ACCESS_LOG_PAGE_SIZE))
        number = min(chosen.page, pages)
        start = (number - 1) * ACCESS_LOG_PAGE_SIZE
        rule = rule_for(person)
        return page(
            request,
            session,
            "citizen/access_log.html",
            active="tilgangslogg",
            status_code=400 if problem is not None else 200,
            person=person,
            log=log,
            visits=shown[start : start + ACCESS_LOG_PAGE_SIZE],
            visit_count=len(shown),
            emergency_count=sum(1 for v in shown if v.emergency),
            page_number=number,
            pages=pages,
            chosen=chosen if problem is None else LogFilter(),
            filter_values=dict(request.query_params) if problem is not None else chosen.query(),
            filter_problem=problem,
            readers=readers,
            region_key=region_message_key,
            # The controls open at 16 (§5.2): a young person reading their own log sees no «Sperr».
            may_block=rule is None,
            professions=PROFESSIONS,
            emergency_bases=EMERGENCY_BASES,
            emergency_reasons=EMERGENCY_REASONS,
            rule=rule,
        )

    @app.post(f"{_BASE}/tilgangslogg/sperr")
    async def block_from_log(request: Request) -> Response:
        """Block the reader of one visit: the form names them by reference, never by HPR."""
        session, form = await checked_citizen_form(request)
        person = acting(session)
        found = session.log_readers.get(form.get("leser", "")[:64])
        if found is None or found[0] != person.nin:
            session.flash = Notice("citizen.log.block.stale", problem=True).encode()
            return portal.redirect(f"{_BASE}/tilgangslogg", session)
        return await practitioner_block(request, session, hpr=found[1], action="sperr")

    # -- representation -----------------------------------------------------------------------

    def people_page(
        request: Request, session: PortalSession, *, status_code: int = 200, **extra: Any
    ) -> Response:
        assert session.citizen_nin is not None
        me = Person(session.citizen_nin, session.user_name or session.citizen_nin, "self")
        allowed = [find_person(session.representations, r["nin"]) for r in session.representations]
        refused = [find_person(session.refused, r["nin"]) for r in session.refused]
        return page(
            request,
            session,
            "citizen/representation.html",
            active="representasjon",
            status_code=status_code,
            me=me,
            allowed=[p for p in allowed if p is not None],
            refused_people=[p for p in refused if p is not None],
            gp_only=[
                p
                for r in session.dialogue_representations
                if (p := find_person(session.dialogue_representations, r["nin"])) is not None
            ],
            **({"refusal": None, "refusal_key": None} | extra),
        )

    @app.get(f"{_BASE}/representasjon")
    async def representation(request: Request) -> Response:
        return people_page(request, citizen(portal.session(request)))

    @app.post(f"{_BASE}/representasjon")
    async def choose_person(request: Request) -> Response:
        session, form = await checked_citizen_form(request)
        nin = "".join(form.get("person", "").split())
        chosen = find_person(session.representations, nin)
        gp_only = find_person(session.dialogue_representations, nin)
        if chosen is None and gp_only is not None and form.get("for") == "fastlege":
            # A child of 12–15, chosen for the GP pages: those only (the record's pages stay the
            # citizen's own). Chosen for the documents, the child is refused as before.
            session.acting_for, session.rows = gp_only.nin, {}
            session.flash = Notice("citizen.acting.switched-gp", {"name": gp_only.name}).encode()
            return portal.redirect(f"{_BASE}/fastlege", session)
        if nin == session.citizen_nin and form.get("for") == "fastlege":
            # Back to oneself from the GP pages: stay on them.
            session.acting_for, session.rows = None, {}
            session.flash = Notice("citizen.acting.switched-gp-self").encode()
            return portal.redirect(f"{_BASE}/fastlege", session)
        if nin != session.citizen_nin and chosen is None:
            # Never switch to someone the STS did not list as allowed (a tampered form too).
            refused = find_person(session.refused, nin)
            key = refused.refusal_key if refused is not None else "citizen.representation.unknown"
            return people_page(request, session, status_code=403, refusal=refused, refusal_key=key)
        session.acting_for = None if chosen is None else chosen.nin
        session.rows = {}
        person = acting(session)
        session.flash = (
            Notice("citizen.acting.switched-self")
            if person.is_self
            else Notice("citizen.acting.switched", {"name": person.name})
        ).encode()
        return portal.redirect(f"{_BASE}/dokumenter", session)
