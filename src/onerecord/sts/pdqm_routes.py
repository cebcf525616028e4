"""The patient lookup's HTTP edge: `GET /fhir/Patient?identifier=…` on the token service.

Thin: read the query (400 OperationOutcome for anything the parser refuses, nothing written),
hand it to `PatientLookup`, send its answer as FHIR JSON. A refusal is an OperationOutcome
with the reason in the denial-reason code system (401 with a DPoP challenge, 403).

References: IHE PDQm ITI-78 §2:3.78.4.2.3 (errors as OperationOutcome); RFC 9449 §7.1.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from onerecord.mhd.outcome import FHIR_JSON, Issue, operation_outcome
from onerecord.sts.pdqm_query import MAX_QUERY_CHARS, InvalidPatientQuery
from onerecord.sts.pdqm_service import PatientLookup

__all__ = ["PATIENT_PATH", "install_pdqm_routes"]

PATIENT_PATH = "/fhir/Patient"
_OPENAPI = {
    "summary": "Mobile Patient Demographics Query (IHE PDQm ITI-78): Patient by identifier",
    "parameters": [
        {
            "name": "identifier",
            "in": "query",
            "required": True,
            "description": "urn:oid:2.16.578.1.12.4.1.4.1|<fødselsnummer> or "
            "urn:oid:2.16.578.1.12.4.1.4.2|<D-number>",
            "schema": {"type": "string", "maxLength": 64},
        }
    ],
    "responses": {
        "200": {"description": "searchset Bundle of Patient (total 0: nobody has the number)"},
        "400": {"description": "OperationOutcome: a query the lookup does not serve"},
        "401": {"description": "OperationOutcome: no valid DPoP-bound token of this audience"},
        "403": {"description": "OperationOutcome: refused by policy (reason in details)"},
    },
}
_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def _fhir(body: object, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=FHIR_JSON,
        headers={**_HEADERS, **(headers or {})},
    )


def _outcome(
    status: int,
    code: str,
    text: str,
    *,
    expression: str | None = None,
    reason: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    issue = Issue(
        code=code,
        diagnostics=text,
        expression=(expression,) if expression else (),
        reason=reason,
    )
    return _fhir(operation_outcome([issue]), status, headers)


def install_pdqm_routes(app: FastAPI, lookup: PatientLookup, *, public_base: str) -> None:
    """Serve ITI-78 Patient search at `public_base` + /fhir/Patient."""
    endpoint = f"{public_base.rstrip('/')}{PATIENT_PATH}"

    @app.get(PATIENT_PATH, openapi_extra=_OPENAPI)
    async def patient_search(request: Request) -> Response:
        raw = request.url.query
        if len(raw) > 3 * MAX_QUERY_CHARS:
            return _outcome(400, "too-costly", "the query is too long")
        try:
            params = parse_qsl(raw, keep_blank_values=True, strict_parsing=False)
            query = lookup.parse(params)
        except (InvalidPatientQuery, UnicodeDecodeError, ValueError) as exc:
            message = exc.message if isinstance(exc, InvalidPatientQuery) else "malformed query"
            where = exc.expression if isinstance(exc, InvalidPatientQuery) else None
            return _outcome(400, "invalid", message, expression=where)
        answer = await lookup.search(
            query,
            method="GET",
            url=endpoint,
            headers=request.headers,
            correlation_id=request.headers.get("x-correlation-id", "")[:64] or None,
        )
        if answer.error is not None:
            error = answer.error
            return _outcome(
                answer.status,
                "login" if answer.status == 401 else "forbidden",
                error.description,
                reason=error.error,
                headers={"WWW-Authenticate": error.www_authenticate()},
            )
        if answer.status == 403:
            return _outcome(
                403,
                "forbidden",
                "the lookup was refused by policy",
                reason=str(answer.body.get("reason") or "denied"),
            )
        body = dict(answer.body)
        body["link"] = [{"relation": "self", "url": f"{endpoint}?{raw}"}]
        return _fhir(body, 200)
