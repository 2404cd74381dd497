"""Centered kernel alignment (Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited").

CKA(X, Y) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) for Gram matrices K, L of
the n samples' representations X (n × p) and Y (n × q). For linear kernels
the feature-space form ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) on column-centred X, Y
never builds an n × n matrix, so it is used whenever both layers have fewer
units than samples; otherwise the Gram form.

The biased HSIC estimator has a floor for unrelated features (≈ p/(n+p)); the
debiased one (Song et al. 2012, U-centred Gram matrices) is ≈ 0 for them and is
what minibatch CKA (Nguyen, Raghu & Kornblith 2021) averages over batches when
n is too large for one pass.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def linear_cka(x: np.ndarray, y: np.ndarray, debiased: bool = False) -> float:
    """Linear CKA of two representations of the same n samples, (n, p) and (n, q)."""
    n = x.shape[0]
    if x.shape[1] < n and y.shape[1] < n:
        return feature_cka(x, y, debiased)
    return gram_cka(_centre(x) @ _centre(x).T, _centre(y) @ _centre(y).T, debiased)


def feature_cka(x: np.ndarray, y: np.ndarray, debiased: bool = False) -> float:
    """Linear CKA in feature space: cost O(n p q), memory O(p² + q²) (rows are centred a chunk at a time)."""
    return _Features(x).cka(_Features(y), debiased)


class _Features:
    """One layer's centred statistics for feature-space CKA, computed once and reused for every pair."""

    CHUNK = 1024

    def __init__(self, x: np.ndarray) -> None:
        self.x = _as_rows(x)
        self.n = self.x.shape[0]
        self.mean = self.x.mean(axis=0, dtype=np.float64)
        gram = np.zeros((self.x.shape[1], self.x.shape[1]))
        self.rows = np.empty(self.n)
        for start, block in self.blocks():
            gram += block.T @ block
            self.rows[start : start + len(block)] = (block * block).sum(axis=1)
        self.self_term = _frobenius2(gram)

    def blocks(self):
        for start in range(0, self.n, self.CHUNK):
            yield start, self.x[start : start + self.CHUNK] - self.mean

    def cka(self, other: "_Features", debiased: bool) -> float:
        cross = np.zeros((self.x.shape[1], other.x.shape[1]))
        for (start, block), (_, other_block) in zip(self.blocks(), other.blocks()):
            cross += block.T @ other_block
        cross_term, self_x, self_y = _frobenius2(cross), self.self_term, other.self_term
        if debiased:
            n = self.n
            cross_term = _unbiased(cross_term, self.rows @ other.rows, self.rows.sum() * other.rows.sum(), n)
            self_x = _unbiased(self_x, self.rows @ self.rows, self.rows.sum() ** 2, n)
            self_y = _unbiased(self_y, other.rows @ other.rows, other.rows.sum() ** 2, n)
        return _ratio(cross_term, self_x, self_y)


def _unbiased(cross: float, rows: float, norms: float, n: int) -> float:
    """n(n−3)·HSIC₁ for linear kernels of centred features, from feature-space sums.

    With K = XXᵀ, r_i = ‖x_i‖² and Σ x_i = 0, the terms of the unbiased
    estimator are tr(K̃L̃) = ‖YᵀX‖² − Σ r_i s_i, 1ᵀK̃1 = −Σ r_i and
    1ᵀK̃L̃1 = Σ r_i s_i (K̃: K with a zero diagonal).
    """
    return cross - n / (n - 2) * rows + norms / ((n - 1) * (n - 2))


def gram_cka(k: np.ndarray, l: np.ndarray, debiased: bool = False) -> float:
    """CKA of two n × n Gram matrices (any kernel)."""
    k, l = centre_gram(k, debiased), centre_gram(l, debiased)
    return _ratio(float(np.vdot(k, l)), float(np.vdot(k, k)), float(np.vdot(l, l)))


def centre_gram(gram: np.ndarray, unbiased: bool = False) -> np.ndarray:
    """H K H (biased), or the U-centred K of the unbiased HSIC estimator (zero diagonal)."""
    gram = np.array(gram, dtype=np.float64, copy=True)
    n = gram.shape[0]
    if not unbiased:
        row = gram.mean(axis=0)
        return gram - row[None, :] - row[:, None] + row.mean()
    np.fill_diagonal(gram, 0.0)
    row = gram.sum(axis=0) / (n - 2)
    centred = gram - row[None, :] - row[:, None] + gram.sum() / ((n - 1) * (n - 2))
    np.fill_diagonal(centred, 0.0)
    return centred


def rbf_gram(x: np.ndarray, threshold: float = 1.0) -> np.ndarray:
    """RBF kernel with bandwidth ``threshold`` × the median distance between samples."""
    x = np.asarray(x, dtype=np.float64)
    dots = x @ x.T
    norms = np.diag(dots)
    squared = np.maximum(norms[:, None] + norms[None, :] - 2 * dots, 0.0)
    return np.exp(-squared / (2 * threshold**2 * np.median(squared)))


def minibatch_cka_matrix(layers: Sequence[np.ndarray], batch_size: int, seed: int = 0) -> np.ndarray:
    """Linear CKA between every pair of layers from unbiased HSIC averaged over minibatches.

    Rows are shuffled (seeded) and cut into batches of ``batch_size`` (a last
    batch smaller than 4 is dropped: the estimator needs n ≥ 4). Per batch each
    layer's b × b linear Gram matrix is U-centred once; memory is O(b²·layers).
    """
    n = layers[0].shape[0]
    order = np.random.default_rng(seed).permutation(n)
    total = np.zeros((len(layers), len(layers)))
    batches = 0
    for start in range(0, n, batch_size):
        rows = np.sort(order[start : start + batch_size])
        if len(rows) < 4:
            continue
        grams = [centre_gram(_linear_gram(layer[rows]), unbiased=True).ravel() for layer in layers]
        stacked = np.stack(grams)
        total += stacked @ stacked.T
        batches += 1
    diagonal = np.sqrt(np.maximum(np.diag(total), 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / np.outer(diagonal, diagonal)


def cka_matrix(layers: Sequence[np.ndarray], debiased: bool) -> np.ndarray:
    """Linear CKA between every pair of layers (symmetric, ones on the diagonal for non-constant layers).

    Layers narrower than the number of samples keep their centred statistics
    for every pair they enter; wider ones use the Gram form.
    """
    count = len(layers)
    n = layers[0].shape[0]
    narrow = {i: _Features(layer) for i, layer in enumerate(layers) if _as_rows(layer).shape[1] < n}
    matrix = np.eye(count)
    for i in range(count):
        for j in range(i + 1, count):
            if i in narrow and j in narrow:
                value = narrow[i].cka(narrow[j], debiased)
            else:
                value = linear_cka(layers[i], layers[j], debiased)
            matrix[i, j] = matrix[j, i] = value
    return matrix


def cross_cka_matrix(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], debiased: bool) -> np.ndarray:
    """Linear CKA between every layer of one network (rows) and every layer of another (columns), same samples."""
    n = xs[0].shape[0]
    narrow = [_Features(y) if _as_rows(y).shape[1] < n else None for y in ys]
    matrix = np.empty((len(xs), len(ys)))
    for i, x in enumerate(xs):
        features = _Features(x) if _as_rows(x).shape[1] < n else None
        for j, y in enumerate(ys):
            if features is not None and narrow[j] is not None:
                matrix[i, j] = features.cka(narrow[j], debiased)
            else:
                matrix[i, j] = linear_cka(x, y, debiased)
    return matrix


def paired_cka(x: np.ndarray, y: np.ndarray, estimator: str, minibatch_above: int, batch_size: int) -> float:
    """CKA of one layer in two runs or networks on the same samples, with the run's estimator settings
    (``estimator`` as resolved by :func:`choose_estimator`; minibatch CKA above ``minibatch_above`` samples)."""
    if x.shape[0] > minibatch_above:
        return float(minibatch_cka_matrix([x, y], batch_size)[0, 1])
    return linear_cka(x, y, debiased=estimator == "debiased")


def choose_estimator(setting: str, samples: int, widest: int) -> str:
    """'debiased' when n < 20 × the widest layer's units (where the biased floor p/(n+p) would mislead)."""
    if setting != "auto":
        return setting
    return "debiased" if samples < 20 * widest else "biased"


def _linear_gram(x: np.ndarray) -> np.ndarray:
    x = _centre(x)
    return x @ x.T


def _as_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x.reshape(len(x), -1)


def _centre(x: np.ndarray) -> np.ndarray:
    x = np.asarray(_as_rows(x), dtype=np.float64)
    return x - x.mean(axis=0)


def _frobenius2(matrix: np.ndarray) -> float:
    return float(np.vdot(matrix, matrix))


def _ratio(cross: float, self_x: float, self_y: float) -> float:
    denominator = math.sqrt(self_x * self_y) if self_x > 0 and self_y > 0 else 0.0
    return cross / denominator if denominator > 0 else float("nan")
