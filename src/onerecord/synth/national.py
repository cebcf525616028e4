"""A national population for benchmarks: who holds documents in which regions, at scale.

Shaped like a country rather than like the demo's showcase cast: most people have documents only
in their home region, fewer in two, a few in three or four, and some have none at all. The
default shape (`NationalShape()`): homes spread evenly over the regions (so that every region
holds about as many entries), 80 % of the people with documents in one region, 15 % in two, 3 %
in three and 2 % in four, and 5 % of the population with no documents anywhere.

`national_population` draws the people (synthetic fødselsnummer only); `region_entries` yields
one region's registry entries with `fast_entries`, each holder getting at least one entry there
and the rest drawn at random among the region's holders. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

from onerecord.domain import DocumentEntry, NationalIdentityNumber
from onerecord.synth.documents import fast_entries
from onerecord.synth.numbers import ensure_synthetic, synthetic_fnr
from onerecord.synth.regions import DEFAULT_REGIONS, RegionInfo

__all__ = [
    "NationalPerson",
    "NationalPopulation",
    "NationalShape",
    "national_population",
    "region_entries",
]


@dataclass(frozen=True, slots=True)
class NationalShape:
    """How many regions people hold documents in, and how many hold none.

    `region_weights[i]` is the share of document holders with documents in i + 1 regions.
    """

    region_weights: tuple[int, ...] = (80, 15, 3, 2)
    no_documents_share: float = 0.05
    documents_per_holder: int = 10  # mean entries per (person, region) they hold documents in

    def __post_init__(self) -> None:
        if not self.region_weights or any(w < 0 for w in self.region_weights):
            raise ValueError("region_weights must be non-negative, at least one")
        if sum(self.region_weights) <= 0:
            raise ValueError("region_weights must not all be 0")
        if not 0 <= self.no_documents_share < 1:
            raise ValueError("no_documents_share must be in [0, 1)")
        if self.documents_per_holder < 1:
            raise ValueError("documents_per_holder must be at least 1")

    @property
    def mean_regions(self) -> float:
        """Mean number of regions a document holder has documents in."""
        total = sum(self.region_weights)
        return sum((i + 1) * w for i, w in enumerate(self.region_weights)) / total

    @property
    def label(self) -> str:
        """A short name for caches and reports, e.g. "80-15-3-2_none5_k10"."""
        weights = "-".join(str(w) for w in self.region_weights)
        none = round(self.no_documents_share * 100, 2)
        return f"{weights}_none{none:g}_k{self.documents_per_holder}"

    def describe(self) -> dict[str, object]:
        """The shape as plain data (for JSON reports)."""
        total = sum(self.region_weights)
        return {
            "label": self.label,
            "homes": "even over the regions",
            "holders_by_region_count_pct": {
                str(i + 1): round(100 * w / total, 2) for i, w in enumerate(self.region_weights)
            },
            "no_documents_pct_of_population": round(100 * self.no_documents_share, 2),
            "mean_entries_per_holder_per_region": self.documents_per_holder,
            "mean_regions_per_holder": round(self.mean_regions, 3),
        }


@dataclass(frozen=True, slots=True)
class NationalPerson:
    """One person: home region and the regions holding documents (home first; empty: none)."""

    nin: NationalIdentityNumber
    home: str
    regions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NationalPopulation:
    """The people of one benchmark population, in the order they were drawn."""

    shape: NationalShape
    people: tuple[NationalPerson, ...]

    def holders(self, slug: str) -> list[NationalIdentityNumber]:
        """The people who hold documents in the region `slug`."""
        return [p.nin for p in self.people if slug in p.regions]

    def by_region_count(self) -> dict[int, list[NationalPerson]]:
        """The people grouped by how many regions hold their documents (0: none)."""
        groups: dict[int, list[NationalPerson]] = {}
        for p in self.people:
            groups.setdefault(len(p.regions), []).append(p)
        return dict(sorted(groups.items()))


def national_population(
    entries_per_region: int,
    *,
    seed: int,
    shape: NationalShape | None = None,
    regions: Sequence[RegionInfo] = DEFAULT_REGIONS,
) -> NationalPopulation:
    """Draw a population whose holders fill `entries_per_region` entries per region.

    Holders per region ≈ entries_per_region / documents_per_holder; the number of people with
    documents is set so that, with the shape's mean regions per holder, the regions together
    have that many holders each; then the share with no documents is added.
    """
    shape = shape or NationalShape()
    if entries_per_region < 1:
        raise ValueError("entries_per_region must be at least 1")
    slugs = [r.slug for r in regions]
    weights = shape.region_weights[: len(slugs)]
    per_region = max(1, entries_per_region // shape.documents_per_holder)
    holders = max(1, round(len(slugs) * per_region / shape.mean_regions))
    people_count = holders + round(
        holders * shape.no_documents_share / (1 - shape.no_documents_share)
    )
    rng = random.Random(f"national:{seed}")
    seen: set[str] = set()
    people: list[NationalPerson] = []
    while len(people) < people_count:
        born = date(1930, 1, 1) + timedelta(days=rng.randrange(0, 365 * 95))
        nin = synthetic_fnr(rng, born)
        if nin.value in seen:
            continue
        seen.add(nin.value)
        home = slugs[rng.randrange(len(slugs))]
        if len(people) < holders:
            count = rng.choices(range(1, len(weights) + 1), weights=weights)[0]
            others = [s for s in slugs if s != home]
            rng.shuffle(others)
            people.append(NationalPerson(nin, home, (home, *others[: count - 1])))
        else:
            people.append(NationalPerson(nin, home, ()))
    # The people without documents are not all at the end of the list.
    rng.shuffle(people)
    return NationalPopulation(shape, tuple(people))


def region_entries(
    population: NationalPopulation, region: RegionInfo, count: int, *, seed: int
) -> Iterator[DocumentEntry]:
    """Yield `count` entries of `region`: one for every holder there first, then random holders.

    Every holder of the region ends up with at least one entry (so a person the population says
    holds documents there does); `count` below the number of holders is refused.
    """
    holders = population.holders(region.slug)
    if not holders:
        raise ValueError(f"no one holds documents in {region.slug}")
    if count < len(holders):
        raise ValueError(f"{count} entries cannot cover {len(holders)} holders in {region.slug}")
    first = [ensure_synthetic(n) for n in holders]
    random.Random(f"national:{seed}:{region.slug}").shuffle(first)
    for i, entry in enumerate(fast_entries(count, seed=seed, region=region, patients=holders)):
        yield replace(entry, patient_id=first[i]) if i < len(first) else entry
