"""The development login page and its error page as HTML (Norwegian bokmål).

Accessible by construction: `lang="nb"`, one `<main>` and `<h1>`, the users as radio buttons in
a `<fieldset>` with a `<legend>`, every input with a `<label>`, high-contrast styles from one
small stylesheet served by the STS itself. No script and nothing from elsewhere: the Content
Security Policy allows only this origin and forbids framing (clickjacking). It sets no
`form-action`, since browsers apply that to the redirect back to the client too.

References: WCAG 2.1 (1.3.1, 1.4.3, 2.4.6, 3.1.1, 3.3.2); CSP Level 3; RFC 9700 §4.16.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import jinja2

from onerecord.sts.login import LoginProblem, LoginPrompt
from onerecord.sts.users import UserKind

__all__ = ["PAGE_HEADERS", "error_page", "login_page", "stylesheet"]

PAGE_HEADERS = {
    "content-security-policy": "default-src 'self'; base-uri 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

_PROBLEMS = {
    LoginProblem.NO_CHOICE: "Velg en testbruker eller skriv inn et fødselsnummer.",
    LoginProblem.TWO_CHOICES: (
        "Du valgte en testbruker og skrev inn et annet fødselsnummer. Bruk bare ett av dem."
    ),
    LoginProblem.NOT_A_NUMBER: "Fødselsnummeret må ha 11 siffer med riktige kontrollsiffer.",
    LoginProblem.NOT_SYNTHETIC: "Bare syntetiske fødselsnumre (måned + 80) kan brukes her.",
}
_UNKNOWN = {
    UserKind.CITIZEN: "Fant ingen innbygger med dette fødselsnummeret i testregisteret.",
    UserKind.HEALTH_PERSONNEL: (
        "Fant ikke noe helsepersonell med dette fødselsnummeret i testregisteret."
    ),
}
_EXPIRED = (
    "Innloggingsforespørselen er ukjent, allerede brukt eller utløpt. Gå tilbake til tjenesten "
    "du kom fra, og start innloggingen på nytt."
)


@cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("onerecord.sts", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def _problem_text(prompt: LoginPrompt) -> str | None:
    if prompt.problem is None:
        return None
    if prompt.problem is LoginProblem.UNKNOWN_USER:
        return _UNKNOWN[prompt.user_kind]
    return _PROBLEMS[prompt.problem]


def login_page(prompt: LoginPrompt, *, base_path: str = "") -> str:
    """Render the page that lists the synthetic users of `prompt` (base_path: issuer's path)."""
    return (
        _templates()
        .get_template("login.html")
        .render(
            base_path=base_path,
            request_id=prompt.request_id,
            client_name=prompt.client_name,
            citizen=prompt.user_kind is UserKind.CITIZEN,
            users=prompt.users,
            problem=_problem_text(prompt),
        )
    )


def error_page(description: str, *, base_path: str = "", expired: bool = False) -> str:
    """Render the page for a login that cannot go on; `description` is the technical reason."""
    message = _EXPIRED if expired else "Innloggingsforespørselen ble avvist."
    return (
        _templates()
        .get_template("error.html")
        .render(base_path=base_path, message=message, description=description)
    )


@cache
def stylesheet() -> bytes:
    """Return the login page's stylesheet."""
    return resources.files("onerecord.sts").joinpath("static/login.css").read_bytes()
