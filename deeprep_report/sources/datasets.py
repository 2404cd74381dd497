"""Dataset loaders: ``.npz`` and HDF5 arrays, image folders, and the built-in digits.

A :class:`Dataset` names its arrays (one per model input) and reads any rows of
them on demand, so extraction streams batch by batch. HDF5 files and image
folders are read lazily; a ``.npz`` archive cannot be memory-mapped, so its
arrays are loaded whole (use HDF5 for data that does not fit in memory).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from deeprep_report.config import Config, DatasetSpec
from deeprep_report.errors import UserError, first_line

log = logging.getLogger("deeprep")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}


@dataclass(frozen=True)
class ArrayInfo:
    """Shape of one sample (without the row axis) and dtype of an input array."""

    shape: tuple[int, ...]
    dtype: np.dtype


@dataclass
class TextInfo:
    """What makes a dataset text: which array holds token ids, where the padding is, what the ids mean.

    ``mask`` (n_rows, T) is True at real tokens; None when the data does not say (the plan then takes it from
    the model: a ``padding_mask`` input, or an ``Embedding(mask_zero=True)``)."""

    tokens: str
    mask: np.ndarray | None = None
    mask_source: str = ""
    vocabulary: list[str] | None = None
    texts: list[str] | None = None
    special_ids: list[int] = field(default_factory=list)
    token_labels: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class InputTransform:
    """``datasets[].rescale`` then ``datasets[].normalize``: ``(x * rescale - mean) / std`` in float32, the mean
    and std per channel (the last axis) or one for all. One transform for arrays and image folders, so both
    scale alike; the identity leaves values (and their dtype) as stored."""

    rescale: float = 1.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @classmethod
    def of(cls, spec: DatasetSpec) -> "InputTransform":
        norm = spec.normalize
        return cls(spec.rescale, tuple(norm.mean) if norm else None, tuple(norm.std) if norm else None)

    @property
    def identity(self) -> bool:
        return self.rescale == 1.0 and self.mean is None

    def dtype(self, dtype: np.dtype) -> np.dtype:
        """The dtype of transformed values of ``dtype``."""
        return np.dtype(dtype) if self.identity else np.dtype(np.float32)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        if self.identity:
            return values
        out = values.astype(np.float32) * np.float32(self.rescale)
        if self.mean is not None:
            out = (out - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return out


class Dataset(Protocol):
    """What extraction needs from a data source. ``names_from`` says what names the classes when the data
    does (string labels, subfolders, built-in data), so ``datasets[].class_names`` is refused there; None for
    integer labels."""

    n_rows: int
    arrays: dict[str, ArrayInfo]
    labels: np.ndarray | None
    class_names: list[str] | None
    source: str
    text: TextInfo | None
    names_from: str | None

    def read(self, rows: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """The named arrays at ``rows`` (any order), each of shape (len(rows), *sample_shape)."""

    def fingerprint(self) -> str:
        """``sha256:<hex>`` of the data as stored."""


@dataclass
class ArrayDataset:
    """Arrays held in memory (``.npz`` archives and built-in data)."""

    data: dict[str, np.ndarray]
    labels: np.ndarray | None
    class_names: list[str] | None
    source: str
    file: Path | None = None
    text: TextInfo | None = None
    transform: InputTransform = InputTransform()  # applied to every input array
    names_from: str | None = None
    arrays: dict[str, ArrayInfo] = field(init=False)
    n_rows: int = field(init=False)

    def __post_init__(self) -> None:
        self.arrays = {k: ArrayInfo(tuple(v.shape[1:]), self.transform.dtype(v.dtype)) for k, v in self.data.items()}
        self.n_rows = len(next(iter(self.data.values())))

    def read(self, rows: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        return {name: self.transform(self.data[name][rows]) for name in names}

    def fingerprint(self) -> str:
        if self.file is not None:
            return file_sha256(self.file)
        digest = hashlib.sha256()
        for name in sorted(self.data):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(self.data[name]).tobytes())
        if self.labels is not None:
            digest.update(np.ascontiguousarray(self.labels).tobytes())
        return "sha256:" + digest.hexdigest()


@dataclass
class HDF5Dataset:
    """Arrays in an HDF5 file, read row by row so only a batch is in memory."""

    file: Path
    names: list[str]
    labels: np.ndarray | None
    class_names: list[str] | None
    source: str
    text: TextInfo | None = None
    transform: InputTransform = InputTransform()  # applied to every input array
    names_from: str | None = None
    arrays: dict[str, ArrayInfo] = field(init=False)
    n_rows: int = field(init=False)

    def __post_init__(self) -> None:
        import h5py

        with h5py.File(self.file, "r") as handle:
            self.arrays = {n: ArrayInfo(tuple(handle[n].shape[1:]), self.transform.dtype(handle[n].dtype))
                           for n in self.names}
            self.n_rows = int(handle[self.names[0]].shape[0])
        self._handle = None

    def read(self, rows: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        import h5py

        if self._handle is None:
            self._handle = h5py.File(self.file, "r")
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        unique, inverse = np.unique(sorted_rows, return_inverse=True)
        restore = np.empty_like(order)
        restore[order] = np.arange(len(order))
        out = {}
        for name in names:
            block = self._handle[name][unique]  # h5py wants increasing indices
            out[name] = self.transform(block[inverse][restore])
        return out

    def fingerprint(self) -> str:
        return file_sha256(self.file)


@dataclass
class ImageFolderDataset:
    """One subfolder per class, images decoded on demand with Pillow."""

    files: list[Path]
    labels: np.ndarray
    class_names: list[str]
    size: tuple[int, int]
    color_mode: str
    transform: InputTransform
    source: str
    root: Path
    text: TextInfo | None = None
    names_from: str | None = "its subfolders"
    arrays: dict[str, ArrayInfo] = field(init=False)
    n_rows: int = field(init=False)

    def __post_init__(self) -> None:
        self.arrays = {"x": ArrayInfo((*self.size, _CHANNELS[self.color_mode]), np.dtype(np.float32))}
        self.n_rows = len(self.files)

    def read(self, rows: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        batch = np.stack([self._load(self.files[int(row)]) for row in rows])
        return {"x": batch}

    def _load(self, file: Path) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(file) as image:
                mode = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}[self.color_mode]
                image = image.convert(mode)
                if image.size != (self.size[1], self.size[0]):
                    image = image.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
                pixels = np.asarray(image, dtype=np.float32)
        except OSError as exc:
            raise UserError(f"{file}: cannot read image: {first_line(exc)}") from None
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        return self.transform(pixels)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for file in self.files:
            digest.update(str(file.relative_to(self.root)).encode())
            digest.update(bytes.fromhex(file_sha256(file).split(":")[1]))
        return "sha256:" + digest.hexdigest()


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def select_rows(n_rows: int, limit: int | None, shuffle: bool, seed: int) -> np.ndarray:
    """Dataset rows to use, in sample order: a seeded permutation (or the first rows), cut at ``limit``."""
    count = n_rows if limit is None else min(limit, n_rows)
    if not shuffle:
        return np.arange(count, dtype=np.int64)
    return np.random.default_rng(seed).permutation(n_rows)[:count].astype(np.int64)


def batches(rows: np.ndarray, batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(first sample position, rows of the batch)`` in order."""
    for start in range(0, len(rows), batch_size):
        yield start, rows[start : start + batch_size]


def parse_labels(
    config: Config, spec: DatasetSpec, raw: np.ndarray | None, field_: str
) -> tuple[np.ndarray | None, list[str] | None, str | None]:
    """Integer labels 0..K-1, their names, and what named them (``'string labels'``; None when the names are
    the numbers, which ``class_names`` may replace), from integer, string or one-hot arrays."""
    if raw is None:
        return None, None, None
    raw = np.asarray(raw)
    if raw.ndim == 2 and raw.shape[1] > 1:
        raw = raw.argmax(axis=1)
    raw = raw.reshape(len(raw)) if raw.ndim == 2 and raw.shape[1] == 1 else raw
    if raw.ndim != 1:
        raise config.error(field_, f"labels must be one per sample (shape (N,)), got shape {raw.shape}")
    if raw.dtype.kind in "US":
        names, codes = np.unique(raw.astype(str), return_inverse=True)
        return codes.astype(np.int64), [str(n) for n in names], "string labels"
    if raw.dtype.kind == "f" and not np.all(np.isfinite(raw) & (raw == np.round(raw))):
        raise config.error(field_, "labels must be integers or strings, got non-integer numbers")
    if raw.dtype.kind not in "iuf" or (raw.size and raw.min() < 0):
        raise config.error(field_, "labels must be non-negative integers or strings")
    labels = raw.astype(np.int64)
    count = int(labels.max()) + 1 if labels.size else 0
    return labels, [str(k) for k in range(count)], None
