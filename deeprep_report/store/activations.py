"""The HDF5 store ``activations.h5``: its layout and writer (read back by :mod:`.reader`; format: ``docs/store.md``).

Layout (``<x>`` is a name escaped by :func:`h5_name`)::

    /                                   format, format_version, tool_version, created, finished, config, ...
    /datasets/<dataset>/index           (N,) int64 dataset row of each sample
    /datasets/<dataset>/labels          (N,) int64, when the dataset has labels
    /datasets/<dataset>/inputs/<array>  (N, ...) model inputs, when store.inputs
    /datasets/<dataset>/views/<array>   (N, D) the inputs' analysis views
    /datasets/<dataset>/text/           text datasets: vocabulary (V,), texts (N,) strings, when known
    /models/<model>                     attributes only (source, fingerprint, architecture)
    /pairs/<model>/<dataset>/tokens/    sequence pairs: ids (N, T), mask (N, T) real tokens, positions (n, 2) of
                                        the token sample (sample, position); attributes array, source
    /pairs/<model>/<dataset>/layers/<nested>/<path>/
        pooled                          (N, C) mean over positions (the full activation for dense layers)
        peak                            (N, C) maximum over positions (map layers, rank >= 4: ranks exemplars)
        maps                            (F, ...) full activations of the first F samples (rank >= 3 only)
        view                            (N, D) the analysis view (stats/views.py), unless pooled is the view
        tokens                          (n, D) token-aligned sequence layers: the view of each sampled token
        contexts/<name>                 token-aligned sequence layers: top contexts per unit (extract/contexts.py)
        moments/<name>                  (C,) mergeable accumulators (stats.Moments)
        histogram/counts                (bins,) with attributes exponent, start
        stats/<name>                    (C,) per-unit statistics, written by the analyze stage

Names are data: a layer path's components become nested groups, and every
component is escaped so that '/', '%' and '.'/'..' cannot change the structure.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from deeprep_report.config import StoreSection
from deeprep_report.stats import Histogram, Moments

log = logging.getLogger("deeprep")

FORMAT = "deeprep-activations"
FORMAT_VERSION = 3  # 2: per-layer analysis views (view, view_* attributes), datasets/<d>/views; 3: tokens, contexts
_CHUNK_BYTES = 1 << 20


def h5_name(name: str) -> str:
    """Escape one name so it is exactly one HDF5 link name ('%' and '/' percent-encoded, '.'/'..' too)."""
    escaped = name.replace("%", "%25").replace("/", "%2F")
    return escaped.replace(".", "%2E") if escaped in (".", "..", "") else escaped


def unescape(name: str) -> str:
    """The name :func:`h5_name` escaped."""
    return name.replace("%2E", ".").replace("%2F", "/").replace("%25", "%")


def layer_key(layer_path: str) -> str:
    return "/".join(h5_name(part) for part in layer_path.split("/"))


def pair_key(model: str, dataset: str) -> str:
    return f"pairs/{h5_name(model)}/{h5_name(dataset)}"


def _attr(value: Any) -> Any:
    """Attributes hold scalars and strings; anything structured is stored as JSON text."""
    if isinstance(value, (str, int, float, bool, np.integer, np.floating)):
        return value
    return json.dumps(value)


def read_rows(dataset: Any, rows: np.ndarray | slice) -> np.ndarray:
    """Rows of an HDF5 dataset in the given order (h5py wants increasing, unique indices)."""
    if isinstance(rows, slice):
        return dataset[rows]
    unique, inverse = np.unique(rows, return_inverse=True)
    return dataset[unique][inverse]


def _as(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Convert with numpy before h5py writes: h5py's own float32 → float16 conversion is ~10× slower
    (measured: the demo's extraction 1.0 s with it, 0.3 s with numpy's)."""
    return np.asarray(values).astype(dtype, copy=False)


def _chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Chunk along the sample axis so one chunk is about 1 MiB (at least one sample)."""
    per_sample = max(1, int(np.prod(shape[1:], dtype=np.int64)) * itemsize)
    rows = int(min(max(1, _CHUNK_BYTES // per_sample), max(1, shape[0])))
    return (rows, *shape[1:])


class StoreWriter:
    """Writes a new store; the caller writes it under a temporary name and renames it when done."""

    def __init__(self, path: Path, settings: StoreSection) -> None:
        self.file = h5py.File(path, "w", libver=("earliest", "latest"))
        self.settings = settings
        self.file.attrs["format"] = FORMAT
        self.file.attrs["format_version"] = FORMAT_VERSION

    def set_attrs(self, key: str, attrs: dict[str, Any]) -> None:
        group = self.file.require_group(key) if key != "/" else self.file
        for name, value in attrs.items():
            group.attrs[name] = _attr(value)

    def create(self, key: str, shape: tuple[int, ...], dtype: Any, contiguous: bool = False) -> h5py.Dataset:
        """A dataset for per-sample data: chunked along samples (and compressed if configured).

        ``contiguous`` asks for one unchunked block when no compression is set:
        full maps are written once, in order, and contiguous writes are about
        twice as fast (measured: 56 MB in 16 ms vs 33 ms with 1-sample chunks).
        """
        dtype = np.dtype(dtype)
        options: dict[str, Any] = {}
        if self.settings.compression == "gzip":
            options = {"compression": "gzip", "compression_opts": self.settings.compression_level}
        elif self.settings.compression == "lzf":
            options = {"compression": "lzf"}
        elif contiguous or shape[0] == 0:
            return self.file.create_dataset(key, shape=shape, dtype=dtype)
        return self.file.create_dataset(key, shape=shape, dtype=dtype, chunks=_chunks(shape, dtype.itemsize), **options)

    def write_array(self, key: str, values: np.ndarray) -> None:
        self.file.create_dataset(key, data=values)

    def write_tokens(self, key: str, tokens: Any) -> None:
        """A sequence pair's token ids, mask of real tokens and token sample (extract/tokens.py)."""
        group = self.file.require_group(f"{key}/tokens")
        group.create_dataset("ids", data=tokens.ids)
        group.create_dataset("mask", data=tokens.mask.astype(np.uint8))
        group.create_dataset("positions", data=tokens.positions)
        group.attrs.update({"array": tokens.array, "source": tokens.source})

    def write_text(self, key: str, text: Any, rows: np.ndarray) -> None:
        """A text dataset's vocabulary and the texts of its samples (in sample order), when known."""
        strings = h5py.string_dtype("utf-8")
        if text.vocabulary is not None:
            self.file.create_dataset(f"{key}/text/vocabulary", data=np.asarray(text.vocabulary, dtype=object),
                                     dtype=strings)
        if text.texts is not None:
            self.file.create_dataset(f"{key}/text/texts", data=np.asarray([text.texts[r] for r in rows], dtype=object),
                                     dtype=strings)
        group = self.file.require_group(f"{key}/text")
        group.attrs.update({"tokens": text.tokens, "special_ids": json.dumps(list(text.special_ids))})
        for name, values in text.token_labels.items():
            group.create_dataset(f"token_labels/{h5_name(name)}", data=values[rows])

    def stored_dtype(self, dtype: np.dtype) -> np.dtype:
        """Floats are stored as ``store.dtype``; integers keep their type."""
        return np.dtype(self.settings.dtype) if np.dtype(dtype).kind == "f" else np.dtype(dtype)

    def layer(self, model: str, dataset: str, layer_path: str, samples: int,
              view_dtype: str = "float16") -> "LayerWriter":
        return LayerWriter(self, f"{pair_key(model, dataset)}/layers/{layer_key(layer_path)}", samples, view_dtype)

    def __enter__(self) -> "StoreWriter":
        # After a failed write (a full disk) h5py's finalizers report a traceback per open object as the
        # failing frames unwind, through sys.excepthook: while the store is open those go to run.log, so the
        # console keeps the one line the CLI prints.
        self._excepthook, sys.excepthook = sys.excepthook, _log_finalizer_error
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        try:
            self.file.close()
            if error is not None:
                gc.collect()
        finally:
            sys.excepthook = self._excepthook


def _log_finalizer_error(kind: type[BaseException], error: BaseException, tb: Any) -> None:
    log.debug("HDF5 finalizer while writing the store: %s: %s", kind.__name__, error)


def full_rows(settings: StoreSection, samples: int) -> int:
    """How many of ``samples`` samples keep their full maps (``store.full_samples``: the first ones, or all)."""
    full = settings.full_samples
    return samples if full == "all" else min(int(full), samples)


class LayerWriter:
    """Creates a layer's datasets on its first batch (when the output shape is known) and fills them."""

    def __init__(self, store: StoreWriter, key: str, samples: int, view_dtype: str = "float16") -> None:
        self.store = store
        self.key = key
        self.samples = samples
        self.view_dtype = view_dtype
        self.pooled: h5py.Dataset | None = None
        self.maps: h5py.Dataset | None = None
        self.view: h5py.Dataset | None = None
        self.peak: h5py.Dataset | None = None
        self.tokens: h5py.Dataset | None = None
        self.tokens_total = 0  # sampled token positions, for token-aligned sequence layers
        self.full_samples = full_rows(store.settings, samples)

    def write(self, start: int, pooled: np.ndarray, activations: np.ndarray | None,
              view: np.ndarray | None = None, token_rows: tuple[slice, np.ndarray] | None = None,
              peak: np.ndarray | None = None) -> None:
        """Write a batch's pooled rows, view rows and sampled tokens' rows, and its full maps while ``start`` is
        below ``full_samples``; the per-sample peaks when given (map layers, rank 4 or more)."""
        if token_rows is not None:
            rows, values = token_rows
            if self.tokens is None:
                self.tokens = self.store.create(f"{self.key}/tokens", (self.tokens_total, values.shape[1]),
                                                self.view_dtype)
            self.tokens[rows] = _as(values, self.tokens.dtype)
        if self.pooled is None:
            dtype = self.store.stored_dtype(np.dtype(np.float32))
            self.pooled = self.store.create(f"{self.key}/pooled", (self.samples, pooled.shape[1]), dtype)
            if activations is not None and activations.ndim >= 3:
                self.maps = self.store.create(f"{self.key}/maps", (self.full_samples, *activations.shape[1:]), dtype,
                                              contiguous=True)
            if peak is not None:
                self.peak = self.store.create(f"{self.key}/peak", (self.samples, peak.shape[1]), dtype)
            if view is not None:
                self.view = self.store.create(f"{self.key}/view", (self.samples, view.shape[1]), self.view_dtype)
        self.pooled[start : start + len(pooled)] = _as(pooled, self.pooled.dtype)
        if self.view is not None:
            self.view[start : start + len(view)] = _as(view, self.view.dtype)
        if self.peak is not None:
            self.peak[start : start + len(peak)] = _as(peak, self.peak.dtype)
        if self.maps is not None and activations is not None and start < self.full_samples:
            keep = min(len(activations), self.full_samples - start)
            self.maps[start : start + keep] = _as(activations[:keep], self.maps.dtype)

    def finish(self, moments: Moments, histogram: Histogram, attrs: dict[str, Any],
               contexts: dict[str, np.ndarray] | None = None) -> None:
        group = self.store.file.require_group(self.key)
        for name, values in (contexts or {}).items():
            group.create_dataset(f"contexts/{name}", data=values)
        for name, values in moments.as_arrays().items():
            group.create_dataset(f"moments/{name}", data=values)
        counts = group.create_dataset("histogram/counts", data=histogram.counts)
        counts.attrs["exponent"] = histogram.exponent
        counts.attrs["start"] = histogram.start
        for name, value in attrs.items():
            group.attrs[name] = _attr(value)
