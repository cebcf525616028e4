"""Errors of the XCA wire, each with the code the edge turns into a SOAP Fault or RegistryError.

    XcaError                 code: an XDS error code (ITI TF-3 Table 4.2.4.1-2)
    ├── XcaParseError        the message is not well-formed, too large, or breaks the shape
    │                        (4xx-equivalent: the caller's fault, SOAP Fault env:Sender)
    └── SamlRefused          the SAML assertion is missing, unsigned, untrusted, expired, or
                             its attributes are unusable (XUA: XDSRegistryError, nothing answered)

Nothing here is an unhandled exception: every parser of outside input in `onerecord.xca` raises
one of these, never an lxml, signxml or ValueError. Messages hold no personal data.

References: IHE ITI TF-3 4.2.4.1 (RegistryError codes); ITI TF-2 3.40.4.1.3 (XUA errors);
SOAP 1.2 Part 1 §5.4.6 (env:Sender).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ParseProblem", "SamlProblem", "SamlRefused", "XcaError", "XcaParseError"]


class XcaError(Exception):
    """An XCA/XDS.b request or message that cannot be served; `code` is its XDS error code."""

    code = "XDSRegistryError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ParseProblem(StrEnum):
    """Why a message was refused before any logic saw it."""

    EMPTY = "empty"
    TOO_LARGE = "too-large"
    MALFORMED = "malformed"
    DTD = "dtd-refused"
    ENTITY = "entity-refused"
    SHAPE = "shape"
    VALUE = "value"


class XcaParseError(XcaError):
    """Outside XML that is not acceptable: malformed, too large, a DTD, or the wrong shape."""

    fault = "env:Sender"

    def __init__(
        self,
        message: str,
        *,
        problem: ParseProblem = ParseProblem.SHAPE,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.problem = problem
        if code is not None:
            self.code = code  # e.g. XDSUnknownStoredQuery, XDSStoredQueryParamNumber


class SamlProblem(StrEnum):
    """Why a SAML assertion was refused (XUA; TRUST-FRAMEWORK §2.4, scenarios C2–C5, C10)."""

    MISSING = "missing"
    SHAPE = "shape"
    SIGNATURE = "signature"
    ISSUER = "issuer"
    AUDIENCE = "audience"
    NOT_YET_VALID = "not-yet-valid"
    EXPIRED = "expired"
    SUBJECT_CONFIRMATION = "subject-confirmation"
    ATTRIBUTE = "attribute"
    PATIENT = "patient"


class SamlRefused(XcaError):
    """The assertion in wsse:Security does not authorise the request."""

    def __init__(self, message: str, *, problem: SamlProblem) -> None:
        super().__init__(message)
        self.problem = problem
