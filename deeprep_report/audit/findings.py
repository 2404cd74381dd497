"""Findings: what a reviewer should look at, computed from the summary (never written in advance)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deeprep_report.store import random_twins


@dataclass(frozen=True)
class Finding:
    """One observation about a layer or a dataset; ``anchor`` links to its section in the report."""

    kind: str
    where: str
    text: str
    anchor: str


def find(summary: dict[str, Any], saturation_at_least: float, anchors: dict[tuple[str, str, str], str]) -> list[Finding]:
    """Dead units, non-finite values, saturated layers, non-finite and unscaled inputs and skipped layers, in
    report order.

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
    for pair in summary["pairs"]:
        if pair["model"] in baselines:  # a random-weights twin: its dead units are not findings
            continue
        for item in pair.get("unscaled_inputs") or []:  # schema 7
            found.append(Finding("unscaled input", f"{pair['model']} × {pair['dataset']}",
                                 f"array {item['array']!r} holds {item['dtype']} values fed unscaled into the float "
                                 f"input {item['input']!r}; set {item['field']} (e.g. 1/255) if the model expects "
                                 "[0, 1]", "datasets"))
        analysis = pair.get("analysis") or {}
        constant = {name for name, flag in zip(analysis.get("layers", []), analysis.get("constant") or []) if flag}
        for layer in pair["layers"]:
            stats = layer["stats"]
            where = f"{pair['model']} × {pair['dataset']} / {layer['path']}"
            anchor = anchors.get((pair["model"], pair["dataset"], layer["path"]), "")
            if stats["dead_units"]:
                units = ", ".join(str(u) for u in layer["dead_unit_indices"][:12])
                more = " …" if len(layer["dead_unit_indices"]) > 12 else ""
                found.append(Finding("dead units", where, f"{stats['dead_units']} of {layer['units']} units dead "
                                     f"({100 * stats['dead_fraction']:.1f} %): #{units}{more}", anchor))
            if stats["nonfinite_count"]:
                found.append(Finding("NaN/Inf", where, f"{stats['nonfinite_count']:,} non-finite values "
                                     f"({100 * stats['nonfinite_fraction']:.3g} % of {stats['values']:,})", anchor))
            if layer["path"] in constant:
                found.append(Finding("constant layer", where, "the layer's view is the same for every analysed "
                                     "sample: there is no representation to measure", anchor))
            saturation = stats["saturation_fraction"]
            if saturation is not None and saturation >= saturation_at_least:
                found.append(Finding("saturated", where, f"{100 * saturation:.1f} % of values within the saturation "
                                     f"margin of a bound ({layer['activation']})", anchor))
    return found
