"""ITI-39 / ITI-43 Retrieve Document Set: the request read, the response's XML written.

A request names documents by (homeCommunityId, repositoryUniqueId, documentUniqueId); the
response is an rs:RegistryResponse and one DocumentResponse per document found, whose Document
element holds an xop:Include pointing at a MIME part (`onerecord.xca.mtom` writes the parts).

References: IHE ITI TF-2 3.39.4.1.2 (request: HomeCommunityId required in ITI-39),
3.39.4.2.2 (response), 3.43.4.1.2 / 3.43.4.2.2 (XDS.b); XOP 1.0 §3 (xop:Include).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from onerecord.domain import (
    HomeCommunityId,
    InvalidIdentifier,
    Oid,
    RepositoryUniqueId,
)
from onerecord.xca.ebrim import EbRegistryError
from onerecord.xca.errors import ParseProblem, XcaParseError
from onerecord.xca.response import ResponseStatus, render_registry_response
from onerecord.xca.xml import NS, XDSB, XOP, child_text, qname

__all__ = [
    "MAX_DOCUMENT_REQUESTS",
    "DocumentRequest",
    "RetrievedDocument",
    "parse_retrieve_request",
    "render_retrieve_response",
]

MAX_DOCUMENT_REQUESTS = 100
"""The most documents one request may ask for (a decision: bounded work per request)."""


@dataclass(frozen=True, slots=True)
class DocumentRequest:
    """One DocumentRequest: where the document lives and which it is."""

    home_community_id: HomeCommunityId | None
    repository_unique_id: RepositoryUniqueId
    document_unique_id: str
    """As sent: the network's samples send UUIDs, where onerecord's uniqueIds are OIDs
    (`DocumentUniqueId`); one that is not a valid uniqueId here is simply not found."""


@dataclass(frozen=True, slots=True)
class RetrievedDocument:
    """One DocumentResponse: the request it answers, its MIME type and its MIME part's id."""

    request: DocumentRequest
    mime_type: str
    content_id: str


def _bad(message: str) -> XcaParseError:
    return XcaParseError(message, problem=ParseProblem.VALUE, code="XDSRegistryError")


def _required(element: Any, local: str) -> str:
    value = child_text(element, f"xdsb:{local}", what=local, max_len=128)
    if not value:
        raise XcaParseError(f"DocumentRequest needs {local}")
    return value


def parse_retrieve_request(element: Any, *, require_community: bool) -> tuple[DocumentRequest, ...]:
    """Read a RetrieveDocumentSetRequest; `require_community` for ITI-39 (3.39.4.1.2)."""
    if element.tag != qname(XDSB, "RetrieveDocumentSetRequest"):
        raise XcaParseError("expected a RetrieveDocumentSetRequest")
    items = element.findall("xdsb:DocumentRequest", NS)
    if not items:
        raise XcaParseError("a RetrieveDocumentSetRequest needs at least one DocumentRequest")
    if len(items) > MAX_DOCUMENT_REQUESTS:
        raise XcaParseError(f"at most {MAX_DOCUMENT_REQUESTS} DocumentRequests per request")
    if len([c for c in element if isinstance(c.tag, str)]) != len(items):
        raise XcaParseError("a RetrieveDocumentSetRequest holds DocumentRequests only")
    out = []
    for item in items:
        community = child_text(item, "xdsb:HomeCommunityId", what="HomeCommunityId", max_len=256)
        if require_community and not community:
            raise XcaParseError("ITI-39 needs HomeCommunityId in each DocumentRequest")
        repository = _required(item, "RepositoryUniqueId")
        document = _required(item, "DocumentUniqueId")
        try:
            home = HomeCommunityId(Oid(community)) if community else None
        except InvalidIdentifier:
            raise _bad("HomeCommunityId is not an OID (bare or urn:oid:)") from None
        try:
            repo = RepositoryUniqueId.parse(repository)
        except (InvalidIdentifier, ValueError):
            raise _bad("RepositoryUniqueId is not an OID") from None
        if not document.isprintable():
            raise _bad("DocumentUniqueId holds characters that are not printable")
        out.append(DocumentRequest(home, repo, document))
    return tuple(out)


def render_retrieve_response(
    status: ResponseStatus,
    documents: Sequence[RetrievedDocument],
    errors: Sequence[EbRegistryError] = (),
) -> Any:
    """Return a RetrieveDocumentSetResponse whose documents are xop:Include references."""
    root = etree.Element(
        qname(XDSB, "RetrieveDocumentSetResponse"), nsmap={"xdsb": XDSB, "xop": XOP}
    )
    root.append(render_registry_response(status, errors))
    for doc in documents:
        item = etree.SubElement(root, qname(XDSB, "DocumentResponse"))
        req = doc.request
        if req.home_community_id is not None:
            etree.SubElement(item, qname(XDSB, "HomeCommunityId")).text = req.home_community_id.urn
        etree.SubElement(item, qname(XDSB, "RepositoryUniqueId")).text = str(
            req.repository_unique_id
        )
        etree.SubElement(item, qname(XDSB, "DocumentUniqueId")).text = str(req.document_unique_id)
        etree.SubElement(item, qname(XDSB, "mimeType")).text = doc.mime_type
        holder = etree.SubElement(item, qname(XDSB, "Document"))
        etree.SubElement(holder, qname(XOP, "Include"), {"href": f"cid:{doc.content_id}"})
    return root
