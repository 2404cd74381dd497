"""Merging a pair's shard stores (one per Dask task, :mod:`deeprep_report.extract.cluster`) into the run's store.

Per-sample arrays (pooled, peak, view, maps, sampled tokens, the dataset's
inputs and views) are copied in shard order, block by block, so the merged
store is laid out as one process writes it (same chunks, same filter) and
memory stays at one block. The accumulators merge exactly: moments by Chan's
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


def merge_pair(store: StoreWriter, shards: list[Path], starts: list[int], model: str, dataset: str,
               inputs: list[str], contexts: int) -> None:
    """Write the pair's layers, and the dataset arrays ``inputs`` it stored, from its shard files (in sample
    order, shard ``i`` holding the samples from ``starts[i]``); ``contexts`` is the top-``k`` of contexts."""
    files: list[h5py.File] = []
    try:
        files.extend(h5py.File(path, "r") for path in shards)
        key = f"{pair_key(model, dataset)}/layers"
        for name in _layer_groups(files[0][key]):
            _merge_layer(store, f"{key}/{name}", [f[f"{key}/{name}"] for f in files], starts, contexts)
        data = f"datasets/{h5_name(dataset)}"
        for part in ("inputs", "views"):
            for array in inputs:
                name = f"{data}/{part}/{h5_name(array)}"
                if name in files[0]:
                    concatenate(store, name, [f[name] for f in files])
        if inputs:
            group = store.file[data]
            group.attrs["nonfinite_inputs"] = int(group.attrs["nonfinite_inputs"]) + sum(
                int(f[data].attrs["nonfinite_inputs"]) for f in files)
    finally:
        for handle in files:
            handle.close()


def _layer_groups(root: h5py.Group) -> list[str]:
    """Relative names of the layer groups under ``root`` (a layer path's parts are nested groups)."""
    found: list[str] = []
    root.visititems(lambda name, item: found.append(name) if isinstance(item, h5py.Group) and "moments" in item
                    else None)
    return found


def _merge_layer(store: StoreWriter, key: str, parts: list[h5py.Group], starts: list[int], k: int) -> None:
    group = store.file.require_group(key)
    for name, item in parts[0].items():
        if isinstance(item, h5py.Dataset):
            # maps: only the shards holding some of the first full_samples samples have them
            concatenate(store, f"{key}/{name}", [part[name] for part in parts if name in part],
                        contiguous=name == "maps")
    moments = reduce(Moments.merge, (Moments(**{n: p["moments"][n][()] for n in Moments.__dataclass_fields__})
                                     for p in parts))
    for name, values in moments.as_arrays().items():
        group.create_dataset(f"moments/{name}", data=values)
    histogram = reduce(Histogram.merge, (Histogram(int(p["histogram/counts"].attrs["exponent"]),
                                                   int(p["histogram/counts"].attrs["start"]),
                                                   p["histogram/counts"][()]) for p in parts))
    counts = group.create_dataset("histogram/counts", data=histogram.counts)
    counts.attrs.update({"exponent": histogram.exponent, "start": histogram.start})
    if "contexts" in parts[0]:
        for name, values in _merge_contexts(parts, starts, k).items():
            group.create_dataset(f"contexts/{name}", data=values)
    group.attrs.update(dict(parts[0].attrs))


def _merge_contexts(parts: list[h5py.Group], starts: list[int], k: int) -> dict[str, np.ndarray]:
    from deeprep_report.extract.contexts import TopContexts

    first = parts[0]["contexts"]
    top = TopContexts(first["value"].shape[1], k, first["window"].shape[2] // 2)
    for part, start in zip(parts, starts):
        found = part["contexts"]
        top.add(found["value"][()], found["sample"][()] + start, found["position"][()], found["window"][()])
    return top.arrays()


def concatenate(store: StoreWriter, key: str, parts: list[h5py.Dataset], contiguous: bool = False) -> Any:
    """``parts`` one after the other along the sample axis, into a dataset created as the writer creates it."""
    rows = sum(len(part) for part in parts)
    target = store.create(key, (rows, *parts[0].shape[1:]), parts[0].dtype, contiguous=contiguous)
    per_row = max(1, int(np.prod(parts[0].shape[1:], dtype=np.int64)) * parts[0].dtype.itemsize)
    step = max(1, _BLOCK_BYTES // per_row)
    offset = 0
    for part in parts:
        for begin in range(0, len(part), step):
            block = part[begin : begin + step]
            target[offset + begin : offset + begin + len(block)] = block
        offset += len(part)
    target.attrs.update(dict(parts[0].attrs))
    return target
