"""Reuse of a pair's stored activations from an earlier run in the same output folder.

A pair's cache key hashes everything its stored activations depend on: the
model and data fingerprints, the rows (in order), the captured layers, the
input binding, the store and statistics settings and the store format. An
earlier run folder whose ``activations.h5`` holds a pair with the same key
already has those arrays, so they are copied (HDF5 object copy, no Python
round trip) instead of recomputed. Only extraction outputs are copied: the
statistics, analysis, checks and report are always recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from deeprep_report.store import FORMAT_VERSION, pair_key
from deeprep_report.store.reader import naming_failed_store

log = logging.getLogger("deeprep")
#: Members written by the analyze stage, never copied from a cached pair.
DERIVED = frozenset({"analysis", "stats"})


def cache_key(model_fingerprint: str, data_fingerprint: str, rows: np.ndarray, layers: list[str],
              binding: dict[str, str], settings: dict[str, Any]) -> str:
    """``sha256:<hex>`` of what a pair's extraction outputs depend on."""
    digest = hashlib.sha256()
    digest.update(json.dumps({
        "format_version": FORMAT_VERSION, "model": model_fingerprint, "data": data_fingerprint,
        "layers": layers, "binding": binding, "settings": settings,
    }, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
    return "sha256:" + digest.hexdigest()


def stored_pairs(output_dir: Path) -> dict[str, tuple[Path, str]]:
    """Cache key → (store path, pair group) of every pair of the finished runs under ``output_dir``; the
    newest store wins a key. Read once per run (attributes only).

    The run folder being rewritten counts too: its previous store stays in place until the new run publishes.
    """
    found: dict[str, tuple[Path, str]] = {}
    for path in sorted(output_dir.glob("*/activations.h5"), key=lambda p: p.stat().st_mtime):
        if not (path.parent / "summary.json").is_file():
            continue
        try:
            with h5py.File(path, "r") as store:
                for model, dataset in json.loads(store.attrs.get("pairs", "[]")):
                    group = store.get(pair_key(model, dataset))
                    if group is not None and "cache_key" in group.attrs:
                        found[group.attrs["cache_key"]] = (path, group.name)
        except (OSError, ValueError, KeyError) as exc:  # a store being written, or not a deeprep store
            log.debug("cache: %s not usable: %s", path, exc)
    return found


def copy_pair(source: Path, group: str, target: h5py.File, destination: str) -> None:
    """Copy a pair's extraction outputs (attributes, layer arrays) into ``target`` at ``destination``."""
    with h5py.File(source, "r") as store, naming_failed_store(source):
        _copy(store[group], target.require_group(destination))


def copy_inputs(source: Path, dataset_group: str, target: h5py.File, arrays: list[str]) -> int:
    """Copy a dataset's stored input arrays and their views; return the source's count of non-finite input
    values."""
    with h5py.File(source, "r") as store, naming_failed_store(source):
        group = store[dataset_group]
        for name in arrays:
            for folder in ("inputs", "views"):
                key = f"{folder}/{name}"
                if key in group and f"{dataset_group}/{key}" not in target:
                    target.require_group(f"{dataset_group}/{folder}").copy(group[key], name)
        return int(group.attrs.get("nonfinite_inputs", 0))


def _copy(source: h5py.Group, destination: h5py.Group) -> None:
    for name, value in source.attrs.items():
        destination.attrs[name] = value
    for name, member in source.items():
        if name in DERIVED:
            continue
        if isinstance(member, h5py.Group):
            _copy(member, destination.require_group(name))
        else:
            destination.copy(member, name)
