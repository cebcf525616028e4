"""Show a retrieved document in a portal page: PDF, image, KITH XML, FHIR document or text.

`render_document` decides how the bytes of one document (ITI-68) are shown and, for KITH XML,
FHIR documents and plain text, renders them to a safe HTML fragment. Bad, hostile or
unrecognised content is never an error for the caller: it is offered for download instead,
and nothing of the content is logged.

- KITH XML (epikrise, svarrapport/labsvar, henvisning; bare or inside a MsgHead) goes through
  our own XSLT stylesheets (`portals/xslt/`), compiled once with
  `XSLTAccessControl.DENY_ALL`. The XML parser resolves no entities, loads no DTD, uses no
  network and refuses any DOCTYPE.
- A FHIR document (Bundle type document, Composition first) is rendered here from its
  structured fields; section narrative is rebuilt from an allow-list of XHTML elements and
  attributes, so no script, style, event handler or unsafe link survives.

References: KITH message standards (namespaces http://www.kith.no/xmlstds/<message>/<date>);
HL7 FHIR R4 §3.3 (Documents), §2.4 (Narrative: XHTML, no scripts or event attributes);
OWASP XML External Entity Prevention Cheat Sheet; docs/documents.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.resources import as_file, files
from typing import Any, Literal

import orjson
import structlog
from lxml import etree  # type: ignore[import-untyped]
from markupsafe import Markup, escape

from onerecord.domain import DNR_SYSTEM, FNR_SYSTEM, HPR_SYSTEM
from onerecord.domain.xml import hardened_xml_parser

__all__ = [
    "KITH_FORMAT_PREFIX",
    "KITH_NAMESPACE_PREFIX",
    "MAX_RENDER_BYTES",
    "XSLT_ACCESS_CONTROL",
    "DocumentView",
    "DownloadNotice",
    "ViewKind",
    "compile_stylesheet",
    "render_document",
    "sanitise_narrative",
    "view_without_rendering",
]

log = structlog.get_logger("onerecord.portals.documents")

MAX_RENDER_BYTES = 5 * 1024 * 1024
KITH_NAMESPACE_PREFIX = "http://www.kith.no/xmlstds/"
KITH_FORMAT_PREFIX = "urn:no:kith:xmlstds:"
XSLT_ACCESS_CONTROL = etree.XSLTAccessControl.DENY_ALL

ViewKind = Literal["pdf", "image", "html", "text", "download"]
DownloadNotice = Literal["too-large", "too-slow"]
"""Why a document that could be shown is offered for download instead (the page says so)."""


@dataclass(frozen=True, slots=True)
class DocumentView:
    """How the page shows one document; `html` is a safe fragment for kinds html and text."""

    kind: ViewKind
    mime_type: str
    html: Markup | None = None
    title: str | None = None
    notice: DownloadNotice | None = None


class _NotShown(Exception):
    """The content cannot be shown in the page; the reason is a short code for the log."""


# --- dispatch --------------------------------------------------------------------------------

_IMAGE_SIGNATURES: Mapping[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
}
_XML_TYPES = frozenset({"text/xml", "application/xml"})
_JSON_TYPES = frozenset({"application/fhir+json", "application/json"})


def _media_type(mime_type: str) -> str:
    return mime_type.split(";", 1)[0].strip().lower()


def _charset(mime_type: str) -> str | None:
    match = re.search(r";\s*charset\s*=\s*\"?([A-Za-z0-9._:-]+)", mime_type, re.IGNORECASE)
    return match.group(1) if match else None


def render_document(
    content: bytes,
    *,
    mime_type: str,
    format_code: str | None,
    max_bytes: int = MAX_RENDER_BYTES,
) -> DocumentView:
    """Decide how to show a retrieved document and render it when it is shown as HTML.

    CPU-bound for KITH XML and FHIR documents: the portal runs it in a render worker
    (`render_pool.RenderPool`), never on its event loop.
    """
    media = _media_type(mime_type)
    try:
        return _dispatch(content, media, mime_type, format_code or "", max_bytes)
    except _NotShown as reason:
        return _download(reason, content, media)
    except Exception as error:  # a renderer bug on odd content must not break the page
        log.warning("document.render_failed", error=type(error).__name__, mime_type=media)
    return DocumentView("download", media or "application/octet-stream")


def view_without_rendering(
    content: bytes,
    *,
    mime_type: str,
    format_code: str | None,
    max_bytes: int = MAX_RENDER_BYTES,
) -> DocumentView | None:
    """Return the view when the document needs no rendering (PDF, image, too large, other type).

    Cheap: looks at the media type, the first bytes and the size, so it runs on the loop;
    None means `render_document` has work to do.
    """
    media = _media_type(mime_type)
    try:
        return _without_rendering(content, media, format_code or "", max_bytes)
    except _NotShown as reason:
        return _download(reason, content, media)


def _download(reason: _NotShown, content: bytes, media: str) -> DocumentView:
    log.info("document.download", reason=str(reason), mime_type=media, size=len(content))
    return DocumentView("download", media or "application/octet-stream")


def _without_rendering(
    content: bytes, media: str, format_code: str, max_bytes: int
) -> DocumentView | None:
    if media == "application/pdf":
        if b"%PDF-" not in content[:1024]:
            raise _NotShown("not-a-pdf")
        return DocumentView("pdf", media)
    if media in _IMAGE_SIGNATURES:
        if not content.startswith(_IMAGE_SIGNATURES[media]):
            raise _NotShown("not-an-image")
        return DocumentView("image", media)
    if not (_is_xml(media, format_code) or _is_json(media) or media == "text/plain"):
        raise _NotShown("unsupported-type")
    if len(content) > max_bytes:
        log.info("document.download", reason="too-large", mime_type=media, size=len(content))
        return DocumentView("download", media, notice="too-large")
    return None


def _is_xml(media: str, format_code: str) -> bool:
    return (
        media in _XML_TYPES or media.endswith("+xml") or format_code.startswith(KITH_FORMAT_PREFIX)
    )


def _is_json(media: str) -> bool:
    return media in _JSON_TYPES or media.endswith("+json")


def _dispatch(
    content: bytes, media: str, mime_type: str, format_code: str, max_bytes: int
) -> DocumentView:
    shown = _without_rendering(content, media, format_code, max_bytes)
    if shown is not None:
        return shown
    if _is_xml(media, format_code):
        return _render_kith(content, media)
    if _is_json(media):
        return _render_fhir_document(content, media)
    return _render_text(content, media, _charset(mime_type) or "utf-8")


# --- plain text ------------------------------------------------------------------------------


def _render_text(content: bytes, media: str, charset: str) -> DocumentView:
    try:
        text = content.decode(charset)
    except (LookupError, UnicodeDecodeError) as error:
        raise _NotShown("undecodable-text") from error
    if "\x00" in text:
        raise _NotShown("binary-text")
    return DocumentView("text", media, Markup("<pre>{}</pre>").format(text))


# --- KITH XML --------------------------------------------------------------------------------

# Root element (local name) → stylesheet; labsvar namespaces call their root "Message".
_KITH_ROOTS: Mapping[str, str] = {
    "Epikrise": "epikrise",
    "Svarrapport": "svarrapport",
    "Henvisning": "henvisning",
}
_KITH_DEFAULT_TITLES: Mapping[str, str] = {
    "epikrise": "Epikrise",
    "svarrapport": "Svarrapport",
    "henvisning": "Henvisning",
}


def _parse_xml(content: bytes) -> Any:
    """Parse XML with no DTD, no entities and no network; refuse any DOCTYPE."""
    # A DOCTYPE is the only way to declare entities; refuse it before libxml2 sees it, and
    # again after parsing for encodings (UTF-16) where the byte scan cannot see it.
    if b"<!DOCTYPE" in content or b"<!ENTITY" in content:
        raise _NotShown("doctype")
    try:
        tree = etree.ElementTree(etree.fromstring(content, hardened_xml_parser()))
    except (etree.XMLSyntaxError, ValueError) as error:
        raise _NotShown("malformed-xml") from error
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise _NotShown("doctype")
    return tree.getroot()


def _kith_kind(element: Any) -> str | None:
    qname = etree.QName(element)
    namespace = qname.namespace or ""
    if not namespace.startswith(KITH_NAMESPACE_PREFIX):
        return None
    if qname.localname in _KITH_ROOTS:
        return _KITH_ROOTS[qname.localname]
    if qname.localname == "Message" and "/labsvar/" in namespace:
        return "svarrapport"
    return None


def _kith_message(root: Any) -> tuple[str, Any]:
    """Return the KITH message kind and element: the root, or the content of a MsgHead."""
    kind = _kith_kind(root)
    if kind is not None:
        return kind, root
    qname = etree.QName(root)
    if qname.localname == "MsgHead" and (qname.namespace or "").startswith(KITH_NAMESPACE_PREFIX):
        for element in root.iter(etree.Element):
            kind = _kith_kind(element)
            if kind is not None:
                return kind, element
    raise _NotShown("not-kith")


def compile_stylesheet(stylesheet: Any) -> Any:
    """Compile a parsed XSLT stylesheet that may neither read nor write files or network."""
    return etree.XSLT(stylesheet, access_control=XSLT_ACCESS_CONTROL)


def _load_stylesheets() -> dict[str, Any]:
    # as_file gives xsl:include a real folder to resolve kith-common.xsl against.
    with as_file(files("onerecord.portals") / "xslt") as folder:
        return {
            kind: compile_stylesheet(
                etree.parse(str(folder / f"{kind}.xsl"), hardened_xml_parser())
            )
            for kind in _KITH_DEFAULT_TITLES
        }


_STYLESHEETS = _load_stylesheets()


def _render_kith(content: bytes, media: str) -> DocumentView:
    kind, message = _kith_message(_parse_xml(content))
    try:
        result = _STYLESHEETS[kind](message)
    except etree.XSLTError as error:
        raise _NotShown("xslt-failed") from error
    fragment = result.getroot()
    if fragment is None:
        raise _NotShown("xslt-empty")
    # The html serialiser escapes every text and attribute value the stylesheet wrote.
    html = etree.tostring(fragment, method="html", encoding="unicode")
    return DocumentView("html", media, Markup(html), _kith_title(kind, message))


def _kith_title(kind: str, message: Any) -> str:
    for element in message:
        if isinstance(element.tag, str) and etree.QName(element).localname == "MsgType":
            title = " ".join((element.get("DN") or "").split())
            if title:
                return title
    return _KITH_DEFAULT_TITLES[kind]


# --- FHIR documents --------------------------------------------------------------------------

_IDENTITY_LABELS: Mapping[str, str] = {
    f"urn:oid:{FNR_SYSTEM}": "Fødselsnummer",
    f"urn:oid:{DNR_SYSTEM}": "D-nummer",
}
_HPR = f"urn:oid:{HPR_SYSTEM}"
_COMPOSITION_STATUS: Mapping[str, str] = {
    "preliminary": "Foreløpig",
    "final": "Endelig",
    "amended": "Endret",
    "entered-in-error": "Feilregistrert",
}


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: object) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


class _Bundle:
    """The resources of a document Bundle, found by fullUrl or by "Type/id"."""

    def __init__(self, bundle: dict[str, Any]) -> None:
        self.by_reference: dict[str, dict[str, Any]] = {}
        self.resources: list[dict[str, Any]] = []
        for entry in _list(bundle.get("entry")):
            resource = _dict(_dict(entry).get("resource"))
            if not resource:
                continue
            self.resources.append(resource)
            full_url = _str(_dict(entry).get("fullUrl"))
            if full_url:
                self.by_reference[full_url] = resource
            kind, rid = _str(resource.get("resourceType")), _str(resource.get("id"))
            if kind and rid:
                self.by_reference.setdefault(f"{kind}/{rid}", resource)

    def resolve(self, reference: object) -> dict[str, Any]:
        """Return the resource a Reference points at inside the Bundle, or {}."""
        target = _str(_dict(reference).get("reference"))
        if not target:
            return {}
        found = self.by_reference.get(target)
        if found is None and "/" in target:
            found = self.by_reference.get("/".join(target.rsplit("/", 2)[-2:]))
        return found or {}


def _render_fhir_document(content: bytes, media: str) -> DocumentView:
    try:
        bundle = orjson.loads(content)
    except orjson.JSONDecodeError as error:
        raise _NotShown("malformed-json") from error
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise _NotShown("not-a-bundle")
    if bundle.get("type") != "document":
        raise _NotShown("not-a-document-bundle")
    resources = _Bundle(bundle)
    composition = next(
        (r for r in resources.resources if r.get("resourceType") == "Composition"), None
    )
    if composition is None:
        raise _NotShown("no-composition")
    title = _str(composition.get("title")) or _codeable_text(composition.get("type")) or None
    parts = [
        Markup('<article class="fhir-document">'),
        Markup("<h2>{}</h2>").format(title or "Dokument"),
        _composition_facts(composition, resources),
    ]
    parts.extend(_section(s, resources, 3) for s in _list(composition.get("section")))
    parts.append(Markup("</article>"))
    return DocumentView("html", media, Markup("").join(parts), title)


def _composition_facts(composition: dict[str, Any], resources: _Bundle) -> Markup:
    facts: list[tuple[str, str]] = []
    patient = resources.resolve(composition.get("subject"))
    subject = _dict(composition.get("subject"))
    facts.append(
        ("Pasient", _person_name(patient) or _str(subject.get("display")) or "Ikke oppgitt")
    )
    for identifier in _list(patient.get("identifier")):
        label = _IDENTITY_LABELS.get(_str(_dict(identifier).get("system")))
        value = _str(_dict(identifier).get("value"))
        if label and value:
            facts.append((label, value))
            break
    for author in _list(composition.get("author")):
        name = _party_name(resources.resolve(author), resources) or _str(
            _dict(author).get("display")
        )
        if name:
            facts.append(("Forfatter", name))
    custodian = _party_name(resources.resolve(composition.get("custodian")), resources)
    if custodian:
        facts.append(("Ansvarlig virksomhet", custodian))
    if _str(composition.get("date")):
        facts.append(("Dato", _fhir_date(_str(composition.get("date")))))
    status = _COMPOSITION_STATUS.get(_str(composition.get("status")))
    if status:
        facts.append(("Status", status))
    kind = _codeable_text(composition.get("type"))
    if kind:
        facts.append(("Dokumenttype", kind))
    rows = Markup("").join(Markup("<dt>{}</dt><dd>{}</dd>").format(k, v) for k, v in facts)
    return Markup(
        '<section class="fhir-parties"><h3>Pasient og avsender</h3><dl>{}</dl></section>'
    ).format(rows)


def _person_name(resource: dict[str, Any]) -> str:
    for name in _list(resource.get("name")):
        name = _dict(name)
        text = _str(name.get("text"))
        if text:
            return text
        given = " ".join(_str(g) for g in _list(name.get("given")) if _str(g))
        joined = " ".join(p for p in (given, _str(name.get("family"))) if p)
        if joined:
            return joined
    return ""


def _party_name(resource: dict[str, Any], resources: _Bundle) -> str:
    """Name a Practitioner (with HPR number), PractitionerRole or Organization."""
    kind = resource.get("resourceType")
    if kind == "Practitioner":
        name = _person_name(resource)
        hpr = next(
            (
                _str(i.get("value"))
                for i in map(_dict, _list(resource.get("identifier")))
                if _str(i.get("system")) == _HPR and _str(i.get("value"))
            ),
            "",
        )
        return f"{name} (HPR-nr. {hpr})" if name and hpr else name
    if kind == "PractitionerRole":
        # Only a Practitioner and an Organization: a reference cannot loop back to a role.
        person = resources.resolve(resource.get("practitioner"))
        place = resources.resolve(resource.get("organization"))
        names = (
            _party_name(person, resources) if person.get("resourceType") == "Practitioner" else "",
            _party_name(place, resources) if place.get("resourceType") == "Organization" else "",
        )
        return ", ".join(n for n in names if n)
    if kind == "Organization":
        name = _str(resource.get("name"))
        parent = resources.resolve(resource.get("partOf"))
        if parent and parent is not resource and parent.get("resourceType") == "Organization":
            return ", ".join(p for p in (_str(parent.get("name")), name) if p)
        return name
    return ""


def _codeable_text(concept: object) -> str:
    concept = _dict(concept)
    text = _str(concept.get("text"))
    if text:
        return text
    for coding in map(_dict, _list(concept.get("coding"))):
        shown = _str(coding.get("display")) or _str(coding.get("code"))
        if shown:
            return shown
    return ""


def _fhir_date(value: str) -> str:
    """Show a FHIR date or dateTime as "dd.mm.åååå kl. tt.mm" (as written, no time zone shift)."""
    match = re.fullmatch(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}:\d{2})\S*)?)?)?", value)
    if match is None:
        return value
    year, month, day, clock = match.groups()
    shown = ".".join(p for p in (day, month, year) if p)
    return f"{shown} kl. {clock.replace(':', '.')}" if clock else shown


def _section(section: object, resources: _Bundle, level: int) -> Markup:
    section = _dict(section)
    heading = min(level, 6)
    title = _str(section.get("title")) or _codeable_text(section.get("code")) or "Avsnitt"
    body: Markup = Markup("")
    narrative = _dict(section.get("text")).get("div")
    if isinstance(narrative, str) and narrative.strip():
        body = sanitise_narrative(narrative)
    if not body:
        items = [_entry_line(resources.resolve(e)) for e in _list(section.get("entry"))]
        shown = [i for i in items if i]
        if shown:
            body = Markup("<ul>{}</ul>").format(
                Markup("").join(Markup("<li>{}</li>").format(i) for i in shown)
            )
    subsections = Markup("").join(
        _section(s, resources, level + 1) for s in _list(section.get("section"))
    )
    if not body and not subsections:
        body = Markup("<p>Ingen opplysninger.</p>")
    return Markup('<section class="fhir-section"><h{0}>{1}</h{0}>{2}{3}</section>').format(
        heading, title, body, subsections
    )


def _entry_line(resource: dict[str, Any]) -> str:
    """One line of text for a section entry, from its structured fields."""
    kind = _str(resource.get("resourceType"))
    if kind in ("MedicationStatement", "MedicationRequest"):
        medicine = _codeable_text(resource.get("medicationCodeableConcept"))
        dosage = next(
            (
                _str(d.get("text"))
                for d in map(
                    _dict, _list(resource.get("dosage") or resource.get("dosageInstruction"))
                )
                if _str(d.get("text"))
            ),
            "",
        )
        return " – ".join(p for p in (medicine, dosage) if p)
    if kind == "Observation":
        return _observation_line(resource)
    if kind in ("Condition", "AllergyIntolerance", "Procedure"):
        concept = _dict(resource.get("code"))
        text = _codeable_text(concept)
        code = next((_str(c.get("code")) for c in map(_dict, _list(concept.get("coding")))), "")
        return f"{text} ({code})" if text and code and code != text else text
    return _codeable_text(resource.get("code"))


def _observation_line(resource: dict[str, Any]) -> str:
    name = _codeable_text(resource.get("code"))
    quantity = _dict(resource.get("valueQuantity"))
    value = quantity.get("value")
    if isinstance(value, int | float) and not isinstance(value, bool):
        shown = f"{value:g} {_str(quantity.get('unit'))}".strip()
        ranges = [_dict(r) for r in _list(resource.get("referenceRange"))]
        low = _dict(ranges[0].get("low")).get("value") if ranges else None
        high = _dict(ranges[0].get("high")).get("value") if ranges else None
        if isinstance(low, int | float) and value < low:
            shown += " – lav, utenfor referanseområdet"
        elif isinstance(high, int | float) and value > high:
            shown += " – høy, utenfor referanseområdet"
    else:
        shown = _str(resource.get("valueString")) or _codeable_text(
            resource.get("valueCodeableConcept")
        )
    return ": ".join(p for p in (name, shown) if p)


# --- narrative sanitiser ---------------------------------------------------------------------

_XHTML = "http://www.w3.org/1999/xhtml"
# Elements kept (by local name), with the attributes each may keep; everything else goes.
_ALLOWED: Mapping[str, frozenset[str]] = {
    **{
        tag: frozenset()
        for tag in (
            "p b strong i em u s sub sup small br hr span div blockquote pre code ul ol li dl dt "
            "dd table caption thead tbody tfoot tr"
        ).split()
    },
    "th": frozenset({"scope", "colspan", "rowspan"}),
    "td": frozenset({"colspan", "rowspan"}),
    "a": frozenset({"href"}),
}
# Headings inside a narrative sit below the section heading.
_RENAMED: Mapping[str, str] = {f"h{n}": "h4" for n in range(1, 7)}
# Elements dropped together with their content; other unknown elements keep their text.
_DROPPED = frozenset(
    "script style iframe frame frameset object embed applet noscript template svg math form "
    "input button select textarea option img video audio source track canvas link meta base "
    "head title".split()
)
_VOID = frozenset({"br", "hr"})
_MAX_SPAN = 100


def _span(value: str) -> bool:
    """True for a colspan/rowspan of 1 to `_MAX_SPAN` written in ASCII digits."""
    # str.isdigit() alone also accepts "²" and other digits int() refuses.
    return value.isascii() and value.isdigit() and len(value) <= 3 and 0 < int(value) <= _MAX_SPAN


_ATTRIBUTE_VALUES: Mapping[str, Callable[[str], bool]] = {
    "scope": lambda v: v in ("row", "col", "rowgroup", "colgroup"),
    "colspan": _span,
    "rowspan": _span,
    "href": lambda v: re.fullmatch(r"https?://[^\s\"'<>`]+", v, re.IGNORECASE) is not None,
}


def sanitise_narrative(div: str) -> Markup:
    """Rebuild FHIR narrative XHTML from an allow-list; return "" if it is not well-formed."""
    try:
        root = _parse_xml(div.encode("utf-8"))
    except _NotShown:
        return Markup("")
    inner = Markup("").join(_clean_children(root))
    if not inner.strip():
        return Markup("")
    return Markup('<div class="fhir-narrative">{}</div>').format(inner)


def _clean_children(element: Any) -> Iterator[Markup]:
    if element.text:
        yield escape(element.text)
    for child in element:
        if isinstance(child.tag, str):
            yield from _clean(child)
        if child.tail:
            yield escape(child.tail)


def _clean(element: Any) -> Iterator[Markup]:
    qname = etree.QName(element)
    if qname.namespace not in (None, _XHTML) or qname.localname.lower() in _DROPPED:
        return
    tag = _RENAMED.get(qname.localname, qname.localname)
    if tag not in _ALLOWED and tag not in _RENAMED.values():
        yield from _clean_children(element)  # unknown wrapper: keep its text, not the tag
        return
    allowed = _ALLOWED.get(tag, frozenset())
    attributes = Markup("").join(
        Markup(' {}="{}"').format(name, value)
        for name, value in sorted(element.attrib.items())
        if name in allowed and _ATTRIBUTE_VALUES[name](value.strip())
    )
    if tag == "a" and attributes:
        attributes += Markup(' rel="noopener noreferrer"')
    yield Markup("<{}{}>").format(tag, attributes)
    if tag in _VOID:
        return
    yield from _clean_children(element)
    yield Markup("</{}>").format(tag)
