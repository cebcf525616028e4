"""Hostile shapes for ITI-65 bundles: every node of a valid bundle, and what to put there.

Shared by the in-process property test (tests/mhd/test_iti65_hostile.py) and the one over real
HTTP (tests/source/test_hostile_input.py).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

__all__ = ["HOSTILE_VALUES", "mutated", "mutations", "paths"]

Path = tuple[str | int, ...]

HOSTILE_VALUES: tuple[Any, ...] = (
    5,
    -1,
    1.5,
    2**63,
    True,
    None,
    "",
    "x",
    "\u0000",
    "x" * 100_000,
    [],
    [None],
    ["x"],
    {},
    {"a": {"b": [1]}},
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "2024-01-01T00:00:00+24:00",
    "0001-01-01",
    "urn:uuid:00000000-0000-0000-0000-000000000000",
)


def paths(node: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every path to a node below the root (dict keys and list indexes)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from paths(value, (*prefix, index))


def mutated(bundle: dict[str, Any], path: Path, value: Any, *, delete: bool = False) -> Any:
    """A deep copy of `bundle` with the node at `path` replaced by `value` (or removed)."""
    out = copy.deepcopy(bundle)
    parent: Any = out
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(value)
    return out


def mutations(bundle: dict[str, Any]) -> st.SearchStrategy[tuple[Path, Any, bool]]:
    """A path of `bundle`, a hostile value, and whether to delete the node instead."""
    return st.tuples(
        st.sampled_from(list(paths(bundle))),
        st.sampled_from(HOSTILE_VALUES) | st.text(max_size=20),
        st.booleans(),
    )
