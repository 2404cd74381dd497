"""A model × dataset section: its layers shown (report.layers), its depth analysis, and the depth profile of
the layer statistics (with the random-weights twin's curve when there is one)."""

from __future__ import annotations

from typing import Any

from deeprep_report.report import figures
from deeprep_report.report.context import ReportContext, Shown
from deeprep_report.report.layer_choice import choose
from deeprep_report.report.sections import analysis, layer, tokens


def build(ctx: ReportContext, index: int, pair: dict[str, Any], flagged: set[str]) -> dict[str, Any]:
    """A pair's section; ``flagged``: its layers with a finding or a check that did not pass."""
    pair_id = f"pair-{index}"
    names = [entry["path"] for entry in pair["layers"]]
    architecture = list(ctx.architecture(pair["model"]).values())
    choice = choose(ctx.settings, pair, architecture, flagged)
    full, brief = set(choice.full), set(choice.brief)
    depths = _depths(pair, architecture)
    anchors = {entry["path"]: f"{pair_id}-layer-{i}" for i, entry in enumerate(pair["layers"])}
    copies = {path: source for path, source in _copies(pair, ctx.architecture(pair["model"])).items()
              if source in full | brief}  # a link needs its target's section
    layers = [layer.build(ctx, pair, anchors[entry["path"]], entry, depths[i],
                          brief=entry["path"] in brief or entry["path"] in copies,
                          same_as=_link(copies.get(entry["path"]), anchors))
              for i, entry in enumerate(pair["layers"]) if entry["path"] in full | brief]
    twin = ctx.twin_pairs.get((pair["model"], pair["dataset"]))
    depth_analysis = analysis.build(ctx, pair_id, pair, twin, full) if pair.get("analysis") else None
    return {**pair, "id": pair_id, "title": f"{pair['model']} × {pair['dataset']}",
            "depth": _depth(ctx, pair, names, twin), "analysis": depth_analysis, "layers": layers,
            "tokens_section": tokens.build(ctx, pair_id, pair, twin),
            "baseline": twin["model"] if twin else None, "hidden": choice.hidden, "automatic": choice.automatic,
            "brief_count": len(choice.brief)}


#: Layers whose output is their input at inference (their training-time noise is off).
IDENTITY_AT_INFERENCE = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                         "GaussianDropout", "AlphaDropout", "ActivityRegularization")


def _copies(pair: dict[str, Any], rows: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Captured layers that pass their captured input through unchanged at inference → that input: their
    section would repeat its producer's, so it is brief and links there."""
    captured = {entry["path"] for entry in pair["layers"]}
    out = {}
    for path in captured:
        row = rows.get(path, {})
        inputs = row.get("inputs") or []
        if row.get("class_name") in IDENTITY_AT_INFERENCE and len(inputs) == 1 and inputs[0] in captured:
            out[path] = inputs[0]
    return out


def _link(producer: str | None, anchors: dict[str, str]) -> dict[str, str] | None:
    return None if producer is None else {"path": producer, "id": anchors[producer]}


def _depths(pair: dict[str, Any], architecture: list[dict[str, Any]]) -> list[float]:
    """Each layer's place in the network, 0 (first) to 1 (last), counted in layers with weights: a pooling or
    activation layer shares the depth of the weights before it, so the demo's conv2 (its second of four
    weighted layers) is a middle layer, not an early one as the third of its eight captured layers."""
    params = {row["path"]: row.get("params") or 0 for row in architecture}
    seen, counts = 0, []
    for entry in pair["layers"]:
        seen += params.get(entry["path"], 0) > 0
        counts.append(max(0, seen - 1))
    last = max(1, counts[-1] if counts else 1)
    return [count / last for count in counts]


def _depth(ctx: ReportContext, pair: dict[str, Any], names: list[str], twin: dict[str, Any] | None) -> list[Shown]:
    stats = [layer["stats"] for layer in pair["layers"]]
    twin_stats = {layer["path"]: layer["stats"] for layer in twin["layers"]} if twin else None
    profiles = [
        ("mean", "mean activation", False, "Mean of every value of each layer."),
        ("std", "standard deviation", False, "Standard deviation of every value of each layer."),
        ("zero_fraction", "exact zeros", True, "Share of values that are exactly 0."),
        ("dead_fraction", "dead units", True, "Share of units that never vary or, after a ReLU-family "
                                              "activation, are never above 0."),
        ("saturation_fraction", "saturated values", True, "Share of values near a bound of a bounded "
                                                          "activation; gaps are unbounded layers."),
    ]
    where = f"{pair['model']} × {pair['dataset']}"
    return [ctx.figure(f"{where}: depth profile of {key}",
                       f"{label} of each layer of {pair['model']} on {pair['dataset']}, in model order",
                       f"{caption} x: layers in model order; y: {label}{' (%)' if percent else ''}.",
                       lambda key=key, label=label, percent=percent: figures.job(figures.depth_profile,
                           names, _series(stats, twin_stats, names, key), label, percent))
            for key, label, percent, caption in profiles]


def _series(stats: list[dict[str, Any]], twin: dict[str, dict[str, Any]] | None, names: list[str],
            key: str) -> dict[str, list[float | None]]:
    series = {"trained": [s[key] for s in stats]}
    if twin:
        series["random weights"] = [twin[name][key] if name in twin else None for name in names]
    return series
