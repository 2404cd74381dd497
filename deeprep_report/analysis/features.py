"""What each depth metric sees: every layer's analysis view (``stats/views.py``), read from the store one layer
at a time, so that memory holds one layer's N × dims view, not the whole network's."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from deeprep_report.stats.views import BAG, SEQUENCE, ViewSpec
from deeprep_report.store import StoreReader, h5_name, pair_key, read_rows

INPUT = "input"
#: Rows read at a time when scanning a view: at most CHUNK, and at most CHUNK_BYTES of float64.
CHUNK = 8192
CHUNK_BYTES = 16 << 20


@dataclass
class Layer:
    """One analysed layer: its name, the stored arrays whose columns make its view, and how they were made."""

    name: str
    arrays: list[Any]
    spec: ViewSpec | None  # None: a store without views, whose channel means stand in

    @property
    def dims(self) -> int:
        return sum(int(np.prod(a.shape[1:], dtype=np.int64)) for a in self.arrays)

    @property
    def basis(self) -> str:
        """How this layer entered the analysis, in words (for the report)."""
        if self.spec is None:
            return "channel means (store without views)"
        method, wide, dims = self.spec.method, self.spec.input_dims, self.spec.dims
        if method == BAG:
            return f"bag of tokens ({wide:,} types" + (f", count-sketched to {dims:,})" if dims < wide else ")")
        sequence = {value: key for key, value in SEQUENCE.items()}
        if method in sequence:
            return f"{sequence[method]} of the real tokens ({wide:,} values" + (
                f", count-sketched to {dims:,})" if dims < wide else ")")
        if method == "count_sketch":
            return f"count sketch {wide:,} → {dims:,}"
        return f"whole ({wide:,} values)"

    def read(self, rows: slice | np.ndarray = slice(None)) -> np.ndarray:
        """The view at ``rows`` (all by default) as float64 (N, dims)."""
        parts = [np.asarray(read_rows(a, rows), dtype=np.float64).reshape(-1, int(np.prod(a.shape[1:])))
                 for a in self.arrays]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


class PairFeatures:
    """The analysed layers of one pair in depth order (the input first when its view is stored)."""

    def __init__(self, store: StoreReader, model: str, dataset: str, include_input: bool) -> None:
        self.layers: list[Layer] = []
        if include_input:
            layer = _input_layer(store, model, dataset)
            if layer is not None:
                self.layers.append(layer)
        for path in store.layers(model, dataset):
            view, spec = store.view(model, dataset, path)
            self.layers.append(Layer(path, [view], spec))
        self.samples = self.layers[0].arrays[0].shape[0] if self.layers else 0

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def finite_rows(self) -> np.ndarray:
        """Samples whose view is finite in every layer (the same rows enter every metric)."""
        keep = np.ones(self.samples, dtype=bool)
        for layer in self.layers:
            for start, block in Rows.of_layer(layer, np.arange(self.samples), all_rows=True).chunks():
                keep[start : start + len(block)] &= np.isfinite(block).all(axis=1)
        return keep


class Rows:
    """A layer's view on the analysed rows, read in chunks or at chosen positions, never whole: every family
    works from chunked passes and bounded subsamples, so memory does not grow with N."""

    def __init__(self, read: Any, count: int, dims: int, chunk: int | None = None) -> None:
        self._read = read  # positions (slice or sorted array) -> float64 rows
        self.n = count
        self.dims = dims
        self.chunk = chunk or max(64, min(CHUNK, CHUNK_BYTES // (8 * max(dims, 1))))

    @classmethod
    def of_array(cls, x: np.ndarray) -> "Rows":
        """An in-memory array as a row source (tests, small data)."""
        x = np.asarray(x).reshape(len(x), -1)
        return cls(lambda rows: np.asarray(x[rows], dtype=np.float64), len(x), x.shape[1])

    @classmethod
    def of_layer(cls, layer: Layer, rows: np.ndarray, all_rows: bool) -> "Rows":
        """``layer`` at dataset ``rows`` (sorted); ``all_rows``: they are every row, read as slices."""
        def read(positions: slice | np.ndarray) -> np.ndarray:
            if all_rows:
                return layer.read(positions)
            return layer.read(rows[positions])
        return cls(read, len(rows), layer.dims)

    def at(self, positions: np.ndarray) -> np.ndarray:
        """Rows at sorted ``positions`` (a subsample: bounded by its size)."""
        return self._read(np.asarray(positions))

    def chunks(self):
        """(start, rows) blocks in order."""
        for start in range(0, self.n, self.chunk):
            yield start, self._read(slice(start, min(start + self.chunk, self.n)))

    def select(self, positions: np.ndarray):
        """(mask, block, start) for each chunk holding some of the sorted ``positions`` (a split's rows)."""
        wanted = np.zeros(self.n, dtype=bool)
        wanted[positions] = True
        for start, block in self.chunks():
            mask = wanted[start : start + len(block)]
            if mask.any():
                yield mask, block, start

    def scan(self) -> tuple[str, bool]:
        """(fingerprint, constant) in one pass: identical views (a model's input and its random twin's, Flatten
        and inference Dropout) are analysed once; a constant view has nothing to measure."""
        digest = hashlib.sha1()
        low = np.full(self.dims, np.inf)
        high = np.full(self.dims, -np.inf)
        for _, block in self.chunks():
            digest.update(np.ascontiguousarray(block).view(np.uint8))
            low, high = np.minimum(low, block.min(axis=0)), np.maximum(high, block.max(axis=0))
        return digest.hexdigest() + f"({self.n}, {self.dims})", bool(not (high > low).any())


def _input_layer(store: StoreReader, model: str, dataset: str) -> Layer | None:
    group = store.file[f"datasets/{h5_name(dataset)}"]
    binding = store.json_attr(pair_key(model, dataset), "binding")
    tokens = store.tokens(model, dataset, arrays=False)
    arrays = [tokens["array"]] if tokens is not None else list(binding.values())  # not the mask, not segment ids
    names = [h5_name(array) for array in arrays]
    if "views" in group and all(name in group["views"] for name in names):
        arrays = [group["views"][name] for name in names]
        specs = [ViewSpec.from_attrs(dict(a.attrs)) for a in arrays]
        return Layer(INPUT, arrays, specs[0] if len(specs) == 1 else None)
    if "inputs" in group and all(name in group["inputs"] for name in names):  # a store without views
        arrays = [group["inputs"][name] for name in names]
        dims = sum(int(np.prod(a.shape[1:])) for a in arrays)
        return Layer(INPUT, arrays, ViewSpec("flat", dims, dims, 0))
    return None
