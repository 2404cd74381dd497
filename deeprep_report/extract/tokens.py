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

import logging

from deeprep_report.sources.datasets import Dataset

log = logging.getLogger("deeprep")

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
    vocabulary_size: int = 0  # ids are 0 .. vocabulary_size - 1 (the embedding's, the vocabulary's or the data's)
    downstream: frozenset[str] = frozenset()  # layer paths computed from the token input (the ones to mask)

    def digest(self) -> str:
        """What the stored token arrays depend on, for the cache key: mask, token sample, source."""
        import hashlib

        digest = hashlib.sha256(self.source.encode())
        for array in (self.mask, self.positions, self.content if self.content is not None else self.mask):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

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
    """(model input name, layer) of every embedding layer that reads a model input directly (Keras's
    ``Embedding`` and its kin: ``input_dim``; keras-hub's ``TokenAndPositionEmbedding``: ``vocabulary_size``)."""
    found = []
    for info in graph.layers:
        layer = info.layer
        size = getattr(layer, "input_dim", None) or getattr(layer, "vocabulary_size", None)
        if isinstance(size, int) and len(info.inputs) == 1 and info.inputs[0].startswith("input:"):
            found.append((info.inputs[0][len("input:"):], layer))
    return found


def _vocabulary_size(layer: Any) -> int:
    return int(getattr(layer, "input_dim", None) or getattr(layer, "vocabulary_size"))


def pair_tokens(graph: Any, dataset: Dataset, rows: np.ndarray, binding: dict[str, str], samples: int,
                seed: int) -> PairTokens | None:
    """The pair's tokens, or None when neither the data nor the model is a sequence of tokens."""
    embeddings = embeddings_on_inputs(graph)
    text = dataset.text
    array = _token_array(graph, dataset, binding, embeddings)
    if array is None:
        return None
    ids = dataset.read(rows, [array])[array]
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise TokenError(f"array {array!r}: token ids must be integers of shape (N, T), got {ids.dtype} {ids.shape}")
    if ids.size and ids.min() < 0:
        raise TokenError(f"array {array!r} has a negative token id ({int(ids.min())})")
    for name, layer in embeddings:
        _check_vocabulary(ids if binding.get(name) == array else dataset.read(rows, [binding[name]])[binding[name]],
                          rows, binding[name], layer)
    _check_length(graph, ids.shape[1], array)
    mask, source = _mask(graph, dataset, rows, binding, array, ids, embeddings)
    empty = np.flatnonzero(~mask.any(axis=1))
    if len(empty):
        raise TokenError(f"row {int(rows[empty[0]])} of array {array!r} has no real token (all padding; mask from "
                         f"{source})")
    specials = set(text.special_ids) if text is not None else set()
    content = mask & ~np.isin(ids, list(specials)) if specials else None
    feeding = [layer for name, layer in embeddings if binding.get(name) == array]
    known = [_vocabulary_size(feeding[0])] if feeding else []
    known += [len(text.vocabulary)] if text is not None and text.vocabulary else []
    size = max([int(ids.max()) + 1 if ids.size else 1, *known])
    inputs = {f"input:{name}" for name, bound in binding.items() if bound == array}
    return PairTokens(array, ids, mask, source, sample_positions(mask, ids, specials, samples, seed), content, size,
                      downstream_of(graph, inputs))


def _token_array(graph: Any, dataset: Dataset, binding: dict[str, str],
                 embeddings: list[tuple[str, Any]]) -> str | None:
    """The dataset array holding the pair's token ids: the text's, an embedding's input, else a 2-D integer
    input (ids read by something else than an Embedding; said in the log)."""
    text = dataset.text
    if text is not None and text.tokens in binding.values():
        return text.tokens
    if text is not None and text.mask is not None:
        raise TokenError(f"the data's mask ({text.mask_source}) belongs to array {text.tokens!r}, which the model "
                         f"does not read (it reads {', '.join(map(repr, binding.values()))}); name the token array "
                         "with x")
    if embeddings and embeddings[0][0] in binding:
        return binding[embeddings[0][0]]
    for name, bound in binding.items():
        info = dataset.arrays[bound]
        if name != "padding_mask" and len(info.shape) == 1 and info.dtype.kind in "iu" and info.shape[0] > 1:
            log.warning("model input %r reads integer sequences %r but no Embedding reads it directly: treated as "
                        "token ids; give a mask or pad_id so padding is not counted", name, bound)
            return bound
    return None


def downstream_of(graph: Any, sources: set[str]) -> frozenset[str]:
    """Paths of the layers computed (directly or not) from any of ``sources`` (``input:<name>`` or paths)."""
    reached = set(sources)
    for info in graph.layers:  # execution order: a layer's producers come before it
        if any(source in reached for source in info.inputs) or "?" in info.inputs and reached - sources:
            reached.add(info.path)
    return frozenset(reached - sources)


def _check_length(graph: Any, length: int, array: str) -> None:
    """A model built for at most ``max_sequence_length`` positions (keras-hub backbones) fails inside TensorFlow
    on longer ones: refuse them here."""
    limit = getattr(graph.model, "max_sequence_length", None)
    if isinstance(limit, int) and length > limit:
        raise TokenError(f"array {array!r} has {length} tokens per sample, more than the model's "
                         f"max_sequence_length {limit}; lower sequence_length")


def _mask(graph: Any, dataset: Dataset, rows: np.ndarray, binding: dict[str, str], array: str, ids: np.ndarray,
          embeddings: list[tuple[str, Any]]) -> tuple[np.ndarray, str]:
    text = dataset.text
    if text is not None and text.mask is not None and text.tokens == array:
        mask = np.asarray(text.mask[rows], dtype=bool)
        if "padding_mask" in binding and binding["padding_mask"] not in (text.tokens,):
            given = dataset.read(rows, [binding["padding_mask"]])[binding["padding_mask"]]
            if given.shape != mask.shape or not np.array_equal(given != 0, mask):
                raise TokenError(f"the model's padding_mask input (array {binding['padding_mask']!r}) disagrees "
                                 f"with the data's mask ({text.mask_source})")
        return mask, f"data: {text.mask_source}"
    if "padding_mask" in binding:
        values = dataset.read(rows, [binding["padding_mask"]])[binding["padding_mask"]]
        name = binding["padding_mask"]
        if values.shape != ids.shape:
            raise TokenError(f"array {name!r} (padding_mask) has shape {values.shape[1:]} per sample, but the token "
                             f"ids {array!r} have {ids.shape[1:]}")
        if values.dtype.kind not in "biu" or not np.isin(values, (0, 1)).all():
            raise TokenError(f"array {name!r} (padding_mask) must hold 0 (padding) and 1 (real token) only")
        return values != 0, f"input padding_mask (array {name!r})"
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
