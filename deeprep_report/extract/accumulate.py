"""Streaming accumulation of one layer's statistics, batch by batch, through the fused kernels.

Running totals are per-unit sums of values shifted by a fixed per-unit
``shift`` (the layer's first finite value), so batches just add up, in float64,
without cancellation for units with a large mean and a small spread; they turn
into :class:`Moments` once, at the end. Per batch the Python work is a kernel
call and one compiled ``fold``: on small layers that per-batch overhead, not
the arithmetic, is what costs (measured ~250 µs per layer and batch with
numpy merges, ~20 µs folded).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from deeprep_report.extract import kernels
from deeprep_report.stats import Histogram, Moments


class Partials(NamedTuple):
    """One batch's per-unit partials computed elsewhere (on the accelerator, :mod:`deeprep_report.extract.device`),
    exactly what ``_fold`` adds to the totals: values relative to ``shift`` (the accumulator's), float64."""

    shift: np.ndarray | None  # (C,) the first batch's first value per unit (0 if not finite); None: already set
    values: int  # values per unit in the batch, finite or not (B x S)
    count: np.ndarray  # (C,) finite values
    s1: np.ndarray  # (C,) sum of (v - shift) over finite values
    s2: np.ndarray  # (C,) sum of (v - shift)**2
    min: np.ndarray  # (C,) of finite values (inf when none)
    max: np.ndarray
    zeros: np.ndarray
    saturated: np.ndarray


class LayerAccumulator:
    """Running statistics of one layer's activations, plus each sample's pooled values.

    ``update`` takes a batch of activations (B, ..., C) and returns the pooled
    activations (B, C): the mean and the maximum over every axis between the
    batch and the unit axis (spatial positions of a conv map, tokens of a sequence).
    """

    def __init__(self, units: int, bins: int, thresholds: tuple[float, float] | None = None) -> None:
        self.units = units
        self.bins = bins
        self.thresholds = thresholds if thresholds is not None else (-math.inf, math.inf)
        self._shift: np.ndarray | None = None
        self._totals = [np.zeros(units, dtype=np.int64), np.zeros(units), np.zeros(units), np.full(units, np.inf),
                        np.full(units, -np.inf), np.zeros(units, dtype=np.int64), np.zeros(units, dtype=np.int64),
                        np.zeros(units, dtype=np.int64)]  # count, s1, s2, min, max, zeros, nonfinite, saturated
        self._codes = np.zeros(bins + kernels.EXTRA_CODES, dtype=np.int64)  # at the window below
        self._window = (0, 0)  # (exponent, start); meaningless until the codes hold counts
        self._scratch: dict[tuple[int, int], list[np.ndarray]] = {}

    @property
    def moments(self) -> Moments:
        count, s1, s2, low, high, zeros, nonfinite, saturated = self._totals
        shift = self._shift if self._shift is not None else np.zeros(self.units)
        offset = np.divide(s1, count, out=np.zeros_like(s1), where=count > 0)
        return Moments(count=count.copy(), mean=shift + offset, m2=np.maximum(s2 - s1 * offset, 0.0),
                       min=low.copy(), max=high.copy(), zeros=zeros.copy(), nonfinite=nonfinite.copy(),
                       saturated=saturated.copy())

    @property
    def histogram(self) -> Histogram:
        return Histogram(*self._window, self._codes[1 : self.bins + 1].copy())

    @property
    def shift(self) -> np.ndarray | None:
        """The per-unit shift of the running sums, once the first batch set it."""
        return self._shift

    @property
    def window(self) -> tuple[int, int]:
        """The running histogram's (exponent, start); meaningless before the first finite value."""
        return self._window

    def fold_partials(self, parts: Partials, codes_at: Callable[[tuple[int, int]], np.ndarray]) -> None:
        """Fold a batch reduced elsewhere into the same state ``update`` keeps, by the same steps.

        ``codes_at(window)`` returns the batch's histogram code counts (bins + 3,) at an aligned window, as the
        kernels code them. Which window, and whether the running histogram moves, is decided here exactly as
        ``_fold`` decides it: a batch re-bins when it is the first or a finite value lies outside the window,
        which (codes being monotone in the value) its finite minimum or maximum shows."""
        if self._shift is None:
            if parts.shift is None:
                raise ValueError("the first partials of a layer must carry their shift")
            self._shift = np.array(parts.shift, dtype=np.float64)
        elif parts.shift is not None and not np.array_equal(self._shift, parts.shift):
            raise ValueError("partials were computed relative to another shift than this accumulator's")
        count, s1, s2, low, high, zeros, nonfinite, saturated = self._totals
        count += parts.count
        s1 += parts.s1
        s2 += parts.s2
        np.minimum(low, parts.min, out=low)
        np.maximum(high, parts.max, out=high)
        zeros += parts.zeros
        nonfinite += parts.values - parts.count
        saturated += parts.saturated
        first = not self._codes.any()
        finite = bool(parts.count.any())
        lowest, highest = float(np.min(parts.min)), float(np.max(parts.max))
        outside = finite and (self._code(lowest) == 0 or self._code(highest) == self.bins + 1)
        if not (outside or first):
            self._codes += codes_at(self._window)
            return
        if first:
            self._codes[:] = 0
        if finite:
            window = Histogram.window(lowest, highest, self.bins)
            merged = self.histogram.merge(Histogram(*window, codes_at(window)[1 : self.bins + 1]))
            self._window = (merged.exponent, merged.start)
            self._codes[:] = 0
            self._codes[1 : self.bins + 1] = merged.counts

    def _code(self, value: float) -> int:
        """The kernels' histogram code of a finite value at the running window (``kernels._bin_code``)."""
        exponent, start = self._window
        q = np.floor(np.float64(value) * math.ldexp(1.0, -exponent)) - np.float64(start - 1)
        return int(min(max(q, 0.0), float(self.bins + 1)))

    def update(self, activations: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Fold a batch into the running statistics; return each sample's (mean, peak) over positions, each
        (B, C) float32.

        The peak (largest finite value of the unit anywhere in the sample) ranks a map layer's exemplars: a
        mean over positions ranks by how much of the image is bright, the same images for every early unit.
        With ``mask`` (B, T), True at real tokens, ``activations`` are (B, T, C) and only real tokens count:
        in every statistic, the mean and the peak."""
        if mask is None:
            y = _as_batch(activations, self.units)
            sums, peaks = self._fold(y)
            return (sums / y.shape[1]).astype(np.float32), peaks.astype(np.float32)
        real = np.ascontiguousarray(activations, dtype=np.float32)[mask]  # (tokens, C), sample by sample
        sums, peaks = self._fold(real.reshape(len(real), 1, self.units))  # one "sample" per real token
        counts = mask.sum(axis=1)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return ((np.add.reduceat(sums, starts, axis=0) / counts[:, None]).astype(np.float32),
                np.maximum.reduceat(peaks, starts, axis=0).astype(np.float32))

    def _fold(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fold (B, S, C) into the totals; returns each sample's sum and maximum over positions, (B, C) float64
        each (the maximum skips NaN)."""
        batch, positions, units = y.shape
        if self._shift is None:
            first = y[0, 0].astype(np.float64)
            self._shift = np.where(np.isfinite(first), first, 0.0)
        kernel, threads = kernels.fast.pick(y)
        scratch = self._scratch_for(threads, positions * units)
        psum, pmax = np.empty((batch, units)), np.empty((batch, units))
        exponent, start = self._window
        arguments = (y, self._shift, math.isfinite(self.thresholds[0]) or math.isfinite(self.thresholds[1]),
                     self.thresholds[0], self.thresholds[1], math.ldexp(1.0, -exponent), start, self.bins, psum, pmax)
        kernel(*arguments, *scratch)
        if not np.isfinite(psum).all():  # a NaN or Inf somewhere: redo the batch with masking
            careful, threads = kernels.careful.pick(y)
            scratch = self._scratch_for(threads, positions * units)
            careful(*arguments, *scratch)
        first = not self._codes.any()
        outside = kernels.fold(batch * positions, *scratch[:-1], *self._totals, self._codes)
        if outside or first:  # the window must move or grow: re-bin (rare after the first batch)
            if first:
                self._codes[:] = 0  # binned at a window that meant nothing yet
            self._rewindow(y, scratch)
        return psum, pmax

    def _scratch_for(self, threads: int, size: int) -> list[np.ndarray]:
        """Reusable per-thread partials (the kernels reset them): count, s1, s2, min, max, zeros, saturated,
        histogram codes, bin buffer.

        Rows carry 16 unused entries of padding so that two threads never write the same cache line
        (measured: without it a 16-unit layer ran 2-4x slower on two threads than on one)."""
        key = (threads, size)
        if key not in self._scratch:
            shape = (threads, self.units + _PAD)
            self._scratch[key] = [
                np.zeros(shape, dtype=np.int64), np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=np.float32),
                np.zeros(shape, dtype=np.float32), np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64),
                np.zeros((threads, 4, self.bins + kernels.EXTRA_CODES), dtype=np.int64),
                np.zeros((threads, size), dtype=np.uint8),
            ]
        return self._scratch[key]

    def _rewindow(self, y: np.ndarray, scratch: list[np.ndarray]) -> None:
        """Bin this batch at its own window and merge it with the running histogram at the finest common one."""
        low, high = scratch[3].min(), scratch[4].max()
        if not (np.isfinite(low) and np.isfinite(high)):  # no finite value in this batch
            return
        exponent, start = Histogram.window(float(low), float(high), self.bins)
        kernel, threads = kernels.histogram.pick(y)
        parts = self._scratch_for(threads, y.shape[1] * y.shape[2])
        kernel(y, math.ldexp(1.0, -exponent), start, self.bins, parts[7], parts[8])
        own = Histogram(exponent, start, parts[7].sum(axis=(0, 1))[1 : self.bins + 1])
        merged = self.histogram.merge(own)
        self._window = (merged.exponent, merged.start)
        self._codes[:] = 0
        self._codes[1 : self.bins + 1] = merged.counts


_PAD = 16  # entries; 64 bytes or more for every partial's dtype


def _as_batch(activations: np.ndarray, units: int) -> np.ndarray:
    """View activations (B, ..., C) as a C-contiguous float32 (B, S, C) array without copying when possible."""
    y = np.ascontiguousarray(activations, dtype=np.float32)
    if y.ndim == 1:
        return y.reshape(len(y), 1, 1)
    if y.shape[-1] != units:
        raise ValueError(f"expected {units} units on the last axis, got shape {y.shape}")
    return y.reshape(y.shape[0], -1, units)
