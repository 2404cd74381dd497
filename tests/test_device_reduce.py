"""``extract.reduce: device`` against ``host``: the same store, number for number.

Both paths run on this CPU (TensorFlow ops in the compiled forward pass vs numpy/numba on the outputs), so every
stored array of one can be compared with the other's. What is exact and what is not, and why:

* counts (finite values, zeros, NaN/Inf, saturated), extrema, peaks, flat views, full maps, histogram counts and
  windows: exactly equal (the same comparisons on the same exactly widened float64 values; maps are copies);
* pooled values: float64 sums over positions in another order, rounded to float32 — equal here, allowed one
  float32 rounding (rtol 1e-6) because a float64 sum of float32 values is exact only when their exponents span
  under ~29 bits less the log2 of the positions;
* moments: float64 shifted sums in another order: rtol 1e-12 (relative error of a float64 sum ~ n·2**-53);
  ``m2`` compared against the scale of the unit (mean² + variance) · count, where cancellation is bounded;
* count-sketched views: float32 sequential sums on the host vs float64 on the device: rtol 1e-5 of the row's
  largest absolute contribution.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

import models as zoo
from conftest import write_pipeline

keras = pytest.importorskip("keras")

from deeprep_report.cli import main  # noqa: E402
from deeprep_report.config.sections import ViewSection  # noqa: E402
from deeprep_report.extract import device  # noqa: E402
from deeprep_report.extract.accumulate import LayerAccumulator  # noqa: E402
from deeprep_report.extract.views import LayerView  # noqa: E402

layers = keras.layers
EXACT = ("maps", "peak", "moments/count", "moments/min", "moments/max", "moments/zeros", "moments/nonfinite",
         "moments/saturated", "histogram/counts", "stats/min", "stats/max", "stats/dead", "stats/zero_fraction",
         "stats/nonfinite_fraction", "stats/saturation_fraction", "tokens")


@pytest.fixture(autouse=True)
def _tf(tf_quiet):
    keras.utils.set_random_seed(0)


def vector_model() -> keras.Model:
    """Dense layers only, one bounded (sigmoid: saturation counts) and one ReLU (exact zeros)."""
    return keras.Sequential([
        keras.Input((6,), name="features"),
        layers.Dense(12, activation="relu", name="relu"),
        layers.Dense(7, activation="sigmoid", name="gate"),
        layers.Dense(3, activation="softmax", name="out"),
    ], name="vec")


def sequence_model() -> keras.Model:
    ids = keras.Input((12,), dtype="int32", name="ids")
    h = layers.Embedding(30, 8, mask_zero=True, name="emb")(ids)
    h = layers.Conv1D(6, 3, padding="same", activation="relu", name="conv")(h)
    h = layers.GlobalAveragePooling1D(name="pool")(h)
    return keras.Model(ids, layers.Dense(3, activation="softmax", name="out")(h))


def token_data(n: int = 40) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = np.zeros((n, 12), dtype=np.int32)
    for row, length in enumerate(rng.integers(2, 13, size=n)):
        x[row, :length] = rng.integers(1, 30, size=length)
    return {"x": x, "y": (x[:, 0] % 3).astype(np.int64)}


def both(tmp_path: Path, model: keras.Model, arrays: dict[str, np.ndarray], batch: int, *extra: str,
         **dataset: object) -> tuple[h5py.File, h5py.File, Path]:
    """The same pipeline extracted with reduce host and device, into two run folders (not reusing each other)."""
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", **arrays)
    pipeline = write_pipeline(tmp_path, {
        "run": {"name": "t", "seed": 3}, "models": [{"name": "m", "path": "model.keras"}],
        "datasets": [{"name": "d", "path": "data.npz", "batch_size": batch, **dataset}],
        "store": {"full_samples": 20}, "report": {"enabled": False},
        "analysis": {"view": {"dims": 16, "dtype": "float32"}},
    })
    for reduce in ("host", "device"):
        code = main(["run", str(pipeline), "--quiet", "--force", "--out", str(tmp_path / reduce / "run"),
                     "--set", f"extract.reduce={reduce}", *extra])
        assert code in (0, 1), reduce  # 1: a check failed (NaN inputs), the store is written all the same
    return (h5py.File(tmp_path / "host/run/activations.h5"), h5py.File(tmp_path / "device/run/activations.h5"),
            tmp_path / "device/run")


def layer_groups(store: h5py.File) -> dict[str, h5py.Group]:
    pair = store["pairs/m/d"]
    return {path: pair["layers/" + path] for path in json.loads(pair.attrs["layers"])}


def assert_same_layer(path: str, host: h5py.Group, dev: h5py.Group) -> None:
    members: list[str] = []
    host.visit(lambda name: members.append(name) if isinstance(host[name], h5py.Dataset) else None)
    found: list[str] = []
    dev.visit(lambda name: found.append(name) if isinstance(dev[name], h5py.Dataset) else None)
    assert sorted(members) == sorted(found), path
    for name in members:
        a, b = host[name][()], dev[name][()]
        where = f"{path}/{name}"
        if name in EXACT or name.startswith("contexts/") or (name == "view" and dev.attrs["view_method"] == "flat"):
            np.testing.assert_array_equal(a, b, err_msg=where)
        elif name == "pooled":
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=0, err_msg=where)
        elif name == "view":  # a count sketch: float32 sequential sums on the host, float64 on the device
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * np.abs(a).max(), err_msg=where)
        elif name in ("moments/mean", "stats/mean"):
            scale = np.abs(a) + np.sqrt(host["moments/m2"][()] / np.maximum(host["moments/count"][()], 1))
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12 * scale.max(), err_msg=where)
        elif name in ("moments/m2", "stats/std"):
            count = np.maximum(host["moments/count"][()], 1)
            second = (host["moments/mean"][()] ** 2 + host["moments/m2"][()] / count) * count
            scale = second if name == "moments/m2" else np.sqrt(second / count)
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12 * scale.max() + 1e-300, err_msg=where)
        else:  # selectivity and other derived statistics: from the stored pooled values
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-9, err_msg=where)
    hist = "histogram/counts"
    assert (host[hist].attrs["exponent"], host[hist].attrs["start"]) == (dev[hist].attrs["exponent"],
                                                                          dev[hist].attrs["start"]), path
    assert host.attrs["reduced_on"] == "host" and "reduce_note" not in host.attrs, path
    for key in set(host.attrs) - {"reduced_on", "reduce_note"}:
        assert str(host.attrs[key]) == str(dev.attrs[key]), (path, key)


@pytest.mark.parametrize("batch", [8, 37])
def test_conv_model_reduced_on_the_device_equals_the_host(tmp_path, batch):
    """Conv2D (ReLU) → max pooling → flatten → dense: maps, peaks, sketches; full maps of the first 20 samples
    (some batches carry full outputs, the others none)."""
    host, dev, _ = both(tmp_path, zoo.sequential(), zoo.data(37), batch)
    with host, dev:
        groups = layer_groups(dev)
        assert list(groups) == ["conv", "pool", "flat", "hidden", "out"]
        for path, group in layer_groups(host).items():
            assert_same_layer(path, group, groups[path])
            assert groups[path].attrs["reduced_on"] == "device" and "reduce_note" not in groups[path].attrs
        assert groups["conv"].attrs["view_method"] == "count_sketch" and groups["pool"].attrs["view_method"] == "flat"
        assert dev["pairs/m/d/layers/conv/maps"].shape[0] == 20


def test_vector_model_with_nan_inf_and_saturation_equals_the_host(tmp_path):
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(45, 6)) * 4).astype(np.float32)
    x[5, 2], x[17, 0], x[30, :] = np.nan, np.inf, -np.inf  # non-finite outputs in some batches
    host, dev, _ = both(tmp_path, vector_model(), {"x": x, "y": rng.integers(0, 3, 45)}, 10)
    with host, dev:
        groups = layer_groups(dev)
        for path, group in layer_groups(host).items():
            assert_same_layer(path, group, groups[path])
            assert groups[path].attrs["reduced_on"] == "device"
        gate = groups["gate"]
        assert gate["moments/saturated"][()].sum() > 0 and gate["moments/nonfinite"][()].sum() > 0
        assert groups["relu"]["moments/zeros"][()].sum() > 0


def test_token_aligned_layers_stay_on_the_host_with_a_note(tmp_path):
    host, dev, folder = both(tmp_path, sequence_model(), token_data(), 16)
    with host, dev:
        groups = layer_groups(dev)
        for path, group in layer_groups(host).items():
            assert_same_layer(path, group, groups[path])
        for path in ("emb", "conv"):  # (tokens, units) per sample: masked statistics, token rows, contexts
            assert groups[path].attrs["reduced_on"] == "host" and groups[path].attrs["masked"]
            assert groups[path].attrs["reduce_note"].startswith("token-aligned sequence layer")
        for path in ("pool", "out"):
            assert groups[path].attrs["reduced_on"] == "device" and "reduce_note" not in groups[path].attrs
    log = (folder / "run.log").read_text(encoding="utf-8")
    assert "layer conv reduced on the host, not the device: token-aligned" in log


def test_histogram_windows_subnormals_and_stale_guesses_fold_exactly():
    """Batch by batch against ``LayerAccumulator.update`` on the same values: the window grows and moves, values
    are NaN, ±Inf, ±0 and float32 subnormals (which TensorFlow's CPU kernels flush to zero), and the window
    guessed for a batch is sometimes stale. Every state the accumulator keeps is bit-equal after every batch."""
    import tensorflow as tf

    shape, bins, thresholds = (5, 3), 16, (0.05, 0.95)
    layer = device.DeviceLayer("x", shape, 3, 5, bins, thresholds, LayerView.of(shape, ViewSection(dims=16)))
    reduce = tf.function(lambda y, first, shift, window: device.reduce_layer(y, layer, first, shift, window),
                         autograph=False)
    histogram = device.histogram_function(bins)
    host, dev = LayerAccumulator(3, bins, thresholds), LayerAccumulator(3, bins, thresholds)
    rng = np.random.default_rng(4)
    tiny = np.float32(math.ldexp(1.0, -140))
    batches = [rng.uniform(0, 1, (4, 5, 3)), rng.uniform(-5, 3, (6, 5, 3)), rng.uniform(0.2, 0.8, (3, 5, 3)),
               rng.normal(0, 1e3, (5, 5, 3)), rng.uniform(0, 1, (2, 5, 3))]
    batches = [b.astype(np.float32) for b in batches]
    batches[0][0, 0, 1] = -tiny  # a subnormal as the first value: the shift itself
    batches[2][1, 2] = [np.nan, np.inf, -0.0]
    batches[3][0, :, 0] = [tiny, -tiny, 0.0, np.float32(1e-30), -np.inf]
    batches[4][:] = 0.5
    shift, stale = np.zeros(0), (0, 0)
    for number, y in enumerate(batches):
        guess = stale if number == 3 else dev.window  # batch 3: the guess is the first batch's window
        exponent, start = guess
        out = reduce(y, np.bool_(number == 0), shift, np.array([math.ldexp(1.0, -exponent), start - 1.0]))
        shift = out["shift"]
        pooled, peak, view = device.fold_layer(out, layer, dev, guess, histogram)
        expected_pooled, expected_peak = host.update(y)
        stale = host.window if number == 0 else stale
        np.testing.assert_array_equal(pooled, expected_pooled)
        np.testing.assert_array_equal(view, layer.view.apply(y))
        assert peak is None  # rank 3: no peaks stored
        for a, b in zip(host._totals[:1] + host._totals[3:], dev._totals[:1] + dev._totals[3:]):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(dev._totals[1], host._totals[1], rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(dev._totals[2], host._totals[2], rtol=1e-12)
        np.testing.assert_array_equal(dev._codes, host._codes, err_msg=f"batch {number}")
        assert dev.window == host.window and np.array_equal(dev._shift, host._shift)
    assert host._shift[1] == -tiny  # not flushed
    a, b = host.moments, dev.moments
    np.testing.assert_array_equal(a.zeros, b.zeros)
    assert int(a.nonfinite.sum()) == 3 and int(a.zeros.sum()) == 2


def test_resolve_and_bad_settings(tmp_path):
    import tensorflow as tf

    from deeprep_report.config import load_config
    from deeprep_report.errors import UserError

    if not tf.config.list_physical_devices("GPU"):
        assert device.resolve("auto") == "host"
    assert device.resolve("host") == "host" and device.resolve("device") == "device"
    with pytest.raises(ValueError, match="extract.reduce"):
        device.resolve("gpu")
    path = tmp_path / "pipeline.yaml"
    path.write_text("models: [{builtin: digits_cnn}]\ndatasets: [{builtin: digits}]\nextract: {reduce: gpu}\n")
    with pytest.raises(UserError) as caught:
        load_config(path)
    assert str(caught.value).endswith("extract.reduce: expected 'auto', 'host' or 'device', got 'gpu'")
