"""KITH-style XML messages: svarrapport (lab result), epikrise and henvisning.

These follow the shape and namespaces of the KITH message standards so viewers and parsers have
something familiar to work on, but they are NOT claimed conformant to the KITH XML schemas.

References: KITH/Direktoratet for e-helse message standards (namespaces
http://www.kith.no/xmlstds/<message>/2012-02-15); TRUST-FRAMEWORK §6 (format codes).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from onerecord.synth.clinical import Analysis, Scenario

__all__ = [
    "EPIKRISE_NS",
    "HENVISNING_NS",
    "SVAR_NS",
    "LabResult",
    "MessageParties",
    "render_epikrise",
    "render_henvisning",
    "render_svarrapport",
]

SVAR_NS = "http://www.kith.no/xmlstds/svar/2012-02-15"
EPIKRISE_NS = "http://www.kith.no/xmlstds/epikrise/2012-02-15"
HENVISNING_NS = "http://www.kith.no/xmlstds/henvisning/2012-02-15"
_NOTICE = " KITH-style synthetic message from onerecord synth; not claimed schema-conformant. "


@dataclass(frozen=True, slots=True)
class MessageParties:
    """Who the message is from and about."""

    msg_id: str
    created: datetime
    patient_nin: str
    patient_given: str
    patient_family: str
    organisation_name: str
    organisation_number: str
    department_name: str
    department_resh: str
    author_name: str
    author_hpr: str | None


@dataclass(frozen=True, slots=True)
class LabResult:
    """One measured analysis."""

    analysis: Analysis
    value: float

    @property
    def flag(self) -> str | None:
        if self.value < self.analysis.low:
            return "L"
        if self.value > self.analysis.high:
            return "H"
        return None


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attrs)
    if text is not None:
        child.text = text
    return child


def _root(ns: str, tag: str, kind: str, display: str, parties: MessageParties) -> ET.Element:
    # The default namespace is declared on the root; children are unqualified and inherit it.
    root = ET.Element(tag, {"xmlns": ns})
    root.append(ET.Comment(_NOTICE))
    _el(root, "MsgType", V=kind, DN=display)
    _el(root, "MIGversion", "v1.2 2012-02-15")
    _el(root, "GenDate", parties.created.isoformat(timespec="seconds"))
    _el(root, "MsgId", parties.msg_id)
    provider = _el(root, "ServProvider")
    hcp = _el(provider, "HCP")
    inst = _el(hcp, "Inst")
    _el(inst, "Name", parties.organisation_name)
    _el(inst, "Id", parties.organisation_number)
    _el(inst, "TypeId", V="ENH", S="2.16.578.1.12.4.1.1.9051", DN="Organisasjonsnummeret i ER")
    dept = _el(inst, "Dept")
    _el(dept, "Name", parties.department_name)
    _el(dept, "Id", parties.department_resh)
    _el(dept, "TypeId", V="RSH", S="2.16.578.1.12.4.1.1.9051", DN="RESH-id")
    prof = _el(hcp, "HCProf")
    _el(prof, "Name", parties.author_name)
    if parties.author_hpr:
        _el(prof, "Id", parties.author_hpr)
        _el(prof, "TypeId", V="HPR", S="2.16.578.1.12.4.1.1.8116", DN="HPR-nummer")
    patient = _el(root, "Patient")
    _el(patient, "Name", f"{parties.patient_family}, {parties.patient_given}")
    _el(patient, "OffId", parties.patient_nin)
    _el(patient, "TypeOffId", V="FNR", S="2.16.578.1.12.4.1.1.8116", DN="Fødselsnummer")
    return root


def _serialise(root: ET.Element) -> bytes:
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="UTF-8", xml_declaration=True)) + b"\n"


def render_svarrapport(parties: MessageParties, results: Sequence[LabResult]) -> bytes:
    """Return a KITH-style svarrapport for medical biochemistry."""
    root = _root(SVAR_NS, "Svarrapport", "SVAR", "Svarrapport medisinsk biokjemi", parties)
    report = _el(root, "ServReport")
    _el(report, "ServType", V="MS", DN="Medisinsk biokjemi")
    _el(report, "Status", V="F", DN="Endelig")
    for result in results:
        a = result.analysis
        item = _el(report, "ResultItem")
        _el(item, "Analysis", a.name, V=a.code, S="2.16.578.1.12.4.1.1.7280", DN=a.name)
        _el(item, "Result", V=f"{result.value:.{a.decimals}f}", U=a.unit)
        interval = _el(item, "RefInterval")
        _el(interval, "Low", V=f"{a.low:.{a.decimals}f}", U=a.unit)
        _el(interval, "High", V=f"{a.high:.{a.decimals}f}", U=a.unit)
        if result.flag:
            _el(item, "DevResultInd", V=result.flag, DN="Høy" if result.flag == "H" else "Lav")
    return _serialise(root)


def render_epikrise(parties: MessageParties, scenario: Scenario) -> bytes:
    """Return a KITH-style epikrise (discharge summary)."""
    root = _root(EPIKRISE_NS, "Epikrise", "EPIKRISE", "Epikrise", parties)
    diagnosis = _el(root, "Diagnosis")
    _el(diagnosis, "Concept", V=scenario.icd10, S="2.16.578.1.12.4.1.1.7110", DN=scenario.diagnosis)
    for heading, text in (
        ("Årsak til innleggelse", scenario.admission),
        ("Forløp", scenario.course),
        ("Videre oppfølging", scenario.discharge),
    ):
        section = _el(root, "ClinInfo")
        _el(section, "Heading", heading)
        _el(section, "TextResultInfo", text)
    return _serialise(root)


def render_henvisning(parties: MessageParties, scenario: Scenario) -> bytes:
    """Return a KITH-style henvisning (referral)."""
    root = _root(HENVISNING_NS, "Henvisning", "HENVISNING", "Henvisning", parties)
    _el(root, "Reason", scenario.referral)
    diagnosis = _el(root, "Diagnosis")
    _el(diagnosis, "Concept", V=scenario.icd10, S="2.16.578.1.12.4.1.1.7110", DN=scenario.diagnosis)
    _el(root, "Priority", V="2", DN="Ordinær")
    return _serialise(root)
