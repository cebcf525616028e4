"""ITI-65 Provide Document Bundle: parse the transaction Bundle, build it, answer it.

Status codes: an envelope that is not a JSON transaction Bundle with one SubmissionSet is a 400;
content that breaks a metadata rule is a 422 (domain errors keep their own type and are mapped
to 422 by `outcome_for`); bytes that do not fit their declared MIME type are a 415; more
documents than allowed is a 413. Every error names the element at fault as a FHIRPath
("Bundle.entry[2].resource.subject.identifier.value").

References: IHE MHD 4.x ITI-65 §2:3.65.4.1 (message), §2:3.65.4.1.3 (expected actions),
§2:3.65.4.2 (response); FHIR R4 §3.1.0.11 transaction-response.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import orjson

from onerecord.domain.document_entry import DocumentEntry
from onerecord.domain.errors import InvalidIdentifier
from onerecord.domain.identifiers import (
    DNR_SYSTEM,
    FNR_SYSTEM,
    HNR_SYSTEM,
    NationalIdentityNumber,
    Oid,
)
from onerecord.domain.limits import DateOutOfRange, check_moment
from onerecord.mhd.docref import (
    RFC3986,
    _Reader,
    document_reference,
    entry_from_document_reference,
)
from onerecord.mhd.errors import BadRequest, PayloadTooLarge, Unprocessable

__all__ = [
    "LIST_TYPES",
    "SOURCE_ID_EXTENSION",
    "SUBMISSION_SET_PROFILE",
    "ProvideBundle",
    "SubmissionSet",
    "SubmittedDocument",
    "build_provide_bundle",
    "parse_provide_bundle",
    "transaction_response",
]

LIST_TYPES = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
SOURCE_ID_EXTENSION = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-sourceId"
SUBMISSION_SET_PROFILE = (
    "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.SubmissionSet"
)
_PROVIDE_BUNDLE_PROFILE = (
    "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.ProvideBundle"
)
_PATIENT_SYSTEMS = {f"urn:oid:{s}" for s in (FNR_SYSTEM, DNR_SYSTEM, HNR_SYSTEM)}
_MAX_SOURCE_ID = 128  # the registry's submission_set.source_id column


@dataclass(frozen=True, slots=True)
class SubmissionSet:
    """The XDS SubmissionSet carried as an MHD List (code submissionset)."""

    unique_id: str
    entry_uuid: str | None
    source_id: str
    patient_id: NationalIdentityNumber
    submission_time: datetime | None
    full_url: str


@dataclass(frozen=True, slots=True)
class SubmittedDocument:
    """One DocumentReference of the bundle, parsed, with its bytes."""

    entry: DocumentEntry
    content: bytes
    full_url: str


@dataclass(frozen=True, slots=True)
class ProvideBundle:
    """A parsed ITI-65 request; `order` lists (resourceType, index) per request entry."""

    submission_set: SubmissionSet
    documents: tuple[SubmittedDocument, ...]
    order: tuple[tuple[str, int], ...]


def _load(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", code="structure"
        ) from None


def _show(value: Any) -> str:
    """A short repr of a value from the wire, for a diagnostic."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _submission_set(resource: dict[str, Any], at: str, full_url: str) -> SubmissionSet:
    """Read the SubmissionSet List, checking the type of every element before use.

    References: IHE MHD 4.x §2:3.65.4.1.2.1 (SubmissionSet List), ITI TF-3 4.2.3.3 (uniqueId
    and sourceId are OIDs).
    """
    r = _Reader(at)
    unique_id: str | None = None
    entry_uuid: str | None = None
    for i, item in enumerate(r.lst(resource.get("identifier"), "identifier")):
        ident = r.obj(item, f"identifier[{i}]")
        assert ident is not None
        value = r.req_text(ident.get("value"), f"identifier[{i}].value")
        if value.startswith("urn:uuid:"):
            entry_uuid = value
        elif unique_id is None or ident.get("use") == "usual":
            unique_id = value
    if unique_id is None:
        raise r.fail(
            "identifier",
            "the SubmissionSet needs its uniqueId (identifier use=usual)",
            code="required",
        )
    try:
        unique = Oid(unique_id).value
    except InvalidIdentifier as exc:
        raise InvalidIdentifier(
            f"SubmissionSet uniqueId: {exc.message}", expression=f"{at}.identifier"
        ) from None
    source_id = None
    for i, item in enumerate(r.lst(resource.get("extension"), "extension")):
        ext = r.obj(item, f"extension[{i}]")
        assert ext is not None
        if ext.get("url") != SOURCE_ID_EXTENSION:
            continue
        path = f"extension[{i}]"
        if ext.get("valueIdentifier") is not None:
            ident = r.obj(ext.get("valueIdentifier"), f"{path}.valueIdentifier")
            assert ident is not None
            source_id = r.req_text(ident.get("value"), f"{path}.valueIdentifier.value")
        else:
            source_id = r.req_text(ext.get("valueUri"), f"{path}.valueUri")
    if source_id is None:
        raise r.fail(
            "extension[ihe-sourceId]", "the SubmissionSet needs a sourceId", code="required"
        )
    if len(source_id) > _MAX_SOURCE_ID:
        raise r.fail("extension[ihe-sourceId]", f"at most {_MAX_SOURCE_ID} characters")
    subject = r.obj(resource.get("subject"), "subject")
    assert subject is not None
    ident = r.obj(subject.get("identifier"), "subject.identifier")
    assert ident is not None
    system = r.req_text(ident.get("system"), "subject.identifier.system")
    if system not in _PATIENT_SYSTEMS:
        raise r.fail(
            "subject.identifier.system",
            "needs a national identity number identifier",
            code="value",
        )
    try:
        patient = NationalIdentityNumber(r.req_text(ident.get("value"), "subject.identifier.value"))
    except InvalidIdentifier as exc:
        raise InvalidIdentifier(exc.message, expression=f"{at}.subject.identifier.value") from None
    submitted: datetime | None = None
    date = r.text(resource.get("date"), "date", required=False)
    if date is not None:
        try:
            submitted = check_moment(datetime.fromisoformat(date), name=f"{at}.date")
        except DateOutOfRange as exc:
            raise r.fail("date", exc.message.removeprefix(f"{at}.date: "), code="value") from None
        except ValueError:
            raise r.fail("date", f"{_show(date)} is not a dateTime") from None
    return SubmissionSet(
        unique_id=unique,
        entry_uuid=entry_uuid,
        source_id=source_id,
        patient_id=patient,
        submission_time=submitted,
        full_url=full_url,
    )


def _is_submission_set(resource: dict[str, Any]) -> bool:
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    return isinstance(codings, list) and any(
        isinstance(c, dict) and c.get("system") == LIST_TYPES and c.get("code") == "submissionset"
        for c in codings
    )


def _decode_binary(resource: dict[str, Any], at: str) -> bytes:
    data = resource.get("data")
    if not isinstance(data, str):
        raise Unprocessable(
            f"{at}.data: the Binary carries no data", code="required", expression=f"{at}.data"
        )
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        try:
            return base64.b64decode("".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            raise Unprocessable(
                f"{at}.data: not valid base64", code="value", expression=f"{at}.data"
            ) from None


def parse_provide_bundle(body: bytes, *, max_documents: int = 1000) -> ProvideBundle:
    """Parse and validate an ITI-65 Provide Document Bundle (all-or-nothing)."""
    bundle = _load(body)
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest(
            "the body must be a FHIR Bundle", code="structure", expression="Bundle.resourceType"
        )
    if bundle.get("type") != "transaction":
        raise BadRequest(
            f"Bundle.type must be transaction, not {_show(bundle.get('type'))}",
            code="value",
            expression="Bundle.type",
        )
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise BadRequest("the Bundle has no entries", code="required", expression="Bundle.entry")
    if len(entries) > 2 * max_documents + 1:
        # A SubmissionSet and, per document, a DocumentReference and a Binary.
        raise PayloadTooLarge(
            f"the Bundle holds {len(entries)} entries; at most {2 * max_documents + 1} "
            f"({max_documents} documents) are accepted",
            expression="Bundle.entry",
        )

    lists: list[tuple[int, dict[str, Any], str]] = []
    docs: list[tuple[int, dict[str, Any], str]] = []
    binaries: dict[str, tuple[int, dict[str, Any]]] = {}
    order: list[tuple[str, int]] = []
    full_urls: dict[str, int] = {}
    for i, item in enumerate(entries):
        at = f"Bundle.entry[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("resource"), dict):
            raise BadRequest(f"{at} has no resource", code="structure", expression=at)
        resource = item["resource"]
        full_url = item.get("fullUrl")
        if not isinstance(full_url, str) or not full_url:
            raise BadRequest(
                f"{at}.fullUrl is required", code="required", expression=f"{at}.fullUrl"
            )
        if full_url in full_urls:
            # FHIR R4 §3.1.0.11.3: fullUrl is unique within a Bundle.
            raise BadRequest(
                f"{at}.fullUrl {_show(full_url)} appears twice "
                f"(also Bundle.entry[{full_urls[full_url]}])",
                code="invalid",
                expression=f"{at}.fullUrl",
            )
        full_urls[full_url] = i
        kind = resource.get("resourceType")
        request = item.get("request")
        method = request.get("method") if isinstance(request, dict) else None
        if method != "POST":
            # ITI-65 creates every resource it carries (MHD 2:3.65.4.1.2).
            raise BadRequest(
                f"{at}.request.method must be POST, not {_show(method)}",
                code="value",
                expression=f"{at}.request.method",
            )
        if kind == "List" and _is_submission_set(resource):
            lists.append((i, resource, full_url))
            order.append(("List", 0))
        elif kind == "DocumentReference":
            order.append(("DocumentReference", len(docs)))
            docs.append((i, resource, full_url))
        elif kind == "Binary":
            binaries[full_url] = (i, resource)
            order.append(("Binary", i))
        else:
            raise Unprocessable(
                f"{at}.resource: {_show(kind)} is not accepted here (onerecord takes a "
                "SubmissionSet List, DocumentReferences and Binaries; no Folders or Patients)",
                code="not-supported",
                expression=f"{at}.resource",
            )
    if len(lists) != 1:
        raise BadRequest(
            f"the Bundle must hold exactly one SubmissionSet List, found {len(lists)}",
            code="invariant",
            expression="Bundle.entry",
        )
    if not docs:
        raise Unprocessable(
            "the Bundle holds no DocumentReference", code="required", expression="Bundle.entry"
        )
    if len(docs) > max_documents:
        raise PayloadTooLarge(
            f"the Bundle holds {len(docs)} documents; at most {max_documents} are accepted",
            expression="Bundle.entry",
        )
    list_index, list_resource, list_url = lists[0]
    submission_set = _submission_set(
        list_resource, f"Bundle.entry[{list_index}].resource", list_url
    )

    documents: list[SubmittedDocument] = []
    seen: dict[str, int] = {}
    seen_uuids: dict[UUID, int] = {}
    used: set[str] = set()
    for i, resource, full_url in docs:
        at = f"Bundle.entry[{i}].resource"
        url = _attachment_url(resource)
        if url is None or url not in binaries:
            raise Unprocessable(
                f"{at}.content[0].attachment.url must be the fullUrl of a Binary in this Bundle"
                f" (got {url!r})",
                code="invalid",
                expression=f"{at}.content[0].attachment.url",
            )
        if url in used:
            raise Unprocessable(
                f"{at}.content[0].attachment.url: Binary {url} is used twice",
                code="invalid",
                expression=f"{at}.content[0].attachment.url",
            )
        used.add(url)
        b_index, b_resource = binaries[url]
        content = _decode_binary(b_resource, f"Bundle.entry[{b_index}].resource")
        entry = entry_from_document_reference(resource, binary=content, at=at)
        if entry.patient_id != submission_set.patient_id:
            raise Unprocessable(
                f"{at}.subject does not match the SubmissionSet subject",
                code="invariant",
                expression=f"{at}.subject.identifier.value",
            )
        if entry.unique_id.value in seen:
            raise Unprocessable(
                f"{at}.masterIdentifier: uniqueId {entry.unique_id.value} is used twice in the "
                f"Bundle (also Bundle.entry[{seen[entry.unique_id.value]}])",
                code="duplicate",
                expression=f"{at}.masterIdentifier.value",
            )
        seen[entry.unique_id.value] = i
        if entry.entry_uuid in seen_uuids:
            # Refused here: at the registry it would be a unique-index clash.
            raise BadRequest(
                f"{at}.identifier: entryUUID urn:uuid:{entry.entry_uuid} is used twice in the "
                f"Bundle (also Bundle.entry[{seen_uuids[entry.entry_uuid]}])",
                code="duplicate",
                expression=f"{at}.identifier",
            )
        seen_uuids[entry.entry_uuid] = i
        documents.append(SubmittedDocument(entry=entry, content=content, full_url=full_url))
    _check_submission_set_members(list_resource, list_index, {url for _, _, url in docs})
    unused = sorted(set(binaries) - used)
    if unused:
        raise Unprocessable(
            f"Binary {unused[0]} is not the content of any DocumentReference in the Bundle",
            code="invalid",
            expression=f"Bundle.entry[{binaries[unused[0]][0]}]",
        )
    return ProvideBundle(
        submission_set=submission_set, documents=tuple(documents), order=tuple(order)
    )


def _check_submission_set_members(
    list_resource: dict[str, Any], list_index: int, document_urls: set[str]
) -> None:
    """The SubmissionSet lists exactly the Bundle's DocumentReferences (MHD 2:3.65.4.1.2.1)."""
    r = _Reader(f"Bundle.entry[{list_index}].resource")
    at = f"{r.at}.entry"
    listed: set[str] = set()
    for n, element in enumerate(r.lst(list_resource.get("entry"), "entry")):
        entry = r.obj(element, f"entry[{n}]")
        assert entry is not None
        item = r.obj(entry.get("item"), f"entry[{n}].item")
        assert item is not None
        ref = r.req_text(item.get("reference"), f"entry[{n}].item.reference", limit=2048)
        if ref not in document_urls:
            raise Unprocessable(
                f"{at}[{n}].item.reference {_show(ref)} is not a DocumentReference of this Bundle",
                code="invalid",
                expression=f"{at}[{n}].item.reference",
            )
        listed.add(ref)
    missing = sorted(document_urls - listed)
    if missing:
        raise Unprocessable(
            f"the SubmissionSet does not list DocumentReference {missing[0]}",
            code="invariant",
            expression=at,
        )


def _attachment_url(resource: dict[str, Any]) -> str | None:
    contents = resource.get("content")
    if not isinstance(contents, list) or not contents or not isinstance(contents[0], dict):
        return None
    att = contents[0].get("attachment")
    url = att.get("url") if isinstance(att, dict) else None
    return url if isinstance(url, str) else None


def transaction_response(
    bundle: ProvideBundle,
    locations: Sequence[str],
    *,
    submission_set_location: str | None = None,
) -> dict[str, Any]:
    """Build the transaction-response Bundle: one "201 Created" per request entry, in order.

    `locations` are the DocumentReference locations, in the order of `bundle.documents`.
    """
    if len(locations) != len(bundle.documents):
        raise ValueError("one location per DocumentReference is required")
    now = datetime.now(UTC).isoformat()
    out: list[dict[str, Any]] = []
    for kind, index in bundle.order:
        response: dict[str, Any] = {"status": "201 Created", "lastModified": now}
        if kind == "DocumentReference":
            response["location"] = locations[index]
        elif kind == "List" and submission_set_location is not None:
            response["location"] = submission_set_location
        out.append({"response": response})
    return {
        "resourceType": "Bundle",
        "id": str(uuid4()),
        "type": "transaction-response",
        "entry": out,
    }


def build_provide_bundle(
    documents: Sequence[tuple[DocumentEntry, bytes]],
    *,
    source_id: str,
    submission_set_unique_id: str,
) -> dict[str, Any]:
    """Build an ITI-65 transaction Bundle from entries and their bytes (client side).

    Size and hashes are taken from the entries as they are, so a test can send a wrong one.
    The SubmissionSet subject is the first document's patient.
    """
    if not documents:
        raise ValueError("at least one document is required")
    patient = documents[0][0].patient_id
    list_url = f"urn:uuid:{uuid4()}"
    doc_entries: list[dict[str, Any]] = []
    binary_entries: list[dict[str, Any]] = []
    for entry, content in documents:
        binary_url = f"urn:uuid:{uuid4()}"
        doc_url = f"urn:uuid:{entry.entry_uuid}"
        doc_entries.append(
            {
                "fullUrl": doc_url,
                "resource": document_reference(entry, id=None, attachment_url=binary_url),
                "request": {"method": "POST", "url": "DocumentReference"},
            }
        )
        binary_entries.append(
            {
                "fullUrl": binary_url,
                "resource": {
                    "resourceType": "Binary",
                    "contentType": entry.mime_type,
                    "data": base64.b64encode(content).decode("ascii"),
                },
                "request": {"method": "POST", "url": "Binary"},
            }
        )
    unique = submission_set_unique_id
    unique_urn = unique if ":" in unique else f"urn:oid:{unique}"
    submission_set = {
        "resourceType": "List",
        "meta": {"profile": [SUBMISSION_SET_PROFILE]},
        "extension": [
            {"url": SOURCE_ID_EXTENSION, "valueIdentifier": {"value": source_id}},
        ],
        "identifier": [
            {
                "use": "usual",
                "system": RFC3986,
                "value": unique_urn,
            },
            {"use": "official", "system": RFC3986, "value": list_url},
        ],
        "status": "current",
        "mode": "working",
        "title": "SubmissionSet",
        "code": {"coding": [{"system": LIST_TYPES, "code": "submissionset"}]},
        "subject": {"identifier": {"system": f"urn:oid:{patient.system}", "value": patient.value}},
        "date": datetime.now(UTC).isoformat(),
        "entry": [{"item": {"reference": e["fullUrl"]}} for e in doc_entries],
    }
    return {
        "resourceType": "Bundle",
        "id": str(uuid4()),
        "meta": {"profile": [_PROVIDE_BUNDLE_PROFILE]},
        "type": "transaction",
        "entry": [
            {
                "fullUrl": list_url,
                "resource": submission_set,
                "request": {"method": "POST", "url": "List"},
            },
            *doc_entries,
            *binary_entries,
        ],
    }
