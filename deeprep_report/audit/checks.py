"""Checks of a run: the default set, each rule's evaluation, the ``checks`` block of summary.json
(definitions in docs/checks.md).

Checks read only ``summary.json`` (and the comparison with a baseline run), so
``deeprep check RUN_DIR`` re-evaluates them without TensorFlow. Each check
yields one result per (pair, layer) it applies to: ``pass``, ``fail``, or
``not evaluated`` when the numbers it needs do not exist (no labels for a probe
rule, no baseline for a drift rule, the analysis switched off).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, replace
from typing import Any, Iterator, Sequence

from deeprep_report.audit.verdict import FAIL, NOT_EVALUATED, PASS, CheckResult, verdict
from deeprep_report.config import (
    Check, CollapseCheck, DeadUnitsCheck, DriftCheck, NanInfCheck, ProbeAccuracyCheck, ProbeMonotonicCheck,
    SaturationCheck, StatDriftCheck, WeightsCheck,
)
from deeprep_report.config.selectors import select
from deeprep_report.store import audited_pairs


def default_checks(summary: dict[str, Any], comparison: dict[str, Any] | None,
                   transfer_dataset: str | None = None) -> list[Check]:
    """The checks used when the pipeline has no ``checks:`` list: only rules whose numbers exist.

    Probe accuracy may fall with depth on a transfer dataset (that is what its profile shows), so
    ``probe_monotonic`` checks the other datasets only.
    """
    from pydantic import TypeAdapter

    chosen: list[dict[str, Any]] = [
        {"rule": "nan_inf", "severity": "fail"},
        {"rule": "dead_units", "max": 0.5, "severity": "warn"},
        {"rule": "saturation", "max": 0.9, "severity": "warn"},
    ]
    probed = sorted({pair["dataset"] for pair in summary["pairs"] if (pair.get("analysis") or {}).get("probe")}
                    - {transfer_dataset})
    if probed:
        chosen.append({"rule": "probe_monotonic", "tolerance": 0.1, "severity": "warn", "datasets": probed})
    if comparison is not None:
        chosen.append({"rule": "drift", "min": 0.8, "severity": "warn"})
    return TypeAdapter(list[Check]).validate_python(chosen)


def evaluate(checks: Sequence[Check], summary: dict[str, Any], comparison: dict[str, Any] | None) -> list[CheckResult]:
    """Every check on every audited pair (random baselines are not audited)."""
    results: list[CheckResult] = []
    weights = {model["name"]: model.get("weights") for model in summary["models"]}
    graphs = {model["name"]: {layer["path"]: layer.get("inputs") or [] for layer in model.get("layers", [])}
              for model in summary["models"]}
    types = {model["name"]: {layer["path"]: layer.get("class_name") for layer in model.get("layers", [])}
             for model in summary["models"]}
    for check in checks:
        audited = set()
        for pair in audited_pairs(summary):
            if check.datasets == "all" or pair["dataset"] in check.datasets:
                try:
                    if isinstance(check, ProbeMonotonicCheck):
                        results += list(_probe_monotonic(check, pair, graphs.get(pair["model"], {})))
                    elif isinstance(check, WeightsCheck):  # layers with weights: the model's, not the pair's
                        results += list(_weights(check, pair, comparison, types.get(pair["model"], {})))
                    else:
                        results += list(_RULES[type(check)](check, pair, comparison))
                except _Missing as missing:
                    results.append(_result(check, pair, None, None, None, None, str(missing)))
                if isinstance(check, NanInfCheck) and pair["model"] not in audited:  # weights: once per model
                    audited.add(pair["model"])
                    results += list(_nonfinite_weights(check, pair, weights.get(pair["model"]),
                                                       types.get(pair["model"], {})))
    return results


def summarise(checks: Sequence[Check], defaults: bool, results: Sequence[CheckResult]) -> dict[str, Any]:
    """The ``checks`` block of summary.json."""
    return {"defaults": defaults, "definitions": [check.model_dump(mode="json") for check in checks],
            "results": [asdict(r) for r in results], "verdict": asdict(verdict(results))}


# -- rules -----------------------------------------------------------------------------------------------------

def _result(check: Check, pair: dict[str, Any], layer: str | None, value: float | None, threshold: float | None,
            passed: bool | None, detail: str) -> CheckResult:
    status = NOT_EVALUATED if passed is None else (PASS if passed else FAIL)
    return CheckResult(check.rule, pair["model"], pair["dataset"], layer, value, threshold, check.severity, status,
                       detail)


def _chosen(check: Check, paths: Iterable[str], types: Mapping[str, str | None]) -> set[str]:
    """The paths the check's ``layers:`` picks; ``types`` gives each layer's Keras class (for ``{type: ...}``)."""
    return set(select(check.layers, {path: types.get(path) for path in paths}))


def _types(pair: dict[str, Any]) -> dict[str, str | None]:
    """Path -> Keras class name of the pair's captured layers."""
    return {layer["path"]: layer.get("class_name") for layer in pair["layers"]}


def _layers(check: Check, pair: dict[str, Any]) -> Iterator[dict[str, Any]]:
    chosen = _chosen(check, [layer["path"] for layer in pair["layers"]], _types(pair))
    return (layer for layer in pair["layers"] if layer["path"] in chosen)


def _dead_units(check: DeadUnitsCheck, pair: dict[str, Any], comparison: Any) -> Iterator[CheckResult]:
    for layer in _layers(check, pair):
        value = layer["stats"]["dead_fraction"]
        yield _result(check, pair, layer["path"], value, check.max, value <= check.max,
                      f"{layer['stats']['dead_units']} of {layer['units']} units dead")


def _nan_inf(check: NanInfCheck, pair: dict[str, Any], comparison: Any) -> Iterator[CheckResult]:
    for layer in _layers(check, pair):
        count = layer["stats"]["nonfinite_count"]
        yield _result(check, pair, layer["path"], float(count), 0.0, count == 0, f"{count:,} NaN/Inf values")


def _nonfinite_weights(check: NanInfCheck, pair: dict[str, Any], rows: list[dict] | None,
                       types: Mapping[str, str | None]) -> Iterator[CheckResult]:
    """Non-finite weights fail ``nan_inf`` by themselves: a compiled graph can hide them from the activations."""
    chosen = _chosen(check, [row["path"] for row in rows or []], types)
    for row in rows or []:
        if row["path"] in chosen and row["nonfinite"]:
            yield _result(check, pair, row["path"], float(row["nonfinite"]), 0.0, False,
                          f"{row['nonfinite']:,} NaN/Inf weights of {row['params']:,}")


def _saturation(check: SaturationCheck, pair: dict[str, Any], comparison: Any) -> Iterator[CheckResult]:
    for layer in _layers(check, pair):
        value = layer["stats"]["saturation_fraction"]
        if value is None or (layer["activation"] == "softmax" and not check.include_softmax):
            continue  # unbounded activation, or a softmax output (confident means saturated)
        yield _result(check, pair, layer["path"], value, check.max, value <= check.max,
                      f"{100 * value:.1f} % of values saturated ({layer['activation']})")


class _Missing(Exception):
    """The numbers a check needs do not exist for a pair; the message says why."""


def _analysed(check: Check, pair: dict[str, Any], block: str) -> list[tuple[str, Any]]:
    """(layer, entry) of the analysis ``block`` this check applies to (the input only when named)."""
    analysis = pair.get("analysis")
    if analysis is None:
        raise _Missing("the depth analysis is switched off")
    entries = analysis.get(block)
    if not entries:
        reasons = {"probe": "no probes (labels missing or probes off)", "geometry": "geometry is switched off"}
        raise _Missing(reasons.get(block, f"no {block}"))
    names = analysis["layers"]
    candidates = [n for n in names if n != "input"] if check.layers == "all" else names
    chosen = _chosen(check, candidates, _types(pair))
    return [(name, entry) for name, entry in zip(names, entries) if name in chosen]


def _compared(check: Check, pair: dict[str, Any], comparison: dict[str, Any] | None) -> list[dict[str, Any]]:
    """This pair's compared layers the check applies to."""
    if comparison is None:
        raise _Missing("no baseline to compare with (compare.baseline or --baseline)")
    match = next((p for p in comparison["pairs"] if p["model"] == pair["model"] and p["dataset"] == pair["dataset"]),
                 None)
    if match is None:
        raise _Missing("this pair has no counterpart in the baseline run")
    chosen = _chosen(check, [layer["path"] for layer in match["layers"]], _types(pair))
    return [layer for layer in match["layers"] if layer["path"] in chosen]


def _bounded(check: Check, pair: dict[str, Any], layer: str, value: float | None, threshold: float, upper: bool,
             label: str, digits: str = ".3g") -> CheckResult:
    """Pass when ``value`` is at most (``upper``) or at least the threshold; unevaluated when it is missing."""
    passed = None if value is None else (value <= threshold if upper else value >= threshold)
    detail = f"{label} {value:{digits}}" if value is not None else f"{label} not computed"
    return _result(check, pair, layer, value, threshold, passed, detail)


def _collapse(check: CollapseCheck, pair: dict[str, Any], comparison: Any) -> Iterator[CheckResult]:
    for name, entry in _analysed(check, pair, "geometry"):
        yield _bounded(check, pair, name, entry[check.measure], check.min, False, check.measure.replace("_", " "))


def _probe_accuracy(check: ProbeAccuracyCheck, pair: dict[str, Any], comparison: Any) -> Iterator[CheckResult]:
    for name, entry in _analysed(check, pair, "probe"):
        yield _bounded(check, pair, name, entry["accuracy"] if entry else None, check.min, False, "probe accuracy",
                       ".3f")


def _probe_monotonic(check: ProbeMonotonicCheck, pair: dict[str, Any],
                     producers: dict[str, list[str]]) -> Iterator[CheckResult]:
    """Each probed layer against its nearest probed ancestor in the graph (not the layer run before it: parallel
    branches and output heads are not a sequence); without the graph, against the previous probed layer."""
    kept = [(n, e["accuracy"]) for n, e in _analysed(check, pair, "probe") if e and e["accuracy"] is not None]
    accuracy = dict(kept)
    for index, (name, after) in enumerate(kept):
        previous = _nearest_ancestor(name, producers, accuracy) if producers else (
            kept[index - 1][0] if index else None)
        if previous is None:
            continue
        before = accuracy[previous]
        drop = before - after
        yield _result(check, pair, name, drop, check.tolerance, drop <= check.tolerance,
                      f"probe accuracy {before:.3f} at {previous} → {after:.3f}")


def _nearest_ancestor(name: str, producers: dict[str, list[str]], candidates: dict[str, Any]) -> str | None:
    """The closest layer among ``candidates`` upstream of ``name`` (breadth first; model inputs are ``input``)."""
    frontier, seen = list(producers.get(name, [])), set()
    while frontier:
        following = []
        for source in frontier:
            key = "input" if source.startswith("input:") else source
            if key in seen:
                continue
            seen.add(key)
            if key in candidates:
                return key
            following += producers.get(key, [])
        frontier = following
    return None


def _drift(check: DriftCheck, pair: dict[str, Any], comparison: dict[str, Any] | None) -> Iterator[CheckResult]:
    for layer in _compared(check, pair, comparison):
        yield _bounded(check, pair, layer["path"], layer["cka"], check.min, False, "linear CKA with the baseline",
                       ".3f")


def _stat_drift(check: StatDriftCheck, pair: dict[str, Any], comparison: dict[str, Any] | None) -> Iterator[CheckResult]:
    for layer in _compared(check, pair, comparison):
        change = layer["stats"].get(check.statistic) or {}
        result = _bounded(check, pair, layer["path"], change.get("relative"), check.max, True, "")
        detail = (f"{check.statistic} {change.get('baseline')} → {change.get('current')}" if change else
                  f"{check.statistic} not available")
        yield replace(result, detail=detail)


def _weights(check: WeightsCheck, pair: dict[str, Any], comparison: dict[str, Any] | None,
             types: Mapping[str, str | None]) -> Iterator[CheckResult]:
    if comparison is None:
        raise _Missing("no baseline to compare with (compare.baseline or --baseline)")
    match = next((m for m in comparison.get("weights", []) if m["model"] == pair["model"]), None)
    if match is None:
        raise _Missing("the baseline run has no weights of this model (a run before the weights audit?)")
    chosen = _chosen(check, [layer["path"] for layer in match["layers"]], types)
    for layer in match["layers"]:
        if layer["path"] in chosen:
            yield _bounded(check, pair, layer["path"], layer["relative_change"], check.max_change, True,
                           "relative weight change")


_RULES = {DeadUnitsCheck: _dead_units, NanInfCheck: _nan_inf, SaturationCheck: _saturation, CollapseCheck: _collapse,
          ProbeAccuracyCheck: _probe_accuracy, DriftCheck: _drift, StatDriftCheck: _stat_drift}
