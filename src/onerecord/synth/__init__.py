"""Synthetic patients, health personnel and documents for the demo network and the tests.

Every identity number is synthetic (month + 80); `ensure_synthetic` guards each entry point.
"""

from __future__ import annotations

from onerecord.synth.dataset import DatasetSummary, load_population, write_dataset
from onerecord.synth.documents import (
    DocumentKind,
    SyntheticDocument,
    fast_entries,
    generate_documents,
    patient_regions,
)
from onerecord.synth.importer import (
    ImportSummary,
    Rejection,
    RetryNotice,
    TargetUnavailable,
    import_dataset,
)
from onerecord.synth.numbers import (
    RealFormNumber,
    ensure_synthetic,
    synthetic_dnr,
    synthetic_fnr,
    synthetic_hpr,
    synthetic_orgnr,
    synthetic_resh,
)
from onerecord.synth.population import (
    Address,
    AddressProtection,
    Citizen,
    Department,
    InvalidProxy,
    Organisation,
    ParentalResponsibility,
    Population,
    Practitioner,
    Proxy,
    generate_population,
)
from onerecord.synth.regions import DEFAULT_REGIONS, RegionInfo, region

__all__ = [
    "DEFAULT_REGIONS",
    "Address",
    "AddressProtection",
    "Citizen",
    "DatasetSummary",
    "Department",
    "DocumentKind",
    "ImportSummary",
    "InvalidProxy",
    "Organisation",
    "ParentalResponsibility",
    "Population",
    "Practitioner",
    "Proxy",
    "RealFormNumber",
    "RegionInfo",
    "Rejection",
    "RetryNotice",
    "SyntheticDocument",
    "TargetUnavailable",
    "ensure_synthetic",
    "fast_entries",
    "generate_documents",
    "generate_population",
    "import_dataset",
    "load_population",
    "patient_regions",
    "region",
    "synthetic_dnr",
    "synthetic_fnr",
    "synthetic_hpr",
    "synthetic_orgnr",
    "synthetic_resh",
    "write_dataset",
]
