"""Per-unit moments that merge exactly (Chan et al. 1979): batches, shards and units combine in any order."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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
