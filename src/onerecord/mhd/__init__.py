"""The MHD wire: FHIR R4 JSON <-> domain objects for ITI-65/67/68, shared by source and hub.

Pure functions over bytes and dicts; no I/O, no web framework.
"""

from __future__ import annotations

from onerecord.mhd.capability import capability_statement
from onerecord.mhd.docref import (
    COMPREHENSIVE_PROFILE,
    EXT_CITIZEN_RELEASE_TIME,
    EXT_HOME_COMMUNITY_ID,
    EXT_REPOSITORY_UNIQUE_ID,
    EXT_SHA256,
    EXT_SUBMISSION_TIME,
    RetrieveKey,
    document_reference,
    entry_from_document_reference,
    parse_retrieve_path,
    retrieve_url,
)
from onerecord.mhd.errors import (
    BadRequest,
    Conflict,
    Gone,
    MhdError,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
    http_error,
    invalid_request,
)
from onerecord.mhd.iti65 import (
    ProvideBundle,
    SubmissionSet,
    SubmittedDocument,
    build_provide_bundle,
    parse_provide_bundle,
    transaction_response,
)
from onerecord.mhd.iti67 import (
    parse_date_param,
    parse_find_query,
    parse_token,
    render_query,
    searchset_bundle,
    split_count_only,
)
from onerecord.mhd.mime import check_mime_type, matches_mime_type, sniff_mime_type
from onerecord.mhd.outcome import (
    DENIAL_REASON_SYSTEM,
    FHIR_JSON,
    Issue,
    denial_reason,
    operation_outcome,
    outcome_bytes,
    outcome_for,
)
from onerecord.mhd.search_form import read_search_form

__all__ = [
    "COMPREHENSIVE_PROFILE",
    "DENIAL_REASON_SYSTEM",
    "EXT_CITIZEN_RELEASE_TIME",
    "EXT_HOME_COMMUNITY_ID",
    "EXT_REPOSITORY_UNIQUE_ID",
    "EXT_SHA256",
    "EXT_SUBMISSION_TIME",
    "FHIR_JSON",
    "BadRequest",
    "Conflict",
    "Gone",
    "Issue",
    "MhdError",
    "NotAcceptable",
    "NotFound",
    "PayloadTooLarge",
    "ProvideBundle",
    "RetrieveKey",
    "SubmissionSet",
    "SubmittedDocument",
    "Unprocessable",
    "UnsupportedMediaType",
    "build_provide_bundle",
    "capability_statement",
    "check_mime_type",
    "denial_reason",
    "document_reference",
    "entry_from_document_reference",
    "http_error",
    "invalid_request",
    "matches_mime_type",
    "operation_outcome",
    "outcome_bytes",
    "outcome_for",
    "parse_date_param",
    "parse_find_query",
    "parse_provide_bundle",
    "parse_retrieve_path",
    "parse_token",
    "read_search_form",
    "render_query",
    "retrieve_url",
    "searchset_bundle",
    "sniff_mime_type",
    "split_count_only",
    "transaction_response",
]
