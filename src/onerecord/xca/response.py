"""RegistryResponse status and RegistryError, as the national gateway writes them.

The status rule of an initiating gateway's consolidated answer: Success when every community
answered without error; PartialSuccess when at least one community answered (even with no
entries) and at least one failed; Failure only when nothing could be answered. Every
RegistryError of ITI-38/39 names the community it concerns as `urn:oid:<homeCommunityId>`
(accepted bare or as urn:oid:, always written as urn:oid:).

References: IHE ITI TF-2 3.38.4.1.3 (RegistryError location = homeCommunityId), 3.18.4.1.3
(XDSUnknownStoredQuery, XDSStoredQueryParamNumber); ITI TF-3 4.2.4.1 (error codes, status);
ebRS 3.0 §2.1.4 (RegistryResponse).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from onerecord.domain import HomeCommunityId, Oid
from onerecord.xca.ebrim import EbRegistryError
from onerecord.xca.xml import RS, qname

__all__ = [
    "ERROR_SEVERITY",
    "WARNING_SEVERITY",
    "RegistryErrorCode",
    "ResponseStatus",
    "community_error",
    "community_location",
    "consolidated_status",
    "render_registry_response",
]

ERROR_SEVERITY = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
WARNING_SEVERITY = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"


class ResponseStatus(StrEnum):
    """RegistryResponse/@status values."""

    SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
    PARTIAL_SUCCESS = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
    FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"


class RegistryErrorCode(StrEnum):
    """The error codes onerecord's gateways send (ITI TF-3 Table 4.2.4.1-2)."""

    REGISTRY_ERROR = "XDSRegistryError"
    REPOSITORY_ERROR = "XDSRepositoryError"
    UNAVAILABLE_COMMUNITY = "XDSUnavailableCommunity"
    UNKNOWN_COMMUNITY = "XDSUnknownCommunity"
    UNKNOWN_STORED_QUERY = "XDSUnknownStoredQuery"
    STORED_QUERY_PARAM_NUMBER = "XDSStoredQueryParamNumber"
    MISSING_DOCUMENT = "XDSMissingDocument"
    UNKNOWN_REPOSITORY = "XDSUnknownRepositoryId"
    TOO_MANY_RESULTS = "XDSTooManyResults"
    FORBIDDEN_ACCESS = "XDSForbiddenAccess"


def community_location(home_community_id: str | HomeCommunityId) -> str:
    """Return "urn:oid:<oid>" for a homeCommunityId given bare or as urn:oid:."""
    if isinstance(home_community_id, HomeCommunityId):
        return home_community_id.urn
    return HomeCommunityId(Oid(home_community_id)).urn


def community_error(
    code: RegistryErrorCode | str,
    home_community_id: str | HomeCommunityId,
    context: str,
    *,
    warning: bool = False,
) -> EbRegistryError:
    """A RegistryError located at a community (ITI TF-2 3.38.4.1.3)."""
    return EbRegistryError(
        error_code=str(code),
        code_context=context,
        location=community_location(home_community_id),
        severity=WARNING_SEVERITY if warning else ERROR_SEVERITY,
    )


def consolidated_status(*, answered: int, errors: Sequence[EbRegistryError]) -> ResponseStatus:
    """The status of an answer from `answered` communities with `errors` (rule above)."""
    if answered < 0:
        raise ValueError("answered must not be negative")
    failed = any(e.severity == ERROR_SEVERITY for e in errors)
    if not failed:
        return ResponseStatus.SUCCESS
    return ResponseStatus.PARTIAL_SUCCESS if answered > 0 else ResponseStatus.FAILURE


def render_registry_response(status: ResponseStatus, errors: Sequence[EbRegistryError] = ()) -> Any:
    """Return an rs:RegistryResponse element (ITI-39/43 errors, ITI-41/62 answers)."""
    root = etree.Element(qname(RS, "RegistryResponse"), {"status": status.value}, nsmap={"rs": RS})
    if errors:
        highest = (
            ERROR_SEVERITY
            if any(e.severity == ERROR_SEVERITY for e in errors)
            else WARNING_SEVERITY
        )
        listed = etree.SubElement(
            root, qname(RS, "RegistryErrorList"), {"highestSeverity": highest}
        )
        for e in errors:
            attrs = {
                "errorCode": e.error_code,
                "codeContext": e.code_context,
                "severity": e.severity,
            }
            if e.location is not None:
                attrs["location"] = e.location
            etree.SubElement(listed, qname(RS, "RegistryError"), attrs)
    return root
