"""OpenAPI descriptions of the ITI-67 search, for the sources' and the hub's `/openapi.json`.

The routes read their query string themselves (one parser for both services, `parse_find_query`),
so FastAPI cannot see the parameters; these tables name them, so that a third-party client, and
the schemathesis run of the test suite, know what a search takes.

References: IHE ITI TF-2 / MHD ITI-67 §2:3.67.4.1.2 (parameters), FHIR R4 §3.1.1.5 (types).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ITI67_GET_OPENAPI", "ITI67_POST_OPENAPI"]

_STRING = {"type": "string"}

_QUERY_PARAMETERS: dict[str, tuple[str, dict[str, Any]]] = {
    "patient.identifier": ("The patient, `system|value` (fødselsnummer, D- or H-number).", _STRING),
    "status": ("current, superseded or entered-in-error; comma for OR.", _STRING),
    "date": ("When the document was indexed, with a prefix (ge, le, gt, lt, eq).", _STRING),
    "creation": ("attachment.creation, with a prefix.", _STRING),
    "period": ("The service period, with a prefix.", _STRING),
    "category": ("classCode, `system|code`; comma for OR.", _STRING),
    "type": ("typeCode, `system|code`; comma for OR.", _STRING),
    "setting": ("practiceSettingCode, `system|code`.", _STRING),
    "facility": ("healthcareFacilityTypeCode, `system|code`.", _STRING),
    "event": ("eventCodeList, `system|code`.", _STRING),
    "security-label": ("confidentialityCode, `system|code`.", _STRING),
    "format": ("formatCode, `system|code`.", _STRING),
    "identifier": ("The document's uniqueId or entryUUID.", _STRING),
    "related": ("referenceIdList, `system|value`.", _STRING),
    "author.given": ("The author's given name.", _STRING),
    "author.family": ("The author's family name.", _STRING),
    "_count": ("Page size.", {"type": "integer"}),
    "_sort": ("date, -date, title, -title …", _STRING),
    "_cursor": ("The opaque cursor of a `next` link.", _STRING),
    "_summary": ("`count`: only the total.", _STRING),
    "_total": (
        "none, estimate or accurate: whether `total` is counted (without it, only when the "
        "first page holds every match).",
        _STRING,
    ),
    "_format": ("json or a FHIR JSON media type.", _STRING),
}

_HEADERS: dict[str, str] = {
    "nhn-access-basis": "Emergency access (break the glass) with its reason, for health personnel.",
}


def _parameters() -> list[dict[str, Any]]:
    query = [
        {"name": name, "in": "query", "required": False, "description": text, "schema": schema}
        for name, (text, schema) in _QUERY_PARAMETERS.items()
    ]
    headers = [
        {"name": name, "in": "header", "required": False, "description": text, "schema": _STRING}
        for name, text in _HEADERS.items()
    ]
    return [*query, *headers]


ITI67_GET_OPENAPI: dict[str, Any] = {"parameters": _parameters()}
"""`openapi_extra` of `GET …/DocumentReference`."""

ITI67_POST_OPENAPI: dict[str, Any] = {
    "parameters": [p for p in _parameters() if p["in"] == "header"],
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {name: schema for name, (_, schema) in _QUERY_PARAMETERS.items()},
                }
            }
        },
    },
}
"""`openapi_extra` of `POST …/DocumentReference/_search`."""
