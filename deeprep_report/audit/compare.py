"""Comparison of a run with a baseline run: same samples, layers matched by name (docs/checks.md).

Works from the baseline's run folder alone (its ``summary.json`` and
``activations.h5``): the baseline model file need not exist any more. The plan
stage makes the current run read exactly the baseline's dataset rows, so every
layer's pooled activations line up sample by sample and can be compared with
linear CKA; statistics and probe accuracies are compared from the summaries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deeprep_report.analysis.cka import choose_estimator, paired_cka
from deeprep_report.config import LAYER_STATISTICS, AnalysisSection
from deeprep_report.errors import UserError
from deeprep_report.store import StoreReader, h5_name
from deeprep_report.summary import audited_pairs


@dataclass(frozen=True)
class Baseline:
    """A finished run folder used as the reference."""

    folder: Path
    summary: dict[str, Any]

    @property
    def store_path(self) -> Path:
        return self.folder / "activations.h5"

    def dataset_rows(self) -> dict[str, tuple[np.ndarray, str, int]]:
        """Per dataset name: (rows used, data fingerprint, rows in the source)."""
        out = {}
        with StoreReader(self.store_path) as store:
            for dataset in self.summary["datasets"]:
                rows = store.file[f"datasets/{h5_name(dataset['name'])}/index"][()]
                out[dataset["name"]] = (rows, dataset["fingerprint"], dataset["n_rows"])
        return out


def open_baseline(folder: str | Path) -> Baseline:
    """Load a baseline run folder, or say in one line why it cannot serve as one."""
    folder = Path(folder)
    summary_path = folder / "summary.json"
    if not folder.is_dir():
        raise UserError(f"baseline {folder}: no such run folder")
    if not summary_path.is_file() or not (folder / "activations.h5").is_file():
        raise UserError(f"baseline {folder}: not a finished run (summary.json and activations.h5 are needed)")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"baseline {summary_path}: not readable JSON: {exc}") from None
    return Baseline(folder.resolve(), summary)


def compare(store: StoreReader, summary: dict[str, Any], baseline: Baseline, settings: AnalysisSection) -> dict[str, Any]:
    """The ``comparison`` block of summary.json for the run in ``store`` (whose summary parts are given)."""
    audited = _audited(summary)
    reference = _audited(baseline.summary)
    matches = _match_pairs(audited, reference)
    pairs = []
    with StoreReader(baseline.store_path) as old:
        for (model, dataset), (old_model, _) in matches.items():
            _same_samples(store, old, summary, baseline, dataset)
            pairs.append(_compare_pair(store, old, audited[(model, dataset)], reference[(old_model, dataset)],
                                       settings))
    run = baseline.summary["run"]
    return {
        "baseline": {"folder": str(baseline.folder), "name": run["name"], "started": run["started"],
                     "tool_version": baseline.summary["tool"]["version"]},
        "pairs": pairs,
        "unmatched_pairs": {
            "baseline_only": [list(key) for key in reference if key not in {(m, d) for (m, d) in matches.values()}],
            "current_only": [list(key) for key in audited if key not in matches],
        },
    }


def _audited(summary: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["model"], p["dataset"]): p for p in audited_pairs(summary)}


def _match_pairs(current: dict, reference: dict) -> dict[tuple[str, str], tuple[str, str]]:
    """Pairs matched by model and dataset name; with one model on each side, by dataset alone."""
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


def _same_samples(store: StoreReader, old: StoreReader, summary: dict[str, Any], baseline: Baseline,
                  dataset: str) -> None:
    """The same data and the same rows in both runs (the plan ensures it for a run; ``deeprep check`` may not)."""
    here, there = ({d["name"]: (d["fingerprint"], d["n_rows"]) for d in s["datasets"]}[dataset]
                   for s in (summary, baseline.summary))
    problem = data_difference(dataset, here, there)
    if problem:
        raise UserError(f"baseline {baseline.folder}: {problem}")
    key = f"datasets/{h5_name(dataset)}/index"
    if not np.array_equal(store.file[key][()], old.file[key][()]):
        raise UserError(f"baseline {baseline.folder}: dataset {dataset!r} was run on other rows than this run; a "
                        f"comparison needs the same samples (run with --baseline so the baseline's rows are reused)")


def _compare_pair(store: StoreReader, old: StoreReader, current: dict[str, Any], reference: dict[str, Any],
                  settings: AnalysisSection) -> dict[str, Any]:
    old_layers = {layer["path"]: layer for layer in reference["layers"]}
    new_layers = {layer["path"]: layer for layer in current["layers"]}
    shared = [path for path in new_layers if path in old_layers]
    probes_now = _probes(current)
    probes_then = _probes(reference)
    layers = []
    for path in shared:
        x = old.layer_group(reference["model"], reference["dataset"], path)["pooled"][()].astype(np.float64)
        y = store.layer_group(current["model"], current["dataset"], path)["pooled"][()].astype(np.float64)
        layers.append({
            "path": path,
            "cka": _cka(x, y, settings),
            "stats": {name: _change(old_layers[path]["stats"][name], new_layers[path]["stats"][name])
                      for name in LAYER_STATISTICS},
            "probe": _change(probes_then.get(path), probes_now.get(path)) if path in probes_now and path in probes_then
            else None,
        })
    return {"model": current["model"], "dataset": current["dataset"], "baseline_model": reference["model"],
            "layers": layers,
            "unmatched": {"baseline_only": [p for p in old_layers if p not in new_layers],
                          "current_only": [p for p in new_layers if p not in old_layers]}}


def _cka(x: np.ndarray, y: np.ndarray, settings: AnalysisSection) -> float | None:
    finite = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
    x, y = x[finite], y[finite]
    if len(x) < 4:
        return None
    estimator = choose_estimator(settings.cka.estimator, len(x), max(x.shape[1], y.shape[1]))
    return paired_cka(x, y, estimator, settings.cka.minibatch_above, settings.cka.batch_size)


def _probes(pair: dict[str, Any]) -> dict[str, float]:
    analysis = pair.get("analysis") or {}
    return {name: entry["accuracy"] for name, entry in zip(analysis.get("layers", []), analysis.get("probe") or [])
            if entry and entry["accuracy"] is not None}


def _change(before: float | None, after: float | None) -> dict[str, float | None]:
    if before is None or after is None:
        return {"baseline": before, "current": after, "change": None, "relative": None}
    return {"baseline": before, "current": after, "change": after - before,
            "relative": abs(after - before) / max(abs(before), 1e-12)}
