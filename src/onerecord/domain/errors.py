"""Errors raised by the pure domain layer.

    DomainError
    ├── InvalidIdentifier      a value object refused its value (fødselsnummer, OID, HPR …)
    ├── UnknownCode            a coding is not in the value set it must come from
    └── InvalidDocumentEntry   a DocumentEntry breaks an XDS metadata rule

Each carries `expression`, the FHIRPath-like location of the offending element when known, so the
edge can put it into OperationOutcome.issue.expression.
"""

from __future__ import annotations

__all__ = ["DomainError", "InvalidDocumentEntry", "InvalidIdentifier", "UnknownCode"]


class DomainError(ValueError):
    """A value broke a rule of the domain."""

    def __init__(self, message: str, *, expression: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.expression = expression


class InvalidIdentifier(DomainError):
    """An identifier failed validation."""


class UnknownCode(DomainError):
    """A coding is not a member of the required value set."""


class InvalidDocumentEntry(DomainError):
    """DocumentEntry metadata is inconsistent."""
