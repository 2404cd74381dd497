"""Opening a dataset named by the config: the built-in data, ``.npz`` and HDF5 arrays, image folders and
text files (:mod:`deeprep_report.sources.text`); every problem is a :class:`ConfigError` at its entry."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from deeprep_report.config import Config, DatasetSpec
from deeprep_report.errors import first_line
from deeprep_report.sources import text
from deeprep_report.sources.datasets import (
    IMAGE_SUFFIXES, ArrayDataset, Dataset, HDF5Dataset, ImageFolderDataset, InputTransform, parse_labels,
)

log = logging.getLogger("deeprep")


def open_dataset(config: Config, index: int) -> Dataset:
    """Open ``datasets[index]`` of the config; every problem is a :class:`ConfigError` at that entry."""
    spec = config.pipeline.datasets[index]
    where = f"datasets[{index}]"
    if spec.builtin == "docstrings":
        dataset: Dataset = text.docstrings(config, spec, f"{where}.builtin")
    elif spec.builtin is not None:
        dataset = _builtin(spec)
    else:
        path = config.resolve(spec.path)
        field_ = f"{where}.path"
        if not path.exists():
            raise config.error(field_, f"no such file or folder {spec.path!r}")
        if path.is_dir():
            dataset = _image_folder(config, spec, path, field_)
        elif path.suffix.lower() == ".npz":
            dataset = _npz(config, spec, path, field_)
        elif path.suffix.lower() in (".h5", ".hdf5"):
            dataset = _hdf5(config, spec, path, field_)
        elif path.suffix.lower() in text.TEXT_SUFFIXES:
            dataset = text.text_file(config, spec, path, field_)
        else:
            raise config.error(field_, f"{spec.path!r}: expected a .npz or .h5 file, an image folder or a text file "
                                       "(.txt, .jsonl, .csv)")
    if dataset.n_rows == 0:
        raise config.error(f"{where}.path" if spec.path else f"{where}.builtin",
                           f"dataset {spec.name!r} is empty (0 samples)")
    _check_channels(config, spec, dataset, where)
    _name_classes(config, spec, dataset, where)
    return dataset


def _builtin(spec: DatasetSpec) -> Dataset:
    from deeprep_report.sources import demo

    if spec.builtin == "digits_mirrored":
        x, y = demo.digits_mirrored()
        return ArrayDataset({"x": x}, y, ["as drawn", "mirrored"],
                            "builtin:digits_mirrored (scikit-learn digits, half mirrored left-right; label: mirrored)",
                            names_from="the built-in data")
    x, y = demo.digits()
    return ArrayDataset({"x": x}, y, [str(d) for d in range(10)], "builtin:digits (scikit-learn digits, 28x28x1)",
                        names_from="the built-in data")


def _npz(config: Config, spec: DatasetSpec, path: Path, field_: str) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {name: archive[name] for name in archive.files}
    except ValueError as exc:
        raise config.error(field_, f"{spec.path!r}: cannot read .npz (object arrays are refused): {first_line(exc)}") from None
    except Exception as exc:  # zipfile.BadZipFile, OSError, EOFError...
        raise config.error(field_, f"{spec.path!r}: not a readable .npz archive: {first_line(exc)}") from None
    shapes = {name: array.shape for name, array in data.items()}
    inputs, label_name = _pick_arrays(config, spec, field_, shapes)
    labels, class_names, named = parse_labels(config, spec, data[label_name] if label_name else None, field_)
    arrays = {name: data[name] for name in inputs}
    _check_rows(config, spec, field_, {n: shapes[n] for n in inputs}, labels)
    info = text.token_info(config, spec, field_, inputs, shapes, lambda name: data[name])
    _check_scaling(config, spec, field_, info, {name: data[name].dtype for name in inputs})
    return ArrayDataset(arrays, labels, class_names, f"npz:{path}", file=path, text=info,
                        transform=InputTransform.of(spec), names_from=named)


def _hdf5(config: Config, spec: DatasetSpec, path: Path, field_: str) -> Dataset:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            shapes = {name: handle[name].shape for name in handle if isinstance(handle[name], h5py.Dataset)}
            inputs, label_name = _pick_arrays(config, spec, field_, shapes)
            raw_labels = handle[label_name][()] if label_name else None
            info = text.token_info(config, spec, field_, inputs, shapes, lambda name: handle[name][()])
            _check_scaling(config, spec, field_, info, {name: handle[name].dtype for name in inputs})
    except OSError as exc:
        raise config.error(field_, f"{spec.path!r}: not a readable HDF5 file: {first_line(exc)}") from None
    labels, class_names, named = parse_labels(config, spec, raw_labels, field_)
    _check_rows(config, spec, field_, {n: shapes[n] for n in inputs}, labels)
    return HDF5Dataset(path, inputs, labels, class_names, f"hdf5:{path}", text=info,
                       transform=InputTransform.of(spec), names_from=named)


def _check_scaling(config: Config, spec: DatasetSpec, field_: str, info: object, dtypes: dict[str, np.dtype]) -> None:
    """``rescale`` and ``normalize`` scale numeric input arrays as they scale image folders; token ids cannot be
    scaled."""
    given = spec.scaling()
    if not given:
        return
    where = field_.split(".")[0] + "." + given[0]
    if info is not None:
        raise config.error(where, f"token ids cannot be {given[0]}d; remove {given[0]}")
    for name, dtype in dtypes.items():
        if np.dtype(dtype).kind not in "biuf":
            raise config.error(where, f"array {name!r} is not numeric ({dtype}); {given[0]} works on numbers")


def _check_channels(config: Config, spec: DatasetSpec, dataset: Dataset, where: str) -> None:
    """``normalize`` gives one value per channel (the last axis of a sample) or one for all."""
    norm = spec.normalize
    if norm is None:
        return
    for name, info in dataset.arrays.items():
        channels = info.shape[-1] if info.shape else 1
        if len(norm.mean) not in (1, channels) or len(norm.std) not in (1, channels):
            raise config.error(f"{where}.normalize", f"array {name!r} has {channels} channels (the last axis of its "
                               f"samples, shape {tuple(info.shape)}) but mean has {len(norm.mean)} values and std "
                               f"{len(norm.std)}; give 1 or {channels} values each")


def _name_classes(config: Config, spec: DatasetSpec, dataset: Dataset, where: str) -> None:
    """``class_names`` names integer labels 0..K-1, in one place for every loader; data that names its classes
    itself (strings, subfolders, built-in data) is refused, as is a list that leaves a label unnamed."""
    if spec.class_names is None:
        return
    field_ = f"{where}.class_names"
    if dataset.labels is None:
        raise config.error(field_, f"dataset {spec.name!r} has no labels to name (give it labels, or remove "
                                   "class_names)")
    if dataset.names_from is not None:
        raise config.error(field_, f"the classes of dataset {spec.name!r} are named by {dataset.names_from}; "
                                   "remove class_names")
    names = _class_name_list(config, spec.class_names, field_)
    needed = len(dataset.class_names or [])  # integer labels: the largest label + 1
    if len(names) < needed:
        raise config.error(field_, f"{len(names)} names for labels 0 to {needed - 1}: {needed} are needed")
    if len(names) > needed:
        log.info("dataset %s: %d class names, labels 0 to %d: %s have no samples", spec.name, len(names),
                 needed - 1, ", ".join(repr(n) for n in names[needed:]))
    dataset.class_names = names


def _class_name_list(config: Config, value: list[str] | str, field_: str) -> list[str]:
    """The names of a list, or of a text file with one per line (stripped); each non-empty and used once."""
    if isinstance(value, str):
        path = config.resolve(value)
        if not path.is_file():
            raise config.error(field_, f"no such file {value!r}")
        try:
            names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            raise config.error(field_, f"cannot read {value!r}: {first_line(exc)}") from None
        while names and not names[-1]:
            names.pop()
        places = [(field_, f"{value!r} line {number}: ") for number in range(1, len(names) + 1)]
    else:
        names, places = list(value), [(f"{field_}[{index}]", "") for index in range(len(value))]
    if not names:
        raise config.error(field_, f"{value!r} holds no names" if isinstance(value, str) else "expected at least "
                           "one name")
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        where, prefix = places[index]
        if not name.strip():
            raise config.error(where, f"{prefix}empty name; every class needs one")
        if name in seen:
            raise config.error(where, f"{prefix}{name!r} is already the name of class {seen[name]}; names must be "
                                      "unique")
        seen[name] = index
    return names


def _check_images(config: Config, field_: str, files: list[Path]) -> None:
    """Every image file is checked (its format and structure, without decoding the pixels) before a run folder
    exists, so a damaged file is one error line up front, not a failure after extraction has begun."""
    from PIL import Image

    started = time.perf_counter()
    for file in files:
        try:
            with Image.open(file) as image:
                image.verify()
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a damaged file
            raise config.error(field_, f"{file}: cannot read image: {first_line(exc) or type(exc).__name__}") from None
    log.debug("%d image files checked in %.2f s", len(files), time.perf_counter() - started)


def _pick_arrays(
    config: Config, spec: DatasetSpec, field_: str, shapes: dict[str, tuple[int, ...]]
) -> tuple[list[str], str | None]:
    """(candidate input arrays, label array): the arrays named by x, else every array but the labels."""
    available = ", ".join(repr(n) for n in shapes) or "none"
    label_name = spec.y if spec.y is not None else ("y" if "y" in shapes else None)
    if label_name is not None and label_name not in shapes:
        raise config.error(field_, f"{spec.path!r} has no label array {label_name!r} (arrays: {available})")
    if isinstance(spec.x, dict):
        inputs = list(dict.fromkeys(spec.x.values()))
    elif isinstance(spec.x, str):
        inputs = [spec.x]
    else:
        side = {label_name, spec.vocabulary, *spec.token_labels}  # text arrays that are not inputs (a mask may be)
        inputs = [name for name in shapes if name not in side]
    for name in inputs:
        if name not in shapes:
            raise config.error(field_, f"{spec.path!r} has no array {name!r} (arrays: {available})")
    if not inputs:
        raise config.error(field_, f"{spec.path!r} has no input array (arrays: {available})")
    return inputs, label_name


def _check_rows(
    config: Config, spec: DatasetSpec, field_: str, shapes: dict[str, tuple[int, ...]], labels: np.ndarray | None
) -> None:
    rows = {name: shape[0] if len(shape) else 0 for name, shape in shapes.items()}
    if labels is not None:
        rows["labels"] = len(labels)
    if len(set(rows.values())) > 1:
        listing = ", ".join(f"{k}: {v}" for k, v in rows.items())
        raise config.error(field_, f"arrays have different numbers of rows ({listing})")
    for name, shape in shapes.items():
        if len(shape) < 1:
            raise config.error(field_, f"array {name!r} is a scalar; expected one row per sample")


def _image_folder(config: Config, spec: DatasetSpec, root: Path, field_: str) -> Dataset:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise config.error(field_, f"{spec.path!r}: expected one subfolder per class, found none")
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        files += found
        labels += [label] * len(found)
    if not files:
        raise config.error(field_, f"dataset {spec.name!r} is empty (no images in {spec.path!r})")
    _check_images(config, field_, files)
    size = spec.image_size
    if size is None:
        from PIL import Image

        try:
            with Image.open(files[0]) as first:
                size = (first.height, first.width)
        except OSError as exc:
            raise config.error(field_, f"{files[0]}: cannot read image: {first_line(exc)}") from None
        log.info("dataset %s: images resized to %dx%d (the first image's size; set image_size to choose)",
                 spec.name, *size)
    return ImageFolderDataset(files, np.asarray(labels, dtype=np.int64), classes, tuple(size), spec.color_mode,
                              InputTransform.of(spec), f"images:{root}", root)
