"""Render the hub's answers as FHIR JSON bytes: Bundle pages assembled from pre-serialised entries.

A snapshot keeps every Bundle entry as orjson bytes, so serving a page is a byte join, not a
re-serialisation of a thousand dicts.

References: IHE MHD ITI-67 §2:3.67.4.2.2 (searchset Bundle; OperationOutcome entry with
search.mode = outcome); IHE MHD Target Communities option (homeCommunityId extension kept on
every DocumentReference; attachment.url usable for ITI-68 through the hub).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from onerecord.hub.merge import EXT_HOME_COMMUNITY_ID

__all__ = [
    "document_entry",
    "outcome_body",
    "outcome_entry",
    "page_bundle",
    "rewrite_for_hub",
]

_HCID_URLS = frozenset(
    {
        EXT_HOME_COMMUNITY_ID,
        "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-homeCommunityId",
        "http://ihe.net/fhir/StructureDefinition/homeCommunityId",
    }
)


def rewrite_for_hub(resource: dict[str, Any], hcid: str, hub_fhir_base: str) -> dict[str, Any]:
    """Point attachment URLs at the hub's /Binary and make sure the homeCommunityId is set.

    The Binary token (the RetrieveKey) is kept as the region minted it: it names the community,
    so the hub can route the retrieve. Mutates and returns `resource`.
    """
    extensions = resource.get("extension")
    if not isinstance(extensions, list):
        extensions = resource["extension"] = []
    if not any(isinstance(e, dict) and e.get("url") in _HCID_URLS for e in extensions):
        extensions.append(
            {
                "url": EXT_HOME_COMMUNITY_ID,
                "valueIdentifier": {"system": "urn:ietf:rfc:3986", "value": hcid},
            }
        )
    for content in resource.get("content") or ():
        attachment = content.get("attachment") if isinstance(content, dict) else None
        url = attachment.get("url") if isinstance(attachment, dict) else None
        if isinstance(url, str) and "/Binary/" in url:
            assert isinstance(attachment, dict)
            token = url.split("?", 1)[0].rsplit("/Binary/", 1)[1]
            attachment["url"] = f"{hub_fhir_base}/Binary/{token}"
    return resource


def document_entry(resource: dict[str, Any], full_url: str) -> bytes:
    """Serialise one searchset entry (search.mode = match)."""
    return orjson.dumps({"fullUrl": full_url, "resource": resource, "search": {"mode": "match"}})


def outcome_entry(issues: Sequence[dict[str, Any]]) -> bytes | None:
    """Serialise the OperationOutcome entry carrying the issues, or None when there are none."""
    if not issues:
        return None
    resource = {"resourceType": "OperationOutcome", "issue": list(issues)}
    return orjson.dumps({"resource": resource, "search": {"mode": "outcome"}})


def outcome_body(issues: Sequence[dict[str, Any]]) -> bytes:
    """Serialise a bare OperationOutcome (for a failed request)."""
    return orjson.dumps({"resourceType": "OperationOutcome", "issue": list(issues)})


def page_bundle(
    entries: Sequence[bytes],
    *,
    outcome: bytes | None,
    total: int,
    self_url: str,
    next_url: str | None,
) -> bytes:
    """Join pre-serialised entries into one searchset Bundle."""
    links: list[dict[str, str]] = [{"relation": "self", "url": self_url}]
    if next_url is not None:
        links.append({"relation": "next", "url": next_url})
    head = orjson.dumps(
        {"resourceType": "Bundle", "type": "searchset", "total": total, "link": links}
    )
    parts = [*entries, outcome] if outcome is not None else list(entries)
    if not parts:
        return head  # FHIR R4 §2.1.0.4: no empty arrays (a count-only answer has no entries)
    return head[:-1] + b',"entry":[' + b",".join(parts) + b"]}"
