"""Checks of a package's place in the layout (docs/architecture.md): public face, imports."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType


def assert_all_sorted_and_complete(package: ModuleType) -> None:
    """Each module of `package` (and the package) has a sorted `__all__` naming what it has."""
    modules = [f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    for name in [package.__name__, *modules]:
        module = importlib.import_module(name)
        names = list(getattr(module, "__all__", []))
        assert names == sorted(names, key=lambda n: (not n.isupper(), n)) or names == sorted(
            names
        ), name
        for exported in names:
            assert hasattr(module, exported), f"{name}.{exported}"


def assert_imports_none_of(package: ModuleType, forbidden: tuple[str, ...]) -> None:
    """No Python file under `package` (subfolders included) imports a module in `forbidden`."""
    for path in Path(package.__path__[0]).rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(forbidden), f"{path.name}: {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith(forbidden), f"{path.name}: {alias.name}"
