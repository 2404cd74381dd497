"""Geometry of a representation: intrinsic dimension (TwoNN), effective rank, participation ratio,
PCA components for a share of the variance."""

from __future__ import annotations

import math

import numpy as np

from deeprep_report.analysis.features import Rows
from deeprep_report.analysis.probes import RidgeStatistics


def twonn(points: np.ndarray, discard: float = 0.1) -> float:
    """Intrinsic dimension by TwoNN (Facco et al. 2017) on one set of points.

    μ = r₂/r₁ for each point (distances to its two nearest neighbours, in
    float64; points whose nearest neighbour is a duplicate, r₁ = 0, are
    removed); with μ sorted and F_i = i/N, the dimension is the slope of the
    line through the origin fitting −log(1 − F) against log μ, after
    discarding the ``discard`` fraction of largest μ.
    """
    x = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    squared = (x * x).sum(axis=1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2 * (x @ x.T), 0.0)
    np.fill_diagonal(distances, np.inf)
    nearest = np.sqrt(np.partition(distances, 1, axis=1)[:, :2])
    r1, r2 = nearest[:, 0], nearest[:, 1]
    keep = r1 > 0
    mu = np.sort(r2[keep] / r1[keep])
    n = len(mu)
    if n < 3:
        return float("nan")
    kept = int(math.floor(n * (1 - discard)))
    kept = min(max(kept, 2), n - 1)  # F_n = 1 has no logarithm
    log_mu = np.log(mu[:kept])
    target = -np.log(1 - np.arange(1, kept + 1) / n)
    denominator = float(log_mu @ log_mu)
    return float(log_mu @ target / denominator) if denominator > 0 else float("nan")


def twonn_repeated(points: np.ndarray | Rows, subsample: int, repeats: int, discard: float,
                   seed: int) -> tuple[float, float]:
    """Mean and standard deviation of TwoNN over ``repeats`` seeded subsamples of at most ``subsample`` points
    (an array, or a :class:`Rows` source of which only the subsamples are read)."""
    source = points if isinstance(points, Rows) else Rows.of_array(points)
    rng = np.random.default_rng(seed)
    n = source.n
    if n <= subsample:
        estimates = [twonn(source.at(np.arange(n)), discard)]
    else:
        estimates = [twonn(source.at(np.sort(rng.choice(n, subsample, replace=False))), discard)
                     for _ in range(repeats)]
    finite = [e for e in estimates if math.isfinite(e)]
    if not finite:
        return float("nan"), float("nan")
    return float(np.mean(finite)), float(np.std(finite))


def spectrum(points: np.ndarray) -> np.ndarray:
    """Singular values of the column-centred points, largest first (computed on the smaller Gram side)."""
    x = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    x = x - x.mean(axis=0)
    small = x.T @ x if x.shape[1] <= x.shape[0] else x @ x.T
    eigenvalues = np.linalg.eigvalsh(small)[::-1]
    return np.sqrt(np.maximum(eigenvalues, 0.0))


def spectrum_of(source: Rows) -> np.ndarray:
    """:func:`spectrum` of a row source: from its rows when there are at most as many as dims, else from the
    centred XᵀX accumulated in chunks (memory d², not N·d)."""
    if source.n <= source.dims:
        return spectrum(source.at(np.arange(source.n)))
    statistics = None
    for _, block in source.chunks():
        statistics = statistics or RidgeStatistics(source.dims, 0, block[0])
        statistics.add(block, np.zeros((len(block), 0)))
    eigenvalues = np.linalg.eigvalsh(statistics.centred()[0])[::-1]
    return np.sqrt(np.maximum(eigenvalues, 0.0))


def effective_rank(singular_values: np.ndarray) -> float:
    """Roy & Vetterli (2007): exp of the entropy of the normalised singular values."""
    s = np.asarray(singular_values, dtype=np.float64)
    s = s[s > 0]
    if not s.size:
        return float("nan")
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def participation_ratio(singular_values: np.ndarray) -> float:
    """(Σλ)² / Σλ² over the covariance eigenvalues λ ∝ σ²."""
    eigenvalues = np.asarray(singular_values, dtype=np.float64) ** 2
    total = eigenvalues.sum()
    return float(total**2 / (eigenvalues**2).sum()) if total > 0 else float("nan")


def components_for(singular_values: np.ndarray, fraction: float) -> int:
    """Principal components needed to explain ``fraction`` of the variance."""
    eigenvalues = np.asarray(singular_values, dtype=np.float64) ** 2
    total = eigenvalues.sum()
    if total <= 0:
        return 0
    return int(np.searchsorted(np.cumsum(eigenvalues) / total, fraction - 1e-12) + 1)
