"""Read a region's searchset Bundle strictly, without pydantic, for the fan-out hot path.

ITI-67 answers hold DocumentReferences; the citizen's access log holds AuditEvents.

References: IHE MHD ITI-67 §2:3.67.4.2.2 (response: Bundle type searchset of
DocumentReference; OperationOutcome entries with search.mode = outcome for warnings);
FHIR R4 §3.1.1.6 (paging via link relation `next`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["InvalidSearchset", "SearchsetPage", "parse_searchset"]


class InvalidSearchset(ValueError):
    """A region's answer is not a searchset Bundle of the resources asked for."""


@dataclass(frozen=True, slots=True)
class SearchsetPage:
    """One page of a region's answer."""

    resources: list[dict[str, Any]]
    issues: list[dict[str, Any]]
    next_url: str | None


def parse_searchset(body: bytes, *, resource_type: str = "DocumentReference") -> SearchsetPage:
    """Parse one searchset page of `resource_type`; raise InvalidSearchset for anything else."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidSearchset("the response is not JSON") from exc
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        raise InvalidSearchset("the response is not a FHIR Bundle")
    if doc.get("type") != "searchset":
        raise InvalidSearchset(f"the Bundle has type {doc.get('type')!r}, not 'searchset'")
    entries = doc.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidSearchset("Bundle.entry is not a list")
    resources: list[dict[str, Any]] = []
    issues: list[dict[str, Any]] = []
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if kind == resource_type:
            assert isinstance(resource, dict)
            resources.append(resource)
        elif kind == "OperationOutcome":
            assert isinstance(resource, dict)
            found = resource.get("issue")
            if isinstance(found, list):
                issues.extend(x for x in found if isinstance(x, dict))
        else:
            raise InvalidSearchset(f"Bundle.entry[{i}] holds {kind!r}, not a {resource_type}")
    return SearchsetPage(resources=resources, issues=issues, next_url=_next_link(doc))


def _next_link(doc: dict[str, Any]) -> str | None:
    links = doc.get("link")
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if isinstance(url, str) and url:
                return url
    return None
