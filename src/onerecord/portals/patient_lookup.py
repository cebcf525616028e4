"""Who the patient is: the portal's lookup in the population register (IHE PDQm, ITI-78).

After a health worker types a number, the portal asks the register beside the token service
(`GET {register_fhir}/Patient?identifier=urn:oid:2.16.578.1.12.4.1.4.1|<number>`), with a
DPoP-bound token of the register's audience whose attestation is bound to that number, and
reads the answer into a `PatientHeader`: the header on every page of that patient. Four
outcomes (`LookupStatus`): found; unknown (the number passes the check digits, but nobody has
it — the portal says so and opens no record); unavailable (the register did not answer, or
answered garbage) and refused (the register's policy said no) — in both the user may go on to
the documents, warned that the identity is unconfirmed.

A protected address is only ever a flag here: the register sends none, and nothing in the
header could show one. References: IHE PDQm ITI-78 §2:3.78.4.2; FHIR R4 Patient.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

import httpx
import orjson

from onerecord.domain import DNR_SYSTEM, FNR_SYSTEM, IdentityKind, NationalIdentityNumber
from onerecord.search_client import HubSession

__all__ = [
    "ADDRESS_PROTECTION_EXTENSION",
    "LookupStatus",
    "PatientHeader",
    "PatientLookupResult",
    "look_up_patient",
    "read_patient_bundle",
]

ADDRESS_PROTECTION_EXTENSION = "https://onerecord.no/fhir/StructureDefinition/address-protection"
_PROTECTIONS = frozenset({"strengt-fortrolig", "fortrolig"})
_MAX_BYTES = 256 * 1024


class LookupStatus(StrEnum):
    """How the lookup ended."""

    FOUND = "found"
    UNKNOWN = "unknown"
    UNAVAILABLE = "unavailable"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class PatientHeader:
    """What the header says about the patient (never an address)."""

    name: str
    birth_date: date
    sex: str | None
    deceased: bool
    deceased_on: date | None
    address_protection: str | None
    """"strengt-fortrolig" (kode 6) or "fortrolig" (kode 7); None when not protected."""
    gp_name: str | None
    gp_office: str | None
    contact_email: str | None = None
    """Where to tell the patient that emergency access was used (issue 11, defect 7); never
    shown, never for a protected address (docs/pdqm.md)."""

    def age_on(self, day: date) -> int:
        """Age in whole years on `day`; for the deceased, at death."""
        end = min(day, self.deceased_on) if self.deceased_on is not None else day
        b = self.birth_date
        return end.year - b.year - ((end.month, end.day) < (b.month, b.day))


@dataclass(frozen=True, slots=True)
class PatientLookupResult:
    """The lookup's outcome for one number, with the header when the person was found."""

    number: str
    status: LookupStatus
    header: PatientHeader | None = None

    @property
    def unconfirmed(self) -> bool:
        """True when the register could not say who the number belongs to."""
        return self.status in (LookupStatus.UNAVAILABLE, LookupStatus.REFUSED)


def _system_of(patient: NationalIdentityNumber) -> str:
    return f"urn:oid:{DNR_SYSTEM if patient.kind is IdentityKind.DNR else FNR_SYSTEM}"


def _text(value: Any, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) and value.strip() else None


def _date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _name(resource: Mapping[str, Any]) -> str:
    names = resource.get("name")
    first = names[0] if isinstance(names, list) and names and isinstance(names[0], dict) else {}
    text = _text(first.get("text"))
    if text:
        return text
    given = first.get("given")
    parts = [g for g in given if isinstance(g, str)] if isinstance(given, list) else []
    family = _text(first.get("family"))
    if family:
        parts.append(family)
    if not parts:
        raise ValueError("the Patient has no name")
    return " ".join(parts)[:200]


def _protection(resource: Mapping[str, Any]) -> str | None:
    for ext in resource.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == ADDRESS_PROTECTION_EXTENSION:
            coding = ext.get("valueCoding")
            code = coding.get("code") if isinstance(coding, dict) else None
            # An unknown kind of protection is still a protection: say it, show nothing.
            return code if code in _PROTECTIONS else "fortrolig"
    security = (resource.get("meta") or {}).get("security") or ()
    if any(isinstance(s, dict) and s.get("code") == "R" for s in security):
        return "fortrolig"
    return None


def _gp(resource: Mapping[str, Any]) -> tuple[str | None, str | None]:
    name = office = None
    for ref in resource.get("generalPractitioner") or ():
        if not isinstance(ref, dict):
            continue
        if ref.get("type") == "Organization":
            office = office or _text(ref.get("display"))
        else:
            name = name or _text(ref.get("display"))
    return name, office


_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,63}$")


def _email(resource: Mapping[str, Any]) -> str | None:
    """The first e-mail `telecom` that is a plain address (no spaces, no line breaks)."""
    for point in resource.get("telecom") or ():
        if isinstance(point, dict) and point.get("system") == "email":
            value = point.get("value")
            if isinstance(value, str) and _EMAIL.match(value):
                return value
    return None


def read_patient_bundle(body: Any, patient: NationalIdentityNumber) -> PatientHeader | None:
    """Return the header for `patient` from an ITI-78 searchset; None when nobody matched.

    Raises ValueError when the answer is not a searchset of Patients, or names someone else.
    """
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise ValueError("the answer is not a Bundle")
    if body.get("type") != "searchset":
        raise ValueError("the answer is not a searchset")
    entries = body.get("entry") or []
    if not isinstance(entries, list):
        raise ValueError("entry is not a list")
    patients = [
        e["resource"]
        for e in entries
        if isinstance(e, dict)
        and isinstance(e.get("resource"), dict)
        and e["resource"].get("resourceType") == "Patient"
    ]
    if not patients:
        return None
    if len(patients) > 1:
        raise ValueError("more than one Patient for one number")
    resource = patients[0]
    ids = resource.get("identifier") or []
    if not any(isinstance(i, dict) and i.get("value") == patient.value for i in ids):
        raise ValueError("the Patient found has another number")
    born = _date(resource.get("birthDate"))
    if born is None:
        raise ValueError("the Patient has no birth date")
    deceased_on = _date(resource.get("deceasedDateTime"))
    deceased = deceased_on is not None or resource.get("deceasedBoolean") is True
    gender = resource.get("gender")
    gp_name, gp_office = _gp(resource)
    protection = _protection(resource)
    return PatientHeader(
        name=_name(resource),
        birth_date=born,
        sex=gender if gender in ("female", "male", "other") else None,
        deceased=deceased,
        deceased_on=deceased_on,
        address_protection=protection,
        gp_name=gp_name,
        gp_office=gp_office,
        contact_email=_email(resource) if protection is None else None,
    )


async def look_up_patient(
    http: httpx.AsyncClient,
    session: HubSession,
    *,
    register_fhir: str,
    patient: str,
) -> PatientLookupResult:
    """Ask the register who `patient` is; never raises for the register's own failures."""
    nin = NationalIdentityNumber(patient)
    url = f"{register_fhir.rstrip('/')}/Patient"
    try:
        response = await http.get(
            url,
            params={"identifier": f"{_system_of(nin)}|{nin.value}"},
            headers={**session.headers("GET", url), "accept": "application/fhir+json"},
        )
    except httpx.HTTPError:
        return PatientLookupResult(nin.value, LookupStatus.UNAVAILABLE)
    if response.status_code in (401, 403):
        return PatientLookupResult(nin.value, LookupStatus.REFUSED)
    if response.status_code != 200 or len(response.content) > _MAX_BYTES:
        return PatientLookupResult(nin.value, LookupStatus.UNAVAILABLE)
    try:
        header = read_patient_bundle(orjson.loads(response.content), nin)
    except (orjson.JSONDecodeError, ValueError):
        return PatientLookupResult(nin.value, LookupStatus.UNAVAILABLE)
    if header is None:
        return PatientLookupResult(nin.value, LookupStatus.UNKNOWN)
    return PatientLookupResult(nin.value, LookupStatus.FOUND, header)
