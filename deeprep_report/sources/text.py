"""Text datasets: raw text files and the built-in docstrings tokenised offline, and token arrays with their mask.

A text dataset holds three arrays, named as keras-hub backbones name their
inputs, so a dict-input model binds by name: ``token_ids`` (N, T) int32,
``padding_mask`` (N, T) int32 (1 at real tokens) and ``segment_ids`` (N, T)
zeros. A one-input model reads ``token_ids``. The texts and the vocabulary are
kept for the report (top contexts, sample strips). Token arrays (``.npz``/HDF5)
become text by naming their mask (``mask`` or ``pad_id``), ``vocabulary`` or
``token_labels``.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deeprep_report.config import Config, DatasetSpec
from deeprep_report.errors import first_line
from deeprep_report.sources.datasets import ArrayDataset, TextInfo, parse_labels

log = logging.getLogger("deeprep")

TEXT_SUFFIXES = (".txt", ".jsonl", ".csv")
TOKENS, MASK, SEGMENTS = "token_ids", "padding_mask", "segment_ids"


def text_file(config: Config, spec: DatasetSpec, path: Path, field_: str) -> ArrayDataset:
    """A .txt (one sample per non-empty line), .jsonl or .csv file, tokenised."""
    try:
        if path.suffix.lower() == ".txt":  # utf-8-sig below: a byte-order mark (Excel, Notepad) is not text
            texts, raw = _lines(path), None
        elif path.suffix.lower() == ".jsonl":
            texts, raw = _jsonl(path, spec)
        else:
            texts, raw = _csv(path, spec)
    except UnicodeDecodeError as exc:
        raise config.error(field_, f"{spec.path!r} is not UTF-8 text: {first_line(exc)}") from None
    except _BadRecord as exc:
        raise config.error(field_, f"{spec.path!r}: {exc}") from None
    if not texts:
        raise config.error(field_, f"{spec.path!r} holds no text (every line is empty)")
    labels, class_names, named = parse_labels(config, spec, np.asarray(raw) if raw is not None else None, field_)
    return _tokenised(config, spec, field_, texts, labels, class_names, f"text:{path}", named)


def docstrings(config: Config, spec: DatasetSpec, field_: str) -> ArrayDataset:
    """The built-in corpus (:mod:`deeprep_report.sources.corpus`), tokenised."""
    from deeprep_report.sources import corpus

    texts, labels, class_names = corpus.docstrings()
    return _tokenised(config, spec, field_, texts, labels, class_names, corpus.corpus_source(), "the built-in data")


def _tokenised(config: Config, spec: DatasetSpec, field_: str, texts: list[str], labels: np.ndarray | None,
               class_names: list[str] | None, source: str, names_from: str | None) -> ArrayDataset:
    from deeprep_report.sources.tokenizers import load_tokenizer, package_path

    where = field_.split(".")[0] + ".tokenizer"
    tokenizer_spec = spec.tokenizer
    try:
        path = package_path(tokenizer_spec.path) if tokenizer_spec.path else None
        if path is not None and not path.is_absolute():
            path = config.resolve(str(path))
        tokenizer = load_tokenizer(tokenizer_spec.kind, path, tokenizer_spec.lowercase)
        arrays = tokenizer.encode(texts, spec.sequence_length)
    except (ValueError, FileNotFoundError, OSError) as exc:
        raise config.error(where, first_line(exc)) from None
    if arrays.truncated:
        log.info("dataset %s: %d of %d texts cut to %d tokens", spec.name, arrays.truncated, len(texts),
                 spec.sequence_length)
    data = {TOKENS: arrays.token_ids, MASK: arrays.padding_mask.astype(np.int32),
            SEGMENTS: np.zeros_like(arrays.token_ids)}
    info = TextInfo(TOKENS, arrays.padding_mask, f"the {tokenizer_spec.kind} tokenizer's padding",
                    arrays.vocabulary, texts, arrays.special_ids)
    return ArrayDataset(data, labels, class_names, f"{source}; tokenizer {tokenizer_spec.kind}", text=info,
                        names_from=names_from)


class _BadRecord(ValueError):
    pass


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]


def _jsonl(path: Path, spec: DatasetSpec) -> tuple[list[str], list[Any] | None]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _BadRecord(f"line {number} is not JSON: {exc.msg}") from None
        if not isinstance(record, dict):
            raise _BadRecord(f"line {number} is not a JSON object")
        records.append((number, record))
    return _fields(records, spec, "line")


def _csv(path: Path, spec: DatasetSpec) -> tuple[list[str], list[Any] | None]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or spec.text_field not in reader.fieldnames:
            columns = ", ".join(map(repr, reader.fieldnames or [])) or "none"
            raise _BadRecord(f"no column {spec.text_field!r} (columns: {columns}); name it with text_field")
        records = [(number, row) for number, row in enumerate(reader, start=2)]
    return _fields(records, spec, "row")


def _fields(records: list[tuple[int, dict]], spec: DatasetSpec, unit: str) -> tuple[list[str], list[Any] | None]:
    """Texts and labels of the records; a record without the text field is an error, empty texts are skipped."""
    with_label = spec.label_field is not None and any(spec.label_field in r for _, r in records)
    texts, labels = [], []
    for number, record in records:
        if spec.text_field not in record:
            raise _BadRecord(f"{unit} {number} has no field {spec.text_field!r}; name the text field with text_field")
        text = str(record[spec.text_field] or "").strip()
        if not text:
            continue
        if with_label and record.get(spec.label_field) in (None, ""):
            raise _BadRecord(f"{unit} {number} has no label {spec.label_field!r} (other {unit}s have one)")
        texts.append(text)
        labels.append(str(record[spec.label_field]) if with_label else None)
    return texts, (labels if with_label else None)


def _token_array(spec: DatasetSpec, inputs: list[str], shapes: dict[str, tuple], read: Callable) -> str:
    """The array of token ids: ``x`` when it names one, else the one 2-D integer input (``token_ids`` first)."""
    if isinstance(spec.x, str):
        return spec.x
    candidates = [n for n in inputs if len(shapes[n]) == 2 and np.asarray(read(n)[:1]).dtype.kind in "iu"]
    for name in (TOKENS, "x", *candidates):
        if name in candidates:
            return name
    return TOKENS if TOKENS in inputs else "x"


def _strings(config: Config, where: str, name: str, values: np.ndarray) -> list[str]:
    """A 1-D array of strings (HDF5 and ``S`` arrays hold bytes: decoded as UTF-8)."""
    values = np.asarray(values)
    if values.ndim != 1 or values.dtype.kind not in "USO":
        raise config.error(f"{where}.vocabulary", f"array {name!r} must be a 1-D array of strings (id -> token), "
                           f"got {values.dtype} {values.shape}")
    return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in values.tolist()]


def token_info(config: Config, spec: DatasetSpec, field_: str, inputs: list[str], shapes: dict[str, tuple],
               read: Callable[[str], np.ndarray]) -> TextInfo | None:
    """The text side of a token-array dataset, when its spec names a mask, pad id, vocabulary or token labels."""
    if spec.mask is None and spec.pad_id is None and spec.vocabulary is None and not spec.token_labels:
        return None
    where = field_.split(".")[0]
    tokens = _token_array(spec, inputs, shapes, read)
    if tokens not in shapes or len(shapes[tokens]) != 2:
        raise config.error(where, f"{spec.path!r}: token ids must be an array {tokens!r} of shape (N, T)")
    expected = shapes[tokens]
    for name in [spec.mask, spec.vocabulary, *spec.token_labels]:
        if name is not None and name not in shapes:
            raise config.error(where, f"{spec.path!r} has no array {name!r} (arrays: {', '.join(map(repr, shapes))})")
    for key, name in [("mask", spec.mask), *(("token_labels", n) for n in spec.token_labels)]:
        if name is not None and tuple(shapes[name]) != tuple(expected):
            raise config.error(f"{where}.{key}", f"array {name!r} has shape {tuple(shapes[name])}, but the token ids "
                               f"{tokens!r} have shape {tuple(expected)}; expected one value per token")
    mask, source = None, ""
    if spec.mask is not None:
        mask, source = read(spec.mask) != 0, f"array {spec.mask!r}"
    elif spec.pad_id is not None:
        mask, source = read(tokens) != spec.pad_id, f"pad_id {spec.pad_id}"
    vocabulary = _strings(config, where, spec.vocabulary, read(spec.vocabulary)) if spec.vocabulary else None
    labels = {name: np.asarray(read(name), dtype=np.int64) for name in spec.token_labels}
    return TextInfo(tokens, mask, source, vocabulary, None, [spec.pad_id] if spec.pad_id is not None else [], labels)
