"""A layer's section: its statistics table, unit charts and value histogram, a feature-map gallery (maps)
or a class-grouped heatmap (vectors, sequences), and the top exemplars of its most varying units."""

from __future__ import annotations

from typing import Any

import numpy as np

from deeprep_report.report import figures
from deeprep_report.report import images as raster
from deeprep_report.report.context import ReportContext, Shown
from deeprep_report.report.formatting import number, percent
from deeprep_report.report.sections import tokens
from deeprep_report.store import read_rows

HEATMAP_UNITS = 64
_ROWS_PER_READ = 8192


def build(ctx: ReportContext, pair: dict[str, Any], anchor: str, layer: dict[str, Any], depth: float,
          brief: bool = False, same_as: dict[str, str] | None = None) -> dict[str, Any]:
    """A layer's section; ``depth`` is its place among the pair's layers (0: the first, 1: the last). A
    ``brief`` one (a flagged layer outside the layers chosen for a big model, or ``same_as`` another layer:
    ``{path, id}`` of the input it passes through at inference) has its statistics and unit charts only."""
    model, dataset, path = pair["model"], pair["dataset"], layer["path"]
    group = ctx.store.layer_group(model, dataset, path)
    unit_stats = {name: group["stats"][name][()] for name in ("mean", "std", "zero_fraction", "dead")}
    where = f"{model} × {dataset} / {path}"
    ranked = _rank_units(unit_stats["std"])
    histogram = layer["histogram"]
    edges = histogram["first_edge"] + histogram["bin_width"] * np.arange(len(histogram["counts"]) + 1)
    units = ctx.figure(
        f"{where}: unit charts", f"Unit means, zero fractions and value histogram of layer {path}",
        "Left: each unit's mean, sorted (dead units marked ×). Middle: each unit's share of exact zeros, "
        "sorted. Right: histogram of every value of the layer (count on a log scale).",
        lambda: figures.job(figures.unit_panels, unit_stats["mean"], unit_stats["zero_fraction"], unit_stats["dead"],
                                    edges, np.asarray(histogram["counts"])))
    row = ctx.architecture(model).get(path, {})
    sequence = pair.get("tokens") is not None
    section = {**layer, "id": anchor, "inherited": bool(row.get("activation_inherited")), "brief": brief,
               "same_as": same_as,
               "stats_rows": _stats_rows(layer), "units_figure": units, "look_for": look_for(layer["kind"], depth, sequence),
               "gallery": None, "heatmap": None, "exemplars": None, "contexts": None, "nearest": None,
               "text_exemplars": None}
    if brief:
        return section
    if "maps" in group and group["maps"].ndim == 4 and group["maps"].shape[0]:
        section["gallery"] = _gallery(ctx, pair, layer, group, ranked, unit_stats["dead"].astype(bool), where)
    elif layer["kind"] in ("vector", "sequence"):
        section["heatmap"] = _heatmap(ctx, pair, layer, group, ranked, where)
    section["exemplars"] = _exemplars(ctx, pair, layer, group, ranked, where)
    if sequence:
        section["contexts"] = tokens.contexts(ctx, pair, layer, ranked)
        section["nearest"] = tokens.nearest_tokens(ctx, pair, layer, any(
            source.startswith("input:") for source in row.get("inputs", [])))
        if not section["exemplars"]:
            section["text_exemplars"] = _text_exemplars(ctx, pair, layer, group, ranked)
    return section


def _gallery(ctx: ReportContext, pair: dict[str, Any], layer: dict[str, Any], group: Any, ranked: np.ndarray,
             dead: np.ndarray, where: str) -> Shown:
    maps = group["maps"]
    labels = ctx.labels(pair["dataset"])
    samples = _spread_by_class(labels[: maps.shape[0]] if labels is not None else None, maps.shape[0],
                               ctx.settings.gallery.samples)
    channels = ranked[: ctx.settings.gallery.channels].tolist()
    signed = _signed(layer)
    dataset = ctx.datasets[pair["dataset"]]

    def build() -> dict[str, Any]:
        thumbnails = ctx.input_thumbnails(pair["dataset"], pair["model"], samples)
        rows = []
        for position, sample in enumerate(samples):
            chosen = maps[sample][..., channels].astype(np.float64)
            low, high = raster.scale(chosen, signed)
            rows.append({
                "input": thumbnails[position] if thumbnails else None,
                "caption": f"sample {sample}" + (f" · class {ctx.class_name(dataset, labels, sample)}"
                                                 if labels is not None else ""),
                "low": number(low), "high": number(high),
                "maps": [{"channel": channel, "dead": bool(dead[channel]),
                          "src": raster.map_uri(chosen[..., k], low, high, signed)}
                         for k, channel in enumerate(channels)]})
        height, width = maps.shape[1:3]
        return {"rows": rows, "bar": raster.colour_bar_uri(signed), "signed": signed, "width": width,
                "height": height, "hidden_dead": [int(c) for c in np.flatnonzero(dead) if c not in channels]}

    colours = ("a diverging scale centred at 0 (blue below, red above, white at 0)" if signed else
               "a scale from 0 (dark) to the row's largest value (yellow)")
    return ctx.panel(
        f"{where}: feature maps", f"Feature maps of {len(channels)} channels of layer {layer['path']} for "
        f"{len(samples)} sample inputs",
        f"Each row: a sample input, then its maps of the {len(channels)} channels with the highest standard "
        f"deviation (channel number under each map; dead channels outlined in red), on {colours}, shared by the "
        "row (bar under the input); grey: NaN/Inf.", build)


def _signed(layer: dict[str, Any]) -> bool:
    """Whether a layer's values go below 0 (then its maps use a diverging colour scale centred at 0)."""
    low = layer["stats"]["min"]
    return low is not None and low < 0


def _heatmap(ctx: ReportContext, pair: dict[str, Any], layer: dict[str, Any], group: Any, ranked: np.ndarray,
             where: str) -> Shown:
    labels = ctx.labels(pair["dataset"])
    rows, groups = _heatmap_rows(labels, group["pooled"].shape[0], ctx.settings.heatmap_samples,
                                 ctx.datasets[pair["dataset"]])
    units = ranked[:HEATMAP_UNITS]

    def draw() -> figures.Job:
        pooled = read_rows(group["pooled"], rows)
        return figures.job(figures.dense_heatmap, pooled[:, units].astype(np.float64), groups, units.tolist(), _signed(layer))

    return ctx.figure(
        f"{where}: heatmap", f"Activations of layer {layer['path']}: {len(rows)} samples by {len(units)} units",
        f"Rows: {len(rows)} samples grouped by class; columns: "
        + (f"all {len(units)} units, highest standard deviation first (a dead unit is a flat column at the end)"
           if len(units) == len(ranked) else f"the {len(units)} units with the highest standard deviation")
        + "; colour: activation (pooled over positions for sequences).", draw)


def _exemplars(ctx: ReportContext, pair: dict[str, Any], layer: dict[str, Any], group: Any, ranked: np.ndarray,
               where: str) -> Shown | None:
    if layer["kind"] == "scalar":
        return None
    settings = ctx.settings.exemplars
    if not ctx.shows_inputs(pair["dataset"], pair["model"]):
        return None  # no stored inputs (store.inputs: false), or they are not images (text: top sequences)

    def build() -> dict[str, Any]:
        units, top, values, labels, dataset = _top_samples(ctx, pair, group, ranked)
        flat = np.unique(top)
        by_row = dict(zip(flat.tolist(), ctx.input_thumbnails(pair["dataset"], pair["model"], flat)))
        return {"k": settings.k, "rows": [
            {"unit": int(unit), "samples": [{"image": by_row[int(r)], "sample": int(r), "value": number(float(v)),
                                             "label": ctx.class_name(dataset, labels, int(r))}
                                            for r, v in zip(top[i], values[i])]}
            for i, unit in enumerate(units)]}

    measure = ("largest activation anywhere in the map (its peak)" if "peak" in group else
               "largest activation" if layer["kind"] == "vector" else
               "largest activation averaged over positions" + (" (real tokens only)" if layer.get("masked") else ""))
    return ctx.panel(
        f"{where}: exemplars", f"The {settings.k} inputs that activate each of {len(ranked[: settings.units])} units "
        f"of layer {layer['path']} most",
        f"Each row: a unit (highest standard deviation first; constant units left out) and the {settings.k} "
        "samples, of all "
        f"{pair['n_samples']}, with the {measure}, largest first; under each: that activation, then the class. "
        "An input appears under several units only when it is the top of each.", build)


def _text_exemplars(ctx: ReportContext, pair: dict[str, Any], layer: dict[str, Any], group: Any,
                    ranked: np.ndarray) -> list[dict[str, Any]] | None:
    """Per shown unit, the k sequences with the largest pooled activation (mean over real tokens), as text."""
    if layer["kind"] == "scalar":
        return None
    units, top, values, labels, dataset = _top_samples(ctx, pair, group, ranked)
    wanted = sorted({int(r) for r in top.ravel()})
    text_of = dict(zip(wanted, tokens.sequence_texts(ctx, pair, wanted)))
    return [{"unit": int(unit), "rows": [{"value": number(float(v)), "text": text_of[int(r)],
                                          "label": ctx.class_name(dataset, labels, int(r))}
                                         for r, v in zip(top[i], values[i]) if np.isfinite(v)]}
            for i, unit in enumerate(units)]


def _top_samples(ctx: ReportContext, pair: dict[str, Any], group: Any, ranked: np.ndarray) -> tuple:
    """(shown units, their k top sample rows and values, the labels, the dataset): what both kinds of exemplars
    show (images, or texts). A map layer's units are ranked by each sample's peak (a mean over positions
    ranks by how much of the input is bright: the same images top every early unit)."""
    settings = ctx.settings.exemplars
    std = group["stats"]["std"][()]
    units = np.array([u for u in ranked[: settings.units] if std[u] > 0], dtype=np.int64)  # a constant unit's
    # "top" inputs would be the first k rows
    if "peak" in group:  # equal peaks (a saturated input) are ranked by the mean over positions
        top, values = _top_rows(group["peak"], units, settings.k, ties=group["pooled"])
    else:
        top, values = _top_rows(group["pooled"], units, settings.k)
    return units, top, values, ctx.labels(pair["dataset"]), ctx.datasets[pair["dataset"]]


#: What a reader can expect to see at each third of a network's depth (Zeiler & Fergus 2014 for images; for text,
#: the word → phrase → sentence progression probed by Tenney et al. 2019). A guide to reading, not a measurement.
_LOOK_FOR = {
    "map": ("Early layer: look for edge, stroke and colour-blob detectors: maps that trace the input's outlines "
            "at nearly its resolution, and exemplars that share a local pattern rather than a class.",
            "Middle layer: look for parts and motifs (corners, curves, textures, pieces of objects): coarser maps "
            "that light up on a region, exemplars that share a part.",
            "Late layer: look for whole objects and classes: maps that light up wherever the object is, "
            "exemplar rows of one class."),
    "sequence": ("Early layer: look for word patterns: units that fire on particular tokens, characters or "
                 "short n-grams wherever they occur.",
                 "Middle layer: look for phrases and syntax: units whose top contexts span several words with a "
                 "shared structure.",
                 "Late layer: look for sentence meaning: units whose top sequences share a topic or class."),
    "vector": ("Look for units that separate the classes: rows of one class lit in the same columns.",) * 3,
}


def look_for(kind: str, depth: float, tokens: bool) -> str | None:
    """The caption of a layer's section saying what to look for at its depth (0: first layer, 1: last);
    sequence layers get one only in a model of tokens (text)."""
    texts = _LOOK_FOR.get(kind) if kind != "sequence" or tokens else None
    return None if texts is None else texts[min(2, int(depth * 3))]


def _rank_units(std: np.ndarray) -> np.ndarray:
    """Unit indices by decreasing standard deviation (NaN last, ties by index)."""
    return np.argsort(-np.nan_to_num(std, nan=-np.inf), kind="stable")


def _spread_by_class(labels: np.ndarray | None, available: int, wanted: int) -> np.ndarray:
    """First sample of each class in class order, then the next samples, up to ``wanted``."""
    if labels is None:
        return np.arange(min(wanted, available))
    chosen = [int(np.flatnonzero(labels == label)[0]) for label in np.unique(labels)][:wanted]
    for row in range(available):
        if len(chosen) >= wanted:
            break
        if row not in chosen:
            chosen.append(row)
    return np.asarray(chosen[:wanted])


def _heatmap_rows(labels: np.ndarray | None, available: int, wanted: int,
                  dataset: dict[str, Any]) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Rows for a heatmap, an equal share per class in sample order, and the (class name, count) groups."""
    if labels is None:
        count = min(wanted, available)
        return np.arange(count), [("", count)]
    classes = np.unique(labels)
    share = max(1, wanted // len(classes))
    rows, groups = [], []
    names = dataset["class_names"] or []
    for label in classes:
        members = np.flatnonzero(labels == label)[:share]
        rows.extend(members.tolist())
        groups.append((names[label] if label < len(names) else str(label), len(members)))
    return np.asarray(rows), groups


def _top_rows(ranked_by: Any, units: np.ndarray, k: int, ties: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, the k rows with the largest value of ``ranked_by`` (largest first; equal values by the larger
    ``ties`` value, then by row), and those values, reading the datasets in chunks (NaN ranks last)."""
    def read(dataset: Any, start: int) -> np.ndarray:
        block = np.asarray(dataset[start : start + _ROWS_PER_READ][:, units], dtype=np.float64).T  # (U, rows)
        return np.where(np.isnan(block), -np.inf, block)

    best = (np.zeros((len(units), 0), dtype=np.int64), np.zeros((len(units), 0)), np.zeros((len(units), 0)))
    for start in range(0, ranked_by.shape[0], _ROWS_PER_READ):
        block = read(ranked_by, start)
        rows = np.broadcast_to(np.arange(start, start + block.shape[1]), block.shape)
        second = read(ties, start) if ties is not None else np.zeros_like(block)
        candidates, values, seconds = (np.concatenate(pair, axis=1) for pair in zip(best, (rows, block, second)))
        order = np.lexsort((candidates, -seconds, -values), axis=1)[:, :k]
        best = tuple(np.take_along_axis(array, order, axis=1) for array in (candidates, values, seconds))
    return best[0], best[1]


def _stats_rows(layer: dict[str, Any]) -> list[tuple[str, str]]:
    stats = layer["stats"]
    saturation = stats["saturation_fraction"]
    dead = layer["dead_unit_indices"]
    masked = layer.get("masked")
    tokens = [("tokens", f"real tokens only (mask from {layer['mask_note']})" if masked else
               f"every position: {layer['mask_note']}")] if masked is not None else []
    return [
        ("units × positions", f"{layer['units']:,} × {layer['positions']:,}"),
        *tokens,
        ("values", f"{stats['values']:,}"),
        ("mean ± std", f"{number(stats['mean'])} ± {number(stats['std'])}"),
        ("min … max", f"{number(stats['min'])} … {number(stats['max'])}"),
        ("exact zeros", percent(stats["zero_fraction"])),
        ("NaN/Inf", f"{stats['nonfinite_count']:,} ({percent(stats['nonfinite_fraction'])})"),
        ("saturated", percent(saturation) if saturation is not None else "n/a (unbounded activation)"),
        ("dead units", f"{stats['dead_units']} of {layer['units']} ({percent(stats['dead_fraction'])})"
         + (f": #{', #'.join(map(str, dead[:16]))}{' …' if len(dead) > 16 else ''}" if dead else "")),
    ]
