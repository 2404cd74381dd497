"""The rules that turn moments into reported numbers: activation families, dead units, saturation.

Definitions (also in ``docs/statistics.md``): a *unit* is one channel of a conv
map over all samples and positions, one unit of a dense layer, or one feature of
a sequence layer over all tokens. Moments, extrema and the histogram cover the
finite values; non-finite values are counted separately.
"""

from __future__ import annotations

import math

import numpy as np

from deeprep_report.stats.moments import Moments


#: Activations whose units are *dead* when never > 0 on the whole dataset: those that output exactly 0 for every
#: negative input. A leaky ReLU, PReLU, ELU, SELU, GELU or SiLU unit that varies below 0 still carries
#: information (its negative side is not flat), so for them, as for every activation, dead means constant.
RELU_FAMILY = frozenset({"relu", "relu6"})

#: Bounded activations: (lower bound, upper bound, lower bound saturates, upper bound saturates).
#: relu6's lower bound is the ReLU zero (counted as zeros), so only its upper bound saturates.
BOUNDED = {
    "sigmoid": (0.0, 1.0, True, True),
    "hard_sigmoid": (0.0, 1.0, True, True),
    "tanh": (-1.0, 1.0, True, True),
    "softsign": (-1.0, 1.0, True, True),
    "softmax": (0.0, 1.0, True, True),
    "relu6": (0.0, 6.0, False, True),
}


def saturation_thresholds(activation: str | None, tol: float) -> tuple[float, float] | None:
    """(at or below, at or above) which a value counts as saturated, or None for unbounded activations.

    A value is saturated when it lies within ``tol`` of the activation's range
    from a saturating bound, e.g. sigmoid with tol 0.01: a <= 0.01 or a >= 0.99.
    """
    if activation not in BOUNDED:
        return None
    low, high, low_saturates, high_saturates = BOUNDED[activation]
    margin = tol * (high - low)
    return (low + margin if low_saturates else -math.inf, high - margin if high_saturates else math.inf)


def unit_stats(moments: Moments, activation: str | None, bounded: bool) -> dict[str, np.ndarray]:
    """Reported per-unit statistics (each (C,)); NaN where a unit has no finite value.

    ``std`` is the population standard deviation (numpy's default, ddof=0).
    A unit is dead when it never varies (min == max) or, after a ReLU or ReLU6
    (zero for every negative input), is never > 0.
    """
    values = np.maximum(moments.values, 1)
    has = moments.count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(np.maximum(moments.m2, 0.0) / moments.count)
    nan = np.full(moments.count.shape, np.nan)
    dead = has & ((moments.min == moments.max) | ((moments.max <= 0) & (activation in RELU_FAMILY)))
    return {
        "mean": np.where(has, moments.mean, nan),
        "std": np.where(has, std, nan),
        "min": np.where(has, moments.min, nan),
        "max": np.where(has, moments.max, nan),
        "zero_fraction": moments.zeros / values,
        "nonfinite_fraction": moments.nonfinite / values,
        "saturation_fraction": moments.saturated / values if bounded else nan,
        "dead": dead,
    }
