"""Every depth metric sees the layer's real representation: the analysis views and their oracles.

A view is the flattened activation, or its count sketch above ``analysis.view.dims``; the probes are ridge
regressions from additive statistics with a GCV-chosen penalty; CKA comes from one Gram matrix per layer.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.metrics import silhouette_score

from deeprep_report.analysis import cka, classes, interpret, probes
from deeprep_report.cli import main
from deeprep_report.extract.views import LayerView
from deeprep_report.stats.views import COUNT_SKETCH, FLAT, ViewSpec, reference_view, view_spec
from deeprep_report.store import StoreReader

from conftest import write_pipeline

PENALTIES = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]


# -- the view itself -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch", [1, 7, 64])
def test_sketch_kernel_equals_numpy_and_is_linear(batch):
    rng = np.random.default_rng(batch)
    spec = view_spec(6 * 5 * 4, False, 32, seed=3)
    assert spec.method == COUNT_SKETCH and spec.dims == 32
    x, y = rng.normal(size=(2, batch, 6, 5, 4)).astype(np.float32)
    view = LayerView(spec)
    np.testing.assert_allclose(view.apply(x), reference_view(x, spec), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(view.apply(2 * x - 3 * y), 2 * view.apply(x) - 3 * view.apply(y), rtol=1e-4, atol=1e-4)


def test_small_layers_enter_whole_and_the_sketch_preserves_inner_products_on_average():
    assert view_spec(800, False, 1024, 0) == ViewSpec(FLAT, 800, 800, 0)
    assert view_spec(800, True, 1024, 0).method == "pooled"
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 1, 5000))
    b = 0.6 * a + 0.8 * b
    estimates = [float(reference_view(a, s)[0] @ reference_view(b, s)[0])
                 for s in (view_spec(5000, True, 256, seed) for seed in range(200))]
    assert np.mean(estimates) == pytest.approx(float(a[0] @ b[0]), rel=0.05)  # unbiased: E⟨Sx, Sy⟩ = ⟨x, y⟩
    assert ViewSpec(COUNT_SKETCH, 5000, 256, 1).comparable(ViewSpec(COUNT_SKETCH, 5000, 256, 1))
    assert not ViewSpec(COUNT_SKETCH, 5000, 256, 1).comparable(ViewSpec(COUNT_SKETCH, 5000, 256, 2))


# -- probes ----------------------------------------------------------------------------------------------------

def _task(seed: int = 0, n: int = 400, dims: int = 30) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(4), n // 4)
    x = rng.normal(size=(n, dims))
    x[:, :4] += 1.2 * np.eye(4)[labels]
    return x, labels


def test_ridge_fit_equals_sklearn_ridge_and_statistics_merge_exactly():
    x, labels = _task()
    classes_ = np.unique(labels)
    y = probes.one_hot(labels, classes_)
    whole = probes.RidgeStatistics(x.shape[1], 4, x[0]).add(x, y)
    halves = probes.RidgeStatistics(x.shape[1], 4, x[0]).add(x[:150], y[:150]).merge(
        probes.RidgeStatistics(x.shape[1], 4, x[0]).add(x[150:], y[150:]))
    for name in ("sum_x", "xtx", "xty", "yty"):
        np.testing.assert_allclose(getattr(halves, name), getattr(whole, name), rtol=1e-12, atol=1e-9)
    fit = probes.fit_ridge(whole, [0.3])
    scale = np.trace(np.cov(x.T, bias=True)) * len(x)
    reference = Ridge(alpha=0.3 * scale).fit(x, y)
    np.testing.assert_allclose(x @ fit.weights + fit.intercept, reference.predict(x), rtol=1e-6, atol=1e-8)


def test_dual_fit_equals_the_primal_fit():
    """Fewer rows than dims: the Gram-side fit is the same ridge as the one from the statistics."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(60, 200)) + 3.0
    labels = rng.integers(0, 3, 60)
    x[:, 0] += labels
    y = probes.one_hot(labels, np.unique(labels))
    primal = probes.fit_ridge(probes.RidgeStatistics(200, 3, x[0]).add(x, y), PENALTIES)
    dual = probes.fit_ridge_dual(x, y, PENALTIES)
    assert dual.penalty == primal.penalty and dual.gcv == pytest.approx(primal.gcv, rel=1e-9)
    np.testing.assert_allclose(x @ dual.weights + dual.intercept, x @ primal.weights + primal.intercept, atol=1e-9)


def test_gcv_choice_equals_the_explicit_hat_matrix():
    x, labels = _task(1, n=120, dims=10)
    y = probes.one_hot(labels, np.unique(labels))
    chosen = probes.fit_ridge(probes.RidgeStatistics(10, 4, x[0]).add(x, y), PENALTIES)
    centred, targets = x - x.mean(0), y - y.mean(0)
    scale = np.trace(centred.T @ centred)
    scores = {}
    for penalty in PENALTIES:
        hat = centred @ np.linalg.solve(centred.T @ centred + penalty * scale * np.eye(10), centred.T)
        residual = ((targets - hat @ targets) ** 2).sum()
        scores[penalty] = (residual / len(x)) / (1 - (np.trace(hat) + 1) / len(x)) ** 2
    assert chosen.penalty == min(scores, key=scores.get)
    assert chosen.gcv == pytest.approx(scores[chosen.penalty], rel=1e-8)


def test_probe_ignores_constant_and_duplicated_columns_and_reads_a_separable_image_task():
    x, labels = _task(2)
    train, test = probes.split(labels, 0.2, 0)
    base = probes.linear_probe(x, labels, train, test, penalties=PENALTIES, bootstrap=0, seed=0)
    padded = np.concatenate([x, np.full((len(x), 50), 7.0), 1e-14 * np.random.default_rng(0).normal(size=(len(x), 5))],
                            axis=1)
    wider = probes.linear_probe(padded, labels, train, test, penalties=PENALTIES, bootstrap=0, seed=0)
    assert (wider.accuracy, wider.penalty) == (base.accuracy, base.penalty)  # no weight on what does not vary
    doubled = probes.linear_probe(np.concatenate([x, x[:, :3]], axis=1), labels, train, test, penalties=PENALTIES,
                                  bootstrap=0, seed=0)
    assert doubled.accuracy >= base.accuracy - 1 / len(test) - 1e-9  # at most one test sample
    # an "image" task of 28 x 28 pixels whose class is a faint pixel pattern: linearly separable, 784 > n_train
    rng = np.random.default_rng(5)
    patterns = rng.normal(size=(3, 784))
    image_labels = np.repeat(np.arange(3), 120)
    images = 0.4 * patterns[image_labels] + rng.normal(size=(360, 784))
    train, test = probes.split(image_labels, 0.2, 0)
    image = probes.linear_probe(images, image_labels, train, test, penalties=PENALTIES, bootstrap=0, seed=0)
    assert image.accuracy >= 0.95
    assert probes.linear_probe(np.ones((360, 4)), image_labels, train, test, penalties=PENALTIES, bootstrap=0,
                               seed=0) is None  # a constant layer is not a number


# -- CKA, class structure, sentences -----------------------------------------------------------------------------

def test_gram_stack_on_disk_equals_in_memory_and_the_exact_matrix(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    layers = [rng.normal(size=(60, 5)), rng.normal(size=(60, 40)), rng.normal(size=(60, 3))]
    layers[2] = layers[0][:, :3] + 0.1 * layers[2]
    exact = np.array([[cka.linear_cka(a, b, debiased=True) for b in layers] for a in layers])
    monkeypatch.setattr(cka.GramStack, "MEMORY_BYTES", 1)
    stack = cka.GramStack(3, 60, True, str(tmp_path))
    for layer in layers:
        stack.add(layer)
    assert stack._file is not None and list(tmp_path.iterdir())
    terms = stack.self_terms()
    np.testing.assert_allclose(cka.similarity(stack.inner(), terms, terms), exact, atol=1e-5)
    stack.close()
    assert not list(tmp_path.iterdir())
    assert np.isnan(cka.cka_matrix([layers[0], np.ones((60, 2))], debiased=False)[0, 1])


def test_silhouette_equals_sklearn_and_selectivity_stays_in_its_range():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 6))
    y = rng.integers(0, 4, 300)
    x[y == 2] += 1.5
    assert classes.silhouette(x, y, 1000, 0) == pytest.approx(silhouette_score(x, y), abs=1e-9)
    pooled = np.abs(rng.normal(size=(300, 5)))
    pooled[:, 4] -= 1.0  # takes negative values: the index is undefined there
    index = classes.selectivity(pooled, y)
    assert np.all((index[:4] >= 0) & (index[:4] <= 1)) and np.isnan(index[4])


def test_no_sentence_prints_nan():
    names = ["input", "a", "b"]
    matrix = [[1.0, 0.5, float("nan")], [0.5, 1.0, None], [float("nan"), None, 1.0]]
    analysis = {"layers": names, "cka": {"matrix": matrix}, "constant": [False, False, True],
                "views": [{"layer": n, "method": "flat", "input_dims": 4, "dims": 4} for n in names]}
    text = " ".join(interpret.paragraph(analysis, None))
    assert "nan" not in text.lower() and "b is constant" in text and "Every layer entered whole" in text


# -- on the demo and on a task only positions can tell --------------------------------------------------------------

def test_demo_profile_is_continuous_across_conv_pooling_flatten_and_dense(demo_run):
    summary = json.loads((demo_run[0] / "summary.json").read_text())
    analysis = next(p for p in summary["pairs"] if p["model"] == "digits_cnn")["analysis"]
    names, matrix = analysis["layers"], np.array(analysis["cka"]["matrix"], dtype=float)
    at = {name: i for i, name in enumerate(names)}
    assert matrix[at["pool2"], at["flatten"]] >= 0.99
    assert matrix[at["flatten"], at["dropout"]] == pytest.approx(1.0, abs=1e-6)
    accuracy = {name: p["accuracy"] for name, p in zip(names, analysis["probe"])}
    assert abs(accuracy["pool2"] - accuracy["flatten"]) <= 0.01
    assert accuracy["conv1"] >= accuracy["input"] - 0.02  # no V-shape made by pooling channels away
    views = {v["layer"]: v for v in analysis["views"]}
    assert views["conv1"]["method"] == "count_sketch" and views["conv1"]["input_dims"] == 26 * 26 * 16
    assert views["pool1"]["method"] == "count_sketch" and views["conv1"]["dims"] == 2048
    assert views["pool2"]["method"] == "flat" and views["dense_1"]["method"] == "pooled"


def test_sketched_cka_is_within_002_of_the_exact_flattened_cka(demo_run, tf_quiet):
    """The exact value is computed here from Keras on the same rows, whole flattened maps of every layer."""
    import keras

    from deeprep_report.sources import demo

    run_dir = demo_run[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    analysis = next(p for p in summary["pairs"] if p["model"] == "digits_cnn")["analysis"]
    with h5py.File(run_dir / "activations.h5") as store:
        inputs = store["datasets/digits/inputs/x"][()]
    model = keras.saving.load_model(demo.digits_cnn_path())
    tap = keras.Model(model.inputs, [model.get_layer(name).output for name in analysis["layers"][1:]])
    flat = [inputs.reshape(len(inputs), -1)] + [np.asarray(o).reshape(len(inputs), -1) for o in tap([inputs])]
    rows = cka.sample_rows(np.arange(len(inputs)), 2000, 0)
    exact = cka.cka_matrix([f[rows].astype(np.float64) for f in flat], debiased=True)
    stored = np.array(analysis["cka"]["matrix"], dtype=float)
    assert np.abs(stored - exact).max() <= 0.02


def test_conv_layers_read_where_a_blob_is_although_channel_means_cannot(tmp_path, tf_quiet):
    import keras

    rng = np.random.default_rng(0)
    n = 400
    labels = rng.integers(0, 4, n)
    images = rng.normal(0, 0.05, size=(n, 16, 16, 1)).astype(np.float32)
    for i, quadrant in enumerate(labels):
        r, c = divmod(int(quadrant), 2)
        y0, x0 = 8 * r + rng.integers(1, 5), 8 * c + rng.integers(1, 5)
        images[i, y0 : y0 + 3, x0 : x0 + 3, 0] += 1.0
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 1), name="image"),
                              keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv"),
                              keras.layers.GlobalAveragePooling2D(name="gap")])
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=images, y=labels)
    pipeline = write_pipeline(tmp_path, {"run": {"name": "q"}, "models": [{"name": "m", "path": "model.keras"}],
                                         "datasets": [{"name": "d", "path": "data.npz"}]})
    assert main(["run", str(pipeline), "--quiet"]) == 0
    summary = json.loads((tmp_path / "outputs/q/summary.json").read_text())
    analysis = summary["pairs"][0]["analysis"]
    accuracy = {name: p["accuracy"] for name, p in zip(analysis["layers"], analysis["probe"])}
    assert accuracy["conv"] >= 0.9
    with StoreReader(tmp_path / "outputs/q/activations.h5") as store:
        means = store.layer_group("m", "d", "conv")["pooled"][()]
        stored_labels = store.file["datasets/d/labels"][()]
    train, test = probes.split(stored_labels, 0.2, 0)
    channel_means = probes.linear_probe(means, stored_labels, train, test, penalties=PENALTIES, bootstrap=0, seed=0)
    assert channel_means.accuracy < 0.5 and accuracy["gap"] < 0.5  # pooled away: only chance is left


def test_a_constant_layer_is_a_finding_not_a_number():
    from deeprep_report.audit.findings import find

    stats = {"dead_units": 0, "dead_fraction": 0.0, "nonfinite_count": 0, "nonfinite_fraction": 0.0,
             "saturation_fraction": None, "values": 10}
    summary = {"datasets": [{"name": "d", "nonfinite_inputs": 0}],
               "models": [{"name": "m", "skipped_layers": [], "baseline_of": None}],
               "pairs": [{"model": "m", "dataset": "d",
                          "layers": [{"path": p, "units": 2, "stats": stats, "dead_unit_indices": [],
                                      "activation": None} for p in ("a", "b")],
                          "analysis": {"layers": ["input", "a", "b"], "constant": [False, False, True]}}]}
    found = find(summary, 0.5, {("m", "d", "b"): "layer-b"})
    assert [(f.kind, f.where, f.anchor) for f in found] == [("constant layer", "m × d / b", "layer-b")]


def test_runs_written_before_views_still_render_check_and_serve_as_baselines(demo_run, tmp_path, capsys):
    """An older run: its stored config has retired probe and CKA keys, its store no views (format 1)."""
    import shutil

    import yaml

    old = tmp_path / "old"
    shutil.copytree(demo_run[0], old)
    with h5py.File(old / "activations.h5", "r+") as store:
        config = yaml.safe_load(store.attrs["config"])
        config["analysis"]["probes"].update({"cs": [0.1, 1.0], "folds": 3, "max_dims": 2000})
        config["analysis"]["cka"]["minibatch_above"] = 10000
        store.attrs["config"] = yaml.safe_dump(config)
        store.attrs["format_version"] = 1

        def strip(name: str, node: object) -> None:
            if isinstance(node, h5py.Group):
                for key in [k for k in node.attrs if k.startswith("view_")]:
                    del node.attrs[key]

        store.visititems(strip)
        for group in [store[f"pairs/{m}/digits/layers"] for m in ("digits_cnn", "digits_cnn@random")]:
            for path in list(group):
                if "view" in group[path]:
                    del group[path]["view"]
        del store["datasets/digits/views"]
    assert main(["render", str(old), "--quiet"]) == 0
    assert main(["check", str(old), "--quiet"]) == 0
    current = tmp_path / "current"
    shutil.copytree(demo_run[0], current)
    capsys.readouterr()
    assert main(["check", str(current), "--baseline", str(old), "--quiet"]) == 0
    (pair,) = json.loads((current / "summary.json").read_text())["comparison"]["pairs"]
    assert pair["notes"] and "channel means" in pair["notes"][0]
    assert all(layer["cka"] == pytest.approx(1.0, abs=1e-6) for layer in pair["layers"])  # the same model and rows


def test_the_analysis_reports_progress_per_family(demo_run, tmp_path, caplog):
    """Without a terminal: one log line per pair naming each family's time (a bar counts layers on a terminal)."""
    import logging
    import shutil

    from deeprep_report.analysis.depth import analyze_pairs
    from deeprep_report.config import AnalysisSection

    shutil.copy(demo_run[0] / "activations.h5", tmp_path / "a.h5")
    with caplog.at_level(logging.INFO, logger="deeprep"), StoreReader(tmp_path / "a.h5", "r+") as store:
        analyze_pairs(store, AnalysisSection(random_baseline=True), 0, bar=False)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("depth analysis ")]
    assert [line.split(":")[0] for line in lines] == ["depth analysis digits_cnn × digits",
                                                      "depth analysis digits_cnn@random × digits"]
    assert all(all(f"{family} " in line and line.endswith(" s") for family in ("probes", "cka", "geometry", "classes"))
               for line in lines)
