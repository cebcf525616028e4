"""An STS with a generated synthetic population and the portal registered as a client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from onerecord.sts import ClientConfig, StsSettings, create_sts_app
from onerecord.sts.registers import PopulationRegisters
from onerecord.synth.population import generate_population
from onerecord.trust.keys import SigningKey
from tests.sts.portal_flow import CITIZEN_REDIRECT, HCP_REDIRECT, PORTAL_ID, PortalSts
from tests.support.servers import free_port, serve_in_thread

OTHER_CLIENT = "other-client"


@pytest.fixture(scope="session")
def other_client_key() -> SigningKey:
    return SigningKey.generate(kid="other-client-key")


@pytest.fixture(scope="session")
def portal_sts(other_client_key: SigningKey) -> Iterator[PortalSts]:
    population = generate_population(seed=11, citizens=80, reference_date=datetime.now(UTC).date())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client_key = SigningKey.generate(kid="portal-client-key")
    settings = StsSettings(
        issuer=base,
        dev_mode=True,
        allowed_audiences=("nhn:phr", "onerecord:hub"),
        default_audience="onerecord:hub",
        clients={
            PORTAL_ID: ClientConfig(
                jwk=client_key.public_jwk(),
                redirect_uris=(HCP_REDIRECT, CITIZEN_REDIRECT),
                name="onerecord portals",
            ),
            OTHER_CLIENT: ClientConfig(jwk=other_client_key.public_jwk()),
        },
    )
    app = create_sts_app(
        settings,
        registers=PopulationRegisters(population),
        key=SigningKey.generate(kid="dev-sts-portal-test"),
    )
    with serve_in_thread(app, port):
        yield PortalSts(base, client_key, population)
