"""Findings: what a reviewer should look at, computed from the summary (never written in advance).

Each finding has a severity (``high``: the numbers themselves are broken — NaN/Inf, a constant layer;
``medium``: the representation or its input is likely not what was meant — dead units, unscaled inputs;
``low``: worth knowing — saturation, layers that could not be captured). A pass-through layer (no weights,
one input, its producer's activation: pooling, Flatten, Dropout, Reshape) repeats its producer's dead or
saturated units, so its finding is folded into the producer's row ("carried into …") instead of repeated.
A classifier's saturated softmax is saturated by design and is not a finding (as in the saturation check).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from deeprep_report.store import random_twins

SEVERITY = {"NaN/Inf": "high", "non-finite inputs": "high", "constant layer": "high", "dead units": "medium",
            "unscaled input": "medium", "saturated": "low", "not captured": "low"}
_RANK = {"high": 0, "medium": 1, "low": 2}


@dataclass(frozen=True)
class Finding:
    """One observation about a layer or a dataset; ``anchor`` links to its section in the report."""

    kind: str
    where: str
    text: str
    anchor: str
    layer: tuple[str, str, str] | None = None  # (model, dataset, layer path) of a layer's finding

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]


def find(summary: dict[str, Any], saturation_at_least: float, anchors: dict[tuple[str, str, str], str]) -> list[Finding]:
    """Dead units, non-finite values, saturated layers, non-finite and unscaled inputs and skipped layers, most
    severe first (report order within a severity).

    ``anchors`` maps (model, dataset, layer path) to the id of that layer's section.
    """
    found: list[Finding] = []
    baselines = random_twins(summary)
    for dataset in summary["datasets"]:
        if dataset["nonfinite_inputs"]:
            found.append(Finding("non-finite inputs", dataset["name"],
                                 f"{dataset['nonfinite_inputs']:,} NaN/Inf values in the inputs", "datasets"))
    for model in summary["models"]:
        if model["name"] in baselines:
            continue
        for skipped in model["skipped_layers"]:
            found.append(Finding("not captured", f"{model['name']} / {skipped['path']}", skipped["reason"], "models"))
    models = {model["name"]: model for model in summary["models"]}
    for pair in summary["pairs"]:
        if pair["model"] in baselines:  # a random-weights twin: its dead units are not findings
            continue
        for item in pair.get("unscaled_inputs") or []:  # schema 7
            found.append(Finding("unscaled input", f"{pair['model']} × {pair['dataset']}",
                                 f"array {item['array']!r} holds {item['dtype']} values fed unscaled into the float "
                                 f"input {item['input']!r}; set {item['field']} (e.g. 1/255) if the model expects "
                                 "[0, 1]", "datasets"))
        found += _layer_findings(pair, models.get(pair["model"], {}), saturation_at_least, anchors)
    return sorted(found, key=lambda finding: _RANK[finding.severity])


def _layer_findings(pair: dict[str, Any], model: dict[str, Any], saturation_at_least: float,
                    anchors: dict[tuple[str, str, str], str]) -> list[Finding]:
    analysis = pair.get("analysis") or {}
    constant = {name for name, flag in zip(analysis.get("layers", []), analysis.get("constant") or []) if flag}
    producer = _producers(model)
    rows: dict[tuple[str, str], Finding] = {}  # (kind, layer path) -> its row, so pass-throughs can join it
    for layer in pair["layers"]:
        path, stats = layer["path"], layer["stats"]
        where = f"{pair['model']} × {pair['dataset']} / {path}"
        anchor = anchors.get((pair["model"], pair["dataset"], path), "")
        observed = []
        if stats["dead_units"]:
            units = ", ".join(str(u) for u in layer["dead_unit_indices"][:12])
            more = " …" if len(layer["dead_unit_indices"]) > 12 else ""
            observed.append(("dead units", f"{stats['dead_units']} of {layer['units']} units dead "
                             f"({100 * stats['dead_fraction']:.1f} %): #{units}{more}",
                             f"{stats['dead_units']} of {layer['units']} units dead"))
        if stats["nonfinite_count"]:
            text = (f"{stats['nonfinite_count']:,} non-finite values ({100 * stats['nonfinite_fraction']:.3g} % of "
                    f"{stats['values']:,})")
            observed.append(("NaN/Inf", text, f"{stats['nonfinite_count']:,} non-finite values"))
        if path in constant:
            observed.append(("constant layer", "the layer's view is the same for every analysed sample: there is "
                             "no representation to measure", "constant"))
        saturation = stats["saturation_fraction"]
        if saturation is not None and saturation >= saturation_at_least and layer["activation"] != "softmax":
            observed.append(("saturated", f"{100 * saturation:.1f} % of values within the saturation margin of a "
                             f"bound ({layer['activation']})", f"{100 * saturation:.1f} % saturated"))
        for kind, text, short in observed:
            into = _row_above(path, kind, producer, rows)
            if into is None:
                rows[(kind, path)] = Finding(kind, where, text, anchor, (pair["model"], pair["dataset"], path))
                continue
            row = rows[(kind, into)]
            joined = ", " if "; carried into " in row.text else "; carried into "
            rows[(kind, into)] = replace(row, text=f"{row.text}{joined}{path} ({short})")
    return list(rows.values())


def _producers(model: dict[str, Any]) -> dict[str, str]:
    """Pass-through layer -> the layer it passes through (no weights, one input, an inherited activation)."""
    return {layer["path"]: layer["inputs"][0] for layer in model.get("layers") or []
            if layer.get("activation_inherited") and not layer.get("params") and len(layer.get("inputs") or []) == 1}


def _row_above(path: str, kind: str, producer: dict[str, str], rows: dict[tuple[str, str], Finding]) -> str | None:
    """The nearest layer up ``path``'s chain of pass-throughs with a finding of ``kind``, or None."""
    seen = {path}
    while path in producer and producer[path] not in seen:
        path = producer[path]
        seen.add(path)
        if (kind, path) in rows:
            return path
    return None
