"""Top-activating contexts of a sequence layer's units, kept while streaming: the text counterpart of exemplars.

For every unit, the ``k`` real token positions with the largest activation over
the whole dataset, each with the unit's activation on a window of ``window``
tokens either side (NaN outside the sequence and at padding), so the report can
show the context with the activation as a background intensity and needs no model.
Memory is k × C × (2 window + 1) values, whatever the number of samples.
"""

from __future__ import annotations

import numpy as np


class TopContexts:
    """Running top-``k`` token positions per unit of one (B, T, C) layer."""

    def __init__(self, units: int, k: int, window: int) -> None:
        self.k, self.window = k, window
        self.values = np.full((0, units), -np.inf, dtype=np.float32)
        self.samples = np.zeros((0, units), dtype=np.int64)
        self.positions = np.zeros((0, units), dtype=np.int64)
        self.windows = np.zeros((0, units, 2 * window + 1), dtype=np.float32)

    def update(self, start: int, activations: np.ndarray, mask: np.ndarray) -> None:
        """Fold a batch (B, T, C) in; ``mask`` (B, T) marks the tokens that may be a top position and be shown
        in a window (real tokens; the caller leaves out special ones such as [CLS])."""
        batch, length, units = activations.shape
        scores = np.where(mask[:, :, None] & np.isfinite(activations), activations, -np.inf).reshape(-1, units)
        take = min(self.k, len(scores))
        flat = np.argpartition(-scores, take - 1, axis=0)[:take]  # (take, C)
        values = np.take_along_axis(scores, flat, axis=0)
        rows, positions = np.divmod(flat, length)
        offsets = np.arange(-self.window, self.window + 1)
        around = positions[:, :, None] + offsets  # (take, C, 2w+1)
        inside = (around >= 0) & (around < length)
        clipped = np.clip(around, 0, length - 1)
        unit = np.broadcast_to(np.arange(units)[None, :, None], around.shape)
        row = np.broadcast_to(rows[:, :, None], around.shape)
        windows = activations[row, clipped, unit].astype(np.float32)
        windows[~(inside & mask[row, clipped])] = np.nan
        self.add(values.astype(np.float32), rows + start, positions, windows)

    def add(self, values: np.ndarray, samples: np.ndarray, positions: np.ndarray, windows: np.ndarray) -> None:
        """Keep the top ``k`` of the kept and the given candidates, (n, C) each (windows (n, C, 2 window + 1));
        on ties the earlier candidate wins, so adding shards in sample order gives one process's answer."""
        values = np.concatenate([self.values, values])
        samples = np.concatenate([self.samples, samples])
        positions = np.concatenate([self.positions, positions])
        windows = np.concatenate([self.windows, windows])
        order = np.argsort(-values, axis=0, kind="stable")[: self.k]  # strongest first
        self.values = np.take_along_axis(values, order, axis=0)
        self.samples = np.take_along_axis(samples, order, axis=0)
        self.positions = np.take_along_axis(positions, order, axis=0)
        self.windows = np.take_along_axis(windows, order[:, :, None], axis=0)

    def arrays(self) -> dict[str, np.ndarray]:
        """What the store keeps: value, sample, position (k, C) and window (k, C, 2 window + 1); a position whose
        value is -inf was never filled (fewer real tokens than k)."""
        return {"value": self.values, "sample": self.samples, "position": self.positions, "window": self.windows}
