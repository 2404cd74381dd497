"""Reading a finished store (``activations.h5``), and naming the store whose read failed.

The layout is documented in :mod:`deeprep_report.store.activations` (which writes it) and docs/store.md.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from deeprep_report.stats import Histogram, Moments
from deeprep_report.stats.views import ViewSpec
from deeprep_report.store.activations import FORMAT, FORMAT_VERSION, h5_name, layer_key, pair_key, read_rows, unescape


def _read_attrs(node: h5py.HLObject) -> dict[str, Any]:
    out = {}
    for key, value in node.attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def _strings(values: np.ndarray) -> list[str]:
    """UTF-8 strings of an HDF5 string array; a damaged byte becomes U+FFFD (a run folder is untrusted input)."""
    return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in values.tolist()]


class StoreReader:
    """Read access to a finished store (``mode='r+'`` lets the analyze stage add ``stats``)."""

    def __init__(self, path: Path, mode: str = "r") -> None:
        self.path = Path(path)
        self.mode = mode
        self.file = h5py.File(path, mode)
        if self.file.attrs.get("format") != FORMAT:
            self.file.close()
            raise ValueError(f"{path}: not a deeprep activations store")
        version = int(self.file.attrs.get("format_version", 0))
        if version > FORMAT_VERSION:
            self.file.close()
            raise ValueError(f"{path}: store format {version} is newer than this tool's ({FORMAT_VERSION})")

    def __enter__(self) -> "StoreReader":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is not None:
            remember_failed_store(error)
        self.file.close()

    def attrs(self, key: str = "/") -> dict[str, Any]:
        return _read_attrs(self.file[key])

    def json_attr(self, key: str, name: str) -> Any:
        return json.loads(self.file[key].attrs[name])

    def pairs(self) -> list[tuple[str, str]]:
        return [tuple(pair) for pair in self.json_attr("/", "pairs")]

    def layers(self, model: str, dataset: str) -> list[str]:
        return self.json_attr(pair_key(model, dataset), "layers")

    def layer_group(self, model: str, dataset: str, layer_path: str) -> h5py.Group:
        return self.file[f"{pair_key(model, dataset)}/layers/{layer_key(layer_path)}"]

    def view(self, model: str, dataset: str, layer_path: str) -> tuple[h5py.Dataset, ViewSpec | None]:
        """A layer's analysis view (N, dims) and how it was made; a store written before views existed gives
        the channel means (``pooled``) and None."""
        group = self.layer_group(model, dataset, layer_path)
        spec = ViewSpec.from_attrs(_read_attrs(group))
        return (group["view"] if "view" in group else group["pooled"]), spec

    def tokens(self, model: str, dataset: str, arrays: bool = True) -> dict[str, Any] | None:
        """A sequence pair's ids (N, T), mask (N, T) bool, positions (n, 2) and attributes (``arrays=False``: the
        attributes, ``length`` and ``sampled`` only); None otherwise."""
        key = f"{pair_key(model, dataset)}/tokens"
        if key not in self.file:
            return None
        group = self.file[key]
        out = {**_read_attrs(group), "length": int(group["ids"].shape[1]), "sampled": int(group["positions"].shape[0])}
        if arrays:
            out.update(ids=group["ids"][()], mask=group["mask"][()].astype(bool), positions=group["positions"][()])
        return out

    def text(self, dataset: str) -> dict[str, Any] | None:
        """A text dataset's vocabulary (None when unknown), whether it has texts, and its token labels; None for
        other data. Texts are read by row (:meth:`texts`): N strings need not be in memory."""
        key = f"datasets/{h5_name(dataset)}/text"
        if key not in self.file:
            return None
        group = self.file[key]
        vocabulary = _strings(group["vocabulary"][()]) if "vocabulary" in group else None
        labels = {name: group["token_labels"][name][()] for name in group.get("token_labels", {})}
        return {"vocabulary": vocabulary, "has_texts": "texts" in group, "token_labels": labels, **_read_attrs(group)}

    def texts(self, dataset: str, rows: Any) -> list[str] | None:
        """The texts of some samples (sample order, as stored), or None when the dataset has none."""
        key = f"datasets/{h5_name(dataset)}/text/texts"
        if key not in self.file:
            return None
        return _strings(read_rows(self.file[key], np.asarray(rows, dtype=np.int64)))

    def token_view(self, model: str, dataset: str, layer_path: str) -> h5py.Dataset | None:
        """The sampled tokens' rows (n, D) of a token-aligned sequence layer; None for other layers."""
        group = self.layer_group(model, dataset, layer_path)
        return group["tokens"] if "tokens" in group else None

    def contexts(self, model: str, dataset: str, layer_path: str) -> dict[str, np.ndarray] | None:
        group = self.layer_group(model, dataset, layer_path)
        return {name: group["contexts"][name][()] for name in group["contexts"]} if "contexts" in group else None

    def weight_sketches(self, model: str) -> dict[str, np.ndarray]:
        """Per layer path, the sketch of its weights (stats/weights.py); empty for a store without them."""
        key = f"models/{h5_name(model)}/weight_sketches"
        if key not in self.file:
            return {}
        return {unescape(name): self.file[key][name][()].astype(np.float64) for name in self.file[key]}

    def moments(self, model: str, dataset: str, layer_path: str) -> Moments:
        group = self.layer_group(model, dataset, layer_path)["moments"]
        return Moments(**{name: group[name][()] for name in Moments.__dataclass_fields__})

    def histogram(self, model: str, dataset: str, layer_path: str) -> Histogram:
        counts = self.layer_group(model, dataset, layer_path)["histogram/counts"]
        return Histogram(int(counts.attrs["exponent"]), int(counts.attrs["start"]), counts[()])

    def write_stats(self, model: str, dataset: str, layer_path: str, stats: dict[str, np.ndarray]) -> None:
        group = self.layer_group(model, dataset, layer_path).require_group("stats")
        for name, values in stats.items():
            if name in group:
                del group[name]
            group.create_dataset(name, data=values)


@contextlib.contextmanager
def naming_failed_store(source: Path) -> Iterator[None]:
    """Inside it, an error HDF5 raises is taken for a failure to read ``source`` (a finished run's store,
    opened read-only, copied into the store being written: the damage is the source's, whichever object's
    method raised it). Disk-full and permission errors are still faults, found first by their errno."""
    try:
        yield
    except Exception as error:
        if failed_store(error) is not None:
            error.store_read = (str(source), "r")
        raise


def remember_failed_store(error: BaseException) -> None:
    if not hasattr(error, "store_read"):
        error.store_read = failed_store(error)


def failed_store(error: BaseException) -> tuple[str, str] | None:
    """``(file name, mode)`` of the store whose read HDF5 failed with ``error``, or None when HDF5 did not
    raise it: the innermost frame is h5py's, and the nearest h5py object or StoreReader names the file."""
    frames, tb = [], error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    if not frames or "h5py" not in Path(frames[-1].f_code.co_filename).parts:
        return None
    for frame in reversed(frames):
        owner = frame.f_locals.get("self")
        if isinstance(owner, StoreReader):
            return str(owner.path), owner.mode
        if isinstance(owner, h5py.HLObject):
            try:
                return owner.file.filename, owner.file.mode
            except Exception:  # noqa: BLE001 - a closed file names nothing; look further out
                continue
    return None
