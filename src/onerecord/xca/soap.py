"""The SOAP 1.2 envelope of an XCA / XDS.b message: WS-Addressing headers, security, body.

Reads only what a gateway needs before dispatch: the Action, MessageID, ReplyTo address (an
address other than anonymous asks for the asynchronous answer), FaultTo address, To, the one
SAML assertion in wsse:Security, and the one element of the Body.

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
    "NONE_ADDRESS",
    "SOAP12_MEDIA_TYPE",
    "SoapEnvelope",
    "parse_envelope",
    "read_envelope",
    "render_envelope",
    "render_fault",
]

ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"
NONE_ADDRESS = "http://www.w3.org/2005/08/addressing/none"
"""WS-Addressing 1.0 Core §2.1: a message sent here is discarded."""


@dataclass(frozen=True, slots=True)
class SoapEnvelope:
    """The parts of a SOAP 1.2 request a gateway reads before dispatching it."""

    action: str | None
    message_id: str | None
    reply_to: str | None
    to: str | None
    assertion: Any | None
    body: Any
    fault_to: str | None = None

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
    action = message_id = reply_to = fault_to = to = assertion = None
    if header is not None:
        action = child_text(header, "wsa:Action", what="wsa:Action")
        message_id = child_text(header, "wsa:MessageID", what="wsa:MessageID")
        to = child_text(header, "wsa:To", what="wsa:To")
        reply_to = _address(header, "wsa:ReplyTo")
        fault_to = _address(header, "wsa:FaultTo")
        securities = header.findall("wsse:Security", NS)
        if len(securities) > 1:
            raise XcaParseError("wsse:Security occurs more than once")
        if securities:
            assertions = securities[0].findall("saml:Assertion", NS)
            if len(assertions) > 1:
                raise XcaParseError("wsse:Security holds more than one SAML assertion")
            assertion = assertions[0] if assertions else None
    return SoapEnvelope(action, message_id, reply_to, to, assertion, body_children[0], fault_to)


def _address(header: Any, name: str) -> str | None:
    """The wsa:Address of the one endpoint reference `name` (ReplyTo, FaultTo), if any."""
    found = header.findall(name, NS)
    if len(found) > 1:
        raise XcaParseError(f"{name} occurs more than once")
    if not found:
        return None
    address = child_text(found[0], "wsa:Address", what=f"{name}/wsa:Address")
    if address is None:
        # WS-Addressing 1.0 Core §2.2: an endpoint reference has exactly one Address.
        raise XcaParseError(f"{name} has no wsa:Address")
    return address


def parse_envelope(data: Any, *, max_bytes: int = MAX_MESSAGE_BYTES) -> SoapEnvelope:
    """Parse outside bytes as a SOAP 1.2 envelope (hardened; XcaParseError on any fault)."""
    return read_envelope(parse_xml(data, max_bytes=max_bytes))


XDS_ERRORS = "urn:ihe:iti:xds:2007"
"""The namespace of the XDS error codes used as SOAP Fault subcodes."""
FAULT_ACTION = "http://www.w3.org/2005/08/addressing/soap/fault"
SOAP12_MEDIA_TYPE = "application/soap+xml"


def render_envelope(
    body: Any, *, action: str, relates_to: str | None, to: str | None = None
) -> bytes:
    """Serialise a SOAP 1.2 answer: WS-Addressing Action, a fresh MessageID, RelatesTo, To.

    `to` is the reply endpoint of an asynchronous answer (the request's ReplyTo or FaultTo
    address); a synchronous answer goes back on the HTTP response and names none. `body` is
    the Body's element, or that element already serialised as UTF-8 bytes without an XML
    declaration (`onerecord.xca.writer`), spliced in unparsed.

    References: IHE ITI TF-2 V.3.2.2 (the response's wsa:Action and wsa:RelatesTo);
    WS-Addressing 1.0 Core §3.4 (a reply's [destination] is the reply endpoint's address).
    """
    envelope = etree.Element(qname(SOAP12, "Envelope"), nsmap={"env": SOAP12, "wsa": WSA})
    header = etree.SubElement(envelope, qname(SOAP12, "Header"))
    understood = {qname(SOAP12, "mustUnderstand"): "true"}
    etree.SubElement(header, qname(WSA, "Action"), understood).text = action
    etree.SubElement(header, qname(WSA, "MessageID")).text = f"urn:uuid:{uuid.uuid4()}"
    if relates_to:
        etree.SubElement(header, qname(WSA, "RelatesTo")).text = relates_to
    if to:
        etree.SubElement(header, qname(WSA, "To"), understood).text = to
    soap_body = etree.SubElement(envelope, qname(SOAP12, "Body"))
    if not isinstance(body, bytes):
        soap_body.append(body)
        return bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))
    written = bytes(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))
    # The empty Body is the envelope's last element: lxml ends the document with it, and no
    # escaped header value can hold "<", so the tail is found only where it belongs.
    if not written.endswith(_EMPTY_BODY_TAIL):
        raise ValueError("unexpected serialisation of the SOAP envelope")
    return written[: -len(_EMPTY_BODY_TAIL)] + b"<env:Body>" + body + b"</env:Body></env:Envelope>"


_EMPTY_BODY_TAIL = b"<env:Body/></env:Envelope>"


def render_fault(
    reason: str,
    *,
    code: str = "Sender",
    subcode: str | None = None,
    relates_to: str | None = None,
    to: str | None = None,
) -> bytes:
    """Serialise a SOAP 1.2 Fault (env:Sender for the caller's faults, env:Receiver for ours).

    `relates_to` and `to` address a fault sent to a request's FaultTo (or ReplyTo) endpoint.

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
    return render_envelope(body, action=FAULT_ACTION, relates_to=relates_to, to=to)
