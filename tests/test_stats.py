"""Streaming statistics equal numpy on the full array, whatever the batching."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deeprep_report.extract.accumulate import LayerAccumulator
from deeprep_report.stats import Histogram, Moments, saturation_thresholds, unit_stats


def stream(values: np.ndarray, batch: int, bins: int = 64, thresholds=None,
           peaks: bool = False) -> tuple[LayerAccumulator, np.ndarray]:
    """The accumulator after every batch, and each sample's mean over positions (or, ``peaks``, its maximum)."""
    units = values.shape[-1] if values.ndim > 1 else 1
    accumulator = LayerAccumulator(units, bins, thresholds)
    pooled = [accumulator.update(values[i : i + batch]) for i in range(0, len(values), batch)]
    return accumulator, np.concatenate([peak if peaks else mean for mean, peak in pooled])


def numpy_reference(values: np.ndarray) -> dict[str, np.ndarray]:
    """Per-unit statistics the slow, obvious way, in float64 on the full array."""
    flat = values.astype(np.float64).reshape(-1, values.shape[-1] if values.ndim > 1 else 1)
    finite = np.isfinite(flat)
    masked = np.ma.masked_array(flat, ~finite)
    return {
        "count": finite.sum(0), "mean": masked.mean(0).filled(np.nan), "std": masked.std(0).filled(np.nan),
        "min": masked.min(0).filled(np.nan), "max": masked.max(0).filled(np.nan),
        "zeros": (flat == 0).sum(0), "nonfinite": (~finite).sum(0),
    }


def activations(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Awkward activations: relu-like zeros, a large offset with a tiny spread, a constant unit, NaN and Inf."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=shape).astype(np.float32)
    units = shape[-1]
    values[..., 0] = np.maximum(values[..., 0], 0)
    if units > 2:
        values[..., 1] = 1000.0 + 1e-3 * values[..., 1]
        values[..., 2] = 0.25
    if units > 3:
        values[..., 3] *= 50
    flat = values.reshape(-1)
    flat[rng.integers(0, flat.size, 3)] = np.nan
    flat[rng.integers(0, flat.size, 2)] = np.inf
    return values


@pytest.mark.parametrize("shape", [(53, 4, 5, 6), (53, 7, 5), (53, 6), (53,)])
@pytest.mark.parametrize("batch", [1, 8, 16, 53, 64])
def test_streaming_moments_equal_numpy_on_the_full_array(shape, batch):
    values = activations(shape) if len(shape) > 1 else np.random.default_rng(1).normal(size=shape).astype(np.float32)
    accumulator, pooled = stream(values, batch)
    reference = numpy_reference(values)
    moments = accumulator.moments
    stats = unit_stats(moments, "relu", bounded=False)
    np.testing.assert_array_equal(moments.count, reference["count"])
    np.testing.assert_array_equal(moments.zeros, reference["zeros"])
    np.testing.assert_array_equal(moments.nonfinite, reference["nonfinite"])
    for key in ("mean", "std", "min", "max"):
        np.testing.assert_allclose(stats[key], reference[key], rtol=1e-6, atol=0, err_msg=key)
    spatial = tuple(range(1, values.ndim - 1))
    expected_pooled = values.astype(np.float64).mean(axis=spatial) if spatial else values.reshape(len(values), -1)
    np.testing.assert_allclose(pooled, expected_pooled, rtol=1e-6, equal_nan=True)
    _, peaks = stream(values, batch, peaks=True)
    flat = values.astype(np.float64).reshape(len(values), -1, values.shape[-1] if values.ndim > 1 else 1)
    expected_peaks = np.where(np.isnan(flat), -np.inf, flat).max(axis=1)  # NaN skipped, Inf is a maximum
    np.testing.assert_array_equal(peaks, expected_peaks.astype(np.float32))


@pytest.mark.parametrize("batch", [1, 5, 16, 200])
def test_histogram_is_exact_and_independent_of_batching(batch):
    values = activations((200, 3, 3, 5), seed=3)
    accumulator, _ = stream(values, batch, bins=32)
    reference = Histogram.of(values, 32)
    got = accumulator.histogram
    assert (got.exponent, got.start) == (reference.exponent, reference.start)
    np.testing.assert_array_equal(got.counts, reference.counts)
    finite = values[np.isfinite(values)].astype(np.float64)
    assert got.counts.sum() == finite.size
    numpy_counts, _ = np.histogram(finite, bins=got.edges)
    # numpy closes its last bin on the right; the window's right edge is never reached by the data
    np.testing.assert_array_equal(got.counts, numpy_counts)


def test_saturation_counts_values_near_the_bounds():
    rng = np.random.default_rng(2)
    values = np.tanh(rng.normal(scale=3, size=(300, 4))).astype(np.float32)
    thresholds = saturation_thresholds("tanh", 0.01)
    assert thresholds == pytest.approx((-0.98, 0.98))
    accumulator, _ = stream(values, 64, thresholds=thresholds)
    expected = (np.abs(values.astype(np.float64)) >= 0.98).sum(0)
    np.testing.assert_array_equal(accumulator.moments.saturated, expected)
    fraction = unit_stats(accumulator.moments, "tanh", bounded=True)["saturation_fraction"]
    np.testing.assert_allclose(fraction, expected / 300)


def test_saturation_rules():
    assert saturation_thresholds("relu", 0.01) is None
    assert saturation_thresholds("sigmoid", 0.05) == pytest.approx((0.05, 0.95))
    low, high = saturation_thresholds("relu6", 0.01)
    assert low == -math.inf and high == pytest.approx(5.94)


def test_dead_units():
    values = np.zeros((20, 5), dtype=np.float32)
    values[:, 1] = np.linspace(-1, -0.1, 20)       # never > 0
    values[:, 2] = np.linspace(-1, 1, 20)          # alive
    values[:, 3] = 3.0                              # constant: zero variance
    values[:, 4] = np.linspace(0, 2, 20)           # alive
    moments = Moments.of(values)
    assert unit_stats(moments, "relu", bounded=False)["dead"].tolist() == [True, True, False, True, False]
    # outside the ReLU family only zero variance makes a unit dead
    assert unit_stats(moments, "tanh", bounded=True)["dead"].tolist() == [True, False, False, True, False]


def test_chan_merge_equals_numpy_for_any_split():
    rng = np.random.default_rng(4)
    values = (rng.normal(size=(500, 3)) * [1, 1e3, 1e-3] + [0, 1e4, -5]).astype(np.float64)
    for cut in (1, 17, 250, 499):
        merged = Moments.of(values[:cut]).merge(Moments.of(values[cut:]))
        whole = Moments.of(values)
        np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-12)
        np.testing.assert_allclose(merged.m2, whole.m2, rtol=1e-9)
    empty_merge = Moments.empty(3).merge(Moments.of(values))
    np.testing.assert_allclose(empty_merge.mean, values.mean(0), rtol=1e-12)


def test_layer_total_equals_numpy_over_all_units():
    values = activations((40, 3, 3, 6), seed=5)
    moments = Moments.of(values).total()
    finite = values[np.isfinite(values)].astype(np.float64)
    assert moments.count[0] == finite.size
    np.testing.assert_allclose(moments.mean[0], finite.mean(), rtol=1e-9)
    np.testing.assert_allclose(np.sqrt(moments.m2[0] / moments.count[0]), finite.std(), rtol=1e-9)
    assert moments.min[0] == finite.min() and moments.max[0] == finite.max()


def test_histogram_window_is_the_finest_that_fits():
    for low, high in [(0.0, 5.3), (-1.0, 1.0), (1000.0, 1000.5), (-3e6, 2.0), (0.0, 0.0), (7.0, 7.0)]:
        exponent, start = Histogram.window(low, high, 64)
        width = math.ldexp(1.0, exponent)
        assert start * width <= low and high < (start + 64) * width
        if high > low:  # one step finer would not fit
            finer = math.ldexp(1.0, exponent - 1)
            assert math.floor(high / finer) - math.floor(low / finer) >= 64


def test_histogram_merge_is_order_free_and_exact():
    rng = np.random.default_rng(6)
    parts = [rng.normal(loc=shift, size=200) for shift in (0.0, 40.0, -3.0, 0.5)]
    whole = Histogram.of(np.concatenate(parts), 48)
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        merged = Histogram.empty(48)
        for index in order:
            merged = merged.merge(Histogram.of(parts[index], 48))
        assert (merged.exponent, merged.start) == (whole.exponent, whole.start)
        np.testing.assert_array_equal(merged.counts, whole.counts)


def test_histogram_rebin_refuses_to_refine_or_lose_counts():
    histogram = Histogram.of(np.arange(10.0), 16)
    with pytest.raises(ValueError):
        histogram.rebin(histogram.exponent - 1, 0)
    with pytest.raises(ValueError):
        histogram.rebin(histogram.exponent, histogram.start + 5)
    coarse = histogram.rebin(histogram.exponent + 1, histogram.start >> 1)
    assert coarse.counts.sum() == 10


def test_all_nonfinite_unit_reports_nan_not_zero():
    values = np.full((10, 2), np.nan, dtype=np.float32)
    values[:, 1] = 1.0
    accumulator, _ = stream(values, 4)
    stats = unit_stats(accumulator.moments, None, bounded=False)
    assert np.isnan(stats["mean"][0]) and stats["nonfinite_fraction"][0] == 1.0
    assert stats["mean"][1] == 1.0 and not stats["dead"][0]
