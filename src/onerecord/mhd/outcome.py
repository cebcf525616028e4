"""FHIR OperationOutcome building and the mapping of errors to HTTP status.

References: FHIR R4 §2.36 OperationOutcome; IHE MHD ITI-65 §2:3.65.4.2.3 and ITI-67
§2:3.67.4.2.3 (errors returned as OperationOutcome).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from onerecord.domain.errors import (
    DomainError,
    InvalidDocumentEntry,
    InvalidIdentifier,
    UnknownCode,
)
from onerecord.domain.search import InvalidCursor
from onerecord.mhd.errors import MhdError

__all__ = [
    "DENIAL_REASON_SYSTEM",
    "FHIR_JSON",
    "Issue",
    "denial_reason",
    "operation_outcome",
    "outcome_bytes",
    "outcome_for",
]

FHIR_JSON = "application/fhir+json"
DENIAL_REASON_SYSTEM = "https://onerecord.no/fhir/CodeSystem/denial-reason"
"""Codes for why a source refused or emptied an answer (trust.policy.DenialReason values)."""

_DOMAIN_CODES: tuple[tuple[type[DomainError], str], ...] = (
    (InvalidCursor, "invalid"),
    (UnknownCode, "code-invalid"),
    (InvalidIdentifier, "value"),
    (InvalidDocumentEntry, "business-rule"),
)


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome.issue."""

    code: str
    diagnostics: str
    severity: str = "error"
    expression: tuple[str, ...] = ()
    reason: str | None = None

    def render(self) -> dict[str, Any]:
        """Return the issue as FHIR JSON (`reason` as details in DENIAL_REASON_SYSTEM)."""
        out: dict[str, Any] = {"severity": self.severity, "code": self.code}
        if self.reason:
            out["details"] = {"coding": [{"system": DENIAL_REASON_SYSTEM, "code": self.reason}]}
        out["diagnostics"] = self.diagnostics
        if self.expression:
            out["expression"] = list(self.expression)
        return out


def denial_reason(issue: Any) -> str | None:
    """Return the denial-reason code in an OperationOutcome issue's details, if there is one."""
    details = issue.get("details") if isinstance(issue, dict) else None
    codings = details.get("coding") if isinstance(details, dict) else None
    for coding in codings if isinstance(codings, list) else ():
        if isinstance(coding, dict) and coding.get("system") == DENIAL_REASON_SYSTEM:
            code = coding.get("code")
            if isinstance(code, str) and code:
                return code
    return None


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """Build an OperationOutcome resource from issues (at least one is required)."""
    rendered = [i.render() for i in issues]
    if not rendered:
        rendered = [Issue(code="informational", diagnostics="ok", severity="information").render()]
    return {"resourceType": "OperationOutcome", "issue": rendered}


def outcome_for(
    exc: MhdError | DomainError, *, query_error: bool = False
) -> tuple[int, dict[str, Any]]:
    """Return the HTTP status and OperationOutcome for an error.

    A DomainError is a 422 when it is about content inside an ITI-65 bundle and a 400 when it is
    about a query parameter (`query_error=True`); a bad paging cursor is always a 400.
    """
    expression = (exc.expression,) if exc.expression else ()
    reason = None
    if isinstance(exc, MhdError):
        status, code, reason = exc.status, exc.code, exc.reason
    else:
        code = next((c for t, c in _DOMAIN_CODES if isinstance(exc, t)), "invalid")
        status = 400 if query_error or isinstance(exc, InvalidCursor) else 422
    severity = "fatal" if status >= 500 else "error"
    issue = Issue(
        code=code,
        diagnostics=exc.message,
        severity=severity,
        expression=expression,
        reason=reason,
    )
    return status, operation_outcome([issue])


def outcome_bytes(exc: MhdError | DomainError, *, query_error: bool = False) -> tuple[int, bytes]:
    """Return the HTTP status and the OperationOutcome serialised as FHIR JSON bytes."""
    status, body = outcome_for(exc, query_error=query_error)
    return status, orjson.dumps(body)
