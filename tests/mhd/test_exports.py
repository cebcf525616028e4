from __future__ import annotations

import onerecord.mhd as mhd
from onerecord.mhd import capability, docref, errors, iti65, iti67, mime, outcome


def test_all_is_sorted_and_complete() -> None:
    for module in (mhd, capability, docref, errors, iti65, iti67, mime, outcome):
        names = list(module.__all__)
        assert names == sorted(names, key=lambda n: (not n.isupper(), n)) or names == sorted(
            names
        ), module.__name__
        for name in names:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_package_exports_the_api_others_call() -> None:
    for name in (
        "RetrieveKey",
        "build_provide_bundle",
        "document_reference",
        "entry_from_document_reference",
        "outcome_for",
        "parse_find_query",
        "parse_provide_bundle",
        "render_query",
        "searchset_bundle",
        "transaction_response",
        "capability_statement",
    ):
        assert name in mhd.__all__
