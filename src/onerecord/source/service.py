"""The document source's transactions: ITI-65 publish, ITI-67 find, ITI-68 retrieve.

Routes parse HTTP and call one function here; this module talks to the DocumentStore and the
ContentStore it is given and never builds them.

References: IHE MHD ITI-65 (2:3.65.4.1.3 expected actions), ITI-67 (2:3.67.4.2), ITI-68
(2:3.68.4.2).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import anyio
import orjson
import structlog

from onerecord.domain import (
    CONFIDENTIALITY_VOLVEN,
    DocumentEntry,
    DocumentQuery,
    DocumentStatus,
    DocumentUniqueId,
    HomeCommunityId,
    RepositoryUniqueId,
)
from onerecord.mhd import (
    EXT_HOME_COMMUNITY_ID,
    BadRequest,
    Conflict,
    Gone,
    Issue,
    MhdError,
    NotAcceptable,
    NotFound,
    RetrieveKey,
    SubmittedDocument,
    Unprocessable,
    document_reference,
    operation_outcome,
    parse_find_query,
    parse_provide_bundle,
    render_query,
    searchset_bundle,
    split_count_only,
    transaction_response,
)
from onerecord.mhd.docref import RFC3986, fill_document_reference, retrieve_url_prefix
from onerecord.mhd.iti67 import searchset_bundle_bytes
from onerecord.source.access import (
    NO_SUCH_DOCUMENT,
    AccessGuard,
    AccessRecorder,
    AccessRefused,
    CallerContext,
    DocumentNotShown,
    EntryView,
    SearchGrant,
)
from onerecord.source.content import ContentCorrupted, ContentMissing, ContentStore
from onerecord.source.content_patient import check_content_patients
from onerecord.source.locator import RegistryPublisher
from onerecord.source.settings import SourceSettings
from onerecord.source.store import (
    DocumentStore,
    DuplicateDocument,
    FoundEntry,
    InvalidReplacement,
    SubmissionSetRecord,
)
from onerecord.trust.errors import TrustError
from onerecord.trust.patient_binding import PATIENT_NIN_HEADER
from onerecord.trust.policy import MASKED_TITLE

__all__ = ["DocumentSource", "FoundPage", "Retrieval", "accepts", "masked_document_reference"]

log = structlog.get_logger("onerecord.source")

# Parsing a bundle decodes base64 and hashes every document; above this size it runs in a
# worker thread so one large upload does not stall every other request.
_THREAD_PARSE_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class Retrieval:
    """A document ready to stream: its metadata and the byte stream."""

    entry: DocumentEntry
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True, slots=True)
class FoundPage:
    """A searchset Bundle ready to send, and how many of its entries are masked placeholders."""

    body: bytes
    masked_count: int = 0


def masked_document_reference(entry: DocumentEntry, *, handle: str | None = None) -> dict[str, Any]:
    """Render the placeholder of a blocked entry: when, which class, where — and "Sperret".

    Kept: date, classCode (category), homeCommunityId, status and the patient the caller asked
    about. Dropped: uniqueId (masterIdentifier), entryUUID, title, authors, typeCode, context
    and the attachment URL, so it can be neither identified nor retrieved. securityLabel is NORS.
    The id is `handle` when the policy gives one (a keyed digest a health worker's emergency
    grant can name, trust.emergency.masked_handle; issue 11, defect 7), else random.
    References: TRUST-FRAMEWORK §4.5 (reference source's DocumentObfuscationService), D1.
    """
    moment = entry.service_start_time or entry.creation_time
    category = {
        "coding": [
            {
                "system": entry.class_code.system,
                "code": entry.class_code.code,
                **({"display": entry.class_code.display} if entry.class_code.display else {}),
            }
        ]
    }
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": handle or f"masked-{uuid.uuid4().hex}",
        "status": entry.status.value,
        "category": [category],
        "subject": {
            "identifier": {
                "system": f"urn:oid:{entry.patient_id.system}",
                "value": entry.patient_id.value,
            }
        },
        "date": moment.isoformat(),
        "description": MASKED_TITLE,
        "securityLabel": [{"coding": [{"system": CONFIDENTIALITY_VOLVEN, "code": "NORS"}]}],
        "content": [{"attachment": {"title": MASKED_TITLE}}],
    }
    if entry.home_community_id is not None:
        resource["extension"] = [
            {
                "url": EXT_HOME_COMMUNITY_ID,
                "valueIdentifier": {"system": RFC3986, "value": entry.home_community_id.urn},
            }
        ]
    return resource


def _shown(grant: SearchGrant, found: Sequence[FoundEntry]) -> list[tuple[FoundEntry, EntryView]]:
    """Each entry the grant's viewer shows (in full or masked), with its view; hidden ones go."""
    return [(f, v) for f, v in ((f, grant.view(f)) for f in found) if v is not None]


def _empty_outcome(reason: str) -> dict[str, Any]:
    """Say why a searchset is empty by rule (reservation D4, citizen 12–15 E2), not by chance.

    An informational issue (IHE MHD ITI-67 §2:3.67.4.2.3: OperationOutcome entries with
    search.mode outcome) whose details carry the DenialReason code.
    """
    issue = Issue(
        code="suppressed",
        severity="information",
        diagnostics=f"no entries are shown by rule: {reason}",
        reason=reason,
    )
    return operation_outcome([issue])


def _refusal(exc: DuplicateDocument | InvalidReplacement) -> MhdError:
    """The registry's refusal as the ITI-65 answer: 409 for a duplicate, 422 for a bad RPLC."""
    if isinstance(exc, DuplicateDocument):
        return Conflict(str(exc), expression=None)
    return Unprocessable(str(exc), expression="DocumentReference.relatesTo")


def accepts(accept_header: str | None, mime_type: str) -> bool:
    """True if an HTTP Accept header admits `mime_type` (RFC 9110 §12.5.1, q=0 excludes)."""
    if not accept_header:
        return True
    major = mime_type.split("/", 1)[0]
    for part in accept_header.split(","):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        if "q=0" in params.replace(" ", "") and not any(
            q.strip().startswith("q=0.") for q in params.split(";")
        ):
            continue
        if media in {"*/*", mime_type, f"{major}/*"}:
            return True
    return False


class DocumentSource:
    """One region's registry and repository behind the MHD transactions."""

    def __init__(
        self,
        *,
        settings: SourceSettings,
        store: DocumentStore,
        content: ContentStore,
        guard: AccessGuard,
        recorder: AccessRecorder,
        events: RegistryPublisher | None = None,
    ) -> None:
        self.settings = settings
        self.events = events
        self.store = store
        self.content = content
        self.guard = guard
        self.recorder = recorder
        self.home_community_id = HomeCommunityId.parse(settings.home_community_id)
        self.repository_unique_id = RepositoryUniqueId.parse(settings.repository_unique_id)
        self._url_prefix = retrieve_url_prefix(
            settings.fhir_base, self.home_community_id, self.repository_unique_id
        )
        # SHA-256s being published by this process: a failed publish leaves them in place.
        self._in_flight: Counter[str] = Counter()

    # ITI-65 ---------------------------------------------------------------------------------

    async def publish(self, body: bytes) -> bytes:
        """Register every document of a transaction Bundle, all or nothing."""
        max_docs = self.settings.max_documents_per_bundle
        if len(body) > _THREAD_PARSE_BYTES:
            bundle = await anyio.to_thread.run_sync(
                lambda: parse_provide_bundle(body, max_documents=max_docs)
            )
        else:
            bundle = parse_provide_bundle(body, max_documents=max_docs)
        await check_content_patients(bundle.documents)
        now = datetime.now(UTC)
        entries = [
            replace(
                doc.entry,
                repository_unique_id=self.repository_unique_id,
                home_community_id=self.home_community_id,
                submission_time=now,
            )
            for doc in bundle.documents
        ]
        submission_set = SubmissionSetRecord.from_bundle(bundle, submitted=now)
        # Every rule that can refuse the bundle runs before a byte is written, so a refused
        # bundle leaves the repository as it was.
        try:
            await self.store.check_registrable(entries)
        except (DuplicateDocument, InvalidReplacement) as exc:
            raise _refusal(exc) from exc
        # Content first (fsynced), registry second: a crash in between leaves only an
        # unreferenced blob that no query can reach and the orphan sweep removes; never a
        # registered entry without its bytes.
        shas = {doc.entry.hash_sha256 for doc in bundle.documents}
        self._in_flight.update(shas)
        created: list[str] = []
        try:
            await self._write_content(bundle.documents, created)
            result = await self.store.register(entries, submission_set=submission_set)
        except BaseException as exc:
            await self._remove_unregistered(created)
            if isinstance(exc, DuplicateDocument | InvalidReplacement):
                raise _refusal(exc) from exc
            raise
        finally:
            self._in_flight.subtract(shas)
            self._in_flight += Counter()  # drop the zero counts
        await self._ensure_content(bundle.documents)
        if self.events is not None:
            self.events.registered(result)  # queued, never in the way of the publish
        locations = [
            f"{self.settings.fhir_base}/DocumentReference/{entry.entry_uuid}"
            for entry in result.entries
        ]
        return orjson.dumps(transaction_response(bundle, locations))

    async def _write_content(
        self, documents: Sequence[SubmittedDocument], created: list[str]
    ) -> None:
        """Store every document's bytes; add to `created` the SHA-256s that were not there."""

        async def put(doc: SubmittedDocument) -> None:
            if await self.content.add(doc.content):
                created.append(doc.entry.hash_sha256)

        if len(documents) == 1:  # the common case: no task group to set up
            await put(documents[0])
            return
        async with anyio.create_task_group() as tg:
            for doc in documents:
                tg.start_soon(put, doc)

    async def _remove_unregistered(self, created: Sequence[str]) -> None:
        """Remove the blobs a failed publish created, unless registered or in flight here."""
        with anyio.CancelScope(shield=True):
            for sha256 in dict.fromkeys(created):
                try:
                    if self._in_flight[sha256] > 1 or await self.store.has_content(sha256):
                        continue
                    await self.content.delete(sha256)
                except Exception as exc:  # the orphan sweep removes it later
                    log.warning("content.cleanup_failed", error=type(exc).__name__)

    async def _ensure_content(self, documents: Sequence[SubmittedDocument]) -> None:
        """Put back bytes that a failed publish of the same content in another process removed.

        Its cleanup can find the blob unreferenced just before this publish commits; the bytes
        are still in memory here, so a registered entry never stays without them.
        """

        async def ensure(doc: SubmittedDocument) -> None:
            if not await self.content.exists(doc.entry.hash_sha256):
                log.warning("content.restored_after_commit")
                await self.content.put(doc.content)

        unique = list({d.entry.hash_sha256: d for d in documents}.values())
        if len(unique) == 1:  # the common case: no task group to set up
            await ensure(unique[0])
            return
        async with anyio.create_task_group() as tg:
            for doc in unique:
                tg.start_soon(ensure, doc)

    # ITI-67 ---------------------------------------------------------------------------------

    async def _authorize_search(self, caller: CallerContext, query: DocumentQuery) -> SearchGrant:
        """The guard's grant for `query`; a refusal is audited as a denial, then raised."""
        try:
            return await self.guard.authorize_search(caller, query)
        except (AccessRefused, TrustError) as exc:
            reason = exc.reason if isinstance(exc, AccessRefused) else exc.error
            await self.recorder.denied(caller, "search", reason, patient=query.patient_id.value)
            raise

    async def find(self, caller: CallerContext, params: Sequence[tuple[str, str]]) -> FoundPage:
        """Answer a Find Document References query with a searchset Bundle.

        `_summary=count` / `_count=0` answer the same `total` with no entries. Otherwise `total`
        is counted only when `_total` asks for it, or given when free (`SqlDocumentStore.find`).
        Each match is its stored rendering filled in (`fill_document_reference`) and spliced
        into the Bundle's bytes; only masked placeholders and rows without one are rendered here.
        """
        only_total, params = split_count_only(params)
        query, cursor = parse_find_query(params, max_count=self.settings.max_page_size)
        grant = await self._authorize_search(caller, query)
        base = f"{self.settings.fhir_base}/DocumentReference"
        self_url = f"{base}?{urlencode(render_query(query, cursor))}"
        if only_total:
            self_url += "&_summary=count"
        if grant.empty:
            await self.recorder.searched(caller, query, [])
            outcomes = [_empty_outcome(grant.empty_reason)] if grant.empty_reason else []
            return FoundPage(
                orjson.dumps(
                    searchset_bundle(
                        resources=[], self_url=self_url, next_url=None, total=0, outcomes=outcomes
                    )
                )
            )
        if only_total:
            # A page of size 0 is the count alone: the store reads no rows.
            counted = await self.store.find(replace(grant.query, count=0), cursor)
            await self.recorder.searched(caller, query, [])
            return FoundPage(
                orjson.dumps(
                    searchset_bundle(
                        resources=[], self_url=self_url, next_url=None, total=counted.total
                    )
                )
            )
        page = await self.store.find(grant.query, cursor)
        shown = _shown(grant, page.entries)
        views = [v for _, v in shown]
        await self.recorder.searched(caller, query, views)
        next_url = (
            f"{base}?{urlencode(render_query(query, page.next_cursor))}"
            if page.next_cursor is not None
            else None
        )
        body = searchset_bundle_bytes(
            matches=[self._rendered(found, view) for found, view in shown],
            self_url=self_url,
            next_url=next_url,
            total=page.total,
        )
        return FoundPage(body, masked_count=sum(1 for v in views if v.masked))

    async def read(self, caller: CallerContext, entry_id: str, *, patient: str | None) -> bytes:
        """Read one DocumentReference: a search of the request's patient for its entryUUID.

        The patient is the one the request names in `nhn-patient-nin`, as for a retrieve (B11),
        so the same policy decides as for a search, the read is audited as one, and a document
        of another patient answers 404 exactly like one that does not exist. A blocked entry
        (shown masked in a search, under another id) is not found by its own id either.
        References: FHIR R4 http.html#read; IHE MHD ITI-67 §2:3.67.4.1.2 (identifier).
        """
        try:
            entry_uuid = uuid.UUID(entry_id)
        except ValueError:
            raise NotFound(f"no DocumentReference with id {entry_id[:64]!r}") from None
        if not patient:
            raise BadRequest(
                f"the {PATIENT_NIN_HEADER} header is required to read a DocumentReference, "
                "as to retrieve one (B11)"
            )
        params = [
            ("patient.identifier", patient),
            ("identifier", f"{RFC3986}|urn:uuid:{entry_uuid}"),
            ("status", "current,superseded,entered-in-error"),
        ]
        query, _cursor = parse_find_query(params, max_count=self.settings.max_page_size)
        grant = await self._authorize_search(caller, query)
        shown: list[tuple[FoundEntry, EntryView]] = []
        if not grant.empty:
            page = await self.store.find(grant.query, None)
            shown = [(f, v) for f, v in _shown(grant, page.entries) if not v.masked]
        await self.recorder.searched(caller, query, [v for _, v in shown])
        if not shown:
            raise NotFound(f"no DocumentReference with id {entry_uuid}")
        return self._rendered(*shown[0])[1]

    def _rendered(self, found: FoundEntry, view: EntryView) -> tuple[str, bytes]:
        """The id and JSON of one match: the stored rendering filled in, else rendered now."""
        if view.masked:
            placeholder = masked_document_reference(found.entry, handle=view.handle)
            return placeholder["id"], orjson.dumps(placeholder)
        if found.rendered is not None:
            body = fill_document_reference(
                found.rendered, status=found.status, url_prefix=self._url_prefix
            )
            return found.entry_uuid, body
        entry = found.entry
        resource = document_reference(
            entry, id=str(entry.entry_uuid), attachment_url=self.attachment_url(entry)
        )
        return resource["id"], orjson.dumps(resource)

    def attachment_url(self, entry: DocumentEntry) -> str:
        key = RetrieveKey(self.home_community_id, self.repository_unique_id, entry.unique_id)
        return f"{self.settings.fhir_base}/Binary/{key.token()}"

    # ITI-68 ---------------------------------------------------------------------------------

    async def retrieve(self, caller: CallerContext, token: str, accept: str | None) -> Retrieval:
        """Locate a document by its retrieve key and open its bytes for streaming."""
        key = RetrieveKey.parse(token)
        if key.home_community_id != self.home_community_id:
            raise NotFound(f"homeCommunityId {key.home_community_id} is not served here")
        if key.repository_unique_id != self.repository_unique_id:
            raise NotFound(f"repositoryUniqueId {key.repository_unique_id} is not served here")
        entry = await self.store.get(key.unique_id)
        try:
            grant = await self.guard.authorize_retrieve(caller, entry)
        except (AccessRefused, TrustError) as exc:
            reason = exc.reason if isinstance(exc, AccessRefused) else exc.error
            await self.recorder.denied(
                caller,
                "retrieve",
                reason,
                patient=entry.patient_id.value if entry is not None else None,
                document=key.unique_id.value,
            )
            if isinstance(exc, DocumentNotShown):
                # Answered as a made-up key: the reason stays in the audit (issue 10, F4).
                raise NotFound(NO_SUCH_DOCUMENT) from None
            raise
        if entry is None:
            raise NotFound(NO_SUCH_DOCUMENT)
        if entry.status is DocumentStatus.ENTERED_IN_ERROR:
            raise Gone(f"document {key.unique_id} was entered in error")
        if not accepts(accept, entry.mime_type):
            raise NotAcceptable(
                f"the document is {entry.mime_type}; the Accept header does not allow it"
            )
        try:
            chunks = await self.content.open(entry.hash_sha256, expected_size=entry.size)
        except ContentMissing:
            log.error("content.missing", unique_id=str(entry.unique_id))
            raise MhdError(
                f"the bytes of document {entry.unique_id} are missing from the repository",
                status=500,
                code="exception",
            ) from None
        except ContentCorrupted:
            log.error("content.corrupted", unique_id=str(entry.unique_id))
            raise MhdError(
                f"the stored bytes of document {entry.unique_id} failed their integrity check",
                status=500,
                code="exception",
            ) from None
        await self.recorder.retrieved(caller, entry, grant)
        return Retrieval(entry=entry, chunks=chunks)

    async def get_entry(self, unique_id: DocumentUniqueId) -> DocumentEntry | None:
        return await self.store.get(unique_id)
