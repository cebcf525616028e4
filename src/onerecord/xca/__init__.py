"""The XCA / XDS.b wire: hardened SOAP/ebXML parsing, SAML XUA, ebRIM <-> DocumentEntry.

Like `mhd`, this package imports only `domain` and `trust`; the responding gateway (source) and
the initiating gateway (hub) will both use it without importing each other.
"""

from __future__ import annotations

from onerecord.xca.errors import ParseProblem, SamlProblem, SamlRefused, XcaError, XcaParseError
from onerecord.xca.soap import ANONYMOUS, SoapEnvelope, parse_envelope, read_envelope
from onerecord.xca.xml import MAX_MESSAGE_BYTES, NS, parse_xml

__all__ = [
    "ANONYMOUS",
    "MAX_MESSAGE_BYTES",
    "NS",
    "ParseProblem",
    "SamlProblem",
    "SamlRefused",
    "SoapEnvelope",
    "XcaError",
    "XcaParseError",
    "parse_envelope",
    "parse_xml",
    "read_envelope",
]
