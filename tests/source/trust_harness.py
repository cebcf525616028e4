"""A real STS and a real document source on 127.0.0.1, wired by the trust framework.

The STS logs users in from the synthetic population (`synth.population`, via
`sts.registers.PopulationRegisters`); its clock can be moved back to mint old attestations
(A19/A20). The source trusts the STS (issuer + JWKS over HTTP) and a test hub key.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from onerecord.domain import DocumentEntry
from onerecord.mhd import build_provide_bundle
from onerecord.source.app import create_app
from onerecord.source.settings import SourceSettings
from onerecord.sts import ClientConfig, StsSettings, create_sts_app
from onerecord.sts.registers import PopulationRegisters
from onerecord.synth.population import Population, Practitioner, generate_population
from onerecord.trust.access_token import validate_access_token
from onerecord.trust.assertion import mint_hub_assertion
from onerecord.trust.dpop import make_proof
from onerecord.trust.keys import SigningKey, StaticJwks
from onerecord.trust.patient_binding import encode_salt, make_digest, new_salt
from onerecord.trust.publish_proof import PUBLISH_PROOF_HEADER, make_publish_proof, publisher_jwk
from tests.sts.fakes import client_assertion
from tests.support.servers import free_port, serve_in_thread

HCID = "urn:oid:2.16.578.1.12.4.5.100.1"
PUBLISHER_ISSUER = "urn:oid:2.16.578.1.12.4.5.100.1.9"
"""The EHR that publishes documents (its key may publish, not read controls)."""
ARCHIVE_ISSUER = "urn:oid:2.16.578.1.12.4.5.100.1.77"
"""The region's archive (its key may read the patient's controls)."""
REPOSITORY = "2.16.578.1.12.4.5.100.1.2"
HUB_ISSUER = "https://hub.onerecord.test"
GRANT = "urn:onerecord:params:oauth:grant-type:test-user"
HPL_SCOPE = "nhn:phr/mhd/read-documentreferences"
KJ_SCOPE = "nhn:phr/mhd/read-documentreferences/kjernejournalforskriften"
FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
FHIR = "application/fhir+json"


@dataclass
class Clock:
    """A clock that can be moved back (seconds) for the STS."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Token:
    """An access token, the DPoP key it is bound to, and the patient binding salt."""

    value: str
    key: SigningKey
    patient: str | None = None
    salt: bytes | None = None

    def headers(self, method: str, url: str, **extra: str) -> dict[str, str]:
        """Authorization + DPoP proof + patient headers for one request."""
        htu = url.split("?", 1)[0]
        out = {
            "Authorization": f"DPoP {self.value}",
            "DPoP": make_proof(self.key, htm=method, htu=htu, access_token=self.value),
            "nhn-source-system": "onerecord-tests",
        }
        if self.patient is not None:
            out["nhn-patient-nin"] = self.patient
        if self.salt is not None:
            out["onerecord-patient-salt"] = encode_salt(self.salt)
        out.update(extra)
        return out


@dataclass
class Network:
    """The running STS and source, the population and the STS signing key."""

    sts_url: str
    source_url: str
    population: Population
    sts_key: SigningKey
    hub_key: SigningKey
    client_key: SigningKey
    publisher_key: SigningKey
    archive_key: SigningKey
    clock: Clock
    settings: SourceSettings
    db_path: Path
    docs: dict[str, list[DocumentEntry]] = field(default_factory=dict)

    @property
    def fhir(self) -> str:
        return f"{self.source_url}/fhir"

    def citizen(self, key: str) -> str:
        return self.population.cast[key].nin.value

    def staff(self, key: str) -> Practitioner:
        return self.population.staff[key]

    # -- tokens ------------------------------------------------------------------------------

    def _token(self, form: dict[str, str]) -> httpx.Response:
        dpop_key = SigningKey.generate()
        url = f"{self.sts_url}/token"
        now = self.clock()  # the STS's time, which tests may move back
        body = {
            "grant_type": GRANT,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion(
                self.client_key,
                "ehr",
                self.sts_url,
                extra={"iat": int(now), "nbf": int(now), "exp": int(now) + 30},
            ),
            **form,
        }
        headers = {"DPoP": make_proof(dpop_key, htm="POST", htu=url, iat=int(now))}
        r = httpx.post(url, data=body, headers=headers, timeout=10)
        r.extensions["dpop_key"] = dpop_key
        return r

    def attestation(self, who: Practitioner, **care: Any) -> dict[str, Any]:
        org = self.population.organisation(who.organisation)
        practitioner: dict[str, Any] = {
            "legal_entity": {
                "id": org.legal_entity.value,
                "system": "urn:oid:2.16.578.1.12.4.1.4.101",
            },
            "point_of_care": {"id": org.orgnr.value, "system": "urn:oid:2.16.578.1.12.4.1.4.101"},
        }
        if who.categories:
            practitioner["authorization"] = {
                "code": who.categories[0],
                "system": "urn:oid:2.16.578.1.12.4.1.1.9060",
            }
        if who.department is not None:
            practitioner["department"] = {
                "id": who.department.value,
                "system": "urn:oid:2.16.578.1.12.4.1.4.102",
            }
        return {
            "type": "nhn:tillitsrammeverk:parameters",
            "practitioner": practitioner,
            "care_relationship": {
                "healthcare_service": {"code": "01", "system": "urn:oid:2.16.578.1.12.4.1.1.8666"},
                "purpose_of_use": {
                    "code": care.get("purpose", "TREAT"),
                    "system": "urn:oid:2.16.840.1.113883.1.11.20448",
                },
                "purpose_of_use_details": {
                    "code": "BEHANDLER",
                    "system": "urn:AuditEventHL7Norway/CodeSystem/carerelation",
                },
                "decision_ref": {
                    "id": care.get("decision", "beslutning-42"),
                    "user_selected": True,
                },
            },
            "patients": care.get("patients", []),
        }

    def hcp_token(
        self,
        patient: str | None,
        *,
        staff: str = "doctor",
        purpose: str = "TREAT",
        scope: str = HPL_SCOPE,
        audience: str = HCID,
        bind: bool = True,
        emergency: dict[str, Any] | None = None,
    ) -> Token:
        """Log a health worker in with an attestation bound to `patient` (salted digest).

        `emergency`: the attestation's `emergency_access` grant (trust.emergency), with BTG.
        """
        who = self.staff(staff)
        salt = new_salt()
        patients = [{"identifier_digest": make_digest(patient, salt)}] if patient and bind else []
        details = self.attestation(who, purpose=purpose, patients=patients)
        if emergency is not None:
            details["emergency_access"] = emergency
        r = self._token(
            {
                "subject": who.nin.value,
                "authorization_details": json.dumps(details),
                "scope": scope,
                "resource": audience,
            }
        )
        assert r.status_code == 200, r.text
        return Token(r.json()["access_token"], r.extensions["dpop_key"], patient, salt)

    def citizen_token(self, who: str, *, patient: str | None = None, audience: str = HCID) -> Token:
        """Log a citizen in (level 4); `patient` defaults to themselves."""
        nin = self.citizen(who) if who in self.population.cast else who
        r = self._token({"subject": nin, "resource": audience, "scope": "openid"})
        assert r.status_code == 200, r.text
        return Token(r.json()["access_token"], r.extensions["dpop_key"], patient or nin)

    def signed_token(self, claims: dict[str, Any], *, typ: str = "at+jwt") -> Token:
        """Sign arbitrary claims with the STS key (the STS would not issue them)."""
        key = SigningKey.generate()
        now = int(time.time())
        body = {
            "iss": self.sts_url,
            "aud": HCID,
            "sub": "x",
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(12),
            "cnf": {"jkt": key.thumbprint()},
            **claims,
        }
        return Token(self.sts_key.sign(body, typ=typ), key)

    # -- requests ----------------------------------------------------------------------------

    def search(self, token: Token, patient: str, **params: str) -> httpx.Response:
        url = f"{self.fhir}/DocumentReference"
        headers = token.headers("GET", url)
        extra = params.pop("headers", None)
        if isinstance(extra, dict):
            headers.update(extra)
        query = {"patient.identifier": f"{FNR}|{patient}", **params}
        return httpx.get(url, params=query, headers=headers, timeout=30)

    def get(self, token: Token, url: str, **headers: str) -> httpx.Response:
        return httpx.get(url, headers=token.headers("GET", url, **headers), timeout=30)

    def send(self, token: Token, method: str, path: str, **params: str) -> httpx.Response:
        url = f"{self.source_url}{path}"
        return httpx.request(
            method, url, params=params or None, headers=token.headers(method, url), timeout=30
        )

    def retrieve_url(self, entry: DocumentEntry) -> str:
        from onerecord.domain import HomeCommunityId, RepositoryUniqueId
        from onerecord.mhd import RetrieveKey

        key = RetrieveKey(
            HomeCommunityId.parse(HCID), RepositoryUniqueId.parse(REPOSITORY), entry.unique_id
        )
        return f"{self.fhir}/Binary/{key.token()}"

    def publish(self, entries: list[tuple[DocumentEntry, bytes]]) -> None:
        bundle = build_provide_bundle(
            entries,
            source_id="urn:oid:2.16.578.1.12.4.5.100.1.9",
            submission_set_unique_id=f"2.16.578.1.12.4.5.100.1.8.{secrets.randbelow(10**9)}",
        )
        body = orjson.dumps(bundle)
        proof = make_publish_proof(
            self.publisher_key,
            issuer=PUBLISHER_ISSUER,
            audience=HCID,
            htu=self.fhir,
            body=body,
            now=time.time(),
        )
        r = httpx.post(
            self.fhir,
            content=body,
            headers={"content-type": FHIR, PUBLISH_PROOF_HEADER: proof},
            timeout=60,
        )
        assert r.status_code == 200, r.text


def hub_headers(net: Network, token: Token, correlation_id: str) -> dict[str, str]:
    """What the hub sends to the archive for a caller whose token it validated (docs/hub.md)."""
    claims = asyncio.run(
        validate_access_token(
            token.value,
            keys=StaticJwks([net.sts_key]),
            issuer=net.sts_url,
            audience=HCID,
            now=time.time(),
        )
    )
    assert token.salt is not None and token.patient is not None
    salt = encode_salt(token.salt)
    assertion = mint_hub_assertion(
        key=net.hub_key,
        issuer=HUB_ISSUER,
        audience=HCID,
        claims=claims,
        patient_nin=token.patient,
        patient_salt=salt,
        correlation_id=correlation_id,
        now=time.time(),
    )
    return {
        "onerecord-hub-assertion": assertion,
        "nhn-patient-nin": token.patient,
        "onerecord-patient-salt": salt,
    }


def today() -> date:
    return datetime.now(UTC).date()


@contextmanager
def start_network(
    workdir: Path,
    *,
    db_url: str | None = None,
    schema: str | None = None,
    source_overrides: dict[str, Any] | None = None,
    extra_publishers: tuple[tuple[SigningKey, str], ...] = (),
) -> Iterator[Network]:
    """Start the STS and the source (SQLite in `workdir` unless `db_url` is given).

    The source trusts the EHR's publisher key (PUBLISHER_ISSUER, publishing only) and the
    region's archive key (ARCHIVE_ISSUER, an archive: it may read controls).
    `extra_publishers`: more archives as (key, issuer) whose proofs the source accepts.
    """
    population = generate_population(seed=11, citizens=0, reference_date=today())
    sts_key = SigningKey.generate(kid="sts-test-key")
    hub_key = SigningKey.generate(kid="hub-test-key")
    client_key = SigningKey.generate(kid="ehr-key")
    publisher_key = SigningKey.generate(kid="ehr-publisher-key")
    archive_key = SigningKey.generate(kid="region-archive-key")
    publishers = workdir / "publishers.json"
    keys = [
        publisher_jwk(publisher_key, issuer=PUBLISHER_ISSUER),
        publisher_jwk(archive_key, issuer=ARCHIVE_ISSUER, archive=True),
        *(publisher_jwk(k, issuer=iss, archive=True) for k, iss in extra_publishers),
    ]
    publishers.write_text(json.dumps({"keys": keys}))
    clock = Clock()
    sts_port, source_port = free_port(), free_port()
    sts_url = f"http://127.0.0.1:{sts_port}"
    sts_settings = StsSettings(
        issuer=sts_url,
        dev_mode=True,
        key_dir=workdir / "sts-keys",
        clients={
            "ehr": ClientConfig(jwk=client_key.public_jwk(), redirect_uris=("http://127.0.0.1/cb",))
        },
        allowed_audiences=(HCID, "nhn:phr"),
        token_lifetime=7200,
    )
    sts_app = create_sts_app(
        sts_settings, registers=PopulationRegisters(population), key=sts_key, clock=clock
    )
    db_path = workdir / "registry.db"
    values: dict[str, Any] = {
        "region": "Helse Sør-Øst",
        "home_community_id": HCID,
        "repository_unique_id": REPOSITORY,
        "db_url": db_url or f"sqlite:///{db_path}",
        "db_schema": schema,
        "content_dir": workdir / "content",
        "public_base_url": f"http://127.0.0.1:{source_port}",
        "issuer": sts_url,
        "jwks_url": f"{sts_url}/jwks",
        "hub_issuer": HUB_ISSUER,
        "hub_jwks_url": "http://127.0.0.1:9/unused-jwks",
        "publisher_jwks_file": publishers,
    }
    settings = SourceSettings(**{**values, **(source_overrides or {})})
    source_app = create_app(settings, hub_keys=StaticJwks([hub_key]))
    with ExitStack() as stack:
        stack.enter_context(serve_in_thread(sts_app, port=sts_port))
        source_url = stack.enter_context(serve_in_thread(source_app, port=source_port))
        yield Network(
            sts_url=sts_url,
            source_url=source_url,
            population=population,
            sts_key=sts_key,
            hub_key=hub_key,
            client_key=client_key,
            publisher_key=publisher_key,
            archive_key=archive_key,
            clock=clock,
            settings=settings,
            db_path=db_path,
        )
