"""Which patient a document's own content names, checked against its metadata at ITI-65.

A FHIR document (Bundle of type document: `Composition.subject`, resolved to its Patient, or an
identifier on the subject itself), a KITH XML message (`Patient/OffId`) and an HL7 CDA document
(`recordTarget/patientRole/id`) carry the patient. A document whose content names another
patient than `DocumentReference.subject` would be shown under the wrong patient: it is refused
before anything is written. Formats without a patient (PDF, images, text) are not read.

    ContentRefused (Unprocessable, 422)
    ├── ContentPatientMismatch   the content names another patient than the metadata
    └── UnreadableContent        XML or JSON that cannot be read safely (DTD, entities, malformed)

XML is parsed with no network, no DTD loading and no entity expansion, and a document that
declares entities is refused (billion laughs, external entities). JSON is read with orjson
(bounded nesting) only up to MAX_CHECKED_BYTES.

References: IHE MHD ITI-65 §2:3.65.4.1.3 (the Document Recipient validates what it receives);
IHE ITI TF-3 4.2.3.2.23 (patientId: the subject of the document); HL7 FHIR R4 §3.3 (Documents:
Composition.subject); KITH message standards (Patient/OffId, TypeOffId FNR/DNR); HL7 CDA R2
(recordTarget); issue 10, G.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import orjson
from lxml import etree  # type: ignore[import-untyped]

from onerecord.domain import DNR_SYSTEM, FNR_SYSTEM, HNR_SYSTEM
from onerecord.domain.xml import hardened_xml_parser
from onerecord.mhd import Unprocessable
from onerecord.mhd.iti65 import SubmittedDocument

__all__ = [
    "MAX_CHECKED_BYTES",
    "ContentPatientMismatch",
    "ContentRefused",
    "UnreadableContent",
    "check_content_patients",
    "content_patients",
]

MAX_CHECKED_BYTES = 32 * 1024 * 1024
"""Largest XML or JSON document read for its patient; a larger one of such a type is refused."""

_THREAD_BYTES = 256 * 1024  # above this, read in a worker thread: keep the event loop free
_IDENTITY_SYSTEMS = frozenset({FNR_SYSTEM, DNR_SYSTEM, HNR_SYSTEM})
_KITH_NS_PREFIX = "http://www.kith.no/xmlstds/"
_KITH_IDENTITY_TYPES = frozenset({"FNR", "DNR", "HNR"})
_CDA_NS = "urn:hl7-org:v3"
_NO_DTD = "XML content with entity declarations is refused"
_JSON_TYPES = frozenset({"application/fhir+json", "application/json"})
_XML_TYPES = frozenset({"text/xml", "application/xml", "application/fhir+xml"})


class ContentRefused(Unprocessable):
    """The content of a submitted document breaks a rule of this source."""


class ContentPatientMismatch(ContentRefused):
    """The document's content names another patient than its DocumentReference.subject."""


class UnreadableContent(ContentRefused):
    """The XML or JSON content cannot be read safely for the patient it names."""


def _system(raw: Any) -> str:
    return raw.removeprefix("urn:oid:") if isinstance(raw, str) else ""


def _fhir_identifiers(resource: Any) -> list[str]:
    """National identity numbers among a resource's `identifier` (a list or one object)."""
    if not isinstance(resource, dict):
        return []
    found = resource.get("identifier")
    items = found if isinstance(found, list) else [found]
    return [
        str(i.get("value", "")).strip()
        for i in items
        if isinstance(i, dict) and _system(i.get("system")) in _IDENTITY_SYSTEMS
    ]


def _fhir_patients(data: Any) -> list[str]:
    """The patients a FHIR document names: Composition.subject, directly or by reference.

    Other Patient resources in the Bundle (a mother, a donor) are not the document's subject.
    """
    if not isinstance(data, dict):
        raise UnreadableContent("the FHIR content is not a JSON object")
    kind = data.get("resourceType")
    if kind == "Composition":
        return _fhir_identifiers(data.get("subject"))
    if kind != "Bundle" or data.get("type") != "document":
        return []
    entries = data.get("entry")
    if not isinstance(entries, list):
        return []
    resources: dict[str, Any] = {}
    composition: Any = None
    for item in entries:
        if not isinstance(item, dict) or not isinstance(item.get("resource"), dict):
            continue
        resource = item["resource"]
        if isinstance(item.get("fullUrl"), str):
            resources[item["fullUrl"]] = resource
        if isinstance(resource.get("resourceType"), str) and isinstance(resource.get("id"), str):
            resources[f"{resource['resourceType']}/{resource['id']}"] = resource
        if composition is None and resource.get("resourceType") == "Composition":
            composition = resource
    names: list[str] = []
    if isinstance(composition, dict):
        subject = composition.get("subject")
        names.extend(_fhir_identifiers(subject))
        if isinstance(subject, dict) and isinstance(subject.get("reference"), str):
            names.extend(_fhir_identifiers(resources.get(subject["reference"])))
    return names


def _xml_patients(content: bytes) -> list[str]:
    """The patients a KITH message or a CDA document names; none for other XML."""
    if b"<!ENTITY" in content:
        raise UnreadableContent(_NO_DTD)
    try:
        root = etree.fromstring(content, parser=hardened_xml_parser(remove_comments=True))
    except etree.XMLSyntaxError as exc:
        raise UnreadableContent(f"the XML content is not well-formed: {exc.msg}") from None
    except ValueError:
        raise UnreadableContent("the XML content cannot be read") from None
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        # Declarations the byte scan could not see (another encoding): refused all the same. A
        # bare DOCTYPE (`<!DOCTYPE html>`, an external DTD) is harmless: nothing is loaded.
        raise UnreadableContent(_NO_DTD)
    namespace = etree.QName(root).namespace or ""
    if namespace.startswith(_KITH_NS_PREFIX):
        names: list[str] = []
        for patient in root.iter(f"{{{namespace}}}Patient"):
            kind = patient.find(f"{{{namespace}}}TypeOffId")
            if kind is not None and kind.get("V") not in _KITH_IDENTITY_TYPES:
                continue
            for off_id in patient.findall(f"{{{namespace}}}OffId"):
                names.append((off_id.text or "").strip())
        return names
    if namespace == _CDA_NS:
        path = f"{{{_CDA_NS}}}recordTarget/{{{_CDA_NS}}}patientRole/{{{_CDA_NS}}}id"
        return [
            (node.get("extension") or "").strip()
            for node in root.findall(path)
            if node.get("root") in _IDENTITY_SYSTEMS
        ]
    return []


def content_patients(mime_type: str, content: bytes) -> list[str]:
    """Return the national identity numbers the content names as its patient (may be empty).

    Raises UnreadableContent for XML or JSON that cannot be read safely.
    """
    media = mime_type.split(";", 1)[0].strip().lower()
    is_json = media in _JSON_TYPES or media.endswith("+json")
    is_xml = media in _XML_TYPES or media.endswith("+xml")
    if not (is_json or is_xml):
        return []
    if len(content) > MAX_CHECKED_BYTES:
        raise UnreadableContent(
            f"{media} content over {MAX_CHECKED_BYTES} bytes cannot be checked for its patient"
        )
    if is_xml:
        return _xml_patients(content)
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise UnreadableContent(f"the JSON content is not valid: {exc.msg}") from None
    return _fhir_patients(data)


def check_document_patient(document: SubmittedDocument, *, index: int = 0) -> None:
    """Refuse a document whose content names another patient than its metadata."""
    entry = document.entry
    expression = f"Bundle.entry[{index}].resource.content[0].attachment"
    try:
        named = content_patients(entry.mime_type, document.content)
    except UnreadableContent as exc:
        raise UnreadableContent(
            f"document {entry.unique_id}: {exc.message}", expression=expression
        ) from None
    if any(n != entry.patient_id.value for n in named):
        # The numbers are not echoed: error bodies end up in logs, which hold no identifiers.
        raise ContentPatientMismatch(
            f"document {entry.unique_id}: its {_where(entry.mime_type)} names another patient "
            "than DocumentReference.subject",
            expression=expression,
        )


def _where(mime_type: str) -> str:
    return "content's patient (XML)" if "xml" in mime_type else "content's Composition.subject"


def _check_all(documents: Sequence[SubmittedDocument]) -> None:
    for index, document in enumerate(documents):
        check_document_patient(document, index=index)


async def check_content_patients(documents: Sequence[SubmittedDocument]) -> None:
    """Check every submitted document's content patient; large ones in a worker thread."""
    if sum(len(d.content) for d in documents) > _THREAD_BYTES:
        await anyio.to_thread.run_sync(_check_all, documents)
    else:
        _check_all(documents)
