"""The GP office's work list in the health-personnel portal (issue 15, the clinic's side).

After login and the workplace (as for the record), a worker at a GP office opens
`/helsepersonell/legekontor`: every thread and request by type and age with the 5-working-day
answer limit and the overdue ones flagged (the limit and the flag are the dialogue service's,
`dialogue.calendar`), paged; a thread is read, answered or closed; a renewal renewed or refused
with a reason (`/sak/{id}`); slots published and appointments moved or cancelled (`/timer`);
the services switched on and off, the information message set and an absence registered after
a preview of what patients will see (`/kontor`). Every call goes to the dialogue service with a
DPoP-bound token of its audience (`clinic_gateway.py`), which checks and audits it.
Routes stay thin: session and CSRF, one gateway call, render or redirect (POST/redirect/GET).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from onerecord.dialogue.absence import Absence, closed_sentence
from onerecord.dialogue.errors import BadInput
from onerecord.dialogue.images import MAX_PHOTO_BYTES, MAX_PHOTOS, PhotoRefused, clean_photo
from onerecord.dialogue.model import Service
from onerecord.portals.clinic_gateway import (
    ClinicRefused,
    DialogueClient,
    SlotRow,
    clinic_token,
)
from onerecord.portals.errors import CsrfRejected, NotLoggedIn
from onerecord.portals.i18n import format_clock
from onerecord.portals.oauth import TokenSet
from onerecord.portals.sessions import PortalSession
from onerecord.portals.web import Portal
from onerecord.search_client import StaffMember

__all__ = ["CLINIC_BASE", "install_clinic_routes"]

CLINIC_BASE = "/helsepersonell/legekontor"
_CALENDAR = f"{CLINIC_BASE}/timer"
_OFFICE = f"{CLINIC_BASE}/kontor"
_OSLO = ZoneInfo("Europe/Oslo")
_REFRESH_MARGIN_S = 30.0
_MAX_TOKENS = 10_000
_KINDS = ("e-consultation", "contact-office", "prescription-renewal")
_STATUSES = {"venter": "requested", "ferdig": "completed,rejected"}
_PAGE_SIZES = (10, 25, 50)
_MODES = ("in-person", "video")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_CURSOR = re.compile(r"[0-9]{1,19}_[A-Za-z0-9\-.]{1,64}")
_MAX_TEXT = 4000
_MAX_UPLOAD_BYTES = MAX_PHOTOS * MAX_PHOTO_BYTES + 64 * 1024
"""The largest answer form read (three photos and the text)."""
_ERRORS = {
    400: "clinic.error.invalid",
    403: "clinic.error.forbidden",
    404: "clinic.error.not-found",
    409: "clinic.error.conflict",
}


@dataclass(frozen=True, slots=True)
class VaccineDay:
    """A day's free flu-vaccine slots on the calendar page: how many, from when to when."""

    day: date
    free: int
    first: datetime
    last_end: datetime


def vaccine_days(slots: Sequence[SlotRow]) -> list[VaccineDay]:
    """The free flu-vaccine slots summed up per Oslo day (a vaccination day has many)."""
    days: dict[date, list[tuple[datetime, datetime]]] = {}
    for s in slots:
        if s.service == "flu-vaccine" and s.start is not None:
            end = s.end if s.end is not None else s.start
            days.setdefault(s.start.astimezone(_OSLO).date(), []).append((s.start, end))
    return [
        VaccineDay(
            day,
            len(times),
            min(start for start, _ in times),
            max(end for _, end in times),
        )
        for day, times in sorted(days.items())
    ]


def _ident(value: str) -> str:
    """A FHIR id from the path; anything else is a page that does not exist (404)."""
    if not _ID.fullmatch(value):
        raise HTTPException(404)
    return value


def _local(day: str, clock: str) -> datetime | None:
    """A date and time from the form as a naive Oslo wall-clock minute, or None."""
    try:
        moment = datetime.fromisoformat(f"{day.strip()}T{(clock.strip() or '00:00')}")
    except ValueError:
        return None
    if moment.tzinfo is not None or moment.second or moment.microsecond:
        return None
    return moment


def install_clinic_routes(app: FastAPI, portal: Portal) -> None:
    """Add the GP office's work list to `app` (only when a dialogue service is configured)."""
    settings = portal.settings
    if settings.dialogue_url is None:
        return
    fhir = f"{settings.dialogue_url}/fhir"
    portal.templates.globals["clinic_url"] = CLINIC_BASE
    tokens: OrderedDict[str, tuple[StaffMember, TokenSet]] = OrderedDict()

    def worker(request: Request) -> PortalSession:
        session = portal.session(request)
        if session is None or not session.logged_in or session.staff is None:
            raise NotLoggedIn()
        return session

    async def client(session: PortalSession) -> DialogueClient:
        """A client with this worker's token of the dialogue audience, renewed when due."""
        held = tokens.get(session.id)
        staff = session.staff
        if (
            held is None
            or held[0] is not staff
            or held[1].expires_at - time.time() < _REFRESH_MARGIN_S
        ):
            async with session.refresh_lock:
                login, staff = session.tokens, session.staff
                if login is None or staff is None:
                    raise NotLoggedIn()
                fresh = await clinic_token(
                    portal.client(),
                    sts_url=settings.sts_url,
                    client_id=settings.client_id,
                    client_key=portal.client_key,
                    audience=settings.dialogue_audience,
                    tokens=login,
                    staff=staff,
                )
                if session.tokens is login:
                    # Only the refresh token rotates here: the access token and its expiry
                    # stay those of the record's token, which the record pages renew.
                    session.tokens = replace(login, refresh_token=fresh.refresh_token)
                held = (staff, fresh)
                tokens[session.id] = held
                tokens.move_to_end(session.id)
                while len(tokens) > _MAX_TOKENS:
                    tokens.popitem(last=False)
        return DialogueClient(portal.client(), fhir, held[1].hub_session(), settings.hub_deadline_s)

    def office_of(session: PortalSession) -> str:
        assert session.staff is not None
        return session.staff.point_of_care

    def take_flash(session: PortalSession) -> str | None:
        flash = session.flash if (session.flash or "").startswith("clinic.") else None
        if flash is not None:
            session.flash = None
        return flash

    def refused(request: Request, session: PortalSession, exc: ClinicRefused) -> Response:
        return portal.render(
            request,
            "hcp/clinic_error.html",
            session,
            status_code=exc.status,
            error=_ERRORS.get(exc.status, "clinic.error.invalid"),
        )

    async def act(
        request: Request,
        session: PortalSession,
        flash: str,
        back: str,
        call: Callable[[DialogueClient], Awaitable[object]],
    ) -> Response:
        """One change with the worker's client: a refusal becomes the error page; success sets
        the flash message and redirects to `back`."""
        dialogue = await client(session)
        try:
            await call(dialogue)
        except ClinicRefused as exc:
            return refused(request, session, exc)
        session.flash = flash
        return portal.redirect(back, session)

    # --- the work list ----------------------------------------------------------------------

    @app.get(CLINIC_BASE)
    async def inbox_page(request: Request) -> Response:
        session = worker(request)
        q = request.query_params
        kind = q.get("type", "")
        kind = kind if kind in _KINDS else ""
        state = q.get("status", "venter")
        state = state if state in _STATUSES else "venter"
        size = int(q["antall"]) if q.get("antall", "").isdigit() else 25
        size = size if size in _PAGE_SIZES else 25
        cursor = q.get("fra", "")
        cursor = cursor if _CURSOR.fullmatch(cursor) else ""
        dialogue = await client(session)
        try:
            rows, total, following = await dialogue.inbox(
                office_of(session),
                kind=kind or None,
                status=_STATUSES[state],
                count=size,
                cursor=cursor or None,
            )
        except ClinicRefused as exc:
            if exc.status == 404:
                # The workplace is not a GP office the dialogue service knows.
                return portal.render(
                    request,
                    "hcp/clinic_error.html",
                    session,
                    status_code=404,
                    error="clinic.error.no-office",
                )
            return refused(request, session, exc)
        try:
            failed = await dialogue.failed_notices(office_of(session))
        except ClinicRefused:
            failed = []  # the work list itself was read: show it without the box
        keep = {"type": kind, "status": state, "antall": str(size)}
        return portal.render(
            request,
            "hcp/clinic_inbox.html",
            session,
            failed_rows=failed,
            rows=rows,
            total=total,
            kinds=_KINDS,
            states=tuple(_STATUSES),
            sizes=_PAGE_SIZES,
            kind=kind,
            state=state,
            size=size,
            first_url=None if not cursor else _url(CLINIC_BASE, keep),
            next_url=_url(CLINIC_BASE, keep | {"fra": following}) if following else None,
            flash=take_flash(session),
        )

    @app.get(f"{CLINIC_BASE}/sak/{{task_id}}")
    async def case_page(task_id: str, request: Request) -> Response:
        session = worker(request)
        return await case_view(request, session, _ident(task_id))

    async def case_view(
        request: Request,
        session: PortalSession,
        task_id: str,
        *,
        status_code: int = 200,
        error: str | None = None,
        form: Mapping[str, str] | None = None,
    ) -> Response:
        dialogue = await client(session)
        try:
            task = await dialogue.task(task_id)
            messages = (
                await dialogue.thread(office_of(session), task.thread_id) if task.thread_id else []
            )
            medication = (
                await dialogue.medication_name(task.patient, task.medication_id)
                if task.medication_id
                else ""
            )
        except ClinicRefused as exc:
            return refused(request, session, exc)
        return portal.render(
            request,
            "hcp/clinic_case.html",
            session,
            status_code=status_code,
            task=task,
            messages=messages,
            medication=medication,
            error=error,
            form=form or {},
            flash=take_flash(session),
        )

    async def answer_form(
        request: Request,
    ) -> tuple[PortalSession, Mapping[str, str], list[tuple[str, bytes]]]:
        """The answer form: urlencoded, or multipart with photos (`bilde`) whose size is
        bounded before it is read; the CSRF token checked; empty file inputs left out."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "multipart/form-data":
            session, fields = await portal.checked_form(request)
            return session, fields, []
        found = portal.session(request)
        if found is None:
            raise CsrfRejected()
        declared = request.headers.get("content-length", "")
        if not declared.isdigit() or int(declared) > _MAX_UPLOAD_BYTES:
            raise HTTPException(413)
        # One file more than allowed is read (within the size bound) to say why it is refused.
        form = await request.form(max_files=MAX_PHOTOS + 1, max_fields=20)
        try:
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            if not found.csrf_ok(fields.get("csrf_token")):
                raise CsrfRejected()
            photos = []
            for name, value in form.multi_items():
                if name == "bilde" and isinstance(value, UploadFile) and value.filename:
                    photos.append((value.content_type or "", await value.read(MAX_PHOTO_BYTES + 1)))
        finally:
            await form.close()
        return found, fields, photos

    @app.post(f"{CLINIC_BASE}/sak/{{task_id}}/svar")
    async def answer(task_id: str, request: Request) -> Response:
        session, form, photos = await answer_form(request)
        worker(request)
        task_id = _ident(task_id)
        text = form.get("text", "").strip()
        if not text or len(text) > _MAX_TEXT:
            return await case_view(
                request, session, task_id, status_code=400, error="clinic.case.text-missing"
            )
        if len(photos) > MAX_PHOTOS:
            return await case_view(
                request, session, task_id, status_code=400, error="clinic.case.photo.count"
            )
        cleaned: list[tuple[str, bytes]] = []
        for kind, data in photos:
            try:
                # Checked, upright and without metadata before it leaves the portal.
                clean = await asyncio.to_thread(clean_photo, data, kind)
            except PhotoRefused as exc:
                return await case_view(
                    request,
                    session,
                    task_id,
                    status_code=400,
                    error=f"clinic.case.photo.{exc.reason}",
                )
            cleaned.append((clean.content_type, clean.data))

        async def answer_last(dialogue: DialogueClient) -> None:
            task = await dialogue.task(task_id)
            messages = await dialogue.thread(office_of(session), task.thread_id or "")
            if not messages:
                raise ClinicRefused(404, "no thread")
            await dialogue.answer(messages[-1].id, text, cleaned)

        return await act(request, session, "clinic.flash.answered", CLINIC_BASE, answer_last)

    @app.get(f"{CLINIC_BASE}/bilde/{{photo_id}}")
    async def photo(photo_id: str, request: Request) -> Response:
        """A photo of a message, read with the worker's token (the service decides who may)."""
        session = worker(request)
        photo_id = _ident(photo_id)
        dialogue = await client(session)
        try:
            kind, data = await dialogue.photo(photo_id)
        except ClinicRefused as exc:
            return refused(request, session, exc)
        return Response(
            data,
            media_type=kind,
            headers={
                "content-disposition": "inline",
                "x-content-type-options": "nosniff",
                "cache-control": "no-store",
            },
        )

    @app.post(f"{CLINIC_BASE}/sak/{{task_id}}/lukk")
    async def close(task_id: str, request: Request) -> Response:
        session, _form = await portal.checked_form(request)
        worker(request)
        return await act(
            request, session, "clinic.flash.closed", CLINIC_BASE,
            lambda d: d.close(_ident(task_id)),
        )  # fmt: skip

    @app.post(f"{CLINIC_BASE}/sak/{{task_id}}/fornyelse")
    async def renewal(task_id: str, request: Request) -> Response:
        session, form = await portal.checked_form(request)
        worker(request)
        task_id = _ident(task_id)
        decision = form.get("decision", "")
        reason = form.get("reason", "").strip()
        if decision not in ("renew", "refuse") or (decision == "refuse" and not reason):
            return await case_view(
                request,
                session,
                task_id,
                status_code=400,
                error="clinic.renewal.reason-missing"
                if decision == "refuse"
                else "clinic.renewal.choose",
                form=form,
            )
        if len(reason) > 1000:
            return await case_view(
                request, session, task_id, status_code=400, error="clinic.error.invalid"
            )
        flash = "clinic.flash.renewed" if decision == "renew" else "clinic.flash.refused"
        return await act(
            request, session, flash, CLINIC_BASE,
            lambda d: d.handle(task_id, renewed=decision == "renew", reason=reason or None),
        )  # fmt: skip

    # --- the calendar -----------------------------------------------------------------------

    async def calendar_view(
        request: Request,
        session: PortalSession,
        *,
        status_code: int = 200,
        error: str | None = None,
        form: Mapping[str, str] | None = None,
    ) -> Response:
        dialogue = await client(session)
        try:
            slots = await dialogue.free_slots(office_of(session))
            booked = await dialogue.appointments(office_of(session))
        except ClinicRefused as exc:
            return refused(request, session, exc)
        tomorrow = (datetime.now(_OSLO) + timedelta(days=1)).date()
        return portal.render(
            request,
            "hcp/clinic_calendar.html",
            session,
            status_code=status_code,
            slots=slots,
            booked=booked,
            modes=_MODES,
            error=error,
            form={
                "day": tomorrow.isoformat(),
                "time": "08:00",
                "minutes": "20",
                "flu_day": tomorrow.isoformat(),
                "flu_from": "09:00",
                "flu_to": "11:00",
                "flu_minutes": "5",
            }
            | dict(form or {}),
            vaccine_days=vaccine_days(slots),
            clock=format_clock,
            flash=take_flash(session),
        )

    @app.get(f"{CLINIC_BASE}/timer")
    async def calendar_page(request: Request) -> Response:
        return await calendar_view(request, worker(request))

    @app.post(f"{CLINIC_BASE}/timer")
    async def publish(request: Request) -> Response:
        session, form = await portal.checked_form(request)
        worker(request)
        start = _local(form.get("day", ""), form.get("time", ""))
        minutes = form.get("minutes", "")
        mode = form.get("mode", "")
        if (
            start is None
            or not minutes.isdigit()
            or not 5 <= int(minutes) <= 240
            or mode not in _MODES
        ):
            return await calendar_view(
                request, session, status_code=400, error="clinic.calendar.invalid", form=form
            )
        begins = start.replace(tzinfo=_OSLO)
        ends = begins + timedelta(minutes=int(minutes))
        return await act(
            request, session, "clinic.flash.published", _CALENDAR,
            lambda d: d.publish_slot(office_of(session), begins, ends, mode),
        )  # fmt: skip

    @app.post(f"{CLINIC_BASE}/timer/vaksine")
    async def publish_vaccine_day(request: Request) -> Response:
        """A vaccination day: back-to-back flu-vaccine slots from one time to another."""
        session, form = await portal.checked_form(request)
        worker(request)
        day = form.get("flu_day", "")
        start = _local(day, form.get("flu_from", ""))
        end = _local(day, form.get("flu_to", ""))
        minutes = form.get("flu_minutes", "")
        if (
            start is None
            or end is None
            or not start < end
            or not minutes.isascii()
            or not minutes.isdigit()
            or not 2 <= int(minutes) <= 60
            or (end - start) // timedelta(minutes=int(minutes)) > 200
        ):
            return await calendar_view(
                request, session, status_code=400, error="clinic.calendar.flu-invalid", form=form
            )
        begins, ends = start.replace(tzinfo=_OSLO), end.replace(tzinfo=_OSLO)
        return await act(
            request, session, "clinic.flash.flu-published", _CALENDAR,
            lambda d: d.publish_series(office_of(session), begins, ends, int(minutes)),
        )  # fmt: skip

    @app.post(f"{CLINIC_BASE}/timer/{{appointment_id}}/bekreft")
    async def confirm(appointment_id: str, request: Request) -> Response:
        session, _form = await portal.checked_form(request)
        worker(request)
        return await act(
            request, session, "clinic.flash.confirmed", _CALENDAR,
            lambda d: d.confirm(_ident(appointment_id)),
        )  # fmt: skip

    @app.post(f"{CLINIC_BASE}/timer/{{appointment_id}}/avlys")
    async def cancel(appointment_id: str, request: Request) -> Response:
        session, _form = await portal.checked_form(request)
        worker(request)
        return await act(
            request, session, "clinic.flash.cancelled", _CALENDAR,
            lambda d: d.cancel(_ident(appointment_id)),
        )  # fmt: skip

    @app.post(f"{CLINIC_BASE}/timer/{{appointment_id}}/flytt")
    async def move(appointment_id: str, request: Request) -> Response:
        session, form = await portal.checked_form(request)
        worker(request)
        slot = form.get("slot", "")
        if not _ID.fullmatch(slot):
            return await calendar_view(
                request, session, status_code=400, error="clinic.calendar.choose-slot"
            )
        return await act(
            request, session, "clinic.flash.moved", _CALENDAR,
            lambda d: d.move(_ident(appointment_id), slot),
        )  # fmt: skip

    # --- the office -------------------------------------------------------------------------

    async def office_view(
        request: Request,
        session: PortalSession,
        *,
        status_code: int = 200,
        error: str | None = None,
        form: Mapping[str, str] | None = None,
        preview: list[tuple[str, str]] | None = None,
    ) -> Response:
        dialogue = await client(session)
        try:
            state = await dialogue.office(office_of(session))
        except ClinicRefused as exc:
            return refused(request, session, exc)
        return portal.render(
            request,
            "hcp/clinic_office.html",
            session,
            status_code=status_code,
            office=state,
            services=[s.value for s in Service],
            error=error,
            form=dict(form or {}),
            preview=preview,
            flash=take_flash(session),
        )

    @app.get(f"{CLINIC_BASE}/kontor")
    async def office_page(request: Request) -> Response:
        return await office_view(request, worker(request))

    @app.post(f"{CLINIC_BASE}/bekreftelse")
    async def switch_confirming(request: Request) -> Response:
        session, form = await portal.checked_form(request)
        worker(request)
        active = form.get("active", "")
        if active not in ("on", "off"):
            return await office_view(
                request, session, status_code=400, error="clinic.error.invalid"
            )
        flash = "clinic.flash.confirm-on" if active == "on" else "clinic.flash.confirm-off"
        return await act(
            request, session, flash, _OFFICE,
            lambda d: d.set_confirm_bookings(office_of(session), active == "on"),
        )  # fmt: skip

    @app.post(f"{CLINIC_BASE}/tjeneste")
    async def switch_service(request: Request) -> Response:
        session, form = await portal.checked_form(request)
        worker(request)
        service, active = form.get("service", ""), form.get("active", "")
        if service not in {s.value for s in Service} or active not in ("on", "off"):
            return await office_view(
                request, session, status_code=400, error="clinic.error.invalid"
            )
        flash = "clinic.flash.service-on" if active == "on" else "clinic.flash.service-off"
        return await act(
            request, session, flash, _OFFICE,
            lambda d: d.set_service(office_of(session), service, active == "on"),
        )  # fmt: skip

    @app.post(f"{CLINIC_BASE}/informasjon")
    async def information(request: Request) -> Response:
        session, form = await portal.checked_form(request)
        worker(request)
        text = form.get("message", "").strip()
        if len(text) > _MAX_TEXT:
            return await office_view(
                request, session, status_code=400, error="clinic.error.invalid"
            )
        return await act(
            request, session, "clinic.flash.information", _OFFICE,
            lambda d: d.set_information(office_of(session), text),
        )  # fmt: skip

    @app.post(f"{CLINIC_BASE}/fravaer")
    async def absence(request: Request) -> Response:
        session, form = await portal.checked_form(request)
        worker(request)
        start = _local(str(form.get("start_day", "")), str(form.get("start_time", "")))
        end = _local(str(form.get("end_day", "")), str(form.get("end_time", "")))
        chosen = [s.value for s in Service if form.get(f"service-{s.value}") == "on"]
        substitute = str(form.get("substitute", "")).strip()[:200] or None
        problem = None
        planned = None
        if start is None or end is None:
            problem = "clinic.absence.dates"
        elif not chosen:
            problem = "clinic.absence.services-missing"
        else:
            try:
                planned = Absence(
                    "preview",
                    office_of(session),
                    start,
                    end,
                    frozenset(Service(s) for s in chosen),
                    substitute,
                )
            except BadInput:
                problem = "clinic.absence.order"
        if problem is not None or planned is None:
            return await office_view(request, session, status_code=400, error=problem, form=form)
        preview = [(s.value, closed_sentence(planned, s)) for s in sorted(planned.services)]
        if form.get("action") != "register":
            return await office_view(request, session, form=form, preview=preview)
        return await act(
            request, session, "clinic.flash.absence", _OFFICE,
            lambda d: d.register_absence(
                office_of(session),
                start=planned.start.isoformat(timespec="minutes"),
                end=planned.end.isoformat(timespec="minutes"),
                services=chosen,
                substitute=substitute,
            ),
        )  # fmt: skip


def _url(base: str, params: Mapping[str, str | None]) -> str:
    kept = {k: v for k, v in params.items() if v}
    return f"{base}?{urlencode(kept)}" if kept else base
