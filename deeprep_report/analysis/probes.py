"""Linear probes (Alain & Bengio 2016): how linearly decodable the classes are from a layer's view.

A probe is a ridge regression of one-hot class targets on the view, in closed
form from sufficient statistics: per split, the count, the sums of features and
targets, XᵀX and XᵀY. They are additive over batches of rows (and over shards
of a run), so a probe never needs more than a batch of rows at once beyond the
statistics. Protocol: one stratified train/test split from the run seed, shared
by every layer; the penalty, relative to the total variance of the view (so it
does not depend on the layer's scale, nor on constant columns), is chosen on the training split alone by
generalised cross-validation (Golub, Heath & Wahba 1979), whose error for every
candidate penalty follows from one eigendecomposition of the centred XᵀX; the
refit predicts the held-out split, with a bootstrap interval over its samples.
With fewer training rows than dims the same fit is computed from the rows'
Gram matrix instead (one n × n eigendecomposition; identical numbers).
Nothing is chosen on the test split. No feature is standardised, so a direction
with (near) zero variance gets no weight: constant or duplicated columns leave
the probe as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from deeprep_report.analysis.features import Rows



@dataclass(frozen=True)
class ProbeResult:
    accuracy: float
    low: float
    high: float
    chance: float
    penalty: float
    dims: int

    def as_dict(self) -> dict[str, float | int]:
        return {"accuracy": self.accuracy, "low": self.low, "high": self.high, "chance": self.chance,
                "penalty": self.penalty, "dims": self.dims}


class RidgeStatistics:
    """Additive sufficient statistics of (features, one-hot targets), shifted for numerical stability."""

    def __init__(self, dims: int, classes: int, shift: np.ndarray) -> None:
        self.n = 0
        self.shift = np.asarray(shift, dtype=np.float64)
        self.sum_x = np.zeros(dims)
        self.sum_y = np.zeros(classes)
        self.xtx = np.zeros((dims, dims))
        self.xty = np.zeros((dims, classes))
        self.yty = np.zeros(classes)

    def add(self, x: np.ndarray, y: np.ndarray) -> "RidgeStatistics":
        """Fold rows ``x`` (n, d) with one-hot targets ``y`` (n, K) in; returns self."""
        x = np.asarray(x, dtype=np.float64) - self.shift
        self.n += len(x)
        self.sum_x += x.sum(axis=0)
        self.sum_y += y.sum(axis=0)
        self.xtx += x.T @ x
        self.xty += x.T @ y
        self.yty += (y * y).sum(axis=0)
        return self

    def merge(self, other: "RidgeStatistics") -> "RidgeStatistics":
        """The statistics of both sets of rows (same shift)."""
        if not np.array_equal(self.shift, other.shift):
            raise ValueError("statistics with different shifts cannot be merged")
        merged = RidgeStatistics(len(self.sum_x), len(self.sum_y), self.shift)
        merged.n = self.n + other.n
        for name in ("sum_x", "sum_y", "xtx", "xty", "yty"):
            setattr(merged, name, getattr(self, name) + getattr(other, name))
        return merged

    def centred(self) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
        """(C = centred XᵀX, B = centred XᵀY, centred ‖Y‖², feature mean, target mean)."""
        mean_x, mean_y = self.sum_x / self.n, self.sum_y / self.n
        covariance = self.xtx - self.n * np.outer(mean_x, mean_x)
        cross = self.xty - self.n * np.outer(mean_x, mean_y)
        targets = float((self.yty - self.n * mean_y * mean_y).sum())
        return (covariance + covariance.T) / 2, cross, targets, mean_x + self.shift, mean_y


@dataclass(frozen=True)
class RidgeFit:
    weights: np.ndarray  # (d, K)
    intercept: np.ndarray  # (K,)
    penalty: float  # relative to the total variance (trace of the centred XᵀX)
    gcv: float


def fit_ridge(statistics: RidgeStatistics, penalties: Sequence[float]) -> RidgeFit | None:
    """The ridge fit whose penalty has the lowest GCV error; None when the features are constant."""
    covariance, cross, targets, mean_x, mean_y = statistics.centred()
    values, vectors = np.linalg.eigh(covariance)
    fit = _gcv(np.maximum(values, 0.0), vectors.T @ cross, targets, statistics.n, penalties)
    if fit is None:
        return None
    shrink, penalty, gcv = fit
    weights = vectors @ ((vectors.T @ cross) * shrink[:, None])
    return RidgeFit(weights, mean_y - mean_x @ weights, penalty, gcv)


def fit_ridge_dual(x: np.ndarray, y: np.ndarray, penalties: Sequence[float]) -> RidgeFit | None:
    """The same fit as :func:`fit_ridge` from the n × n Gram matrix of the rows: cheaper when n < dims."""
    x = np.asarray(x, dtype=np.float64)
    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    centred, targets = x - mean_x, y - mean_y
    values, vectors = np.linalg.eigh(centred @ centred.T)
    projected = vectors.T @ targets  # (n, K)
    fit = _gcv(np.maximum(values, 0.0), projected, float((targets * targets).sum()), len(x), penalties, dual=True)
    if fit is None:
        return None
    shrink, penalty, gcv = fit
    weights = centred.T @ (vectors @ (projected * shrink[:, None]))
    return RidgeFit(weights, mean_y - mean_x @ weights, penalty, gcv)


def _gcv(values: np.ndarray, projected: np.ndarray, targets: float, n: int, penalties: Sequence[float],
         dual: bool = False) -> tuple[np.ndarray, float, float] | None:
    """(shrinkage per eigenvector, penalty, GCV error) of the best penalty.

    ``values`` are the eigenvalues of the centred XᵀX (or of the centred Gram matrix XXᵀ, ``dual``: the same
    non-zero spectrum) and ``projected`` the targets' cross products in that eigenbasis. The penalty is
    relative to the total variance, tr(XᵀX), so constant columns do not move it.
    """
    scale = float(values.sum())
    if not scale > 0:
        return None
    squared = (projected * projected).sum(axis=1)
    best = None
    for penalty in sorted(penalties, reverse=True):  # ties go to the stronger penalty
        shrink = 1.0 / (values + penalty * scale)
        if dual:  # residual (I − H)Y with H = K(K + λ)⁻¹: the component k is scaled by λ/(λ_k + λ)
            residual = targets - (squared * (1 - (penalty * scale * shrink) ** 2)).sum()
        else:
            residual = targets - 2 * (shrink * squared).sum() + (values * shrink * shrink * squared).sum()
        freedom = 1.0 + (values * shrink).sum()  # the intercept is one more degree of freedom
        gcv = (max(residual, 0.0) / n) / (1.0 - freedom / n) ** 2 if freedom < n else np.inf
        if best is None or gcv < best[2]:
            best = (shrink, float(penalty), float(gcv))
    return best


def split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test row indices, both sorted: per class, a seeded ``test_fraction`` of its rows (at
    least one, and never all of them) is held out."""
    rng = np.random.default_rng([seed, len(labels), 0x5917])
    rows = np.arange(len(labels))
    held: list[np.ndarray] = []
    for value in np.unique(labels):
        members = rows[labels == value]
        if len(members) < 2:
            raise ValueError(f"class {value!r} has a single sample")
        count = min(max(1, int(round(test_fraction * len(members)))), len(members) - 1)
        held.append(rng.permutation(members)[:count])
    test = np.sort(np.concatenate(held))
    return np.setdiff1d(rows, test), test


def linear_probe(features: np.ndarray | Rows, labels: np.ndarray, train: np.ndarray, test: np.ndarray, *,
                 penalties: Sequence[float], bootstrap: int, seed: int) -> ProbeResult | None:
    """Held-out accuracy of the GCV-chosen ridge probe on ``features`` (N, d), an array or a :class:`Rows`
    source read in chunks; None for constant features."""
    source = features if isinstance(features, Rows) else Rows.of_array(features)
    classes = np.unique(labels[train])
    if len(train) < source.dims:  # fewer training rows than dims: the same fit from the smaller Gram side
        fit = fit_ridge_dual(source.at(train), one_hot(labels[train], classes), penalties)
    else:
        statistics = None
        for mask, block, start in source.select(train):
            if statistics is None:
                statistics = RidgeStatistics(source.dims, len(classes), block[mask][0])
            statistics.add(block[mask], one_hot(labels[start : start + len(block)][mask], classes))
        fit = fit_ridge(statistics, penalties)
    if fit is None:
        return None
    predicted = np.concatenate([classes[(block[mask] @ fit.weights + fit.intercept).argmax(axis=1)]
                                for mask, block, _ in source.select(test)])
    correct = predicted == labels[test]
    low, high = bootstrap_interval(correct, bootstrap, seed)
    _, test_counts = np.unique(labels[test], return_counts=True)
    return ProbeResult(float(correct.mean()), low, high, float(test_counts.max() / len(test)), fit.penalty,
                       int(source.dims))


def one_hot(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return (labels[:, None] == classes[None, :]).astype(np.float64)


def bootstrap_interval(correct: np.ndarray, repeats: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the accuracy over the test samples."""
    if repeats <= 0 or not len(correct):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    batch = max(1, (4 << 20) // (8 * len(correct)))  # resamples drawn at a time: memory does not grow with N
    accuracies = np.concatenate([correct[rng.integers(0, len(correct), size=(min(batch, repeats - done),
                                                                             len(correct)))].mean(axis=1)
                                 for done in range(0, repeats, batch)])
    tail = (1 - level) / 2
    return float(np.quantile(accuracies, tail)), float(np.quantile(accuracies, 1 - tail))
