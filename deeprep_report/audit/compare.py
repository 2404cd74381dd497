"""Comparison of a run with a baseline run: same samples, layers matched by name (docs/checks.md).

Works from the baseline's run folder alone (its ``summary.json`` and
``activations.h5``): the baseline model file need not exist any more. The plan
stage makes the current run read exactly the baseline's dataset rows, so every
layer's pooled activations line up sample by sample and can be compared with
linear CKA; statistics and probe accuracies are compared from the summaries.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deeprep_report.analysis.cka import choose_estimator, linear_cka, sample_rows
from deeprep_report.config import LAYER_STATISTICS, AnalysisSection
from deeprep_report.errors import UserError
from deeprep_report.stats.views import ViewSpec
from deeprep_report.stats.weights import relative_change
from deeprep_report.store import Baseline, StoreReader, audited_pairs, data_difference, h5_name, match_pairs


def compare(store: StoreReader, summary: dict[str, Any], baseline: Baseline, settings: AnalysisSection) -> dict[str, Any]:
    """The ``comparison`` block of summary.json for the run in ``store`` (whose summary parts are given)."""
    audited = _audited(summary)
    reference = _audited(baseline.summary)
    matches = match_pairs(list(audited), list(reference))
    pairs = []
    with StoreReader(baseline.store_path) as old:
        for (model, dataset), (old_model, _) in matches.items():
            _same_samples(store, old, summary, baseline, dataset)
            pairs.append(_compare_pair(store, old, audited[(model, dataset)], reference[(old_model, dataset)],
                                       settings))
        weights = _weight_changes(store, old, {(m, om) for (m, _), (om, _) in matches.items()})
    run = baseline.summary["run"]
    return {
        "weights": weights,
        "baseline": {"folder": str(baseline.folder), "name": run["name"], "started": run["started"],
                     "tool_version": baseline.summary["tool"]["version"]},
        "pairs": pairs,
        "unmatched_pairs": {
            "baseline_only": [list(key) for key in reference if key not in {(m, d) for (m, d) in matches.values()}],
            "current_only": [list(key) for key in audited if key not in matches],
        },
    }


def _weight_changes(store: StoreReader, old: StoreReader, models: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """Per matched model, each layer's relative weight change from the two runs' stored weight sketches."""
    out = []
    for model, old_model in sorted(models):
        now, then = store.weight_sketches(model), old.weight_sketches(old_model)
        if not now or not then:
            continue
        layers = [{"path": path, "relative_change": relative_change(sketch, then[path])}
                  for path, sketch in now.items() if path in then]
        out.append({"model": model, "baseline_model": old_model, "layers": layers})
    return out


def _audited(summary: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["model"], p["dataset"]): p for p in audited_pairs(summary)}


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
    channel_means, on_tokens = [], []
    same_tokens = _same_token_sample(old, reference, store, current)
    remasked = [path for path in shared if old_layers[path].get("masked") != new_layers[path].get("masked")]
    for path in shared:
        x, y = _token_views(old, reference, store, current, path) if same_tokens else (None, None)
        if x is not None:
            on_tokens.append(path)
        else:
            x, y = _views(old, reference, store, current, path)
        if x is None:
            channel_means.append(path)
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
    notes = [f"compared on channel means, not on views (a store written before views, or views made another way): "
             f"{', '.join(channel_means)}"] if channel_means else []
    if on_tokens:
        notes.append(f"sequence layers compared on the same sampled real tokens (token views): {', '.join(on_tokens)}")
    if remasked:
        notes.append("measured on real tokens in one run and on every position in the other (a mask was added or "
                     f"removed), so their statistics differ by construction: {', '.join(remasked)}")
    return {"model": current["model"], "dataset": current["dataset"], "baseline_model": reference["model"],
            "layers": layers, "notes": notes,
            "unmatched": {"baseline_only": [p for p in old_layers if p not in new_layers],
                          "current_only": [p for p in new_layers if p not in old_layers]}}


def _views(old: StoreReader, reference: dict[str, Any], store: StoreReader, current: dict[str, Any],
           path: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Both runs' views of a layer, when both have one and they were made the same way (else None, None)."""
    then, spec_then = old.view(reference["model"], reference["dataset"], path)
    now, spec_now = store.view(current["model"], current["dataset"], path)
    if spec_now is None or not spec_now.comparable(spec_then):
        return None, None
    return then[()].astype(np.float64), now[()].astype(np.float64)


def _token_views(old: StoreReader, reference: dict[str, Any], store: StoreReader, current: dict[str, Any],
                 path: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Both runs' token views of a sequence layer, when both sampled the same token positions (else None, None):
    drift then measures the tokens' representation, not only the sequences' means."""
    then = old.token_view(reference["model"], reference["dataset"], path)
    now = store.token_view(current["model"], current["dataset"], path)
    if then is None or now is None or then.shape != now.shape:
        return None, None
    spec_then, spec_now = (ViewSpec.from_attrs(dict(s.layer_group(p["model"], p["dataset"], path).attrs))
                           for s, p in ((old, reference), (store, current)))
    if spec_now is None or not spec_now.comparable(spec_then):
        return None, None
    return then[()].astype(np.float64), now[()].astype(np.float64)


def _same_token_sample(old: StoreReader, reference: dict[str, Any], store: StoreReader,
                       current: dict[str, Any]) -> bool:
    """Whether both runs stored their sequence layers at the same token positions (read once per pair)."""
    then = old.tokens(reference["model"], reference["dataset"])
    now = store.tokens(current["model"], current["dataset"])
    return then is not None and now is not None and np.array_equal(then["positions"], now["positions"])


def _cka(x: np.ndarray, y: np.ndarray, settings: AnalysisSection) -> float | None:
    """Linear CKA on the rows finite in both, the same seeded sample of at most ``analysis.cka.samples`` rows
    (the rows are the same samples in both runs)."""
    finite = np.flatnonzero(np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1))
    if len(finite) < 4:
        return None
    rows = sample_rows(finite, settings.cka.samples, 0)
    estimator = choose_estimator(settings.cka.estimator, len(rows), settings.view.dims)
    value = linear_cka(x[rows], y[rows], debiased=estimator == "debiased")
    return value if np.isfinite(value) else None


def _probes(pair: dict[str, Any]) -> dict[str, float]:
    analysis = pair.get("analysis") or {}
    return {name: entry["accuracy"] for name, entry in zip(analysis.get("layers", []), analysis.get("probe") or [])
            if entry and entry["accuracy"] is not None}


def _change(before: float | None, after: float | None) -> dict[str, float | None]:
    if before is None or after is None:
        return {"baseline": before, "current": after, "change": None, "relative": None}
    return {"baseline": before, "current": after, "change": after - before,
            "relative": abs(after - before) / max(abs(before), 1e-12)}
