"""Per-layer weight statistics and sketches, pure numpy (read from a model in ``extract/weights.py``).

A NaN in a kernel can vanish from the activations (a compiled MatMul + BiasAdd
+ ReLU turns it into 0), so the weights are looked at themselves: per layer
(every weight of the layer, its sublayers' included), the parameter count,
non-finite values, the L2 norm and largest magnitude of the finite ones, the
share of exact zeros and, for the largest kernel reshaped to (fan-in, units),
its top singular value and stable rank ‖W‖²_F / σ²_max. A count sketch of all
the layer's values (exact up to ``SKETCH_DIMS`` values) is stored beside, so a
later run estimates how far each layer's weights moved from a baseline's
without the baseline's model file: ‖S(a) − S(b)‖ / ‖S(b)‖, S linear and
unbiased for squared norms (relative error about √(2 / SKETCH_DIMS) ≈ 3 %).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deeprep_report.stats.views import COUNT_SKETCH, ViewSpec, sketch_indices

SKETCH_DIMS = 2048
_SEED = 0x3E16


def weight_stats(arrays: list[np.ndarray]) -> dict[str, Any]:
    """The audit of one layer's weight arrays (numbers; None where undefined)."""
    params = int(sum(a.size for a in arrays))
    finite = [np.asarray(a, dtype=np.float64)[np.isfinite(a)] for a in arrays]
    values = np.concatenate(finite) if finite else np.zeros(0)
    nonfinite = params - int(values.size)
    kernel = max((a for a in arrays if a.ndim >= 2), key=lambda a: a.size, default=None)
    top = stable = None
    if kernel is not None and np.isfinite(kernel).all() and kernel.size:
        matrix = np.asarray(kernel, dtype=np.float64).reshape(-1, kernel.shape[-1])
        gram = matrix.T @ matrix if matrix.shape[0] >= matrix.shape[1] else matrix @ matrix.T
        largest = float(np.linalg.eigvalsh(gram)[-1])
        top = float(np.sqrt(max(largest, 0.0)))
        stable = float((matrix * matrix).sum() / largest) if largest > 0 else None
    return {"params": params, "nonfinite": nonfinite,
            "norm": float(np.sqrt((values * values).sum())) if values.size else None,
            "max_abs": float(np.abs(values).max()) if values.size else None,
            "zero_fraction": float((values == 0).sum() / params) if params else 0.0,
            "top_singular_value": top, "stable_rank": stable}


def weight_sketch(arrays: list[np.ndarray]) -> np.ndarray:
    """All values of the arrays, flattened in order (non-finite as 0): whole up to SKETCH_DIMS values, else their
    count sketch to SKETCH_DIMS (seeded by the size only, so two runs of the same architecture match)."""
    flat = np.concatenate([np.nan_to_num(np.asarray(a, dtype=np.float64).ravel(), nan=0.0, posinf=0.0, neginf=0.0)
                           for a in arrays])
    if flat.size <= SKETCH_DIMS:
        return flat
    buckets, signs = sketch_indices(ViewSpec(COUNT_SKETCH, int(flat.size), SKETCH_DIMS, _SEED))
    return np.bincount(buckets, weights=signs * flat, minlength=SKETCH_DIMS)


def relative_change(now: np.ndarray, then: np.ndarray) -> float | None:
    """‖now − then‖ / ‖then‖ from two sketches of the same size (None when they cannot be compared)."""
    if now.shape != then.shape:
        return None
    reference = float(np.linalg.norm(then))
    return float(np.linalg.norm(now - then) / reference) if reference > 0 else None
