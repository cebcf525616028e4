"""The hub as the national XDS.b registry: ITI-18 Registry Stored Query, ITI-43 Retrieve.

A clinical system that speaks XDS.b asks the hub as it would ask the national registry; the
hub answers from every region through its own fan-out (`HubService.gather`: MHD regions over
FHIR, `xca` regions over ITI-38/39) and retrieves each document from the region that owns it
(`HubService.retrieve`). The consolidated answer is the national gateway's: every region's
entries merged, one RegistryError per region that failed, located `urn:oid:<homeCommunityId>`,
and the status Success, PartialSuccess (some region failed, another answered) or Failure
(nothing could be answered).

Trust (docs/xca.md "Trust at the hub"): the caller's SAML assertion is verified here with the
hub's trusted issuers and audiences; a FindDocuments of another patient than `resource-id` is
refused here and audited. The assertion is then relayed unchanged to every region (in
`wsse:Security` over XCA, in `onerecord-xua-assertion` over FHIR), so each region verifies
the caller's issuer, applies its own policy and binds the patient itself.

Errors: the caller's malformed message (`XcaParseError` of the envelope or a body that is not
the operation's element) is raised to the route, which answers a SOAP Fault env:Sender (400);
everything else is a RegistryError in a 200 answer. The hub's own refusals (the assertion,
the patient, a query it cannot serve) carry no location: they concern no community.

References: IHE ITI TF-2 3.18.4.1.2.3.7 (stored queries), 3.18.4.1.3 (response), 3.43.4.1.3
(retrieve), 3.38.4.1.3 (an initiating gateway's consolidated answer: PartialSuccess,
RegistryError location = homeCommunityId); ITI TF-3 4.2.4.1 (error codes); TRUST-FRAMEWORK
§2.4 (XUA), §4.5 (obfuscation, D1); the national answer in ../shared/xca-vectors/responses.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import structlog

from onerecord.audit import AuditAction, AuditSink, audit_record
from onerecord.domain import (
    CONFIDENTIALITY_VOLVEN,
    DocumentUniqueId,
    DomainError,
    HomeCommunityId,
    InvalidIdentifier,
    NationalIdentityNumber,
)
from onerecord.hub.errors import HubError, UnknownCommunity
from onerecord.hub.fanout import RequestBudget
from onerecord.hub.merge import Placed
from onerecord.hub.results import RegionResult, RegionStatus
from onerecord.hub.security import HubSecurity
from onerecord.hub.service import Caller, Gathered, HubAnswer, HubService, RegionFailure
from onerecord.hub.xca_initiating import XcaCaller
from onerecord.mhd import MhdError, RetrieveKey
from onerecord.mhd.docref import entry_from_document_reference
from onerecord.trust.access_token import Principal
from onerecord.trust.patient_binding import PATIENT_NIN_HEADER
from onerecord.xca.ebrim import (
    CLASS_CODE_SCHEME,
    CONFIDENTIALITY_SCHEME,
    DOCUMENT_ENTRY_TYPE,
    MASK,
    PATIENT_ID_SCHEME,
    RPLC,
    TYPE_CODE_SCHEME,
    UNIQUE_ID_SCHEME,
    EbAssociation,
    EbClassification,
    EbExternalIdentifier,
    EbRegistryError,
    EbSlot,
    ExtrinsicEntry,
    QueryResponse,
    ebrim_from_entry,
    obfuscate,
    render_query_response,
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
from onerecord.xca.relay import MAX_HEADER_CHARS, encode_relayed
from onerecord.xca.response import (
    ERROR_SEVERITY,
    RegistryErrorCode,
    ResponseStatus,
    community_error,
    consolidated_status,
)
from onerecord.xca.retrieve import (
    DocumentRequest,
    RetrievedDocument,
    parse_retrieve_request,
    render_retrieve_response,
)
from onerecord.xca.saml import SamlAssertion, XuaSettings, verify_assertion
from onerecord.xca.soap import SoapEnvelope
from onerecord.xca.xml import RIM, qname
from onerecord.xca.xua import XuaCaller, caller_from_assertion

__all__ = [
    "ITI18_ACTION",
    "ITI18_RESPONSE_ACTION",
    "ITI43_ACTION",
    "ITI43_RESPONSE_ACTION",
    "Admit",
    "XdsAnswer",
    "XdsRegistry",
    "masked_entry",
    "region_error",
    "region_warning",
]

log = structlog.get_logger("onerecord.hub.xds")

ITI18_ACTION = "urn:ihe:iti:2007:RegistryStoredQuery"
ITI18_RESPONSE_ACTION = "urn:ihe:iti:2007:RegistryStoredQueryResponse"
ITI43_ACTION = "urn:ihe:iti:2007:RetrieveDocumentSet"
ITI43_RESPONSE_ACTION = "urn:ihe:iti:2007:RetrieveDocumentSetResponse"
DOCUMENT_UNIQUE_ID_ERROR = "XDSDocumentUniqueIdError"
_STABLE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
_ALL_STATUSES = ("status", "current,superseded")
_MAX_CONTEXT = 200

Admit = Callable[[Principal], None]
"""Takes the caller's per-caller permit or raises CallerThrottled (the route's limiter)."""


@dataclass(frozen=True, slots=True)
class XdsAnswer:
    """An ITI-18 or ITI-43 answer: the response element and, for ITI-43, the MTOM parts."""

    body: Any
    parts: tuple[MtomPart, ...] = ()


class _Refusal(Exception):
    """A request the hub answers with one RegistryError of its own (no community's)."""

    def __init__(self, code: str, context: str, *, status: int = 403, reason: str) -> None:
        super().__init__(context)
        self.code, self.context, self.status, self.reason = code, context, status, reason


@dataclass(frozen=True, slots=True)
class _Verified:
    """The verified caller: the hub's Caller for the fan-out, the principal and the patient."""

    caller: Caller
    xua: XuaCaller
    patient: NationalIdentityNumber | None


def region_error(result: RegionResult) -> EbRegistryError | None:
    """The RegistryError of a region that failed (None when it answered), located by its hcid.

    unavailable, timeout → XDSUnavailableCommunity; denied → XDSRegistryError "access denied"
    with the region's reason; anything else → XDSRegistryError naming the region's status.
    References: ITI TF-2 3.38.4.1.3; the national answer's errors (../shared/xca-vectors).
    """
    status, hcid, name = result.status, result.region.hcid, result.region.name
    if status is RegionStatus.OK:
        return None
    if status in (RegionStatus.UNAVAILABLE, RegionStatus.TIMEOUT):
        what = "did not answer in time" if status is RegionStatus.TIMEOUT else "is unavailable"
        return community_error(
            RegistryErrorCode.UNAVAILABLE_COMMUNITY, hcid, f"{name} {what} ({status.value})"
        )
    if status is RegionStatus.DENIED:
        because = f": {result.reason}" if result.reason else ""
        return community_error(
            RegistryErrorCode.REGISTRY_ERROR, hcid, f"access denied by {name}{because}"
        )
    return community_error(
        RegistryErrorCode.REGISTRY_ERROR, hcid, f"{name} failed ({status.value})"[:_MAX_CONTEXT]
    )


def region_warning(result: RegionResult, issue: Mapping[str, Any]) -> EbRegistryError:
    """A notice a region that answered gave with its answer (e.g. «empty by rule» for a reserved
    patient, or an XCA region's own PartialSuccess errors), as a Warning located at it."""
    details = issue.get("details")
    text = issue.get("diagnostics")
    if not isinstance(text, str) or not text:
        text = details.get("text") if isinstance(details, Mapping) else None
    context = text if isinstance(text, str) and text else str(issue.get("code") or "warning")
    code, _, rest = context.partition(":")
    if code.startswith("XDS") and code.isalnum() and rest:
        return community_error(code, result.region.hcid, rest.strip()[:_MAX_CONTEXT], warning=True)
    return community_error(
        RegistryErrorCode.REGISTRY_ERROR, result.region.hcid, context[:_MAX_CONTEXT], warning=True
    )


def _dtm(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def masked_entry(placed: Placed, patient: NationalIdentityNumber) -> ExtrinsicEntry:
    """The obfuscated entry of a blocked document whose region showed the MHD placeholder.

    Built from what the placeholder keeps (status, date, patient, community, NORS) and masked
    by `obfuscate`, the same function the regions use; the placeholder keeps no format,
    facility, author or repository, so neither does this entry.
    """
    resource = placed.resource
    cx = f"{patient.value}^^^&{patient.system}&ISO"
    moment = _dtm(resource.get("date"))
    slots = [EbSlot("sourcePatientId", (cx,))]
    if moment is not None:
        slots.insert(0, EbSlot("creationTime", (moment,)))
    masked_code = (EbSlot("codingScheme", ("2.16.578.1.12.4.1.1.9602",)),)
    nors = (EbSlot("codingScheme", (CONFIDENTIALITY_VOLVEN.removeprefix("urn:oid:"),)),)
    entry = ExtrinsicEntry(
        id=f"urn:uuid:{uuid.uuid4()}",
        lid=None,
        home=placed.home_community_id,
        status=(
            "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
            if resource.get("status") == "superseded"
            else "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
        ),
        mime_type="application/octet-stream",
        object_type=DOCUMENT_ENTRY_TYPE,
        title=None,
        slots=tuple(slots),
        classifications=(
            EbClassification(f"urn:uuid:{uuid.uuid4()}", CLASS_CODE_SCHEME, MASK, masked_code),
            EbClassification(f"urn:uuid:{uuid.uuid4()}", TYPE_CODE_SCHEME, MASK, masked_code),
            EbClassification(
                f"urn:uuid:{uuid.uuid4()}", CONFIDENTIALITY_SCHEME, "NORS", nors, "NORS"
            ),
        ),
        external_identifiers=(
            EbExternalIdentifier(
                f"urn:uuid:{uuid.uuid4()}", UNIQUE_ID_SCHEME, "-1", "XDSDocumentEntry.uniqueId"
            ),
            EbExternalIdentifier(
                f"urn:uuid:{uuid.uuid4()}", PATIENT_ID_SCHEME, cx, "XDSDocumentEntry.patientId"
            ),
        ),
    )
    return obfuscate(entry)


def _now() -> datetime:
    return datetime.now(UTC)


class XdsRegistry:
    """ITI-18 and ITI-43 at the hub, over the hub's fan-out, retrieve routing and audit."""

    def __init__(
        self,
        *,
        hub: HubService,
        security: HubSecurity | None,
        xua: XuaSettings | None,
        audit: AuditSink | None,
        hub_id: str,
        home_community_id: HomeCommunityId,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.home_community_id = home_community_id
        """The hub's own community: where the errors that concern no region are located."""
        self.hub = hub
        self.security = security
        self.xua = xua
        self.audit = audit
        self.hub_id = hub_id
        self.clock = clock

    def _own_error(self, code: str, context: str) -> EbRegistryError:
        return community_error(code, self.home_community_id, context[:_MAX_CONTEXT])

    def _failed_query(self, code: str, context: str) -> Any:
        failed = QueryResponse(
            status=ResponseStatus.FAILURE.value, errors=(self._own_error(code, context),)
        )
        return render_query_response(failed)

    def _failed_retrieve(self, code: str, context: str) -> XdsAnswer:
        errors = (self._own_error(code, context),)
        return XdsAnswer(render_retrieve_response(ResponseStatus.FAILURE, (), errors))

    # --- the caller ------------------------------------------------------------------------

    async def _record(
        self,
        *,
        action: AuditAction,
        status: int,
        correlation_id: str,
        principal: Any,
        patient: str | None,
        regions: Sequence[tuple[str, str]] = (),
        query: str | None = None,
        returned: int | None = None,
        documents: tuple[str, ...] = (),
        reason: str | None = None,
    ) -> None:
        if self.audit is None:
            return
        await self.audit.append(
            [
                audit_record(
                    action=action,
                    status=status,
                    source_id=self.hub_id,
                    principal=principal,
                    correlation_id=correlation_id,
                    patient_id=patient,
                    regions=regions,
                    query=query,
                    returned_count=returned,
                    document_ids=documents,
                    reason=reason,
                )
            ]
        )

    def _verify(self, envelope: SoapEnvelope) -> tuple[SamlAssertion, XuaCaller]:
        if self.xua is None:
            raise SamlRefused(
                "the hub trusts no SAML issuer for XDS.b (not configured)",
                problem=SamlProblem.ISSUER,
            )
        assertion = verify_assertion(envelope.assertion, self.xua, now=self.clock())
        return assertion, caller_from_assertion(assertion)

    def _caller(
        self, envelope: SoapEnvelope, assertion: SamlAssertion, xua: XuaCaller, cid: str
    ) -> _Verified:
        """The hub's Caller of a verified assertion: relayed to every region as it came."""
        patient: NationalIdentityNumber | None = None
        if xua.patient is not None:
            try:
                patient = xua.patient.nin
            except InvalidIdentifier:
                raise SamlRefused(
                    "resource-id is not a national identity number", problem=SamlProblem.PATIENT
                ) from None
        if self.security is None:
            raise SamlRefused(
                "the hub has no key to relay the assertion with", problem=SamlProblem.ISSUER
            )
        relayed = encode_relayed(envelope.assertion)
        if len(relayed) > MAX_HEADER_CHARS:  # a region would refuse it: say so here, once
            raise SamlRefused("the assertion is too large to relay", problem=SamlProblem.SHAPE)
        auth = self.security.relayed_auth(
            subject=xua.principal.nin.value,
            security_level=xua.principal.claims.security_level or "4",
            assertion_id=assertion.id,
            saml_issuer=assertion.issuer,
            relayed=relayed,
            correlation_id=cid,
            patient_nin=patient.value if patient is not None else None,
        )
        forwarded = {PATIENT_NIN_HEADER: patient.value} if patient is not None else {}
        xca = XcaCaller(
            xua.principal, cid, access_basis=xua.access_basis, relayed=envelope.assertion
        )
        identity = f"saml|{assertion.issuer}|{assertion.subject}|{assertion.id}"
        return _Verified(Caller(cid, identity, forwarded, auth, xca), xua, patient)

    async def _admit(
        self,
        envelope: SoapEnvelope,
        cid: str,
        action: AuditAction,
        query: str,
        admit: Admit | None,
    ) -> _Verified:
        """Verify the assertion; a refusal is audited (denied, `saml-<problem>`) and raised.

        `admit` then takes the caller's per-caller permit or raises CallerThrottled (429, not
        audited: nothing was read), as the MHD routes do after authentication.
        """
        try:
            assertion, xua = self._verify(envelope)
            verified = self._caller(envelope, assertion, xua, cid)
        except SamlRefused as exc:
            log.info("hub.xds.saml_refused", problem=exc.problem.value)
            await self._record(
                action=action,
                status=401,
                correlation_id=cid,
                principal=None,
                patient=None,
                query=query,
                reason=f"saml-{exc.problem.value}",
            )
            raise
        if admit is not None:
            admit(verified.xua.principal)
        return verified

    # --- ITI-18 ----------------------------------------------------------------------------

    async def query(
        self,
        envelope: SoapEnvelope,
        *,
        correlation_id: str,
        budget: RequestBudget | None = None,
        admit: Admit | None = None,
    ) -> Any:
        """Answer a Registry Stored Query with an AdhocQueryResponse element."""
        try:
            stored = parse_adhoc_query(envelope.body)
        except XcaParseError as exc:
            if exc.code == RegistryErrorCode.REGISTRY_ERROR and exc.problem is ParseProblem.SHAPE:
                raise  # not an AdhocQueryRequest at all: a SOAP Fault
            return self._failed_query(exc.code, exc.message)
        label = f"ITI-18 {type(stored.query).__name__.removesuffix('Query')}"
        try:
            verified = await self._admit(envelope, correlation_id, AuditAction.SEARCH, label, admit)
        except SamlRefused as exc:
            return self._failed_query(RegistryErrorCode.REGISTRY_ERROR, exc.message)
        principal = verified.xua.principal
        try:
            params, patient = self._params(stored, verified)
            home = self._home(stored)
            checked = self.hub.check([*params, ("_count", "1")])
        except _Refusal as exc:
            await self._record(
                action=AuditAction.SEARCH,
                status=exc.status,
                correlation_id=correlation_id,
                principal=principal,
                patient=_patient_value(stored, verified),
                query=label,
                reason=exc.reason,
            )
            return self._failed_query(exc.code, exc.context)
        except (MhdError, DomainError) as exc:
            await self._record(
                action=AuditAction.SEARCH,
                status=400,
                correlation_id=correlation_id,
                principal=principal,
                patient=_patient_value(stored, verified),
                query=label,
                reason="invalid-request",
            )
            return self._failed_query(RegistryErrorCode.REGISTRY_ERROR, str(exc)[:_MAX_CONTEXT])
        query_text = f"{label} {urlencode(params)}"
        try:
            gathered = await self.hub.gather(
                verified.caller, checked, budget=budget, home_community_id=home
            )
        except Exception:
            await self._record(
                action=AuditAction.SEARCH,
                status=500,
                correlation_id=correlation_id,
                principal=principal,
                patient=patient.value,
                query=query_text,
            )
            raise
        response, returned = self._answer(stored, gathered, patient)
        await self._record(
            action=AuditAction.SEARCH,
            status=_audit_status(response.status, gathered.results),
            correlation_id=correlation_id,
            principal=principal,
            patient=patient.value,
            regions=gathered.outcomes,
            query=query_text,
            returned=returned,
        )
        return _render(response, stored.return_type)

    def _home(self, stored: StoredQuery) -> str | None:
        """The community a query names (`AdhocQuery/@home`), which must be in the directory."""
        if stored.home_community_id is None:
            return None
        hcid = stored.home_community_id.urn
        if self.hub.directory.by_hcid(hcid) is None:
            raise _Refusal(
                RegistryErrorCode.UNKNOWN_COMMUNITY,
                f"{hcid} is not a community of this network",
                status=400,
                reason="unknown-community",
            )
        return hcid

    def _params(
        self, stored: StoredQuery, verified: _Verified
    ) -> tuple[list[tuple[str, str]], NationalIdentityNumber]:
        """The MHD find the stored query needs, and its patient (the assertion's, ATT-4)."""
        query = stored.query
        asserted = verified.patient
        if isinstance(query, FindDocumentsQuery):
            try:
                asked = query.patient.nin
            except InvalidIdentifier:
                raise _Refusal(
                    RegistryErrorCode.REGISTRY_ERROR,
                    "$XDSDocumentEntryPatientId is not a national identity number",
                    status=400,
                    reason="invalid-request",
                ) from None
            if asserted is None or asserted != asked:
                raise _Refusal(
                    RegistryErrorCode.REGISTRY_ERROR,
                    "the query's patient is not the assertion's resource-id patient (ATT-4)",
                    reason="patient-mismatch",
                )
            try:
                return mhd_find_params(query, asked), asked
            except XcaParseError as exc:
                raise _Refusal(
                    exc.code, exc.message, status=400, reason="invalid-request"
                ) from None
        if asserted is None:
            raise _Refusal(
                RegistryErrorCode.REGISTRY_ERROR,
                "the assertion names no patient (resource-id)",
                reason="patient-missing",
            )
        patient = ("patient.identifier", f"urn:oid:{asserted.system}|{asserted.value}")
        return [patient, _ALL_STATUSES], asserted

    def _answer(
        self, stored: StoredQuery, gathered: Gathered, patient: NationalIdentityNumber
    ) -> tuple[QueryResponse, int]:
        """The consolidated AdhocQueryResponse and how many objects it returns."""
        errors = [e for e in map(region_error, gathered.results) if e is not None]
        for result in gathered.results:
            if result.ok and result.truncated:
                errors.append(
                    community_error(
                        RegistryErrorCode.TOO_MANY_RESULTS,
                        result.region.hcid,
                        f"{result.region.name} holds more matching entries than the hub collects",
                        warning=True,
                    )
                )
            if result.ok:
                errors.extend(region_warning(result, issue) for issue in result.warnings)
        answered = sum(1 for r in gathered.results if r.ok)
        status = consolidated_status(answered=answered, errors=errors)
        if not gathered.results:
            status = ResponseStatus.FAILURE
            errors.append(
                self._own_error(
                    RegistryErrorCode.UNAVAILABLE_COMMUNITY, "no community could be asked"
                )
            )
        query = stored.query
        entries: list[ExtrinsicEntry] = []
        associations: list[EbAssociation] = []
        if status is not ResponseStatus.FAILURE:
            if isinstance(query, FindDocumentsQuery) and _STABLE not in query.entry_types:
                pass  # only stable entries exist here
            else:
                shown = self._entries(gathered.merged.documents, patient)
                if isinstance(query, GetDocumentsQuery):
                    entries = _selected(shown, query)
                elif isinstance(query, GetAssociationsQuery):
                    associations = _associations(shown, query)
                else:
                    entries = [e for e, _ in shown]
        response = QueryResponse(
            status=status.value,
            entries=tuple(entries),
            errors=tuple(errors),
            associations=tuple(associations),
        )
        return response, len(entries) + len(associations)

    @staticmethod
    def _entries(
        documents: Sequence[Placed], patient: NationalIdentityNumber
    ) -> list[tuple[ExtrinsicEntry, Any]]:
        """Each merged document as ebRIM, with its DocumentEntry (None for a blocked one)."""
        out: list[tuple[ExtrinsicEntry, Any]] = []
        for placed in documents:
            if placed.resource.get("masterIdentifier") is None:
                out.append((masked_entry(placed, patient), None))
                continue
            try:
                entry = entry_from_document_reference(
                    placed.resource, binary=None, check_codes=False
                )
            except (MhdError, DomainError):
                log.warning("hub.xds.entry_unmappable", hcid=placed.home_community_id)
                continue
            out.append((ebrim_from_entry(entry), entry))
        return out

    # --- ITI-43 ----------------------------------------------------------------------------

    async def retrieve(
        self, envelope: SoapEnvelope, *, correlation_id: str, admit: Admit | None = None
    ) -> XdsAnswer:
        """Answer a Retrieve Document Set: each document routed to its region, streamed."""
        try:
            requests = parse_retrieve_request(envelope.body, require_community=False)
        except XcaParseError as exc:
            if exc.code == RegistryErrorCode.REGISTRY_ERROR and exc.problem is ParseProblem.SHAPE:
                raise
            return self._failed_retrieve(exc.code, exc.message)
        documents = tuple(r.document_unique_id[:128] for r in requests)
        try:
            verified = await self._admit(
                envelope, correlation_id, AuditAction.RETRIEVE, "ITI-43", admit
            )
        except SamlRefused as exc:
            return self._failed_retrieve(RegistryErrorCode.REGISTRY_ERROR, exc.message)
        got = await asyncio.gather(*(self._one(verified.caller, r) for r in requests))
        found: list[RetrievedDocument] = []
        parts: list[MtomPart] = []
        errors: list[EbRegistryError] = []
        regions: dict[str, str] = {}
        for outcome, region_status, hcid in got:
            if hcid is not None:
                regions.setdefault(hcid, region_status)
                if region_status != "ok":
                    regions[hcid] = region_status
            if isinstance(outcome, EbRegistryError):
                errors.append(outcome)
            else:
                found.append(outcome[0])
                parts.append(outcome[1])
        if not errors:
            status = ResponseStatus.SUCCESS
        else:
            status = ResponseStatus.PARTIAL_SUCCESS if found else ResponseStatus.FAILURE
        await self._record(
            action=AuditAction.RETRIEVE,
            status=_retrieve_status(found, errors),
            correlation_id=correlation_id,
            principal=verified.xua.principal,
            patient=verified.patient.value if verified.patient else None,
            regions=tuple(regions.items()),
            query="ITI-43",
            returned=len(found),
            documents=documents,
        )
        return XdsAnswer(render_retrieve_response(status, found, errors), tuple(parts))

    async def _one(
        self, caller: Caller, request: DocumentRequest
    ) -> tuple[tuple[RetrievedDocument, MtomPart] | EbRegistryError, str, str | None]:
        """One document from its region: (the document or its error, region status, hcid)."""
        sent = request.document_unique_id[:128]
        home = request.home_community_id
        if home is None:
            error = self._own_error(
                RegistryErrorCode.UNKNOWN_COMMUNITY,
                f"{sent}: the national gateway needs HomeCommunityId to find the repository",
            )
            return error, "", None
        hcid = home.urn
        try:
            unique = DocumentUniqueId(request.document_unique_id)
        except InvalidIdentifier:
            # e.g. a UUID, as the network's samples send: not a uniqueId of this network
            return (
                community_error(DOCUMENT_UNIQUE_ID_ERROR, hcid, f"{sent}: no such document"),
                "ok",
                None,
            )
        token = RetrieveKey(home, request.repository_unique_id, unique).token()
        try:
            got = await self.hub.retrieve(caller, token, None)
        except UnknownCommunity:
            return (
                community_error(
                    RegistryErrorCode.UNKNOWN_COMMUNITY, hcid, f"{sent}: not a community here"
                ),
                "",
                None,
            )
        except RegionFailure as exc:
            state = "timeout" if exc.code == "timeout" else "unavailable"
            code = (
                RegistryErrorCode.UNAVAILABLE_COMMUNITY
                if exc.code in ("timeout", "transient")
                else RegistryErrorCode.REGISTRY_ERROR
            )
            return community_error(code, hcid, f"{sent}: {exc}"[:_MAX_CONTEXT]), state, hcid
        except (HubError, MhdError, DomainError) as exc:
            return (
                community_error(
                    RegistryErrorCode.REGISTRY_ERROR, hcid, f"{sent}: {exc}"[:_MAX_CONTEXT]
                ),
                "error",
                hcid,
            )
        if isinstance(got, HubAnswer):
            return _refused(got, hcid, sent), "ok" if got.status == 404 else "denied", hcid
        mime = got.headers.get("content-type", "application/octet-stream").split(";")[0].strip()
        content_id = f"doc{uuid.uuid4().hex}@onerecord"
        return (
            (
                RetrievedDocument(request, mime, content_id),
                MtomPart(content_id, mime, got.chunks),
            ),
            "ok",
            hcid,
        )


def _refused(answer: HubAnswer, hcid: str, sent: str) -> EbRegistryError:
    """The RegistryError of a region's refusal of one document (its HTTP status over MHD)."""
    if answer.status in (404, 410):
        return community_error(DOCUMENT_UNIQUE_ID_ERROR, hcid, f"{sent}: no such document")
    if answer.status in (401, 403):
        return community_error(
            RegistryErrorCode.REGISTRY_ERROR, hcid, f"access denied: {sent} (HTTP {answer.status})"
        )
    return community_error(
        RegistryErrorCode.REGISTRY_ERROR, hcid, f"{sent}: refused (HTTP {answer.status})"
    )


def _retrieve_status(found: Sequence[RetrievedDocument], errors: Sequence[EbRegistryError]) -> int:
    """The audit's HTTP-like status of an ITI-43 answer: 200 when any document came; else 403
    when every document was refused, 502 when a community did not answer, else 404."""
    if found:
        return 200
    if errors and all(e.code_context.startswith("access denied") for e in errors):
        return 403
    if any(e.error_code == RegistryErrorCode.UNAVAILABLE_COMMUNITY for e in errors):
        return 502
    return 404


def _patient_value(stored: StoredQuery, verified: _Verified) -> str | None:
    """The patient to audit: the query's (FindDocuments), else the assertion's."""
    query = stored.query
    if isinstance(query, FindDocumentsQuery):
        try:
            return query.patient.nin.value
        except InvalidIdentifier:
            return None
    return verified.patient.value if verified.patient is not None else None


def _audit_status(status: str, results: Sequence[RegionResult]) -> int:
    """The audit's HTTP-like status of an ITI-18 answer: 200 unless nothing was answered."""
    if status != ResponseStatus.FAILURE.value:
        return 200
    if results and all(r.status is RegionStatus.DENIED for r in results):
        return 403
    return 502


def _selected(
    shown: Sequence[tuple[ExtrinsicEntry, Any]], query: GetDocumentsQuery
) -> list[ExtrinsicEntry]:
    """GetDocuments: the asserted patient's entries shown in full with the ids asked for."""
    uuids, uniques = set(query.entry_uuids), set(query.unique_ids)
    return [
        e
        for e, entry in shown
        if entry is not None and (e.id in uuids or entry.unique_id.value in uniques)
    ]


def _associations(
    shown: Sequence[tuple[ExtrinsicEntry, Any]], query: GetAssociationsQuery
) -> list[EbAssociation]:
    """GetAssociations: RPLC (replacement → replaced) among entries shown in full touching
    `$uuid`; a blocked entry's id is never revealed through one. References: ITI TF-2
    3.18.4.1.2.3.7.6; ITI TF-3 4.2.2.2.3."""
    full = [(e, entry) for e, entry in shown if entry is not None]
    by_unique = {entry.unique_id: e for e, entry in full}
    wanted = set(query.uuids)
    out = []
    for e, entry in full:
        target = by_unique.get(entry.replaces) if entry.replaces is not None else None
        if target is None or (e.id not in wanted and target.id not in wanted):
            continue
        out.append(
            EbAssociation(
                id=f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, e.id + target.id)}",
                association_type=RPLC,
                source=e.id,
                target=target.id,
            )
        )
    return out


def _render(response: QueryResponse, return_type: ReturnType) -> Any:
    """LeafClass as is; ObjectRef with each object's own community (`home`)."""
    if return_type is ReturnType.LEAF_CLASS:
        return render_query_response(response)
    root = render_query_response(QueryResponse(status=response.status, errors=response.errors))
    objects = root.find(qname(RIM, "RegistryObjectList"))
    for entry in response.entries:
        attrs = {"id": entry.id}
        if entry.home is not None:
            attrs["home"] = entry.home
        objects.append(objects.makeelement(qname(RIM, "ObjectRef"), attrs))
    for association in response.associations:
        objects.append(objects.makeelement(qname(RIM, "ObjectRef"), {"id": association.id}))
    return root


def _failed_query(code: str, context: str) -> Any:
    error = EbRegistryError(code, context[:_MAX_CONTEXT], None, ERROR_SEVERITY)
    return render_query_response(
        QueryResponse(status=ResponseStatus.FAILURE.value, errors=(error,))
    )


def _failed_retrieve(code: str, context: str) -> XdsAnswer:
    error = EbRegistryError(code, context[:_MAX_CONTEXT], None, ERROR_SEVERITY)
    return XdsAnswer(render_retrieve_response(ResponseStatus.FAILURE, (), (error,)))
