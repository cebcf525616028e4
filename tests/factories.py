"""Reusable test factories: a valid small PDF and a DocumentEntry computed from its content.

Stable API for every test package: `make_entry(**overrides)`, `sample_pdf(text=...)`,
`synthetic_nin(n)`. All identity numbers are synthetic (month + 80).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from onerecord.domain import (
    Author,
    AuthorInstitution,
    AuthorPerson,
    Coding,
    DocumentEntry,
    DocumentStatus,
    DocumentUniqueId,
    HomeCommunityId,
    HprNumber,
    NationalIdentityNumber,
    OrganisationNumber,
    RepositoryUniqueId,
    ReshId,
)

__all__ = ["SYNTHETIC_FNR", "make_entry", "sample_pdf", "synthetic_nin"]

_V = "urn:oid:2.16.578.1.12.4.1.1."
_FORMAT_SYSTEM = "urn:oid:1.3.6.1.4.1.19376.1.2.3"


def synthetic_nin(n: int = 0, *, birth: str = "1583") -> str:
    """Return the n-th valid synthetic fødselsnummer born on day/month `birth` (month + 80)."""
    found = -1
    for year in range(50, 100):
        for individual in range(0, 500):
            value = NationalIdentityNumber.with_check_digits(f"{birth}{year:02d}{individual:03d}")
            if value is not None:
                found += 1
                if found == n:
                    return value
    raise ValueError("no such synthetic number")


SYNTHETIC_FNR = synthetic_nin(0)


def sample_pdf(text: str = "Epikrise (syntetisk testdokument)") -> bytes:
    """Return a small but valid one-page PDF showing `text` (ASCII), with a correct xref."""
    safe = text.encode("ascii", "replace").replace(b"\\", b"\\\\")
    safe = safe.replace(b"(", b"\\(").replace(b")", b"\\)")
    stream = b"BT /F1 12 Tf 72 720 Td (" + safe + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def _new_unique_id() -> str:
    return f"2.25.{uuid4().int}"


def make_entry(
    *,
    patient_id: str = SYNTHETIC_FNR,
    content: bytes | None = None,
    unique_id: str | None = None,
    entry_uuid: UUID | None = None,
    replaces: str | None = None,
    home_community_id: str | None = None,
    repository_unique_id: str | None = None,
    **overrides: Any,
) -> DocumentEntry:
    """Return a valid DocumentEntry (PDF epikrise) whose size and hashes fit `content`.

    Identifiers are given as strings; any other DocumentEntry field may be overridden.
    """
    data = sample_pdf() if content is None else content
    created = datetime(2024, 3, 15, 10, 30, tzinfo=UTC)
    values: dict[str, Any] = {
        "unique_id": DocumentUniqueId(unique_id or _new_unique_id()),
        "entry_uuid": entry_uuid or uuid4(),
        "patient_id": NationalIdentityNumber(patient_id),
        "class_code": Coding(_V + "9602", "A00-1", "Epikriser og sammenfatninger"),
        "type_code": Coding(_V + "9602", "A03-2", "Epikrise"),
        "confidentiality_codes": (Coding(_V + "9603", "N", "Normal"),),
        "format_code": Coding(_FORMAT_SYSTEM, "urn:no:ehelse:document:pdf", "PDF-dokument"),
        "mime_type": "application/pdf",
        "hash_sha256": hashlib.sha256(data).hexdigest(),
        "hash_sha1": hashlib.sha1(data).hexdigest(),
        "size": len(data),
        "creation_time": created,
        "title": "Epikrise etter innleggelse",
        "language_code": "nb-NO",
        "healthcare_facility_type": Coding(_V + "1303", "86.101", "Alminnelige somatiske sykehus"),
        "practice_setting": Coding(_V + "8451", "14"),
        "authors": (
            Author(
                person=AuthorPerson(given="Kari", family="Nordmann", hpr=HprNumber("9144900")),
                institution=AuthorInstitution(
                    name="Testsykehuset HF",
                    organisation_number=OrganisationNumber("983974899"),
                    department_name="Medisinsk avdeling",
                    department_resh=ReshId("4001031"),
                ),
                role="LE",
            ),
        ),
        "service_start_time": created - timedelta(days=3),
        "service_stop_time": created - timedelta(hours=2),
        "status": DocumentStatus.CURRENT,
        "replaces": None if replaces is None else DocumentUniqueId(replaces),
        "home_community_id": None
        if home_community_id is None
        else HomeCommunityId.parse(home_community_id),
        "repository_unique_id": None
        if repository_unique_id is None
        else RepositoryUniqueId.parse(repository_unique_id),
    }
    values.update(overrides)
    return DocumentEntry(**values)
