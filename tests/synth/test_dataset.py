from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from onerecord.domain import NationalIdentityNumber, strip_urn_oid
from onerecord.mhd import SubmittedDocument, parse_provide_bundle
from onerecord.synth.dataset import (
    DATASET_FORMAT,
    batch_documents,
    bundle_files,
    load_population,
    population_to_json,
    write_dataset,
)
from onerecord.synth.documents import generate_documents
from onerecord.synth.numbers import RealFormNumber
from onerecord.synth.population import generate_population
from onerecord.synth.regions import DEFAULT_REGIONS, region

from .conftest import REFERENCE_DATE

ARGS = {"seed": 5, "citizens": 12, "reference_date": REFERENCE_DATE, "batch_size": 4}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.json"))}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dataset")
    write_dataset(out, **ARGS)  # type: ignore[arg-type]
    return out


def test_same_seed_gives_byte_identical_files(dataset: Path, tmp_path: Path) -> None:
    summary = write_dataset(tmp_path / "again", **ARGS)  # type: ignore[arg-type]
    assert _files(dataset) == _files(tmp_path / "again")
    assert summary.total_documents == sum(summary.documents.values()) > 0
    other = write_dataset(tmp_path / "other", **{**ARGS, "seed": 6})  # type: ignore[arg-type]
    assert _files(other.out) != _files(dataset)


def test_manifest_and_layout(dataset: Path) -> None:
    manifest = orjson.loads((dataset / "dataset.json").read_bytes())
    assert manifest["format"] == DATASET_FORMAT and manifest["seed"] == 5
    for info in DEFAULT_REGIONS:
        files = bundle_files(dataset, info.slug)
        assert [f.name for f in files][:2] == ["00001.json", "00002.json"]
        assert manifest["regions"][info.slug]["bundles"] == len(files)
    with pytest.raises(FileNotFoundError):
        bundle_files(dataset, "oslo")


def test_bundles_parse_as_iti65_and_hold_the_generated_documents(dataset: Path) -> None:
    population = load_population(dataset)
    manifest = orjson.loads((dataset / "dataset.json").read_bytes())
    for info in DEFAULT_REGIONS:
        expected = list(generate_documents(population, info, seed=5))
        parsed: list[SubmittedDocument] = []
        for path in bundle_files(dataset, info.slug):
            bundle = parse_provide_bundle(path.read_bytes())
            assert 1 <= len(bundle.documents) <= 4
            assert len({d.entry.patient_id for d in bundle.documents}) == 1
            ids = {d.entry.unique_id for d in bundle.documents}
            assert not any(d.entry.replaces in ids for d in bundle.documents)
            submission_set = bundle.submission_set
            hcid = info.home_community_id.oid.value
            assert strip_urn_oid(submission_set.unique_id).startswith(f"{hcid}.8.")
            assert submission_set.source_id == info.source_id
            parsed.extend(bundle.documents)
        assert [d.entry.unique_id for d in parsed] == [d.entry.unique_id for d in expected]
        for got, want in zip(parsed, expected, strict=True):
            assert got.content == want.content
            assert got.entry.hash_sha256 == hashlib.sha256(want.content).hexdigest()
            assert got.entry.replaces == want.entry.replaces
            assert got.entry.confidentiality_code_values == want.entry.confidentiality_code_values
        assert manifest["regions"][info.slug]["documents"] == len(expected)


def test_population_round_trip(dataset: Path) -> None:
    loaded = load_population(dataset / "population.json")
    original = generate_population(seed=5, citizens=12, reference_date=REFERENCE_DATE)
    assert loaded == original
    assert population_to_json(loaded) == population_to_json(original)
    assert loaded.cast["child11"] in loaded.children_of(loaded.cast["parent"].nin)


def test_loading_refuses_a_real_form_number(dataset: Path, tmp_path: Path) -> None:
    raw = orjson.loads((dataset / "population.json").read_bytes())
    real = NationalIdentityNumber.with_check_digits("010170499")
    assert real is not None
    raw["citizens"][-1]["nin"] = real
    target = tmp_path / "population.json"
    target.write_bytes(orjson.dumps(raw))
    with pytest.raises(RealFormNumber):
        load_population(target)


def test_batches_split_on_patient_size_and_replacement() -> None:
    population = generate_population(seed=1, citizens=3, reference_date=REFERENCE_DATE)
    docs = list(generate_documents(population, region("hso"), seed=1))
    batches = list(batch_documents(docs, 3))
    assert [d for b in batches for d in b] == docs
    for batch in batches:
        assert len(batch) <= 3
        assert len({d.entry.patient_id for d in batch}) == 1
        ids = {d.entry.unique_id for d in batch}
        assert not any(d.entry.replaces in ids for d in batch)
    with pytest.raises(ValueError):
        next(batch_documents(docs, 0))
