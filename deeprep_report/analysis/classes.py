"""Class structure of a representation: nearest-centroid accuracy, silhouette, unit selectivity, 2-D views."""

from __future__ import annotations

import numpy as np


def nearest_centroid_accuracy(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """Accuracy on ``test`` of assigning each sample to the nearest class mean of ``train`` (Euclidean)."""
    classes = np.unique(y[train])
    centroids = np.stack([x[train][y[train] == c].mean(axis=0) for c in classes])
    distances = ((x[test][:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return float((classes[distances.argmin(axis=1)] == y[test]).mean())


def silhouette(x: np.ndarray, y: np.ndarray, samples: int, seed: int) -> float:
    """Mean silhouette of the class labels (Euclidean), on at most ``samples`` seeded samples."""
    from sklearn.metrics import silhouette_score

    if len(np.unique(y)) < 2:
        return float("nan")
    size = min(samples, len(y))
    return float(silhouette_score(x, y, sample_size=size if size < len(y) else None, random_state=seed))


def selectivity(pooled: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Class selectivity index of each unit (Morcos et al. 2018): (μ_max − μ_rest) / (μ_max + μ_rest).

    μ are the unit's class-conditional mean activations; μ_rest is the mean of
    the other classes' means. 1 for a unit active for one class only, 0 for a
    unit that does not distinguish classes. Undefined (NaN) when μ_max + μ_rest
    ≤ 0 with μ_max ≠ μ_rest, which needs negative activations.
    """
    classes = np.unique(y)
    means = np.stack([pooled[y == c].mean(axis=0) for c in classes]).astype(np.float64)  # (K, C)
    top = means.max(axis=0)
    rest = (means.sum(axis=0) - top) / max(len(classes) - 1, 1)
    denominator = top + rest
    with np.errstate(invalid="ignore", divide="ignore"):
        index = np.where(denominator > 0, (top - rest) / denominator, np.nan)
    return np.where(top == rest, 0.0, index)


def projection_2d(x: np.ndarray, method: str, seed: int) -> np.ndarray:
    """2-D coordinates of the samples: PCA (default) or t-SNE."""
    x = np.asarray(x, dtype=np.float64)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(2, random_state=seed, init="pca", perplexity=min(30.0, (len(x) - 1) / 3)).fit_transform(x)
    centred = x - x.mean(axis=0)
    if centred.shape[1] == 1:
        return np.column_stack([centred[:, 0], np.zeros(len(x))])
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    coordinates = centred @ vt[:2].T
    signs = np.sign(coordinates[np.abs(coordinates).argmax(axis=0), range(2)])  # deterministic orientation
    return coordinates * np.where(signs == 0, 1, signs)
