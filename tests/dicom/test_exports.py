from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import onerecord.dicom as dicom


def _modules() -> list[object]:
    return [dicom] + [
        importlib.import_module(f"onerecord.dicom.{m.name}")
        for m in pkgutil.iter_modules(dicom.__path__)
    ]


def test_all_is_sorted_and_complete() -> None:
    for module in _modules():
        names = list(module.__all__)  # type: ignore[attr-defined]
        assert names == sorted(names, key=lambda n: (not n.isupper(), n)), module
        for name in names:
            assert hasattr(module, name), f"{module}.{name}"


def test_the_wire_imports_only_pydicom_domain_and_itself() -> None:
    allowed = ("onerecord.dicom", "onerecord.domain", "pydicom", "orjson")
    for path in Path(dicom.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                top = node.module
            elif isinstance(node, ast.Import):
                top = node.names[0].name
            else:
                continue
            if top.split(".")[0] in ("onerecord", "pydicom", "orjson"):
                assert top.startswith(allowed), f"{path.name} imports {top}"
            else:
                assert top.split(".")[0] in _STDLIB, f"{path.name} imports {top}"


_STDLIB = {
    "__future__",
    "base64",
    "binascii",
    "collections",
    "dataclasses",
    "datetime",
    "enum",
    "math",
    "re",
    "secrets",
    "typing",
    "warnings",
}
