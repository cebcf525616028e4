from __future__ import annotations

import importlib
import pkgutil

import onerecord.xca as xca


def _modules() -> list[object]:
    return [xca] + [
        importlib.import_module(f"onerecord.xca.{m.name}")
        for m in pkgutil.iter_modules(xca.__path__)
    ]


def test_all_is_sorted_and_complete() -> None:
    for module in _modules():
        names = list(module.__all__)  # type: ignore[attr-defined]
        assert names == sorted(names, key=lambda n: (not n.isupper(), n)), module
        for name in names:
            assert hasattr(module, name), f"{module}.{name}"
