"""The command line contract: exit codes, one-line errors, and run folders that never look finished by mistake."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import models as zoo
from conftest import write_pipeline

keras = pytest.importorskip("keras")

from deeprep_report import runner  # noqa: E402
from deeprep_report.cli import main  # noqa: E402

FINISHED = ("summary.json", "activations.h5", "pipeline.yaml")


@pytest.fixture(autouse=True)
def _tf(tf_quiet):
    keras.utils.set_random_seed(0)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A valid project: model.keras, data.npz and pipeline.yaml (run folder outputs/t)."""
    zoo.sequential().save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", **zoo.data(20))
    write_pipeline(tmp_path, {
        "run": {"name": "t"},
        "models": [{"name": "m", "path": "model.keras", "layers": ["conv", "out"]}],
        "datasets": [{"name": "d", "path": "data.npz", "batch_size": 8}],
    })
    return tmp_path


def edit(project: Path, change) -> Path:
    import yaml

    path = project / "pipeline.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    return write_pipeline(project, data)


def fails_with(capsys, args: list[str], expected: str, project: Path | None = None) -> None:
    """Exit 2, exactly one stderr line equal to ``expected``, and no finished-looking run folder."""
    code = main(args)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    shown = lines[0].replace(f"{project}/" if project else "\0", "")
    assert shown == f"error: {expected}"
    if project is not None:
        run_folder = project / "outputs" / "t"
        assert not any((run_folder / name).exists() for name in FINISHED)


def test_missing_pipeline_file(capsys, tmp_path):
    fails_with(capsys, ["run", str(tmp_path / "nope.yaml")], f"{tmp_path}/nope.yaml: no such pipeline file")


def test_invalid_yaml(capsys, project):
    (project / "pipeline.yaml").write_text("models: [a\n", encoding="utf-8")
    code = main(["run", str(project / "pipeline.yaml")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"error: {project}/pipeline.yaml: line 2, column 1: invalid YAML: ")


def test_unknown_key(capsys, project):
    path = edit(project, lambda d: d["datasets"][0].update(batchsize=4))
    fails_with(capsys, ["run", str(path)], "pipeline.yaml: datasets[0].batchsize: unknown key (did you mean 'batch_size'?)", project)


def test_wrong_type(capsys, project):
    path = edit(project, lambda d: d["run"].update(seed="zero"))
    fails_with(capsys, ["run", str(path)], "pipeline.yaml: run.seed: expected an integer, got 'zero'", project)


def test_missing_model_file(capsys, project):
    path = edit(project, lambda d: d["models"][0].update(path="m.keras"))
    fails_with(capsys, ["run", str(path)], "pipeline.yaml: models[0].path: no such file 'm.keras'", project)


def test_corrupt_model_file(capsys, project):
    (project / "model.keras").write_bytes(b"not a zip archive at all")
    code = main(["run", str(project / "pipeline.yaml")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"error: {project}/pipeline.yaml: models[0].path: cannot load 'model.keras': ")
    assert not (project / "outputs").exists()


def test_unknown_layer_suggests(capsys, project):
    path = edit(project, lambda d: d["models"][0].update(layers=["conv", "outt"]))
    fails_with(capsys, ["run", str(path)],
               "pipeline.yaml: models[0].layers[1]: no layer 'outt' in model 'm' (did you mean 'out'?)", project)


def test_input_shape_mismatch(capsys, project):
    np.savez(project / "data.npz", x=np.zeros((5, 8, 8, 1), np.float32))
    fails_with(capsys, ["run", str(project / "pipeline.yaml")],
               "pipeline.yaml: datasets[0]: dataset 'd' samples have shape (8, 8, 1) but model 'm' expects (6, 6, 2)",
               project)


def test_missing_channel_axis_gets_a_hint(capsys, tmp_path):
    x = keras.Input((4, 4, 1))
    keras.Model(x, keras.layers.Flatten()(x)).save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=np.zeros((3, 4, 4), np.float32))
    path = write_pipeline(tmp_path, {"models": [{"name": "m", "path": "model.keras"}],
                                     "datasets": [{"name": "d", "path": "data.npz"}]})
    fails_with(capsys, ["run", str(path)], "pipeline.yaml: datasets[0]: dataset 'd' samples have shape (4, 4) but "
               "model 'm' expects (4, 4, 1) (add the channel axis)", tmp_path)


def test_empty_dataset(capsys, project):
    np.savez(project / "data.npz", x=np.zeros((0, 6, 6, 2), np.float32))
    fails_with(capsys, ["run", str(project / "pipeline.yaml")],
               "pipeline.yaml: datasets[0].path: dataset 'd' is empty (0 samples)", project)


def test_npz_without_x(capsys, project):
    np.savez(project / "data.npz", images=np.zeros((4, 6, 6, 2), np.float32), y=np.zeros(4, np.int64))
    fails_with(capsys, ["run", str(project / "pipeline.yaml")],
               "pipeline.yaml: datasets[0].path: 'data.npz' has no array 'x' (arrays: 'images'); "
               "name the input array with datasets[0].x", project)
    path = edit(project, lambda d: d["datasets"][0].update(x="images"))
    assert main(["run", str(path), "--quiet"]) == 0


def test_lambda_layer_needs_the_opt_in(capsys, project):
    x = keras.Input((6, 6, 2))
    keras.Model(x, keras.layers.Lambda(lambda t: t * 2.0, name="double")(x)).save(project / "model.keras")
    path = edit(project, lambda d: d["models"][0].update(layers="all"))
    fails_with(capsys, ["run", str(path)],
               "pipeline.yaml: models[0].path: model 'm' contains a Lambda layer 'double', which runs Python code "
               "stored in the file; set models[0].allow_lambda: true to load it if you trust 'model.keras'", project)
    path = edit(project, lambda d: d["models"][0].update(allow_lambda=True))
    assert main(["run", str(path), "--quiet"]) == 0


def test_nan_in_data_is_reported_not_fatal(capsys, project):
    x = keras.Input((6, 6, 2))
    conv = keras.layers.Conv2D(2, 3, name="conv")(x)  # linear: NaN propagates (a ReLU would hide it)
    keras.Model(x, keras.layers.Dense(3, name="out")(keras.layers.Flatten()(conv))).save(project / "model.keras")
    arrays = zoo.data(20)
    arrays["x"][3, 1, 1, 0] = np.nan
    np.savez(project / "data.npz", **arrays)
    assert main(["run", str(project / "pipeline.yaml"), "--quiet"]) == 1  # the default nan_inf check fails
    assert capsys.readouterr().out == f"FAIL 2 checks failed, 0 warnings — {project}/outputs/t/report.html\n"
    summary = json.loads((project / "outputs/t/summary.json").read_text())
    failed = [(r["rule"], r["layer"], r["value"]) for r in summary["checks"]["results"] if r["status"] == "fail"]
    assert failed == [("nan_inf", "conv", 8.0), ("nan_inf", "out", 3.0)]
    assert summary["datasets"][0]["nonfinite_inputs"] == 1
    conv_stats = summary["pairs"][0]["layers"][0]["stats"]
    assert conv_stats["nonfinite_count"] == 4 * 2  # the 2x2 output positions whose window holds pixel (1, 1), 2 channels
    assert conv_stats["mean"] is not None and conv_stats["std"] > 0  # the finite values are still summarised


def test_validate_checks_without_extracting(capsys, project):
    assert main(["validate", str(project / "pipeline.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"{project}/pipeline.yaml: OK: m × d (2 layers, 20 samples)"
    assert not (project / "outputs").exists()
    path = edit(project, lambda d: d["models"][0].update(layers=["nope"]))
    fails_with(capsys, ["validate", str(path)], "pipeline.yaml: models[0].layers[0]: no layer 'nope' in model 'm'", project)


def test_schema_command_prints_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "deeprep-report pipeline.yaml" and "models" in schema["required"]


def test_out_and_set(capsys, project):
    out = project / "elsewhere"
    assert main(["run", str(project / "pipeline.yaml"), "--out", str(out), "--set", "run.seed=5", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == f"PASS 0 checks failed, 0 warnings — {out}/report.html"
    assert all((out / name).is_file() for name in (*FINISHED, "run.log"))
    assert "seed: 5" in (out / "pipeline.yaml").read_text()
    assert not list(out.glob(".deeprep-partial-*"))


def test_internal_error_exits_3_and_keeps_the_previous_run(capsys, project, monkeypatch):
    assert main(["run", str(project / "pipeline.yaml"), "--quiet"]) == 0
    folder = project / "outputs/t"
    before = {name: (folder / name).read_bytes() for name in FINISHED}

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(runner, "analyze", broken)
    capsys.readouterr()
    assert main(["run", str(project / "pipeline.yaml"), "--quiet", "--set", "run.seed=9"]) == 3
    err = capsys.readouterr().err.strip()
    assert err == f"internal error: RuntimeError: boom (traceback in {folder}/run.log)"
    assert {name: (folder / name).read_bytes() for name in FINISHED} == before
    log = (folder / "run.log").read_text()
    assert "Traceback (most recent call last)" in log and "RuntimeError: boom" in log
    assert not list(folder.glob(".deeprep-partial-*"))


def test_killed_run_leaves_nothing_that_looks_finished(project):
    """SIGKILL midway: no new files appear, and the next run removes the abandoned staging folder."""
    np.savez(project / "data.npz", **zoo.data(60000))
    folder = project / "outputs/t"
    process = subprocess.Popen([sys.executable, "-m", "deeprep_report", "run", str(project / "pipeline.yaml"),
                                "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    deadline = time.time() + 120
    while time.time() < deadline and not list(folder.glob(".deeprep-partial-*/activations.h5")):
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert list(folder.glob(".deeprep-partial-*")), "the run was killed before it started writing"
    assert not any((folder / name).exists() for name in (*FINISHED, "run.log"))
    np.savez(project / "data.npz", **zoo.data(20))
    assert main(["run", str(project / "pipeline.yaml"), "--quiet"]) == 0
    assert not list(folder.glob(".deeprep-partial-*"))


def test_real_command_prints_one_clean_line(project):
    """Through the installed entry point: TensorFlow's start-up noise never reaches stderr."""
    path = edit(project, lambda d: d["models"][0].update(layers=["nope"]))
    result = subprocess.run([sys.executable, "-m", "deeprep_report", "run", str(path)], capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert result.returncode == 2
    assert result.stderr == f"error: {path}: models[0].layers[0]: no layer 'nope' in model 'm'\n"
    assert result.stdout == ""


def test_uncapturable_layers_are_listed_in_summary_and_log(project):
    x = keras.Input((6, 6, 2), name="pixels")
    shared = keras.layers.Dense(2, name="shared")
    flat = keras.layers.Flatten(name="flat")(x)
    keras.Model(x, keras.layers.Dense(1, name="out")(shared(shared(keras.layers.Dense(2, name="pre")(flat))))).save(
        project / "model.keras")
    path = edit(project, lambda d: d["models"][0].update(layers="all"))
    assert main(["run", str(path), "--quiet"]) == 0
    folder = project / "outputs/t"
    summary = json.loads((folder / "summary.json").read_text())
    reason = "called 2 times in the graph (a shared layer has no single output)"
    assert summary["models"][0]["skipped_layers"] == [{"path": "shared", "reason": reason}]
    assert [layer["path"] for layer in summary["pairs"][0]["layers"]] == ["flat", "pre", "out"]
    assert f"model m: layer shared skipped: {reason}" in (folder / "run.log").read_text()


def test_pipeline_defaults_to_the_current_folder(capsys, project, monkeypatch):
    monkeypatch.chdir(project)
    assert main(["validate"]) == 0
    assert capsys.readouterr().out.startswith("pipeline.yaml: OK: m × d")
