"""The shipped demo, end to end through the real command, and the summary's contract."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import h5py
import jsonschema
import numpy as np
import pytest

from deeprep_report.store.runfolder import read_marker
from deeprep_report.store.summary import schema, to_json_value

ROOT = Path(__file__).resolve().parents[1]


def strict_load(text: str):
    def refuse(constant: str):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_demo_run_writes_every_file(demo_run):
    out, _ = demo_run
    files = ["activations.h5", "pipeline.yaml", "report.html", "run.log", "summary.json", "summary.md"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*files, ".deeprep-run.json", ".deeprep.lock"])
    marker = read_marker(out)
    assert sorted(marker["files"]) == files
    assert marker["run_id"] == json.loads((out / "summary.json").read_text(encoding="utf-8"))["run"]["id"]


def test_summary_is_strict_json_valid_against_the_schema(demo_run):
    out, _ = demo_run
    summary = strict_load((out / "summary.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema())
    jsonschema.validate(summary, schema())
    pair = summary["pairs"][0]
    assert [layer["path"] for layer in pair["layers"]] == [
        "conv1", "pool1", "conv2", "pool2", "flatten", "dropout", "dense_1", "dense_2"]
    assert pair["n_samples"] == 1000 and summary["datasets"][0]["n_rows"] == 1797


def test_summary_numbers_match_the_store(demo_run):
    out, _ = demo_run
    summary = strict_load((out / "summary.json").read_text(encoding="utf-8"))
    with h5py.File(out / "activations.h5") as store:
        for layer in summary["pairs"][0]["layers"]:
            group = store[f"pairs/digits_cnn/digits/layers/{layer['path']}"]
            pooled = group["pooled"][()]
            assert pooled.shape == (1000, layer["units"])
            stats = group["stats"]
            assert layer["stats"]["dead_units"] == int(stats["dead"][()].sum())
            assert layer["stats"]["max"] == pytest.approx(float(stats["max"][()].max()))
            assert sum(layer["histogram"]["counts"]) == layer["stats"]["values"]
            if layer["kind"] == "vector":  # pooled is the full activation: check the layer mean directly
                assert layer["stats"]["mean"] == pytest.approx(pooled.astype(np.float64).mean(), rel=1e-6)


def test_demo_model_is_accurate_and_cached(demo_run, demo_cache):
    out, stderr = demo_run
    from deeprep_report.sources import demo

    meta = json.loads(next(demo_cache.glob("digits_cnn-v*.json")).read_text())
    assert meta["test_accuracy"] >= 0.95
    # and independently: the cached model on the held-out split
    from deeprep_report.tf_runtime import import_tensorflow

    import_tensorflow()
    import keras

    model = keras.saving.load_model(demo.digits_cnn_path())
    x, y = demo.digits()
    _, test = demo.split()
    accuracy = float((model.predict(x[test], verbose=0).argmax(1) == y[test]).mean())
    assert accuracy >= 0.95
    again = subprocess.run([sys.executable, "-m", "deeprep_report", "validate", str(ROOT / "pipeline.yaml")],
                           capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert again.returncode == 0 and "training the demo model" not in again.stderr


def test_logs_are_plain_lines_without_a_terminal(demo_run):
    _, stderr = demo_run
    assert "\r" not in stderr  # no progress bar redraws in captured output
    assert "digits_cnn × digits: 1000 samples in" in stderr
    assert "oneDNN" not in stderr and "cuInit" not in stderr


def test_nonfinite_numbers_become_null():
    assert to_json_value({"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": np.int64(3)}) == {
        "a": None, "b": [None, 1.5], "c": 3}
    with pytest.raises(TypeError):
        to_json_value({"a": object()})
    assert math.isfinite(to_json_value(np.float64(2.0)))
