"""The XCA / XDS.b wire: hardened SOAP/ebXML parsing, SAML XUA, ebRIM <-> DocumentEntry.

Like `mhd`, this package imports only `domain` and `trust`; the responding gateway
(`source.xca_gateway`, `source.xca_app`) uses it, and the initiating gateway (hub) will, without
importing each other. MTOM/XOP (`mtom`), the retrieve request and answer (`retrieve`), the
WSDLs and schema subsets (`wsdl/`, package data) and the development SAML issuer live here.
"""

from __future__ import annotations

from onerecord.xca.addressing import ReplyAllowList, ReplyEndpoint, check_message_id
from onerecord.xca.dev_issuer import (
    DEV_SAML_ISSUER,
    create_development_issuer,
    is_development_certificate,
)
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
from onerecord.xca.mtom import MtomPart, MtomStream, content_id_of, mtom_response, soap_part
from onerecord.xca.query import StoredQuery, parse_adhoc_query
from onerecord.xca.response import (
    RegistryErrorCode,
    ResponseStatus,
    community_error,
    consolidated_status,
    render_registry_response,
)
from onerecord.xca.retrieve import (
    DocumentRequest,
    RetrievedDocument,
    parse_retrieve_request,
    render_retrieve_response,
)
from onerecord.xca.saml import (
    SamlAssertion,
    TrustedIssuer,
    XuaSettings,
    read_assertion,
    verify_assertion,
)
from onerecord.xca.soap import (
    ANONYMOUS,
    SoapEnvelope,
    parse_envelope,
    read_envelope,
    render_envelope,
    render_fault,
)
from onerecord.xca.writer import query_response_xml
from onerecord.xca.xml import MAX_MESSAGE_BYTES, NS, parse_xml
from onerecord.xca.xua import SamlPatient, XuaCaller, caller_from_assertion, patient_matches

__all__ = [
    "ANONYMOUS",
    "DEV_SAML_ISSUER",
    "MAX_MESSAGE_BYTES",
    "NS",
    "DocumentRequest",
    "ExtrinsicEntry",
    "MtomPart",
    "MtomStream",
    "ParseProblem",
    "QueryResponse",
    "RegistryErrorCode",
    "ReplyAllowList",
    "ReplyEndpoint",
    "ResponseStatus",
    "RetrievedDocument",
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
    "check_message_id",
    "community_error",
    "consolidated_status",
    "content_id_of",
    "create_development_issuer",
    "ebrim_from_entry",
    "entry_from_ebrim",
    "is_development_certificate",
    "mtom_response",
    "obfuscate",
    "parse_adhoc_query",
    "parse_envelope",
    "parse_query_response",
    "parse_retrieve_request",
    "parse_xml",
    "patient_matches",
    "query_response_xml",
    "read_assertion",
    "read_envelope",
    "render_envelope",
    "render_fault",
    "render_query_response",
    "render_registry_response",
    "render_retrieve_response",
    "soap_part",
    "verify_assertion",
]
