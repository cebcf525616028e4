"""The development login step: a page where a developer picks the synthetic user to log in as.

`GET /authorize` without `login_hint` keeps the validated authorization request server-side
under a random id and answers the login page (`LoginPrompt`); `POST /authorize/login` with
`request_id` and `subject` (a radio button) or `nin` (typed) completes it. The hidden
`request_id` is all the CSRF protection this needs: it is random (192 bits), single use and
bound to the one pending request, so a forged post cannot name a request the victim started;
a login forced onto someone with the attacker's own request id would still fail at the client,
whose state and PKCE verifier belong to another request.

References: RFC 6749 §4.1.1–4.1.2 (authorization code), §10.12 (CSRF); OIDC Core §3.1.2.3.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlencode

from onerecord.domain import InvalidIdentifier, NationalIdentityNumber
from onerecord.sts.users import SyntheticUser, UserKind
from onerecord.trust.errors import InvalidRequest

__all__ = [
    "AuthorizationRedirect",
    "LoginProblem",
    "LoginPrompt",
    "LoginRequestExpired",
    "choose_subject",
]


class LoginRequestExpired(InvalidRequest):
    """The login page's request id is unknown, used or expired (400 invalid_request)."""

    def __init__(self) -> None:
        super().__init__("the login request is unknown, used or expired")


class LoginProblem(StrEnum):
    """Why the login page is shown again instead of logging the user in."""

    NO_CHOICE = "no-choice"
    TWO_CHOICES = "two-choices"
    NOT_A_NUMBER = "not-a-number"
    NOT_SYNTHETIC = "not-synthetic"
    UNKNOWN_USER = "unknown-user"


@dataclass(frozen=True, slots=True)
class AuthorizationRedirect:
    """Where the browser goes back to the client, with the code (and state)."""

    redirect_uri: str
    query: dict[str, str]

    @property
    def location(self) -> str:
        sep = "&" if "?" in self.redirect_uri else "?"
        return f"{self.redirect_uri}{sep}{urlencode(self.query)}"


@dataclass(frozen=True, slots=True)
class LoginPrompt:
    """What the login page shows: the pending request's id, whom to list, any problem."""

    request_id: str
    user_kind: UserKind
    client_name: str
    users: tuple[SyntheticUser, ...]
    problem: LoginProblem | None = None


def choose_subject(choice: str | None, typed: str | None) -> str | LoginProblem:
    """Return the fødselsnummer picked (radio) or typed, or what is wrong with the form."""
    typed = (typed or "").replace(" ", "").strip()
    choice = (choice or "").strip()
    if typed and choice and typed != choice:
        return LoginProblem.TWO_CHOICES
    value = typed or choice
    if not value:
        return LoginProblem.NO_CHOICE
    try:
        nin = NationalIdentityNumber(value)
    except InvalidIdentifier:
        return LoginProblem.NOT_A_NUMBER
    return nin.value if nin.synthetic else LoginProblem.NOT_SYNTHETIC
