"""Write and read a synthetic dataset directory.

Layout::

    <out>/dataset.json                 what was generated (seed, counts per region)
    <out>/population.json              the whole register, reloadable with load_population()
    <out>/<slug>/bundles/00001.json    ITI-65 transaction Bundles, one patient each
    <out>/<slug>/index.json            each bundle's file, patient and document count

A Bundle holds the documents of one patient only (an ITI-65 SubmissionSet has one subject) and
never a replacement together with the document it replaces; a patient's bundles are consecutive
and must be posted in order (a replacement needs its original registered first).
The same arguments give byte-identical files.

References: IHE ITI TF-2 3.65.4.1.2 (Provide Document Bundle message), IHE MHD Vol 3 4.5.4.1.3
(SubmissionSet.subject shared by its DocumentReferences).
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import orjson

from onerecord.domain import (
    Coding,
    HprNumber,
    NationalIdentityNumber,
    OrganisationNumber,
    ReshId,
    code_tables,
)
from onerecord.synth.documents import SyntheticDocument, generate_documents
from onerecord.synth.numbers import ensure_synthetic
from onerecord.synth.population import (
    FACILITY_TYPE_SYSTEM,
    PRACTICE_SETTING_SYSTEM,
    Address,
    AddressProtection,
    Citizen,
    Department,
    Organisation,
    ParentalResponsibility,
    Population,
    Practitioner,
    Proxy,
    generate_population,
)
from onerecord.synth.regions import DEFAULT_REGIONS, RegionInfo

__all__ = [
    "DATASET_FORMAT",
    "POPULATION_FORMAT",
    "DatasetSummary",
    "batch_documents",
    "BundleRef",
    "bundle_files",
    "bundle_plan",
    "load_population",
    "population_from_json",
    "population_to_json",
    "write_dataset",
]

POPULATION_FORMAT = "onerecord-synth-population/1"
DATASET_FORMAT = "onerecord-synth-dataset/1"
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """What write_dataset wrote."""

    out: Path
    citizens: int
    documents: dict[str, int] = field(default_factory=dict)
    bundles: dict[str, int] = field(default_factory=dict)

    @property
    def total_documents(self) -> int:
        return sum(self.documents.values())

    def __str__(self) -> str:
        per_region = ", ".join(f"{s}: {n}" for s, n in self.documents.items())
        return (
            f"{self.citizens} citizens, {self.total_documents} documents "
            f"({per_region}) in {sum(self.bundles.values())} bundles at {self.out}"
        )


# population.json ----------------------------------------------------------------------------


def population_to_json(population: Population) -> dict[str, Any]:
    """Return the register as a JSON-ready dict."""
    return {
        "format": POPULATION_FORMAT,
        "reference_date": population.reference_date.isoformat(),
        "addresses": [
            {
                "id": a.id,
                "street": a.street,
                "postal_code": a.postal_code,
                "city": a.city,
                "region": a.region_slug,
            }
            for a in population.addresses
        ],
        "citizens": [
            {
                "nin": c.nin.value,
                "given": c.given,
                "family": c.family,
                "address": c.address_id,
                "protection": c.protection.value,
                "deceased": c.deceased,
            }
            for c in population.citizens
        ],
        "parental": [
            {"parent": p.parent.value, "child": p.child.value} for p in population.parental
        ],
        "proxies": [
            {
                "giver": p.giver.value,
                "holder": p.holder.value,
                "valid_from": p.valid_from.isoformat(),
                "valid_to": p.valid_to.isoformat(),
            }
            for p in population.proxies
        ],
        "organisations": [
            {
                "orgnr": o.orgnr.value,
                "name": o.name,
                "region": o.region_slug,
                "legal_entity": o.legal_entity.value,
                "helsenett_member": o.helsenett_member,
                "facility_type": o.facility_type.code,
                "practice_settings": [c.code for c in o.practice_settings],
                "departments": [
                    {"resh": d.resh.value, "name": d.name, "practice_setting": d.practice_setting}
                    for d in o.departments
                ],
            }
            for o in population.organisations
        ],
        "practitioners": [
            {
                "nin": p.nin.value,
                "given": p.given,
                "family": p.family,
                "hpr": p.hpr.value if p.hpr else None,
                "categories": list(p.categories),
                "organisation": p.organisation.value,
                "department": p.department.value if p.department else None,
            }
            for p in population.practitioners
        ],
        "cast": {key: c.nin.value for key, c in population.cast.items()},
        "staff": {key: p.nin.value for key, p in population.staff.items()},
    }


def _nin(value: Any) -> NationalIdentityNumber:
    # Every identity number read from disk passes the synthetic guard.
    return ensure_synthetic(str(value))


def population_from_json(raw: dict[str, Any]) -> Population:
    """Rebuild a Population from population_to_json output (refusing real-form numbers)."""
    if raw.get("format") != POPULATION_FORMAT:
        raise ValueError(f"not a synthetic population file (format {raw.get('format')!r})")
    tables = code_tables()
    citizens = tuple(
        Citizen(
            nin=_nin(c["nin"]),
            given=c["given"],
            family=c["family"],
            address_id=c["address"],
            protection=AddressProtection(c["protection"]),
            deceased=bool(c["deceased"]),
        )
        for c in raw["citizens"]
    )
    practitioners = tuple(
        Practitioner(
            nin=_nin(p["nin"]),
            given=p["given"],
            family=p["family"],
            hpr=HprNumber(p["hpr"]) if p["hpr"] else None,
            categories=tuple(p["categories"]),
            organisation=OrganisationNumber(p["organisation"]),
            department=ReshId(p["department"]) if p["department"] else None,
        )
        for p in raw["practitioners"]
    )
    by_nin = {c.nin.value: c for c in citizens}
    staff_by_nin = {p.nin.value: p for p in practitioners}
    return Population(
        citizens=citizens,
        addresses=tuple(
            Address(a["id"], a["street"], a["postal_code"], a["city"], a["region"])
            for a in raw["addresses"]
        ),
        parental=tuple(
            ParentalResponsibility(_nin(p["parent"]), _nin(p["child"])) for p in raw["parental"]
        ),
        proxies=tuple(
            Proxy(
                _nin(p["giver"]),
                _nin(p["holder"]),
                date.fromisoformat(p["valid_from"]),
                date.fromisoformat(p["valid_to"]),
            )
            for p in raw["proxies"]
        ),
        organisations=tuple(
            Organisation(
                orgnr=OrganisationNumber(o["orgnr"]),
                name=o["name"],
                region_slug=o["region"],
                legal_entity=OrganisationNumber(o["legal_entity"]),
                departments=tuple(
                    Department(ReshId(d["resh"]), d["name"], d["practice_setting"])
                    for d in o["departments"]
                ),
                helsenett_member=bool(o["helsenett_member"]),
                facility_type=tables.require(
                    "healthcareFacilityTypeCode", Coding(FACILITY_TYPE_SYSTEM, o["facility_type"])
                ),
                practice_settings=tuple(
                    tables.require("practiceSettingCode", Coding(PRACTICE_SETTING_SYSTEM, s))
                    for s in o["practice_settings"]
                ),
            )
            for o in raw["organisations"]
        ),
        practitioners=practitioners,
        reference_date=date.fromisoformat(raw["reference_date"]),
        cast={key: by_nin[nin] for key, nin in raw["cast"].items()},
        staff={key: staff_by_nin[nin] for key, nin in raw["staff"].items()},
    )


def load_population(path: Path) -> Population:
    """Read population.json (or the dataset directory holding it)."""
    if path.is_dir():
        path = path / "population.json"
    return population_from_json(orjson.loads(path.read_bytes()))


# bundles ------------------------------------------------------------------------------------


def batch_documents(
    documents: Iterable[SyntheticDocument], batch_size: int
) -> Iterator[list[SyntheticDocument]]:
    """Group documents into ITI-65 batches: one patient each, at most `batch_size` documents,
    a replacement never in the same batch as the document it replaces."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    batch: list[SyntheticDocument] = []
    ids: set[str] = set()
    for doc in documents:
        replaces = doc.entry.replaces.value if doc.entry.replaces else None
        if batch and (
            len(batch) >= batch_size
            or doc.entry.patient_id != batch[0].entry.patient_id
            or replaces in ids
        ):
            yield batch
            batch, ids = [], set()
        batch.append(doc)
        ids.add(doc.entry.unique_id.value)
    if batch:
        yield batch


def _stabilise(bundle: dict[str, Any], rng: random.Random, keep: set[str], date_: str) -> Any:
    """Replace the random urn:uuids and the wall-clock date in a built Bundle, so files repeat.

    Document entry UUIDs (`keep`) stay; every other UUID is mapped consistently to one drawn
    from `rng`, so references between entries still resolve.
    """
    mapping: dict[str, str] = {}

    def swap(match: re.Match[str]) -> str:
        found = match.group(0)
        if found in keep:
            return found
        if found not in mapping:
            mapping[found] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        return mapping[found]

    def walk(node: Any, key: str | None) -> Any:
        if isinstance(node, dict):
            if node.get("resourceType") == "List" and "date" in node:
                node = {**node, "date": date_}
            return {k: walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, key) for v in node]
        if isinstance(node, str) and key != "data":
            return _UUID_RE.sub(swap, node)
        return node

    return walk(bundle, None)


def _dataset_key(seed: int, citizens: int, reference_date: date) -> int:
    return random.Random(f"{seed}:{citizens}:{reference_date.isoformat()}").getrandbits(31) + 1


def _write_region(
    out: Path,
    info: RegionInfo,
    population: Population,
    *,
    seed: int,
    batch_size: int,
    key: int,
    per_patient: tuple[int, int],
) -> tuple[int, int]:
    from onerecord.mhd import build_provide_bundle

    folder = out / info.slug / "bundles"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.json"):
        old.unlink()
    rng = random.Random(f"{seed}:bundles:{info.slug}")
    submitted = datetime.combine(population.reference_date, time(6, 0)).isoformat() + "Z"
    documents = bundles = 0
    index: list[dict[str, Any]] = []
    docs = generate_documents(population, info, seed=seed, per_patient=per_patient)
    for batch in batch_documents(docs, batch_size):
        bundles += 1
        documents += len(batch)
        index.append(
            {
                "file": f"{bundles:05d}.json",
                "patient": batch[0].entry.patient_id.value,
                "documents": len(batch),
            }
        )
        bundle = build_provide_bundle(
            [(d.entry, d.content) for d in batch],
            source_id=info.source_id,
            submission_set_unique_id=info.submission_set_unique_id(key, bundles),
        )
        keep = {str(d.entry.entry_uuid) for d in batch}
        stable = _stabilise(bundle, rng, keep, submitted)
        (folder / f"{bundles:05d}.json").write_bytes(orjson.dumps(stable, option=_JSON_OPTIONS))
    (out / info.slug / "index.json").write_bytes(
        orjson.dumps({"bundles": index}, option=_JSON_OPTIONS)
    )
    return documents, bundles


def write_dataset(
    out: Path,
    *,
    seed: int,
    citizens: int,
    reference_date: date,
    batch_size: int = 50,
    per_patient: tuple[int, int] = (1, 5),
    regions: Iterable[RegionInfo] = DEFAULT_REGIONS,
) -> DatasetSummary:
    """Generate the population and every region's documents and write them under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    population = generate_population(seed=seed, citizens=citizens, reference_date=reference_date)
    (out / "population.json").write_bytes(
        orjson.dumps(population_to_json(population), option=_JSON_OPTIONS)
    )
    summary = DatasetSummary(out=out, citizens=len(population.citizens))
    key = _dataset_key(seed, citizens, reference_date)
    for info in regions:
        documents, bundles = _write_region(
            out,
            info,
            population,
            seed=seed,
            batch_size=batch_size,
            key=key,
            per_patient=per_patient,
        )
        summary.documents[info.slug] = documents
        summary.bundles[info.slug] = bundles
    manifest = {
        "format": DATASET_FORMAT,
        "seed": seed,
        "citizens": citizens,
        "reference_date": reference_date.isoformat(),
        "batch_size": batch_size,
        "per_patient": list(per_patient),
        "regions": {
            slug: {"documents": summary.documents[slug], "bundles": summary.bundles[slug]}
            for slug in summary.documents
        },
    }
    (out / "dataset.json").write_bytes(orjson.dumps(manifest, option=_JSON_OPTIONS))
    return summary


def bundle_files(dataset: Path, region: str) -> list[Path]:
    """The bundle files of one region of a dataset, in posting order."""
    folder = dataset / region / "bundles"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: no region {region!r} in this dataset")
    return sorted(folder.glob("*.json"))


@dataclass(frozen=True, slots=True)
class BundleRef:
    """One bundle file of a dataset with its patient and number of documents."""

    path: Path
    patient: str
    documents: int


def _describe(path: Path) -> BundleRef:
    bundle = orjson.loads(path.read_bytes())
    patient, documents = "", 0
    for item in bundle.get("entry", []):
        resource = item.get("resource", {})
        if resource.get("resourceType") == "DocumentReference":
            documents += 1
        elif resource.get("resourceType") == "List":
            patient = str(resource.get("subject", {}).get("identifier", {}).get("value", ""))
    return BundleRef(path, patient, documents)


def bundle_plan(dataset: Path, region: str) -> list[list[BundleRef]]:
    """The bundles of one region grouped by patient, each group in posting order.

    Groups may be posted concurrently; the bundles inside one group must go one after another.
    Read from <slug>/index.json when present, else from the bundles themselves.
    """
    files = bundle_files(dataset, region)
    index_path = dataset / region / "index.json"
    if index_path.exists():
        rows = orjson.loads(index_path.read_bytes())["bundles"]
        folder = dataset / region / "bundles"
        refs = [BundleRef(folder / r["file"], r["patient"], int(r["documents"])) for r in rows]
    else:
        refs = [_describe(path) for path in files]
    groups: list[list[BundleRef]] = []
    for ref in refs:
        if groups and groups[-1][0].patient == ref.patient:
            groups[-1].append(ref)
        else:
            groups.append([ref])
    return groups
