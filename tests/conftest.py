"""Shared fixtures: a private demo-model cache, quiet TensorFlow, and helpers to write pipelines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session", autouse=True)
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tests never touch the user's cache; the demo model is trained once per session."""
    cache = tmp_path_factory.mktemp("deeprep-cache")
    previous = os.environ.get("DEEPREP_CACHE_DIR")
    os.environ["DEEPREP_CACHE_DIR"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("DEEPREP_CACHE_DIR", None)
    else:
        os.environ["DEEPREP_CACHE_DIR"] = previous


def write_pipeline(folder: Path, data: dict, name: str = "pipeline.yaml") -> Path:
    """Write a pipeline file into ``folder`` and return its path."""
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def tf_quiet():
    """TensorFlow imported through the tool's own quiet import (once per session)."""
    from deeprep_report.tf_runtime import import_tensorflow

    return import_tensorflow()


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, demo_cache: Path) -> tuple[Path, str]:
    """The shipped demo pipeline run once through the real command: (run folder, its stderr)."""
    out = tmp_path_factory.mktemp("demo") / "run"
    result = subprocess.run([sys.executable, "-m", "deeprep_report", "run", str(ROOT / "pipeline.yaml"),
                             "--out", str(out)], capture_output=True, text=True, env=os.environ.copy(), timeout=900)
    assert result.returncode == 0, result.stderr
    assert result.stdout == verdict_line(out) + "\n"
    return out, result.stderr


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """``deeprep ARGS`` in this process: (exit code, stdout, stderr) of that call alone."""
    from deeprep_report.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def read_summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text(encoding="utf-8"))


def verdict_line(run_dir: Path, target: str = "report.html") -> str:
    """The verdict line ``deeprep run``/``check`` print for a run folder, from its summary.json."""
    from deeprep_report.audit.verdict import Verdict

    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    return Verdict(**summary["checks"]["verdict"]).line(str(run_dir / target))


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory, demo_cache: Path) -> Path:
    """One finished run of a small model (minimal preset), made by the real command; renders in a second or
    two. Its pipeline, model and data are in the folder two levels up. Tests copy it before changing it."""
    import numpy as np

    import models as zoo
    from deeprep_report.cli import main
    from deeprep_report.tf_runtime import import_tensorflow

    import_tensorflow()
    folder = tmp_path_factory.mktemp("small")
    zoo.sequential().save(folder / "model.keras")
    np.savez(folder / "data.npz", **zoo.data(30))
    pipeline = write_pipeline(folder, {"run": {"name": "small", "preset": "minimal"},
                                       "models": [{"name": "m", "path": "model.keras"}],
                                       "datasets": [{"name": "d", "path": "data.npz"}]})
    assert main(["run", str(pipeline), "--quiet"]) == 0
    return folder / "outputs/small"
