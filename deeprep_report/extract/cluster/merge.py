"""Merging a pair's shard stores (one per Dask task, :mod:`deeprep_report.extract.cluster`) into the run's store.

Per-sample arrays (pooled, peak, view, maps, sampled tokens, the dataset's
inputs and views) are copied in shard order, block by block, as soon as a
shard and the ones before it are done (the copy overlaps the extraction of
the others), so the merged store is laid out as one process writes it (same
chunks, same filter) and memory stays at one block. The accumulators merge exactly: moments by Chan's
update, histograms at the finest aligned window holding both, top contexts by
keeping the top ``k`` with earlier samples winning ties.

Copy rather than HDF5 virtual datasets (docs/design.md, "Merging shards"):
one self-contained ``activations.h5`` is what a review hand-off and the
extraction cache need, and a run folder whose datasets point at other files
would let an untrusted folder make the reader open any file.
"""

from __future__ import annotations

from functools import reduce
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from deeprep_report.stats import Histogram, Moments
from deeprep_report.store.activations import StoreWriter, h5_name, pair_key

_BLOCK_BYTES = 64 << 20  # copied per read/write: bounds the merge's memory whatever the shard size


class PairMerge:
    """One pair's shards merged into the run's store as they come, in shard order: each shard's per-sample rows
    are copied at once (and its file can go), its accumulators kept (they are small) and merged at the end.

    ``rows`` gives the merged length of the datasets that are not one row per sample: ``maps`` (the first
    ``full_samples``) and ``tokens`` (the pair's token sample); every other per-sample dataset has
    ``n_samples`` rows."""

    def __init__(self, store: StoreWriter, model: str, dataset: str, inputs: list[str], contexts: int,
                 n_samples: int, rows: dict[str, int]) -> None:
        self.store, self.inputs, self.k = store, inputs, contexts
        self.key = f"{pair_key(model, dataset)}/layers"
        self.data = f"datasets/{h5_name(dataset)}"
        self.n_samples, self.rows = n_samples, rows
        self.offsets: dict[str, int] = {}  # rows written so far, per target dataset
        self.parts: dict[str, list[dict[str, Any]]] = {}  # per layer: each shard's accumulators
        self.attrs: dict[str, dict[str, Any]] = {}
        self.nonfinite = 0

    def add(self, path: Path, start: int) -> None:
        """Copy the next shard (its first sample is ``start``) into the store; the file can be removed after."""
        with h5py.File(path, "r") as shard:
            for name in _layer_groups(shard[self.key]):
                group = shard[f"{self.key}/{name}"]
                for member, item in group.items():
                    if isinstance(item, h5py.Dataset):
                        self._append(f"{self.key}/{name}/{member}", item, contiguous=member == "maps")
                self.parts.setdefault(name, []).append(_accumulators(group, start))
                self.attrs.setdefault(name, dict(group.attrs))
            for part in ("inputs", "views"):
                for array in self.inputs:
                    name = f"{self.data}/{part}/{h5_name(array)}"
                    if name in shard:
                        self._append(name, shard[name])
            if self.inputs:
                self.nonfinite += int(shard[self.data].attrs["nonfinite_inputs"])

    def finish(self) -> None:
        """Write every layer's merged accumulators and attributes (after the last shard)."""
        for name, parts in self.parts.items():
            group = self.store.file.require_group(f"{self.key}/{name}")
            moments = reduce(Moments.merge, (part["moments"] for part in parts))
            for field, values in moments.as_arrays().items():
                group.create_dataset(f"moments/{field}", data=values)
            histogram = reduce(Histogram.merge, (part["histogram"] for part in parts))
            counts = group.create_dataset("histogram/counts", data=histogram.counts)
            counts.attrs.update({"exponent": histogram.exponent, "start": histogram.start})
            if parts[0]["contexts"] is not None:
                for field, values in _merge_contexts(parts, self.k).items():
                    group.create_dataset(f"contexts/{field}", data=values)
            group.attrs.update(self.attrs[name])
        if self.inputs:
            group = self.store.file[self.data]
            group.attrs["nonfinite_inputs"] = int(group.attrs["nonfinite_inputs"]) + self.nonfinite

    def _append(self, key: str, part: h5py.Dataset, contiguous: bool = False) -> None:
        """The shard's rows of one dataset after the rows of the shards before it (created on the first)."""
        if key not in self.offsets:
            total = self.rows.get(key.rsplit("/", 1)[-1], self.n_samples) if key.startswith(self.key) \
                else self.n_samples
            target = self.store.create(key, (total, *part.shape[1:]), part.dtype, contiguous=contiguous)
            target.attrs.update(dict(part.attrs))
            self.offsets[key] = 0
        self.offsets[key] = copy_rows(self.store.file[key], part, self.offsets[key])


def _accumulators(group: h5py.Group, start: int) -> dict[str, Any]:
    """A shard layer's moments, histogram and top contexts (sample numbers made the pair's)."""
    counts = group["histogram/counts"]
    found = group["contexts"] if "contexts" in group else None
    return {
        "moments": Moments(**{n: group["moments"][n][()] for n in Moments.__dataclass_fields__}),
        "histogram": Histogram(int(counts.attrs["exponent"]), int(counts.attrs["start"]), counts[()]),
        "contexts": None if found is None else {"value": found["value"][()], "sample": found["sample"][()] + start,
                                                "position": found["position"][()], "window": found["window"][()]},
    }


def _layer_groups(root: h5py.Group) -> list[str]:
    """Relative names of the layer groups under ``root`` (a layer path's parts are nested groups)."""
    found: list[str] = []
    root.visititems(lambda name, item: found.append(name) if isinstance(item, h5py.Group) and "moments" in item
                    else None)
    return found


def _merge_contexts(parts: list[dict[str, Any]], k: int) -> dict[str, np.ndarray]:
    from deeprep_report.extract.contexts import TopContexts

    first = parts[0]["contexts"]
    top = TopContexts(first["value"].shape[1], k, first["window"].shape[2] // 2)
    for part in parts:  # in shard order: earlier samples win ties, as in one process's stream
        found = part["contexts"]
        top.add(found["value"], found["sample"], found["position"], found["window"])
    return top.arrays()


def copy_rows(target: h5py.Dataset, part: h5py.Dataset, offset: int) -> int:
    """``part`` into ``target`` from row ``offset``, a block at a time; returns the next offset."""
    per_row = max(1, int(np.prod(part.shape[1:], dtype=np.int64)) * part.dtype.itemsize)
    step = max(1, _BLOCK_BYTES // per_row)
    for begin in range(0, len(part), step):
        block = part[begin : begin + step]
        target[offset + begin : offset + begin + len(block)] = block
    return offset + len(part)
