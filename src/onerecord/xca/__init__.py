"""The XCA / XDS.b wire: hardened SOAP/ebXML parsing, SAML XUA, ebRIM <-> DocumentEntry.

Like `mhd`, this package imports only `domain` and `trust`; the responding gateway (source) and
the initiating gateway (hub) will both use it without importing each other.
"""

from __future__ import annotations

from onerecord.xca.ebrim import (
    ExtrinsicEntry,
    QueryResponse,
    ebrim_from_entry,
    entry_from_ebrim,
    obfuscate,
    parse_query_response,
    render_query_response,
)
from onerecord.xca.errors import ParseProblem, SamlProblem, SamlRefused, XcaError, XcaParseError
from onerecord.xca.query import StoredQuery, parse_adhoc_query
from onerecord.xca.response import (
    RegistryErrorCode,
    ResponseStatus,
    community_error,
    consolidated_status,
    render_registry_response,
)
from onerecord.xca.saml import (
    SamlAssertion,
    TrustedIssuer,
    XuaSettings,
    read_assertion,
    verify_assertion,
)
from onerecord.xca.soap import ANONYMOUS, SoapEnvelope, parse_envelope, read_envelope
from onerecord.xca.xml import MAX_MESSAGE_BYTES, NS, parse_xml
from onerecord.xca.xua import SamlPatient, XuaCaller, caller_from_assertion, patient_matches

__all__ = [
    "ANONYMOUS",
    "MAX_MESSAGE_BYTES",
    "NS",
    "ExtrinsicEntry",
    "ParseProblem",
    "QueryResponse",
    "RegistryErrorCode",
    "ResponseStatus",
    "SamlAssertion",
    "SamlPatient",
    "SamlProblem",
    "SamlRefused",
    "SoapEnvelope",
    "StoredQuery",
    "TrustedIssuer",
    "XcaError",
    "XcaParseError",
    "XuaCaller",
    "XuaSettings",
    "caller_from_assertion",
    "community_error",
    "consolidated_status",
    "ebrim_from_entry",
    "entry_from_ebrim",
    "obfuscate",
    "parse_adhoc_query",
    "parse_envelope",
    "parse_query_response",
    "parse_xml",
    "patient_matches",
    "read_assertion",
    "read_envelope",
    "render_query_response",
    "render_registry_response",
    "verify_assertion",
]
