"""Read a region's searchset Bundle strictly, without pydantic, for the fan-out hot path.

ITI-67 answers hold DocumentReferences; the citizen's access log holds AuditEvents. Every value
the hub reads later (to merge, sort, rewrite or pass on) has its JSON type checked here, once,
before any logic: a region that sends a malformed entry, or an entry about another patient than
the one asked for, has its whole answer refused as InvalidSearchset, and the fan-out reports
that region `invalid-response` instead of letting one entry fail the search (issue 10 C).

References: IHE MHD ITI-67 §2:3.67.4.2.2 (response: Bundle type searchset of
DocumentReference; OperationOutcome entries with search.mode = outcome for warnings);
IHE MHD §2:3.67.4.2.2 / ITI TF-3 4.2.3.2.16 (DocumentReference.subject = the XDS patientId,
the patient the query names); FHIR R4 §3.1.1.6 (paging via link relation `next`);
FHIR R4 §2.36 (OperationOutcome.issue 1..*).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from onerecord.domain import NationalIdentityNumber

__all__ = [
    "InvalidSearchset",
    "SearchsetPage",
    "WrongPatient",
    "parse_read_answer",
    "parse_searchset",
]


class InvalidSearchset(ValueError):
    """A region's answer is not a searchset Bundle of the resources asked for."""


class WrongPatient(InvalidSearchset):
    """A DocumentReference is not about the patient asked for (or names no patient).

    The message never holds the identifier the region sent: it may be another person's.
    """


@dataclass(frozen=True, slots=True)
class SearchsetPage:
    """One page of a region's answer."""

    resources: list[dict[str, Any]]
    issues: list[dict[str, Any]]
    next_url: str | None


# The JSON type of every DocumentReference element the hub or its callers read. Elements not
# named here are passed on untouched; these are the ones a wrong type would break.
_DOCREF_ELEMENTS: Mapping[str, type] = {
    "id": str,
    "meta": dict,
    "extension": list,
    "masterIdentifier": dict,
    "identifier": list,
    "status": str,
    "docStatus": str,
    "type": dict,
    "category": list,
    "subject": dict,
    "date": str,
    "author": list,
    "custodian": dict,
    "relatesTo": list,
    "description": str,
    "securityLabel": list,
    "content": list,
    "context": dict,
}
_LISTS_OF_OBJECTS = ("extension", "identifier", "category", "author", "relatesTo", "securityLabel")
_ATTACHMENT_ELEMENTS: Mapping[str, type] = {
    "contentType": str,
    "language": str,
    "url": str,
    "size": int,
    "hash": str,
    "title": str,
    "creation": str,
}
_PERIOD: Mapping[str, type] = {"start": str, "end": str}
_OTHER_ELEMENTS: Mapping[str, type] = {
    "id": str,
    "extension": list,
    "source": dict,
    "recorded": str,
}
_ISSUE_ELEMENTS: Mapping[str, type] = {
    "extension": list,
    "severity": str,
    "code": str,
    "details": dict,
    "diagnostics": str,
    "location": list,
    "expression": list,
}
_JSON_NAMES = {str: "a string", dict: "an object", list: "a list", int: "an integer"}


def parse_searchset(
    body: bytes,
    *,
    resource_type: str = "DocumentReference",
    patient: NationalIdentityNumber | None = None,
) -> SearchsetPage:
    """Parse one searchset page of `resource_type`; raise InvalidSearchset for anything else.

    With `patient`, every DocumentReference must name that patient in `subject.identifier`
    (WrongPatient otherwise).
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidSearchset("the response is not JSON") from exc
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        raise InvalidSearchset("the response is not a FHIR Bundle")
    try:
        # The hub serialises what it passes on again; orjson stops at 255 levels of nesting.
        # Each part is shallower in the hub's answer than here, so one check here suffices.
        orjson.dumps(doc)
    except orjson.JSONEncodeError:
        raise InvalidSearchset("the response is nested too deeply") from None
    if doc.get("type") != "searchset":
        raise InvalidSearchset(f"the Bundle has type {_shown(doc.get('type'))}, not 'searchset'")
    entries = doc.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidSearchset("Bundle.entry is not a list")
    resources: list[dict[str, Any]] = []
    issues: list[dict[str, Any]] = []
    subject = _subject_of(patient)
    for i, entry in enumerate(entries):
        at = f"Bundle.entry[{i}]"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            raise InvalidSearchset(f"{at}.resource is not an object")
        kind = resource.get("resourceType")
        if kind == resource_type:
            if kind == "DocumentReference":
                if not _document_reference_ok(resource, subject):
                    # Say exactly what is wrong (the fast check only says that something is).
                    _check_document_reference(resource, f"{at}.resource", patient)
            else:
                _check_other_resource(resource, f"{at}.resource")
            resources.append(resource)
        elif kind == "OperationOutcome":
            issues.extend(_outcome_issues(resource, f"{at}.resource"))
        else:
            raise InvalidSearchset(f"{at} holds {_shown(kind)}, not a {resource_type}")
    return SearchsetPage(resources=resources, issues=issues, next_url=_next_link(doc))


def parse_read_answer(body: bytes, *, patient: NationalIdentityNumber) -> dict[str, Any]:
    """Parse a region's answer to a DocumentReference read, held to a search entry's rules:
    the JSON types the hub reads, and a subject that is `patient` (else InvalidSearchset)."""
    try:
        resource = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidSearchset("the response is not JSON") from exc
    if not isinstance(resource, dict) or resource.get("resourceType") != "DocumentReference":
        raise InvalidSearchset("the response is not a DocumentReference")
    try:
        orjson.dumps(resource)
    except orjson.JSONEncodeError:
        raise InvalidSearchset("the response is nested too deeply") from None
    _check_document_reference(resource, "DocumentReference", patient)
    return resource


def _shown(value: Any) -> str:
    """Name a value from the wire in a message: a short string as is, anything else by type."""
    if isinstance(value, str):
        return repr(value[:40])
    return f"a JSON {type(value).__name__}" if value is not None else "nothing"


def _require(value: Any, expected: type, at: str) -> None:
    # bool is an int in Python, never in JSON.
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise InvalidSearchset(f"{at} is not {_JSON_NAMES[expected]}")


def _check_elements(obj: dict[str, Any], table: Mapping[str, type], at: str) -> None:
    for name, expected in table.items():
        if name in obj:
            _require(obj[name], expected, f"{at}.{name}")


def _check_list_of_objects(items: list[Any], at: str) -> None:
    for j, item in enumerate(items):
        _require(item, dict, f"{at}[{j}]")


def _check_extensions(obj: dict[str, Any], at: str) -> None:
    for j, ext in enumerate(obj.get("extension") or ()):
        _require(ext.get("url"), str, f"{at}.extension[{j}].url")


def _check_document_reference(
    resource: dict[str, Any], at: str, patient: NationalIdentityNumber | None
) -> None:
    """Check the JSON types of what is read of a DocumentReference, and its subject."""
    _check_elements(resource, _DOCREF_ELEMENTS, at)
    for name in _LISTS_OF_OBJECTS:
        _check_list_of_objects(resource.get(name) or [], f"{at}.{name}")
    _check_extensions(resource, at)
    master = resource.get("masterIdentifier")
    if master is not None and "value" in master:
        _require(master["value"], str, f"{at}.masterIdentifier.value")
    content = resource.get("content")
    if not content:
        raise InvalidSearchset(f"{at}.content is missing (DocumentReference.content is 1..*)")
    for j, item in enumerate(content):
        _require(item, dict, f"{at}.content[{j}]")
        attachment = item.get("attachment")
        _require(attachment, dict, f"{at}.content[{j}].attachment")
        _check_elements(attachment, _ATTACHMENT_ELEMENTS, f"{at}.content[{j}].attachment")
    context = resource.get("context")
    period = context.get("period") if context is not None else None
    if period is not None:
        _require(period, dict, f"{at}.context.period")
        _check_elements(period, _PERIOD, f"{at}.context.period")
    if patient is not None:
        _check_subject(resource.get("subject"), at, patient)


def _subject_of(patient: NationalIdentityNumber | None) -> tuple[str, str] | None:
    """The (system, value) every DocumentReference's subject.identifier must hold, if any."""
    return None if patient is None else (f"urn:oid:{patient.system}", patient.value)


def _all_typed(obj: dict[str, Any], table: Mapping[str, type]) -> bool:
    for name, value in obj.items():
        expected = table.get(name)
        # Exact types: orjson returns no subclasses, and a JSON true is never an integer.
        if expected is not None and type(value) is not expected:
            return False
    return True


def _document_reference_ok(resource: dict[str, Any], subject: tuple[str, str] | None) -> bool:
    """The hot path of `_check_document_reference`: True only when it would pass.

    Every entry of every region answer goes through here, so it checks the same rules with as
    little Python as it can; on False the full check runs and names what is wrong.
    """
    if not _all_typed(resource, _DOCREF_ELEMENTS):
        return False
    for name in _LISTS_OF_OBJECTS:
        for item in resource.get(name) or ():
            if type(item) is not dict:
                return False
    for ext in resource.get("extension") or ():
        if type(ext.get("url")) is not str:
            return False
    master = resource.get("masterIdentifier")
    if master is not None and "value" in master and type(master["value"]) is not str:
        return False
    content = resource.get("content")
    if not content:
        return False
    for item in content:
        if type(item) is not dict:
            return False
        attachment = item.get("attachment")
        if type(attachment) is not dict or not _all_typed(attachment, _ATTACHMENT_ELEMENTS):
            return False
    context = resource.get("context")
    period = context.get("period") if context is not None else None
    if period is not None and (type(period) is not dict or not _all_typed(period, _PERIOD)):
        return False
    if subject is None:
        return True
    about = resource.get("subject")
    identifier = about.get("identifier") if about is not None else None
    return (
        type(identifier) is dict
        and identifier.get("value") == subject[1]
        and identifier.get("system") == subject[0]
    )


def _check_other_resource(resource: dict[str, Any], at: str) -> None:
    """Check what the hub reads of another resource (an AuditEvent of the access log)."""
    _check_elements(resource, _OTHER_ELEMENTS, at)
    _check_list_of_objects(resource.get("extension") or [], f"{at}.extension")


def _check_subject(subject: Any, at: str, patient: NationalIdentityNumber) -> None:
    """The entry must be about `patient`: subject.identifier is its system and value."""
    identifier = subject.get("identifier") if isinstance(subject, dict) else None
    if not isinstance(identifier, dict):
        raise WrongPatient(f"{at}.subject names no patient identifier")
    if identifier.get("value") != patient.value or identifier.get("system") != (
        f"urn:oid:{patient.system}"
    ):
        raise WrongPatient(f"{at} is about another patient than the one asked for")


def _outcome_issues(resource: dict[str, Any], at: str) -> list[dict[str, Any]]:
    """Return an OperationOutcome's issues after checking the types of what is passed on."""
    issues = resource.get("issue")
    if not isinstance(issues, list) or not issues:
        raise InvalidSearchset(f"{at}.issue is not a list of issues (OperationOutcome.issue 1..*)")
    for j, issue in enumerate(issues):
        here = f"{at}.issue[{j}]"
        _require(issue, dict, here)
        _check_elements(issue, _ISSUE_ELEMENTS, here)
        _require(issue.get("severity"), str, f"{here}.severity")
        _require(issue.get("code"), str, f"{here}.code")
        _check_list_of_objects(issue.get("extension") or [], f"{here}.extension")
        _check_extensions(issue, here)
        for name in ("location", "expression"):
            for k, text in enumerate(issue.get(name) or ()):
                _require(text, str, f"{here}.{name}[{k}]")
        details = issue.get("details")
        if details is not None:
            codings = details.get("coding", [])
            _require(codings, list, f"{here}.details.coding")
            _check_list_of_objects(codings, f"{here}.details.coding")
    return issues


def _next_link(doc: dict[str, Any]) -> str | None:
    links = doc.get("link")
    if links is None:
        return None
    _require(links, list, "Bundle.link")
    for j, link in enumerate(links):
        _require(link, dict, f"Bundle.link[{j}]")
        if link.get("relation") == "next":
            url = link.get("url")
            _require(url, str, f"Bundle.link[{j}].url")
            return url or None
    return None
