"""The depth analysis of every stored pair: probes, CKA, geometry and class structure, layer by layer.

Runs on each layer's analysis view in the store (``stats/views.py``: the
flattened activation, or its count sketch above ``analysis.view.dims``; the
input's view as layer 0 when stored), writes arrays into
``pairs/<model>/<dataset>/analysis`` and per-unit selectivity (on the channel
means) into each layer's ``stats``, and returns the numbers for
``summary.json``. A model's random baseline (``analysis.random_baseline``) is
analysed the same way and linked to its trained model: per-layer CKA between
the two, and the sentences of the interpretation that compare them. CKA across
pairs (twins, cross-model) reuses each pair's Gram matrices on the same rows.

Identical views (the same input for a model and its random twin, a Flatten and
an inference-mode Dropout) are analysed once.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import numpy as np

from deeprep_report.analysis import cka, interpret, tokens
from deeprep_report.analysis.features import INPUT
from deeprep_report.analysis.layerwise import MIN_SAMPLES, PairRun, analyze_pair
from deeprep_report.config import AnalysisSection
from deeprep_report.store import StoreReader, h5_name, pair_key, to_json_value

log = logging.getLogger("deeprep")


def analyze_pairs(store: StoreReader, settings: AnalysisSection, seed: int,
                  bar: bool | None = None) -> tuple[dict[tuple[str, str], dict[str, Any]], list[dict[str, Any]]]:
    """Analyse every pair of the store: ``({(model, dataset): analysis}, cross-model CKA)`` for summary.json."""
    memo: dict[tuple, Any] = {}
    runs = {pair: analyze_pair(store, *pair, settings, seed, memo, bar) for pair in store.pairs()}
    try:
        results = {pair: run.result for pair, run in runs.items()}
        for (model, dataset), run in runs.items():
            result = run.result
            twin = _baseline_model(store, model)
            if twin is not None and (twin, dataset) in runs and result["samples"] >= MIN_SAMPLES:
                started = time.perf_counter()
                result["baseline"] = {"model": twin, "cka_with_trained": _twin_cka(run, runs[(twin, dataset)],
                                                                                     result)}
                if result["tokens"] and result["tokens"]["cka"]:
                    debiased = result["tokens"]["cka"]["estimator"] == "debiased"
                    result["tokens"]["cka_with_random"] = tokens.twin_token_cka(store, model, twin, dataset, debiased)
                result["seconds"]["baseline_cka"] = time.perf_counter() - started
            twin_result = results.get((twin, dataset)) if twin is not None else None
            result["interpretation"] = interpret.paragraph(result, twin_result)
            result["transfer"] = transfer_profile(results, model, dataset, settings.transfer.dataset)
            _write(store, model, dataset, result)
        crossed = cross_model(store, runs) if settings.cka.enabled else []
    finally:
        for run in runs.values():
            if run.stack is not None:
                run.stack.close()
    return results, crossed


def transfer_profile(results: dict[tuple[str, str], dict[str, Any]], model: str, dataset: str,
                     transfer: str | None) -> dict[str, Any] | None:
    """Probe accuracy by depth of ``model`` on the transfer dataset, shown beside its other datasets."""
    if transfer is None or dataset == transfer or (model, transfer) not in results:
        return None
    other = results[(model, transfer)]
    accuracy = [entry["accuracy"] if entry else None for entry in other["probe"] or []]
    scored = [(value, name) for name, value in zip(other["layers"], accuracy) if value is not None and name != INPUT]
    best = max(scored, key=lambda item: item[0]) if scored else None
    return {"dataset": transfer, "layers": other["layers"], "accuracy": accuracy,
            "best_layer": best[1] if best else None, "best_accuracy": best[0] if best else None,
            "note": None if scored else f"no probes on {transfer} (labels missing or probes off)"}


def cross_model(store: StoreReader, runs: dict[tuple[str, str], PairRun]) -> list[dict[str, Any]]:
    """Linear CKA of every layer of one audited model with every layer of another, per dataset they share,
    from the two pairs' Gram matrices on the same rows (the input left out: it is the same for both).

    Random-weights twins are left out (their per-layer CKA with the trained model is in the pair's analysis).
    """
    models = [m for m in store.json_attr("/", "model_names")
              if not store.attrs(f"models/{h5_name(m)}").get("baseline_of")]
    out = []
    for dataset in store.json_attr("/", "dataset_names"):
        present = [m for m in models if (m, dataset) in runs and runs[(m, dataset)].stack is not None]
        for index, first in enumerate(present):
            for second in present[index + 1:]:
                a, b = runs[(first, dataset)], runs[(second, dataset)]
                if not np.array_equal(a.rows, b.rows) or a.stack.debiased != b.stack.debiased:
                    log.warning("cross-model CKA %s × %s on %s: the pairs' usable rows differ (NaN/Inf); left out",
                                first, second, dataset)
                    continue
                started = time.perf_counter()
                keep_a = [i for i, name in enumerate(a.names) if name != INPUT]
                keep_b = [j for j, name in enumerate(b.names) if name != INPUT]
                matrix = cka.similarity(a.stack.inner(b.stack), a.stack.self_terms(), b.stack.self_terms())
                out.append({"dataset": dataset, "models": [first, second],
                            "layers": [[a.names[i] for i in keep_a], [b.names[j] for j in keep_b]],
                            "samples": int(len(a.rows)), "estimator": a.result["cka"]["estimator"],
                            "matrix": matrix[np.ix_(keep_a, keep_b)].tolist(),
                            "seconds": time.perf_counter() - started})
    return out


def _baseline_model(store: StoreReader, model: str) -> str | None:
    """The random twin of a trained model, if the run has one."""
    for other in store.json_attr("/", "model_names"):
        if store.attrs(f"models/{h5_name(other)}").get("baseline_of") == model:
            return other
    return None


def _twin_cka(trained: PairRun, random: PairRun, result: dict[str, Any]) -> list[float | None]:
    """Per layer, linear CKA between the trained layer and the same layer with random weights."""
    if trained.stack is None or random.stack is None:
        return [None] * len(trained.names)
    if not np.array_equal(trained.rows, random.rows):
        result["notes"].append("CKA with random weights left out: the two models' usable rows differ (NaN/Inf)")
        return [None] * len(trained.names)
    matrix = cka.similarity(trained.stack.inner(random.stack), trained.stack.self_terms(), random.stack.self_terms())
    position = {name: j for j, name in enumerate(random.names)}
    values = [matrix[i, position[name]] if name in position else np.nan for i, name in enumerate(trained.names)]
    return [float(value) if np.isfinite(value) else None for value in values]


def _write(store: StoreReader, model: str, dataset: str, result: dict[str, Any]) -> None:
    """Arrays into ``pairs/<model>/<dataset>/analysis``; projections leave the summary (they are per sample)."""
    group_name = f"{pair_key(model, dataset)}/analysis"
    if group_name in store.file:
        del store.file[group_name]
    group = store.file.create_group(group_name)
    group.attrs["layers"] = json.dumps(result["layers"])
    group.attrs["views"] = json.dumps(result["views"])
    if result["cka"]:
        group.create_dataset("cka", data=np.asarray(result["cka"]["matrix"], dtype=np.float64))
        group.attrs["cka_estimator"] = result["cka"]["estimator"]
        group.attrs["cka_method"] = result["cka"]["method"]
        group.attrs["cka_samples"] = result["cka"]["samples"]
    if result["classes"]:
        projections = [metrics.pop("projection") for metrics in result["classes"]]
        group.create_dataset("projections", data=np.stack(projections))
        group.create_dataset("projection_labels", data=result.pop("_projection_labels"))
    group.attrs["metrics"] = json.dumps(_plain(result))


def _plain(result: dict[str, Any]) -> Any:
    return to_json_value({k: v for k, v in result.items()})
