"""fhir.resources (R4B) as a test oracle: every rendered resource must validate."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.operationoutcome import OperationOutcome

_MODELS: dict[str, Any] = {
    "Bundle": Bundle,
    "CapabilityStatement": CapabilityStatement,
    "DocumentReference": DocumentReference,
    "OperationOutcome": OperationOutcome,
}


def validate(resource: dict[str, Any]) -> None:
    """Raise if the resource is not valid FHIR R4B."""
    _MODELS[resource["resourceType"]].model_validate(resource)
