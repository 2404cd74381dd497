"""A pair's tokens, resolved once before extraction: token ids, which positions are real, the token sample.

The mask of real tokens comes, in this order, from the data (a tokenizer's
padding, a ``mask`` array, a ``pad_id``), from a model input named
``padding_mask``, or from the model's own Keras mask (an ``Embedding`` with
``mask_zero=True`` reading a model input: id 0 is padding). Without any of them
every position counts, and the run says so. Sequence layers whose positions
are the tokens' (output (B, T, C) with the input's T) are then measured on real
tokens only (docs/statistics.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deeprep_report.sources.datasets import Dataset

NO_MASK = "none: every position counts (no mask in the data, no padding_mask input, no Embedding(mask_zero=True))"


@dataclass
class PairTokens:
    """Token ids and mask of a pair's samples (in sample order), and its sampled token positions."""

    array: str
    ids: np.ndarray  # (N, T) int
    mask: np.ndarray  # (N, T) bool, True at real tokens
    source: str  # where the mask comes from
    positions: np.ndarray  # (n, 2) int64 (sample, position) of real, non-special tokens, sorted
    content: np.ndarray | None = None  # (N, T) bool: real tokens that are not special ([CLS], [SEP]); None: mask

    @property
    def length(self) -> int:
        return int(self.ids.shape[1])

    def batch_mask(self, start: int, size: int) -> np.ndarray:
        return self.mask[start : start + size]

    def batch_content(self, start: int, size: int) -> np.ndarray:
        """Real, non-special tokens of a batch: where top contexts are looked for ([CLS] is real but no word)."""
        return (self.content if self.content is not None else self.mask)[start : start + size]

    def batch_positions(self, start: int, size: int) -> tuple[slice, np.ndarray]:
        """(rows of ``positions`` in this batch, their (sample - start, position))."""
        low, high = np.searchsorted(self.positions[:, 0], [start, start + size])
        chosen = self.positions[low:high]
        return slice(int(low), int(high)), np.stack([chosen[:, 0] - start, chosen[:, 1]], axis=1)


class TokenError(ValueError):
    """Token data that cannot be measured; the message names the sample and array."""


def embeddings_on_inputs(graph: Any) -> list[tuple[str, Any]]:
    """(model input name, layer) of every embedding layer that reads a model input directly."""
    found = []
    for info in graph.layers:
        layer = info.layer
        if layer is not None and hasattr(layer, "input_dim") and len(info.inputs) == 1 \
                and info.inputs[0].startswith("input:"):
            found.append((info.inputs[0][len("input:"):], layer))
    return found


def pair_tokens(graph: Any, dataset: Dataset, rows: np.ndarray, binding: dict[str, str], samples: int,
                seed: int) -> PairTokens | None:
    """The pair's tokens, or None when neither the data nor the model is a sequence of tokens."""
    embeddings = embeddings_on_inputs(graph)
    text = dataset.text
    if text is not None and text.tokens in binding.values():
        array = text.tokens
    elif embeddings and embeddings[0][0] in binding:
        array = binding[embeddings[0][0]]
    else:
        return None
    ids = dataset.read(rows, [array])[array]
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise TokenError(f"array {array!r}: token ids must be integers of shape (N, T), got {ids.dtype} {ids.shape}")
    for name, layer in embeddings:
        _check_vocabulary(ids if binding.get(name) == array else dataset.read(rows, [binding[name]])[binding[name]],
                          rows, binding[name], layer)
    mask, source = _mask(graph, dataset, rows, binding, array, ids, embeddings)
    empty = np.flatnonzero(~mask.any(axis=1))
    if len(empty):
        raise TokenError(f"row {int(rows[empty[0]])} of array {array!r} has no real token (all padding; mask from "
                         f"{source})")
    specials = set(text.special_ids) if text is not None else set()
    content = mask & ~np.isin(ids, list(specials)) if specials else None
    return PairTokens(array, ids, mask, source, sample_positions(mask, ids, specials, samples, seed), content)


def _mask(graph: Any, dataset: Dataset, rows: np.ndarray, binding: dict[str, str], array: str, ids: np.ndarray,
          embeddings: list[tuple[str, Any]]) -> tuple[np.ndarray, str]:
    text = dataset.text
    if text is not None and text.mask is not None and text.tokens == array:
        return np.asarray(text.mask[rows], dtype=bool), f"data: {text.mask_source}"
    if "padding_mask" in binding:
        values = dataset.read(rows, [binding["padding_mask"]])[binding["padding_mask"]]
        if values.shape != ids.shape:
            raise TokenError(f"array {binding['padding_mask']!r} (padding_mask) has shape {values.shape[1:]} per "
                             f"sample, but the token ids {array!r} have {ids.shape[1:]}")
        return values != 0, f"input padding_mask (array {binding['padding_mask']!r})"
    for name, layer in embeddings:
        if binding.get(name) == array and getattr(layer, "mask_zero", False):
            return ids != 0, f"model: {layer.name} has mask_zero=True (id 0 is padding)"
    return np.ones(ids.shape, dtype=bool), NO_MASK


def _check_vocabulary(ids: np.ndarray, rows: np.ndarray, array: str, layer: Any) -> None:
    size = int(layer.input_dim)
    bad = np.flatnonzero(((ids < 0) | (ids >= size)).any(axis=1))
    if len(bad):
        row = ids[bad[0]]
        value = int(row[(row < 0) | (row >= size)][0])
        raise TokenError(f"array {array!r} has token id {value} in row {int(rows[bad[0]])}, outside the vocabulary of "
                         f"layer {layer.name!r} (ids 0..{size - 1})")


def sample_positions(mask: np.ndarray, ids: np.ndarray, specials: set[int], samples: int, seed: int) -> np.ndarray:
    """A seeded sample of at most ``samples`` real, non-special token positions, sorted by (sample, position)."""
    eligible = mask & ~np.isin(ids, list(specials)) if specials else mask
    flat = np.flatnonzero(eligible)
    if len(flat) > samples:
        flat = np.sort(np.random.default_rng([seed, 0x70CE]).choice(flat, size=samples, replace=False))
    return np.stack(np.unravel_index(flat, mask.shape), axis=1).astype(np.int64)
