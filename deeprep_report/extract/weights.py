"""The weights audit of a model, without any data: one row of statistics and one sketch per layer with weights
(definitions: ``stats/weights.py``, docs/checks.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from deeprep_report.stats.weights import weight_sketch, weight_stats


def weight_rows(graph: Any) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """(one row per layer with weights, that layer's weight sketch by path), in model order."""
    rows, sketches, seen = [], {}, set()
    listed = {id(info.layer) for info in graph.layers if info.layer is not None}
    for info in graph.layers:
        layer = info.layer
        if layer is None or id(layer) in seen:
            continue
        seen.add(id(layer))
        weights = _own_weights(layer, listed)
        if not weights:
            continue
        arrays = [np.asarray(weight.numpy()) for weight in weights]
        rows.append({"path": info.path, **weight_stats(arrays)})
        sketches[info.path] = weight_sketch(arrays)
    return rows, sketches


def _own_weights(layer: Any, listed: set[int]) -> list[Any]:
    """A layer's weights less those of its sublayers that have rows of their own (a subclassed model's block and
    the Dense inside it are both listed): every weight is counted once."""
    inner = {id(weight) for child in layer._flatten_layers(include_self=False) if id(child) in listed
             for weight in child.weights}
    return [weight for weight in layer.weights if id(weight) not in inner]
