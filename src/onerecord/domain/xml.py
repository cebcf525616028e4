"""One hardened XML parser for every reader of outside XML (documents, and later XCA/SAML).

libxml2 may fetch URLs, load DTDs and expand entities (billion laughs, external entities) unless
told otherwise; every parser of outside XML in onerecord is made here, so that none forgets.
Callers still refuse a DOCTYPE or an entity declaration before parsing where their format has no
use for one. References: OWASP XML External Entity Prevention Cheat Sheet (lxml).
"""

from __future__ import annotations

from typing import Any

from lxml import etree  # type: ignore[import-untyped]

__all__ = ["hardened_xml_parser"]


def hardened_xml_parser(*, remove_comments: bool = False) -> Any:
    """Return a parser that reads no network, no DTD, expands no entity and refuses huge trees."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
        remove_comments=remove_comments,
    )
