"""No GPL code in the default install: the media archive must not pull in a GPL codec.

pylibjpeg-libjpeg (GPLv3) is the usual way pydicom decodes JPEG Lossless and JPEG-LS; it and
other GPL packages must stay out of the default dependencies (issue 14). The check walks the
installed distributions that pyproject.toml's default dependencies require, transitively, and
reads each one's licence from its metadata (core metadata 2.4 License-Expression, License,
and the Trove classifiers).
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
KNOWN_GPL_CODECS = {"pylibjpeg-libjpeg"}  # GPLv3: pydicom's usual JPEG Lossless and JPEG-LS decoder
_GPL = re.compile(r"(?<!L)GPL|GNU General Public|GNU Affero", re.IGNORECASE)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _default_requirements() -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text("utf-8"))["project"]
    return [Requirement(text) for text in project["dependencies"]]


def _closure() -> dict[str, metadata.Distribution]:
    """Every installed distribution the default dependencies need, by normalised name."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [(r, frozenset(r.extras)) for r in _default_requirements()]
    while todo:
        requirement, extras = todo.pop()
        name = _normal(requirement.name)
        if requirement.marker is not None and not any(
            requirement.marker.evaluate({"extra": e}) for e in (extras or {""})
        ):
            continue
        dist = metadata.distribution(requirement.name)
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in seen:
            continue
        seen[key] = dist
        for text in dist.requires or []:
            todo.append((Requirement(text), frozenset(requirement.extras)))
    return {key.split("[")[0]: dist for key, dist in seen.items()}


def _licence_texts(dist: metadata.Distribution) -> list[str]:
    meta = dist.metadata
    texts = [meta.get("License-Expression") or "", (meta.get("License") or "")[:400]]
    texts += [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return texts


def test_the_new_dicom_dependencies_are_pinned_and_installed() -> None:
    pinned = {_normal(r.name): str(r.specifier) for r in _default_requirements()}
    assert pinned["pydicom"] == "==3.0.2"
    assert pinned["pynetdicom"] == "==3.0.4"
    assert metadata.version("pydicom") == "3.0.2"
    assert metadata.version("pynetdicom") == "3.0.4"


def test_no_known_gpl_codec_is_a_default_dependency() -> None:
    assert not KNOWN_GPL_CODECS & set(_closure())


def test_no_default_dependency_is_gpl_licensed() -> None:
    closure = _closure()
    assert {"pydicom", "pynetdicom", "pillow", "fastapi"} <= set(closure)
    gpl = {
        name: [t for t in _licence_texts(dist) if _GPL.search(t)]
        for name, dist in closure.items()
        if any(_GPL.search(t) for t in _licence_texts(dist))
    }
    assert gpl == {}
