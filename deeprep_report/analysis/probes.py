"""Linear probes (Alain & Bengio 2016): how linearly decodable the classes are from a layer.

Protocol: one stratified train/test split from the run seed, shared by every
layer; features standardised with the training split's statistics; on the
training split only, multinomial logistic regression with its L2 strength
chosen by stratified k-fold cross-validation, then refitted; accuracy on the
held-out split with a bootstrap interval over its samples. Nothing is chosen
on the test split. Wider features are first projected on their principal
components fitted on the training split (at most ``max_dims``): an
L2-regularised linear model's weights lie in the span of the training
samples, so up to the number of training samples this loses nothing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class ProbeResult:
    accuracy: float
    low: float
    high: float
    chance: float
    regularization: float
    dims: int

    def as_dict(self) -> dict[str, float | int]:
        return {"accuracy": self.accuracy, "low": self.low, "high": self.high, "chance": self.chance,
                "C": self.regularization, "dims": self.dims}


def split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (when every class has 2+ samples) train/test row indices, both sorted."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(labels))
    _, counts = np.unique(labels, return_counts=True)
    stratify = labels if counts.min() >= 2 else None
    train, test = train_test_split(rows, test_size=test_fraction, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(test)


def reduce(features: np.ndarray, fit_rows: np.ndarray, max_dims: int, seed: int) -> np.ndarray:
    """Project features on at most ``max_dims`` principal components fitted on ``fit_rows``."""
    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    if x.shape[1] <= max_dims:
        return x
    from sklearn.decomposition import PCA

    pca = PCA(n_components=min(max_dims, len(fit_rows)), svd_solver="randomized", random_state=seed)
    pca.fit(x[fit_rows])
    return pca.transform(x)


def linear_probe(features: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray, *,
                 cs: Sequence[float], folds: int, max_dims: int, bootstrap: int, seed: int,
                 max_iter: int = 300) -> ProbeResult:
    """Held-out accuracy of a cross-validated multinomial logistic regression on the features."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    x = reduce(features, train, max_dims, seed)
    scaler = StandardScaler().fit(x[train])
    train_x, test_x = scaler.transform(x[train]), scaler.transform(x[test])
    _, counts = np.unique(labels[train], return_counts=True)
    splits = max(2, min(folds, int(counts.min())))
    model = LogisticRegressionCV(Cs=list(cs), cv=StratifiedKFold(splits, shuffle=True, random_state=seed),
                                 max_iter=max_iter, n_jobs=None, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-convergence at the weakest regularization is expected
        model.fit(train_x, labels[train])
    correct = model.predict(test_x) == labels[test]
    low, high = bootstrap_interval(correct, bootstrap, seed)
    _, test_counts = np.unique(labels[test], return_counts=True)
    return ProbeResult(float(correct.mean()), low, high, float(test_counts.max() / len(test)),
                       float(model.C_[0]), int(x.shape[1]))


def bootstrap_interval(correct: np.ndarray, repeats: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the accuracy over the test samples."""
    if repeats <= 0 or not len(correct):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(correct), size=(repeats, len(correct)))
    accuracies = correct[draws].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(accuracies, tail)), float(np.quantile(accuracies, 1 - tail))
