"""The dialogue service's exceptions, turned into HTTP status and OperationOutcome at the edge.

DialogueError
├── BadInput            400  the caller's input is malformed or out of range
├── NotAllowed          403  the caller may not do this for this person (representation, staff)
├── NotFound            404  no such thread, request, slot, appointment or office
└── Conflict            409  the rule of the office says no now (service closed or off,
                             slot taken, request already answered)
"""

from __future__ import annotations

__all__ = ["BadInput", "Conflict", "DialogueError", "NotAllowed", "NotFound", "TooLarge"]


class DialogueError(Exception):
    """A refusal that the API turns into a 4xx OperationOutcome."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.code


class BadInput(DialogueError):
    """The input is malformed, out of range or incomplete."""


class NotAllowed(DialogueError):
    """The caller may not act for this person, or not at this office."""

    status = 403
    code = "forbidden"


class NotFound(DialogueError):
    """The thing asked for does not exist (or is not the caller's to see)."""

    status = 404
    code = "not-found"


class TooLarge(DialogueError):
    """The body is larger than `max_body_bytes`."""

    status = 413
    code = "too-costly"


class Conflict(DialogueError):
    """A business rule refuses the change now (service closed, slot taken, already answered)."""

    status = 409
    code = "business-rule"
