"""The query of a Mobile Patient Demographics Query (IHE PDQm, ITI-78), parsed strictly.

Served: `GET [base]/Patient?identifier=<system>|<value>` with exactly one identifier, whose
system is the fødselsnummer OID (2.16.578.1.12.4.1.4.1) or the D-number OID
(2.16.578.1.12.4.1.4.2), as `urn:oid:…`, and whose value is a valid number of that kind.
Everything else is the caller's error (400): another or a repeated parameter, a list of
identifiers (FHIR "or"), a missing or unknown system, a value that fails the mod-11 check or is
of the other kind. The demographics parameters of ITI-78 (family, given, birthdate, …) are not
served: a health worker looks a patient up by number, never by name.

References: IHE PDQm ITI-78 §2:3.78.4.1.2 (query parameters; identifier as system|value);
FHIR R4 §3.1.1.4 (search parameter lists, token search); HL7 Norway, "no-basis Identifier
systems" (FNR/DNR OIDs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from onerecord.domain import (
    DNR_SYSTEM,
    FNR_SYSTEM,
    IdentityKind,
    InvalidIdentifier,
    NationalIdentityNumber,
)

__all__ = [
    "IDENTIFIER_SYSTEMS",
    "MAX_QUERY_CHARS",
    "InvalidPatientQuery",
    "PatientQuery",
    "parse_patient_query",
]

IDENTIFIER_SYSTEMS = {
    f"urn:oid:{FNR_SYSTEM}": IdentityKind.FNR,
    f"urn:oid:{DNR_SYSTEM}": IdentityKind.DNR,
}
"""The identifier systems the lookup serves, with the kind of number each holds."""
MAX_QUERY_CHARS = 512
"""More than any valid query: a longer one is refused before it is read."""


class InvalidPatientQuery(ValueError):
    """The query is not one this lookup serves; `expression` names the parameter at fault."""

    def __init__(self, message: str, *, expression: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.expression = expression


@dataclass(frozen=True, slots=True)
class PatientQuery:
    """One lookup by national identity number: the system asked in and the number."""

    system: str
    patient: NationalIdentityNumber


def parse_patient_query(params: Sequence[tuple[str, str]]) -> PatientQuery:
    """Return the lookup the query parameters ask for, or raise InvalidPatientQuery.

    References: IHE PDQm ITI-78 §2:3.78.4.1.2.
    """
    if sum(len(name) + len(value) + 2 for name, value in params) > MAX_QUERY_CHARS:
        raise InvalidPatientQuery("the query is too long")
    names = [name for name, _ in params]
    unknown = sorted({name for name in names if name != "identifier"})
    if unknown:
        shown = ", ".join(repr(n[:40]) for n in unknown[:5])
        raise InvalidPatientQuery(
            f"unsupported search parameter(s) {shown}; only identifier=<system>|<number> is served",
            expression=unknown[0][:40],
        )
    values = [value for _, value in params]
    if len(values) != 1:
        raise InvalidPatientQuery(
            "give exactly one identifier=<system>|<number>", expression="identifier"
        )
    raw = values[0]
    if "," in raw:
        raise InvalidPatientQuery("look up one identifier at a time", expression="identifier")
    system, bar, value = raw.partition("|")
    if not bar or not system:
        raise InvalidPatientQuery(
            "the identifier needs its system: urn:oid:2.16.578.1.12.4.1.4.1|<fødselsnummer>",
            expression="identifier",
        )
    kind = IDENTIFIER_SYSTEMS.get(system)
    if kind is None:
        raise InvalidPatientQuery(
            "the identifier system must be the fødselsnummer or D-number OID (urn:oid:…)",
            expression="identifier",
        )
    try:
        patient = NationalIdentityNumber(value)
    except InvalidIdentifier as exc:
        raise InvalidPatientQuery(str(exc), expression="identifier") from None
    if patient.kind is not kind:
        raise InvalidPatientQuery(
            f"the number is a {patient.kind.value}, not of the system asked in",
            expression="identifier",
        )
    return PatientQuery(system, patient)
