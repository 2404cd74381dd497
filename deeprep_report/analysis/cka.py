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
from typing import Any, Sequence

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


class GramStack:
    """Centred Gram matrices of several layers on the same n rows, one flattened float32 row each.

    Each layer costs one n × n Gram product when it is added; CKA between any
    two layers is then one inner product of their rows, so a matrix of L layers
    costs L Gram products, not L² feature products. Above ``MEMORY_BYTES`` the
    stack lives in a memory-mapped file in ``folder`` (deleted with the stack),
    so memory stays bounded by a block of columns, not by L.
    """

    MEMORY_BYTES = 256 << 20
    BLOCK = 1 << 18

    def __init__(self, layers: int, rows: int, debiased: bool, folder: str | None = None) -> None:
        self.rows = rows
        self.debiased = debiased
        self.count = 0
        self._terms: list[float] = []  # ⟨K̃_i, K̃_i⟩, kept when a layer is added (no second pass over the stack)
        self._file = None
        shape = (max(layers, 1), rows * rows)
        if shape[0] * shape[1] * 4 > self.MEMORY_BYTES and folder is not None:
            import tempfile

            self._file = tempfile.NamedTemporaryFile(dir=folder, prefix=".deeprep-grams-", suffix=".f32")
            self.grams = np.memmap(self._file, dtype=np.float32, mode="w+", shape=shape)
        else:
            self.grams = np.zeros(shape, dtype=np.float32)

    def add(self, x: np.ndarray) -> int:
        """Add a layer's features on the stack's rows, (n, d); returns its index."""
        if len(x) != self.rows:
            raise ValueError(f"expected {self.rows} rows, got {len(x)}")
        centred = centre_gram(_linear_gram(x), self.debiased).astype(np.float32).ravel()
        self.grams[self.count] = centred
        self._terms.append(float(np.dot(centred.astype(np.float64), centred.astype(np.float64))))
        self.count += 1
        return self.count - 1

    def inner(self, other: "GramStack | None" = None) -> np.ndarray:
        """⟨K̃_i, L̃_j⟩ for every layer i of this stack and j of ``other`` (default: this one), in float64."""
        other = other or self
        if other.rows != self.rows:
            raise ValueError("Gram matrices of different row sets cannot be compared")
        total = np.zeros((self.count, other.count))
        for start in range(0, self.grams.shape[1], self.BLOCK):
            mine = np.asarray(self.grams[: self.count, start : start + self.BLOCK], dtype=np.float64)
            theirs = mine if other is self else np.asarray(other.grams[: other.count, start : start + self.BLOCK],
                                                           dtype=np.float64)
            total += mine @ theirs.T
        return total

    def self_terms(self) -> np.ndarray:
        return np.asarray(self._terms)

    def close(self) -> None:
        if self._file is not None:
            del self.grams
            self._file.close()
            self._file = None


def similarity(inner: np.ndarray, self_a: np.ndarray, self_b: np.ndarray) -> np.ndarray:
    """CKA from Gram inner products: NaN where a layer is constant (its centred Gram matrix is 0)."""
    denominator = np.sqrt(np.outer(np.maximum(self_a, 0.0), np.maximum(self_b, 0.0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, inner / np.where(denominator > 0, denominator, 1.0), np.nan)


def stack_of(layers: Sequence[np.ndarray], debiased: bool, rows: np.ndarray | None = None) -> GramStack:
    count = len(layers[0]) if rows is None else len(rows)
    stack = GramStack(len(layers), count, debiased)
    for layer in layers:
        stack.add(np.asarray(layer)[rows] if rows is not None else layer)
    return stack


def cka_matrix(layers: Sequence[np.ndarray], debiased: bool) -> np.ndarray:
    """Linear CKA between every pair of layers (symmetric, ones on the diagonal for non-constant layers)."""
    stack = stack_of(layers, debiased)
    terms = stack.self_terms()
    matrix = similarity(stack.inner(), terms, terms)
    np.fill_diagonal(matrix, np.where(terms > 0, 1.0, np.nan))
    return matrix


def cross_cka_matrix(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], debiased: bool) -> np.ndarray:
    """Linear CKA between every layer of one network (rows) and every layer of another (columns), same samples."""
    first, second = stack_of(xs, debiased), stack_of(ys, debiased)
    return similarity(first.inner(second), first.self_terms(), second.self_terms())


def minibatch_cka_matrix(layers: Sequence[Any], batch_size: int, seed: int = 0, folder: str | None = None) -> np.ndarray:
    """Linear CKA between every pair of layers from unbiased HSIC averaged over minibatches.

    ``layers`` are arrays (n, d) or readers with ``n`` and ``at(sorted rows)`` (``features.Rows``), so only
    one batch of each layer is read at a time. Rows are shuffled (seeded) and cut into batches of
    ``batch_size`` (a last batch smaller than 4 is dropped: the estimator needs n ≥ 4). Per batch each
    layer's b × b linear Gram matrix is U-centred once; memory is O(b²·layers), in ``folder`` when large,
    whatever n is.
    """
    readers = [layer.at if hasattr(layer, "at") else np.asarray(layer).__getitem__ for layer in layers]
    n = layers[0].n if hasattr(layers[0], "at") else len(layers[0])
    order = np.random.default_rng(seed).permutation(n)
    total = np.zeros((len(layers), len(layers)))
    for start in range(0, n, batch_size):
        rows = np.sort(order[start : start + batch_size])
        if len(rows) < 4:
            continue
        stack = GramStack(len(layers), len(rows), True, folder)
        try:
            for read in readers:
                stack.add(read(rows))
            total += stack.inner()
        finally:
            stack.close()
    return similarity(total, np.diag(total), np.diag(total))


def sample_rows(candidates: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """At most ``samples`` of the candidate rows, seeded, sorted: the rows CKA is computed on."""
    candidates = np.asarray(candidates)
    if len(candidates) <= samples:
        return candidates
    return np.sort(np.random.default_rng([seed, len(candidates), 0xC4A]).choice(candidates, samples, replace=False))


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
