from __future__ import annotations

import pytest

from onerecord.synth.regions import DEFAULT_REGIONS, SYNTHETIC_ARC, UnknownRegion, region


def test_four_regions_with_their_names() -> None:
    assert [(r.slug, r.name) for r in DEFAULT_REGIONS] == [
        ("hso", "Helse Sør-Øst"),
        ("vest", "Helse Vest"),
        ("midt", "Helse Midt-Norge"),
        ("nord", "Helse Nord"),
    ]


def test_identifiers_are_distinct_and_under_the_synthetic_arc() -> None:
    oids = [
        str(oid)
        for r in DEFAULT_REGIONS
        for oid in (r.home_community_id.oid, r.repository_unique_id.oid, r.document_oid_root)
    ]
    assert len(set(oids)) == len(oids)
    assert all(o.startswith(SYNTHETIC_ARC + ".") for o in oids)
    for r in DEFAULT_REGIONS:
        assert r.home_community_id.urn.startswith("urn:oid:")
        hcid = r.home_community_id.oid.value
        assert str(r.repository_unique_id).startswith(hcid + ".")
        assert r.document_oid_root.value.startswith(hcid + ".")
        assert r.source_id.startswith(r.home_community_id.urn + ".")
        assert r.submission_set_unique_id(5, 12) == f"{hcid}.8.5.12"


def test_lookup_by_slug() -> None:
    assert region("midt").name == "Helse Midt-Norge"
    with pytest.raises(UnknownRegion, match="hso, vest, midt, nord"):
        region("oslo")
