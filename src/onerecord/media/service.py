"""The media archive's service: store, find and retrieve instances, each audited.

`MediaService` receives its collaborators (metadata store, content store, audit sink, clock) and
builds none; the DIMSE and HTTP edges call it and turn its exceptions (errors.py) into statuses.

Storing an instance: parse and check it (instance.py), write its bytes durably to the content
store, then register it in one transaction (store.py), then audit it; only then is the sender
told it succeeded. A failure before registration leaves no instance (bytes that no instance
references are removed, or swept later if the process died); a re-sent SOP Instance UID is
acknowledged and ignored (docs/media.md "Storage").

Every store, query and retrieve is written to the audit sink (outcome success, denied or error);
the caller is a DIMSE peer named by its calling AE title, which goes into the correlation id
with the association's own id (no user is known on DIMSE).

References: DICOM PS3.4 B (Storage Service Class), C (Query/Retrieve); IHE ITI BALP;
IHE RAD TF-2 RAD-8 (Modality Images Stored), RAD-14/16 (Query/Retrieve Images).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import anyio.to_thread
import structlog
from pydicom.dataset import Dataset

from onerecord.audit import (
    AuditAction,
    AuditCitizen,
    AuditOutcome,
    AuditPractitioner,
    AuditRecord,
    AuditSink,
)
from onerecord.dicom import NotAcceptable
from onerecord.domain import InvalidIdentifier, NationalIdentityNumber
from onerecord.media.content import ContentKey, InstanceContentStore
from onerecord.media.errors import (
    InstanceConflict,
    InstanceNotAuthorised,
    InvalidInstance,
    SopClassMismatch,
    TooManyMatches,
)
from onerecord.media.instance import ReceivedInstance, read_dataset, read_instance
from onerecord.media.query import Condition, FindQuery
from onerecord.media.store import MetadataStore, StoredInstance

__all__ = ["AuditCaller", "MediaService", "StoreOutcome", "StoreResult", "audit_patient"]

log = structlog.get_logger("onerecord.media")
_STRIPES = 64


class StoreOutcome(StrEnum):
    """What became of a received instance."""

    STORED = "stored"
    DUPLICATE = "duplicate"  # the SOP Instance UID was registered before: ignored


@dataclass(frozen=True, slots=True)
class StoreResult:
    outcome: StoreOutcome
    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str = ""
    series_instance_uid: str = ""


@dataclass(frozen=True, slots=True)
class AuditCaller:
    """Who a DICOMweb request came from, as the audit keeps it (DIMSE has no user)."""

    practitioner: AuditPractitioner | None = None
    citizen: AuditCitizen | None = None
    token_jti: str | None = None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def audit_patient(patient_id: str) -> str | None:
    """The patient as the audit names them: a fødselsnummer or D-number, else no one.

    The audit chain's patient is a national identity number (audit_event.patient_id holds 11
    characters); an instance under a hospital's own PatientID is found from its SOP Instance
    UID, which every record carries.
    """
    try:
        return NationalIdentityNumber(patient_id.strip()).value
    except (InvalidIdentifier, ValueError):
        return None


def _patient_of(conditions: tuple[Condition, ...]) -> str | None:
    """The single PatientID a query asks for, if it names one exactly."""
    for c in conditions:
        if c.key.keyword == "PatientID" and len(c.values) == 1:
            return audit_patient(c.values[0])
    return None


class MediaService:
    """One region's media archive over its stores."""

    def __init__(
        self,
        *,
        store: MetadataStore,
        content: InstanceContentStore,
        audit: AuditSink,
        source_id: str,
        home_community_id: str,
        max_find_results: int = 10_000,
        max_retrieve_instances: int = 100_000,
        max_read_bytes: int = 512 * 1024 * 1024,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.content = content
        self.audit = audit
        self.source_id = source_id
        self.home_community_id = home_community_id
        self.max_find_results = max_find_results
        self.max_retrieve_instances = max_retrieve_instances
        self.max_read_bytes = max_read_bytes
        self._clock = clock
        self._stripes = [asyncio.Lock() for _ in range(_STRIPES)]
        self._on_stored: list[Callable[[], None]] = []

    def on_stored(self, listener: Callable[[], None]) -> None:
        """Call `listener` (on the event loop) after each instance newly stored: the manifest
        publisher looks at its outbox then, not on a timer."""
        self._on_stored.append(listener)

    def audit_record(
        self,
        action: AuditAction,
        outcome: AuditOutcome,
        *,
        correlation_id: str,
        patient_id: str | None = None,
        reason: str | None = None,
        document_ids: tuple[str, ...] = (),
        returned_count: int | None = None,
        query: str | None = None,
        who: AuditCaller | None = None,
        emergency_override: bool = False,
    ) -> AuditRecord:
        """The archive's audit record of one access (DIMSE or DICOMweb: one shape for both).

        `emergency_override`: blocked images were opened by consent or an emergency (D2, D3).
        """
        who = who or AuditCaller()
        return AuditRecord(
            action=action,
            outcome=outcome,
            recorded=self._clock(),
            source_id=self.source_id,
            home_community_id=self.home_community_id,
            correlation_id=correlation_id,
            patient_id=audit_patient(patient_id) if patient_id else None,
            reason=reason,
            document_ids=document_ids,
            returned_count=returned_count,
            query=query,
            practitioner=who.practitioner,
            citizen=who.citizen,
            token_jti=who.token_jti,
            emergency_override=emergency_override,
        )

    async def store_instance(
        self,
        data: bytes,
        *,
        calling_ae_title: str,
        correlation_id: str,
        sop_class_uid: str | None = None,
        bound_patient: str | None = None,
        study_uid: str | None = None,
        who: AuditCaller | None = None,
    ) -> StoreResult:
        """Store one Part 10 instance: durable bytes, one registration, one audit record.

        `sop_class_uid`: the class the instance was sent as (C-STORE's Affected SOP Class UID);
        a data set of another class is refused. `bound_patient`: the only PatientID the caller
        may store (DICOMweb); an instance of another is refused (InstanceNotAuthorised) and
        audited as a denial. `study_uid`: the study a STOW-RS path names; an instance of
        another is invalid. `who`: the DICOMweb caller, for the audit.
        """
        instance = await self._admit(
            lambda: read_instance(data),
            correlation_id=correlation_id,
            sop_class_uid=sop_class_uid,
            bound_patient=bound_patient,
            study_uid=study_uid,
            who=who,
        )
        # Stores of the same bytes are serialised (one stripe of locks by digest), so that one
        # store's clean-up after a failure never removes bytes another has just registered.
        # The digest is computed once, off the event loop (0.4 ms for a 0.5 MB slice).
        digest = await anyio.to_thread.run_sync(_sha256, data)
        async with self._stripe(digest):
            try:
                key = await self.content.put(data, sha256=digest)
                created = await self._register(instance, key, calling_ae_title, correlation_id, who)
            except InstanceConflict:
                await self._audit_failure(instance, correlation_id, "hierarchy-conflict", who)
                raise
            except Exception:
                await self._audit_failure(instance, correlation_id, "store-failed", who)
                raise
            if not created:
                await self._forget(key.sha256)  # a re-send with other bytes leaves no orphan
        return await self._stored(instance, created, correlation_id, who)

    async def store_stream(
        self,
        dataset: Dataset,
        chunks: AsyncIterable[bytes],
        *,
        calling_ae_title: str,
        correlation_id: str,
        bound_patient: str | None = None,
        study_uid: str | None = None,
        who: AuditCaller | None = None,
    ) -> StoreResult:
        """Store an instance too large to hold (a clip): `chunks` are its whole Part 10 file.

        The dataset (without its Pixel Data) is checked first, exactly as `store_instance`
        checks a file; then the stream is staged while hashed, and put at its content address
        and registered under the digest's lock. Nothing is registered unless all is durable.
        """
        instance = await self._admit(
            lambda: read_dataset(dataset),
            correlation_id=correlation_id,
            sop_class_uid=None,
            bound_patient=bound_patient,
            study_uid=study_uid,
            who=who,
        )
        try:
            staged = await self.content.stage(chunks)
        except Exception:
            await self._audit_failure(instance, correlation_id, "store-failed", who)
            raise
        try:
            async with self._stripe(staged.key.sha256):
                try:
                    await self.content.commit(staged)
                    created = await self._register(
                        instance, staged.key, calling_ae_title, correlation_id, who
                    )
                except InstanceConflict:
                    await self._audit_failure(instance, correlation_id, "hierarchy-conflict", who)
                    raise
                except Exception:
                    await self._audit_failure(instance, correlation_id, "store-failed", who)
                    raise
                if not created:
                    await self._forget(staged.key.sha256)
        finally:
            await self.content.discard(staged)
        return await self._stored(instance, created, correlation_id, who)

    def _stripe(self, sha256: str) -> asyncio.Lock:
        return self._stripes[int(sha256[:8], 16) % _STRIPES]

    async def _admit(
        self,
        read: Callable[[], ReceivedInstance],
        *,
        correlation_id: str,
        sop_class_uid: str | None,
        bound_patient: str | None,
        study_uid: str | None,
        who: AuditCaller | None,
    ) -> ReceivedInstance:
        """Read and check an instance before anything is written; refusals audited."""
        try:
            instance = read()
            if sop_class_uid is not None and instance.sop_class_uid != sop_class_uid:
                raise SopClassMismatch("the data set is of another SOP class than sent as")
            if study_uid is not None and instance.study_instance_uid != study_uid:
                raise InvalidInstance("the instance is not of the study the request names")
        except InvalidInstance:
            await self.audit.append(
                [
                    self.audit_record(
                        AuditAction.STORE,
                        AuditOutcome.ERROR,
                        correlation_id=correlation_id,
                        reason="invalid-instance",
                        who=who,
                    )
                ]
            )
            raise
        if bound_patient is not None and instance.patient_id != bound_patient:
            await self.audit.append(
                [
                    self.audit_record(
                        AuditAction.STORE,
                        AuditOutcome.DENIED,
                        correlation_id=correlation_id,
                        patient_id=bound_patient,
                        reason="wrong-patient",
                        document_ids=(instance.sop_instance_uid,),
                        who=who,
                    )
                ]
            )
            raise InstanceNotAuthorised("the instance is of another patient than the bound one")
        return instance

    async def _stored(
        self,
        instance: ReceivedInstance,
        created: bool,
        correlation_id: str,
        who: AuditCaller | None,
    ) -> StoreResult:
        """Audit a stored (or duplicate) instance, unless its registration did; say what
        became of it."""
        if not self.store.audits_registrations(self.audit):
            await self.audit.append([self._stored_record(instance, created, correlation_id, who)])
        outcome = StoreOutcome.STORED if created else StoreOutcome.DUPLICATE
        log.debug("media.stored", outcome=outcome.value, sop_class=instance.sop_class_uid)
        if created:
            for listener in self._on_stored:
                listener()
        return StoreResult(
            outcome,
            instance.sop_instance_uid,
            instance.sop_class_uid,
            instance.study_instance_uid,
            instance.series_instance_uid,
        )

    def _stored_record(
        self,
        instance: ReceivedInstance,
        created: bool,
        correlation_id: str,
        who: AuditCaller | None,
    ) -> AuditRecord:
        return self.audit_record(
            AuditAction.STORE,
            AuditOutcome.SUCCESS,
            correlation_id=correlation_id,
            patient_id=instance.patient_id,
            document_ids=(instance.sop_instance_uid,),
            query=None if created else "duplicate-ignored",
            who=who,
        )

    async def _register(
        self,
        instance: ReceivedInstance,
        key: ContentKey,
        calling: str,
        correlation_id: str,
        who: AuditCaller | None,
    ) -> bool:
        """Register stored bytes (with their audit record, where the store writes it in the
        same transaction); on failure remove them unless an instance references them.

        Cancelled (a DIMSE deadline), the registration may still commit with its batch
        (group_commit.py): the bytes are then left for the orphan sweep, never removed."""
        try:
            return await self.store.register(
                instance,
                key,
                calling_ae_title=calling,
                stored=self._clock(),
                audit=lambda created: self._stored_record(instance, created, correlation_id, who),
            )
        except Exception:
            await self._forget(key.sha256)
            raise

    async def _audit_failure(
        self,
        instance: ReceivedInstance,
        correlation_id: str,
        reason: str,
        who: AuditCaller | None = None,
    ) -> None:
        """Audit a store that failed after the instance was read; never hide the failure."""
        try:
            await self.audit.append(
                [
                    self.audit_record(
                        AuditAction.STORE,
                        AuditOutcome.ERROR,
                        correlation_id=correlation_id,
                        patient_id=instance.patient_id,
                        reason=reason,
                        document_ids=(instance.sop_instance_uid,),
                        who=who,
                    )
                ]
            )
        except Exception:  # noqa: BLE001 - the store's own error is the one to raise
            log.warning("media.audit_failed", exc_info=True)

    async def _forget(self, sha256: str) -> None:
        """Remove bytes no instance references (after a failed or duplicate registration)."""
        try:
            if not await self.store.is_referenced(sha256):
                await self.content.delete(sha256)
        except Exception:  # noqa: BLE001 - an orphan is swept later; the caller's error matters
            log.warning("media.orphan_left", exc_info=True)

    async def find(
        self, query: FindQuery, *, calling_ae_title: str, correlation_id: str
    ) -> list[dict[str, Any]]:
        """The matches of a C-FIND query; audited as a search."""
        matches = await self.store.find(query, limit=self.max_find_results + 1)
        too_many = len(matches) > self.max_find_results
        await self.audit.append(
            [
                self.audit_record(
                    AuditAction.SEARCH,
                    AuditOutcome.ERROR if too_many else AuditOutcome.SUCCESS,
                    correlation_id=correlation_id,
                    patient_id=_patient_of(query.conditions),
                    reason="too-many-matches" if too_many else None,
                    returned_count=0 if too_many else len(matches),
                    query=f"C-FIND {query.root.value}-root {query.level.name}",
                )
            ]
        )
        if too_many:
            raise TooManyMatches(f"more than {self.max_find_results} matches")
        return matches

    async def locate(
        self, query: FindQuery, *, calling_ae_title: str, correlation_id: str, purpose: str
    ) -> list[StoredInstance]:
        """The instances a C-MOVE or C-GET asks for; audited as a retrieve, per patient."""
        found = await self.store.locate(query, limit=self.max_retrieve_instances + 1)
        if len(found) > self.max_retrieve_instances:
            await self.audit.append(
                [
                    self.audit_record(
                        AuditAction.RETRIEVE,
                        AuditOutcome.ERROR,
                        correlation_id=correlation_id,
                        reason="too-many-instances",
                        query=purpose,
                    )
                ]
            )
            raise TooManyMatches(f"more than {self.max_retrieve_instances} instances")
        by_patient: dict[str, list[str]] = {}
        for item in found:
            by_patient.setdefault(item.patient_id, []).append(item.sop_instance_uid)
        records = [
            self.audit_record(
                AuditAction.RETRIEVE,
                AuditOutcome.SUCCESS,
                correlation_id=correlation_id,
                patient_id=patient,
                document_ids=tuple(uids),
                returned_count=len(uids),
                query=purpose,
            )
            for patient, uids in by_patient.items()
        ] or [
            self.audit_record(
                AuditAction.RETRIEVE,
                AuditOutcome.SUCCESS,
                correlation_id=correlation_id,
                returned_count=0,
                query=purpose,
            )
        ]
        await self.audit.append(records)
        return found

    async def read(self, instance: StoredInstance) -> bytes:
        """The stored Part 10 bytes of an instance (DIMSE sends them whole)."""
        return await self.content.get(instance.content_key)

    async def read_bounded(self, instance: StoredInstance) -> bytes:
        """The stored bytes to decode (frames, rendered); 406 for one too large (a clip)."""
        if instance.size > self.max_read_bytes:
            raise NotAcceptable(
                "the instance is too large to decode here; retrieve it whole or as video"
            )
        return await self.content.get(instance.content_key)
