"""Errors of the MHD wire layer, each carrying its HTTP status and FHIR issue type.

    MhdError                      any status, any issue code
    ├── BadRequest               400  invalid      malformed request, bad query parameter
    ├── NotFound                 404  not-found    no such document / community / repository
    ├── NotAcceptable            406  not-supported the client accepts no format we produce
    ├── Conflict                 409  conflict     uniqueId already registered
    ├── Gone                     410  deleted      document entered in error
    ├── PayloadTooLarge          413  too-costly   body or bundle over the configured limit
    ├── UnsupportedMediaType     415  not-supported wrong Content-Type, or bytes not of the
    │                                              declared MIME type
    └── Unprocessable            422  processing   well-formed bundle with invalid content

They are turned into an HTTP response with an OperationOutcome only at the edge
(`onerecord.mhd.outcome.outcome_for`). `code` is a FHIR R4 IssueType code
(http://hl7.org/fhir/issue-type); `expression` is the FHIRPath of the element at fault.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "BadRequest",
    "Conflict",
    "Gone",
    "MhdError",
    "NotAcceptable",
    "NotFound",
    "PayloadTooLarge",
    "Unprocessable",
    "UnsupportedMediaType",
    "http_error",
    "invalid_request",
]


class MhdError(Exception):
    """A request could not be served; carries status, issue type and location.

    `reason`: a stable code for why access was refused (a DenialReason of the access policy),
    rendered as the issue's `details` in the denial-reason code system, so that the hub and
    clients can tell a patient's block from a missing attestation without reading prose.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        expression: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.expression = expression
        self.reason = reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status}, code={self.code!r})"


class _Fixed(MhdError):
    """An MhdError whose status is fixed by its class."""

    STATUS = 500
    CODE = "exception"

    def __init__(
        self, message: str, *, code: str | None = None, expression: str | None = None
    ) -> None:
        super().__init__(message, status=self.STATUS, code=code or self.CODE, expression=expression)


class BadRequest(_Fixed):
    """400: the request is malformed."""

    STATUS, CODE = 400, "invalid"


class NotFound(_Fixed):
    """404: the target does not exist here."""

    STATUS, CODE = 404, "not-found"


class NotAcceptable(_Fixed):
    """406: no representation the client accepts."""

    STATUS, CODE = 406, "not-supported"


class Conflict(_Fixed):
    """409: the request conflicts with stored state."""

    STATUS, CODE = 409, "conflict"


class Gone(_Fixed):
    """410: the target existed but is withdrawn."""

    STATUS, CODE = 410, "deleted"


class PayloadTooLarge(_Fixed):
    """413: the body or bundle exceeds a limit."""

    STATUS, CODE = 413, "too-costly"


class UnsupportedMediaType(_Fixed):
    """415: the media type is not supported or does not match the content."""

    STATUS, CODE = 415, "not-supported"


class Unprocessable(_Fixed):
    """422: well-formed, but the content breaks a rule."""

    STATUS, CODE = 422, "processing"


# FHIR R4 IssueType of the HTTP errors the web framework raises before a route runs.
_HTTP_ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
}


def http_error(status: int, message: str) -> MhdError:
    """Return the MhdError for an HTTP error the framework raised (unknown route, 405, 413 …).

    FHIR R4 §3.1.0.4 (RESTful API): errors are answered with an OperationOutcome, so a route
    that does not exist answers like a resource that does not.
    """
    code = _HTTP_ISSUE_CODES.get(status, "exception" if status >= 500 else "invalid")
    return MhdError(message, status=status, code=code)


def invalid_request(errors: Sequence[Mapping[str, Any]]) -> BadRequest:
    """Return a 400 naming what the framework's request validation found wrong.

    A malformed parameter is the caller's error (400), as for every other query parameter;
    only the location and the reason are named, never the value sent.
    """
    shown = [
        f"{'.'.join(str(part) for part in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
        for e in errors[:5]
    ]
    return BadRequest("invalid request: " + "; ".join(shown or ["malformed"]))
