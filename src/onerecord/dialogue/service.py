"""The dialogue service: every citizen and clinic action, checked, stored and audited.

`DialogueService` receives its store, audit sink and clock and builds none. Each action takes
the caller (a citizen acting for themselves or someone they represent, or a health worker at the
office) and keyword-only arguments; it checks who may do it (`representation.may_act`, the
health worker's HPR number and workplace), whether the office's service is on and open
(`rules.service_state`), then writes, and writes one audit record per patient — refusals too.

Audit actions (onerecord.audit): SEARCH for a list, RETRIEVE for one read, STORE for a new
message, request or booking, CONTROL_CHANGE for the office's settings, an absence, an answer to
a request and a cancellation. `query` names the FHIR resource, `document_ids` its ids.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from onerecord.audit import (
    AuditAction,
    AuditCitizen,
    AuditCode,
    AuditOrganisation,
    AuditOutcome,
    AuditPractitioner,
    AuditRecord,
    AuditSink,
    CitizenLogEntry,
    citizen_log_entries,
)
from onerecord.dialogue.absence import Absence
from onerecord.dialogue.calendar import OSLO, answer_due
from onerecord.dialogue.errors import BadInput, Conflict, DialogueError, NotAllowed, NotFound
from onerecord.dialogue.images import MAX_PHOTOS, CleanPhoto
from onerecord.dialogue.model import (
    SLOT_SERVICES,
    Appointment,
    AppointmentStatus,
    Attachment,
    Medication,
    Message,
    Office,
    Request,
    RequestKind,
    RequestStatus,
    Sender,
    Service,
    Slot,
    ThreadCategory,
    VisitMode,
)
from onerecord.dialogue.outbox import (
    IdempotencyClaim,
    Notification,
    NotificationKind,
    idempotency_key,
    notification_id,
)
from onerecord.dialogue.representation import ActingFacts, Relation, may_act
from onerecord.dialogue.rules import (
    MAX_NOTE_CHARS,
    ServiceState,
    check_e_consultation,
    check_text,
    require_open,
    service_state,
)
from onerecord.dialogue.store import DialogueStore, KeyTaken, ListEntry
from onerecord.domain import NationalIdentityNumber
from onerecord.trust.principal import CitizenContext, HealthPersonnelContext, RelationKind

__all__ = ["LOG_TITLES", "Caller", "DialogueService", "Idempotency", "InboxPage", "OfficeView"]

LOG_TITLES = {
    "Communication": "Meldinger med legekontoret",
    "Task": "Henvendelser til legekontoret",
    "MedicationRequest": "Legemiddellisten (fornying av resept)",
    "Appointment": "Timeavtaler hos fastlegen",
    "HealthcareService": "Fastlegekontoret",
}
"""What the citizen's access log says a clinic read was of, by the FHIR resource it read."""

INBOX_MAX_PAGE = 100
"""The most rows one page of the work list holds."""

SERIES_MAX_SLOTS = 200
"""The most slots one series (a vaccination day) publishes at once."""
SERIES_SLOT_MINUTES = (2, 60)
"""The shortest and longest slot of a series, in minutes."""
SERIES_MAX_SPAN = timedelta(hours=12)
"""The longest session a series covers."""


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: a citizen or a health worker, and what the audit keeps of them."""

    correlation_id: str
    token_jti: str | None
    citizen: CitizenContext | None = None
    staff: HealthPersonnelContext | None = None

    def __post_init__(self) -> None:
        if (self.citizen is None) == (self.staff is None):
            raise ValueError("a caller is a citizen or a health worker")


UNIT_MEMORY = timedelta(days=365)
FAILED_NOTICE_DAYS = 30
"""How far back the work list lists the requests whose notice to the patient failed."""
FAILED_NOTICE_MAX = 20
"""How long after the last appointment at a hospital's unit the patient may still write to it."""


@dataclass(frozen=True, slots=True)
class Idempotency:
    """The client's `Idempotency-Key` of a create, and the digest of the body it came with."""

    key: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class OfficeView:
    """The office as one patient sees it now: services, their states, the GP, the message."""

    office: Office
    gp_name: str | None
    states: tuple[ServiceState, ...]


@dataclass(frozen=True, slots=True)
class InboxPage:
    """One page of the office's work list, the earliest answer limit first."""

    items: tuple[Request, ...]
    total: int
    """How many rows match the filters, over all pages."""
    next_after: tuple[datetime, str] | None
    """The keyset of the next page (the last row's due time and id), None on the last page."""
    now: datetime
    """The service's time when the page was read: a row is overdue when due before it."""


@dataclass(frozen=True, slots=True)
class _Acting:
    """Who acts for whom, decided: the office and the relation."""

    patient: str
    entry: ListEntry
    office: Office
    """The person's GP office, read with the entry."""
    relation: Relation


def _check_slot_kind(service: Service, mode: VisitMode) -> None:
    """A slot is for a consultation or a flu vaccine; a vaccine is given in person."""
    if service not in SLOT_SERVICES:
        raise BadInput("slots are published for appointment-booking or flu-vaccine")
    if service is Service.FLU_VACCINE and mode is not VisitMode.IN_PERSON:
        raise BadInput("a flu vaccine is given in person")


def _new_id() -> str:
    return secrets.token_hex(12)


def _now() -> datetime:
    return datetime.now(UTC)


def _photos(message_id: str, photos: Sequence[CleanPhoto]) -> tuple[Attachment, ...]:
    """The photos to store with message `message_id` (stored in its transaction)."""
    if len(photos) > MAX_PHOTOS:
        raise BadInput(f"at most {MAX_PHOTOS} photos in one message")
    return tuple(
        Attachment(_new_id(), message_id, p.content_type, len(p.data), p.data) for p in photos
    )


_RELATIONS = {
    RelationKind.PARENT: Relation.PARENT,
    RelationKind.PROXY: Relation.PROXY,
    RelationKind.PROXY_UNABLE_TO_CONSENT: Relation.PROXY,
}


@dataclass
class DialogueService:
    """The GP office dialogue over a DialogueStore, audited into an AuditSink."""

    store: DialogueStore
    audit: AuditSink
    source_id: str
    clock: Callable[[], datetime] = field(default=_now)
    audit_records: Callable[[Sequence[str]], Awaitable[list[AuditRecord]]] | None = None
    """Reads this service's audit records of patients (the citizen's access log)."""
    queued: Callable[[], None] = field(default=lambda: None)
    """Called after a notice was written to the outbox (wakes the mail sender)."""
    key_retention: timedelta = timedelta(hours=24)
    """How long an Idempotency-Key names what it made; after it the key is free again."""

    # -- notices and idempotency ------------------------------------------------------------

    def _notice(
        self, kind: NotificationKind, recipient: str, *event: str, request_id: str | None = None
    ) -> Notification:
        return Notification(
            notification_id(kind, *event), kind, recipient, self.clock(), request_id=request_id
        )

    async def _with_failed_notices(self, requests: Sequence[Request]) -> tuple[Request, ...]:
        """The requests with when their last notice failed, for the office to call instead."""
        failed = await self.store.failed_notices([r.id for r in requests])
        return tuple(replace(r, notice_failed=failed.get(r.id)) for r in requests)

    async def purge_expired_keys(self) -> int:
        """Delete the idempotency keys past their retention (at the service's clock)."""
        return await self.store.purge_idempotency(before=self.clock() - self.key_retention)

    def _claim(
        self, caller: Caller, operation: str, given: Idempotency | None
    ) -> IdempotencyClaim | None:
        if given is None:
            return None
        if caller.citizen is not None:
            who = caller.citizen.nin.value
        else:
            assert caller.staff is not None
            who = caller.staff.practitioner_nin.value
        return IdempotencyClaim(
            idempotency_key(who, operation, given.key),
            given.fingerprint,
            operation,
            expired_before=self.clock() - self.key_retention,
        )

    async def _earlier(self, claim: IdempotencyClaim | None) -> str | None:
        """The id of what an earlier request with the same key made (None: nothing yet)."""
        if claim is None:
            return None
        found = await self.store.idempotent(claim.key, since=claim.expired_before)
        if found is None:
            return None
        if found.fingerprint != claim.fingerprint:
            raise Conflict(
                "this Idempotency-Key was used with another request", reason="key-reused"
            )
        return found.resource_id

    # -- audit -----------------------------------------------------------------------------

    async def _audit(
        self,
        caller: Caller,
        *,
        action: AuditAction,
        resource: str,
        patients: Sequence[str | None],
        ids: Sequence[str] = (),
        refusal: DialogueError | None = None,
    ) -> None:
        await self.audit.append(
            self._records(
                caller,
                action=action,
                resource=resource,
                patients=patients,
                ids=ids,
                refusal=refusal,
            )
        )

    @staticmethod
    def _practitioner(s: HealthPersonnelContext) -> AuditPractitioner:
        return AuditPractitioner(
            name=s.name,
            nin=s.practitioner_nin.value,
            legal_entity=AuditOrganisation(
                s.legal_entity.id, s.legal_entity.name, s.legal_entity.system
            ),
            point_of_care=AuditOrganisation(
                s.point_of_care.id, s.point_of_care.name, s.point_of_care.system
            ),
            decision_ref_id=s.decision_ref_id,
            hpr=s.hpr.value if s.hpr else None,
            role=s.roles[0] if s.roles else None,
            purpose_of_use=s.purpose_of_use,
            healthcare_service=(
                AuditCode(
                    s.healthcare_service.system,
                    s.healthcare_service.code,
                    s.healthcare_service.display,
                )
                if s.healthcare_service
                else None
            ),
        )

    def _records(
        self,
        caller: Caller,
        *,
        action: AuditAction,
        resource: str,
        patients: Sequence[str | None],
        ids: Sequence[str] = (),
        refusal: DialogueError | None = None,
    ) -> list[AuditRecord]:
        """The audit records of one action: one per patient (or one without a patient)."""
        by_patient = dict.fromkeys(dict.fromkeys(patients) or [None], tuple(ids))
        return self._records_by_patient(caller, action, resource, by_patient, refusal)

    def _records_by_patient(
        self,
        caller: Caller,
        action: AuditAction,
        resource: str,
        by_patient: Mapping[str | None, tuple[str, ...]],
        refusal: DialogueError | None = None,
    ) -> list[AuditRecord]:
        """One record per patient, naming what was read or changed of theirs."""
        practitioner = citizen = None
        if caller.staff is not None:
            practitioner = self._practitioner(caller.staff)
        recorded = self.clock()
        outcome = AuditOutcome.SUCCESS if refusal is None else AuditOutcome.DENIED
        records = []
        for patient, ids in by_patient.items():
            if caller.citizen is not None:
                c = caller.citizen
                rep = c.representation_of(NationalIdentityNumber(patient)) if patient else None
                citizen = AuditCitizen(
                    nin=c.nin.value,
                    on_behalf_of=patient if patient and patient != c.nin.value else None,
                    relation=rep.relation.value if rep is not None else None,
                )
            records.append(
                AuditRecord(
                    action=action,
                    outcome=outcome,
                    recorded=recorded,
                    source_id=self.source_id,
                    home_community_id=self.source_id,
                    correlation_id=caller.correlation_id,
                    patient_id=patient,
                    practitioner=practitioner,
                    citizen=citizen,
                    reason=refusal.reason if refusal is not None else None,
                    document_ids=ids,
                    returned_count=len(ids),
                    query=resource,
                    token_jti=caller.token_jti,
                )
            )
        return records

    async def _refused(
        self,
        caller: Caller,
        exc: DialogueError,
        *,
        action: AuditAction,
        resource: str,
        patient: str | None,
    ) -> DialogueError:
        if isinstance(exc, NotAllowed | NotFound | Conflict):
            await self._audit(
                caller, action=action, resource=resource, patients=[patient], refusal=exc
            )
        return exc

    @asynccontextmanager
    async def _refusing(
        self, caller: Caller, *, action: AuditAction, resource: str, patient: str | None
    ) -> AsyncIterator[None]:
        """Turn a DialogueError raised inside into `_refused`'s (audited if it is a refusal)."""
        try:
            yield
        except DialogueError as exc:
            raise await self._refused(
                caller, exc, action=action, resource=resource, patient=patient
            ) from None

    # -- who may act ------------------------------------------------------------------------

    async def _office_of(self, patient: str) -> tuple[ListEntry, Office]:
        found = await self.store.office_of(patient)
        if found is None:
            raise NotFound("the person is not on a GP list this service knows", reason="no-gp")
        return found

    async def _units_of(self, patient: str) -> list[Office]:
        """The treating units (helsekontakt) the patient has a dialogue with: every office other
        than the GP's where the patient has a booked appointment ending at most `UNIT_MEMORY`
        ago or later (a course of treatment there); first appointment first."""
        entry = await self.store.list_entry(patient)
        since = self.clock() - UNIT_MEMORY
        units: list[Office] = []
        for a in await self.store.appointments(patient):
            if a.status is not AppointmentStatus.BOOKED or a.end < since:
                continue
            if (entry is not None and a.office == entry.office) or a.office in {
                u.orgnr for u in units
            }:
                continue
            found = await self.store.office(a.office)
            if found is not None:
                units.append(found)
        return units

    async def treating_units(self, caller: Caller, *, patient: str) -> Sequence[Office]:
        """The patient's treating units at hospitals (for the patient's side, or staff there)."""
        async with self._refusing(
            caller, action=AuditAction.SEARCH, resource="Organization", patient=patient
        ):
            if caller.citizen is None:
                raise NotAllowed("this list is the citizen's", reason="citizen-only")
            acting = await self._citizen_acting(caller, patient, Service.APPOINTMENT_BOOKING)
            units = await self._units_of(acting.patient)
        await self._audit(
            caller,
            action=AuditAction.SEARCH,
            resource="Organization",
            patients=[acting.patient],
            ids=[u.orgnr for u in units],
        )
        return units

    async def _citizen_acting(self, caller: Caller, patient: str, service: Service) -> _Acting:
        """Decide whether the citizen may use `service` for `patient` (representation rules)."""
        citizen = caller.citizen
        if citizen is None:
            raise NotAllowed("this action is the citizen's", reason="citizen-only")
        try:
            person = NationalIdentityNumber(patient)
        except ValueError:
            raise BadInput("patient is not a national identity number") from None
        if person == citizen.nin:
            relation = Relation.SELF
        else:
            rep = citizen.representation_of(person)
            relation = _RELATIONS[rep.relation] if rep is not None else Relation.NONE
        entry, office = await self._office_of(person.value)
        if relation is Relation.SELF:
            mine: ListEntry | None = entry
        else:
            mine = await self.store.list_entry(citizen.nin.value)
        facts = ActingFacts(
            actor_born=citizen.born,
            person_born=person.birth_date,
            relation=relation,
            actor_address_protected=mine is not None and mine.address_protected,
            person_address_protected=relation is not Relation.SELF and entry.address_protected,
            # The STS issues a parent representation only where a parent lives at the child's
            # address (sts.representation); the token carries that fact.
            parent_at_child_address=relation is Relation.PARENT,
        )
        refusal = may_act(facts, service, self._today())
        if refusal is not None:
            raise NotAllowed(
                f"you may not use this service for this person ({refusal.value})",
                reason=refusal.value,
            )
        return _Acting(person.value, entry, office, relation)

    def _staff_at(self, caller: Caller, office: str) -> HealthPersonnelContext:
        """The health worker, if they have an HPR number and work at `office`."""
        staff = caller.staff
        if staff is None:
            raise NotAllowed("this action is the office's", reason="staff-only")
        if staff.hpr is None:
            raise NotAllowed("health personnel need an HPR number", reason="no-hpr")
        if staff.point_of_care.id != office:
            raise NotAllowed("you do not work at this office", reason="other-office")
        return staff

    async def _office_staff(
        self, caller: Caller, office: str, *, action: AuditAction, resource: str
    ) -> HealthPersonnelContext:
        """`_staff_at`, with a refusal audited (F5)."""
        async with self._refusing(caller, action=action, resource=resource, patient=None):
            return self._staff_at(caller, office)

    async def _patient_caller(
        self, caller: Caller, *, patient: str, service: Service, office: str | None = None
    ) -> _Acting | None:
        """Check the caller may act on `patient`'s `service`.

        A health worker must work at `office` (by default the patient's GP office) and gets
        None; a citizen is decided by the representation rules and gets their `_Acting`.
        """
        if caller.staff is not None:
            if office is None:
                office = (await self._office_of(patient))[1].orgnr
            self._staff_at(caller, office)
            return None
        return await self._citizen_acting(caller, patient, service)

    async def _citizen_for(self, caller: Caller, patient: str | None, service: Service) -> _Acting:
        """`_citizen_acting` for a list a citizen asks for, which must name the patient."""
        if patient is None:
            raise BadInput("give the patient")
        return await self._citizen_acting(caller, patient, service)

    async def _staff_office(
        self, caller: Caller, *, patient: str | None, office: str | None
    ) -> str:
        """The office a health worker asks about (given, or the patient's); they must work there."""
        if office is None and patient is not None:
            office = (await self._office_of(patient))[1].orgnr
        if office is None:
            raise BadInput("give the patient or the organization")
        self._staff_at(caller, office)
        return office

    async def _existing_office(self, office: str) -> Office:
        """The office, or NotFound."""
        found = await self.store.office(office)
        if found is None:
            raise NotFound("no such office")
        return found

    def _today(self) -> date:
        return self.clock().astimezone(OSLO).date()

    async def _state(self, office: Office, service: Service) -> ServiceState:
        return service_state(office, await self.store.absences(office.orgnr), service, self.clock())

    # -- the office -------------------------------------------------------------------------

    async def office_for(self, caller: Caller, *, patient: str) -> OfficeView:
        """The patient's GP office, its services and their state now (the "My GP" page)."""
        resource = "HealthcareService"
        async with self._refusing(
            caller, action=AuditAction.RETRIEVE, resource=resource, patient=patient
        ):
            if caller.staff is not None:
                entry, office = await self._office_of(patient)
                self._staff_at(caller, office.orgnr)
            else:
                # The page of any practical service: a parent of a child of 12–15 reads it too.
                acting = await self._citizen_acting(caller, patient, Service.APPOINTMENT_BOOKING)
                entry, office = acting.entry, acting.office
        absences = await self.store.absences(office.orgnr)
        at = self.clock()
        states = tuple(service_state(office, absences, s, at) for s in Service)
        await self._audit(
            caller,
            action=AuditAction.RETRIEVE,
            resource=resource,
            patients=[patient],
            ids=[office.orgnr],
        )
        return OfficeView(office, entry.gp_name, states)

    async def office_view(self, caller: Caller, *, office: str) -> OfficeView:
        """The office as its staff see it (no patient)."""
        self._staff_at(caller, office)
        found = await self._existing_office(office)
        absences = await self.store.absences(office)
        at = self.clock()
        return OfficeView(
            found, None, tuple(service_state(found, absences, s, at) for s in Service)
        )

    async def set_service(
        self, caller: Caller, *, office: str, service: Service, active: bool
    ) -> Office:
        """Switch one of the office's services on or off."""
        await self._office_staff(
            caller, office, action=AuditAction.CONTROL_CHANGE, resource="HealthcareService"
        )
        found = await self._existing_office(office)
        services = found.services | {service} if active else found.services - {service}
        changed = replace(found, services=frozenset(services))
        await self.store.put_office(changed)
        await self._audit(
            caller,
            action=AuditAction.CONTROL_CHANGE,
            resource=f"HealthcareService/{service.value}",
            patients=[None],
            ids=[office],
        )
        return changed

    async def set_confirm_bookings(self, caller: Caller, *, office: str, active: bool) -> Office:
        """Whether the office confirms each booking by a patient (`proposed` until then)."""
        await self._office_staff(
            caller, office, action=AuditAction.CONTROL_CHANGE, resource="Organization"
        )
        changed = replace(await self._existing_office(office), confirm_bookings=active)
        await self.store.put_office(changed)
        await self._audit(
            caller,
            action=AuditAction.CONTROL_CHANGE,
            resource="Organization",
            patients=[None],
            ids=[office],
        )
        return changed

    async def set_information(self, caller: Caller, *, office: str, text: str | None) -> Office:
        """Set or clear the office's information message ("Informasjon fra legekontoret")."""
        await self._office_staff(
            caller, office, action=AuditAction.CONTROL_CHANGE, resource="Organization"
        )
        found = await self._existing_office(office)
        message = check_text(text, what="information message") if text else None
        changed = replace(found, information=message)
        await self.store.put_office(changed)
        await self._audit(
            caller,
            action=AuditAction.CONTROL_CHANGE,
            resource="Organization",
            patients=[None],
            ids=[office],
        )
        return changed

    async def register_absence(
        self,
        caller: Caller,
        *,
        office: str,
        start: datetime,
        end: datetime,
        services: frozenset[Service],
        substitute: str | None,
    ) -> Absence:
        """Register the GP's absence (Oslo local times); the named services close then."""
        await self._office_staff(
            caller, office, action=AuditAction.CONTROL_CHANGE, resource="Absence"
        )
        await self._existing_office(office)
        sub = check_text(substitute, what="substitute", limit=200) if substitute else None
        absence = Absence(_new_id(), office, start, end, services, sub)
        await self.store.add_absence(absence)
        await self._audit(
            caller,
            action=AuditAction.CONTROL_CHANGE,
            resource="Absence",
            patients=[None],
            ids=[absence.id],
        )
        return absence

    # -- threads ----------------------------------------------------------------------------

    async def send(
        self,
        caller: Caller,
        *,
        patient: str | None,
        text: str,
        category: ThreadCategory | None,
        in_response_to: str | None,
        fee_acknowledged: bool = False,
        urgent: bool = False,
        photos: Sequence[CleanPhoto] = (),
        message_id: str | None = None,
        unit: str | None = None,
        idempotency: Idempotency | None = None,
    ) -> tuple[Message, Request | None]:
        """Start a thread (citizen) or answer in one (either side); an e-consultation opens a
        request whose answer is due in 5 working days, and the office's first answer closes it.
        `photos` (checked and stripped, `dialogue.images`) are stored with the message.
        `unit`: a new contact thread goes to that treating unit at a hospital (one of the
        patient's, `treating_units`) rather than the GP office; contact only, no fee.

        `message_id` (a reply only) makes the reply idempotent: sent again with the same id,
        text and parent it is not stored twice (the KITH inbox derives it from the MsgId). With
        `idempotency` (the API's Idempotency-Key), a key already used gives back the message it
        made (nothing new)."""
        resource = "Communication"
        claim = self._claim(caller, resource, idempotency)
        async with self._refusing(
            caller, action=AuditAction.STORE, resource=resource, patient=patient
        ):
            body = check_text(text)
            made = await self._earlier(claim)
            if made is None:
                try:
                    if in_response_to is None:
                        return await self._start_thread(
                            caller,
                            patient=patient,
                            text=body,
                            category=category,
                            fee_acknowledged=fee_acknowledged,
                            urgent=urgent,
                            photos=photos,
                            claim=claim,
                            unit=unit,
                        )
                    if unit is not None:
                        raise BadInput("a reply goes to its thread's office: give no recipient")
                    return await self._reply(
                        caller,
                        text=body,
                        in_response_to=in_response_to,
                        photos=photos,
                        message_id=message_id,
                        claim=claim,
                    )
                except KeyTaken:  # the same key, sent twice at once: the other one made it
                    made = await self._earlier(claim)
        # What the key made, read outside the block above: `message` audits its own refusal.
        assert made is not None
        return await self.message(caller, message_id=made), None

    async def _start_thread(
        self,
        caller: Caller,
        *,
        patient: str | None,
        text: str,
        category: ThreadCategory | None,
        fee_acknowledged: bool,
        urgent: bool,
        photos: Sequence[CleanPhoto] = (),
        unit: str | None = None,
        claim: IdempotencyClaim | None = None,
    ) -> tuple[Message, Request | None]:
        if caller.citizen is None:
            raise NotAllowed("the office answers in a thread the patient started", reason="staff")
        if patient is None or category is None:
            raise BadInput("a new thread needs the patient (subject) and a category")
        if unit is not None and category is not ThreadCategory.CONTACT_OFFICE:
            raise BadInput("a treating unit takes contact messages only", reason="unit-contact")
        acting = await self._citizen_acting(caller, patient, category.service)
        if unit is None:
            office = acting.office
        else:
            units = {u.orgnr: u for u in await self._units_of(acting.patient)}
            if unit not in units:
                raise NotFound("not a treating unit of the person", reason="no-unit")
            office = units[unit]
        if category is ThreadCategory.E_CONSULTATION:
            check_e_consultation(fee_acknowledged=fee_acknowledged, urgent=urgent)
        require_open(await self._state(office, category.service))
        now = self.clock()
        message_id = _new_id()
        message = Message(
            message_id,
            message_id,
            office.orgnr,
            acting.patient,
            category,
            Sender.CITIZEN,
            caller.citizen.nin.value,
            None,
            text,
            now,
            attachments=_photos(message_id, photos),
        )
        e_consultation = category is ThreadCategory.E_CONSULTATION
        # Every thread is a row of the office's work list; only the e-consultation carries the
        # fee acknowledgement (a contact thread's Task is the office's, not shown the citizen).
        request = Request(
            _new_id(),
            RequestKind.E_CONSULTATION if e_consultation else RequestKind.CONTACT_OFFICE,
            office.orgnr,
            acting.patient,
            caller.citizen.nin.value,
            now,
            answer_due(now),
            RequestStatus.REQUESTED,
            thread_id=message_id,
            fee_acknowledged=now if e_consultation else None,
        )
        await self.store.add_message(message, request, claim=claim)
        ids = [message.id, request.id]
        await self._audit(
            caller,
            action=AuditAction.STORE,
            resource="Communication",
            patients=[acting.patient],
            ids=ids,
        )
        return message, request

    async def _reply(
        self,
        caller: Caller,
        *,
        text: str,
        in_response_to: str,
        photos: Sequence[CleanPhoto] = (),
        message_id: str | None = None,
        claim: IdempotencyClaim | None = None,
    ) -> tuple[Message, Request | None]:
        earlier = await self.store.message(in_response_to)
        if earlier is None:
            raise NotFound("inResponseTo names no message")
        again = await self.store.message(message_id) if message_id is not None else None
        if caller.staff is not None:
            staff = self._staff_at(caller, earlier.office)
            sender, author, name = Sender.OFFICE, staff.practitioner_nin.value, staff.name
        else:
            acting = await self._citizen_acting(caller, earlier.patient, earlier.category.service)
            assert caller.citizen is not None
            if acting.entry.office != earlier.office and earlier.office not in {
                u.orgnr for u in await self._units_of(acting.patient)
            }:
                raise NotFound("inResponseTo names no message")
            sender, author, name = Sender.CITIZEN, caller.citizen.nin.value, None
        if again is not None:
            if (again.in_response_to, again.text, again.author) != (earlier.id, text, author):
                raise Conflict("this message id was used for another message", reason="id-used")
            await self._audit(
                caller,
                action=AuditAction.STORE,
                resource="Communication",
                patients=[earlier.patient],
                ids=[again.id],
            )
            return again, None
        message_id = message_id or _new_id()
        message = Message(
            message_id,
            earlier.thread_id,
            earlier.office,
            earlier.patient,
            earlier.category,
            sender,
            author,
            name,
            text,
            self.clock(),
            in_response_to=earlier.id,
            attachments=_photos(message_id, photos),
        )
        notices: list[Notification] = []
        opened = await self.store.thread_request(earlier.thread_id)
        if sender is Sender.OFFICE:
            # Told to whoever started the thread on the patient's side (the patient, or the
            # parent or proxy who wrote for them); the contact register has their address.
            first = await self.store.message(earlier.thread_id)
            if first is not None and first.sender is Sender.CITIZEN:
                notices.append(
                    self._notice(
                        NotificationKind.ANSWER,
                        first.author,
                        message.id,
                        request_id=opened.id if opened is not None else None,
                    )
                )
        await self.store.add_message(message, notices=notices, claim=claim)
        if notices:
            self.queued()
        answered = None
        if opened is not None and sender is Sender.OFFICE:
            # The office's answer takes the thread off the work list.
            if opened.status is RequestStatus.REQUESTED:
                await self.store.handle_request(
                    opened.id, status=RequestStatus.COMPLETED, reason=None, at=message.sent
                )
                answered = await self.store.request(opened.id)
        elif opened is not None and opened.status is RequestStatus.COMPLETED:
            # The patient wrote again: back on the work list, answered within 5 working days.
            await self.store.reopen_request(opened.id, due=answer_due(message.sent))
        await self._audit(
            caller,
            action=AuditAction.STORE,
            resource="Communication",
            patients=[earlier.patient],
            ids=[message.id],
        )
        return message, answered

    async def messages(
        self,
        caller: Caller,
        *,
        patient: str | None = None,
        office: str | None = None,
        thread: str | None = None,
    ) -> Sequence[Message]:
        """A patient's threads (citizen or staff) or the office's inbox (staff)."""
        async with self._refusing(
            caller, action=AuditAction.SEARCH, resource="Communication", patient=patient
        ):
            if caller.citizen is not None:
                acting = await self._citizen_for(caller, patient, Service.CONTACT_OFFICE)
                found = [
                    m
                    for m in await self.store.messages(patient=acting.patient, thread=thread)
                    if m.category is not ThreadCategory.E_CONSULTATION
                    or self._may_read_e_consultation(caller, acting)
                ]
            else:
                office = await self._staff_office(caller, patient=patient, office=office)
                found = list(
                    await self.store.messages(patient=patient, office=office, thread=thread)
                )
        await self._audit_per_patient(caller, AuditAction.SEARCH, "Communication", found, patient)
        return found

    def _may_read_e_consultation(self, caller: Caller, acting: _Acting) -> bool:
        assert caller.citizen is not None
        facts_ok = acting.relation is not Relation.PARENT or (
            NationalIdentityNumber(acting.patient).age_on(self._today()) < 12
        )
        return facts_ok

    async def _audit_per_patient(
        self,
        caller: Caller,
        action: AuditAction,
        resource: str,
        found: Sequence[Message | Request | Appointment],
        patient: str | None,
    ) -> None:
        """One record per patient in `found` (the asked `patient` when none), in one append: an
        office-wide list of many patients costs one transaction, not one per patient."""
        if not found:
            await self._audit(caller, action=action, resource=resource, patients=[patient])
            return
        await self._audit_batched(caller, action, resource, found)

    async def attachment(self, caller: Caller, *, attachment_id: str) -> Attachment:
        """One photo, for whoever may read its message (read and audited as that message)."""
        found = await self.store.attachment(attachment_id)
        if found is None:
            raise NotFound("no such attachment")
        await self.message(caller, message_id=found.message_id)
        return found

    async def message(self, caller: Caller, *, message_id: str) -> Message:
        """One message, for the patient's side or the office."""
        found = await self.store.message(message_id)
        async with self._refusing(
            caller,
            action=AuditAction.RETRIEVE,
            resource="Communication",
            patient=found.patient if found else None,
        ):
            if found is None:
                raise NotFound("no such message")
            acting = await self._patient_caller(
                caller, patient=found.patient, service=found.category.service, office=found.office
            )
            if (
                acting is not None
                and found.category is ThreadCategory.E_CONSULTATION
                and not self._may_read_e_consultation(caller, acting)
            ):
                raise NotAllowed("not for a parent of a child aged 12–15", reason="parent")
        await self._audit(
            caller,
            action=AuditAction.RETRIEVE,
            resource="Communication",
            patients=[found.patient],
            ids=[found.id],
        )
        return found

    # -- requests ---------------------------------------------------------------------------

    async def medications(self, caller: Caller, *, patient: str) -> Sequence[Medication]:
        """The person's current medications, from which a renewal is asked."""
        async with self._refusing(
            caller, action=AuditAction.SEARCH, resource="MedicationRequest", patient=patient
        ):
            await self._patient_caller(
                caller, patient=patient, service=Service.PRESCRIPTION_RENEWAL
            )
        found = await self.store.medications(patient)
        await self._audit(
            caller,
            action=AuditAction.SEARCH,
            resource="MedicationRequest",
            patients=[patient],
            ids=[m.id for m in found],
        )
        return found

    async def request_renewal(
        self,
        caller: Caller,
        *,
        patient: str,
        medication_id: str,
        note: str | None,
        idempotency: Idempotency | None = None,
    ) -> Request:
        """Ask the GP to renew one of the person's current medications (`idempotency`: a key
        already used gives back the request it made)."""
        claim = self._claim(caller, "Task", idempotency)
        async with self._refusing(
            caller, action=AuditAction.STORE, resource="Task", patient=patient
        ):
            earlier = await self._earlier(claim)
        if earlier is not None:  # read outside the block: `request` audits its own refusal
            return await self.request(caller, request_id=earlier)
        async with self._refusing(
            caller, action=AuditAction.STORE, resource="Task", patient=patient
        ):
            acting = await self._citizen_acting(caller, patient, Service.PRESCRIPTION_RENEWAL)
            office = acting.office
            require_open(await self._state(office, Service.PRESCRIPTION_RENEWAL))
            current = {m.id: m for m in await self.store.medications(acting.patient)}
            if medication_id not in current:
                raise BadInput(
                    "the medication is not on the person's current list",
                    reason="not-current-medication",
                )
            text = check_text(note, what="note", limit=MAX_NOTE_CHARS) if note else None
        assert caller.citizen is not None
        now = self.clock()
        request = Request(
            _new_id(),
            RequestKind.PRESCRIPTION_RENEWAL,
            office.orgnr,
            acting.patient,
            caller.citizen.nin.value,
            now,
            answer_due(now),
            RequestStatus.REQUESTED,
            medication_id=medication_id,
            note=text,
        )
        try:
            await self.store.add_request(request, claim=claim)
        except KeyTaken:
            made = await self._earlier(claim)
            assert made is not None
            return await self.request(caller, request_id=made)
        await self._audit(
            caller,
            action=AuditAction.STORE,
            resource="Task",
            patients=[acting.patient],
            ids=[request.id],
        )
        return request

    async def requests(
        self, caller: Caller, *, patient: str | None = None, office: str | None = None
    ) -> Sequence[Request]:
        """A person's requests (citizen or staff) or the office's work list (staff)."""
        async with self._refusing(
            caller, action=AuditAction.SEARCH, resource="Task", patient=patient
        ):
            if caller.citizen is not None:
                acting = await self._citizen_for(caller, patient, Service.PRESCRIPTION_RENEWAL)
                found = [
                    r
                    for r in await self.store.requests(patient=acting.patient)
                    if r.kind is not RequestKind.CONTACT_OFFICE
                    and (
                        r.kind is not RequestKind.E_CONSULTATION
                        or self._may_read_e_consultation(caller, acting)
                    )
                ]
            else:
                office = await self._staff_office(caller, patient=patient, office=office)
                found = list(await self.store.requests(patient=patient, office=office))
        await self._audit_per_patient(caller, AuditAction.SEARCH, "Task", found, patient)
        return found

    async def request(self, caller: Caller, *, request_id: str) -> Request:
        """One request: for the office that holds it, or the patient's side (not contacts)."""
        found = await self.store.request(request_id)
        async with self._refusing(
            caller,
            action=AuditAction.RETRIEVE,
            resource="Task",
            patient=found.patient if found else None,
        ):
            if found is None:
                raise NotFound("no such request")
            if caller.staff is not None:
                self._staff_at(caller, found.office)
            else:
                service = (
                    Service.E_CONSULTATION
                    if found.kind is RequestKind.E_CONSULTATION
                    else Service.PRESCRIPTION_RENEWAL
                )
                acting = await self._citizen_acting(caller, found.patient, service)
                if found.kind is RequestKind.CONTACT_OFFICE or (
                    found.kind is RequestKind.E_CONSULTATION
                    and not self._may_read_e_consultation(caller, acting)
                ):
                    raise NotFound("no such request")
        await self._audit(
            caller,
            action=AuditAction.RETRIEVE,
            resource="Task",
            patients=[found.patient],
            ids=[found.id],
        )
        if caller.staff is not None:
            (found,) = await self._with_failed_notices([found])
        return found

    async def handle_renewal(
        self, caller: Caller, *, request_id: str, renewed: bool, reason: str | None
    ) -> Request:
        """Renew (completed) or refuse (rejected, with a reason) a renewal request."""
        found = await self.store.request(request_id)
        async with self._refusing(
            caller,
            action=AuditAction.CONTROL_CHANGE,
            resource="Task",
            patient=found.patient if found else None,
        ):
            if found is None:
                raise NotFound("no such request")
            self._staff_at(caller, found.office)
            if found.kind is not RequestKind.PRESCRIPTION_RENEWAL:
                raise BadInput("an e-consultation is answered in its thread")
            why = None
            if not renewed:
                if not reason:
                    raise BadInput("a refusal needs a reason", reason="reason-required")
                why = check_text(reason, what="reason", limit=MAX_NOTE_CHARS)
            status = RequestStatus.COMPLETED if renewed else RequestStatus.REJECTED
            notice = self._notice(
                NotificationKind.RENEWAL_HANDLED, found.requester, found.id, request_id=found.id
            )
            if not await self.store.handle_request(
                request_id, status=status, reason=why, at=self.clock(), notices=[notice]
            ):
                raise Conflict("the request was already answered", reason="already-answered")
        self.queued()
        return await self._request_changed(caller, found)

    # -- appointments -----------------------------------------------------------------------

    async def publish_slot(
        self,
        caller: Caller,
        *,
        office: str,
        start: datetime,
        end: datetime,
        mode: VisitMode,
        service: Service = Service.APPOINTMENT_BOOKING,
    ) -> Slot:
        """Publish a free slot in the office's calendar, for a consultation or a flu vaccine."""
        await self._office_staff(caller, office, action=AuditAction.CONTROL_CHANGE, resource="Slot")
        await self._existing_office(office)
        _check_slot_kind(service, mode)
        if start.tzinfo is None or end.tzinfo is None:
            raise BadInput("slot times need an offset")
        if not start < end or (end - start).total_seconds() > 8 * 3600:
            raise BadInput("a slot ends after it starts, within eight hours")
        slot = Slot(
            _new_id(), office, start.astimezone(UTC), end.astimezone(UTC), mode, service=service
        )
        await self.store.add_slot(slot)
        await self._audit(
            caller,
            action=AuditAction.CONTROL_CHANGE,
            resource="Slot",
            patients=[None],
            ids=[slot.id],
        )
        return slot

    async def publish_series(
        self,
        caller: Caller,
        *,
        office: str,
        start: datetime,
        end: datetime,
        minutes: int,
        service: Service = Service.FLU_VACCINE,
    ) -> Sequence[Slot]:
        """Publish back-to-back in-person slots of `minutes` from `start` until `end` (a
        vaccination day: many short slots), in one transaction and one audit record."""
        await self._office_staff(caller, office, action=AuditAction.CONTROL_CHANGE, resource="Slot")
        await self._existing_office(office)
        _check_slot_kind(service, VisitMode.IN_PERSON)
        if start.tzinfo is None or end.tzinfo is None:
            raise BadInput("slot times need an offset")
        low, high = SERIES_SLOT_MINUTES
        if not low <= minutes <= high:
            raise BadInput(f"a slot of a series lasts {low}–{high} minutes")
        if not start < end or end - start > SERIES_MAX_SPAN:
            raise BadInput("a series ends after it starts, within twelve hours")
        step = timedelta(minutes=minutes)
        count = (end - start) // step
        if count < 1:
            raise BadInput("the session is shorter than one slot")
        if count > SERIES_MAX_SLOTS:
            raise BadInput(f"a series holds at most {SERIES_MAX_SLOTS} slots")
        first = start.astimezone(UTC)
        slots = [
            Slot(
                _new_id(),
                office,
                first + i * step,
                first + (i + 1) * step,
                VisitMode.IN_PERSON,
                service=service,
            )
            for i in range(count)
        ]
        await self.store.add_slots(slots)
        await self._audit(
            caller,
            action=AuditAction.CONTROL_CHANGE,
            resource="Slot",
            patients=[None],
            ids=[s.id for s in slots],
        )
        return slots

    async def free_slots(
        self,
        caller: Caller,
        *,
        patient: str | None = None,
        office: str | None = None,
        service: Service | None = None,
    ) -> Sequence[Slot]:
        """Free slots from now: of the patient's office (citizen) or of the office (staff).

        `service` picks consultations or flu-vaccine slots; a citizen who names none gets the
        consultations, a health worker every free slot.
        """
        if service is not None and service not in SLOT_SERVICES:
            raise BadInput("no slots are published for this service")
        async with self._refusing(
            caller, action=AuditAction.SEARCH, resource="Slot", patient=patient
        ):
            if caller.citizen is not None:
                service = service or Service.APPOINTMENT_BOOKING
                acting = await self._citizen_for(caller, patient, service)
                require_open(await self._state(acting.office, service))
                office = acting.office.orgnr
            else:
                if office is None:
                    raise BadInput("give the organization")
                self._staff_at(caller, office)
        slots = await self.store.slots(office, free_from=self.clock(), service=service)
        await self._audit(
            caller,
            action=AuditAction.SEARCH,
            resource="Slot",
            patients=[patient],
            ids=[s.id for s in slots],
        )
        return slots

    async def book(
        self,
        caller: Caller,
        *,
        patient: str,
        slot_id: str,
        note: str | None,
        idempotency: Idempotency | None = None,
    ) -> Appointment:
        """Book a free slot for the patient (oneself, or as parent or proxy); `idempotency`: a
        key already used gives back the appointment it made."""
        claim = self._claim(caller, "Appointment", idempotency)
        async with self._refusing(
            caller, action=AuditAction.STORE, resource="Appointment", patient=patient
        ):
            earlier = await self._earlier(claim)
            if earlier is not None:
                return await self._appointment_again(caller, earlier)
            slot = await self.store.slot(slot_id)
            # The slot says what is booked: a consultation or a flu vaccine, each its own
            # service with its own rules and switch.
            service = slot.service if slot is not None else Service.APPOINTMENT_BOOKING
            acting = await self._citizen_acting(caller, patient, service)
            office = acting.office
            require_open(await self._state(office, service))
            if slot is None or slot.office != office.orgnr:
                raise NotFound("no such slot at the person's office")
            if slot.start <= self.clock():
                raise Conflict("the slot has passed", reason="slot-passed")
            text = check_text(note, what="note", limit=MAX_NOTE_CHARS) if note else None
            assert caller.citizen is not None
            appointment = Appointment(
                _new_id(),
                slot.id,
                office.orgnr,
                acting.patient,
                caller.citizen.nin.value,
                slot.start,
                slot.end,
                slot.mode,
                AppointmentStatus.PROPOSED if office.confirm_bookings else AppointmentStatus.BOOKED,
                text,
                service=slot.service,
            )
            # A proposed booking is told when the office confirms it (`confirm`).
            notices = (
                []
                if office.confirm_bookings
                else [
                    self._notice(
                        NotificationKind.BOOKING_CONFIRMED, appointment.booked_by, appointment.id
                    )
                ]
            )
            again = await self._book_slot(caller, appointment, notices, claim)
            if again is not None:
                return again
        return await self._booked(caller, appointment)

    async def book_for_patient(
        self,
        caller: Caller,
        *,
        patient: str,
        slot_id: str,
        note: str | None,
        idempotency: Idempotency | None = None,
    ) -> Appointment:
        """The office books a free slot of its own for a patient: reception after a phone call,
        or a hospital unit's patient administrative system giving an outpatient appointment.

        The health worker must work at the slot's office. The patient need not be on the
        office's list: a hospital's treating unit books whoever is referred to it, and is then
        the patient's treating unit (`treating_units`). The appointment is booked at once (no
        confirmation: the office made it), the patient is told (the e-mail outbox), and the
        appointment is listed beside the GP's in the portal. `idempotency` as for `book`.
        """
        claim = self._claim(caller, "Appointment", idempotency)
        async with self._refusing(
            caller, action=AuditAction.STORE, resource="Appointment", patient=patient
        ):
            earlier = await self._earlier(claim)
            if earlier is not None:
                return await self._appointment_again(caller, earlier)
            if caller.staff is None:
                raise NotAllowed("this action is the office's", reason="staff-only")
            office = self._staff_at(caller, caller.staff.point_of_care.id).point_of_care.id
            slot = await self.store.slot(slot_id)
            if slot is None or slot.office != office:
                # The same answer for another office's slot as for none: ids are not confirmed.
                raise NotFound("no such slot at your office")
            if slot.start <= self.clock():
                raise Conflict("the slot has passed", reason="slot-passed")
            text = check_text(note, what="note", limit=MAX_NOTE_CHARS) if note else None
            appointment = Appointment(
                _new_id(),
                slot.id,
                slot.office,
                patient,
                patient,  # the one told: the patient (or, for a child, whoever reads their mail)
                slot.start,
                slot.end,
                slot.mode,
                AppointmentStatus.BOOKED,
                text,
                service=slot.service,  # a consultation or a flu vaccine, as the slot is
            )
            notice = self._notice(NotificationKind.BOOKING_CONFIRMED, patient, appointment.id)
            again = await self._book_slot(caller, appointment, [notice], claim)
            if again is not None:
                return again
        return await self._booked(caller, appointment)

    async def _book_slot(
        self,
        caller: Caller,
        appointment: Appointment,
        notices: Sequence[Notification],
        claim: IdempotencyClaim | None,
    ) -> Appointment | None:
        """Store the booking with its notices (None: booked). If the Idempotency-Key was
        taken meanwhile, the appointment the other request made; Conflict if the slot was."""
        try:
            booked = await self.store.book(appointment, notices=notices, claim=claim)
        except KeyTaken:
            made = await self._earlier(claim)
            assert made is not None
            return await self._appointment_again(caller, made)
        if not booked:
            raise Conflict("the slot is no longer free", reason="slot-taken")
        return None

    async def _booked(self, caller: Caller, appointment: Appointment) -> Appointment:
        """A booking stored: wake the notice sender and audit it as the patient's."""
        self.queued()
        await self._audit(
            caller,
            action=AuditAction.STORE,
            resource="Appointment",
            patients=[appointment.patient],
            ids=[appointment.id],
        )
        return appointment

    async def _appointment_again(self, caller: Caller, appointment_id: str) -> Appointment:
        """The appointment an earlier booking with the same key made (read and audited)."""
        found = await self.store.appointment(appointment_id)
        assert found is not None
        await self._audit(
            caller,
            action=AuditAction.RETRIEVE,
            resource="Appointment",
            patients=[found.patient],
            ids=[found.id],
        )
        return found

    async def appointments(self, caller: Caller, *, patient: str) -> Sequence[Appointment]:
        """The person's appointments, upcoming and past."""
        async with self._refusing(
            caller, action=AuditAction.SEARCH, resource="Appointment", patient=patient
        ):
            await self._patient_caller(caller, patient=patient, service=Service.APPOINTMENT_BOOKING)
        found = await self.store.appointments(patient)
        await self._audit_per_patient(caller, AuditAction.SEARCH, "Appointment", found, patient)
        return found

    async def cancel(self, caller: Caller, *, appointment_id: str) -> Appointment:
        """Cancel a booked appointment (the patient's side or the office); the slot is freed.

        The patient's side only where the appointment's office or unit lets them: it has the
        appointment's service switched on (appointment booking, or flu-vaccine for a vaccine
        booking; a hospital's treating unit usually has not: the patient then calls the unit),
        else Conflict `cancel-not-offered`.
        """
        found = await self.store.appointment(appointment_id)
        async with self._refusing(
            caller,
            action=AuditAction.CONTROL_CHANGE,
            resource="Appointment",
            patient=found.patient if found else None,
        ):
            if found is None:
                raise NotFound("no such appointment")
            await self._patient_caller(
                caller,
                patient=found.patient,
                service=found.service,
                office=found.office,
            )
            if caller.staff is None:
                at = await self.store.office(found.office)
                if at is None or found.service not in at.services:
                    raise Conflict(
                        "this office does not let appointments be cancelled here: call them",
                        reason="cancel-not-offered",
                    )
            notices = []
            if caller.staff is not None:  # the patient's side knows what it cancelled itself
                notices.append(
                    self._notice(NotificationKind.BOOKING_CANCELLED, found.booked_by, found.id)
                )
            if not await self.store.cancel(appointment_id, notices=notices):
                raise Conflict("the appointment is not booked", reason="not-booked")
        if notices:
            self.queued()
        return await self._appointment_changed(caller, found)

    async def confirm(self, caller: Caller, *, appointment_id: str) -> Appointment:
        """The office confirms a proposed booking: it is booked, and the one who booked it is
        told (the e-mail outbox); Conflict `not-proposed` when it is not waiting."""
        found = await self.store.appointment(appointment_id)
        async with self._refusing(
            caller,
            action=AuditAction.CONTROL_CHANGE,
            resource="Appointment",
            patient=found.patient if found else None,
        ):
            if found is None:
                raise NotFound("no such appointment")
            self._staff_at(caller, found.office)
            notice = self._notice(NotificationKind.BOOKING_CONFIRMED, found.booked_by, found.id)
            if not await self.store.confirm(appointment_id, notices=[notice]):
                raise Conflict(
                    "the appointment is not waiting to be confirmed", reason="not-proposed"
                )
        self.queued()
        return await self._appointment_changed(caller, found)

    async def move(self, caller: Caller, *, appointment_id: str, slot_id: str) -> Appointment:
        """Move a booked appointment to another free slot of the office (the office does it)."""
        found = await self.store.appointment(appointment_id)
        async with self._refusing(
            caller,
            action=AuditAction.CONTROL_CHANGE,
            resource="Appointment",
            patient=found.patient if found else None,
        ):
            if found is None:
                raise NotFound("no such appointment")
            self._staff_at(caller, found.office)
            slot = await self.store.slot(slot_id)
            if slot is None or slot.office != found.office:
                raise NotFound("no such slot at the office")
            if slot.service is not found.service:
                raise Conflict(
                    "move an appointment to a slot for the same service", reason="other-service"
                )
            if slot.start <= self.clock():
                raise Conflict("the slot has passed", reason="slot-passed")
            notice = self._notice(
                NotificationKind.BOOKING_CHANGED, found.booked_by, found.id, slot.id
            )
            if not await self.store.move(appointment_id, slot, notices=[notice]):
                raise Conflict(
                    "the appointment is not booked or the slot is taken", reason="slot-taken"
                )
        self.queued()
        return await self._appointment_changed(caller, found, slot.id)

    async def _appointment_changed(
        self, caller: Caller, found: Appointment, *also: str
    ) -> Appointment:
        """An appointment cancelled, confirmed or moved: audit the change (with `also`, e.g. the
        new slot) and read the appointment back as it is now."""
        await self._audit(
            caller,
            action=AuditAction.CONTROL_CHANGE,
            resource="Appointment",
            patients=[found.patient],
            ids=[found.id, *also],
        )
        changed = await self.store.appointment(found.id)
        assert changed is not None
        return changed

    async def office_appointments(
        self, caller: Caller, *, office: str, limit: int = INBOX_MAX_PAGE
    ) -> Sequence[Appointment]:
        """The office's booked appointments from now (staff)."""
        await self._office_staff(caller, office, action=AuditAction.SEARCH, resource="Appointment")
        found = await self.store.office_appointments(office, from_=self.clock(), limit=limit)
        await self._audit_batched(caller, AuditAction.SEARCH, "Appointment", found)
        return found

    # -- the clinic's work list -------------------------------------------------------------

    async def inbox(
        self,
        caller: Caller,
        *,
        office: str,
        kinds: frozenset[RequestKind] = frozenset(RequestKind),
        statuses: frozenset[RequestStatus] = frozenset({RequestStatus.REQUESTED}),
        after: tuple[datetime, str] | None = None,
        count: int = 50,
    ) -> InboxPage:
        """One page of the office's work list: threads and requests, the earliest limit first.

        Audited as a list read: one SEARCH record per patient on the page (one append).
        """
        await self._office_staff(caller, office, action=AuditAction.SEARCH, resource="Task")
        if not 1 <= count <= INBOX_MAX_PAGE:
            raise BadInput(f"_count must be 1–{INBOX_MAX_PAGE}")
        now = self.clock()
        found = await self.store.inbox(
            office, kinds=kinds, statuses=statuses, after=after, limit=count + 1
        )
        if found is None:
            raise NotFound("no such office")
        rows, total = found
        page = await self._with_failed_notices(rows[:count])
        more = len(rows) > count
        await self._audit_batched(caller, AuditAction.SEARCH, "Task", page)
        last = page[-1] if page and more else None
        return InboxPage(page, total, (last.due, last.id) if last else None, now)

    async def failed_notice_requests(self, caller: Caller, *, office: str) -> tuple[Request, ...]:
        """The office's threads and requests whose latest notice to the patient failed in the
        last `FAILED_NOTICE_DAYS`, the latest failure first: the office calls these patients.

        Audited as a list read, as the work list's page.
        """
        await self._office_staff(caller, office, action=AuditAction.SEARCH, resource="Task")
        await self._existing_office(office)
        since = self.clock() - timedelta(days=FAILED_NOTICE_DAYS)
        ids = await self.store.office_failed_notices(office, since=since, limit=FAILED_NOTICE_MAX)
        found = [r for i in ids if (r := await self.store.request(i)) is not None]
        rows = tuple(r for r in await self._with_failed_notices(found) if r.notice_failed)
        await self._audit_batched(caller, AuditAction.SEARCH, "Task", rows)
        return rows

    async def close_request(self, caller: Caller, *, request_id: str) -> Request:
        """Take a thread off the work list without another answer (the office closes it)."""
        found = await self.store.request(request_id)
        async with self._refusing(
            caller,
            action=AuditAction.CONTROL_CHANGE,
            resource="Task",
            patient=found.patient if found else None,
        ):
            if found is None:
                raise NotFound("no such request")
            self._staff_at(caller, found.office)
            if found.kind is RequestKind.PRESCRIPTION_RENEWAL:
                raise BadInput("a renewal is renewed or refused, not closed")
            if not await self.store.handle_request(
                request_id, status=RequestStatus.COMPLETED, reason=None, at=self.clock()
            ):
                raise Conflict("the request was already answered", reason="already-answered")
        return await self._request_changed(caller, found)

    async def _request_changed(self, caller: Caller, found: Request) -> Request:
        """Audit the change of one request (handled or closed) and return it as it now stands."""
        await self._audit(
            caller,
            action=AuditAction.CONTROL_CHANGE,
            resource="Task",
            patients=[found.patient],
            ids=[found.id],
        )
        now = await self.store.request(found.id)
        assert now is not None
        return now

    async def _audit_batched(
        self,
        caller: Caller,
        action: AuditAction,
        resource: str,
        found: Sequence[Message | Request | Appointment],
    ) -> None:
        """One record per patient in `found` (or one without a patient), in one append."""
        by_patient: dict[str | None, list[str]] = {}
        for item in found:
            by_patient.setdefault(item.patient, []).append(item.id)
        if not by_patient:
            by_patient[None] = []
        named = {who: tuple(ids) for who, ids in by_patient.items()}
        await self.audit.append(self._records_by_patient(caller, action, resource, named))

    # -- the citizen's access log -----------------------------------------------------------

    async def access_log(
        self, caller: Caller, *, patient: str
    ) -> list[tuple[CitizenLogEntry, tuple[str, ...]]]:
        """Who at the clinic read the person's messages, requests and appointments, newest first.

        Each read by health personnel with what it was of (LOG_TITLES); for the citizen, and
        for whom they may read messages for (the e-consultation rules, so a parent of a child
        of 12–15 does not see them). The read itself is audited (ACCESS_LOG_READ).
        """
        async with self._refusing(
            caller, action=AuditAction.ACCESS_LOG_READ, resource="AuditEvent", patient=patient
        ):
            acting = await self._citizen_for(caller, patient, Service.CONTACT_OFFICE)
            if not self._may_read_e_consultation(caller, acting):
                raise NotAllowed("not for a parent of a child aged 12–15", reason="parent")
        records = await self.audit_records([acting.patient]) if self.audit_records else []
        out: list[tuple[CitizenLogEntry, tuple[str, ...]]] = []
        for record in records:
            entries = citizen_log_entries([record])
            if entries:
                title = LOG_TITLES.get(record.query or "", "")
                out.append((entries[0], (title,) if title else ()))
        out.sort(key=lambda item: item[0].time, reverse=True)
        await self._audit(
            caller,
            action=AuditAction.ACCESS_LOG_READ,
            resource="AuditEvent",
            patients=[acting.patient],
        )
        return out
