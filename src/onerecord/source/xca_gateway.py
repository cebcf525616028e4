"""The region as an XCA responding gateway: ITI-38 Cross Gateway Query, ITI-39 Retrieve.

The same DocumentStore, ContentStore, AccessGuard and AccessRecorder as the MHD transactions
(`onerecord.source.service`), so one person asking about one patient sees the same documents,
the same blocked ones and leaves the same audit over either wire. The SAML assertion is
verified (`onerecord.xca.saml`), its attributes become the policy's principal
(`onerecord.xca.xua`), and its `resource-id` patient binds the request: a FindDocuments of
another patient is refused (ATT-4), and GetDocuments and the retrieve answer only that
patient's documents.

Errors: the wire's faults (`XcaParseError` from the envelope) are raised to the route, which
answers a SOAP Fault; everything else becomes a RegistryError located at this community
(`urn:oid:<homeCommunityId>`, ITI TF-2 3.38.4.1.3) inside a Failure or PartialSuccess answer.

References: IHE ITI TF-2 3.38.4.1.3 (responding gateway actions), 3.39.4.1.3; ITI TF-2
3.18.4.1.2.3.7 (stored queries); TRUST-FRAMEWORK §2.4 (XUA), §4.5 (obfuscation, D1).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import structlog

from onerecord.domain import (
    CONFIDENTIALITY_VOLVEN,
    DocumentQuery,
    DocumentStatus,
    DocumentUniqueId,
    DomainError,
    HomeCommunityId,
    InvalidIdentifier,
    NationalIdentityNumber,
    RepositoryUniqueId,
)
from onerecord.mhd import MhdError, parse_find_query
from onerecord.mhd.docref import RFC3986
from onerecord.source.access import (
    AccessGuard,
    AccessRecorder,
    AccessRefused,
    CallerContext,
    DocumentNotShown,
    EntryView,
)
from onerecord.source.content import ContentCorrupted, ContentMissing, ContentStore
from onerecord.source.security import ACCESS_BASIS_HEADER
from onerecord.source.store import DocumentStore, FoundEntry
from onerecord.trust.errors import TrustError
from onerecord.trust.patient_binding import PATIENT_NIN_HEADER
from onerecord.xca.ebrim import (
    CONFIDENTIALITY_SCHEME,
    RPLC,
    EbAssociation,
    EbClassification,
    EbRegistryError,
    EbSlot,
    ExtrinsicEntry,
    QueryResponse,
    ebrim_from_entry,
    obfuscate,
)
from onerecord.xca.errors import ParseProblem, SamlProblem, SamlRefused, XcaParseError
from onerecord.xca.mtom import MtomPart
from onerecord.xca.query import (
    FindDocumentsQuery,
    GetAssociationsQuery,
    GetDocumentsQuery,
    ReturnType,
    StoredQuery,
    mhd_find_params,
    parse_adhoc_query,
)
from onerecord.xca.response import RegistryErrorCode, ResponseStatus, community_error
from onerecord.xca.retrieve import (
    DocumentRequest,
    RetrievedDocument,
    parse_retrieve_request,
    render_retrieve_response,
)
from onerecord.xca.saml import XuaSettings, verify_assertion
from onerecord.xca.soap import SoapEnvelope
from onerecord.xca.writer import document_entry_xml, extrinsic_object_xml, query_response_xml
from onerecord.xca.xua import XuaCaller, caller_from_assertion

__all__ = [
    "DOCUMENT_UNIQUE_ID_ERROR",
    "Admit",
    "ITI38_ACTION",
    "ITI38_RESPONSE_ACTION",
    "ITI39_ACTION",
    "ITI39_RESPONSE_ACTION",
    "RespondingGateway",
    "RetrieveAnswer",
]

log = structlog.get_logger("onerecord.source.xca")

ITI38_ACTION = "urn:ihe:iti:2007:CrossGatewayQuery"
ITI38_RESPONSE_ACTION = "urn:ihe:iti:2007:CrossGatewayQueryResponse"
ITI39_ACTION = "urn:ihe:iti:2007:CrossGatewayRetrieve"
ITI39_RESPONSE_ACTION = "urn:ihe:iti:2007:CrossGatewayRetrieveResponse"
DOCUMENT_UNIQUE_ID_ERROR = "XDSDocumentUniqueIdError"
"""ITI TF-3 Table 4.2.4.1-2: the document is not (or not for this caller) in the repository."""

_STABLE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
_REGISTRY = RegistryErrorCode.REGISTRY_ERROR


Admit = Callable[[CallerContext], None]
"""Takes a caller's per-caller permit or raises CallerThrottled (the route's SourceCallerLimits)."""


class _Refusal(Exception):
    """A request this gateway answers with one RegistryError and nothing else."""

    def __init__(self, code: str, context: str) -> None:
        super().__init__(context)
        self.code = code
        self.context = context


@dataclass(frozen=True, slots=True)
class RetrieveAnswer:
    """An ITI-39 answer: the response element (xop:Include references) and the parts."""

    body: Any
    parts: tuple[MtomPart, ...]


def _now() -> datetime:
    return datetime.now(UTC)


def _marked_blocked(entry: ExtrinsicEntry) -> ExtrinsicEntry:
    """Add confidentiality NORS to a masked entry that does not carry it (a per-document block).

    The MHD placeholder always carries NORS (`masked_document_reference`); so does this one.
    """
    if entry.blocked:
        return entry
    nors = EbClassification(
        id=f"urn:uuid:{uuid.uuid4()}",
        scheme=CONFIDENTIALITY_SCHEME,
        node_representation="NORS",
        slots=(EbSlot("codingScheme", (CONFIDENTIALITY_VOLVEN.removeprefix("urn:oid:"),)),),
        name="NORS",
    )
    return replace(entry, classifications=(*entry.classifications, nors))


def _extrinsic(found: FoundEntry, view: EntryView) -> ExtrinsicEntry:
    """The ExtrinsicObject of an entry as this caller may see it: in full, or masked."""
    rendered = ebrim_from_entry(found.entry)
    return _marked_blocked(obfuscate(rendered)) if view.masked else rendered


class RespondingGateway:
    """ITI-38 and ITI-39 over one region's registry and repository, policy and audit."""

    def __init__(
        self,
        *,
        home_community_id: HomeCommunityId,
        repository_unique_id: RepositoryUniqueId,
        store: DocumentStore,
        content: ContentStore,
        guard: AccessGuard,
        recorder: AccessRecorder,
        xua: XuaSettings | None,
        page_size: int = 200,
        max_results: int = 5000,
        clock: Callable[[], datetime] = _now,
        written_entries: int = 0,
    ) -> None:
        self.home_community_id = home_community_id
        self.repository_unique_id = repository_unique_id
        self.store = store
        self.content = content
        self.guard = guard
        self.recorder = recorder
        self.xua = xua
        self.page_size = page_size
        self.max_results = max_results
        self.clock = clock
        self.written_entries = written_entries
        self._written: OrderedDict[tuple[int, str, str, str], str] = OrderedDict()

    def _error(self, code: str, context: str) -> EbRegistryError:
        return community_error(code, self.home_community_id, context)

    # --- the caller ------------------------------------------------------------------------

    async def _caller(
        self, envelope: SoapEnvelope, correlation_id: str, action: str, admit: Admit | None
    ) -> tuple[XuaCaller, CallerContext]:
        """Verify the assertion and build the policy's caller; SamlRefused audited as denied.

        `admit` takes the caller's per-caller permit (or raises CallerThrottled) before any
        other work, as the MHD routes do after authentication.
        """
        try:
            if self.xua is None:
                raise SamlRefused(
                    "this gateway trusts no SAML issuer (not configured)",
                    problem=SamlProblem.ISSUER,
                )
            assertion = verify_assertion(envelope.assertion, self.xua, now=self.clock())
            xua = caller_from_assertion(assertion)
            patient: NationalIdentityNumber | None = None
            if xua.patient is not None:
                try:
                    patient = xua.patient.nin
                except InvalidIdentifier:
                    raise SamlRefused(
                        "resource-id is not a national identity number",
                        problem=SamlProblem.PATIENT,
                    ) from None
        except SamlRefused as exc:
            await self.recorder.denied(
                CallerContext(correlation_id=correlation_id), action, f"saml-{exc.problem.value}"
            )
            raise
        headers: dict[str, str] = {}
        if patient is not None:
            headers[PATIENT_NIN_HEADER] = patient.value
        if xua.access_basis is not None:
            headers[ACCESS_BASIS_HEADER] = xua.access_basis.value
        caller = CallerContext(
            correlation_id=correlation_id,
            principal=xua.principal,
            headers=headers,
            token_jti=xua.assertion_id,
            asserted_patient=patient,
        )
        if admit is not None:
            admit(caller)
        return xua, caller

    # --- ITI-38 ----------------------------------------------------------------------------

    async def query(
        self, envelope: SoapEnvelope, *, correlation_id: str, admit: Admit | None = None
    ) -> bytes:
        """Answer a Cross Gateway Query: the AdhocQueryResponse element, serialised."""
        try:
            stored = parse_adhoc_query(envelope.body)
        except XcaParseError as exc:
            if exc.code == RegistryErrorCode.REGISTRY_ERROR and exc.problem is ParseProblem.SHAPE:
                raise  # not an AdhocQueryRequest at all: a SOAP Fault
            return self._failed_query(exc.code, exc.message)
        try:
            _, caller = await self._caller(envelope, correlation_id, "search", admit)
        except SamlRefused as exc:
            return self._failed_query(RegistryErrorCode.REGISTRY_ERROR, exc.message)
        if stored.home_community_id is not None and stored.home_community_id != (
            self.home_community_id
        ):
            return self._failed_query(
                RegistryErrorCode.UNKNOWN_COMMUNITY, "the query names another homeCommunityId"
            )
        try:
            shown, associations = await self._run(caller, stored)
        except _Refusal as exc:
            return self._failed_query(exc.code, exc.context)
        if stored.return_type is ReturnType.OBJECT_REF:
            ids = (_extrinsic(found, view).id for found, view in shown)
            response = QueryResponse(
                status=ResponseStatus.SUCCESS.value,
                object_refs=(*ids, *(a.id for a in associations)),
                home=self.home_community_id.urn,
            )
            return query_response_xml(response)
        # An entry shown in full is written straight from the DocumentEntry (the fast path,
        # the same text as through its ExtrinsicEntry); a masked one goes through the wire
        # layer, where the obfuscation works.
        written = [
            extrinsic_object_xml(_extrinsic(found, view)) if view.masked else self._write(found)
            for found, view in shown
        ]
        response = QueryResponse(
            status=ResponseStatus.SUCCESS.value, associations=tuple(associations)
        )
        return query_response_xml(response, written=written)

    def _write(self, found: FoundEntry) -> str:
        """The ExtrinsicObject of an entry shown in full, from the cache of written ones.

        What is written depends on the row alone: its metadata never changes after
        registration, only its status does (RPLC, entered-in-error), so the key is the row
        (seq, entryUUID, uniqueId) and its status. Caller-dependent text (masking) is never
        kept. Least recently used entries go first; `written_entries` = 0 keeps none.
        """
        if not self.written_entries:
            return document_entry_xml(found.entry)
        key = (found.seq, found.entry_uuid, found.unique_id.value, found.status)
        text = self._written.get(key)
        if text is not None:
            self._written.move_to_end(key)
            return text
        text = document_entry_xml(found.entry)
        self._written[key] = text
        if len(self._written) > self.written_entries:
            self._written.popitem(last=False)
        return text

    def _failed_query(self, code: str, context: str) -> bytes:
        response = QueryResponse(
            status=ResponseStatus.FAILURE.value, errors=(self._error(code, context),)
        )
        return query_response_xml(response)

    async def _run(
        self, caller: CallerContext, stored: StoredQuery
    ) -> tuple[list[tuple[FoundEntry, EntryView]], list[EbAssociation]]:
        """The entries shown (each with its view) or the associations answered; audited."""
        query = stored.query
        patient = caller.asserted_patient
        if isinstance(query, GetAssociationsQuery):
            if patient is None:
                raise _Refusal(
                    RegistryErrorCode.REGISTRY_ERROR, "the assertion names no patient (resource-id)"
                )
            return [], await self._associations(caller, query, patient)
        if isinstance(query, FindDocumentsQuery):
            try:
                asked = query.patient.nin
            except InvalidIdentifier:
                raise _Refusal(
                    RegistryErrorCode.REGISTRY_ERROR,
                    "$XDSDocumentEntryPatientId is not a national identity",
                ) from None
            if patient is None or patient != asked:
                await self.recorder.denied(
                    caller, "search", "patient-mismatch", patient=asked.value
                )
                raise _Refusal(
                    RegistryErrorCode.REGISTRY_ERROR,
                    "the query's patient is not the assertion's resource-id patient (ATT-4)",
                )
            if _STABLE not in query.entry_types:
                return [], []  # only stable entries are kept here; on-demand ones do not exist
            params = self._find_params(query, asked)
        else:
            if patient is None:
                raise _Refusal(
                    RegistryErrorCode.REGISTRY_ERROR, "the assertion names no patient (resource-id)"
                )
            params = self._get_params(query, patient)
        doc_query = self._document_query(params)
        shown = await self._shown(caller, doc_query)
        await self.recorder.searched(caller, doc_query, [v for _, v in shown])
        return shown, []

    def _document_query(self, params: list[tuple[str, str]]) -> DocumentQuery:
        """The MHD query of the stored query's parameters, read in pages of `page_size`.

        Every page is read (`_shown`) before answering, so the page is as large as allowed:
        the MHD default of 20 made a patient's 50 entries three round trips instead of one.
        """
        try:
            doc_query, _ = parse_find_query(
                [*params, ("_count", str(self.page_size))], max_count=self.page_size
            )
        except (MhdError, DomainError) as exc:
            raise _Refusal(_REGISTRY, str(exc)[:200]) from None
        return doc_query

    async def _associations(
        self, caller: CallerContext, query: GetAssociationsQuery, patient: NationalIdentityNumber
    ) -> list[EbAssociation]:
        """The RPLC associations of the asserted patient's entries that touch `query.uuids`.

        Only entries shown in full take part: a masked entry's id is not revealed through an
        association. References: ITI TF-2 3.18.4.1.2.3.7.6; ITI TF-3 4.2.2.2.3 (RPLC).
        """
        doc_query = self._document_query(
            [
                ("patient.identifier", f"urn:oid:{patient.system}|{patient.value}"),
                ("status", "current,superseded"),
            ]
        )
        shown = [(f, v) for f, v in await self._shown(caller, doc_query) if not v.masked]
        by_unique = {f.entry.unique_id: (f, v) for f, v in shown}
        wanted = set(query.uuids)
        out: list[EbAssociation] = []
        returned: dict[str, EntryView] = {}
        for found, view in shown:
            replaced = found.entry.replaces
            if replaced is None or replaced not in by_unique:
                continue
            target, target_view = by_unique[replaced]
            source_id, target_id = f"urn:uuid:{found.entry_uuid}", f"urn:uuid:{target.entry_uuid}"
            if source_id not in wanted and target_id not in wanted:
                continue
            out.append(
                EbAssociation(
                    id=f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, source_id + target_id)}",
                    association_type=RPLC,
                    source=source_id,
                    target=target_id,
                )
            )
            returned[source_id], returned[target_id] = view, target_view
        await self.recorder.searched(caller, doc_query, list(returned.values()))
        return out

    @staticmethod
    def _find_params(
        query: FindDocumentsQuery, patient: NationalIdentityNumber
    ) -> list[tuple[str, str]]:
        """The FindDocuments query in the MHD path's own terms (`xca.query.mhd_find_params`)."""
        try:
            return mhd_find_params(query, patient)
        except XcaParseError as exc:
            raise _Refusal(exc.code, exc.message) from None

    @staticmethod
    def _get_params(
        query: GetDocumentsQuery, patient: NationalIdentityNumber
    ) -> list[tuple[str, str]]:
        """GetDocuments as an identifier search of the asserted patient's entries."""
        ids = list(query.entry_uuids)
        for unique in query.unique_ids:
            try:
                ids.append(DocumentUniqueId(unique).urn)
            except InvalidIdentifier:
                continue  # not a uniqueId here (e.g. a UUID): it matches nothing
        if not ids:
            ids.append(f"urn:uuid:{uuid.UUID(int=0)}")  # matches nothing, as asked
        return [
            ("patient.identifier", f"urn:oid:{patient.system}|{patient.value}"),
            ("status", "current,superseded"),
            ("identifier", ",".join(f"{RFC3986}|{i}" for i in ids)),
        ]

    async def _shown(
        self, caller: CallerContext, query: DocumentQuery
    ) -> list[tuple[FoundEntry, EntryView]]:
        """Decide, then read every page: each entry the policy shows, with its view.

        A refusal is audited here; the caller audits what it answers.
        """
        try:
            grant = await self.guard.authorize_search(caller, query)
        except (AccessRefused, TrustError, MhdError) as exc:
            reason = _refusal_reason(exc)
            await self.recorder.denied(caller, "search", reason, patient=query.patient_id.value)
            raise _Refusal(
                RegistryErrorCode.REGISTRY_ERROR, f"access denied by policy: {reason}"
            ) from None
        if grant.empty:
            return []
        shown: list[tuple[FoundEntry, EntryView]] = []
        cursor = None
        while True:
            page = await self.store.find(grant.query, cursor)
            for found in page.entries:
                view = grant.view(found)
                if view is not None:
                    shown.append((found, view))
            if len(shown) > self.max_results:
                raise _Refusal(
                    RegistryErrorCode.TOO_MANY_RESULTS,
                    f"more than {self.max_results} entries match; narrow the query",
                )
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return shown

    # --- ITI-39 ----------------------------------------------------------------------------

    async def retrieve(
        self, envelope: SoapEnvelope, *, correlation_id: str, admit: Admit | None = None
    ) -> RetrieveAnswer:
        """Answer a Cross Gateway Retrieve: each document found, opened for streaming."""
        try:
            requests = parse_retrieve_request(envelope.body, require_community=True)
        except XcaParseError as exc:
            if exc.code == RegistryErrorCode.REGISTRY_ERROR and exc.problem is ParseProblem.SHAPE:
                raise
            return self._failed_retrieve(exc.code, exc.message)
        try:
            _, caller = await self._caller(envelope, correlation_id, "retrieve", admit)
        except SamlRefused as exc:
            return self._failed_retrieve(RegistryErrorCode.REGISTRY_ERROR, exc.message)
        documents: list[RetrievedDocument] = []
        parts: list[MtomPart] = []
        errors: list[EbRegistryError] = []
        for request in requests:
            got = await self._one(caller, request)
            if isinstance(got, EbRegistryError):
                errors.append(got)
                continue
            doc, part = got
            documents.append(doc)
            parts.append(part)
        if not errors:
            status = ResponseStatus.SUCCESS
        else:
            status = ResponseStatus.PARTIAL_SUCCESS if documents else ResponseStatus.FAILURE
        return RetrieveAnswer(render_retrieve_response(status, documents, errors), tuple(parts))

    def _failed_retrieve(self, code: str, context: str) -> RetrieveAnswer:
        body = render_retrieve_response(ResponseStatus.FAILURE, (), (self._error(code, context),))
        return RetrieveAnswer(body, ())

    async def _one(
        self, caller: CallerContext, request: DocumentRequest
    ) -> tuple[RetrievedDocument, MtomPart] | EbRegistryError:
        sent = request.document_unique_id
        if request.home_community_id not in (None, self.home_community_id):
            return self._error(RegistryErrorCode.UNKNOWN_COMMUNITY, f"{sent}: another community")
        if request.repository_unique_id != self.repository_unique_id:
            return self._error(
                RegistryErrorCode.UNKNOWN_REPOSITORY, f"{sent}: repository not served here"
            )
        try:
            unique: DocumentUniqueId | None = DocumentUniqueId(sent)
        except InvalidIdentifier:
            unique = None  # e.g. a UUID, as the network's samples send: not a uniqueId here
        entry = await self.store.get(unique) if unique is not None else None
        try:
            grant = await self.guard.authorize_retrieve(caller, entry)
        except (AccessRefused, TrustError, MhdError) as exc:
            reason = _refusal_reason(exc)
            await self.recorder.denied(
                caller,
                "retrieve",
                reason,
                patient=entry.patient_id.value if entry is not None else None,
                document=sent,
            )
            if isinstance(exc, DocumentNotShown):
                return self._error(DOCUMENT_UNIQUE_ID_ERROR, f"{sent}: no such document")
            return self._error(RegistryErrorCode.REGISTRY_ERROR, f"{sent}: access denied: {reason}")
        if entry is None or entry.status is DocumentStatus.ENTERED_IN_ERROR:
            return self._error(DOCUMENT_UNIQUE_ID_ERROR, f"{sent}: no such document")
        try:
            chunks = await self.content.open(entry.hash_sha256, expected_size=entry.size)
        except (ContentMissing, ContentCorrupted) as exc:
            log.error("xca.content_unavailable", error=type(exc).__name__)
            return self._error(RegistryErrorCode.REPOSITORY_ERROR, f"{sent}: bytes unavailable")
        await self.recorder.retrieved(caller, entry, grant)
        content_id = f"doc{uuid.uuid4().hex}@onerecord"
        return (
            RetrievedDocument(request, entry.mime_type, content_id),
            MtomPart(content_id, entry.mime_type, chunks),
        )


def _refusal_reason(exc: AccessRefused | TrustError | MhdError) -> str:
    """The audited reason of a refused query or retrieve: the policy's or the trust check's."""
    if isinstance(exc, AccessRefused):
        return exc.reason
    if isinstance(exc, TrustError):
        return exc.error
    return "invalid-request"
