"""The wheel ships every subpackage: an editable install hides a package missing from pyproject."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_evalkit_package_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(path.parent.relative_to(REPO).parts)
        for path in (REPO / "evalkit").rglob("__init__.py")
        if "__pycache__" not in path.parts
    }
    assert on_disk - listed == set()


def test_package_data_covers_the_shipped_word_lists() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "words/*.txt" in data["evalkit.longcontext"]
    assert list((REPO / "evalkit" / "longcontext" / "words").glob("*.txt"))
