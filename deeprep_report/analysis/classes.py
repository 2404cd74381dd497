"""Class structure of a representation: nearest-centroid accuracy, silhouette, unit selectivity, 2-D views."""

from __future__ import annotations

from typing import Any

import numpy as np

from deeprep_report.analysis.features import Rows
from deeprep_report.store import read_rows


def nearest_centroid_accuracy(x: np.ndarray | Rows, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """Accuracy on ``test`` of assigning each sample to the nearest class mean of ``train`` (Euclidean); an array
    or a :class:`Rows` source, read in two chunked passes (class sums, then the test rows)."""
    source = x if isinstance(x, Rows) else Rows.of_array(x)
    classes = np.unique(y[train])
    sums = np.zeros((len(classes), source.dims))
    for mask, block, start in source.select(train):
        np.add.at(sums, np.searchsorted(classes, y[start : start + len(block)][mask]), block[mask])
    centroids = sums / np.bincount(np.searchsorted(classes, y[train]), minlength=len(classes))[:, None]
    correct = 0
    for mask, block, start in source.select(test):
        distances = (centroids * centroids).sum(axis=1)[None, :] - 2 * (block[mask] @ centroids.T)  # + ‖x‖²
        correct += int((classes[distances.argmin(axis=1)] == y[start : start + len(block)][mask]).sum())
    return correct / len(test)


def silhouette(x: np.ndarray, y: np.ndarray, samples: int, seed: int) -> float:
    """Mean silhouette of the class labels (Euclidean; Rousseeuw 1987), on at most ``samples`` seeded samples:
    per sample s = (b − a) / max(a, b), a the mean distance to its own class, b to the nearest other class."""
    if len(np.unique(y)) < 2:
        return float("nan")
    rows = np.arange(len(y))
    if len(y) > samples:
        rows = np.sort(np.random.default_rng(seed).choice(len(y), samples, replace=False))
    points, labels = np.asarray(x, dtype=np.float64)[rows], y[rows]
    squared = (points * points).sum(axis=1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * points @ points.T, 0.0))
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        return float("nan")
    member = labels[:, None] == classes[None, :]  # (n, K)
    means = distances @ member / counts[None, :]  # mean distance of each sample to each class
    own = member.argmax(axis=1)
    size = counts[own]
    a = np.where(size > 1, means[np.arange(len(labels)), own] * size / np.maximum(size - 1, 1), 0.0)
    means[np.arange(len(labels)), own] = np.inf
    b = means.min(axis=1)
    score = np.where(size > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
    return float(score.mean())


def selectivity_of(pooled: Any, y: np.ndarray, rows: np.ndarray | None = None, chunk: int = 8192) -> np.ndarray:
    """:func:`selectivity` of a stored (N, C) array at ``rows`` (all by default), read in chunks."""
    rows = np.arange(pooled.shape[0]) if rows is None else rows
    classes = np.unique(y)
    sums = np.zeros((len(classes), pooled.shape[1]))
    low = np.full(pooled.shape[1], np.inf)
    for start in range(0, len(rows), chunk):
        block = np.asarray(read_rows(pooled, rows[start : start + chunk]), dtype=np.float64)
        np.add.at(sums, np.searchsorted(classes, y[start : start + chunk]), block)
        low = np.minimum(low, block.min(axis=0))
    means = sums / np.bincount(np.searchsorted(classes, y), minlength=len(classes))[:, None]
    return _selectivity(means, low)


def selectivity(pooled: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Class selectivity index of each unit (Morcos et al. 2018): (μ_max − μ_rest) / (μ_max + μ_rest), in [0, 1].

    μ are the unit's class-conditional mean activations; μ_rest is the mean of
    the other classes' means. 1 for a unit active for one class only, 0 for a
    unit that does not distinguish classes. The index is defined for
    non-negative activations only: a unit that takes a negative value anywhere
    (tanh, linear, embeddings) gets NaN, and so does no unit ever, spuriously,
    read above 1.
    """
    return selectivity_of(np.asarray(pooled), y)


def _selectivity(means: np.ndarray, low: np.ndarray) -> np.ndarray:
    """The index from class means (K, C) and each unit's minimum (NaN where it goes below 0)."""
    top = means.max(axis=0)
    rest = (means.sum(axis=0) - top) / max(len(means) - 1, 1)
    denominator = top + rest
    with np.errstate(invalid="ignore", divide="ignore"):
        index = np.where(denominator > 0, (top - rest) / denominator, 0.0)
    return np.where(low < 0, np.nan, index)


def projection_2d(x: np.ndarray, method: str, seed: int) -> np.ndarray:
    """2-D coordinates of the samples: PCA (default) or t-SNE."""
    x = np.asarray(x, dtype=np.float64)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(2, random_state=seed, init="pca", perplexity=min(30.0, (len(x) - 1) / 3)).fit_transform(x)
    from scipy.linalg import eigh

    centred = x - x.mean(axis=0)
    n, d = centred.shape
    if d == 1 or n < 3:
        return np.column_stack([centred[:, 0], np.zeros(n)]) if d == 1 else np.zeros((n, 2))
    if n <= d:  # the top two eigenvectors of the smaller Gram side (one full SVD cost ~0.5 s a layer)
        values, vectors = eigh(centred @ centred.T, subset_by_index=[n - 2, n - 1])
        coordinates = vectors[:, ::-1] * np.sqrt(np.maximum(values[::-1], 0.0))
    else:
        _, vectors = eigh(centred.T @ centred, subset_by_index=[d - 2, d - 1])
        coordinates = centred @ vectors[:, ::-1]
    signs = np.sign(coordinates[np.abs(coordinates).argmax(axis=0), range(2)])  # deterministic orientation
    return coordinates * np.where(signs == 0, 1, signs)
