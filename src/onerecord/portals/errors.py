"""What can go wrong at the portal, each with what to tell the user (bokmål) and an HTTP status.

    PortalError
    ├── CsrfRejected        403: the form's CSRF token is missing or wrong
    ├── NotLoggedIn         401: no session, or it has ended
    ├── TokenRefused        502: the token service said no (or did not answer)
    ├── HubRefused          403: the hub refused the search (policy, patient binding)
    └── HubUnavailable      502: the hub did not answer, or answered with an error

The error page shows `message` and `advice`, never a stack trace.
"""

from __future__ import annotations

__all__ = [
    "CsrfRejected",
    "HubRefused",
    "HubUnavailable",
    "NotLoggedIn",
    "PortalError",
    "TokenRefused",
]


class PortalError(Exception):
    """Something the user must be told about, with what to do next."""

    status_code = 500
    message = "Noe gikk galt i portalen."
    advice = "Prøv igjen om litt. Kontakt brukerstøtte hvis feilen ikke går over."

    def __init__(self, message: str | None = None, *, advice: str | None = None) -> None:
        super().__init__(message or self.message)
        if message is not None:
            self.message = message
        if advice is not None:
            self.advice = advice


class CsrfRejected(PortalError):
    status_code = 403
    message = "Skjemaet kunne ikke godtas fordi sikkerhetsnøkkelen manglet eller var feil."
    advice = "Gå tilbake, last siden på nytt og send skjemaet igjen."


class NotLoggedIn(PortalError):
    status_code = 401
    message = "Du er ikke logget inn, eller økten din er avsluttet."
    advice = "Logg inn på nytt."


class TokenRefused(PortalError):
    status_code = 502
    message = "Tilgangstjenesten ga ikke tilgang."
    advice = "Kontroller valgene dine og prøv igjen. Kontakt brukerstøtte hvis feilen varer."


class HubRefused(PortalError):
    status_code = 403
    message = "Den nasjonale tjenesten ga ikke tilgang til dokumentene for denne pasienten."
    advice = "Kontroller fødselsnummeret og grunnlaget for tilgang, og prøv igjen."


class HubUnavailable(PortalError):
    status_code = 502
    message = "Den nasjonale tjenesten svarte ikke."
    advice = "Prøv igjen om litt."
