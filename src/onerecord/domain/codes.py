"""Codings and the value sets that DocumentEntry metadata and attestations must come from.

The tables are read from `data/codes.json` inside the package (Volven and HL7 subsets; see
TRUST-FRAMEWORK §6). Systems are kept in FHIR form: "urn:oid:<oid>" for OIDs, URIs as they are.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from onerecord.domain.errors import UnknownCode

__all__ = [
    "CONFIDENTIALITY_HL7",
    "CONFIDENTIALITY_VOLVEN",
    "DOCUMENT_TYPE_SYSTEM",
    "Coding",
    "CodeTables",
    "code_tables",
    "normalise_system",
]

_BARE_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")

DOCUMENT_TYPE_SYSTEM = "urn:oid:2.16.578.1.12.4.1.1.9602"
CONFIDENTIALITY_VOLVEN = "urn:oid:2.16.578.1.12.4.1.1.9603"
CONFIDENTIALITY_HL7 = "urn:oid:2.16.840.1.113883.5.25"


def normalise_system(system: str) -> str:
    """Return the FHIR form of a code system: bare OIDs get "urn:oid:"."""
    return f"urn:oid:{system}" if _BARE_OID.match(system) else system


@dataclass(frozen=True, slots=True)
class Coding:
    """A code from a code system, with an optional display text."""

    system: str
    code: str
    display: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "system", normalise_system(self.system))

    def same(self, other: Coding) -> bool:
        """True when system and code match (display is ignored)."""
        return self.system == other.system and self.code == other.code


@dataclass(frozen=True, slots=True)
class CodeTables:
    """Code systems (system → code → display) and value sets (name → allowed (system, code))."""

    systems: dict[str, dict[str, str]]
    value_sets: dict[str, frozenset[tuple[str, str]]]

    def display(self, system: str, code: str) -> str | None:
        return self.systems.get(normalise_system(system), {}).get(code)

    def contains(self, value_set: str, coding: Coding) -> bool:
        return (coding.system, coding.code) in self.value_sets[value_set]

    def require(self, value_set: str, coding: Coding, *, expression: str | None = None) -> Coding:
        """Return the coding with its display filled in, or raise UnknownCode."""
        if not self.contains(value_set, coding):
            raise UnknownCode(
                f"code {coding.code!r} from system {coding.system!r} is not in value set "
                f"{value_set}",
                expression=expression,
            )
        display = coding.display or self.display(coding.system, coding.code)
        return Coding(coding.system, coding.code, display)

    def codes(self, value_set: str) -> list[Coding]:
        """All codings of a value set, sorted, with displays."""
        return [Coding(s, c, self.display(s, c)) for s, c in sorted(self.value_sets[value_set])]


def _load(raw: dict[str, Any]) -> CodeTables:
    systems = {
        normalise_system(oid): dict(body["concepts"]) for oid, body in raw["code_systems"].items()
    }
    value_sets: dict[str, frozenset[tuple[str, str]]] = {}
    for name, includes in raw["value_sets"].items():
        members: set[tuple[str, str]] = set()
        for include in includes:
            system = normalise_system(include["system"])
            members.update((system, code) for code in include["codes"])
        value_sets[name] = frozenset(members)
    return CodeTables(systems=systems, value_sets=value_sets)


@cache
def code_tables() -> CodeTables:
    """The code tables shipped with the package (read once)."""
    text = resources.files("onerecord.domain").joinpath("data/codes.json").read_text("utf-8")
    return _load(json.loads(text))
