"""Where a health worker may say they work today: their organisation and its departments.

The attestation names the legal entity, the point of care (underenhet) and optionally the
department (RESH) the worker acts for (TRUST-FRAMEWORK §1.1, ATT-16/20/23). The portal offers
the departments of the worker's organisation from its staff directory (the demo manifest), the
worker's own department first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Workplace", "workplaces_of"]


@dataclass(frozen=True, slots=True)
class Workplace:
    """One choice: organisation, point of care and (maybe) department."""

    key: str
    legal_entity: str
    point_of_care: str
    organisation: str
    department: str | None
    department_name: str | None

    @property
    def label(self) -> str:
        if self.department_name:
            return f"{self.organisation}, {self.department_name}"
        return self.organisation


def workplaces_of(staff: Mapping[str, Any]) -> tuple[Workplace, ...]:
    """Return the workplaces a staff directory entry offers, the worker's own first."""
    legal_entity = str(staff.get("legal_entity") or "")
    point_of_care = str(staff.get("point_of_care") or "")
    organisation = str(staff.get("organisation") or point_of_care)
    if not legal_entity or not point_of_care:
        return ()
    own = str(staff["department"]) if staff.get("department") else None
    departments: list[tuple[str, str]] = [
        (str(d["resh"]), str(d.get("name") or d["resh"]))
        for d in staff.get("departments") or []
        if isinstance(d, Mapping) and d.get("resh")
    ]
    departments.sort(key=lambda d: (d[0] != own, d[1]))
    if own and own not in {d[0] for d in departments}:
        departments.insert(0, (own, own))
    places = [
        Workplace(
            key=f"{point_of_care}:{resh}",
            legal_entity=legal_entity,
            point_of_care=point_of_care,
            organisation=organisation,
            department=resh,
            department_name=name,
        )
        for resh, name in departments
    ]
    if not places:
        places.append(
            Workplace(
                key=f"{point_of_care}:",
                legal_entity=legal_entity,
                point_of_care=point_of_care,
                organisation=organisation,
                department=None,
                department_name=None,
            )
        )
    return tuple(places)
