"""The hub as XCA initiating gateway: ITI-38 and ITI-39 to a region whose directory entry says xca.

A search becomes one FindDocuments (LeafClass) for the patient; the ebRIM answer is mapped back
to the DocumentReferences the MHD path merges (`mhd.document_reference`, and the blocked
placeholder for an obfuscated entry), so the merged answer does not depend on the wire. A
retrieve becomes one DocumentRequest; the document comes back as the MTOM part it names,
streamed to the caller as the region sends it (`XcaInitiator.retrieve`, `XcaRetrieved`).

Each call carries a SAML assertion signed by the hub's SAML key (`HubSamlIssuer`), with the
caller's attributes (`xca.assertion`) — the analogue of the hub assertion of the MHD path.

Outcomes map onto the hub's per-region statuses: no connection → unavailable; HTTP status as
for MHD (`status_for_http`); an answer that is not an AdhocQueryResponse → invalid-response;
Failure with XDSUnavailableCommunity → unavailable; a policy refusal ("access denied") →
denied; any other Failure → rejected; PartialSuccess → ok with its errors as warnings.

References: IHE ITI TF-2 3.38.4.1.2 (FindDocuments request), 3.38.4.1.3 (initiating gateway:
one responding gateway per community, errors located by homeCommunityId), 3.39.4.1.2
(Retrieve Document Set), V.3.2 (SOAP 1.2, WS-Addressing), V.3.6 (MTOM); TRUST-FRAMEWORK §2.4.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import functools
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree  # type: ignore[import-untyped]

from onerecord.domain import (
    CONFIDENTIALITY_VOLVEN,
    DocumentQuery,
    DocumentStatus,
    DocumentUniqueId,
    DomainError,
    NationalIdentityNumber,
)
from onerecord.hub.client import (
    RegionClient,
    RegionConnectError,
    RegionResponse,
    RegionStream,
    RegionTransportError,
)
from onerecord.hub.directory import Region
from onerecord.hub.errors import HubError
from onerecord.hub.fanout import RegionCallFailed, status_for_http
from onerecord.hub.results import RegionResult, RegionStatus
from onerecord.mhd import RetrieveKey
from onerecord.mhd.docref import EXT_HOME_COMMUNITY_ID, RFC3986, document_reference
from onerecord.trust.access_token import Citizen, Principal
from onerecord.trust.principal import AccessBasis
from onerecord.xca.assertion import assertion_attributes, patient_cx, sign_assertion
from onerecord.xca.dev_issuer import create_development_issuer, is_development_certificate
from onerecord.xca.ebrim import (
    RPLC,
    UNIQUE_ID_SCHEME,
    ZERO_UUID,
    EbAssociation,
    ExtrinsicEntry,
    QueryResponse,
    entry_from_ebrim,
    parse_query_response,
)
from onerecord.xca.errors import XcaError
from onerecord.xca.mtom import MtomStream, content_id_of, mtom_parts
from onerecord.xca.query import (
    FIND_DOCUMENTS,
    GET_ASSOCIATIONS,
    GET_DOCUMENTS,
    STATUS_APPROVED,
    STATUS_DEPRECATED,
)
from onerecord.xca.response import RegistryErrorCode
from onerecord.xca.saml import load_certificate
from onerecord.xca.soap import SOAP12_MEDIA_TYPE, parse_envelope
from onerecord.xca.xml import NS, QUERY, RIM, SOAP12, WSA, WSSE, XDSB, XOP, qname

__all__ = [
    "ITI38_ACTION",
    "ITI39_ACTION",
    "HubSamlIssuer",
    "XcaCaller",
    "XcaInitiator",
    "XcaRetrieved",
    "find_documents_request",
    "get_associations_request",
    "get_documents_request",
    "load_hub_saml_issuer",
    "read_answer",
    "region_result",
    "replaced_by",
    "retrieve_request",
    "soap_request",
]

ITI38_ACTION = "urn:ihe:iti:2007:CrossGatewayQuery"
ITI39_ACTION = "urn:ihe:iti:2007:CrossGatewayRetrieve"
_STABLE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
_STATUS_TYPE = {
    DocumentStatus.CURRENT: STATUS_APPROVED,
    DocumentStatus.SUPERSEDED: STATUS_DEPRECATED,
}
_MASKED_TITLE = "Sperret"
_MAX_CONTEXT_CHARS = 200
_IDS_PER_QUERY = 100
"""Entry UUIDs per GetAssociations / GetDocuments (a responding gateway takes up to 200)."""
_DEV_KEY_NAME = "dev-hub-saml.key"
_DEV_CERT_NAME = "dev-hub-saml.crt"


class XcaRequestRefused(HubError):
    """The hub cannot ask an XCA region this (a filter ITI-38 FindDocuments cannot carry)."""


@dataclass(frozen=True, slots=True)
class HubSamlIssuer:
    """The hub's SAML issuer name, RSA key and certificate (what regions trust for ITI-38/39)."""

    name: str
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate


def load_hub_saml_issuer(
    *,
    name: str,
    key_file: Path | None,
    certificate_file: Path | None,
    key_dir: Path,
    dev_mode: bool,
) -> HubSamlIssuer:
    """Load the hub's SAML key; create the development one only in dev mode, refuse it outside."""
    if key_file is None or certificate_file is None:
        if not dev_mode:
            raise ValueError("the hub needs saml_key_file and saml_certificate_file outside dev")
        key_dir.mkdir(parents=True, exist_ok=True)
        key_file, certificate_file = key_dir / _DEV_KEY_NAME, key_dir / _DEV_CERT_NAME
        if not key_file.exists() or not certificate_file.exists():
            create_development_issuer(key_file, certificate_file)
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the hub's SAML key must be an RSA key (RSA-SHA256 signatures)")
    certificate = load_certificate(certificate_file.read_bytes())
    if is_development_certificate(certificate) and not dev_mode:
        raise ValueError("refusing the development SAML certificate outside dev mode")
    return HubSamlIssuer(name, key, certificate)


def development_certificate_file(key_dir: Path) -> Path:
    """Where `load_hub_saml_issuer` keeps the development certificate (for the demo's regions)."""
    return key_dir / _DEV_CERT_NAME


@dataclass(frozen=True, slots=True)
class XcaCaller:
    """Whom the hub asserts to an XCA region: the verified principal and the request's patient."""

    principal: Principal
    correlation_id: str
    access_basis: AccessBasis | None = None
    relayed: Any | None = None
    """The caller's own verified SAML assertion (an XDS.b caller at the hub, ITI-18/43): sent
    on unchanged instead of one the hub signs, so the region verifies the caller's issuer and
    `resource-id` itself (docs/xca.md "Trust at the hub")."""


# --- the wire --------------------------------------------------------------------------------


def _slot(parent: Any, name: str, *values: str) -> None:
    slot = etree.SubElement(parent, qname(RIM, "Slot"), {"name": name})
    holder = etree.SubElement(slot, qname(RIM, "ValueList"))
    for value in values:
        etree.SubElement(holder, qname(RIM, "Value")).text = value


def find_documents_request(query: DocumentQuery, home_community_id: str) -> Any:
    """The AdhocQueryRequest of FindDocuments (LeafClass) for the query's patient and statuses.

    Only the patient and status travel (ITI TF-2 3.18.4.1.2.3.7.1): any other filter is
    refused (XcaRequestRefused) rather than silently dropped.
    """
    unsupported = [
        name
        for name in (
            "date",
            "creation",
            "period",
            "category",
            "type",
            "setting",
            "facility",
            "event",
            "security_label",
            "format",
            "identifier",
            "related",
            "author_given",
            "author_family",
        )
        if getattr(query, name)
    ]
    if unsupported:
        raise XcaRequestRefused(
            f"{', '.join(unsupported)} cannot be asked of an XCA region (only patient and status)"
        )
    statuses = sorted(_STATUS_TYPE[s] for s in query.statuses if s in _STATUS_TYPE)
    if not statuses:
        raise XcaRequestRefused("an XCA region lists only current and superseded entries")
    root, adhoc = _adhoc(FIND_DOCUMENTS, home_community_id)
    _slot(adhoc, "$XDSDocumentEntryPatientId", f"'{patient_cx(query.patient_id)}'")
    _slot(adhoc, "$XDSDocumentEntryStatus", f"({','.join(repr(s) for s in statuses)})")
    _slot(adhoc, "$XDSDocumentEntryType", f"('{_STABLE}')")
    return root


def _adhoc(query_id: str, home_community_id: str) -> tuple[Any, Any]:
    root = etree.Element(qname(QUERY, "AdhocQueryRequest"), nsmap={"query": QUERY, "rim": RIM})
    etree.SubElement(
        root,
        qname(QUERY, "ResponseOption"),
        {"returnComposedObjects": "true", "returnType": "LeafClass"},
    )
    adhoc = etree.SubElement(
        root, qname(RIM, "AdhocQuery"), {"id": query_id, "home": home_community_id}
    )
    return root, adhoc


def _list(values: Iterable[str]) -> str:
    return "(" + ",".join(f"'{v}'" for v in values) + ")"


def get_associations_request(uuids: Sequence[str], home_community_id: str) -> Any:
    """GetAssociations of the given entryUUIDs (ITI TF-2 3.18.4.1.2.3.7.6)."""
    root, adhoc = _adhoc(GET_ASSOCIATIONS, home_community_id)
    _slot(adhoc, "$uuid", _list(uuids))
    return root


def get_documents_request(uuids: Sequence[str], home_community_id: str) -> Any:
    """GetDocuments by entryUUID (ITI TF-2 3.18.4.1.2.3.7.5)."""
    root, adhoc = _adhoc(GET_DOCUMENTS, home_community_id)
    _slot(adhoc, "$XDSDocumentEntryEntryUUID", _list(uuids))
    return root


def retrieve_request(key: RetrieveKey) -> Any:
    """The RetrieveDocumentSetRequest for one document (ITI TF-2 3.39.4.1.2)."""
    root = etree.Element(qname(XDSB, "RetrieveDocumentSetRequest"), nsmap={"xdsb": XDSB})
    item = etree.SubElement(root, qname(XDSB, "DocumentRequest"))
    etree.SubElement(item, qname(XDSB, "HomeCommunityId")).text = key.home_community_id.urn
    etree.SubElement(item, qname(XDSB, "RepositoryUniqueId")).text = str(key.repository_unique_id)
    etree.SubElement(item, qname(XDSB, "DocumentUniqueId")).text = key.unique_id.value
    return root


def soap_request(body: Any, *, action: str, to: str, assertion: Any) -> bytes:
    """A SOAP 1.2 request: WS-Addressing (Action, MessageID, ReplyTo anonymous, To), WS-Security."""
    envelope = etree.Element(
        qname(SOAP12, "Envelope"), nsmap={"env": SOAP12, "wsa": WSA, "wsse": WSSE}
    )
    header = etree.SubElement(envelope, qname(SOAP12, "Header"))
    understood = {qname(SOAP12, "mustUnderstand"): "true"}
    etree.SubElement(header, qname(WSA, "Action"), understood).text = action
    etree.SubElement(header, qname(WSA, "MessageID")).text = f"urn:uuid:{uuid.uuid4()}"
    reply = etree.SubElement(header, qname(WSA, "ReplyTo"))
    etree.SubElement(
        reply, qname(WSA, "Address")
    ).text = "http://www.w3.org/2005/08/addressing/anonymous"
    etree.SubElement(header, qname(WSA, "To"), understood).text = to
    security = etree.SubElement(header, qname(WSSE, "Security"), understood)
    security.append(assertion)
    etree.SubElement(envelope, qname(SOAP12, "Body")).append(body)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


# --- the answer ------------------------------------------------------------------------------


def _masked(entry: ExtrinsicEntry) -> bool:
    """An obfuscated entry (ebrim.obfuscate): its entryUUID is all zeros."""
    return entry.id == ZERO_UUID


def _placeholder(
    entry: ExtrinsicEntry, region: Region, patient: NationalIdentityNumber
) -> dict[str, Any]:
    """The MHD path's placeholder of a blocked entry, from what the obfuscated entry keeps.

    The class code is masked on this wire (the national answer's way), so the placeholder
    has no category. References: TRUST-FRAMEWORK §4.5, D1; source.service.masked_document_reference.
    """
    moment = (entry.slot("serviceStartTime") or entry.slot("creationTime") or ("",))[0]
    status = "superseded" if entry.status == STATUS_DEPRECATED else "current"
    return {
        "resourceType": "DocumentReference",
        "id": f"masked-{uuid.uuid4().hex}",
        "status": status,
        "subject": {"identifier": {"system": f"urn:oid:{patient.system}", "value": patient.value}},
        "date": _hl7_instant(moment),
        "description": _MASKED_TITLE,
        "securityLabel": [{"coding": [{"system": CONFIDENTIALITY_VOLVEN, "code": "NORS"}]}],
        "content": [{"attachment": {"title": _MASKED_TITLE}}],
        "extension": [
            {
                "url": EXT_HOME_COMMUNITY_ID,
                "valueIdentifier": {"system": RFC3986, "value": region.hcid},
            }
        ],
    }


def _hl7_instant(value: str) -> str | None:
    """An HL7 DTM (YYYYMMDD[HHMMSS]) as an ISO instant in UTC; None when it is not one."""
    digits = value.strip()
    for pattern in ("%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y%m%d"):
        try:
            return datetime.strptime(digits, pattern).replace(tzinfo=UTC).isoformat()
        except ValueError:
            continue
    return None


def _document(
    entry: ExtrinsicEntry,
    region: Region,
    patient: NationalIdentityNumber,
    replaces: str | None,
) -> dict[str, Any]:
    document = entry_from_ebrim(entry)
    if replaces is not None:
        try:
            document = replace(document, replaces=DocumentUniqueId(replaces))
        except DomainError:
            raise RegionCallFailed(
                RegionStatus.INVALID_RESPONSE, "a replaced entry's uniqueId is not valid"
            ) from None
    if document.patient_id != patient:
        raise RegionCallFailed(
            RegionStatus.INVALID_RESPONSE, "an entry is about another patient than asked"
        )
    url = ""
    if document.repository_unique_id is not None:
        key = RetrieveKey(
            region.home_community_id, document.repository_unique_id, document.unique_id
        )
        url = f"{region.base_url}/Binary/{key.token()}"
    return document_reference(document, id=str(document.entry_uuid), attachment_url=url)


def _warning(code: str, context: str) -> dict[str, Any]:
    return {
        "severity": "warning",
        "code": "incomplete",
        "diagnostics": f"{code}: {context[:_MAX_CONTEXT_CHARS]}",
    }


_REJECTED_CODES = frozenset(
    {
        RegistryErrorCode.TOO_MANY_RESULTS,
        RegistryErrorCode.STORED_QUERY_PARAM_NUMBER,
        RegistryErrorCode.UNKNOWN_STORED_QUERY,
    }
)
_ERROR_CODES = frozenset({RegistryErrorCode.REPOSITORY_ERROR, RegistryErrorCode.UNKNOWN_COMMUNITY})


def _failure(errors: tuple[Any, ...]) -> RegionCallFailed:
    """The per-region outcome of a Failure answer, from its first RegistryError.

    XDSUnavailableCommunity → unavailable; a query the region cannot answer (too many results,
    a parameter) → rejected; its repository failing or not knowing its own community → error;
    any other refusal (the assertion, the policy: XDSRegistryError) → denied, as a 401/403 over
    MHD, with the policy's reason when the context names one ("access denied by policy: …").
    """
    if not errors:
        return RegionCallFailed(RegionStatus.ERROR, "ITI-38 Failure without a RegistryError")
    first = errors[0]
    detail = f"{first.error_code}: {first.code_context[:_MAX_CONTEXT_CHARS]}"
    if first.error_code == RegistryErrorCode.UNAVAILABLE_COMMUNITY:
        return RegionCallFailed(RegionStatus.UNAVAILABLE, detail)
    if first.error_code in _REJECTED_CODES:
        return RegionCallFailed(RegionStatus.REJECTED, detail)
    if first.error_code in _ERROR_CODES:
        return RegionCallFailed(RegionStatus.ERROR, detail)
    return RegionCallFailed(RegionStatus.DENIED, detail, reason=policy_reason(first.code_context))


_REASON = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


def policy_reason(code_context: str) -> str | None:
    """The policy's denial-reason code in a RegistryError's codeContext, when it names one.

    A region's responding gateway says "access denied by policy: <reason>" for a refused query
    and "<uniqueId>: access denied: <reason>" for a refused document (source/xca_gateway.py);
    the reason is a trust.policy.DenialReason code such as `practitioner-blocked`. Anything that
    is not such a code (an external gateway's own wording) gives None.
    """
    head, sep, tail = code_context.rpartition(":")
    if not sep or "access denied" not in head:
        return None
    reason = tail.strip()
    return reason if _REASON.fullmatch(reason) else None


def read_answer(response_element: Any) -> QueryResponse:
    """Read an AdhocQueryResponse; a Failure becomes the region's outcome (RegionCallFailed)."""
    try:
        answer = parse_query_response(response_element)
    except XcaError as exc:
        raise RegionCallFailed(RegionStatus.INVALID_RESPONSE, f"ITI-38 answer: {exc}") from None
    if answer.status.rpartition(":")[2] == "Failure":
        raise _failure(answer.errors)
    return answer


def replaced_by(
    entries: Sequence[ExtrinsicEntry], associations: Sequence[EbAssociation]
) -> dict[str, str]:
    """entryUUID → uniqueId of the entry it replaces, from RPLC associations (ITI TF-3 4.2.2.2.3).

    `entries` must hold the targets (the replaced entries); unknown targets are left out.
    """
    unique_of = {e.id: (e.external(UNIQUE_ID_SCHEME) or "") for e in entries}
    out: dict[str, str] = {}
    for association in associations:
        if association.association_type != RPLC:
            continue
        target = unique_of.get(association.target)
        if target:
            out[association.source] = target
    return out


def region_result(
    region: Region,
    answer: QueryResponse,
    *,
    patient: NationalIdentityNumber,
    max_entries: int,
    replaces: Mapping[str, str] | None = None,
) -> RegionResult:
    """Map a FindDocuments answer onto the region's result, as the MHD path's searchset.

    `replaces`: entryUUID → uniqueId of the replaced document (the MHD `relatesTo`).
    """
    resources: list[dict[str, Any]] = []
    masked = 0
    try:
        for entry in answer.entries:
            if _masked(entry):
                resources.append(_placeholder(entry, region, patient))
                masked += 1
            else:
                resources.append(_document(entry, region, patient, (replaces or {}).get(entry.id)))
    except XcaError as exc:
        raise RegionCallFailed(RegionStatus.INVALID_RESPONSE, f"ITI-38 entry: {exc}") from None
    truncated = len(resources) > max_entries
    return RegionResult(
        region=region,
        status=RegionStatus.OK,
        latency_ms=0.0,
        resources=tuple(resources[:max_entries]),
        masked_count=masked,
        truncated=truncated,
        warnings=tuple(_warning(e.error_code, e.code_context) for e in answer.errors),
        http_status=200,
    )


async def _nothing_to_release() -> None:
    return None


@dataclass(frozen=True, slots=True)
class XcaRetrieved:
    """One document retrieved over ITI-39: its bytes as they arrive, or the region's RegistryError.

    `chunks` yields the document's exact bytes (None when the region answered an error) and
    ends when the MTOM part's delimiter has been read, so a document that arrived whole is
    exactly what was yielded. While it is read it may raise RegionCallFailed: the region's
    answer ended or broke inside the document (invalid-response: a truncated or malformed part;
    timeout: the region stopped sending for `timeout_s`; unavailable: the connection broke).
    Read it to its end or call `aclose()`: either releases the region's connection.
    """

    chunks: AsyncIterator[bytes] | None
    mime_type: str | None
    error_code: str | None = None
    error_context: str = ""
    release: Callable[[], Awaitable[None]] = _nothing_to_release

    async def aclose(self) -> None:
        """Stop reading and release the region's connection (harmless after the end)."""
        close = getattr(self.chunks, "aclose", None)
        if close is not None:
            await close()
        await self.release()


class XcaInitiator:
    """ITI-38 and ITI-39 towards XCA regions, asserting each caller with the hub's SAML key."""

    def __init__(
        self,
        *,
        issuer: HubSamlIssuer,
        client: RegionClient,
        assertion_lifetime_s: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.client = client
        self.lifetime = timedelta(seconds=assertion_lifetime_s)
        self.clock = clock

    def assertion(
        self, region: Region, caller: XcaCaller, patient: NationalIdentityNumber | None
    ) -> Any:
        """A fresh assertion of `caller` for `region` (audience as for the hub assertion), or a
        copy of the caller's own assertion when the hub relays one."""
        if caller.relayed is not None:
            return copy.deepcopy(caller.relayed)
        principal = caller.principal
        if patient is None and isinstance(principal, Citizen):
            patient = principal.nin  # a citizen's own documents
        attributes = assertion_attributes(
            principal, patient=patient, access_basis=caller.access_basis
        )
        return sign_assertion(
            key=self.issuer.key,
            certificate=self.issuer.certificate,
            issuer=self.issuer.name,
            subject=principal.nin.value,
            attributes=attributes,
            audience=region.audience,
            now=datetime.fromtimestamp(self.clock(), UTC),
            lifetime=self.lifetime,
        )

    async def _post(
        self, url: str, body: bytes, action: str, *, ends_at: float, retry_delay_s: float
    ) -> tuple[str | None, bytes]:
        headers = _soap_headers(action)
        loop = asyncio.get_running_loop()

        async def once() -> RegionResponse:
            timeout = max(ends_at - loop.time(), 0.001)
            return await self.client.post(url, body, headers=headers, timeout_s=timeout)

        try:
            response = await once()
        except RegionConnectError:
            # As for MHD (fanout.call_region): once more only when nothing was sent.
            if loop.time() + retry_delay_s >= ends_at:
                raise
            await asyncio.sleep(retry_delay_s)
            response = await once()
        failure = status_for_http(response.status)
        if failure is not None:
            raise RegionCallFailed(failure, f"HTTP {response.status}", response.status)
        return response.headers.get("content-type"), response.body

    async def _query(
        self,
        region: Region,
        caller: XcaCaller,
        patient: NationalIdentityNumber,
        body: Any,
        *,
        ends_at: float,
        retry_delay_s: float,
    ) -> QueryResponse:
        """One ITI-38 exchange: assert, send, read the answer (RegionCallFailed on Failure)."""
        assert region.iti38_url is not None
        assertion = self.assertion(region, caller, patient)
        soap = soap_request(body, action=ITI38_ACTION, to=region.iti38_url, assertion=assertion)
        content_type, answer = await self._post(
            region.iti38_url, soap, ITI38_ACTION, ends_at=ends_at, retry_delay_s=retry_delay_s
        )
        try:
            envelope = parse_envelope(mtom_parts(content_type, answer)[0])
        except XcaError as exc:
            raise RegionCallFailed(RegionStatus.INVALID_RESPONSE, f"ITI-38 answer: {exc}") from None
        return read_answer(envelope.body)

    async def find(
        self,
        region: Region,
        ends_at: float,
        *,
        caller: XcaCaller | None,
        query: DocumentQuery,
        max_entries: int,
        retry_delay_s: float,
    ) -> RegionResult:
        """One region's part of a search over ITI-38 (a RegionExchange).

        FindDocuments lists the entries; GetAssociations of those shown in full finds which
        replace another (RPLC), and GetDocuments the replaced ones not listed, so that each
        DocumentReference carries `relatesTo` as over MHD.
        """
        if caller is None:
            raise RegionCallFailed(RegionStatus.REJECTED, "no verified caller to assert over XCA")
        try:
            body = find_documents_request(query, region.hcid)
        except XcaRequestRefused as exc:
            raise RegionCallFailed(RegionStatus.REJECTED, str(exc)) from None
        patient = query.patient_id
        ask = functools.partial(
            self._query, region, caller, patient, ends_at=ends_at, retry_delay_s=retry_delay_s
        )
        found = await ask(body)
        shown = [e.id for e in found.entries if not _masked(e)][: max_entries + 1]
        associations: list[EbAssociation] = []
        for start in range(0, len(shown), _IDS_PER_QUERY):
            chunk = shown[start : start + _IDS_PER_QUERY]
            associations.extend(
                (await ask(get_associations_request(chunk, region.hcid))).associations
            )
        listed = {e.id for e in found.entries}
        wanted = sorted({a.target for a in associations if a.association_type == RPLC} - listed)
        targets: list[ExtrinsicEntry] = list(found.entries)
        for start in range(0, len(wanted), _IDS_PER_QUERY):
            chunk = wanted[start : start + _IDS_PER_QUERY]
            targets.extend((await ask(get_documents_request(chunk, region.hcid))).entries)
        return region_result(
            region,
            found,
            patient=patient,
            max_entries=max_entries,
            replaces=replaced_by(targets, associations),
        )

    async def _post_stream(
        self, url: str, body: bytes, action: str, *, ends_at: float, retry_delay_s: float
    ) -> RegionStream:
        """POST and open the answer as a stream; RegionCallFailed for a status other than 200."""
        headers = _soap_headers(action)
        loop = asyncio.get_running_loop()

        async def once() -> RegionStream:
            timeout = max(ends_at - loop.time(), 0.001)
            return await self.client.post_stream(url, body, headers=headers, timeout_s=timeout)

        try:
            response = await once()
        except RegionConnectError:
            # As for MHD (fanout.call_region): once more only when nothing was sent.
            if loop.time() + retry_delay_s >= ends_at:
                raise
            await asyncio.sleep(retry_delay_s)
            response = await once()
        failure = status_for_http(response.status)
        if failure is not None:
            await response.close()
            raise RegionCallFailed(failure, f"HTTP {response.status}", response.status)
        return response

    async def retrieve(
        self,
        region: Region,
        key: RetrieveKey,
        *,
        caller: XcaCaller,
        patient: NationalIdentityNumber | None,
        timeout_s: float,
        retry_delay_s: float,
    ) -> XcaRetrieved:
        """Retrieve one document over ITI-39, its bytes streamed as the region sends them.

        Returns once everything before the document's first byte has been read and checked
        within `timeout_s`: the HTTP status, the SOAP envelope (whole, at most the hardened
        reader's 8 MB), the DocumentResponse for `key`, and the header block of the MTOM part
        its xop:Include names. Until then every fault closes the connection and is raised:
        RegionCallFailed (the HTTP status's outcome, or invalid-response for a malformed
        answer), TimeoutError, RegionConnectError or RegionTransportError. A RegistryError
        for the document is returned as `error_code` with no `chunks`. What can still go
        wrong inside the document is raised from `chunks` (XcaRetrieved). The document is
        never held: memory stays at a chunk (64 KiB) plus a MIME delimiter.
        """
        assert region.iti39_url is not None
        assertion = self.assertion(region, caller, patient)
        soap = soap_request(
            retrieve_request(key), action=ITI39_ACTION, to=region.iti39_url, assertion=assertion
        )
        ends_at = asyncio.get_running_loop().time() + timeout_s
        stream = await self._post_stream(
            region.iti39_url, soap, ITI39_ACTION, ends_at=ends_at, retry_delay_s=retry_delay_s
        )
        handed_over = False
        try:
            async with asyncio.timeout_at(ends_at):
                try:
                    answer = MtomStream(stream.headers.get("content-type"), stream.chunks)
                    body = parse_envelope(await answer.envelope()).body
                    got = await _retrieved(body, answer, key)
                except XcaError as exc:
                    raise RegionCallFailed(
                        RegionStatus.INVALID_RESPONSE, f"ITI-39 answer: {exc}"
                    ) from None
            if got.chunks is None:
                return got
            handed_over = True
            return replace(got, chunks=_guarded(got.chunks, answer), release=stream.close)
        finally:
            if not handed_over:
                await _close_quietly(stream)


def _soap_headers(action: str) -> dict[str, str]:
    return {
        "content-type": f'{SOAP12_MEDIA_TYPE}; charset=UTF-8; action="{action}"',
        "accept": f"{SOAP12_MEDIA_TYPE}, multipart/related",
    }


async def _close_quietly(stream: RegionStream) -> None:
    close = getattr(stream.chunks, "aclose", None)
    if close is not None:
        await close()
    await stream.close()


async def _retrieved(body: Any, answer: MtomStream, key: RetrieveKey) -> XcaRetrieved:
    """The DocumentResponse for `key` opened (its part's header read), or the RegistryError."""
    if body.tag != qname(XDSB, "RetrieveDocumentSetResponse"):
        raise RegionCallFailed(RegionStatus.INVALID_RESPONSE, "not a RetrieveDocumentSetResponse")
    responses = body.findall("xdsb:DocumentResponse", NS)
    for document in responses:
        if (document.findtext("xdsb:DocumentUniqueId", namespaces=NS) or "").strip() != (
            key.unique_id.value
        ):
            continue
        mime = document.findtext("xdsb:mimeType", namespaces=NS)
        include = document.find(f"xdsb:Document/{{{XOP}}}Include", NS)
        if include is not None:
            part = await answer.part(content_id_of(include.get("href", "")))
            return XcaRetrieved(part.chunks, mime)
        inline = document.findtext("xdsb:Document", namespaces=NS)
        if inline:
            try:
                content = base64.b64decode(inline, validate=True)
            except (binascii.Error, ValueError):
                raise RegionCallFailed(
                    RegionStatus.INVALID_RESPONSE, "an inline document is not base64"
                ) from None
            return XcaRetrieved(document_chunks(content), mime)
    if responses:
        raise RegionCallFailed(
            RegionStatus.INVALID_RESPONSE, "ITI-39 answer with another document than asked"
        )
    error = body.find("rs:RegistryResponse/rs:RegistryErrorList/rs:RegistryError", NS)
    if error is None:
        raise RegionCallFailed(RegionStatus.INVALID_RESPONSE, "ITI-39 answer without a document")
    return XcaRetrieved(
        None,
        None,
        error.get("errorCode") or RegistryErrorCode.REGISTRY_ERROR,
        (error.get("codeContext") or "")[:_MAX_CONTEXT_CHARS],
    )


_FINISH_S = 1.0
"""How long the end of an answer after the document is waited for (to reuse the connection)."""


async def _guarded(chunks: AsyncIterator[bytes], answer: MtomStream) -> AsyncIterator[bytes]:
    """The document's chunks; a fault inside it becomes RegionCallFailed, the source closed."""
    try:
        async for chunk in chunks:
            yield chunk
        # The document is whole. Reading the answer's end (a few bytes, sent with the
        # document) lets the connection go back to the pool; if it does not come, no matter.
        with contextlib.suppress(XcaError, TimeoutError, RegionTransportError):
            async with asyncio.timeout(_FINISH_S):
                await answer.finish()
    except XcaError as exc:
        raise RegionCallFailed(RegionStatus.INVALID_RESPONSE, f"ITI-39 document: {exc}") from None
    except TimeoutError:
        raise RegionCallFailed(
            RegionStatus.TIMEOUT, "ITI-39 document: the region stopped sending"
        ) from None
    except RegionTransportError as exc:
        raise RegionCallFailed(RegionStatus.UNAVAILABLE, f"ITI-39 document: {exc}") from None
    finally:
        await answer.aclose()


async def document_chunks(content: bytes) -> AsyncIterator[bytes]:
    """The retrieved document in 64 KiB chunks, as the hub's retrieve route sends a stream."""
    step = 64 * 1024
    for start in range(0, len(content), step):
        yield content[start : start + step]
