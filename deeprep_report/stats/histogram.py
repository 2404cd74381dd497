"""An exact, mergeable value histogram: power-of-two bin widths aligned to zero."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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
