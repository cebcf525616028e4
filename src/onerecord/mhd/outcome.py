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

__all__ = ["FHIR_JSON", "Issue", "operation_outcome", "outcome_bytes", "outcome_for"]

FHIR_JSON = "application/fhir+json"

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

    def render(self) -> dict[str, Any]:
        """Return the issue as FHIR JSON."""
        out: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            out["expression"] = list(self.expression)
        return out


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
    if isinstance(exc, MhdError):
        status, code = exc.status, exc.code
    else:
        code = next((c for t, c in _DOMAIN_CODES if isinstance(exc, t)), "invalid")
        status = 400 if query_error or isinstance(exc, InvalidCursor) else 422
    severity = "fatal" if status >= 500 else "error"
    issue = Issue(code=code, diagnostics=exc.message, severity=severity, expression=expression)
    return status, operation_outcome([issue])


def outcome_bytes(exc: MhdError | DomainError, *, query_error: bool = False) -> tuple[int, bytes]:
    """Return the HTTP status and the OperationOutcome serialised as FHIR JSON bytes."""
    status, body = outcome_for(exc, query_error=query_error)
    return status, orjson.dumps(body)
