"""Each layer's analysis view, made batch by batch in the streaming pass (definition: ``stats/views.py``)."""

from __future__ import annotations

import numpy as np

from deeprep_report.config.sections import ViewSection
from deeprep_report.extract import kernels
from deeprep_report.stats.views import COUNT_SKETCH, POOLED, ViewSpec, sketch_indices, view_spec


class LayerView:
    """Turns a batch of a layer's activations (B, ...) into its view rows (B, dims), or None for a layer whose
    stored ``pooled`` already is its view."""

    def __init__(self, spec: ViewSpec) -> None:
        self.spec = spec
        self.indices = sketch_indices(spec) if spec.method == COUNT_SKETCH else None

    @classmethod
    def of(cls, sample_shape: tuple[int, ...], settings: ViewSection) -> "LayerView":
        """The view of a layer whose samples have ``sample_shape`` (rank 1: a dense layer)."""
        flat = int(np.prod(sample_shape, dtype=np.int64)) if sample_shape else 1
        return cls(view_spec(flat, len(sample_shape) <= 1, settings.dims, settings.seed))

    def apply(self, activations: np.ndarray) -> np.ndarray | None:
        if self.spec.method == POOLED:
            return None
        flat = np.ascontiguousarray(activations, dtype=np.float32).reshape(len(activations), -1)
        if self.indices is None:
            return flat
        out = np.empty((len(flat), self.spec.dims), dtype=np.float32)
        kernel, _ = kernels.sketch.pick(flat)
        kernel(flat, *self.indices, out)
        return out
