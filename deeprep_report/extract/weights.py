"""The weights audit of a model, without any data: one row of statistics and one sketch per layer with weights
(definitions: ``stats/weights.py``, docs/checks.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from deeprep_report.stats.weights import weight_sketch, weight_stats


def weight_rows(graph: Any) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """(one row per layer with weights, that layer's weight sketch by path), in model order."""
    rows, sketches, seen = [], {}, set()
    for info in graph.layers:
        layer = info.layer
        if layer is None or id(layer) in seen or not layer.weights:
            continue
        seen.add(id(layer))
        arrays = [np.asarray(weight.numpy()) for weight in layer.weights]
        rows.append({"path": info.path, **weight_stats(arrays)})
        sketches[info.path] = weight_sketch(arrays)
    return rows, sketches
