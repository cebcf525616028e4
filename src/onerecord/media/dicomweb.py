"""The archive's DICOMweb service: STOW-RS, QIDO-RS and WADO-RS for one bound patient.

`DicomWebService` receives the `MediaService` (store, content, audit), the database engine and
the guard's verdict (the bound patient, `security.py`), and builds none of them. The wire
(parsing, negotiation, rendering) is `onerecord.dicom`; this module decides what is stored,
found and sent, and audits every outcome with the caller (`AuditCaller`):

- STOW-RS: each `application/dicom` part as it arrives, stored through
  `MediaService.store_instance` (durable bytes, one registration, a duplicate is one instance),
  only of the bound patient (else FailureReason 0124), answered by `dicom.StoreResponse`.
- QIDO-RS: `qido_store.search`, narrowed to the bound patient and without the studies the
  patient blocked (`Binding.blocked_studies`, at every level); a PatientID naming anyone else
  is refused (`wrong-patient`, 403) and audited.
- WADO-RS: the instances of a study, series or instance; absent, or another patient's, is
  `NotShown` (404, the same answer) and audited as a denial; a study the patient blocked is
  refused (`document-blocked`, 403) and audited, as the source refuses a blocked document.
  Metadata is the stored JSON bytes; instances stream from the content store; frames and
  rendered images read the one instance.

References: DICOM PS3.18 §10.4 (WADO-RS), §10.5 (STOW-RS), §10.6 (QIDO-RS), §8.3.5.1
(rendered: window, viewport), §8.7.3 (media types); IHE ITI BALP.
"""

from __future__ import annotations

import io
import uuid
import warnings
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID
from sqlalchemy.ext.asyncio import AsyncEngine

from onerecord.audit import AuditAction, AuditOutcome
from onerecord.dicom import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    FailedInstance,
    FailureReason,
    InvalidRequest,
    JsonInstance,
    MultipartLimits,
    NotAcceptable,
    OutgoingPart,
    Part,
    PartChunk,
    PartEnd,
    PayloadTooLarge,
    QidoQuery,
    Representation,
    SingleValueMatch,
    StoreResponse,
    UnsupportedMediaType,
    WadoResource,
    check_frames,
    iter_part_events,
    iter_parts,
    negotiate,
    offers_for,
    parse_related_content_type,
    read_json_instances,
)
from onerecord.dicom import (
    StoredInstance as StowStored,
)
from onerecord.media import qido_store
from onerecord.media.errors import (
    AccessRefused,
    ContentWriteFailed,
    InstanceConflict,
    InstanceNotAuthorised,
    InvalidInstance,
    NotShown,
    SopClassMismatch,
)
from onerecord.media.mp4 import (
    MalformedMp4,
    UnsupportedVideo,
    h264_transfer_syntax,
    read_mp4,
)
from onerecord.media.photo import (
    InvalidPhoto,
    PhotoError,
    PhotoLimits,
    PhotoTooLarge,
    UnsupportedPhoto,
    read_photo,
)
from onerecord.media.rendering import RenderRequest, bulk_value, frames_of, render
from onerecord.media.service import AuditCaller, MediaService, StoreResult
from onerecord.media.store import StoredInstance
from onerecord.media.wic import box_size, mp4_span, photo_dataset, video_dataset, video_part10
from onerecord.trust.policy import DenialReason

__all__ = [
    "DICOMWEB_AE",
    "DicomWebService",
    "FrameAnswer",
    "InstanceAnswer",
    "VideoAnswer",
    "part10",
    "with_preamble",
]

_T = TypeVar("_T")
DICOMWEB_AE = "DICOMWEB"
"""What the instance table records as the sender of a STOW-RS store (no AE title on HTTP)."""
_DICOM = "application/dicom"


@dataclass(frozen=True, slots=True)
class InstanceAnswer:
    """A multipart answer of whole instances, streamed."""

    representation: Representation
    parts: AsyncIterator[OutgoingPart]


@dataclass(frozen=True, slots=True)
class FrameAnswer:
    """Frames (or one rendered image): their media type and bytes."""

    representation: Representation
    bodies: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class VideoAnswer:
    """A stored clip's MP4 file: where it lies in the instance's content, and how long it is."""

    content_key: str
    offset: int
    length: int


_SPOOL_WRITE = 1024 * 1024
_WIC_FAILURES: tuple[tuple[type[Exception], FailureReason], ...] = (
    (SopClassMismatch, FailureReason.DATA_SET_DOES_NOT_MATCH_SOP_CLASS),
    (PhotoTooLarge, FailureReason.OUT_OF_RESOURCES),
    (UnsupportedPhoto, FailureReason.SOP_CLASS_NOT_SUPPORTED),
    (UnsupportedVideo, FailureReason.SOP_CLASS_NOT_SUPPORTED),
    (InvalidPhoto, FailureReason.CANNOT_UNDERSTAND),
    (MalformedMp4, FailureReason.CANNOT_UNDERSTAND),
    (InstanceNotAuthorised, FailureReason.NOT_AUTHORIZED),
    (InvalidInstance, FailureReason.CANNOT_UNDERSTAND),
    (InstanceConflict, FailureReason.PROCESSING_FAILURE),
    (ContentWriteFailed, FailureReason.OUT_OF_RESOURCES),
)


class DicomWebService:
    """DICOMweb over one archive; every call names the bound patient and the audit caller."""

    def __init__(
        self,
        *,
        media: MediaService,
        engine: AsyncEngine,
        base_url: str,
        max_limit: int = 1000,
        max_part_bytes: int = 256 * 1024 * 1024,
        max_video_bytes: int = 4_000_000_000,
        max_body_bytes: int = 4_200_000_000,
        photo_limits: PhotoLimits = PhotoLimits(),  # noqa: B008 - frozen
        spool_dir: Path | None = None,
    ) -> None:
        self.media = media
        self.engine = engine
        self.base_url = base_url.rstrip("/")
        self.max_limit = max_limit
        self.limits = MultipartLimits(max_part_bytes=max_part_bytes)
        self.max_video_bytes = max_video_bytes
        self.max_body_bytes = max_body_bytes
        self.photo_limits = photo_limits
        self.spool_dir = spool_dir

    # --- audit ---------------------------------------------------------------------------

    async def denied(
        self,
        action: AuditAction,
        reason: str,
        *,
        who: AuditCaller,
        correlation_id: str,
        patient: str | None,
        uids: tuple[str, ...] = (),
    ) -> None:
        """Audit a refused request (F5); an access must not pass unaudited."""
        record = self.media.audit_record(  # one record shape for DIMSE and DICOMweb
            action,
            AuditOutcome.DENIED,
            correlation_id=correlation_id,
            patient_id=patient,
            reason=reason,
            document_ids=uids,
            who=who,
        )
        await self.media.audit.append([record])

    async def _audited(
        self,
        action: AuditAction,
        *,
        who: AuditCaller,
        correlation_id: str,
        patient: str,
        uids: tuple[str, ...] = (),
        returned: int | None = None,
        query: str,
        reason: str | None = None,
        emergency_override: bool = False,
    ) -> None:
        record = self.media.audit_record(
            action,
            AuditOutcome.SUCCESS,
            correlation_id=correlation_id,
            patient_id=patient,
            document_ids=uids,
            returned_count=returned,
            query=query,
            reason=reason,
            who=who,
            emergency_override=emergency_override,
        )
        await self.media.audit.append([record])

    # --- STOW-RS -------------------------------------------------------------------------

    async def _counted(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """The request body, refused (413) once it passes the cap on a whole STOW-RS body."""
        total = 0
        async for chunk in chunks:
            total += len(chunk)
            if total > self.max_body_bytes:
                raise PayloadTooLarge(f"a STOW-RS request is at most {self.max_body_bytes} bytes")
            yield chunk

    async def _json_parts(
        self, chunks: AsyncIterable[bytes], boundary: str, spooled: dict[str, Path]
    ) -> list[Part]:
        """The parts of an `application/dicom+json` request; video parts spooled to files.

        Metadata and image parts are held (at most `max_part_bytes` in all); a `video/mp4`
        part flows to a file in the content folder's staging area as it arrives (at most
        `max_video_bytes` each), its Part keeping an empty body and `spooled` its file.
        """
        parts: list[Part] = []
        held = 0
        current: Part | None = None
        body: list[bytes] = []
        spool: Any = None
        pending: list[bytes] = []
        size = 0
        try:
            async for event in iter_part_events(
                self._counted(chunks), boundary, limits=self.limits
            ):
                if isinstance(event, Part):
                    current, body, pending, size = event, [], [], 0
                    media_type = event.content_type
                    if media_type is not None and media_type.essence == "video/mp4":
                        location = event.content_location
                        if self.spool_dir is None:
                            raise UnsupportedMediaType("this archive takes no video over STOW-RS")
                        if not location or location in spooled:
                            raise InvalidRequest("a video part needs its own Content-Location")
                        path = self.spool_dir / f"{uuid.uuid4().hex}.spool"
                        spooled[location] = path
                        spool = await anyio.to_thread.run_sync(_open_spool, path)
                elif isinstance(event, PartChunk):
                    size += len(event.data)
                    if spool is not None:
                        if size > self.max_video_bytes:
                            raise PayloadTooLarge(
                                f"a video is at most {self.max_video_bytes} bytes"
                            )
                        pending.append(event.data)
                        if sum(map(len, pending)) >= _SPOOL_WRITE:
                            await anyio.to_thread.run_sync(spool.write, b"".join(pending))
                            pending = []
                    else:
                        held += len(event.data)
                        if held > self.limits.max_part_bytes:
                            raise PayloadTooLarge(
                                "a DICOM JSON request is at most "
                                f"{self.limits.max_part_bytes} bytes besides its video"
                            )
                        body.append(event.data)
                else:
                    assert isinstance(event, PartEnd) and current is not None
                    if spool is not None:
                        await anyio.to_thread.run_sync(spool.write, b"".join(pending))
                        await anyio.to_thread.run_sync(spool.close)
                        spool, pending = None, []
                        parts.append(Part(current.headers, b""))
                    else:
                        parts.append(Part(current.headers, b"".join(body)))
                    body = []
        finally:
            if spool is not None:  # cut short: the caller removes the file
                await anyio.to_thread.run_sync(spool.close)
        return parts

    async def store(
        self,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str | None,
        study_uid: str | None,
        patient: str,
        who: AuditCaller,
        correlation_id: str,
    ) -> StoreResponse:
        """Store each instance of a STOW-RS request (PS3.18 §10.5), binary or JSON."""
        body = parse_related_content_type(content_type)
        stored: list[StowStored] = []
        failed: list[FailedInstance] = []
        messages: list[str] = []

        async def one(store: Callable[[], Awaitable[StoreResult]], ds: Dataset | None) -> None:
            try:
                result = await store()
            except tuple(e for e, _ in _WIC_FAILURES) as exc:
                reason = next(r for e, r in _WIC_FAILURES if isinstance(exc, e))
                sop_class = str(ds.get("SOPClassUID", "")) if ds is not None else ""
                sop_uid = str(ds.get("SOPInstanceUID", "")) if ds is not None else ""
                failed.append(FailedInstance(sop_class, sop_uid, reason))
                messages.append(str(exc)[:200])
            else:
                url = self._url(
                    result.study_instance_uid, result.series_instance_uid, result.sop_instance_uid
                )
                stored.append(StowStored(result.sop_class_uid, result.sop_instance_uid, url))

        def instance_of(data: bytes) -> Callable[[], Awaitable[StoreResult]]:
            return lambda: self.media.store_instance(
                data,
                calling_ae_title=DICOMWEB_AE,
                correlation_id=correlation_id,
                bound_patient=patient,
                study_uid=study_uid,
                who=who,
            )

        if body.type == _DICOM:
            async for part in iter_parts(chunks, body.boundary, limits=self.limits):
                media_type = part.content_type
                if media_type is not None and media_type.essence != _DICOM:
                    failed.append(FailedInstance("", "", FailureReason.CANNOT_UNDERSTAND))
                    continue
                await one(instance_of(with_preamble(part.body)), None)
        else:
            spooled: dict[str, Path] = {}
            try:
                parts = await self._json_parts(chunks, body.boundary, spooled)
                for item in read_json_instances(parts):
                    ds = item.dataset
                    kind = item.pixel_media_type if item.pixel_data is not None else None
                    if kind == "video/mp4":
                        spool = spooled[item.pixel_location or ""]
                        video = partial(
                            self._store_video, ds, spool, study_uid, patient, who, correlation_id
                        )
                        await one(video, ds)
                    elif kind in ("image/jpeg", "image/png"):
                        photo = partial(
                            self._store_photo, item, study_uid, patient, who, correlation_id
                        )
                        await one(photo, ds)
                    elif kind is not None:
                        failed.append(
                            FailedInstance(
                                str(ds.get("SOPClassUID", "")),
                                str(ds.get("SOPInstanceUID", "")),
                                FailureReason.SOP_CLASS_NOT_SUPPORTED,
                            )
                        )
                        messages.append(f"pixel data as {kind} is not taken")
                    else:
                        try:
                            data = await anyio.to_thread.run_sync(part10, ds)
                        except InvalidInstance:
                            failed.append(FailedInstance("", "", FailureReason.CANNOT_UNDERSTAND))
                            continue
                        await one(instance_of(data), ds)
            finally:
                for path in spooled.values():
                    await anyio.to_thread.run_sync(_remove, path)
        if not stored and not failed:
            raise InvalidRequest("the request holds no instance")
        studies = {s.retrieve_url.split("/series/")[0] for s in stored}
        return StoreResponse(
            tuple(stored),
            tuple(failed),
            retrieve_url=studies.pop() if len(studies) == 1 else None,
            messages=tuple(messages),
        )

    async def _checked(
        self, build: Callable[[], _T], who: AuditCaller, correlation_id: str, patient: str
    ) -> _T:
        """Run a photo's or clip's checks off the event loop; a refusal is audited (F5)."""
        try:
            return await anyio.to_thread.run_sync(build)
        except (PhotoError, MalformedMp4, UnsupportedVideo, InvalidInstance) as exc:
            reason = {
                PhotoTooLarge: "too-large",
                UnsupportedPhoto: "unsupported-media",
                UnsupportedVideo: "unsupported-media",
                SopClassMismatch: "sop-class-mismatch",
            }.get(type(exc), "invalid-instance")
            record = self.media.audit_record(
                AuditAction.STORE,
                AuditOutcome.ERROR,
                correlation_id=correlation_id,
                patient_id=patient,
                reason=reason,
                who=who,
            )
            await self.media.audit.append([record])
            raise

    async def _store_photo(
        self,
        item: JsonInstance,
        study_uid: str | None,
        patient: str,
        who: AuditCaller,
        correlation_id: str,
    ) -> StoreResult:
        """A photo (IHE WIC): checked, EXIF dropped, upright, as a VL Photographic Image."""
        assert item.pixel_data is not None and item.pixel_media_type is not None
        pixels, media_type = item.pixel_data, item.pixel_media_type

        def build() -> bytes:
            photo = read_photo(pixels, media_type, self.photo_limits)
            return part10(photo_dataset(item.dataset, photo))

        data = await self._checked(build, who, correlation_id, patient)
        return await self.media.store_instance(
            data,
            calling_ae_title=DICOMWEB_AE,
            correlation_id=correlation_id,
            bound_patient=patient,
            study_uid=study_uid,
            who=who,
        )

    async def _store_video(
        self,
        ds: Dataset,
        spool: Path,
        study_uid: str | None,
        patient: str,
        who: AuditCaller,
        correlation_id: str,
    ) -> StoreResult:
        """A clip (IHE WIC): its MP4 checked, then streamed into a Video Photographic Image."""

        def build() -> tuple[Dataset, bytes, bytes]:
            size = spool.stat().st_size
            with spool.open("rb") as handle:

                def read_at(offset: int, length: int) -> bytes:
                    handle.seek(offset)
                    return handle.read(length)

                video = read_mp4(read_at, size)
            complete = video_dataset(ds, video, h264_transfer_syntax(video))
            head, tail = video_part10(complete, size)
            return complete, head, tail

        complete, head, tail = await self._checked(build, who, correlation_id, patient)

        async def chunks() -> AsyncIterator[bytes]:
            yield head
            handle = await anyio.to_thread.run_sync(spool.open, "rb")
            try:
                while chunk := await anyio.to_thread.run_sync(handle.read, _SPOOL_WRITE):
                    yield chunk
            finally:
                handle.close()
            yield tail

        return await self.media.store_stream(
            complete,
            chunks(),
            calling_ae_title=DICOMWEB_AE,
            correlation_id=correlation_id,
            bound_patient=patient,
            study_uid=study_uid,
            who=who,
        )

    def _url(self, study: str, series: str | None = None, instance: str | None = None) -> str:
        url = f"{self.base_url}/studies/{study}"
        if series is not None:
            url += f"/series/{series}"
        if instance is not None:
            url += f"/instances/{instance}"
        return url

    # --- QIDO-RS -------------------------------------------------------------------------

    async def search(
        self,
        query: QidoQuery,
        *,
        patient: str,
        empty_reason: str | None,
        who: AuditCaller,
        correlation_id: str,
        blocked_studies: frozenset[str] = frozenset(),
        opened_studies: frozenset[str] = frozenset(),
    ) -> list[dict[str, Any]]:
        """The matches of a QIDO-RS query for the bound patient; audited as a search.

        `opened_studies`: blocked studies this caller may see by consent or an emergency; a
        search that may list them is audited as an emergency override.
        """
        label = f"QIDO-RS {query.level.value}"
        for predicate in query.matches:
            if predicate.attribute.keyword != "PatientID":
                continue
            if not (isinstance(predicate, SingleValueMatch) and predicate.value == patient):
                await self.denied(
                    AuditAction.SEARCH,
                    "wrong-patient",
                    who=who,
                    correlation_id=correlation_id,
                    patient=patient,
                )
                raise AccessRefused(
                    "PatientID names another patient than the request is bound to (ATT-4)",
                    reason="wrong-patient",
                )
        if empty_reason is not None:
            await self._audited(
                AuditAction.SEARCH,
                who=who,
                correlation_id=correlation_id,
                patient=patient,
                returned=0,
                query=label,
                reason=empty_reason,
            )
            return []
        matches = await qido_store.search(
            self.engine,
            query,
            patient_id=patient,
            retrieve_base=self.base_url,
            hidden_studies=blocked_studies,
        )
        await self._audited(
            AuditAction.SEARCH,
            who=who,
            correlation_id=correlation_id,
            patient=patient,
            returned=len(matches),
            query=label,
            emergency_override=bool(opened_studies),
        )
        return matches

    # --- WADO-RS -------------------------------------------------------------------------

    async def locate(
        self,
        *,
        study_uid: str,
        series_uid: str | None,
        instance_uid: str | None,
        patient: str,
        empty_reason: str | None,
        who: AuditCaller,
        correlation_id: str,
        purpose: str,
        blocked_studies: frozenset[str] = frozenset(),
        opened_studies: frozenset[str] = frozenset(),
    ) -> list[StoredInstance]:
        """The bound patient's instances a WADO-RS path names, or a refusal; audited."""
        named = tuple(u for u in (instance_uid or series_uid or study_uid,) if u)
        if empty_reason is not None:
            await self.denied(
                AuditAction.RETRIEVE,
                empty_reason,
                who=who,
                correlation_id=correlation_id,
                patient=patient,
                uids=named,
            )
            raise AccessRefused(f"access denied by policy: {empty_reason}", reason=empty_reason)
        found = await qido_store.locate_uids(
            self.engine,
            study_uid=study_uid,
            series_uid=series_uid,
            instance_uid=instance_uid,
            limit=self.media.max_retrieve_instances + 1,
        )
        reason = None
        if not found:
            reason = "not-found"
        elif any(i.patient_id != patient for i in found):
            reason = "wrong-patient"  # a UID of another patient's study: as if absent
        elif len(found) > self.media.max_retrieve_instances:
            reason = "too-many-instances"
        elif study_uid in blocked_studies:
            # The patient's own study, blocked: refused as the source refuses a blocked document
            # (D1: the caller may learn that blocked images exist, not what they show).
            await self.denied(
                AuditAction.RETRIEVE,
                DenialReason.DOCUMENT_BLOCKED.value,
                who=who,
                correlation_id=correlation_id,
                patient=patient,
                uids=named,
            )
            raise AccessRefused(
                "access denied by policy: document-blocked",
                reason=DenialReason.DOCUMENT_BLOCKED.value,
            )
        if reason is not None:
            await self.denied(
                AuditAction.RETRIEVE,
                reason,
                who=who,
                correlation_id=correlation_id,
                patient=patient,
                uids=named,
            )
            raise NotShown(reason=reason)
        await self._audited(
            AuditAction.RETRIEVE,
            who=who,
            correlation_id=correlation_id,
            patient=patient,
            uids=tuple(i.sop_instance_uid for i in found),
            returned=len(found),
            query=purpose,
            emergency_override=study_uid in opened_studies,
        )
        return found

    async def metadata(self, instances: list[StoredInstance]) -> bytes:
        """The instances' DICOM JSON as stored, as one JSON array (no file is read)."""
        bodies = await qido_store.instance_metadata(
            self.engine,
            [i.sop_instance_uid for i in instances],
            retrieve_base=self.base_url,
        )
        return b"[" + b",".join(bodies) + b"]"

    def instances(
        self,
        instances: list[StoredInstance],
        *,
        accept: str | None,
        query_accept: str | None,
    ) -> InstanceAnswer:
        """Whole instances as stored, negotiated (no transcoding), streamed."""
        syntaxes = list(dict.fromkeys(i.transfer_syntax_uid for i in instances))
        offers = tuple(Representation(_DICOM, ts, multipart=True) for ts in syntaxes)
        chosen = negotiate(offers, accept, query_accept=query_accept)
        named = _named_syntax(query_accept if query_accept is not None else accept)
        if named is not None and len(syntaxes) > 1:
            raise NotAcceptable(
                "the instances are stored in several transfer syntaxes; ask for transfer-syntax=*"
            )
        content = self.media.content

        async def parts() -> AsyncIterator[OutgoingPart]:
            for item in instances:
                yield OutgoingPart(
                    f"{_DICOM}; transfer-syntax={item.transfer_syntax_uid}",
                    content.chunks(item.content_key),
                )

        return InstanceAnswer(chosen, parts())

    async def frames(
        self,
        instance: StoredInstance,
        frames: tuple[int, ...],
        *,
        accept: str | None,
        query_accept: str | None,
    ) -> FrameAnswer:
        """The frames of one instance: native pixel data, or its compressed frames as stored."""
        offers = offers_for(
            WadoResource.FRAMES,
            stored_transfer_syntax=instance.transfer_syntax_uid,
            can_decode=False,
        )
        chosen = negotiate(offers, accept, query_accept=query_accept)
        data = await self.media.read_bounded(instance)
        bodies = await anyio.to_thread.run_sync(frames_of, data)
        check_frames(frames, len(bodies))
        return FrameAnswer(chosen, tuple(bodies[f - 1] for f in frames))

    async def bulkdata(
        self,
        instance: StoredInstance,
        path: tuple[int, ...],
        *,
        accept: str | None,
        query_accept: str | None,
    ) -> FrameAnswer:
        """The value a BulkDataURI of the stored metadata names (PS3.18 §10.4.1.1.5)."""
        offers = offers_for(
            WadoResource.BULKDATA,
            stored_transfer_syntax=instance.transfer_syntax_uid,
            can_decode=False,
        )
        chosen = negotiate(offers, accept, query_accept=query_accept)
        data = await self.media.read_bounded(instance)
        bodies = await anyio.to_thread.run_sync(bulk_value, data, path)
        return FrameAnswer(chosen, tuple(bodies))

    async def video(
        self,
        instance: StoredInstance,
        *,
        accept: str | None,
        query_accept: str | None,
    ) -> VideoAnswer:
        """A stored clip as its MP4 file (rendered as video/mp4), found without reading it all."""
        negotiate(
            offers_for(WadoResource.RENDERED, is_video=True), accept, query_accept=query_accept
        )
        content = self.media.content
        key = instance.content_key
        head = await content.read_at(key, 0, min(instance.size, 1024 * 1024))
        span = await anyio.to_thread.run_sync(mp4_span, head)
        if span is None or span.offset + span.length > instance.size:
            raise NotAcceptable("the stored video is not an MP4 file; retrieve the instance")
        pos = 0
        for _ in range(10_000):
            if pos >= span.length - 1:
                break
            size = box_size(await content.read_at(key, span.offset + pos, 16))
            if not size:
                break
            pos += size
        if pos not in (span.length, span.length - 1):
            raise NotAcceptable("the stored video is not a whole MP4 file")
        return VideoAnswer(key, span.offset, pos)

    async def rendered(
        self,
        instance: StoredInstance,
        request: RenderRequest,
        *,
        accept: str | None,
        query_accept: str | None,
    ) -> FrameAnswer:
        """One frame rendered as JPEG or PNG (window/level, viewport), or a thumbnail."""
        offers = offers_for(WadoResource.RENDERED)
        chosen = negotiate(offers, accept, query_accept=query_accept)
        data = await self.media.read_bounded(instance)
        body = await anyio.to_thread.run_sync(render, data, request, chosen.media_type)
        return FrameAnswer(chosen, (body,))


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _open_spool(path: Path) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("xb")


_PREAMBLE = b"\0" * 128 + b"DICM"


def part10(ds: Dataset) -> bytes:
    """A dataset of a JSON STOW-RS request written as a Part 10 file (PS3.10 §7.1).

    The file meta information is made from the dataset (SOP Class and Instance UIDs) and the
    transfer syntax the request gave, Explicit VR Little Endian when it gave none (native
    pixel data). A dataset that cannot be written so is InvalidInstance (FailureReason C000).
    """
    try:
        meta = getattr(ds, "file_meta", None) or FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if "TransferSyntaxUID" not in meta:
            meta.TransferSyntaxUID = UID(EXPLICIT_VR_LITTLE_ENDIAN)
        ds.file_meta = meta
        out = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pydicom.dcmwrite(out, ds, enforce_file_format=True)
        return out.getvalue()
    except Exception:  # noqa: BLE001 - pydicom refuses a dataset in many ways
        raise InvalidInstance("the dataset cannot be written as a DICOM file") from None


def with_preamble(data: bytes) -> bytes:
    """A Part 10 stream as stored: the preamble and `DICM` added when a client left them out.

    PS3.18 §8.6.1.2 asks for a Part 10 file; `dicomweb-client` 0.61.2 with pydicom 3 sends the
    file meta group without the 128-byte preamble. Only bytes that begin with a group 0002
    element (little endian) are completed; anything else is left for the reader to refuse.
    """
    if data[128:132] != b"DICM" and data[:2] == b"\x02\x00":
        return _PREAMBLE + data
    return data


def _named_syntax(accept: str | None) -> str | None:
    """The concrete transfer syntax an Accept names, if any (not `*`)."""
    if not accept or "transfer-syntax=" not in accept:
        return None
    value = accept.split("transfer-syntax=", 1)[1].split(";")[0].split(",")[0].strip().strip('"')
    return None if value == "*" else value
