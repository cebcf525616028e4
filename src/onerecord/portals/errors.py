"""What can go wrong at the portal, each with what to tell the user and an HTTP status.

    PortalError
    ├── CsrfRejected        403: the form's CSRF token is missing or wrong (a form too old)
    ├── NotLoggedIn         401: no session for this part of the portal
    │   └── SessionEnded    401: the login ended (the hub or the STS no longer accept it)
    ├── LoginFailed         400: the login at the token service did not complete
    ├── TokenRefused        502: the token service said no (or did not answer)
    ├── HubRefused          403: the hub refused the request (policy, patient binding)
    │   └── PractitionerBlocked 403: the patient has blocked this health worker (ATT-5)
    ├── HubUnavailable      502: the hub did not answer, or answered with an error
    ├── DocumentUnavailable 404: the document is gone, withheld or not in this overview
    ├── RegionUnreachable   502: the region that holds the document does not answer now
    └── DocumentNotListed   403: a citizen's block names a document not of the person acted for

Each error names message ids (`messages/*.toml`) for its heading, what happened and what to do;
the error page shows them in the user's language, never a stack trace. A login that is missing
or has ended gets a page of its own with a button to log in again that comes back to the page
(issue 11, defect 8; `app.py`).
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
    "PractitionerBlocked",
    "RegionUnreachable",
    "SessionEnded",
    "TokenRefused",
]


class PortalError(Exception):
    """Something the user must be told about, with what to do next."""

    status_code = 500
    title_key = "error.title"
    message_key = "error.internal"
    advice_key = "error.internal.advice"

    def __init__(
        self,
        message_key: str | None = None,
        *,
        advice_key: str | None = None,
        reason: str | None = None,
        **params: object,
    ) -> None:
        super().__init__(message_key or self.message_key)
        if message_key is not None:
            self.message_key = message_key
        if advice_key is not None:
            self.advice_key = advice_key
        # Why, for the error's log event only (error_pages.py): never shown, no personal data.
        self.reason = reason
        self.params = params


class CsrfRejected(PortalError):
    """The form came from a page older than the session's CSRF token (or from elsewhere)."""

    status_code = 403
    title_key = "error.csrf.title"
    message_key = "error.csrf"
    advice_key = "error.csrf.advice"


class NotLoggedIn(PortalError):
    status_code = 401
    title_key = "error.not-logged-in.title"
    message_key = "error.not-logged-in"
    advice_key = "error.not-logged-in.advice"


class SessionEnded(NotLoggedIn):
    """The login is over: the hub refused its token (401) or the STS its refresh token.

    Expired, revoked or logged out elsewhere: the user must log in again, never read a generic
    error (issue 11, defect 8). The portal session is ended with it.
    """

    title_key = "error.session-ended.title"
    message_key = "error.session-ended"
    advice_key = "error.session-ended.advice"


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
    reasons: tuple[str | None, ...] = ()
    """The denial-reason code each refusing region gave (None: it gave none), when known."""


class PractitionerBlocked(HubRefused):
    """Every region refused because the patient has blocked this health worker (ATT-5).

    Said as such wherever the hub's refusal reaches the portal (overview, document, override):
    the block holds in an emergency too, so the advice is another health worker, not a retry.
    """

    title_key = "error.practitioner-blocked.title"
    message_key = "error.practitioner-blocked"
    advice_key = "error.practitioner-blocked.advice"


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
