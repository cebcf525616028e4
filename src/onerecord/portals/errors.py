"""What can go wrong at the portal, each with what to tell the user and an HTTP status.

    PortalError
    ├── CsrfRejected        403: the form's CSRF token is missing or wrong
    ├── NotLoggedIn         401: no session, or it has ended
    ├── LoginFailed         400: the login at the token service did not complete
    ├── TokenRefused        502: the token service said no (or did not answer)
    ├── HubRefused          403: the hub refused the request (policy, patient binding)
    ├── HubUnavailable      502: the hub did not answer, or answered with an error
    ├── DocumentUnavailable 404: the document is gone, withheld or not in this overview
    ├── RegionUnreachable   502: the region that holds the document does not answer now
    └── DocumentNotListed   403: a citizen's block names a document not of the person acted for

Each error names message ids (`messages/*.toml`) for what happened and what to do; the error
page shows them in the user's language, never a stack trace.
"""

from __future__ import annotations

__all__ = [
    "CsrfRejected",
    "DocumentNotListed",
    "DocumentUnavailable",
    "HubRefused",
    "HubUnavailable",
    "LoginFailed",
    "NotLoggedIn",
    "PortalError",
    "RegionUnreachable",
    "TokenRefused",
]


class PortalError(Exception):
    """Something the user must be told about, with what to do next."""

    status_code = 500
    message_key = "error.internal"
    advice_key = "error.internal.advice"

    def __init__(
        self, message_key: str | None = None, *, advice_key: str | None = None, **params: object
    ) -> None:
        super().__init__(message_key or self.message_key)
        if message_key is not None:
            self.message_key = message_key
        if advice_key is not None:
            self.advice_key = advice_key
        self.params = params


class CsrfRejected(PortalError):
    status_code = 403
    message_key = "error.csrf"
    advice_key = "error.csrf.advice"


class NotLoggedIn(PortalError):
    status_code = 401
    message_key = "error.not-logged-in"
    advice_key = "error.not-logged-in.advice"


class LoginFailed(PortalError):
    status_code = 400
    message_key = "error.login-failed"
    advice_key = "error.login-failed.advice"


class TokenRefused(PortalError):
    status_code = 502
    message_key = "error.token-refused"
    advice_key = "error.token-refused.advice"


class HubRefused(PortalError):
    status_code = 403
    message_key = "error.hub-refused"
    advice_key = "error.hub-refused.advice"


class HubUnavailable(PortalError):
    status_code = 502
    message_key = "error.hub-unavailable"
    advice_key = "error.hub-unavailable.advice"


class DocumentUnavailable(PortalError):
    status_code = 404
    message_key = "error.document-unavailable"
    advice_key = "error.document-unavailable.advice"


class RegionUnreachable(PortalError):
    """The hub could not reach the region that holds the document (502/503/504 from the hub).

    Said as such, naming the region (issue 11, defect 5): the document is not withdrawn or
    blocked, and trying again later may work. Needs the `region` parameter (its name).
    """

    status_code = 502
    message_key = "error.region-unreachable"
    advice_key = "error.region-unreachable.advice"


class DocumentNotListed(PortalError):
    """A block names a document not in the overview of the person acted for (tampered/stale)."""

    status_code = 403
    message_key = "citizen.block.not-listed"
    advice_key = "citizen.block.not-listed.advice"
