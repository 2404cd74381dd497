"""Token-level analysis of sequence layers: what each depth encodes about a token, with control tasks.

Every token-aligned sequence layer stores its view of the same seeded sample of
real (unpadded, non-special) token positions (``extract/tokens.py``). On those
rows, per layer:

- *token probes*: ridge probes (``probes.linear_probe``) for labels a tokenizer
  gives without annotation — the token's identity among the most frequent
  types, the previous token's identity (needs context), its relative position
  in the sequence, whether it starts a word (WordPiece) — and the dataset's
  own per-token labels. Each task but identity has a *control task* (Hewitt &
  Liang 2019): the same probe on a label drawn at random once per token
  *type*, with the task's label frequencies; **selectivity = task accuracy −
  control accuracy**. (Identity's control would be a coarsening of the task
  itself: it has none, and no selectivity.)
  A layer that merely memorises types scores high on both; selectivity is what
  the layer encodes beyond the token's type. The split is by sequence, so no
  sequence has tokens on both sides.
- *token CKA* between the sequence layers (linear, on the token rows), and the
  effective rank of each layer's token view.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deeprep_report.analysis import cka, geometry, probes
from deeprep_report.config import AnalysisSection
from deeprep_report.store import StoreReader

#: Tasks need at least this many sampled tokens with a label (and two classes) to be probed.
MIN_TOKENS = 50
POSITION_BINS = 4


def analyze_tokens(store: StoreReader, model: str, dataset: str, settings: AnalysisSection, seed: int,
                   notes: list[str]) -> dict[str, Any] | None:
    """The token-level results of one pair (summary.json ``analysis.tokens``), or None for non-sequence pairs;
    what could not be computed goes to ``notes``."""
    tokens = store.tokens(model, dataset)
    layers = [path for path in store.layers(model, dataset) if store.token_view(model, dataset, path) is not None]
    if tokens is None or not layers:
        return None
    if len(tokens["positions"]) < MIN_TOKENS:
        notes.append(f"only {len(tokens['positions'])} real tokens sampled: no token-level analysis")
        return None
    views = [np.asarray(store.token_view(model, dataset, path)[()], dtype=np.float64) for path in layers]
    finite = np.logical_and.reduce([np.isfinite(view).all(axis=1) for view in views])
    if not finite.all():
        notes.append(f"{int((~finite).sum())} sampled tokens with NaN/Inf in some sequence layer are left out of the "
                     "token-level analysis")
        tokens = {**tokens, "positions": tokens["positions"][finite]}
        views = [view[finite] for view in views]
    text = store.text(dataset) or {}
    tasks = token_tasks(tokens, text, settings.tokens.identity_types, seed)
    samples = tokens["positions"][:, 0]
    train, test = _split_by_sequence(samples, settings.probes.test_fraction, seed)
    result: dict[str, Any] = {"layers": layers, "tokens": int(len(samples)), "sequences": int(len(np.unique(samples))),
                              "mask_source": str(tokens.get("source", "")), "tasks": {}, "cka": None,
                              "effective_rank": None, "cka_with_random": None}
    if settings.probes.enabled:
        for name, task in tasks.items():
            result["tasks"][name] = _probe_task(task, views, train, test, settings, seed)
    if settings.cka.enabled:
        debiased = cka.choose_estimator(settings.cka.estimator, len(samples), max(v.shape[1] for v in views))
        result["cka"] = {"estimator": debiased, "matrix": _cka(views, views, debiased == "debiased")}
    if settings.geometry.enabled:
        result["effective_rank"] = [geometry.effective_rank(geometry.spectrum(view)) for view in views]
    return result


def token_tasks(tokens: dict[str, Any], text: dict[str, Any], identity_types: int,
                seed: int) -> dict[str, dict[str, Any]]:
    """Each task's label per sampled token (-1: not part of the task), its description and the control labels."""
    ids, mask, positions = tokens["ids"], tokens["mask"], tokens["positions"]
    sample, position = positions[:, 0], positions[:, 1]
    current = ids[sample, position]
    vocabulary = text.get("vocabulary")
    frequent = _frequent(current, identity_types)
    previous = np.where(position > 0, ids[sample, np.maximum(position - 1, 0)], -1)
    previous_real = (position > 0) & mask[sample, np.maximum(position - 1, 0)]
    real_index = np.cumsum(mask, axis=1)[sample, position] - 1
    relative = real_index / np.maximum(mask.sum(axis=1)[sample] - 1, 1)
    tasks = {
        "identity": (_classes_of(current, frequent), f"the token's type, among the {len(frequent)} most frequent"),
        "previous_token": (np.where(previous_real, _classes_of(previous, frequent), -1),
                           f"the previous token's type, among the same {len(frequent)}: needs context"),
        "position": (np.minimum((relative * POSITION_BINS).astype(np.int64), POSITION_BINS - 1),
                     f"which {POSITION_BINS}th of its sequence the token is in"),
    }
    if vocabulary is not None and any(token.startswith("##") for token in vocabulary[: 5000]):
        tasks["word_start"] = (word_starts(vocabulary, current).astype(np.int64),
                               "whether the token starts a word, not a ## continuation piece")
    for name, values in (text.get("token_labels") or {}).items():
        tasks[name] = (np.asarray(values)[sample, position].astype(np.int64), f"the dataset's token label {name!r}")
    out = {}
    for name, (labels, description) in tasks.items():
        # identity has no control task: one label per type *is* the task, so its control is a coarsening of it
        control = None if name == "identity" else control_labels(current, labels, seed)
        out[name] = {"labels": labels, "control": control, "description": description}
    return out


def word_starts(vocabulary: list[str], token_ids: np.ndarray) -> np.ndarray:
    """Whether each token starts a word (WordPiece continuation pieces start with ``##``): same shape as ids."""
    continuation = np.asarray([token.startswith("##") for token in vocabulary], dtype=bool)
    return ~continuation[np.clip(token_ids, 0, len(vocabulary) - 1)]


def control_labels(types: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """Hewitt & Liang's control task: one label per token type, drawn with the task's label frequencies; tokens
    outside the task (label -1) stay outside."""
    inside = labels >= 0
    values, counts = np.unique(labels[inside], return_counts=True)
    if not len(values):
        return labels.copy()
    unique_types, inverse = np.unique(types, return_inverse=True)
    rng = np.random.default_rng([seed, 0xC047])
    drawn = rng.choice(values, size=len(unique_types), p=counts / counts.sum())
    return np.where(inside, drawn[inverse], -1)


def _probe_task(task: dict[str, Any], views: list[np.ndarray], train: np.ndarray, test: np.ndarray,
                settings: AnalysisSection, seed: int) -> dict[str, Any]:
    labels, control = task["labels"], task["control"]
    inside = labels >= 0
    task_train, task_test = train[inside[train]], test[inside[test]]
    entry: dict[str, Any] = {"description": task["description"], "classes": int(len(np.unique(labels[inside]))),
                             "tokens": int(inside.sum()), "accuracy": [], "control": [], "selectivity": [],
                             "chance": None}
    if len(task_train) < MIN_TOKENS or len(task_test) < 2 or len(np.unique(labels[task_train])) < 2:
        entry["note"] = "too few labelled tokens to probe"
        return entry
    entry["chance"] = float(np.bincount(labels[task_test]).max() / len(task_test))

    def accuracy(view: np.ndarray, target: np.ndarray) -> float | None:
        result = probes.linear_probe(view, target, task_train, task_test, penalties=settings.probes.penalties,
                                     bootstrap=0, seed=seed)
        return None if result is None else result.accuracy

    for view in views:
        measured = accuracy(view, labels)
        controlled = accuracy(view, control) if control is not None else None
        entry["accuracy"].append(measured)
        entry["control"].append(controlled)
        entry["selectivity"].append(None if measured is None or controlled is None else measured - controlled)
    return entry


def _frequent(types: np.ndarray, count: int) -> np.ndarray:
    values, counts = np.unique(types, return_counts=True)
    order = np.lexsort((values, -counts))  # most frequent first, ties by id
    return np.sort(values[order[:count]])


def _classes_of(types: np.ndarray, frequent: np.ndarray) -> np.ndarray:
    index = np.searchsorted(frequent, types)
    found = (index < len(frequent)) & (frequent[np.minimum(index, len(frequent) - 1)] == types)
    return np.where(found, index, -1)


def _split_by_sequence(samples: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Token rows of a seeded ``test_fraction`` of the sequences (test) and of the others (train)."""
    sequences = np.unique(samples)
    rng = np.random.default_rng([seed, len(sequences), 0x70C5])
    held = rng.permutation(sequences)[: max(1, int(round(test_fraction * len(sequences))))]
    is_test = np.isin(samples, held)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def _cka(xs: list[np.ndarray], ys: list[np.ndarray], debiased: bool) -> list[list[float | None]]:
    matrix = [[cka.feature_cka(x, y, debiased) for y in ys] for x in xs]
    return [[float(v) if np.isfinite(v) else None for v in row] for row in matrix]


def twin_token_cka(store: StoreReader, model: str, twin: str, dataset: str, debiased: bool) -> list[float | None]:
    """Per sequence layer, token-level linear CKA between a model and its random twin (same token sample)."""
    layers = [p for p in store.layers(model, dataset) if store.token_view(model, dataset, p) is not None]
    out = []
    for path in layers:
        mine, theirs = store.token_view(model, dataset, path), store.token_view(twin, dataset, path)
        if theirs is None:
            out.append(None)
            continue
        value = cka.feature_cka(np.asarray(mine[()], dtype=np.float64), np.asarray(theirs[()], dtype=np.float64),
                                debiased)
        out.append(float(value) if np.isfinite(value) else None)
    return out
