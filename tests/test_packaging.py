"""The installed distribution holds every subpackage and the shipped data (tests run against the source tree,
so a package missing from pyproject.toml would otherwise only show up after ``pip install .``)."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_for_installation():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "deeprep_report").rglob("__init__.py")}
    assert found <= set(config["packages"])
    assert config["package-dir"]["deeprep_report.templates"] == "templates"
    shipped = config["package-data"]["deeprep_report.templates"]
    templates = {path.suffix for path in (ROOT / "templates").iterdir() if path.is_file()}
    assert {f"*{suffix}" for suffix in templates} <= set(shipped)
