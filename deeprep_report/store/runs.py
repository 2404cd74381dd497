"""Reading a finished run folder: its ``summary.json``, its store, the config stored with it, and the
run as a baseline for another (the rows it used, whether it saw the same data).

Every later reader (``deeprep render``, ``deeprep check``, the plan stage
reading a baseline's rows, the comparison) goes through here, so a folder that
is not a finished run is refused with the same one-line error everywhere.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from deeprep_report import __version__
from deeprep_report.config import Pipeline, apply_override, validate
from deeprep_report.errors import UserError, first_line
from deeprep_report.store.activations import h5_name
from deeprep_report.store.reader import StoreReader, failed_store
from deeprep_report.store.runfolder import SUMMARY, check_one_run, unfinished_publish
from deeprep_report.store.summary import READABLE_VERSIONS, SCHEMA_VERSION, schema

STORE = "activations.h5"


def open_run(run_dir: Path, role: str = "") -> tuple[dict[str, Any], StoreReader]:
    """A finished run's summary and store, checked to be one run's: no publish half done, the same run id in
    summary.json, activations.h5 and the folder's marker. ``role`` prefixes messages (``"baseline "``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{role}{run_dir}: no such run folder")
    pending = unfinished_publish(run_dir)
    if pending:
        raise UserError(f"{role}{run_dir}: {pending}")
    summary = load_summary(run_dir, role)
    store = open_store(run_dir, role)
    try:
        check_one_run(run_dir, {SUMMARY: summary["run"].get("id"), STORE: store.attrs().get("run_id")})
    except BaseException:
        store.file.close()
        raise
    return summary, store


def open_store(run_dir: Path, role: str = "") -> StoreReader:
    """A finished run's activations.h5 for reading, or a one-line error saying why it cannot be read."""
    store_path = Path(run_dir) / STORE
    if not store_path.is_file():
        raise UserError(f"{role}{run_dir}: no activations.h5, so there is nothing to work from")
    try:
        return StoreReader(store_path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{role}{store_path}: cannot read the store: {first_line(exc)}") from None


def damaged_store_error(error: BaseException) -> UserError | None:
    """An HDF5 failure reading a store opened read-only (a finished run's or a baseline's: damaged, or not
    written by deeprep) as one line naming the store; None for any other error, which stays a bug.

    HDF5 finds a damaged object only when it is read, anywhere in render or check, so this is applied where
    the command's error becomes its exit code rather than around every read."""
    if not isinstance(error, (OSError, KeyError, RuntimeError, ValueError, TypeError)):
        return None
    failed = getattr(error, "store_read", None) or failed_store(error)
    if failed is None or failed[1] != "r":
        return None  # not HDF5's, or a store this command writes: a fault or a bug
    detail = error.args[0] if isinstance(error, KeyError) and error.args else error
    return UserError(f"{failed[0]}: cannot read the store (the file is damaged, or deeprep did not write it): "
                     f"{first_line(detail)}")


def load_summary(run_dir: Path, role: str = "") -> dict:
    """A finished run's summary.json, or a one-line error saying why it cannot be read."""
    path = run_dir / SUMMARY
    if not run_dir.is_dir():
        raise UserError(f"{role}{run_dir}: no such run folder")
    if not path.is_file():
        raise UserError(f"{role}{run_dir}: no summary.json, so this is not a finished run")
    return read_summary(path, role)


def read_summary(path: Path, role: str = "") -> dict[str, Any]:
    """A summary.json read from a run folder (untrusted input), checked before anything uses it: JSON, an
    object, a readable version, and the structure of that version (the whole schema for the current one)."""
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{role}{path}: not readable JSON: {first_line(exc)}") from None
    if not isinstance(summary, dict):
        raise UserError(f"{role}{path}: expected a JSON object, got a JSON {type(summary).__name__}")
    if summary.get("schema_version") not in READABLE_VERSIONS:
        raise UserError(f"{role}{path}: summary schema version {summary.get('schema_version')!r}; this deeprep "
                        f"{__version__} reads versions {', '.join(map(str, READABLE_VERSIONS))}")
    problem = summary_problem(summary)
    if problem:
        raise UserError(f"{role}{path}: {problem} (not a summary.json as deeprep writes it)")
    return summary


def summary_problem(summary: dict[str, Any]) -> str | None:
    """Where a summary departs from its version's structure, or None. The current version is validated against
    its JSON Schema; older ones against the core every version has (run, models, datasets, pairs)."""
    if summary["schema_version"] == SCHEMA_VERSION:
        import jsonschema

        error = jsonschema.exceptions.best_match(_validator().iter_errors(summary))
        if error is None:
            return None
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        return f"{where or 'top level'}: {_short(error.message)}"
    for key, kind in (("run", dict), ("models", list), ("datasets", list), ("pairs", list)):
        if not isinstance(summary.get(key), kind):
            return f"{key}: expected a JSON {'object' if kind is dict else 'array'}"
    for key, fields in CORE_FIELDS.items():
        for index, item in enumerate(summary[key]):
            for name, kind in fields:
                value = item.get(name) if isinstance(item, dict) else None
                if not isinstance(value, kind) or isinstance(value, bool):
                    return f"{key}[{index}].{name}: expected {'a string' if kind is str else 'an integer'}"
    return None


#: The fields every summary version has and every reader of a run folder relies on.
CORE_FIELDS = {"models": (("name", str),), "datasets": (("name", str), ("fingerprint", str), ("n_rows", int)),
               "pairs": (("model", str), ("dataset", str))}


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    """The current schema's validator, built once (``deeprep index`` validates every run folder it lists)."""
    import jsonschema

    return jsonschema.Draft202012Validator(schema())


def _rows_key(dataset: str) -> str:
    """Where a run's store keeps the rows it used of ``dataset``."""
    return f"datasets/{h5_name(dataset)}/index"


def _short(message: str, limit: int = 160) -> str:
    message = (message.splitlines() or [""])[0]
    return message if len(message) <= limit else message[:limit] + "…"


def stored_pipeline(store: StoreReader, run_dir: Path, overrides: Sequence[str] = ()) -> Pipeline:
    """The resolved config stored with the run (what ``deeprep check`` and ``render`` work from)."""
    raw = _without_retired(yaml.safe_load(store.attrs().get("config", "")) or {})
    applied = [apply_override(raw, item) for item in overrides]
    return validate(raw, f"{run_dir}/pipeline.yaml", applied)


#: Keys a stored config of an older version may hold that this version no longer has: (section path, keys).
#: They only shaped that run's analysis, which is read back as stored; a user's pipeline with them is refused.
RETIRED = ((("analysis", "probes"), ("cs", "folds", "max_dims")), (("analysis", "cka"), ("minibatch_above",)))


def _without_retired(raw: dict[str, Any]) -> dict[str, Any]:
    for path, keys in RETIRED:
        node: Any = raw
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            for key in keys:
                node.pop(key, None)
    return raw


@dataclass(frozen=True)
class Baseline:
    """A finished run folder used as the reference."""

    folder: Path
    summary: dict[str, Any]

    @property
    def store_path(self) -> Path:
        return self.folder / STORE

    def dataset_rows(self) -> dict[str, tuple[np.ndarray, str, int]]:
        """Per dataset name: (rows used, data fingerprint, rows in the source)."""
        out = {}
        with StoreReader(self.store_path) as store:
            for dataset in self.summary["datasets"]:
                rows = store.file[_rows_key(dataset["name"])][()]
                out[dataset["name"]] = (rows, dataset["fingerprint"], dataset["n_rows"])
        return out


def open_baseline(folder: str | Path) -> Baseline:
    """Load a baseline run folder, or say in one line why it cannot serve as one."""
    folder = Path(folder)
    if folder.is_dir() and not ((folder / SUMMARY).is_file() and (folder / STORE).is_file()):
        raise UserError(f"baseline {folder}: not a finished run (summary.json and activations.h5 are needed)")
    summary, store = open_run(folder, "baseline ")
    with store:
        missing = [d["name"] for d in summary["datasets"] if _rows_key(d["name"]) not in store.file]
    if missing:
        raise UserError(f"baseline {folder / STORE}: no rows stored for dataset {missing[0]!r} of its summary; the "
                        "store and summary.json are not of one run")
    return Baseline(folder.resolve(), summary)


def match_pairs(current: list[tuple[str, str]], reference: list[tuple[str, str]]) -> dict[tuple[str, str],
                                                                                      tuple[str, str]]:
    """(model, dataset) pairs of a run matched with a baseline's: by model and dataset name; with one model on
    each side, by dataset alone (a renamed model)."""
    matches = {key: key for key in current if key in reference}
    current_models = {m for m, _ in current}
    reference_models = {m for m, _ in reference}
    if not matches and len(current_models) == 1 and len(reference_models) == 1:
        only = next(iter(reference_models))
        matches = {(m, d): (only, d) for (m, d) in current if (only, d) in reference}
    return matches


def data_difference(name: str, here: tuple[str, int], there: tuple[str, int]) -> str | None:
    """Why dataset ``name`` (fingerprint, rows in the source) here is not the baseline's, or None."""
    if here == there:
        return None
    return (f"dataset {name!r} differs from the baseline run's ({here[1]} rows, {here[0][:19]}… here; {there[1]} rows, "
            f"{there[0][:19]}… there): a comparison needs the same samples")
