"""The citizen's pages for the dialogue with the GP office (issue 15; docs/dialogue.md).

Under `/innbygger/fastlege`: the GP and office with the services on offer, the office's
information message and always the urgent-help text; e-consultation (non-urgent, the fee and
the answer limit acknowledged); contact the office; the threads both ways; prescription
renewal; appointments (free slots, book, cancel; hospital appointments beside them); the flu
vaccine (the office's vaccine slots, book, cancel; the booking also among the appointments).
Each page is about the person the citizen acts for (`citizen_view.acting_person`, the same
choice as the record pages); the dialogue service decides from the token's representations
whether the citizen may use the service for them, and the page says so in words when it may
not.

The portal calls the dialogue service with the citizen's own token for its audience
(`dialogue_audience`), got from the login's refresh token with the same DPoP key
(`dialogue_of`); the hub token is kept as it is. Routes stay thin: check the session, call
`DialogueClient`, render; every change is a POST with the session's CSRF token.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from itertools import groupby
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from onerecord.dialogue.images import MAX_PHOTO_BYTES, MAX_PHOTOS, PhotoRefused, clean_photo
from onerecord.portals.citizen_routes import CITIZEN_BASE, CITIZEN_PAGES, citizen
from onerecord.portals.citizen_routes import acting as record_acting
from onerecord.portals.citizen_view import Notice, Person, acting_person
from onerecord.portals.dialogue_gateway import (
    AppointmentView,
    DialogueClient,
    DialogueDeclined,
    DialogueRefused,
    DialogueUnavailable,
    GpOffice,
    ServiceView,
    SlotView,
    threads_of,
)
from onerecord.portals.errors import CsrfRejected, NotLoggedIn, SessionEnded
from onerecord.portals.i18n import Translator, format_clock
from onerecord.portals.oauth import refresh
from onerecord.portals.sessions import PortalSession
from onerecord.portals.web import Portal, language_of

__all__ = ["GP_BASE", "install_citizen_gp_routes", "service_sentence"]

GP_BASE = f"{CITIZEN_BASE}/fastlege"
_REFRESH_MARGIN_S = 30.0
MAX_TEXT = 4000
MAX_NOTE = 500
MAX_UPLOAD_BYTES = MAX_PHOTOS * MAX_PHOTO_BYTES + 64 * 1024
"""The largest e-consultation form read (three photos and the text)."""
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
GP_PAGES = (
    ("", "citizen.gp.nav.home"),
    ("/e-konsultasjon", "citizen.gp.nav.e-consultation"),
    ("/kontakt", "citizen.gp.nav.contact"),
    ("/meldinger", "citizen.gp.nav.threads"),
    ("/resept", "citizen.gp.nav.renewal"),
    ("/timer", "citizen.gp.nav.appointments"),
    ("/influensavaksine", "citizen.gp.nav.flu-vaccine"),
)
"""The GP pages' own menu: (path under /innbygger/fastlege, message id)."""


_FORM_KEY = re.compile(r"[A-Za-z0-9_-]{16,48}")


def form_key(form: dict[str, str]) -> str | None:
    """The Idempotency-Key of a form post: the key the page gave the form (`skjema`), so a form
    sent twice (a double click, a resend after a lost answer) makes one message, request or
    booking; None for a malformed key (the post still goes through, without one)."""
    value = form.get("skjema", "")
    return f"portal-{value}" if _FORM_KEY.fullmatch(value) else None


def service_sentence(t: Translator, service: ServiceView) -> str:
    """The closed service said in words, in the page's language.

    In bokmål the service's own sentence (issue 15: «E-konsultasjon er midlertidig stengt av
    fastlegen din, og åpner igjen 25. april.»); in nynorsk and English the same said there,
    with «kl.»/«at» when it reopens during a day and the substitute when the GP named one.
    """
    if service.closed_until is None:
        return ""
    if t.language == "nb" and service.closed_text_nb:
        return service.closed_text_nb
    from onerecord.portals.i18n import _MONTHS, _OSLO

    local = service.closed_until.astimezone(_OSLO)
    months = _MONTHS.get(t.language, _MONTHS["nb"])
    if t.language == "en":
        when = f"{local.day} {months[local.month - 1]}"
        if local.hour or local.minute:
            when += f" at {local:%H:%M}"
    else:
        when = f"{local.day}. {months[local.month - 1]}"
        if local.hour or local.minute:
            when += f" kl. {local:%H.%M}"
    text = t("citizen.gp.closed", service=t(f"citizen.gp.service.{service.code}"), when=when)
    if service.substitute:
        text += " " + t("citizen.gp.closed.substitute", substitute=service.substitute)
    return text


def text_problem(text: str, category: str, *, acknowledged: bool) -> str | None:
    """The message id of what is wrong with a new thread's text or acknowledgement, if any."""
    if not text:
        return "citizen.gp.write.empty"
    if len(text) > MAX_TEXT:
        return "citizen.gp.write.too-long"
    if category == "e-consultation" and not acknowledged:
        return "citizen.gp.econ.ack-missing"
    return None


def install_citizen_gp_routes(app: FastAPI, portal: Portal) -> None:
    """Add the GP pages to `app` (after the citizen pages: they share the login)."""
    settings = portal.settings

    def acting(session: PortalSession) -> Person:
        """`citizen_routes.acting`, and also a child of 12–15 at the parent's address (the STS
        lists them for the dialogue only; the dialogue service applies its own rules again)."""
        assert session.citizen_nin is not None
        return acting_person(
            citizen_nin=session.citizen_nin,
            user_name=session.user_name,
            acting_for=session.acting_for,
            representations=(*session.representations, *session.dialogue_representations),
        )

    async def dialogue_of(session: PortalSession) -> DialogueClient:
        """The dialogue service with this citizen's token for it, renewed shortly before expiry.

        Got with the login's refresh token (which rotates: the hub token set keeps its access
        token and takes the new refresh token), one renewal at a time per session.
        """
        if settings.dialogue_url is None:
            raise DialogueUnavailable("citizen.gp.error.not-here")
        async with session.refresh_lock:
            tokens = session.tokens
            if tokens is None:
                raise NotLoggedIn()
            held = session.dialogue_tokens
            fresh_enough = (
                held is not None
                and held.dpop_key is tokens.dpop_key
                and held.expires_at - time.time() >= _REFRESH_MARGIN_S
            )
            if not fresh_enough:
                if tokens.refresh_token is None:
                    raise SessionEnded()
                held = await refresh(
                    portal.client(),
                    sts_url=settings.sts_url,
                    client_id=settings.client_id,
                    client_key=portal.client_key,
                    tokens=tokens,
                    audience=settings.dialogue_audience,
                )
                session.tokens = replace(tokens, refresh_token=held.refresh_token)
                session.dialogue_tokens = held
        assert held is not None
        return DialogueClient(
            portal.client(),
            held.hub_session(),
            f"{settings.dialogue_url}/fhir",
            settings.hub_timeout_s,
        )

    def render(
        request: Request,
        session: PortalSession,
        template: str,
        person: Person,
        active: str,
        *,
        status_code: int = 200,
        **context: Any,
    ) -> Response:
        notice = Notice.decode(session.flash)
        session.flash = None
        return portal.render(
            request,
            template,
            session,
            status_code=status_code,
            notice=notice,
            acting=person,
            # The banner says what the citizen does here; the menu's documents link names whom
            # the record's pages are about (the citizen, for a child of 12–15).
            gp_record=not gp_only(session, person),
            record_person=record_acting(session),
            nav=CITIZEN_PAGES,
            active="fastlege",
            gp_nav=GP_PAGES,
            gp_active=active,
            gp_base=GP_BASE,
            base=CITIZEN_BASE,
            closed_text=service_sentence,
            form_key=secrets.token_urlsafe(18),
            **context,
        )

    async def office_page(
        request: Request, session: PortalSession, template: str, active: str, **context: Any
    ) -> tuple[DialogueClient, Person, GpOffice] | Response:
        """Read the office for the person; a refusal becomes the page that says why."""
        person = acting(session)
        client = await dialogue_of(session)
        try:
            office = await client.office(person.nin)
        except DialogueRefused as exc:
            return render(
                request, session, "citizen/gp_refused.html", person, active,
                status_code=403, reason=exc.reason,
            )  # fmt: skip
        return client, person, office

    def gp_only(session: PortalSession, person: Person) -> bool:
        """The person is a child of 12–15 the citizen acts for in the GP pages only."""
        record = {str(r.get("nin")) for r in session.representations}
        listed = {str(r.get("nin")) for r in session.dialogue_representations}
        return not person.is_self and person.nin not in record and person.nin in listed

    def messages_refused(
        request: Request, session: PortalSession, person: Person, active: str
    ) -> Response | None:
        """The refusal page where the person is a child of 12–15 the citizen acts for in the GP
        pages only: their messages and e-consultations are not the parent's (the dialogue
        service refuses them too; the page does not offer a form that would be refused)."""
        if not gp_only(session, person):
            return None
        return render(
            request, session, "citizen/gp_refused.html", person, active,
            status_code=403, reason="service-not-for-parent-of-12-15",
        )  # fmt: skip

    def flash(session: PortalSession, key: str, problem: bool = False, **params: str) -> None:
        session.flash = Notice(key, params, problem).encode()

    async def form_of(request: Request) -> tuple[PortalSession, dict[str, str]]:
        session, form = await portal.checked_form(request)
        return citizen(session), dict(form)

    # -- My GP --------------------------------------------------------------------------------

    @app.get(GP_BASE)
    async def gp_home(request: Request) -> Response:
        session = citizen(portal.session(request))
        found = await office_page(request, session, "citizen/gp.html", "")
        if isinstance(found, Response):
            return found
        _client, person, office = found
        return render(request, session, "citizen/gp.html", person, "", office=office)

    # -- e-consultation and contact ---------------------------------------------------------

    async def new_thread_page(
        request: Request,
        session: PortalSession,
        category: str,
        *,
        status_code: int = 200,
        error: str | None = None,
        text: str = "",
    ) -> Response:
        active = "/e-konsultasjon" if category == "e-consultation" else "/kontakt"
        found = await office_page(request, session, "citizen/gp_write.html", active)
        if isinstance(found, Response):
            return found
        _client, person, office = found
        if (refused := messages_refused(request, session, person, active)) is not None:
            return refused
        return render(
            request, session, "citizen/gp_write.html", person, active,
            status_code=status_code, office=office, category=category,
            service=office.service(category), error=error, text=text,
        )  # fmt: skip

    @app.get(f"{GP_BASE}/e-konsultasjon")
    async def e_consultation_form(request: Request) -> Response:
        return await new_thread_page(request, citizen(portal.session(request)), "e-consultation")

    @app.get(f"{GP_BASE}/kontakt")
    async def contact_form(request: Request) -> Response:
        return await new_thread_page(request, citizen(portal.session(request)), "contact-office")

    async def multipart_form(
        request: Request,
    ) -> tuple[PortalSession, dict[str, str], list[tuple[str, bytes]]]:
        """A multipart form with photos (`bilde`), its size bounded before it is read, and its
        CSRF token checked; the photos as (declared type, bytes), empty file inputs left out."""
        session = portal.session(request)
        if session is None:
            raise CsrfRejected()
        declared = request.headers.get("content-length", "")
        if not declared.isdigit() or int(declared) > MAX_UPLOAD_BYTES:
            raise HTTPException(413)
        form = await request.form(max_files=MAX_PHOTOS, max_fields=20)
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        if not session.csrf_ok(fields.get("csrf_token")):
            raise CsrfRejected()
        photos = []
        for name, value in form.multi_items():
            if name == "bilde" and isinstance(value, UploadFile) and value.filename:
                data = await value.read(MAX_PHOTO_BYTES + 1)
                photos.append((value.content_type or "", data))
        await form.close()
        return citizen(session), fields, photos

    async def send_thread(request: Request, category: str) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media == "multipart/form-data":
            session, form, photos = await multipart_form(request)
        else:
            session, form = await form_of(request)
            photos = []
        text = form.get("tekst", "").strip()
        acknowledged = form.get("gebyr") == "ja"
        error = None
        cleaned: list[tuple[str, bytes]] = []
        if category != "e-consultation" and photos:
            error = "citizen.gp.photo.count"
        elif len(photos) > MAX_PHOTOS:
            error = "citizen.gp.photo.count"
        for kind, data in photos if error is None else ():
            try:
                # Checked, upright and without metadata before it leaves the portal.
                clean = await asyncio.to_thread(clean_photo, data, kind)
            except PhotoRefused as exc:
                error = f"citizen.gp.photo.{exc.reason}"
                break
            cleaned.append((clean.content_type, clean.data))
        error = error or text_problem(text, category, acknowledged=acknowledged)
        if error is not None:
            return await new_thread_page(
                request, session, category, status_code=400, error=error, text=text[:MAX_TEXT]
            )
        person = acting(session)
        client = await dialogue_of(session)
        try:
            message = await client.start_thread(
                person.nin, category, text, fee_acknowledged=acknowledged, photos=cleaned,
                key=form_key(form),
            )  # fmt: skip
        except DialogueDeclined:
            return await new_thread_page(
                request, session, category, status_code=409, error="citizen.gp.write.declined",
                text=text,
            )  # fmt: skip
        flash(session, "citizen.gp.write.sent")
        return portal.redirect(f"{GP_BASE}/meldinger/{message.thread_id}", session)

    @app.post(f"{GP_BASE}/e-konsultasjon")
    async def send_e_consultation(request: Request) -> Response:
        return await send_thread(request, "e-consultation")

    @app.post(f"{GP_BASE}/kontakt")
    async def send_contact(request: Request) -> Response:
        return await send_thread(request, "contact-office")

    # -- threads ------------------------------------------------------------------------------

    @app.get(f"{GP_BASE}/meldinger")
    async def threads(request: Request) -> Response:
        session = citizen(portal.session(request))
        found = await office_page(request, session, "citizen/gp_threads.html", "/meldinger")
        if isinstance(found, Response):
            return found
        client, person, office = found
        if (refused := messages_refused(request, session, person, "/meldinger")) is not None:
            return refused
        listed = threads_of(await client.messages(person.nin), await client.requests(person.nin))
        return render(
            request, session, "citizen/gp_threads.html", person, "/meldinger",
            office=office, threads=listed,
        )  # fmt: skip

    @app.get(f"{GP_BASE}/meldinger/{{thread_id}}")
    async def thread(request: Request, thread_id: str) -> Response:
        session = citizen(portal.session(request))
        found = await office_page(request, session, "citizen/gp_thread.html", "/meldinger")
        if isinstance(found, Response):
            return found
        client, person, office = found
        if (refused := messages_refused(request, session, person, "/meldinger")) is not None:
            return refused
        listed = threads_of(await client.messages(person.nin), await client.requests(person.nin))
        chosen = next((t for t in listed if t.id == thread_id[:64]), None)
        if chosen is None:
            flash(session, "citizen.gp.thread.unknown", problem=True)
            return portal.redirect(f"{GP_BASE}/meldinger", session)
        return render(
            request, session, "citizen/gp_thread.html", person, "/meldinger",
            office=office, thread=chosen,
        )  # fmt: skip

    @app.get(f"{GP_BASE}/bilde/{{photo_id}}")
    async def photo(request: Request, photo_id: str) -> Response:
        """A photo of a message, read with the citizen's token (the service decides who may)."""
        session = citizen(portal.session(request))
        if not _ID.fullmatch(photo_id):
            raise HTTPException(404)
        kind, data = await (await dialogue_of(session)).photo(photo_id)
        return Response(data, media_type=kind, headers={"content-disposition": "inline"})

    @app.post(f"{GP_BASE}/meldinger/{{thread_id}}/svar")
    async def reply(request: Request, thread_id: str) -> Response:
        session, form = await form_of(request)
        back = f"{GP_BASE}/meldinger/{thread_id[:64]}"
        text = form.get("tekst", "").strip()
        last = form.get("siste", "")[:64]
        if not text or len(text) > MAX_TEXT or not last:
            flash(session, "citizen.gp.write.empty", problem=True)
            return portal.redirect(back, session)
        person = acting(session)
        client = await dialogue_of(session)
        # Only a message of this person's thread is answered (the service checks it too).
        mine = {m.id for m in await client.messages(person.nin) if m.thread_id == thread_id}
        if last not in mine:
            flash(session, "citizen.gp.thread.unknown", problem=True)
            return portal.redirect(f"{GP_BASE}/meldinger", session)
        try:
            await client.reply(last, text, key=form_key(form))
        except DialogueDeclined:
            flash(session, "citizen.gp.write.declined", problem=True)
            return portal.redirect(back, session)
        flash(session, "citizen.gp.write.sent")
        return portal.redirect(back, session)

    # -- prescription renewal -----------------------------------------------------------------

    @app.get(f"{GP_BASE}/resept")
    async def renewal_page(request: Request) -> Response:
        session = citizen(portal.session(request))
        found = await office_page(request, session, "citizen/gp_renewal.html", "/resept")
        if isinstance(found, Response):
            return found
        client, person, office = found
        medications = await client.medications(person.nin)
        names = {m.id: m.name for m in medications}
        renewals = [r for r in await client.requests(person.nin) if r.medication_id]
        renewals.sort(key=lambda r: r.created, reverse=True)
        return render(
            request, session, "citizen/gp_renewal.html", person, "/resept",
            office=office, service=office.service("prescription-renewal"),
            medications=medications, renewals=renewals, names=names,
        )  # fmt: skip

    async def choice_form(
        request: Request, back: str, field: str, choose: str
    ) -> tuple[PortalSession, dict[str, str], str, str | None] | Response:
        """A renewal's or booking's form: the session, the form, what was chosen (`field`) and
        the note; or the redirect to `back` saying nothing was chosen or the note is too long."""
        session, form = await form_of(request)
        chosen = form.get(field, "")[:64]
        note = form.get("merknad", "").strip()
        if not chosen:
            flash(session, choose, problem=True)
            return portal.redirect(back, session)
        if len(note) > MAX_NOTE:
            flash(session, "citizen.gp.write.too-long", problem=True)
            return portal.redirect(back, session)
        return session, form, chosen, note or None

    @app.post(f"{GP_BASE}/resept")
    async def ask_renewal(request: Request) -> Response:
        back = f"{GP_BASE}/resept"
        read = await choice_form(request, back, "legemiddel", "citizen.gp.renewal.choose")
        if isinstance(read, Response):
            return read
        session, form, medication, note = read
        person = acting(session)
        client = await dialogue_of(session)
        try:
            await client.renew(person.nin, medication, note, key=form_key(form))
        except DialogueDeclined:
            flash(session, "citizen.gp.renewal.declined", problem=True)
            return portal.redirect(back, session)
        flash(session, "citizen.gp.renewal.sent")
        return portal.redirect(back, session)

    # -- appointments -------------------------------------------------------------------------

    @app.get(f"{GP_BASE}/timer")
    async def appointments_page(request: Request) -> Response:
        session = citizen(portal.session(request))
        found = await office_page(request, session, "citizen/gp_appointments.html", "/timer")
        if isinstance(found, Response):
            return found
        client, person, office = found
        service = office.service("appointment-booking")
        slots = await client.slots(person.nin) if service.open else []
        booked = await client.appointments(person.nin)
        now = datetime.now(UTC)

        def gp(a: AppointmentView) -> bool:
            return a.office == office.orgnr

        held = ("booked", "proposed")  # proposed: the office has still to confirm it
        upcoming = [a for a in booked if gp(a) and a.status in held and a.end > now]
        past = [a for a in booked if gp(a) and (a.status not in held or a.end <= now)]
        hospital = [a for a in booked if not gp(a) and a.status == "booked"]
        units = await client.units(person.nin)
        may_write = not gp_only(session, person)
        return render(
            request, session, "citizen/gp_appointments.html", person, "/timer",
            office=office, service=service, slots=slots[:40], upcoming=upcoming,
            past=sorted(past, key=lambda a: a.start, reverse=True), hospital=hospital,
            units=units, unit_names={u.orgnr: u.name for u in units},
            writable=[u for u in units if u.contact and may_write],
        )  # fmt: skip

    @app.post(f"{GP_BASE}/timer/helsekontakt")
    async def write_to_unit(request: Request) -> Response:
        """A contact message to a treating unit at the hospital (no fee, answered by the unit)."""
        session, form = await form_of(request)
        back = f"{GP_BASE}/timer"
        unit = form.get("enhet", "")
        text = form.get("tekst", "").strip()
        if not re.fullmatch(r"[0-9]{9}", unit):
            flash(session, "citizen.gp.unit.choose", problem=True)
            return portal.redirect(back, session)
        if (problem := text_problem(text, "contact-office", acknowledged=False)) is not None:
            flash(session, problem, problem=True)
            return portal.redirect(back, session)
        person = acting(session)
        client = await dialogue_of(session)
        try:
            message = await client.write_to_unit(person.nin, unit, text)
        except DialogueDeclined:
            flash(session, "citizen.gp.write.declined", problem=True)
            return portal.redirect(back, session)
        flash(session, "citizen.gp.write.sent")
        return portal.redirect(f"{GP_BASE}/meldinger/{message.thread_id}", session)

    @app.post(f"{GP_BASE}/timer")
    async def book(request: Request) -> Response:
        back = f"{GP_BASE}/timer"
        read = await choice_form(request, back, "time", "citizen.gp.booking.choose")
        if isinstance(read, Response):
            return read
        session, form, slot, note = read
        person = acting(session)
        client = await dialogue_of(session)
        try:
            made = await client.book(person.nin, slot, note, key=form_key(form))
        except DialogueDeclined:
            flash(session, "citizen.gp.booking.declined", problem=True)
            return portal.redirect(back, session)
        t = Translator(language_of(request))
        flash(session, "citizen.gp.booking.done", when=t.datetime(made.start))
        return portal.redirect(back, session)

    @app.post(f"{GP_BASE}/timer/avbestill")
    async def cancel(request: Request) -> Response:
        return await cancel_appointment(request, f"{GP_BASE}/timer")

    async def cancel_appointment(request: Request, back: str) -> Response:
        """Cancel one of the person's appointments at the GP office, then back to `back`."""
        session, form = await form_of(request)
        chosen = form.get("avtale", "")[:64]
        person = acting(session)
        client = await dialogue_of(session)
        found = await office_page(request, session, "citizen/gp_appointments.html", "/timer")
        if isinstance(found, Response):
            return found
        _c, _p, office = found
        mine = {
            a.id: a
            for a in await client.appointments(person.nin)
            if a.office == office.orgnr and a.status in ("booked", "proposed")
        }
        if chosen not in mine:
            flash(session, "citizen.gp.booking.unknown", problem=True)
            return portal.redirect(back, session)
        try:
            await client.cancel(chosen)
        except DialogueDeclined:
            flash(session, "citizen.gp.booking.declined", problem=True)
            return portal.redirect(back, session)
        t = Translator(language_of(request))
        flash(session, "citizen.gp.booking.cancelled", when=t.datetime(mine[chosen].start))
        return portal.redirect(back, session)

    # -- the flu vaccine ----------------------------------------------------------------------

    _FLU = f"{GP_BASE}/influensavaksine"

    @app.get(_FLU)
    async def flu_page(request: Request) -> Response:
        """The office's flu-vaccine slots by day, the person's vaccine bookings, book, cancel."""
        session = citizen(portal.session(request))
        template = "citizen/gp_flu.html"
        found = await office_page(request, session, template, "/influensavaksine")
        if isinstance(found, Response):
            return found
        client, person, office = found
        service = office.service("flu-vaccine")
        slots = await client.vaccine_slots(person.nin) if service.open else []
        now = datetime.now(UTC)
        booked = [
            a
            for a in await client.appointments(person.nin)
            if a.office == office.orgnr
            and a.service == "flu-vaccine"
            and a.status in ("booked", "proposed")
            and a.end > now
        ]
        return render(
            request, session, template, person, "/influensavaksine",
            office=office, service=service, booked=booked, days=slot_days(slots),
            clock=clock,
        )  # fmt: skip

    @app.post(_FLU)
    async def book_flu_vaccine(request: Request) -> Response:
        read = await choice_form(request, _FLU, "time", "citizen.gp.booking.choose")
        if isinstance(read, Response):
            return read
        session, form, slot, note = read
        person = acting(session)
        client = await dialogue_of(session)
        try:
            made = await client.book(person.nin, slot, note, key=form_key(form))
        except DialogueDeclined:
            flash(session, "citizen.gp.flu.declined", problem=True)
            return portal.redirect(_FLU, session)
        t = Translator(language_of(request))
        flash(session, "citizen.gp.flu.done", when=t.datetime(made.start))
        return portal.redirect(_FLU, session)

    @app.post(f"{_FLU}/avbestill")
    async def cancel_flu_vaccine(request: Request) -> Response:
        return await cancel_appointment(request, _FLU)


MAX_VACCINE_SLOTS_SHOWN = 120
"""The most vaccine slots the booking page lists (the earliest first)."""


def slot_days(slots: list[SlotView]) -> list[tuple[date, list[SlotView]]]:
    """The slots grouped by their Oslo day, the earliest first: a vaccination day has many."""
    from onerecord.portals.i18n import _OSLO

    ordered = sorted(slots, key=lambda s: s.start)[:MAX_VACCINE_SLOTS_SHOWN]
    return [
        (day, list(group))
        for day, group in groupby(ordered, key=lambda s: s.start.astimezone(_OSLO).date())
    ]


def clock(t: Translator, moment: datetime) -> str:
    """The time of day in Oslo the page's way: «09.05» (nb, nn), «09:05» (en)."""
    return format_clock(moment, t.language)
