"""The dialogue in the Norwegian message standards: KITH MsgHead v1.2 + Dialogmelding 1.1.

Pure: `render` writes a `KithMessage` as MsgHead XML, `parse` reads one back (or refuses it with
a `KithRefusal` naming the reason). A request to the office (e-consultation, contact message,
prescription renewal, appointment) is a DIALOG_FORESPORSEL with a Foresporsel; the office's
answer is a DIALOG_SVAR with a Notat. An appointment travels with an iCalendar object
(`kith_ical`) as a second Document, base64 in a KITH Base64Container.

Reading outside XML: size limit first, then refuse a DOCTYPE/ENTITY, parse with the project's
hardened parser (no network, no DTD, no entities, no huge trees), validate against our own subsets
of MsgHead v1.2 and Dialogmelding 1.1 (kith_schemas/README.md), then check every field we
use (national id, organisation numbers, ids, text lengths, code values) before returning it.
Any lxml or decoding failure becomes a KithRefusal; nothing else escapes.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

from lxml import etree  # type: ignore[import-untyped]

from onerecord.dialogue.kith_ical import CalendarEvent, CalendarRefusal, parse_event, render_event
from onerecord.domain import NationalIdentityNumber
from onerecord.domain.xml import hardened_xml_parser

__all__ = [
    "ANSWER_SYSTEM",
    "MAX_MESSAGE_BYTES",
    "MH",
    "MSG_TYPE_SYSTEM",
    "REQUEST_SYSTEM",
    "AnswerTopic",
    "KithMessage",
    "KithRefusal",
    "MsgType",
    "Party",
    "RequestTopic",
    "parse",
    "render",
    "schema",
]

MH = "http://www.kith.no/xmlstds/msghead/2006-05-24"
DIA = "http://www.kith.no/xmlstds/dialog/2013-01-23"
B64 = "http://www.kith.no/xmlstds/base64container"
DS = "http://www.w3.org/2000/09/xmldsig#"
MIG_VERSION = "v1.2 2006-05-24"

# KITH code lists (Volven, 2.16.578.1.12.4.1.1.<n>)
MSG_TYPE_SYSTEM = "2.16.578.1.12.4.1.1.8279"  # Meldingens funksjon (MsgInfo/Type)
PERSON_ID_SYSTEM = "2.16.578.1.12.4.1.1.8116"  # Identifikatortype for personer (FNR)
ORG_ID_SYSTEM = "2.16.578.1.12.4.1.1.9051"  # Identifikatortype for organisasjoner (ENH, HER)
REFDOC_TYPE_SYSTEM = "2.16.578.1.12.4.1.1.8114"  # Type dokumentreferanse (XML, A)
ROLE_SYSTEM = "2.16.578.1.12.4.1.1.9057"  # Rolle relatert til notat (1 = Forfatter)
# onerecord's own code systems (UUID-derived OIDs, ITU-T X.667): what a request or answer is.
REQUEST_SYSTEM = "2.25.161716094412325637532734573513146851329"
ANSWER_SYSTEM = "2.25.161716094412325637532734573513146851330"

MAX_MESSAGE_BYTES = 256 * 1024
MAX_TEXT_CHARS = 4000
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-.]{0,63}")
_ORGNR = re.compile(r"\d{9}")
_HER = re.compile(r"\d{1,9}")


class KithRefusal(ValueError):
    """The message is not one the adapter accepts; `reason` is safe to show the sender."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MsgType(StrEnum):
    """MsgInfo/Type (KITH 8279) values used."""

    FORESPORSEL = "DIALOG_FORESPORSEL"
    SVAR = "DIALOG_SVAR"

    @property
    def display(self) -> str:
        return "Forespørsel" if self is MsgType.FORESPORSEL else "Svar på forespørsel"


class RequestTopic(StrEnum):
    """What a request to the office is (Foresporsel/TypeForesp, REQUEST_SYSTEM)."""

    E_CONSULTATION = "e-consultation"
    CONTACT_OFFICE = "contact-office"
    PRESCRIPTION_RENEWAL = "prescription-renewal"
    APPOINTMENT = "appointment"

    @property
    def display(self) -> str:
        return _REQUEST_DN[self]


_REQUEST_DN = {
    RequestTopic.E_CONSULTATION: "E-konsultasjon",
    RequestTopic.CONTACT_OFFICE: "Kontakt med legekontoret",
    RequestTopic.PRESCRIPTION_RENEWAL: "Fornying av resept",
    RequestTopic.APPOINTMENT: "Timeavtale",
}


class AnswerTopic(StrEnum):
    """What the office's answer is (Notat/TemaKodet, ANSWER_SYSTEM)."""

    REPLY = "reply"
    RENEWED = "renewed"
    REFUSED = "refused"
    CONFIRMED = "confirmed"
    MOVED = "moved"
    CANCELLED = "cancelled"

    @property
    def display(self) -> str:
        return _ANSWER_DN[self]


_ANSWER_DN = {
    AnswerTopic.REPLY: "Svar",
    AnswerTopic.RENEWED: "Resept fornyet",
    AnswerTopic.REFUSED: "Fornying avslått",
    AnswerTopic.CONFIRMED: "Time bekreftet",
    AnswerTopic.MOVED: "Time flyttet",
    AnswerTopic.CANCELLED: "Time avlyst",
}


@dataclass(frozen=True, slots=True)
class Party:
    """A sending or receiving organisation: name, organisation number, HER-id if known."""

    name: str
    orgnr: str
    her_id: str | None = None


@dataclass(frozen=True, slots=True)
class KithMessage:
    """One MsgHead + Dialogmelding message, in or out.

    `msg_id` is the id of what the message is about on our side (a message, request or
    appointment id); `parent`/`conversation` form MsgInfo/ConversationRef. A request carries a
    RequestTopic and the text (Sporsmal); an answer an AnswerTopic, the text
    (TekstNotatInnhold) and its author (RollerRelatertNotat, Forfatter). `event` is the
    appointment's iCalendar object, for appointment requests and confirmed/moved answers.
    """

    msg_type: MsgType
    msg_id: str
    generated: datetime
    sender: Party
    receiver: Party
    patient: str
    topic: RequestTopic | AnswerTopic
    text: str
    parent: str | None = None
    conversation: str | None = None
    author: str | None = None
    event: CalendarEvent | None = None


# -- writing -------------------------------------------------------------------------------


def _el(parent: Any, ns: str, name: str, text: str | None = None, **attrs: str) -> Any:
    node = etree.SubElement(parent, f"{{{ns}}}{name}", attrs)
    if text is not None:
        node.text = text
    return node


def _organisation(parent: Any, party: Party) -> None:
    org = _el(parent, MH, "Organisation")
    _el(org, MH, "OrganisationName", party.name)
    for ident, code, dn in (
        (party.orgnr, "ENH", "Organisasjonsnummeret i Enhetsregisteret"),
        (party.her_id, "HER", "HER-id"),
    ):
        if ident is not None:
            node = _el(org, MH, "Ident")
            _el(node, MH, "Id", ident)
            _el(node, MH, "TypeId", V=code, S=ORG_ID_SYSTEM, DN=dn)


def _check_message(msg: KithMessage) -> None:
    """What render promises to write is what parse accepts (one set of rules)."""
    if not _ID.fullmatch(msg.msg_id):
        raise KithRefusal("MsgId is not an id")
    for ref in (msg.parent, msg.conversation):
        if ref is not None and not _ID.fullmatch(ref):
            raise KithRefusal("ConversationRef is not an id")
    if (msg.parent is None) != (msg.conversation is None):
        raise KithRefusal("ConversationRef needs both RefToParent and RefToConversation")
    if msg.generated.tzinfo is None:
        raise KithRefusal("GenDate needs an offset")
    for party in (msg.sender, msg.receiver):
        _check_text(party.name, "OrganisationName", 200)
        if not _ORGNR.fullmatch(party.orgnr):
            raise KithRefusal("an organisation number has nine digits")
        if party.her_id is not None and not _HER.fullmatch(party.her_id):
            raise KithRefusal("a HER-id is a number")
    try:
        NationalIdentityNumber(msg.patient)
    except ValueError:
        raise KithRefusal("the patient's fødselsnummer is not valid") from None
    _check_text(msg.text, "the text", MAX_TEXT_CHARS, empty=msg.msg_type is MsgType.SVAR)
    if msg.author is not None:
        _check_text(msg.author, "the author", 200)
    expected = RequestTopic if msg.msg_type is MsgType.FORESPORSEL else AnswerTopic
    if not isinstance(msg.topic, expected):
        raise KithRefusal("the topic does not fit the message type")
    if msg.msg_type is MsgType.SVAR and msg.parent is None:
        raise KithRefusal("an answer names the message it answers (ConversationRef)")
    needs_event = msg.topic in (RequestTopic.APPOINTMENT, AnswerTopic.MOVED)
    if needs_event and msg.event is None:
        raise KithRefusal("an appointment travels with its iCalendar object")
    if msg.event is not None and msg.topic not in (
        RequestTopic.APPOINTMENT,
        AnswerTopic.MOVED,
        AnswerTopic.CONFIRMED,
    ):
        raise KithRefusal("only appointments carry an iCalendar object")


def _check_text(value: str, what: str, limit: int, *, empty: bool = False) -> None:
    if not value.strip() and not empty:
        raise KithRefusal(f"{what} is empty")
    if len(value) > limit:
        raise KithRefusal(f"{what} is longer than {limit} characters")
    if any(
        (ord(c) < 32 and c not in "\n\t") or 0xD800 <= ord(c) <= 0xDFFF or c in "\ufffe\uffff"
        for c in value
    ):
        raise KithRefusal(f"{what} holds control characters")
    if "\r" in value:
        raise KithRefusal(f"{what} holds a carriage return")


def render(msg: KithMessage) -> bytes:
    """The message as MsgHead v1.2 XML (UTF-8), valid against the schemas in kith_schemas."""
    _check_message(msg)
    root = etree.Element(f"{{{MH}}}MsgHead", nsmap={None: MH, "dia": DIA, "b64": B64})
    info = _el(root, MH, "MsgInfo")
    _el(info, MH, "Type", V=msg.msg_type.value, DN=msg.msg_type.display)
    _el(info, MH, "MIGversion", MIG_VERSION)
    _el(info, MH, "GenDate", msg.generated.isoformat())
    _el(info, MH, "MsgId", msg.msg_id)
    if msg.parent is not None and msg.conversation is not None:
        ref = _el(info, MH, "ConversationRef")
        _el(ref, MH, "RefToParent", msg.parent)
        _el(ref, MH, "RefToConversation", msg.conversation)
    _organisation(_el(info, MH, "Sender"), msg.sender)
    _organisation(_el(info, MH, "Receiver"), msg.receiver)
    patient = _el(info, MH, "Patient")
    ident = _el(patient, MH, "Ident")
    _el(ident, MH, "Id", msg.patient)
    _el(ident, MH, "TypeId", V="FNR", S=PERSON_ID_SYSTEM, DN="Fødselsnummer")

    document = _el(root, MH, "Document")
    refdoc = _el(document, MH, "RefDoc")
    _el(refdoc, MH, "MsgType", V="XML", DN="XML-instans")
    _el(refdoc, MH, "MimeType", "text/xml")
    content = _el(refdoc, MH, "Content")
    dialog = _el(content, DIA, "Dialogmelding")
    if isinstance(msg.topic, RequestTopic):
        q = _el(dialog, DIA, "Foresporsel")
        _el(q, DIA, "TypeForesp", V=msg.topic.value, S=REQUEST_SYSTEM, DN=msg.topic.display)
        _el(q, DIA, "Sporsmal", msg.text)
        _el(q, DIA, "DokIdForesp", msg.msg_id)
    else:
        note = _el(dialog, DIA, "Notat")
        _el(note, DIA, "TemaKodet", V=msg.topic.value, S=ANSWER_SYSTEM, DN=msg.topic.display)
        _el(note, DIA, "TekstNotatInnhold", msg.text)
        _el(note, DIA, "DokIdNotat", msg.msg_id)
        if msg.author is not None:
            roles = _el(note, DIA, "RollerRelatertNotat")
            _el(roles, DIA, "RolleNotat", V="1", S=ROLE_SYSTEM, DN="Forfatter")
            hp = _el(roles, DIA, "HealthcareProfessional")
            _el(hp, DIA, "FamilyName", msg.author)
    if msg.event is not None:
        try:
            ics = render_event(msg.event)
        except CalendarRefusal as exc:
            raise KithRefusal(f"iCalendar: {exc.reason}") from None
        attachment = _el(root, MH, "Document")
        refdoc = _el(attachment, MH, "RefDoc")
        _el(refdoc, MH, "MsgType", V="A", DN="Vedlegg")
        _el(refdoc, MH, "MimeType", "text/calendar")
        _el(refdoc, MH, "Description", "Timeavtale (iCalendar)")
        holder = _el(refdoc, MH, "Content")
        _el(holder, B64, "Base64Container", base64.b64encode(ics).decode())
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return out


# -- reading -------------------------------------------------------------------------------


_SCHEMA_DIR = "kith_schemas"
# The namespaces the adapter validates, imported in this order (what MsgHead refers to first).
_NAMESPACES = (DS, B64, DIA, MH)
# Our own files end so; a published KITH schema for the same namespace, dropped beside them,
# is preferred without a code change.
_OWN_SUFFIXES = ("-subset.xsd", "-stub.xsd")
# Import locations the published schemas use for a namespace we supply ourselves.
_ALIASES = {"xmldsig-core-schema.xsd": DS}


def _schema_text(name: str) -> bytes:
    return resources.files("onerecord.dialogue").joinpath(_SCHEMA_DIR, name).read_bytes()


@cache
def _schema_files() -> dict[str, str]:
    """Which file in kith_schemas supplies each namespace: a published one before our own."""
    found: dict[str, list[str]] = {}
    for entry in resources.files("onerecord.dialogue").joinpath(_SCHEMA_DIR).iterdir():
        if entry.name.endswith(".xsd"):
            root = etree.fromstring(entry.read_bytes(), hardened_xml_parser())
            found.setdefault(str(root.get("targetNamespace")), []).append(entry.name)
    chosen = {}
    for ns in _NAMESPACES:
        names = sorted(found.get(ns, []), key=lambda n: (n.endswith(_OWN_SUFFIXES), n))
        if not names:
            raise RuntimeError(f"kith_schemas has no schema for {ns}")
        chosen[ns] = names[0]
    return chosen


class _Resolver(etree.Resolver):  # type: ignore[misc]
    """Schema imports resolve to the files in kith_schemas only; nothing from the network."""

    def resolve(self, url: str, _pubid: Any, context: Any) -> Any:
        name = url.rsplit("/", 1)[-1]
        if name in _ALIASES:
            name = _schema_files()[_ALIASES[name]]
        try:
            text = _schema_text(name)
        except (FileNotFoundError, IsADirectoryError, ValueError):
            raise KithRefusal("schema import outside kith_schemas") from None
        return self.resolve_string(text, context)


@cache
def schema() -> Any:
    """MsgHead v1.2 with Dialogmelding 1.1 and the base64 container, compiled once.

    One wrapper imports each namespace from the file `_schema_files` picks (today our own
    subsets; a published KITH file put beside them is used instead, no code change).
    """
    imports = "".join(
        f'<xs:import namespace="{ns}" schemaLocation="{name}"/>'
        for ns, name in _schema_files().items()
    )
    wrapper = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"'
        f' targetNamespace="urn:onerecord:kith-all">{imports}</xs:schema>'
    ).encode()
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    parser.resolvers.add(_Resolver())
    return etree.XMLSchema(etree.fromstring(wrapper, parser, base_url="kith/wrapper.xsd"))


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _one(parent: Any, path: str) -> Any:
    found = parent.findall(path, {"mh": MH, "dia": DIA, "b64": B64})
    if len(found) != 1:
        raise KithRefusal(f"expected exactly one {path.split('/')[-1].split(':')[-1]}")
    return found[0]


def _opt(parent: Any, path: str) -> Any | None:
    found = parent.findall(path, {"mh": MH, "dia": DIA, "b64": B64})
    if len(found) > 1:
        raise KithRefusal(f"{path.split('/')[-1].split(':')[-1]} is repeated")
    return found[0] if found else None


def _text(node: Any, what: str, *, limit: int = 200, empty: bool = False) -> str:
    value = node.text or ""
    if len(node):
        raise KithRefusal(f"{what} holds markup")
    _check_text(value, what, limit, empty=empty)
    return str(value)


def _attr(node: Any, name: str) -> str:
    value = node.get(name)
    if value is None:
        raise KithRefusal(f"{etree.QName(node).localname} lacks {name}")
    return str(value)


def _party(info: Any, role: str) -> Party:
    org = _one(info, f"mh:{role}/mh:Organisation")
    name = _text(_one(org, "mh:OrganisationName"), "OrganisationName")
    orgnr = her = None
    for ident in org.findall("mh:Ident", {"mh": MH}):
        type_id = _one(ident, "mh:TypeId")
        value = _text(_one(ident, "mh:Id"), "Ident/Id", limit=20)
        if type_id.get("S") != ORG_ID_SYSTEM:
            raise KithRefusal(f"{role} identifier is not of code list {ORG_ID_SYSTEM}")
        kind = type_id.get("V")
        if kind == "ENH" and orgnr is None:
            orgnr = value
        elif kind == "HER" and her is None:
            her = value
        else:
            raise KithRefusal(f"{role} identifier type {kind!r} unknown or repeated")
    if orgnr is None:
        raise KithRefusal(f"{role} lacks its organisation number (ENH)")
    if _opt(org, "mh:Organisation") is not None or _opt(org, "mh:HealthcareProfessional"):
        raise KithRefusal(f"{role}: nested organisations are not accepted")
    return Party(name, orgnr, her)


def _refuse_markup_declarations(data: bytes) -> None:
    upper = data.upper()
    for word in (b"<!DOCTYPE", b"<!ENTITY", b"<!ELEMENT", b"<!ATTLIST"):
        if word in upper:
            raise KithRefusal("a DOCTYPE or entity declaration is not accepted")


def parse(data: bytes) -> KithMessage:
    """Read a MsgHead + Dialogmelding message, or raise KithRefusal (never anything else)."""
    if not isinstance(data, bytes | bytearray):
        raise KithRefusal("the message must be bytes")
    if len(data) > MAX_MESSAGE_BYTES:
        raise KithRefusal(f"the message is larger than {MAX_MESSAGE_BYTES} bytes")
    if not data.strip():
        raise KithRefusal("the message is empty")
    _refuse_markup_declarations(bytes(data))
    try:
        root = etree.fromstring(bytes(data), hardened_xml_parser(remove_comments=True))
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise KithRefusal(f"not well-formed XML ({type(exc).__name__})") from None
    if root is None or root.tag != _q(MH, "MsgHead"):
        raise KithRefusal(f"the root element must be MsgHead in {MH}")
    if not schema().validate(root):
        error = schema().error_log.last_error
        where = f" (line {error.line})" if error is not None else ""
        raise KithRefusal(f"not valid against MsgHead v1.2 / Dialogmelding 1.1{where}")
    try:
        return _read(root)
    except KithRefusal:
        raise
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise KithRefusal(f"a field could not be read ({type(exc).__name__})") from None


def _read(root: Any) -> KithMessage:
    if _opt(root, f"{{{DS}}}Signature") is not None:
        raise KithRefusal("signed messages are not accepted (the trust path authenticates)")
    info = _one(root, "mh:MsgInfo")
    type_node = _one(info, "mh:Type")
    try:
        msg_type = MsgType(_attr(type_node, "V"))
    except ValueError:
        raise KithRefusal("MsgInfo/Type must be DIALOG_FORESPORSEL or DIALOG_SVAR") from None
    generated = datetime.fromisoformat(_text(_one(info, "mh:GenDate"), "GenDate", limit=40))
    if generated.tzinfo is None:
        raise KithRefusal("GenDate needs an offset")
    msg_id = _text(_one(info, "mh:MsgId"), "MsgId", limit=64)
    parent = conversation = None
    ref = _opt(info, "mh:ConversationRef")
    if ref is not None:
        parent = _text(_one(ref, "mh:RefToParent"), "RefToParent", limit=64)
        conversation = _text(_one(ref, "mh:RefToConversation"), "RefToConversation", limit=64)
    for unused in ("ProcessingStatus", "RequestedPriority", "Ack", "OtherReceiver"):
        if info.find(f"mh:{unused}", {"mh": MH}) is not None:
            raise KithRefusal(f"MsgInfo/{unused} is not accepted by this adapter")
    sender, receiver = _party(info, "Sender"), _party(info, "Receiver")
    patient_node = _one(info, "mh:Patient")
    if len(patient_node) != 1:
        raise KithRefusal("Patient carries only its fødselsnummer (Ident)")
    ident = _one(patient_node, "mh:Ident")
    type_id = _one(ident, "mh:TypeId")
    if type_id.get("V") != "FNR" or type_id.get("S") != PERSON_ID_SYSTEM:
        raise KithRefusal(f"Patient/Ident must be an FNR of code list {PERSON_ID_SYSTEM}")
    patient = _text(_one(ident, "mh:Id"), "Patient/Ident/Id", limit=11)

    documents = root.findall("mh:Document", {"mh": MH})
    if not 1 <= len(documents) <= 2:
        raise KithRefusal("one Dialogmelding document, and at most one iCalendar attachment")
    main = _one(documents[0], "mh:RefDoc")
    if _one(main, "mh:MsgType").get("V") != "XML":
        raise KithRefusal("the first Document must be the XML Dialogmelding")
    dialog = _one(main, "mh:Content/dia:Dialogmelding")
    if len(_one(main, "mh:Content")) != 1:
        raise KithRefusal("Content holds exactly one Dialogmelding")
    topic: RequestTopic | AnswerTopic
    author = None
    if msg_type is MsgType.FORESPORSEL:
        q = _one(dialog, "dia:Foresporsel")
        code = _one(q, "dia:TypeForesp")
        if code.get("S") != REQUEST_SYSTEM:
            raise KithRefusal(f"TypeForesp must be of code list {REQUEST_SYSTEM}")
        try:
            topic = RequestTopic(_attr(code, "V"))
        except ValueError:
            raise KithRefusal("TypeForesp names no request this service knows") from None
        text = _text(_one(q, "dia:Sporsmal"), "Sporsmal", limit=MAX_TEXT_CHARS)
        if _text(_one(q, "dia:DokIdForesp"), "DokIdForesp", limit=64) != msg_id:
            raise KithRefusal("DokIdForesp must equal MsgId")
    else:
        note = _one(dialog, "dia:Notat")
        code = _one(note, "dia:TemaKodet")
        if code.get("S") != ANSWER_SYSTEM:
            raise KithRefusal(f"TemaKodet must be of code list {ANSWER_SYSTEM}")
        try:
            topic = AnswerTopic(_attr(code, "V"))
        except ValueError:
            raise KithRefusal("TemaKodet names no answer this service knows") from None
        body = _opt(note, "dia:TekstNotatInnhold")
        text = (
            _text(body, "TekstNotatInnhold", limit=MAX_TEXT_CHARS, empty=True)
            if body is not None
            else ""
        )
        dok = _opt(note, "dia:DokIdNotat")
        if dok is not None and _text(dok, "DokIdNotat", limit=64) != msg_id:
            raise KithRefusal("DokIdNotat must equal MsgId")
        roles = note.findall("dia:RollerRelatertNotat", {"dia": DIA})
        if len(roles) > 1:
            raise KithRefusal("at most one RollerRelatertNotat (the author)")
        if roles:
            role = _one(roles[0], "dia:RolleNotat")
            if role.get("S") != ROLE_SYSTEM or role.get("V") != "1":
                raise KithRefusal("RollerRelatertNotat must name the author (9057: 1)")
            hp = _one(roles[0], "dia:HealthcareProfessional")
            names = [
                _text(n, "the author", empty=False)
                for n in hp.findall("dia:*", {"dia": DIA})
                if etree.QName(n).localname in ("GivenName", "MiddleName", "FamilyName")
            ]
            if names != [_text(_one(hp, "dia:FamilyName"), "the author")]:
                raise KithRefusal("the author is given as FamilyName only")
            author = names[0]
    event = None
    if len(documents) == 2:
        att = _one(documents[1], "mh:RefDoc")
        if _one(att, "mh:MsgType").get("V") != "A":
            raise KithRefusal("the second Document must be an attachment (A)")
        mime = _opt(att, "mh:MimeType")
        if mime is None or mime.text != "text/calendar":
            raise KithRefusal("the attachment must be text/calendar")
        container = _one(att, "mh:Content/b64:Base64Container")
        raw = base64.b64decode(container.text or "", validate=True)
        try:
            event = parse_event(raw)
        except CalendarRefusal as exc:
            raise KithRefusal(f"iCalendar: {exc.reason}") from None
    msg = KithMessage(
        msg_type=msg_type,
        msg_id=msg_id,
        generated=generated,
        sender=sender,
        receiver=receiver,
        patient=patient,
        topic=topic,
        text=text,
        parent=parent,
        conversation=conversation,
        author=author,
        event=event,
    )
    _check_message(msg)
    return msg
