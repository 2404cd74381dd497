"""The mathematics of the unit statistics: mergeable moments, an exact mergeable histogram,
and the rules that turn them into reported numbers (dead units, saturation).

Pure numpy, no TensorFlow: extraction feeds batches in (``accumulate``), the
analyze stage and any later reader only need this module. Everything merges
exactly (Chan et al. 1979 for the moments; power-of-two aligned bins for the
histogram), so batches, shards and units combine in any order to the same
result that numpy gives on the full array.

Definitions (also in ``docs/statistics.md``): a *unit* is one channel of a conv
map over all samples and positions, one unit of a dense layer, or one feature of
a sequence layer over all tokens. Moments, extrema and the histogram cover the
finite values; non-finite values are counted separately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Activations whose units are *dead* when never > 0 on the whole dataset.
RELU_FAMILY = frozenset({"relu", "relu6", "leaky_relu", "prelu", "elu", "selu", "gelu", "silu", "swish",
                         "mish", "hard_silu", "hard_swish"})

#: Bounded activations: (lower bound, upper bound, lower bound saturates, upper bound saturates).
#: relu6's lower bound is the ReLU zero (counted as zeros), so only its upper bound saturates.
BOUNDED = {
    "sigmoid": (0.0, 1.0, True, True),
    "hard_sigmoid": (0.0, 1.0, True, True),
    "tanh": (-1.0, 1.0, True, True),
    "softsign": (-1.0, 1.0, True, True),
    "softmax": (0.0, 1.0, True, True),
    "relu6": (0.0, 6.0, False, True),
}


def saturation_thresholds(activation: str | None, tol: float) -> tuple[float, float] | None:
    """(at or below, at or above) which a value counts as saturated, or None for unbounded activations.

    A value is saturated when it lies within ``tol`` of the activation's range
    from a saturating bound, e.g. sigmoid with tol 0.01: a <= 0.01 or a >= 0.99.
    """
    if activation not in BOUNDED:
        return None
    low, high, low_saturates, high_saturates = BOUNDED[activation]
    margin = tol * (high - low)
    return (low + margin if low_saturates else -math.inf, high - margin if high_saturates else math.inf)


@dataclass
class Moments:
    """Per-unit sufficient statistics, shape (C,) each; merge with :meth:`merge`.

    ``count`` finite values, their ``mean`` and ``m2`` (sum of squared deviations
    from the mean), ``min``/``max`` of finite values, and counts of exact zeros,
    non-finite values and saturated values.
    """

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    min: np.ndarray
    max: np.ndarray
    zeros: np.ndarray
    nonfinite: np.ndarray
    saturated: np.ndarray

    @classmethod
    def empty(cls, units: int) -> "Moments":
        ints = lambda: np.zeros(units, dtype=np.int64)  # noqa: E731
        return cls(ints(), np.zeros(units), np.zeros(units), np.full(units, np.inf), np.full(units, -np.inf),
                   ints(), ints(), ints())

    @classmethod
    def of(cls, values: np.ndarray, thresholds: tuple[float, float] | None = None) -> "Moments":
        """Moments of an array (..., C) computed directly with numpy: the reference for tests and small data."""
        flat = np.asarray(values, dtype=np.float64).reshape(-1, values.shape[-1])
        finite = np.isfinite(flat)
        count = finite.sum(axis=0)
        safe = np.where(finite, flat, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, safe.sum(axis=0) / np.maximum(count, 1), 0.0)
        m2 = (np.where(finite, flat - mean, 0.0) ** 2).sum(axis=0)
        low, high = thresholds if thresholds else (-math.inf, math.inf)
        return cls(
            count=count.astype(np.int64), mean=mean, m2=m2,
            min=np.where(finite, flat, np.inf).min(axis=0), max=np.where(finite, flat, -np.inf).max(axis=0),
            zeros=(flat == 0).sum(axis=0).astype(np.int64), nonfinite=(~finite).sum(axis=0).astype(np.int64),
            saturated=(finite & ((flat <= low) | (flat >= high))).sum(axis=0).astype(np.int64),
        )

    def merge(self, other: "Moments") -> "Moments":
        """Chan's parallel update: the moments of both sets of values together."""
        count = self.count + other.count
        with np.errstate(invalid="ignore", divide="ignore"):
            weight = np.where(count > 0, other.count / np.maximum(count, 1), 0.0)
        delta = other.mean - self.mean
        return Moments(
            count=count,
            mean=self.mean + delta * weight,
            m2=self.m2 + other.m2 + delta * delta * self.count * weight,
            min=np.minimum(self.min, other.min), max=np.maximum(self.max, other.max),
            zeros=self.zeros + other.zeros, nonfinite=self.nonfinite + other.nonfinite,
            saturated=self.saturated + other.saturated,
        )

    def total(self) -> "Moments":
        """All units merged into one (shape (1,)): the layer-level moments."""
        count = self.count.sum()
        mean = (self.count * self.mean).sum() / count if count else 0.0
        m2 = self.m2.sum() + (self.count * (self.mean - mean) ** 2).sum()
        one = lambda v: np.asarray([v])  # noqa: E731
        return Moments(one(count), one(float(mean)), one(float(m2)), one(self.min.min()), one(self.max.max()),
                       one(self.zeros.sum()), one(self.nonfinite.sum()), one(self.saturated.sum()))

    @property
    def values(self) -> np.ndarray:
        """Values seen per unit, finite or not."""
        return self.count + self.nonfinite

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def unit_stats(moments: Moments, activation: str | None, bounded: bool) -> dict[str, np.ndarray]:
    """Reported per-unit statistics (each (C,)); NaN where a unit has no finite value.

    ``std`` is the population standard deviation (numpy's default, ddof=0).
    A unit is dead when it never varies (min == max) or, after a ReLU-family
    activation, is never > 0.
    """
    values = np.maximum(moments.values, 1)
    has = moments.count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(np.maximum(moments.m2, 0.0) / moments.count)
    nan = np.full(moments.count.shape, np.nan)
    dead = has & ((moments.min == moments.max) | ((moments.max <= 0) & (activation in RELU_FAMILY)))
    return {
        "mean": np.where(has, moments.mean, nan),
        "std": np.where(has, std, nan),
        "min": np.where(has, moments.min, nan),
        "max": np.where(has, moments.max, nan),
        "zero_fraction": moments.zeros / values,
        "nonfinite_fraction": moments.nonfinite / values,
        "saturation_fraction": moments.saturated / values if bounded else nan,
        "dead": dead,
    }


@dataclass
class Histogram:
    """Counts over bins of width ``2**exponent``: bin ``k`` is ``[(start+k), (start+k+1)) * 2**exponent``.

    Power-of-two widths aligned to zero make merging exact: a bin at width
    ``w`` lies inside one bin at width ``2w``. :meth:`window` picks the finest
    width at which the data's range fits in ``bins`` bins, so the final
    histogram depends only on the data, never on batch order or size.
    """

    exponent: int
    start: int
    counts: np.ndarray  # (bins,) int64

    @property
    def width(self) -> float:
        return math.ldexp(1.0, self.exponent)

    @property
    def edges(self) -> np.ndarray:
        return (self.start + np.arange(len(self.counts) + 1)) * self.width

    @staticmethod
    def window(low: float, high: float, bins: int) -> tuple[int, int]:
        """(exponent, start) of the finest aligned window holding [low, high] in ``bins`` bins."""
        magnitude = max(abs(low), abs(high))
        # A floor keeps bin indices below 2**41 for constant data. Distinct float32
        # values differ by at least 2**-24 of their magnitude, so for varying data
        # the fitted width is always coarser than this floor and it has no effect.
        exponent = math.frexp(magnitude)[1] - 40 if magnitude > 0 else -149
        span = high - low
        if span > 0:
            exponent = max(exponent, math.floor(math.log2(span / (bins + 1))))
        while math.floor(math.ldexp(high, -exponent)) - math.floor(math.ldexp(low, -exponent)) >= bins:
            exponent += 1
        return exponent, math.floor(math.ldexp(low, -exponent))

    @classmethod
    def empty(cls, bins: int) -> "Histogram":
        return cls(0, 0, np.zeros(bins, dtype=np.int64))

    def rebin(self, exponent: int, start: int) -> "Histogram":
        """The same counts at a coarser (or equal) aligned window; every counted bin must fit."""
        if exponent < self.exponent:
            raise ValueError("a histogram can only be coarsened")
        counts = np.zeros_like(self.counts)
        occupied = np.flatnonzero(self.counts)
        if occupied.size:
            target = ((self.start + occupied) >> (exponent - self.exponent)) - start
            if target.min() < 0 or target.max() >= len(counts):
                raise ValueError("window does not hold the histogram's range")
            np.add.at(counts, target, self.counts[occupied])
        return Histogram(exponent, start, counts)

    def merge(self, other: "Histogram") -> "Histogram":
        """Both histograms' counts at the finest aligned window holding both (exact, order-free)."""
        parts = [h for h in (self, other) if h.counts.any()]
        if len(parts) < 2:
            return parts[0] if parts else self
        exponent = max(h.exponent for h in parts)
        low = min((h.start + int(np.flatnonzero(h.counts)[0])) >> (exponent - h.exponent) for h in parts)
        high = max((h.start + int(np.flatnonzero(h.counts)[-1])) >> (exponent - h.exponent) for h in parts)
        while high - low >= len(self.counts):
            exponent, low, high = exponent + 1, low >> 1, high >> 1
        return Histogram(exponent, low, sum(h.rebin(exponent, low).counts for h in parts))

    @classmethod
    def of(cls, values: np.ndarray, bins: int) -> "Histogram":
        """Histogram of the finite values of an array, computed directly: the reference for tests."""
        finite = np.asarray(values, dtype=np.float64).ravel()
        finite = finite[np.isfinite(finite)]
        if not finite.size:
            return cls.empty(bins)
        exponent, start = cls.window(float(finite.min()), float(finite.max()), bins)
        index = np.floor(np.ldexp(finite, -exponent)).astype(np.int64) - start
        return cls(exponent, start, np.bincount(index, minlength=bins).astype(np.int64))
