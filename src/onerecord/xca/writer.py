"""The AdhocQueryResponse written straight to bytes: the ITI-38 answer's fast path.

`render_query_response` (`onerecord.xca.ebrim`) builds an lxml tree: about 65 elements per
DocumentEntry, each a Python call, then serialised — the larger part of an ITI-38 answer's cost
(docs/benchmarks.md, issue 13). This writer emits the same document from string templates: the
same elements, attributes in the same order, the same namespace prefixes, so its bytes equal
lxml's serialisation of `render_query_response` (tests/xca/test_writer.py holds it to that for
generated entries, byte for byte and canonicalised).

Every value is escaped as lxml escapes it (attributes: & < > " and TAB, LF, CR as character
references; text: & < > and CR), and a value that XML 1.0 cannot carry (control characters,
surrogates, U+FFFE/U+FFFF) is refused with ValueError, as lxml refuses it: the writer never
joins an unescaped value into the document.

References: ebRS 3.0 §6 (AdhocQueryResponse), ebRIM 3.0 §2; XML 1.0 §2.2 (Char), §2.4
(character data), §3.3.3 (attribute-value normalisation: why TAB/LF/CR are references).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from onerecord.domain import Coding, DocumentEntry, DocumentStatus, strip_urn_oid
from onerecord.xca.ebrim import (
    _CITIZEN_RELEASE,
    _REFERENCE_ID_LIST,
    _SHA256,
    _SUBMISSION_TIME,
    ASSOCIATION_TYPE,
    AUTHOR_SCHEME,
    CLASS_CODE_SCHEME,
    CONFIDENTIALITY_SCHEME,
    DOCUMENT_ENTRY_TYPE,
    EVENT_CODE_SCHEME,
    FACILITY_TYPE_SCHEME,
    FORMAT_CODE_SCHEME,
    PATIENT_ID_SCHEME,
    PRACTICE_SETTING_SCHEME,
    STATUS_APPROVED,
    STATUS_DEPRECATED,
    TYPE_CODE_SCHEME,
    UNIQUE_ID_SCHEME,
    EbSlot,
    ExtrinsicEntry,
    QueryResponse,
    _child_id,
    _cx,
    _dtm,
    _institution_values,
    _xcn,
)
from onerecord.xca.xml import QUERY, RIM, RS

__all__ = ["document_entry_xml", "extrinsic_object_xml", "query_response_xml"]

_CLASSIFICATION_TYPE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification"
_EXTERNAL_ID_TYPE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier"
_ERROR_SEVERITY = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
_WARNING_SEVERITY = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ATTR_SPECIAL = re.compile('[&<>"\t\n\r]')
_TEXT_SPECIAL = re.compile("[&<>\r]")
_ATTR_TABLE = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)
_TEXT_TABLE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})


def _attr(value: str) -> str:
    """An attribute value escaped for double quotes (the common case costs one regex scan)."""
    return value.translate(_ATTR_TABLE) if _ATTR_SPECIAL.search(value) else value


def _text(value: str) -> str:
    return value.translate(_TEXT_TABLE) if _TEXT_SPECIAL.search(value) else value


def _slots(out: list[str], slots: tuple[EbSlot, ...]) -> None:
    for slot in slots:
        out.append(f'<rim:Slot name="{_attr(slot.name)}">')
        if slot.values:
            out.append("<rim:ValueList>")
            for value in slot.values:
                out.append(f"<rim:Value>{_text(value)}</rim:Value>")
            out.append("</rim:ValueList></rim:Slot>")
        else:
            out.append("<rim:ValueList/></rim:Slot>")


def _name(out: list[str], value: str | None) -> None:
    if value is not None:
        out.append(f'<rim:Name><rim:LocalizedString value="{_attr(value)}"/></rim:Name>')


def _extrinsic_object(out: list[str], entry: ExtrinsicEntry) -> None:
    """One ExtrinsicObject, as `ebrim.write_extrinsic_object` builds it."""
    entry_id = _attr(entry.id)
    out.append(
        f'<rim:ExtrinsicObject id="{entry_id}" status="{_attr(entry.status)}" '
        f'mimeType="{_attr(entry.mime_type)}" objectType="{_attr(entry.object_type)}"'
    )
    if entry.lid is not None:
        out.append(f' lid="{_attr(entry.lid)}"')
    if entry.home is not None:
        out.append(f' home="{_attr(entry.home)}"')
    children = entry.slots or entry.classifications or entry.external_identifiers
    if not children and entry.title is None:
        out.append("/>")
        return
    out.append(">")
    _slots(out, entry.slots)
    _name(out, entry.title)
    for c in entry.classifications:
        out.append(
            f'<rim:Classification id="{_attr(c.id)}" classificationScheme="{_attr(c.scheme)}" '
            f'classifiedObject="{entry_id}" nodeRepresentation="{_attr(c.node_representation)}" '
            f'objectType="{_CLASSIFICATION_TYPE}"'
        )
        if c.slots or c.name is not None:
            out.append(">")
            _slots(out, c.slots)
            _name(out, c.name)
            out.append("</rim:Classification>")
        else:
            out.append("/>")
    for e in entry.external_identifiers:
        out.append(
            f'<rim:ExternalIdentifier id="{_attr(e.id)}" registryObject="{entry_id}" '
            f'identificationScheme="{_attr(e.scheme)}" value="{_attr(e.value)}" '
            f'objectType="{_EXTERNAL_ID_TYPE}"'
        )
        if e.name is not None:
            out.append(">")
            _name(out, e.name)
            out.append("</rim:ExternalIdentifier>")
        else:
            out.append("/>")
    out.append("</rim:ExtrinsicObject>")


def extrinsic_object_xml(entry: ExtrinsicEntry) -> str:
    """One ExtrinsicObject, written (for `query_response_xml`'s `written`)."""
    out: list[str] = []
    _extrinsic_object(out, entry)
    return "".join(out)


def _value_slot(name: str, value: str) -> str:
    """A one-value Slot; `name` is one of this module's constants (nothing to escape)."""
    return (
        f'<rim:Slot name="{name}"><rim:ValueList><rim:Value>{_text(value)}</rim:Value>'
        "</rim:ValueList></rim:Slot>"
    )


def _coded(out: list[str], entry_id: str, scheme: str, coding: Coding, index: int) -> None:
    out.append(
        f'<rim:Classification id="{_child_id(entry_id, scheme, index)}" '
        f'classificationScheme="{scheme}" classifiedObject="{entry_id}" '
        f'nodeRepresentation="{_attr(coding.code)}" objectType="{_CLASSIFICATION_TYPE}">'
        f"{_value_slot('codingScheme', strip_urn_oid(coding.system))}"
    )
    if coding.display is not None:
        out.append(f'<rim:Name><rim:LocalizedString value="{_attr(coding.display)}"/></rim:Name>')
    out.append("</rim:Classification>")


def document_entry_xml(entry: DocumentEntry) -> str:
    """The ExtrinsicObject of a DocumentEntry, written without the ExtrinsicEntry in between.

    The same text as `extrinsic_object_xml(ebrim_from_entry(entry))` (the mapping's table is
    in `onerecord.xca.ebrim`; tests/xca/test_writer.py holds the two to the same bytes): the
    ITI-38 answer writes every entry shown in full this way, as the MHD path writes stored
    renderings. ValueError for an entered-in-error entry, as `ebrim_from_entry`.
    """
    if entry.status is DocumentStatus.ENTERED_IN_ERROR:
        raise ValueError("an entered-in-error entry has no XDS status; it is not answered")
    entry_id = f"urn:uuid:{entry.entry_uuid}"
    status = STATUS_DEPRECATED if entry.status is DocumentStatus.SUPERSEDED else STATUS_APPROVED
    out = [
        f'<rim:ExtrinsicObject id="{entry_id}" status="{status}" '
        f'mimeType="{_attr(entry.mime_type)}" objectType="{DOCUMENT_ENTRY_TYPE}" '
        f'lid="{entry_id}"'
    ]
    if entry.home_community_id is not None:
        out.append(f' home="{_attr(entry.home_community_id.urn)}"')
    out.append(">")
    out.append(_value_slot("creationTime", _dtm(entry.creation_time)))
    out.append(_value_slot("hash", entry.hash_sha1))
    out.append(_value_slot("size", str(entry.size)))
    out.append(_value_slot("languageCode", entry.language_code))
    if entry.repository_unique_id is not None:
        out.append(_value_slot("repositoryUniqueId", entry.repository_unique_id.oid.value))
    if entry.service_start_time is not None:
        out.append(_value_slot("serviceStartTime", _dtm(entry.service_start_time)))
    if entry.service_stop_time is not None:
        out.append(_value_slot("serviceStopTime", _dtm(entry.service_stop_time)))
    patient = _cx(entry.patient_id)
    out.append(_value_slot("sourcePatientId", patient))
    if entry.reference_ids:
        _slots(out, (EbSlot(_REFERENCE_ID_LIST, entry.reference_ids),))
    out.append(_value_slot(_SHA256, entry.hash_sha256))
    if entry.citizen_release_time is not None:
        out.append(_value_slot(_CITIZEN_RELEASE, _dtm(entry.citizen_release_time)))
    if entry.submission_time is not None:
        out.append(_value_slot(_SUBMISSION_TIME, _dtm(entry.submission_time)))
    _name(out, entry.title)
    for i, author in enumerate(entry.authors):
        out.append(
            f'<rim:Classification id="{_child_id(entry_id, AUTHOR_SCHEME, i)}" '
            f'classificationScheme="{AUTHOR_SCHEME}" classifiedObject="{entry_id}" '
            f'nodeRepresentation="" objectType="{_CLASSIFICATION_TYPE}"'
        )
        slots: list[EbSlot] = []
        if author.person is not None:
            slots.append(EbSlot("authorPerson", (_xcn(author.person),)))
        if author.institution is not None:
            slots.append(EbSlot("authorInstitution", _institution_values(author.institution)))
        if author.role is not None:
            slots.append(EbSlot("authorRole", (author.role,)))
        if slots:
            out.append(">")
            _slots(out, tuple(slots))
            out.append("</rim:Classification>")
        else:
            out.append("/>")
    _coded(out, entry_id, CLASS_CODE_SCHEME, entry.class_code, 0)
    for i, code in enumerate(entry.confidentiality_codes):
        _coded(out, entry_id, CONFIDENTIALITY_SCHEME, code, i)
    for i, code in enumerate(entry.event_codes):
        _coded(out, entry_id, EVENT_CODE_SCHEME, code, i)
    _coded(out, entry_id, FORMAT_CODE_SCHEME, entry.format_code, 0)
    _coded(out, entry_id, FACILITY_TYPE_SCHEME, entry.healthcare_facility_type, 0)
    _coded(out, entry_id, PRACTICE_SETTING_SCHEME, entry.practice_setting, 0)
    _coded(out, entry_id, TYPE_CODE_SCHEME, entry.type_code, 0)
    out.append(
        f'<rim:ExternalIdentifier id="{_child_id(entry_id, UNIQUE_ID_SCHEME, 0)}" '
        f'registryObject="{entry_id}" identificationScheme="{UNIQUE_ID_SCHEME}" '
        f'value="{_attr(entry.unique_id.value)}" objectType="{_EXTERNAL_ID_TYPE}">'
        '<rim:Name><rim:LocalizedString value="XDSDocumentEntry.uniqueId"/></rim:Name>'
        "</rim:ExternalIdentifier>"
        f'<rim:ExternalIdentifier id="{_child_id(entry_id, PATIENT_ID_SCHEME, 0)}" '
        f'registryObject="{entry_id}" identificationScheme="{PATIENT_ID_SCHEME}" '
        f'value="{_attr(patient)}" objectType="{_EXTERNAL_ID_TYPE}">'
        '<rim:Name><rim:LocalizedString value="XDSDocumentEntry.patientId"/></rim:Name>'
        "</rim:ExternalIdentifier></rim:ExtrinsicObject>"
    )
    return "".join(out)


def query_response_xml(response: QueryResponse, *, written: Sequence[str] = ()) -> bytes:
    """The AdhocQueryResponse element of `response` as UTF-8 bytes (no XML declaration).

    `written` are ExtrinsicObjects already written (`document_entry_xml`,
    `extrinsic_object_xml`), placed after `response.entries`. The same document as
    `etree.tostring(render_query_response(response))` with those entries; ValueError when a
    value holds a character XML cannot carry.
    """
    out = [
        f'<query:AdhocQueryResponse xmlns:query="{QUERY}" xmlns:rim="{RIM}" xmlns:rs="{RS}" '
        f'status="{_attr(response.status)}">'
    ]
    if response.errors:
        # ebRS 3.0 §2.1.4: the highest severity of the list (a list of warnings says Warning).
        error = any(e.severity == _ERROR_SEVERITY for e in response.errors)
        highest = _ERROR_SEVERITY if error else _WARNING_SEVERITY
        out.append(f'<rs:RegistryErrorList highestSeverity="{highest}">')
        for e in response.errors:
            out.append(
                f'<rs:RegistryError errorCode="{_attr(e.error_code)}" '
                f'codeContext="{_attr(e.code_context)}" severity="{_attr(e.severity)}"'
            )
            if e.location is not None:
                out.append(f' location="{_attr(e.location)}"')
            out.append("/>")
        out.append("</rs:RegistryErrorList>")
    if not (response.object_refs or response.entries or written or response.associations):
        out.append("<rim:RegistryObjectList/></query:AdhocQueryResponse>")
    else:
        out.append("<rim:RegistryObjectList>")
        home = None if response.home is None else _attr(response.home)
        for ref in response.object_refs:
            if home is not None:
                out.append(f'<rim:ObjectRef id="{_attr(ref)}" home="{home}"/>')
            else:
                out.append(f'<rim:ObjectRef id="{_attr(ref)}"/>')
        for entry in response.entries:
            _extrinsic_object(out, entry)
        out.extend(written)
        for a in response.associations:
            out.append(
                f'<rim:Association id="{_attr(a.id)}" associationType="{_attr(a.association_type)}"'
                f' sourceObject="{_attr(a.source)}" targetObject="{_attr(a.target)}"'
                f' objectType="{ASSOCIATION_TYPE}"/>'
            )
        out.append("</rim:RegistryObjectList></query:AdhocQueryResponse>")
    document = "".join(out)
    if _NOT_XML.search(document):
        raise ValueError("a value holds a character XML 1.0 cannot carry")
    return document.encode()
