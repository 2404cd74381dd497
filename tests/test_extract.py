"""End-to-end extraction: what lands in activations.h5 equals an independent Keras computation,
and the stored statistics equal numpy on the full activations."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import models as zoo
from conftest import write_pipeline

keras = pytest.importorskip("keras")

from deeprep_report.cli import main  # noqa: E402
from deeprep_report.stats.views import reference_view  # noqa: E402
from deeprep_report.store import StoreReader, layer_key  # noqa: E402


@pytest.fixture(autouse=True)
def _tf(tf_quiet):
    keras.utils.set_random_seed(0)


def build(tmp_path: Path, name: str, n: int = 37, **dataset_options) -> tuple[keras.Model, dict[str, np.ndarray], Path]:
    """Save a zoo model and an .npz dataset next to a pipeline file that uses them."""
    model = getattr(zoo, name)()
    model.save(tmp_path / "model.keras")
    arrays = zoo.data(n)
    if name == "multi_input":
        arrays = {"image": arrays["x"], "meta": np.random.default_rng(1).normal(size=(n, 4)).astype(np.float32),
                  "y": arrays["y"]}
    np.savez(tmp_path / "data.npz", **arrays)
    pipeline = write_pipeline(tmp_path, {
        "run": {"name": "t", "seed": 3},
        "models": [{"name": "m", "path": "model.keras"}],
        "datasets": [{"name": "d", "path": "data.npz", **dataset_options}],
    })
    return keras.saving.load_model(tmp_path / "model.keras"), arrays, pipeline


def run(pipeline: Path, *extra: str) -> int:
    return main(["run", str(pipeline), "--quiet", *extra])


@pytest.mark.parametrize("name", ["sequential", "functional", "nested", "multi_input"])
def test_stored_activations_equal_independent_keras(tmp_path, name):
    model, arrays, pipeline = build(tmp_path, name, batch_size=8)
    assert run(pipeline, "--set", "store.full_samples=all", "--set", "analysis.view.dims=16",
               "--set", "analysis.view.dtype=float32") == 0
    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        rows = store.file["datasets/d/index"][()]
        assert sorted(rows.tolist()) == list(range(37)) and rows.tolist() != list(range(37))  # seeded shuffle
        np.testing.assert_array_equal(store.file["datasets/d/labels"][()], arrays["y"][rows])
        ordered = {key: value[rows] for key, value in arrays.items() if key != "y"}
        reference = zoo.reference_outputs(name, model, ordered)
        assert store.layers("m", "d") == list(reference)
        for path, expected in reference.items():
            group = store.layer_group("m", "d", path)
            stored = group["maps"][()] if "maps" in group else group["pooled"][()]
            np.testing.assert_allclose(stored, expected, rtol=1e-5, atol=1e-6, err_msg=path)
            if expected.ndim >= 3:  # pooled is the mean over every position of the full map
                spatial = tuple(range(1, expected.ndim - 1))
                np.testing.assert_allclose(group["pooled"][()], group["maps"][()].astype(np.float64).mean(axis=spatial),
                                           rtol=1e-6, atol=1e-7, err_msg=path)
            if expected.ndim >= 4:  # a map's peak (it ranks exemplars) is the maximum over positions of Keras's
                np.testing.assert_allclose(group["peak"][()], expected.max(axis=spatial), rtol=1e-5, atol=1e-6,
                                           err_msg=path)
            else:
                assert "peak" not in group, path
            view, spec = store.view("m", "d", path)  # the analysis view: whole, or count-sketched above 16 values
            assert spec.method == ("count_sketch" if expected[0].size > 16 else ("pooled" if expected.ndim == 2
                                                                                 else "flat")), path
            np.testing.assert_allclose(view[()], reference_view(expected, spec), rtol=1e-4, atol=1e-5, err_msg=path)
            flat = expected.reshape(-1, expected.shape[-1]).astype(np.float64)
            stats = group["stats"]
            np.testing.assert_allclose(stats["mean"][()], flat.mean(0), rtol=1e-5, atol=1e-6, err_msg=path)
            np.testing.assert_allclose(stats["std"][()], flat.std(0), rtol=1e-5, atol=1e-6, err_msg=path)
            np.testing.assert_allclose(stats["min"][()], flat.min(0), rtol=1e-5, atol=1e-6, err_msg=path)
            np.testing.assert_allclose(stats["max"][()], flat.max(0), rtol=1e-5, atol=1e-6, err_msg=path)
            np.testing.assert_allclose(stats["zero_fraction"][()], (flat == 0).mean(0), err_msg=path)


def test_statistics_equal_numpy_on_stored_full_maps_for_several_batch_sizes(tmp_path):
    """Same data, batch sizes with and without a partial last batch: identical statistics."""
    results = []
    _, _, pipeline = build(tmp_path, "sequential", n=50)
    for batch in (1, 7, 16, 64):
        out = tmp_path / f"b{batch}"
        assert run(pipeline, "--out", str(out), "--set", "store.full_samples=all", "--set", "report.enabled=false",
                   "--set", f"datasets[0].batch_size={batch}") == 0
        with StoreReader(out / "activations.h5") as store:
            group = store.layer_group("m", "d", "conv")
            full = group["maps"][()].astype(np.float64).reshape(-1, 4)
            np.testing.assert_allclose(group["stats/mean"][()], full.mean(0), rtol=1e-6)
            np.testing.assert_allclose(group["stats/std"][()], full.std(0), rtol=1e-6)
            histogram = store.histogram("m", "d", "conv")
            np.testing.assert_array_equal(histogram.counts, np.histogram(full, bins=histogram.edges)[0])
            results.append((group["stats/mean"][()], histogram.counts, histogram.exponent))
    for mean, counts, exponent in results[1:]:
        np.testing.assert_allclose(mean, results[0][0], rtol=1e-12)
        np.testing.assert_array_equal(counts, results[0][1])
        assert exponent == results[0][2]


def test_full_samples_limit_dtype_and_compression(tmp_path):
    _, _, pipeline = build(tmp_path, "sequential", n=30, batch_size=8)
    assert run(pipeline, "--set", "store.full_samples=10", "--set", "store.dtype=float16",
               "--set", "store.compression=gzip", "--set", "datasets[0].limit=20") == 0
    with h5py.File(tmp_path / "outputs/t/activations.h5") as handle:
        conv = handle[f"pairs/m/d/layers/{layer_key('conv')}"]
        assert conv["maps"].shape == (10, 4, 4, 4) and conv["maps"].dtype == np.float16
        assert conv["pooled"].shape == (20, 4) and conv["pooled"].compression == "gzip"
        assert "maps" not in handle["pairs/m/d/layers/hidden"]  # a dense layer's pooled is its activation
        assert handle["datasets/d/inputs/x"].shape == (20, 6, 6, 2)
        assert handle.attrs["format"] == "deeprep-activations" and handle.attrs["format_version"] == 3
        assert conv["peak"].shape == (20, 4)  # every sample's, however few full maps are kept


def test_peaks_are_stored_without_any_full_map(tmp_path):
    """Exemplars of a map layer rank by the peak even when no full map is kept (store.full_samples: 0)."""
    model, arrays, pipeline = build(tmp_path, "sequential", n=12, batch_size=5)
    assert run(pipeline, "--set", "store.full_samples=0", "--set", "report.enabled=false") == 0
    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        rows = store.file["datasets/d/index"][()]
        group = store.layer_group("m", "d", "conv")
        assert "maps" not in group
        maps = zoo.reference_outputs("sequential", model, {"x": arrays["x"][rows]})["conv"]
        np.testing.assert_allclose(group["peak"][()], maps.max(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_selected_layers_only_and_provenance(tmp_path):
    _, _, pipeline = build(tmp_path, "sequential")
    assert run(pipeline, "--set", "models[0].layers=[conv, 'h*']") == 0
    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        assert store.layers("m", "d") == ["conv", "hidden"]
        root = store.attrs()
        assert root["tool_version"] and root["created"].endswith("Z") and root["finished"].endswith("Z")
        assert "layers:" in root["config"] and store.json_attr("/", "packages")["keras"].startswith("3.")
        model = store.attrs("models/m")
        assert model["fingerprint"].startswith("sha256:") and len(model["fingerprint"]) == 71
        assert store.attrs("datasets/d")["fingerprint"].startswith("sha256:")


def test_hdf5_dataset_and_legacy_h5_model(tmp_path):
    model = zoo.sequential()
    model.save(tmp_path / "model.h5")
    arrays = zoo.data(20)
    with h5py.File(tmp_path / "data.h5", "w") as handle:
        handle["images"] = arrays["x"]
        handle["labels"] = arrays["y"]
    pipeline = write_pipeline(tmp_path, {
        "run": {"name": "t"}, "models": [{"name": "m", "path": "model.h5", "layers": ["out"]}],
        "datasets": [{"name": "d", "path": "data.h5", "x": "images", "y": "labels", "batch_size": 6}],
    })
    assert run(pipeline) == 0
    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        rows = store.file["datasets/d/index"][()]
        expected = model.predict(arrays["x"][rows], verbose=0)
        np.testing.assert_allclose(store.layer_group("m", "d", "out")["pooled"][()], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(store.file["datasets/d/labels"][()], arrays["y"][rows])


def test_image_folder_dataset(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(tmp_path / "images" / label / f"{i}.png")
    x = keras.Input((6, 6, 3))
    model = keras.Model(x, keras.layers.Conv2D(2, 3, name="conv")(x))
    model.save(tmp_path / "model.keras")
    pipeline = write_pipeline(tmp_path, {
        "run": {"name": "t"}, "models": [{"name": "m", "path": "model.keras"}],
        "datasets": [{"name": "pets", "path": "images", "rescale": "1/255", "shuffle": False}],
    })
    assert run(pipeline) == 0
    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        assert store.json_attr("datasets/pets", "class_names") == ["cat", "dog"]
        assert store.file["datasets/pets/labels"][()].tolist() == [0, 0, 0, 1, 1, 1]
        first = np.asarray(Image.open(tmp_path / "images/cat/0.png"), dtype=np.float32) / 255
        np.testing.assert_allclose(store.file["datasets/pets/inputs/x"][0], first, rtol=1e-6)
        expected = np.asarray(model(first[None]))
        np.testing.assert_allclose(store.layer_group("m", "pets", "conv")["maps"][0], expected[0], rtol=1e-5, atol=1e-6)


def test_savedmodel_exposes_its_outputs(tmp_path):
    model = zoo.sequential()
    model.export(tmp_path / "exported", verbose=False)
    np.savez(tmp_path / "data.npz", **zoo.data(10))
    pipeline = write_pipeline(tmp_path, {
        "run": {"name": "t"}, "models": [{"name": "m", "path": "exported", "allow_saved_model_code": True}],
        "datasets": [{"name": "d", "path": "data.npz"}],
    })
    assert run(pipeline) == 0
    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        assert store.layers("m", "d") == ["saved_model"]
        rows = store.file["datasets/d/index"][()]
        expected = model.predict(zoo.data(10)["x"][rows], verbose=0)
        np.testing.assert_allclose(store.layer_group("m", "d", "saved_model")["pooled"][()], expected, rtol=1e-5, atol=1e-6)


def test_application_and_factory_models(tmp_path):
    (tmp_path / "netlib.py").write_text(
        "import keras\n"
        "def build(width=3):\n"
        "    x = keras.Input((6, 6, 2))\n"
        "    return keras.Model(x, keras.layers.Dense(width, name='proj')(keras.layers.Flatten(name='f')(x)))\n",
        encoding="utf-8")
    np.savez(tmp_path / "data.npz", **zoo.data(8))
    np.savez(tmp_path / "rgb.npz", x=np.random.default_rng(0).random((4, 32, 32, 3)).astype(np.float32))
    pipeline = write_pipeline(tmp_path, {
        "run": {"name": "t"},
        "models": [
            {"name": "fac", "factory": "netlib:build", "options": {"width": 5}},
            {"name": "mnet", "application": "MobileNetV2",
             "options": {"input_shape": [32, 32, 3], "alpha": 0.35, "include_top": False}, "layers": ["Conv1"]},
        ],
        "datasets": [{"name": "d", "path": "data.npz"}, {"name": "rgb", "path": "rgb.npz"}],
    })
    assert run(pipeline) == 0
    with StoreReader(tmp_path / "outputs/t/activations.h5") as store:
        assert store.pairs() == [("fac", "d"), ("mnet", "rgb")]
        assert store.layer_group("fac", "d", "proj")["pooled"].shape == (8, 5)
        assert store.layer_group("mnet", "rgb", "Conv1")["maps"].shape == (4, 16, 16, 16)
