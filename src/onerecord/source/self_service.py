"""The citizen's own services at a source: the access log and the patient controls.

- `GET /fhir/AuditEvent?patient.identifier=…` → a searchset Bundle of AuditEvent-shaped entries
  built from `SqlAuditSink.citizen_log`: who (name, profession, organisation, department),
  when, why (healthcare service, purpose), search or read, the titles of the documents a read
  opened that the caller may see themselves, and the emergency grant's basis and coded reason
  (D2) — never the reader's national identity number, never free text (F2). The reader's HPR
  number travels as `agent.who.identifier` to the citizen's portal, which keys readers by a
  keyed hash of it and resolves a «Sperr» back to it server-side; it is never shown. Titles:
  F3 read together with issue 11 (docs/policy.md, "Titles in the access log").
- Patient controls in a simple REST shape instead of IHE PCF `POST /fhir/Consent`:
  `GET /controls`, `PUT|DELETE /controls/reservation`, `PUT|DELETE
  /controls/document-blocks/{uniqueId}`, `PUT|DELETE /controls/practitioner-blocks/{hpr}`, each
  with an optional `?patient=<nin>` for a represented person. Effective at once; each audited as
  a control change.

Who may: the citizen for their own record from 16, a parent for a child under 12, a proxy —
the same rules as reading the documents (TRUST-FRAMEWORK §5.2); never health personnel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from onerecord.audit import (
    AuditAction,
    AuditOutcome,
    CitizenLogEntry,
    SqlAuditSink,
    audit_event_entry,
)
from onerecord.domain import (
    DocumentEntry,
    DocumentUniqueId,
    HprNumber,
    InvalidIdentifier,
    NationalIdentityNumber,
)
from onerecord.mhd import BadRequest
from onerecord.source.access import CallerContext
from onerecord.source.patient_controls import PatientControlStore
from onerecord.source.security import AuditRecorder, PolicyGuard
from onerecord.trust.policy import PatientControls

__all__ = [
    "DocumentLookup",
    "SelfService",
    "access_log_bundle",
    "audit_event_entry",
    "controls_json",
]


class DocumentLookup(Protocol):
    """Where self-service finds a registered entry (the registry's DocumentStore)."""

    async def get(self, unique_id: DocumentUniqueId) -> DocumentEntry | None: ...


def access_log_bundle(
    entries: Sequence[CitizenLogEntry],
    *,
    self_url: str,
    titles: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the searchset Bundle of the citizen's access log, newest first.

    `titles`: uniqueId → title of the documents whose titles the caller may see.
    """
    shown = titles or {}
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(entries),
        "link": [{"relation": "self", "url": self_url}],
        "entry": [
            {
                "resource": audit_event_entry(
                    e, [shown[d] for d in dict.fromkeys(e.document_ids) if d in shown]
                ),
                "search": {"mode": "match"},
            }
            for e in entries
        ],
    }


_MAX_TITLES = 500
"""At most this many documents are looked up for one log answer (the rest show no title)."""


def controls_json(controls: PatientControls) -> dict[str, Any]:
    """Return the patient's controls as the /controls answer."""
    return {
        "patient": controls.patient.value,
        "reserved": controls.reserved,
        "reservedSince": controls.reserved_since.isoformat() if controls.reserved_since else None,
        "blockedDocuments": sorted(d.value for d in controls.blocked_documents),
        "blockedPractitioners": sorted(controls.blocked_practitioners),
    }


def _nin(value: str, what: str) -> NationalIdentityNumber:
    try:
        return NationalIdentityNumber(value.strip())
    except InvalidIdentifier:
        raise BadRequest(f"{what} is not a national identity number") from None


def patient_from_token_param(value: str | None) -> NationalIdentityNumber:
    """Read `patient.identifier=system|nin` (or a bare nin)."""
    if not value:
        raise BadRequest("patient.identifier is required")
    return _nin(value.rpartition("|")[2], "patient.identifier")


class SelfService:
    """The citizen's access log and controls, guarded and audited."""

    def __init__(
        self,
        *,
        guard: PolicyGuard,
        recorder: AuditRecorder,
        sink: SqlAuditSink,
        controls: PatientControlStore,
        documents: DocumentLookup,
    ) -> None:
        self.guard = guard
        self.recorder = recorder
        self.sink = sink
        self.controls = controls
        self.documents = documents

    async def _audit(
        self,
        caller: CallerContext,
        patient: NationalIdentityNumber,
        action: AuditAction,
        outcome: AuditOutcome,
        *,
        reason: str | None = None,
        returned_count: int | None = None,
        query: str | None = None,
    ) -> None:
        """Write one audit record of a self-service call (denials included)."""
        record = self.recorder.record(
            caller,
            action=action,
            outcome=outcome,
            patient=patient.value,
            reason=reason,
            returned_count=returned_count,
            query=query,
        )
        await self.recorder.write(record)

    async def _authorize(
        self,
        caller: CallerContext,
        patient: NationalIdentityNumber,
        action: AuditAction,
        *,
        access_log: bool = False,
    ) -> None:
        try:
            await self.guard.authorize_citizen_self_service(caller, patient, access_log=access_log)
        except Exception as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "error", "denied")
            await self._audit(caller, patient, action, AuditOutcome.DENIED, reason=str(reason))
            raise

    def patient_or_self(self, caller: CallerContext, value: str | None) -> NationalIdentityNumber:
        """Return `?patient=` when given, else the calling citizen."""
        if value:
            return _nin(value, "patient")
        principal = self.guard.principal(caller)
        return principal.nin

    async def access_log(
        self, caller: CallerContext, patient: NationalIdentityNumber, *, self_url: str
    ) -> dict[str, Any]:
        """Return who has looked at `patient`'s documents here (F2, F3); own log from 12."""
        await self._authorize(caller, patient, AuditAction.ACCESS_LOG_READ, access_log=True)
        entries = await self.sink.citizen_log([patient.value])
        titles = await self.opened_titles(
            entries, patient, self.guard.citizen_sees(caller, patient)
        )
        await self._audit(
            caller,
            patient,
            AuditAction.ACCESS_LOG_READ,
            AuditOutcome.SUCCESS,
            returned_count=len(entries),
        )
        return access_log_bundle(entries, self_url=self_url, titles=titles)

    async def opened_titles(
        self,
        entries: Sequence[CitizenLogEntry],
        patient: NationalIdentityNumber,
        sees: Callable[[DocumentEntry], bool],
    ) -> dict[str, str]:
        """Return uniqueId → title of the opened documents of `patient` the caller may see.

        Looked up here, at the region, when the log is read: the audit keeps uniqueIds only, and
        a title is never written to a log file (docs/policy.md, "Titles in the access log").
        """
        wanted = dict.fromkeys(d for e in entries for d in e.document_ids)
        titles: dict[str, str] = {}
        for value in list(wanted)[:_MAX_TITLES]:
            try:
                unique_id = DocumentUniqueId(value)
            except (ValueError, InvalidIdentifier):
                continue
            entry = await self.documents.get(unique_id)
            if entry is not None and entry.patient_id == patient and sees(entry):
                titles[value] = entry.title
        return titles

    async def read_controls(
        self, caller: CallerContext, patient: NationalIdentityNumber
    ) -> dict[str, Any]:
        """Return the patient's current controls."""
        await self._authorize(caller, patient, AuditAction.ACCESS_LOG_READ)
        return controls_json(await self.controls.controls_for(patient))

    async def _check_owner(
        self, caller: CallerContext, patient: NationalIdentityNumber, doc: DocumentUniqueId
    ) -> None:
        """Audit a block, for `patient`, of a document registered here for someone else.

        A block only ever masks the patient's own entries, so a block of a uniqueId this region
        does not hold, or holds for another patient, changes nothing anyone sees. Both are kept
        and answered alike: a different answer would confirm that another patient's document
        exists (issue 10, F4). The audit keeps the true reason.
        """
        entry = await self.documents.get(doc)
        if entry is None or entry.patient_id == patient:
            return
        await self._audit(
            caller,
            patient,
            AuditAction.CONTROL_CHANGE,
            AuditOutcome.DENIED,
            reason="document-not-of-patient",
        )

    async def change(
        self,
        caller: CallerContext,
        patient: NationalIdentityNumber,
        *,
        kind: str,
        on: bool,
        target: str | None = None,
    ) -> dict[str, Any]:
        """Apply one control change (reservation, document block, practitioner block)."""
        await self._authorize(caller, patient, AuditAction.CONTROL_CHANGE)
        if kind == "reservation":
            await (self.controls.reserve(patient) if on else self.controls.unreserve(patient))
        elif kind == "document-block":
            assert target is not None
            try:
                doc = DocumentUniqueId(target)
            except (ValueError, InvalidIdentifier):
                raise BadRequest("the document uniqueId is not valid") from None
            if on:
                await self._check_owner(caller, patient, doc)
                await self.controls.block_document(patient, doc)
            else:
                await self.controls.unblock_document(patient, doc)
        elif kind == "practitioner-block":
            assert target is not None
            try:
                who = HprNumber(target)
            except (ValueError, InvalidIdentifier):
                raise BadRequest("the HPR number is not valid") from None
            if on:
                await self.controls.block_practitioner(patient, who)
            else:
                await self.controls.unblock_practitioner(patient, who)
        else:  # pragma: no cover - routes only pass the kinds above
            raise BadRequest(f"unknown control {kind}")
        change = f"{kind}:{'set' if on else 'removed'}" + (f":{target}" if target else "")
        await self._audit(
            caller, patient, AuditAction.CONTROL_CHANGE, AuditOutcome.SUCCESS, query=change
        )
        return controls_json(await self.controls.controls_for(patient))
