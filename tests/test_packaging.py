"""The installed distribution holds every subpackage and the shipped data (tests run against the source tree,
so a package missing from pyproject.toml would otherwise only show up after ``pip install .``)."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_for_installation():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "deeprep_report").rglob("__init__.py")}
    assert found <= set(config["packages"])
    assert config["package-dir"]["deeprep_report.templates"] == "templates"
    data = config["package-data"]
    folders = {package: ROOT.joinpath(*package.split(".")) for package in config["packages"]}
    folders["deeprep_report.templates"] = ROOT / "templates"
    for path in [*(ROOT / "deeprep_report").rglob("*"), *(ROOT / "templates").rglob("*")]:
        if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
            continue
        package = max((name for name, folder in folders.items() if folder in path.parents),
                      key=lambda name: len(folders[name].parts))  # the innermost package holding the file
        relative = path.relative_to(folders[package])
        assert any(_glob_matches(pattern, relative) for pattern in data.get(package, [])), f"not installed: {path}"


def _glob_matches(pattern: str, relative: Path) -> bool:
    """setuptools' package-data glob: ``*`` stays inside one folder, so ``*.j2`` does not match ``sections/a.j2``."""
    parts = pattern.split("/")
    return len(parts) == len(relative.parts) and all(fnmatch.fnmatchcase(p, g) for p, g in zip(relative.parts, parts))
