"""The analysis view of a layer: the representation every depth metric sees.

A layer's view is a function of its flattened activation alone (C order, so a
``Flatten`` layer's view is its input's view): the flattened activation itself
when it has at most ``dims`` values, otherwise a *count sketch* of it to
``dims`` values. The sketch sends value ``f`` of the flattened activation to
bucket ``h(f)`` with sign ``s(f)`` (both drawn from a generator seeded by the
view seed and the two sizes, never from the data), so it is linear, unbiased
for inner products (E⟨Sx, Sy⟩ = ⟨x, y⟩) and the same in every run with the
same seed: two runs' views are comparable. Channel means (the stored
``pooled``) stay what is per unit: unit statistics, selectivity, exemplars.

Measured on the demo CNN (1,000 digits, debiased linear CKA between all
layers, sketched vs exact flattened maps, four sketch seeds): largest error
0.062 at 256 dims, 0.036 at 512, 0.013–0.026 at 1,024, 0.009–0.017 at 1,536,
0.009–0.011 at 2,048 (the default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: How a view is made: the stored ``pooled`` array is the activation itself (dense layers with few units),
#: the flattened activation, or its count sketch.
POOLED, FLAT, COUNT_SKETCH = "pooled", "flat", "count_sketch"
#: A sequence layer whose positions are the tokens enters as one vector per sequence, from its real tokens only
#: (``analysis.tokens.sequence_view``): their mean, or the first or last real token.
SEQUENCE = {"mean": "token_mean", "first": "first_token", "last": "last_token"}
#: Token ids enter as what they mean, not as numbers: each sequence's bag of tokens (the share of its real tokens
#: of each type), count-sketched like any view when the vocabulary is wider than ``dims``.
BAG = "bag_of_tokens"


@dataclass(frozen=True)
class ViewSpec:
    """How one layer's view was made; stored with it so that two runs' views can be compared."""

    method: str
    input_dims: int
    dims: int
    seed: int

    def attrs(self) -> dict[str, Any]:
        return {"view_method": self.method, "view_input_dims": self.input_dims, "view_dims": self.dims,
                "view_seed": self.seed}

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> "ViewSpec | None":
        if "view_method" not in attrs:
            return None  # a store written before views existed
        return cls(str(attrs["view_method"]), int(attrs["view_input_dims"]), int(attrs["view_dims"]),
                   int(attrs["view_seed"]))

    def comparable(self, other: "ViewSpec | None") -> bool:
        """Whether views made this way and ``other``'s way are the same function of the activation."""
        if other is None:
            return False
        if self.method == COUNT_SKETCH or other.method == COUNT_SKETCH:
            return self == other
        if self.method in (*SEQUENCE.values(), BAG) or other.method in (*SEQUENCE.values(), BAG):
            same = self.method == other.method and self.input_dims == other.input_dims and self.dims == other.dims
            return same and (self.dims == self.input_dims or self.seed == other.seed)  # a sketch: the same one
        return self.input_dims == other.input_dims  # flat and pooled are both the activation itself


def view_spec(flat_dims: int, dense: bool, dims: int, seed: int) -> ViewSpec:
    """The view of a layer whose activation has ``flat_dims`` values per sample (``dense``: rank 2)."""
    if flat_dims > dims:
        return ViewSpec(COUNT_SKETCH, flat_dims, dims, seed)
    return ViewSpec(POOLED if dense else FLAT, flat_dims, flat_dims, seed)


def sequence_view_spec(units: int, pick: str, dims: int, seed: int) -> ViewSpec:
    """The view of a token-aligned sequence layer with ``units`` per token (count-sketched to ``dims`` when wider:
    ``dims < input_dims`` says so, as for the bag of tokens)."""
    return ViewSpec(SEQUENCE[pick], units, min(units, dims), seed)


def bag_of_tokens(ids: np.ndarray, mask: np.ndarray, spec: ViewSpec) -> np.ndarray:
    """The view (B, dims) of token ids (B, T) with real tokens ``mask``: per sequence, the share of each type among
    its real tokens (a ``vocabulary``-wide vector; count-sketched when ``spec.dims`` is smaller)."""
    rows = np.broadcast_to(np.arange(len(ids))[:, None], ids.shape)[mask]
    types = np.asarray(ids)[mask].astype(np.int64)
    weights = (1.0 / mask.sum(axis=1))[rows]
    out = np.zeros((len(ids), spec.dims))
    if spec.dims < spec.input_dims:
        buckets, signs = sketch_indices(ViewSpec(COUNT_SKETCH, spec.input_dims, spec.dims, spec.seed))
        types, weights = buckets[types], weights * signs[types]
    np.add.at(out, (rows, types), weights)
    return out


def sketch_indices(spec: ViewSpec) -> tuple[np.ndarray, np.ndarray]:
    """Bucket (int64) and sign (float32, ±1) of every value of the flattened activation."""
    rng = np.random.default_rng([spec.seed, spec.input_dims, spec.dims, 0x5CE7C4])
    buckets = rng.integers(0, spec.dims, size=spec.input_dims, dtype=np.int64)
    signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=spec.input_dims)
    return buckets, signs


def reference_view(activations: np.ndarray, spec: ViewSpec) -> np.ndarray:
    """The view computed directly with numpy (float64): the reference for tests and small data."""
    flat = np.asarray(activations, dtype=np.float64).reshape(len(activations), -1)
    if spec.method != COUNT_SKETCH:
        return flat
    buckets, signs = sketch_indices(spec)
    out = np.zeros((len(flat), spec.dims))
    np.add.at(out.T, buckets, (flat * signs).T)
    return out
