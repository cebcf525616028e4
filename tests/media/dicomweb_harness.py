"""A real STS and a real media archive on 127.0.0.1, and a DICOMweb client with DPoP tokens.

The STS logs users in from the synthetic population as for the document source
(tests/source/trust_harness.py: the same `Network` token factories); the archive trusts it
(issuer + JWKS over HTTP). `client(token)` is `dicomweb-client`'s `DICOMwebClient` over a
`requests` session that signs a fresh DPoP proof for every request it sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from dicomweb_client import DICOMwebClient

from onerecord.audit import AuditAction, AuditRecord, MemoryAuditSink
from onerecord.media.app import create_app
from onerecord.media.security import MEDIA_STORE_SCOPE
from onerecord.media.settings import MediaSettings
from onerecord.sts import ClientConfig, StsSettings, create_sts_app
from onerecord.sts.registers import PopulationRegisters
from onerecord.synth.dicom import DicomPatient
from onerecord.synth.population import generate_population
from onerecord.trust.keys import SigningKey, StaticJwks
from tests.source.trust_harness import HCID, HPL_SCOPE, HUB_ISSUER, Clock, Network, Token, today
from tests.support.servers import free_port, serve_in_thread

OTHER_AUDIENCE = "urn:oid:2.16.578.1.12.4.5.100.3"
STORE_SCOPE = f"{HPL_SCOPE} {MEDIA_STORE_SCOPE}"


class DPoPAuth(requests.auth.AuthBase):
    """Sign every request of a session with the token's DPoP key (RFC 9449)."""

    def __init__(self, token: Token) -> None:
        self.token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        assert r.method is not None and r.url is not None
        r.headers.update(self.token.headers(r.method, r.url))
        return r


@dataclass
class MediaNet:
    """The running STS and archive, the population, and the archive's audit."""

    net: Network
    media_url: str
    audit: MemoryAuditSink

    @property
    def dicomweb(self) -> str:
        return f"{self.media_url}/dicomweb"

    def client(self, token: Token) -> DICOMwebClient:
        session = requests.Session()
        session.auth = DPoPAuth(token)
        return DICOMwebClient(self.dicomweb, session=session, timeout=60)

    def patient(self, key: str) -> DicomPatient:
        person = self.net.population.cast[key]
        return DicomPatient(person.nin, "Testesen", key.capitalize(), person.nin.birth_date, "O")

    def records_since(self, mark: int) -> list[AuditRecord]:
        """The records of requests since `mark`: not the manifest worker's ITI-65 exports,
        which it appends in the background whenever a study becomes due."""
        return [r for r in self.audit.records[mark:] if r.action is not AuditAction.EXPORT]

    def get(self, token: Token | None, path: str, **headers: str) -> requests.Response:
        url = f"{self.dicomweb}/{path}"
        sent = token.headers("GET", url) if token is not None else {}
        sent.update(headers)
        return requests.get(url, headers=sent, timeout=30)

    def post(
        self, token: Token | None, path: str, body: bytes, content_type: str
    ) -> requests.Response:
        url = f"{self.dicomweb}/{path}"
        sent = token.headers("POST", url) if token is not None else {}
        sent["Content-Type"] = content_type
        return requests.post(url, data=body, headers=sent, timeout=60)


@contextmanager
def start_media(workdir: Path, **overrides: Any) -> Iterator[MediaNet]:
    """Start the STS and one region's media archive (SQLite and a folder in `workdir`)."""
    population = generate_population(seed=11, citizens=0, reference_date=today())
    sts_key = SigningKey.generate(kid="sts-test-key")
    hub_key = SigningKey.generate(kid="hub-test-key")
    client_key = SigningKey.generate(kid="ehr-key")
    clock = Clock()
    sts_port, media_port = free_port(), free_port()
    sts_url = f"http://127.0.0.1:{sts_port}"
    sts_settings = StsSettings(
        issuer=sts_url,
        dev_mode=True,
        key_dir=workdir / "sts-keys",
        clients={
            "ehr": ClientConfig(jwk=client_key.public_jwk(), redirect_uris=("http://127.0.0.1/cb",))
        },
        allowed_audiences=(HCID, OTHER_AUDIENCE, "nhn:phr"),
        token_lifetime=7200,
    )
    sts_app = create_sts_app(
        sts_settings, registers=PopulationRegisters(population), key=sts_key, clock=clock
    )
    settings = MediaSettings(
        region="Helse Sør-Øst",
        home_community_id=HCID,
        db_url=f"sqlite:///{workdir / 'media.db'}",
        content_dir=workdir / "content",
        dimse_port=0,
        public_base_url=f"http://127.0.0.1:{media_port}",
        issuer=sts_url,
        jwks_url=f"{sts_url}/jwks",
        hub_issuer=HUB_ISSUER,
        **{"without_patient_controls": True, **overrides},
    )
    audit = MemoryAuditSink()
    media_app = create_app(settings, audit=audit, hub_keys=StaticJwks([hub_key]))
    with ExitStack() as stack:
        stack.enter_context(serve_in_thread(sts_app, port=sts_port))
        media_url = stack.enter_context(serve_in_thread(media_app, port=media_port))
        net = Network(
            sts_url=sts_url,
            source_url=media_url,
            population=population,
            sts_key=sts_key,
            hub_key=hub_key,
            client_key=client_key,
            publisher_key=client_key,
            archive_key=client_key,
            clock=clock,
            settings=None,  # type: ignore[arg-type]
            db_path=workdir / "media.db",
        )
        yield MediaNet(net, media_url, audit)
