"""Each layer's analysis view, made batch by batch in the streaming pass (definition: ``stats/views.py``)."""

from __future__ import annotations

import numpy as np

from deeprep_report.config.sections import ViewSection
from deeprep_report.extract import kernels
from deeprep_report.stats.views import POOLED, ViewSpec, sequence_view_spec, sketch_indices, view_spec


class LayerView:
    """Turns a batch of a layer's activations (B, ...) into its view rows (B, dims), or None for a layer whose
    stored ``pooled`` already is its view."""

    def __init__(self, spec: ViewSpec, pick: str | None = None) -> None:
        self.spec = spec
        self.pick = pick  # sequence layers: which vector of the real tokens (mean, first, last)
        self.indices = sketch_indices(spec) if spec.dims < spec.input_dims else None  # a count sketch

    @classmethod
    def of_sequence(cls, units: int, pick: str, settings: ViewSection) -> "LayerView":
        """The view of a sequence layer whose positions are the tokens: one vector per sequence (docs/text.md)."""
        return cls(sequence_view_spec(units, pick, settings.dims, settings.seed), pick)

    def apply_sequence(self, activations: np.ndarray, mask: np.ndarray, pooled: np.ndarray) -> np.ndarray | None:
        """View rows of a batch (B, T, C) with real tokens ``mask`` and masked means ``pooled``; None when the
        stored ``pooled`` is the view."""
        if self.pick == "mean":
            vectors = pooled
        else:
            first = mask.argmax(axis=1)
            index = first if self.pick == "first" else mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1)
            vectors = np.asarray(activations[np.arange(len(mask)), index], dtype=np.float32)
        if self.indices is None:
            return None if self.pick == "mean" else vectors
        return self.rows(vectors)

    def rows(self, vectors: np.ndarray) -> np.ndarray:
        """Flat vectors (n, F) as view rows: themselves, or their count sketch (sequence tokens, flattened maps)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.indices is None:
            return vectors
        out = np.empty((len(vectors), self.spec.dims), dtype=np.float32)
        kernel, _ = kernels.sketch.pick(vectors)
        kernel(vectors, *self.indices, out)
        return out

    @property
    def makes_rows(self) -> bool:
        """Whether the layer has view rows of its own (not its stored ``pooled``)."""
        return self.spec.method != POOLED

    def sketch_matrix(self) -> tuple[np.ndarray, np.ndarray, tuple[int, int]] | None:
        """The count sketch as a sparse (dims, F) matrix of ±1 — (indices (F, 2) int64 in row-major order,
        values float64, shape) — for a reducer that applies it elsewhere (on the accelerator); None when the
        rows are the flat vectors themselves."""
        if self.indices is None:
            return None
        buckets, signs = self.indices
        order = np.lexsort((np.arange(len(buckets)), buckets))
        entries = np.stack([buckets[order], order], axis=1).astype(np.int64)
        return entries, signs[order].astype(np.float64), (self.spec.dims, len(buckets))

    @classmethod
    def of(cls, sample_shape: tuple[int, ...], settings: ViewSection) -> "LayerView":
        """The view of a layer whose samples have ``sample_shape`` (rank 1: a dense layer)."""
        flat = int(np.prod(sample_shape, dtype=np.int64)) if sample_shape else 1
        return cls(view_spec(flat, len(sample_shape) <= 1, settings.dims, settings.seed))

    def apply(self, activations: np.ndarray) -> np.ndarray | None:
        if not self.makes_rows:
            return None
        return self.rows(np.asarray(activations).reshape(len(activations), -1))
