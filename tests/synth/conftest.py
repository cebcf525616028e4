"""Fixtures for the synthetic data tests: one population shared by the module."""

from __future__ import annotations

from datetime import date

import pytest

from onerecord.synth.population import Population, generate_population

REFERENCE_DATE = date(2025, 6, 1)
SEED = 7


@pytest.fixture(scope="session")
def population() -> Population:
    return generate_population(seed=SEED, citizens=60, reference_date=REFERENCE_DATE)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
