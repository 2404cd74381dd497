"""Audits end to end: exit codes, baseline comparison, ``deeprep check``, caching, cross-model CKA, transfer, index."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import models as zoo
from conftest import verdict_line, write_pipeline

keras = pytest.importorskip("keras")

from deeprep_report.cli import main  # noqa: E402
from deeprep_report.stats.views import reference_view, view_spec  # noqa: E402
from deeprep_report.store import StoreReader  # noqa: E402


@pytest.fixture(autouse=True)
def _tf(tf_quiet):
    keras.utils.set_random_seed(0)


def dead_unit_model() -> keras.Model:
    """``hidden`` unit 0 has bias -100: it never fires (one dead unit of four, whatever the input)."""
    model = keras.Sequential([
        keras.Input((6, 6, 2), name="pixels"), keras.layers.Flatten(name="flat"),
        keras.layers.Dense(4, activation="relu", name="hidden"), keras.layers.Dense(3, activation="softmax", name="out"),
    ])
    kernel, bias = model.get_layer("hidden").get_weights()
    model.get_layer("hidden").set_weights([kernel * 0.1, np.array([-100.0, 0.0, 0.0, 0.0], dtype=np.float32)])
    return model


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dead_unit_model().save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", **zoo.data(60))
    write_pipeline(tmp_path, {
        "run": {"name": "t", "preset": "minimal"},
        "models": [{"name": "m", "path": "model.keras"}],
        "datasets": [{"name": "d", "path": "data.npz", "batch_size": 16}],
    })
    return tmp_path


def pipeline(project: Path, name: str = "pipeline.yaml", **changes) -> Path:
    import yaml

    data = yaml.safe_load((project / "pipeline.yaml").read_text())
    data.update(changes)
    return write_pipeline(project, data, name)


def run(capsys, args: list[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of one command (earlier output is discarded)."""
    capsys.readouterr()
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))


# -- verdict and exit codes --------------------------------------------------------------------------------------

def test_exit_codes_follow_the_checks_and_fail_on(capsys, project):
    report = project / "outputs/t/report.html"
    assert run(capsys, ["run", str(project / "pipeline.yaml"), "--quiet"])[:2] == (
        0, f"PASS 0 checks failed, 0 warnings — {report}\n")  # default dead_units threshold is 0.5; 1 of 4 is dead

    strict = pipeline(project, checks=[{"rule": "dead_units", "max": 0.1, "layers": ["hidden"]}])
    assert run(capsys, ["run", str(strict), "--quiet"])[:2] == (1, f"FAIL 1 check failed, 0 warnings — {report}\n")
    summary = summary_of(project / "outputs/t")
    assert summary["checks"]["results"] == [{
        "rule": "dead_units", "model": "m", "dataset": "d", "layer": "hidden", "value": 0.25, "threshold": 0.1,
        "severity": "fail", "status": "fail", "detail": "1 of 4 units dead"}]
    assert summary["checks"]["verdict"] == {"status": "FAIL", "failed": 1, "warnings": 0, "not_evaluated": 0,
                                            "passed": 0}
    markdown = (project / "outputs/t/summary.md").read_text()
    assert f"**FAIL 1 check failed, 0 warnings** — ` {report} `" in markdown
    assert "| FAIL | fail | `dead_units` | ` m ` × ` d ` | ` hidden ` | 0.25 | 0.1 | 1 of 4 units dead |" in markdown
    html = (project / "outputs/t/report.html").read_text()
    banner = html.split('<p class="banner fail" role="status">')[1].split("</p>")[0]
    assert " ".join(banner.split()) == ('<span class="word">FAIL</span> 1 check failed, 0 warnings, 0 passed. '
                                        '<a href="#checks">The checks</a>')
    assert '<p class="verdict' not in html  # no second, green bar under the verdict when every figure was drawn
    assert run(capsys, ["run", str(strict), "--quiet", "--fail-on", "never"])[0] == 0

    warn = pipeline(project, checks=[{"rule": "dead_units", "max": 0.1, "severity": "warn"},
                                     {"rule": "probe_accuracy", "min": 0.5}])  # minimal preset: no probes
    code, out, _ = run(capsys, ["run", str(warn), "--quiet"])
    assert (code, out) == (0, f"WARN 0 checks failed, 1 warning, 1 not evaluated — {report}\n")
    assert run(capsys, ["run", str(warn), "--quiet", "--fail-on", "warn"])[0] == 1
    results = summary_of(project / "outputs/t")["checks"]["results"]
    assert [(r["rule"], r["layer"], r["status"]) for r in results] == [
        ("dead_units", "flat", "pass"), ("dead_units", "hidden", "fail"), ("dead_units", "out", "pass"),
        ("probe_accuracy", None, "not evaluated")]
    assert results[-1]["detail"] == "the depth analysis is switched off"

    bad = pipeline(project, checks=[{"rule": "dead_units", "max": -1}])
    code, out, err = run(capsys, ["run", str(bad)])
    assert (code, out, err) == (2, "", f"error: {bad}: checks[0].max: expected greater than or equal to 0, got -1\n")


def test_check_command_reevaluates_without_tensorflow(capsys, project):
    strict = pipeline(project, checks=[{"rule": "dead_units", "max": 0.1, "layers": ["hidden"]}])
    assert main(["run", str(strict), "--quiet"]) == 1
    run_dir = project / "outputs/t"
    before = summary_of(run_dir)
    (run_dir / "summary.md").unlink()
    code = ("import sys\nfrom deeprep_report.cli import main\ncode = main(['check', sys.argv[1], '--quiet'])\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'check imported tensorflow'\n"
            "sys.exit(code)\n")
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True,
                            env=environment, cwd=run_dir, timeout=300)
    assert result.returncode == 1, result.stderr
    assert result.stdout == verdict_line(run_dir).replace(str(run_dir) + "/", "") + "\n"  # relative to the cwd
    after = summary_of(run_dir)
    assert after["checks"] == before["checks"] and (run_dir / "summary.md").is_file()
    # against a baseline given on the command line (the run itself: nothing drifted)
    assert main(["check", str(run_dir), "--baseline", str(run_dir), "--quiet"]) == 1
    compared = summary_of(run_dir)["comparison"]["pairs"][0]
    assert [layer["cka"] for layer in compared["layers"]] == pytest.approx([1.0, 1.0, 1.0], abs=1e-9)
    # other thresholds without re-running: the stored config with an override
    relaxed = run(capsys, ["check", str(run_dir), "--quiet", "--write", "--set", "checks=[{rule: dead_units, max: 0.3}]"])
    assert relaxed[:2] == (0, f"PASS 0 checks failed, 0 warnings — {run_dir}/report.html\n")
    assert summary_of(run_dir)["checks"]["definitions"][0]["max"] == 0.3
    assert run(capsys, ["check", str(run_dir), "--set", "checks=[{rule: dead}]"])[2] == (
        "error: --set checks=[{rule: dead}]: unknown rule 'dead'; expected one of: dead_units, "
        "nan_inf, saturation, collapse, probe_accuracy, probe_monotonic, drift, stat_drift, weights\n")
    missing = run(capsys, ["check", str(project / "nowhere")])
    assert missing == (2, "", f"error: {project / 'nowhere'}: no such run folder\n")
    (run_dir / "activations.h5").unlink()
    assert run(capsys, ["check", str(run_dir)]) == (
        2, "", f"error: {run_dir}: no activations.h5, so there is nothing to work from\n")


# -- baseline comparison ------------------------------------------------------------------------------------------

def test_comparison_with_itself_has_cka_one_and_no_drift(capsys, project):
    first = pipeline(project, checks=None)
    assert main(["run", str(first), "--quiet"]) == 0
    baseline = project / "outputs/t"
    second = pipeline(project, "nightly.yaml", run={"name": "nightly"})
    code, out, _ = run(capsys, ["run", str(second), "--baseline", str(baseline), "--quiet"])
    assert code == 0 and out.startswith("PASS 0 checks failed, 0 warnings")
    summary = summary_of(project / "outputs/nightly")
    comparison = summary["comparison"]
    assert comparison["baseline"]["folder"] == str(baseline.resolve())
    assert comparison["unmatched_pairs"] == {"baseline_only": [], "current_only": []}
    (pair,) = comparison["pairs"]
    assert [layer["path"] for layer in pair["layers"]] == ["flat", "hidden", "out"]
    assert pair["unmatched"] == {"baseline_only": [], "current_only": []}
    for layer in pair["layers"]:
        assert layer["cka"] == pytest.approx(1.0, abs=1e-9)
        for change in layer["stats"].values():  # None only where the statistic itself is None (unbounded)
            assert change["baseline"] == change["current"]
            expected = (None, None) if change["baseline"] is None else (0.0, 0.0)
            assert (change["change"], change["relative"]) == expected
    drift = [r for r in summary["checks"]["results"] if r["rule"] == "drift"]
    assert [r["status"] for r in drift] == ["pass"] * 3  # the default set adds drift when there is a baseline
    html = (project / "outputs/nightly/report.html").read_text()
    assert 'id="changes"' in html and html.index('id="changes"') < html.index('id="overview"')


def test_comparison_works_from_the_baseline_store_alone_and_reports_unmatched_layers(capsys, project):
    assert main(["run", str(project / "pipeline.yaml"), "--quiet"]) == 0
    (project / "model.keras").unlink()  # the baseline's model is gone: its store is enough
    renamed = keras.Sequential([keras.Input((6, 6, 2), name="pixels"), keras.layers.Flatten(name="flat"),
                                keras.layers.Dense(4, activation="relu", name="hidden2"),
                                keras.layers.Dense(3, activation="softmax", name="out")])
    renamed.save(project / "new.keras")
    current = pipeline(project, "nightly.yaml", run={"name": "nightly", "preset": "minimal"},
                       models=[{"name": "m", "path": "new.keras"}], compare={"baseline": "outputs/t"})
    assert main(["run", str(current), "--quiet"]) == 0
    (pair,) = summary_of(project / "outputs/nightly")["comparison"]["pairs"]
    assert [layer["path"] for layer in pair["layers"]] == ["flat", "out"]
    assert pair["unmatched"] == {"baseline_only": ["hidden"], "current_only": ["hidden2"]}
    assert pair["layers"][0]["cka"] == pytest.approx(1.0, abs=1e-9)  # the flattened input did not change


def test_baseline_on_other_data_or_rows_is_a_clear_error(capsys, project):
    assert main(["run", str(project / "pipeline.yaml"), "--quiet"]) == 0
    baseline = project / "outputs/t"
    np.savez(project / "data.npz", **zoo.data(60, seed=1))  # same shape, other values
    current = pipeline(project, "nightly.yaml", run={"name": "nightly"})
    code, out, err = run(capsys, ["run", str(current), "--baseline", str(baseline)])
    assert (code, out) == (2, "")
    assert re.fullmatch(rf"error: {re.escape(str(current))}: compare\.baseline: dataset 'd' differs from the baseline "
                        r"run's \(60 rows, sha256:\w{12}… here; 60 rows, sha256:\w{12}… there\): a comparison needs "
                        r"the same samples\n", err), err
    assert not (project / "outputs/nightly").exists()
    assert run(capsys, ["validate", str(current), "--baseline", str(baseline)])[2] == err  # caught before extracting
    # a finished run on other rows of the same data cannot be checked against it
    np.savez(project / "data.npz", **zoo.data(60))
    other_rows = pipeline(project, "rows.yaml", run={"name": "rows", "seed": 7},
                          datasets=[{"name": "d", "path": "data.npz", "limit": 30}])
    assert main(["run", str(other_rows), "--quiet"]) == 0
    code, out, err = run(capsys, ["check", str(project / "outputs/rows"), "--baseline", str(baseline)])
    assert (code, out) == (2, "")
    assert err == (f"error: baseline {baseline}: dataset 'd' was run on other rows than this run; a comparison needs "
                   "the same samples (run with --baseline so the baseline's rows are reused)\n")
    assert run(capsys, ["run", str(current), "--baseline", str(project / "missing")])[2] == (
        f"error: baseline {project / 'missing'}: no such run folder\n")


def reference_cka(x: np.ndarray, y: np.ndarray, debiased: bool) -> float:
    """Linear CKA from n × n Gram matrices: HSIC with the centring matrix H, or Song et al.'s unbiased HSIC."""
    k, l_ = x @ x.T, y @ y.T
    n = len(x)
    if not debiased:
        h = np.eye(n) - 1.0 / n
        hsic = lambda a, b: np.trace(a @ h @ b @ h)  # noqa: E731
    else:
        def hsic(a: np.ndarray, b: np.ndarray) -> float:
            a, b = a.copy(), b.copy()
            np.fill_diagonal(a, 0)
            np.fill_diagonal(b, 0)
            ones = np.ones(n)
            return (np.trace(a @ b) + (ones @ a @ ones) * (ones @ b @ ones) / ((n - 1) * (n - 2))
                    - 2 / (n - 2) * ones @ a @ b @ ones) / (n * (n - 3))
    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def test_two_checkpoints_of_the_demo_model_differ_as_independent_cka_says(capsys, tmp_path, demo_cache):
    from deeprep_report.sources import demo

    shutil.copy(demo.digits_cnn_path("digits_cnn_early"), tmp_path / "released.keras")
    write_pipeline(tmp_path, {"run": {"name": "release", "preset": "minimal"},
                              "models": [{"name": "digits_cnn", "path": "released.keras"}],
                              "datasets": [{"name": "digits", "builtin": "digits", "limit": 300}]}, "release.yaml")
    assert main(["run", str(tmp_path / "release.yaml"), "--quiet"]) == 0
    (tmp_path / "released.keras").unlink()
    current = write_pipeline(tmp_path, {"run": {"name": "nightly", "preset": "minimal"},
                                        "models": [{"name": "digits_cnn", "builtin": "digits_cnn"}],
                                        "datasets": [{"name": "digits", "builtin": "digits", "limit": 300,
                                                      "shuffle": True}],
                                        "compare": {"baseline": "outputs/release"}}, "nightly.yaml")
    assert main(["run", str(current), "--quiet", "--set", "run.seed=99"]) == 0  # the baseline's rows win over the seed
    (pair,) = summary_of(tmp_path / "outputs/nightly")["comparison"]["pairs"]
    with h5py.File(tmp_path / "outputs/release/activations.h5", "r") as store:
        rows = store["datasets/digits/index"][()]
    images = demo.digits()[0][rows]
    outputs = {}
    for name, path in (("early", demo.digits_cnn_path("digits_cnn_early")), ("final", demo.digits_cnn_path())):
        model = keras.models.load_model(path)
        probe = keras.Model(model.inputs, [model.get_layer(layer["path"]).output for layer in pair["layers"]])
        outputs[name] = [np.asarray(o, dtype=np.float64) for o in probe.predict(images, verbose=0)]
    expected = []
    for early, final in zip(outputs["early"], outputs["final"]):  # each layer's view: whole, or its count sketch
        spec = view_spec(early[0].size, early.ndim == 2, 2048, 0)
        early, final = (reference_view(values, spec).astype(np.float16).astype(np.float64) for values in (early, final))
        expected.append(reference_cka(early, final, debiased=True))  # 300 rows < 20 × 2,048 view dims
    found = [layer["cka"] for layer in pair["layers"]]
    assert found == pytest.approx(expected, abs=1e-3)
    assert max(found) < 1 - 1e-4  # nine more epochs changed every layer
    assert int(np.argmin(found)) == int(np.argmin(expected))


# -- caching ------------------------------------------------------------------------------------------------------

def test_a_matching_stored_pair_is_reused_unless_forced(capsys, project):
    path = str(project / "pipeline.yaml")
    assert main(["run", path, "--quiet"]) == 0
    run_dir = project / "outputs/t"
    with h5py.File(run_dir / "activations.h5", "r") as store:
        first = store["pairs/m/d/layers/hidden/pooled"][()]
    fresh = summary_of(run_dir)["pairs"][0]
    assert fresh["reused_from"] is None
    assert main(["run", path, "--quiet"]) == 0
    assert "m × d: activations reused from" in (run_dir / "run.log").read_text()
    reused = summary_of(run_dir)["pairs"][0]
    assert reused["reused_from"] == str(run_dir)
    assert [layer["stats"] for layer in reused["layers"]] == [layer["stats"] for layer in fresh["layers"]]
    assert f"activations were reused: <code>{run_dir}</code>" in (run_dir / "report.html").read_text()
    with h5py.File(run_dir / "activations.h5", "r") as store:
        np.testing.assert_array_equal(store["pairs/m/d/layers/hidden/pooled"][()], first)
        assert "datasets/d/inputs/x" in store
    elsewhere = pipeline(project, "other.yaml", run={"name": "other", "preset": "minimal"})
    assert main(["run", str(elsewhere), "--quiet"]) == 0  # a sibling run folder serves as well
    assert summary_of(project / "outputs/other")["pairs"][0]["reused_from"] == str(run_dir)
    assert main(["run", path, "--quiet", "--force"]) == 0
    assert "reused" not in (run_dir / "run.log").read_text()
    changed = pipeline(project, "bins.yaml", run={"name": "bins"}, stats={"histogram_bins": 32})
    assert main(["run", str(changed), "--quiet"]) == 0
    assert summary_of(project / "outputs/bins")["pairs"][0]["reused_from"] is None


# -- several models and datasets ----------------------------------------------------------------------------------

def test_cross_model_cka_transfer_profile_and_pairs_index(capsys, tmp_path):
    zoo.sequential().save(tmp_path / "a.keras")
    keras.utils.set_random_seed(5)
    zoo.sequential().save(tmp_path / "b.keras")
    data = zoo.data(90)
    np.savez(tmp_path / "data.npz", **data)
    np.savez(tmp_path / "task.npz", x=data["x"], y=(data["x"][:, 0, 0, 0] > 0).astype(np.int64))
    write_pipeline(tmp_path, {
        "run": {"name": "many"},
        "models": [{"name": "a", "path": "a.keras"}, {"name": "b", "path": "b.keras"}],
        "datasets": [{"name": "d", "path": "data.npz"}, {"name": "task", "path": "task.npz"}],
        "analysis": {"transfer": {"dataset": "task"}, "include_input": False},
    })
    assert main(["run", str(tmp_path / "pipeline.yaml"), "--quiet"]) == 0  # only warn checks can fail here
    run_dir = tmp_path / "outputs/many"
    summary = summary_of(run_dir)
    assert [(c["dataset"], c["models"]) for c in summary["cross_model"]] == [("d", ["a", "b"]), ("task", ["a", "b"])]
    crossed = summary["cross_model"][0]
    with StoreReader(run_dir / "activations.h5") as store:  # the layers' views, as every metric sees them
        xs = [store.view("a", "d", p)[0][()].astype(np.float64) for p in crossed["layers"][0]]
        ys = [store.view("b", "d", p)[0][()].astype(np.float64) for p in crossed["layers"][1]]
    debiased = crossed["estimator"] == "debiased"
    expected = [[reference_cka(x, y, debiased) for y in ys] for x in xs]
    assert np.asarray(crossed["matrix"]) == pytest.approx(np.asarray(expected), abs=1e-6)

    pairs = {(p["model"], p["dataset"]): p for p in summary["pairs"]}
    transfer = pairs[("a", "d")]["analysis"]["transfer"]
    task_probe = pairs[("a", "task")]["analysis"]["probe"]
    accuracies = [p["accuracy"] for p in task_probe]
    assert transfer["accuracy"] == accuracies
    assert transfer["best_layer"] == pairs[("a", "task")]["analysis"]["layers"][int(np.argmax(accuracies))]
    assert pairs[("a", "task")]["analysis"]["transfer"] is None

    html = (run_dir / "report.html").read_text()
    assert 'id="cross-model"' in html and "Linear CKA between the layers of a and the layers of b on d" in html
    assert f"Transfer to task: {transfer['best_layer']} transfers best" in html
    index = (run_dir / "index.html").read_text()
    assert re.findall(r'<a href="(report\.html#pair-\d)">([^<]+)</a>', index) == [
        ("report.html#pair-0", "a × d"), ("report.html#pair-1", "a × task"), ("report.html#pair-2", "b × d"),
        ("report.html#pair-3", "b × task")]


def test_transfer_dataset_must_exist_and_have_labels(capsys, project):
    np.savez(project / "unlabelled.npz", x=zoo.data(60)["x"])
    bad = pipeline(project, datasets=[{"name": "d", "path": "data.npz"}, {"name": "u", "path": "unlabelled.npz"}],
                   analysis={"transfer": {"dataset": "u"}})
    assert run(capsys, ["run", str(bad)])[2] == (
        f"error: {bad}: analysis.transfer.dataset: dataset 'u' has no labels; a transfer profile trains probes on "
        "them (give the dataset labels, or remove analysis.transfer)\n")
    typo = pipeline(project, analysis={"transfer": {"dataset": "dd"}})
    assert run(capsys, ["validate", str(typo)])[2] == (
        f"error: {typo}: analysis.transfer.dataset: no dataset named 'dd' (did you mean 'd'?)\n")


# -- index of run folders -----------------------------------------------------------------------------------------

def test_index_lists_run_folders_newest_first(capsys, tmp_path):
    def fake_run(folder: str, name: str, started: str, status: str | None) -> None:
        path = tmp_path / folder
        path.mkdir()
        summary = {"schema_version": 5, "run": {"name": name, "started": started}, "models": [{"name": "m"}],
                   "datasets": [{"name": "d", "fingerprint": "sha256:0", "n_rows": 1}],
                   "pairs": [{"model": "m", "dataset": "d"}]}
        if status:
            summary["checks"] = {"verdict": {"status": status, "failed": int(status == "FAIL"), "warnings": 0,
                                             "not_evaluated": 0, "passed": 3}}
        (path / "summary.json").write_text(json.dumps(summary))
        (path / "report.html").write_text("<html></html>")

    fake_run("monday", "nightly", "2026-11-23T02:00:00Z", "PASS")
    fake_run("wednesday", "nightly", "2026-11-25T02:00:00Z", "FAIL")
    fake_run("tuesday", "nightly <b>", "2026-11-24T02:00:00Z", None)
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken/summary.json").write_text("{")
    code, out, _ = run(capsys, ["index", str(tmp_path), "--quiet"])
    assert (code, out) == (0, f"done: {tmp_path / 'index.html'}\n")
    html = (tmp_path / "index.html").read_text()
    rows = re.findall(r'<td>([^<]+)</td>\s*<td><a href="([^"]+)">([^<]+)</a></td>\s*<td class="status [^"]+">([^<]+)</td>',
                      html)
    assert rows == [("2026-11-25T02:00:00Z", "./wednesday/report.html", "nightly (wednesday)", "FAIL"),
                    ("2026-11-24T02:00:00Z", "./tuesday/report.html", "nightly &lt;b&gt; (tuesday)", "no checks"),
                    ("2026-11-23T02:00:00Z", "./monday/report.html", "nightly (monday)", "PASS")]
    assert run(capsys, ["index", str(tmp_path / "none")])[0] == 2
