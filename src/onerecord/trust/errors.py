"""Errors of the trust framework: tokens, DPoP proofs, attestations and the token service.

    TrustError                      status, error (OAuth code), description
    ├── InvalidToken                401  invalid_token / invalid_dpop_proof / invalid_request
    ├── AttestationExpired          401  invalid_token, description "attestation_has_expired"
    ├── InsufficientAssurance       403  insufficient_user_authentication (not level 4)
    ├── PatientBindingFailed        403  the attestation is not bound to the requested patient
    ├── InvalidAuthorizationDetails 400  invalid_authorization_details (STS, RFC 9396 §5)
    ├── InvalidClient               401  invalid_client (STS, RFC 6749 §5.2)
    ├── InvalidGrant                400  invalid_grant (STS)
    ├── InvalidRequest              400  invalid_request (STS)
    ├── AccessDenied                403  access_denied (STS, e.g. HID-DOUBLE-STRUCTURE)
    └── DevelopmentKeyRefused       a development key was offered outside dev mode (start-up)

The edge turns these into a WWW-Authenticate header (RFC 6750 §3, RFC 9449 §7.1) or an RFC 6749
JSON error body; nothing here knows about HTTP beyond the status number.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "AttestationExpired",
    "DevelopmentKeyRefused",
    "InsufficientAssurance",
    "InvalidAuthorizationDetails",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidToken",
    "PatientBindingFailed",
    "TrustError",
]


def _quotable(text: str) -> str:
    """Return `text` as RFC 6750 §3 allows in error_description: printable ASCII, no " or \\.

    Anything else becomes "?" (a header must stay Latin-1, whatever a caller managed to put
    into a description); " becomes '.
    """
    text = text[:512].replace('"', "'")
    return "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in text)


class TrustError(Exception):
    """A request failed a rule of the trust framework."""

    status: int = 401
    default_error: str = "invalid_token"

    def __init__(self, description: str, *, error: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.error = error or self.default_error

    def www_authenticate(self, scheme: str = "DPoP") -> str:
        """Return the WWW-Authenticate challenge for this error (RFC 6750 §3)."""
        return f'{scheme} error="{self.error}", error_description="{_quotable(self.description)}"'

    def oauth_body(self) -> dict[str, str]:
        """Return the RFC 6749 §5.2 error body."""
        return {"error": self.error, "error_description": self.description}


class InvalidToken(TrustError):
    """The access token or its DPoP proof is missing, malformed, forged, expired or unbound."""

    status = 401
    default_error = "invalid_token"


class AttestationExpired(TrustError):
    """The attestation is older than 60 minutes (ATT-58)."""

    status = 401
    default_error = "invalid_token"

    def __init__(self, description: str = "attestation_has_expired") -> None:
        super().__init__(description)


class InsufficientAssurance(TrustError):
    """The user was not authenticated at security level 4 (ATT-9)."""

    status = 403
    default_error = "insufficient_user_authentication"


class PatientBindingFailed(TrustError):
    """The attestation does not name the patient the request is about (ATT-4, ATT-6)."""

    status = 403
    default_error = "insufficient_scope"


class InvalidAuthorizationDetails(TrustError):
    """The attestation in authorization_details breaks a rule (RFC 9396 §5)."""

    status = 400
    default_error = "invalid_authorization_details"


class InvalidClient(TrustError):
    """Client authentication failed (RFC 6749 §5.2)."""

    status = 401
    default_error = "invalid_client"


class InvalidGrant(TrustError):
    """The grant (code, verifier, subject) is invalid (RFC 6749 §5.2)."""

    status = 400
    default_error = "invalid_grant"


class InvalidRequest(TrustError):
    """A request parameter is missing or malformed (RFC 6749 §5.2)."""

    status = 400
    default_error = "invalid_request"


class AccessDenied(TrustError):
    """The token service refuses the request (RFC 6749 §4.1.2.1 access_denied)."""

    status = 403
    default_error = "access_denied"


class DevelopmentKeyRefused(TrustError):
    """A development signing key was offered to a service that is not in dev mode."""

    status = 500
    default_error = "server_error"
