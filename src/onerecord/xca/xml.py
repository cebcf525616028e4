"""The one hardened XML reader for SOAP / ebXML / SAML input from outside, and the namespaces.

Built on `onerecord.domain.xml.hardened_xml_parser` (no network, no DTD loading, no entity
expansion, no huge trees), and stricter still: a size limit before parsing, comments and
processing instructions dropped (a comment inside NameID or a Value must not split what is
read from what is signed), and any DOCTYPE or entity reference refused after parsing. Every
failure is an `XcaParseError`; nothing from lxml escapes.

References: OWASP XML External Entity Prevention Cheat Sheet; IHE ITI TF-2 V.3 (SOAP 1.2,
WS-Addressing), ITI TF-2 3.40 (XUA, WS-Security); ebRIM/ebRS 3.0.
"""

from __future__ import annotations

from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from onerecord.domain.xml import hardened_xml_parser
from onerecord.xca.errors import ParseProblem, XcaParseError

__all__ = [
    "DS",
    "HL7V3",
    "LCM",
    "MAX_MESSAGE_BYTES",
    "NS",
    "QUERY",
    "RIM",
    "RS",
    "SAML2",
    "SOAP12",
    "WSA",
    "WSSE",
    "WSU",
    "XDSB",
    "XOP",
    "XSI",
    "child_text",
    "element_text",
    "parse_xml",
    "qname",
]

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
XDSB = "urn:ihe:iti:xds-b:2007"
XOP = "http://www.w3.org/2004/08/xop/include"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
HL7V3 = "urn:hl7-org:v3"

NS = {
    "env": SOAP12,
    "wsa": WSA,
    "wsse": WSSE,
    "wsu": WSU,
    "saml": SAML2,
    "ds": DS,
    "rim": RIM,
    "rs": RS,
    "query": QUERY,
    "lcm": LCM,
    "xdsb": XDSB,
    "xop": XOP,
    "xsi": XSI,
    "hl7": HL7V3,
}
"""Prefixes used by this package's XPath expressions (never the sender's prefixes)."""

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""A SOAP envelope (MTOM attachments excluded) larger than this is refused unread.

The national ITI-18 answer with 32 entries is 0.3 MB; a LeafClass answer of a thousand entries
stays under 8 MB."""


def qname(namespace: str, local: str) -> str:
    """Return the Clark name {namespace}local."""
    return f"{{{namespace}}}{local}"


def parse_xml(data: Any, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
    """Parse outside XML bytes into an element; raise XcaParseError for anything unacceptable."""
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise XcaParseError("XML input must be bytes", problem=ParseProblem.SHAPE)
    if not data.strip():
        raise XcaParseError("the message is empty", problem=ParseProblem.EMPTY)
    if len(data) > max_bytes:
        raise XcaParseError(
            f"the message is larger than {max_bytes} bytes", problem=ParseProblem.TOO_LARGE
        )
    parser = hardened_xml_parser(remove_comments=True)
    try:
        root = etree.fromstring(data, parser)
    except (etree.LxmlError, ValueError, TypeError, UnicodeError) as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if isinstance(line, int) else ""
        raise XcaParseError(
            f"the message is not well-formed XML{where}", problem=ParseProblem.MALFORMED
        ) from None
    if root is None:
        raise XcaParseError("the message holds no element", problem=ParseProblem.MALFORMED)
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise XcaParseError("a DOCTYPE is not allowed in a SOAP message", problem=ParseProblem.DTD)
    for _ in root.iter(etree.Entity):
        raise XcaParseError("entity references are not allowed", problem=ParseProblem.ENTITY)
    return root


def child_text(element: Any, path: str, *, what: str, max_len: int = 1024) -> str | None:
    """Return the text of the one child at `path` (NS prefixes), or None when absent.

    Refuses a repeated child, a child with element content, and text over `max_len`.
    """
    found = element.findall(path, NS)
    if not found:
        return None
    if len(found) > 1:
        raise XcaParseError(f"{what} occurs more than once")
    return element_text(found[0], what=what, max_len=max_len)


def element_text(element: Any, *, what: str, max_len: int = 1024) -> str:
    """Return the stripped text of a simple element; refuse element content and long text."""
    if len(element):
        raise XcaParseError(f"{what} must hold text only")
    text = (element.text or "").strip()
    if len(text) > max_len:
        raise XcaParseError(
            f"{what} is longer than {max_len} characters", problem=ParseProblem.VALUE
        )
    return text
