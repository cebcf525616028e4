"""A real STS and source on 127.0.0.1 that also trusts the development SAML issuer (XCA tests).

Documents of the synthetic cast: an adult with a normal, a confidential (V) and a blocked
(NORS) document, and a document of another patient.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from zeep import Client, Plugin, Settings
from zeep.plugins import HistoryPlugin
from zeep.transports import Transport

from onerecord.audit import AuditRecord
from onerecord.domain import Coding, DocumentEntry
from tests.factories import make_entry, sample_pdf
from tests.source.trust_harness import Network, start_network
from tests.source.xca_support import (
    QUERY_BINDING,
    RETRIEVE_BINDING,
    WSDL_DIR,
    DevIssuer,
    hcp_attributes,
    make_assertion,
    make_dev_issuer,
    source_overrides,
)

V = "urn:oid:2.16.578.1.12.4.1.1."
HL7 = "urn:oid:2.16.840.1.113883.5.25"


def label(code: str) -> Coding:
    return Coding(HL7 if code in ("N", "R", "V") else V + "9603", code)


@dataclass(repr=False)
class XcaNetwork:
    """The running network, the development issuer and the documents by name."""

    net: Network
    issuer: DevIssuer
    docs: dict[str, DocumentEntry] = field(default_factory=dict)
    content: dict[str, bytes] = field(default_factory=dict)

    def hcp_assertion(self, patient: str, *, staff: str = "doctor", **kw: Any) -> Any:
        who = self.net.staff(staff)
        attributes = hcp_attributes(self.net.population, who, patient, **kw)
        return make_assertion(self.issuer, who.nin.value, attributes)

    def audit_rows(self) -> list[AuditRecord]:
        with sqlite3.connect(self.net.db_path) as conn:
            rows = conn.execute("SELECT event FROM audit_event ORDER BY seq").fetchall()
        return [AuditRecord.from_dict(orjson.loads(r[0])) for r in rows]

    def registry_count(self) -> int:
        with sqlite3.connect(self.net.db_path) as conn:
            return int(conn.execute("SELECT count(*) FROM document_entry").fetchone()[0])

    def client(self, operation: str, *plugins: Plugin, path: str | None = None) -> Any:
        """A zeep service proxy for ITI-38 ("iti38") or ITI-39 ("iti39") at this source."""
        wsdl = {
            "iti38": "XCA_RespondingGateway_Query.wsdl",
            "iti39": "XCA_RespondingGateway_Retrieve.wsdl",
        }[operation]
        client = Client(
            str(WSDL_DIR / wsdl),
            transport=Transport(timeout=30, operation_timeout=30),
            settings=Settings(strict=True),
            plugins=list(plugins),
        )
        binding = QUERY_BINDING if operation == "iti38" else RETRIEVE_BINDING
        address = f"{self.net.source_url}{path or f'/xca/{operation}'}"
        return client.create_service(binding, address)


def _entry(
    patient: str, name: str, labels: tuple[str, ...], age_days: int
) -> tuple[DocumentEntry, bytes]:
    when = datetime.now(UTC) - timedelta(days=age_days)
    content = sample_pdf(f"xca {name} {patient}")
    made = make_entry(
        patient_id=patient,
        content=content,
        confidentiality_codes=tuple(label(c) for c in labels),
        creation_time=when,
        service_start_time=when,
        service_stop_time=when,
    )
    return made, content


@contextmanager
def start_xca_network(workdir: Path, **settings: Any) -> Iterator[XcaNetwork]:
    """Start the network; `settings` are further source settings (limits, …)."""
    issuer = make_dev_issuer(workdir)
    overrides = source_overrides(issuer) | settings
    with start_network(workdir, source_overrides=overrides) as net:
        xca = XcaNetwork(net, issuer)
        adult, other = net.citizen("adult"), net.citizen("parent")
        plan = {
            "adult_n": (adult, ("N",), 10),
            "adult_v": (adult, ("V",), 20),
            "adult_nors": (adult, ("N", "NORS"), 30),
            "other_n": (other, ("N",), 10),
        }
        for name, (patient, labels, age) in plan.items():
            xca.docs[name], xca.content[name] = _entry(patient, name, labels, age)
        for patient in (adult, other):
            net.publish(
                [
                    (made, xca.content[name])
                    for name, made in xca.docs.items()
                    if made.patient_id.value == patient
                ]
            )
        # A replaced document and its replacement (an RPLC association, superseded + current).
        old, old_content = _entry(adult, "adult_old", ("N",), 400)
        net.publish([(old, old_content)])
        new, new_content = _entry(adult, "adult_new", ("N",), 5)
        new = replace(new, replaces=old.unique_id)
        net.publish([(new, new_content)])
        xca.docs["adult_old"], xca.content["adult_old"] = old, old_content
        xca.docs["adult_new"], xca.content["adult_new"] = new, new_content
        yield xca


__all__ = ["HistoryPlugin", "XcaNetwork", "start_xca_network"]
