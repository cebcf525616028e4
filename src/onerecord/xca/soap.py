"""The SOAP 1.2 envelope of an XCA / XDS.b message: WS-Addressing headers, security, body.

Reads only what a gateway needs before dispatch: the Action, MessageID, ReplyTo address (an
address other than anonymous asks for the asynchronous answer), To, the one SAML assertion in
wsse:Security, and the one element of the Body.

References: IHE ITI TF-2 V.3.2 (SOAP 1.2, WS-Addressing 1.0 Action/MessageID/ReplyTo/To),
ITI TF-2 3.40.4.1 (XUA: the assertion inside wsse:Security); ITI TF-2 3.38.4.1.2 (async).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from onerecord.xca.errors import XcaParseError
from onerecord.xca.xml import MAX_MESSAGE_BYTES, NS, SOAP12, WSA, child_text, parse_xml, qname

__all__ = [
    "ANONYMOUS",
    "FAULT_ACTION",
    "SOAP12_MEDIA_TYPE",
    "SoapEnvelope",
    "parse_envelope",
    "read_envelope",
    "render_envelope",
    "render_fault",
]

ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"


@dataclass(frozen=True, slots=True)
class SoapEnvelope:
    """The parts of a SOAP 1.2 request a gateway reads before dispatching it."""

    action: str | None
    message_id: str | None
    reply_to: str | None
    to: str | None
    assertion: Any | None
    body: Any

    @property
    def asynchronous(self) -> bool:
        """True when ReplyTo names an address other than anonymous (ITI-38/39 async)."""
        return self.reply_to is not None and self.reply_to != ANONYMOUS


def read_envelope(root: Any) -> SoapEnvelope:
    """Return the parts of an already parsed envelope; refuse anything not SOAP 1.2."""
    if root.tag != qname(SOAP12, "Envelope"):
        raise XcaParseError("the message is not a SOAP 1.2 Envelope")
    headers = root.findall("env:Header", NS)
    bodies = root.findall("env:Body", NS)
    if len(headers) > 1 or len(bodies) != 1:
        raise XcaParseError("a SOAP Envelope has at most one Header and exactly one Body")
    body_children = [c for c in bodies[0] if isinstance(c.tag, str)]
    if len(body_children) != 1:
        raise XcaParseError("the SOAP Body must hold exactly one element")
    header = headers[0] if headers else None
    action = message_id = reply_to = to = assertion = None
    if header is not None:
        action = child_text(header, "wsa:Action", what="wsa:Action")
        message_id = child_text(header, "wsa:MessageID", what="wsa:MessageID")
        to = child_text(header, "wsa:To", what="wsa:To")
        replies = header.findall("wsa:ReplyTo", NS)
        if len(replies) > 1:
            raise XcaParseError("wsa:ReplyTo occurs more than once")
        if replies:
            reply_to = child_text(replies[0], "wsa:Address", what="wsa:ReplyTo/wsa:Address")
        securities = header.findall("wsse:Security", NS)
        if len(securities) > 1:
            raise XcaParseError("wsse:Security occurs more than once")
        if securities:
            assertions = securities[0].findall("saml:Assertion", NS)
            if len(assertions) > 1:
                raise XcaParseError("wsse:Security holds more than one SAML assertion")
            assertion = assertions[0] if assertions else None
    return SoapEnvelope(action, message_id, reply_to, to, assertion, body_children[0])


def parse_envelope(data: Any, *, max_bytes: int = MAX_MESSAGE_BYTES) -> SoapEnvelope:
    """Parse outside bytes as a SOAP 1.2 envelope (hardened; XcaParseError on any fault)."""
    return read_envelope(parse_xml(data, max_bytes=max_bytes))


XDS_ERRORS = "urn:ihe:iti:xds:2007"
"""The namespace of the XDS error codes used as SOAP Fault subcodes."""
FAULT_ACTION = "http://www.w3.org/2005/08/addressing/soap/fault"
SOAP12_MEDIA_TYPE = "application/soap+xml"


def render_envelope(body: Any, *, action: str, relates_to: str | None) -> bytes:
    """Serialise a SOAP 1.2 answer: WS-Addressing Action, a fresh MessageID, RelatesTo.

    References: IHE ITI TF-2 V.3.2.2 (the response's wsa:Action and wsa:RelatesTo).
    """
    envelope = etree.Element(qname(SOAP12, "Envelope"), nsmap={"env": SOAP12, "wsa": WSA})
    header = etree.SubElement(envelope, qname(SOAP12, "Header"))
    understood = {qname(SOAP12, "mustUnderstand"): "true"}
    etree.SubElement(header, qname(WSA, "Action"), understood).text = action
    etree.SubElement(header, qname(WSA, "MessageID")).text = f"urn:uuid:{uuid.uuid4()}"
    if relates_to:
        etree.SubElement(header, qname(WSA, "RelatesTo")).text = relates_to
    etree.SubElement(envelope, qname(SOAP12, "Body")).append(body)
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def render_fault(reason: str, *, code: str = "Sender", subcode: str | None = None) -> bytes:
    """Serialise a SOAP 1.2 Fault (env:Sender for the caller's faults, env:Receiver for ours).

    References: SOAP 1.2 Part 1 §5.4 (Fault: Code/Value, Subcode, Reason/Text xml:lang).
    """
    body = etree.Element(qname(SOAP12, "Fault"), nsmap={"env": SOAP12})
    code_element = etree.SubElement(body, qname(SOAP12, "Code"))
    etree.SubElement(code_element, qname(SOAP12, "Value")).text = f"env:{code}"
    if subcode:
        sub = etree.SubElement(code_element, qname(SOAP12, "Subcode"))
        value = etree.SubElement(sub, qname(SOAP12, "Value"), nsmap={"xds": XDS_ERRORS})
        value.text = f"xds:{subcode}"
    text = etree.SubElement(etree.SubElement(body, qname(SOAP12, "Reason")), qname(SOAP12, "Text"))
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    text.text = reason
    return render_envelope(body, action=FAULT_ACTION, relates_to=None)
