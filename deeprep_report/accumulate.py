"""Streaming accumulation of one layer's statistics, batch by batch, through the fused kernels."""

from __future__ import annotations

import math

import numpy as np

from deeprep_report import kernels
from deeprep_report.stats import Histogram, Moments


class LayerAccumulator:
    """Running :class:`Moments` and :class:`Histogram` of one layer, plus each sample's pooled value.

    ``update`` takes a batch of activations (B, ..., C) and returns the pooled
    activations (B, C): the mean over every axis between the batch and the unit
    axis (spatial positions of a conv map, tokens of a sequence).
    """

    def __init__(self, units: int, bins: int, thresholds: tuple[float, float] | None = None) -> None:
        self.units = units
        self.bins = bins
        self.thresholds = thresholds if thresholds is not None else (-math.inf, math.inf)
        self.moments = Moments.empty(units)
        self.histogram = Histogram.empty(bins)
        self._binbuf = np.zeros((0, 0), dtype=np.uint8)

    def update(self, activations: np.ndarray) -> np.ndarray:
        """Fold a batch into the running statistics; return its pooled activations (B, C) float32."""
        y = _as_batch(activations, self.units)
        positions = y.shape[1]
        window = self.histogram
        batch, codes, psum = self._fast(y, window) or self._careful(y, window)
        self.moments = self.moments.merge(batch)
        outside = codes[0] + codes[self.bins + 1]
        if outside or not window.counts.any():  # an empty histogram's window is arbitrary
            counts = self._own_window_histogram(y, batch)
        else:
            counts = Histogram(window.exponent, window.start, codes[1 : self.bins + 1].copy())
        self.histogram = self.histogram.merge(counts)
        return (psum / positions).astype(np.float32)

    def _buffers(self, y: np.ndarray, threads: int) -> np.ndarray:
        size = y.shape[1] * y.shape[2]
        if self._binbuf.shape[0] < threads or self._binbuf.shape[1] < size:
            self._binbuf = np.zeros((threads, size), dtype=np.uint8)
        return self._binbuf

    def _fast(self, y: np.ndarray, window: Histogram) -> tuple[Moments, np.ndarray, np.ndarray] | None:
        """The one-pass kernel for batches without NaN/Inf; None when the batch has any."""
        kernel, threads = kernels.fast.pick(y)
        batch, positions, units = y.shape
        shift = y[0, 0].astype(np.float64)
        psum = np.zeros((batch, units))
        s2 = np.zeros((threads, units))
        vmin = np.full((threads, units), np.inf, dtype=np.float32)
        vmax = np.full((threads, units), -np.inf, dtype=np.float32)
        zeros = np.zeros((threads, units), dtype=np.int64)
        saturated = np.zeros_like(zeros)
        hist = np.zeros((threads, 4, self.bins + kernels.EXTRA_CODES), dtype=np.int64)
        count_saturation = math.isfinite(self.thresholds[0]) or math.isfinite(self.thresholds[1])
        kernel(y, shift, count_saturation, self.thresholds[0], self.thresholds[1], math.ldexp(1.0, -window.exponent),
               window.start, self.bins, psum, s2, vmin, vmax, zeros, saturated, hist, self._buffers(y, threads))
        if not np.isfinite(psum).all():  # psum[0] holds the shift too
            return None
        n = np.full(units, batch * positions, dtype=np.int64)
        offset = psum.sum(axis=0) / n - shift  # mean - shift, from the unshifted per-sample sums
        moments = Moments(
            count=n, mean=shift + offset, m2=np.maximum(s2.sum(axis=0) - n * offset * offset, 0.0),
            min=vmin.min(axis=0).astype(np.float64), max=vmax.max(axis=0).astype(np.float64),
            zeros=zeros.sum(axis=0), nonfinite=np.zeros(units, dtype=np.int64), saturated=saturated.sum(axis=0),
        )
        return moments, hist.sum(axis=(0, 1)), psum

    def _careful(self, y: np.ndarray, window: Histogram) -> tuple[Moments, np.ndarray, np.ndarray]:
        """The masking kernel: NaN and Inf are counted and kept out of every statistic but the pooled mean."""
        kernel, threads = kernels.careful.pick(y)
        batch, positions, units = y.shape
        shift = np.where(np.isfinite(y[0, 0]), y[0, 0], 0.0).astype(np.float64)
        psum = np.zeros((batch, units))
        count = np.zeros((threads, units), dtype=np.int64)
        s1, s2 = np.zeros((threads, units)), np.zeros((threads, units))
        vmin = np.full((threads, units), np.inf, dtype=np.float32)
        vmax = np.full((threads, units), -np.inf, dtype=np.float32)
        zeros, saturated = np.zeros_like(count), np.zeros_like(count)
        hist = np.zeros((threads, 4, self.bins + kernels.EXTRA_CODES), dtype=np.int64)
        kernel(y, shift, self.thresholds[0], self.thresholds[1], math.ldexp(1.0, -window.exponent), window.start,
               self.bins, psum, count, s1, s2, vmin, vmax, zeros, saturated, hist, self._buffers(y, threads))
        n = count.sum(axis=0)
        a1, a2 = s1.sum(axis=0), s2.sum(axis=0)
        offset = np.divide(a1, n, out=np.zeros_like(a1), where=n > 0)
        moments = Moments(
            count=n, mean=shift + offset, m2=np.maximum(a2 - a1 * offset, 0.0),
            min=vmin.min(axis=0).astype(np.float64), max=vmax.max(axis=0).astype(np.float64),
            zeros=zeros.sum(axis=0), nonfinite=batch * positions - n, saturated=saturated.sum(axis=0),
        )
        return moments, hist.sum(axis=(0, 1)), psum

    def _own_window_histogram(self, y: np.ndarray, batch: Moments) -> Histogram:
        """Second pass for a batch that reached outside the running window: bin it at its own window."""
        finite = batch.count > 0
        if not finite.any():
            return Histogram.empty(self.bins)
        exponent, start = Histogram.window(float(batch.min[finite].min()), float(batch.max[finite].max()), self.bins)
        kernel, threads = kernels.histogram.pick(y)
        hist = np.zeros((threads, 4, self.bins + kernels.EXTRA_CODES), dtype=np.int64)
        kernel(y, math.ldexp(1.0, -exponent), start, self.bins, hist, self._buffers(y, threads))
        return Histogram(exponent, start, hist.sum(axis=(0, 1))[1 : self.bins + 1].copy())


def _as_batch(activations: np.ndarray, units: int) -> np.ndarray:
    """View activations (B, ..., C) as a C-contiguous float32 (B, S, C) array without copying when possible."""
    y = np.ascontiguousarray(activations, dtype=np.float32)
    if y.ndim == 1:
        return y.reshape(len(y), 1, 1)
    if y.shape[-1] != units:
        raise ValueError(f"expected {units} units on the last axis, got shape {y.shape}")
    return y.reshape(y.shape[0], -1, units)
