"""Class structure of a representation: nearest-centroid accuracy, silhouette, unit selectivity, 2-D views."""

from __future__ import annotations

import numpy as np


def nearest_centroid_accuracy(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """Accuracy on ``test`` of assigning each sample to the nearest class mean of ``train`` (Euclidean)."""
    classes = np.unique(y[train])
    centroids = np.stack([x[train][y[train] == c].mean(axis=0) for c in classes])
    distances = (centroids * centroids).sum(axis=1)[None, :] - 2 * (x[test] @ centroids.T)  # + ‖x‖², same per row
    return float((classes[distances.argmin(axis=1)] == y[test]).mean())


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


def selectivity(pooled: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Class selectivity index of each unit (Morcos et al. 2018): (μ_max − μ_rest) / (μ_max + μ_rest), in [0, 1].

    μ are the unit's class-conditional mean activations; μ_rest is the mean of
    the other classes' means. 1 for a unit active for one class only, 0 for a
    unit that does not distinguish classes. The index is defined for
    non-negative activations only: a unit that takes a negative value anywhere
    (tanh, linear, embeddings) gets NaN, and so does no unit ever, spuriously,
    read above 1.
    """
    classes = np.unique(y)
    means = np.stack([pooled[y == c].mean(axis=0) for c in classes]).astype(np.float64)  # (K, C)
    top = means.max(axis=0)
    rest = (means.sum(axis=0) - top) / max(len(classes) - 1, 1)
    denominator = top + rest
    with np.errstate(invalid="ignore", divide="ignore"):
        index = np.where(denominator > 0, (top - rest) / denominator, 0.0)
    return np.where(np.asarray(pooled).min(axis=0) < 0, np.nan, index)


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
