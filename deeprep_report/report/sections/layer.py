"""A layer's section: its statistics table, unit charts and value histogram, a feature-map gallery (maps)
or a class-grouped heatmap (vectors, sequences), and the top exemplars of its most varying units."""

from __future__ import annotations

from typing import Any

import numpy as np

from deeprep_report.report import figures
from deeprep_report.report.context import ReportContext, Shown
from deeprep_report.report.formatting import number, percent
from deeprep_report.report.sections import tokens
from deeprep_report.store import read_rows

HEATMAP_UNITS = 64
_ROWS_PER_READ = 8192


def build(ctx: ReportContext, pair: dict[str, Any], anchor: str, layer: dict[str, Any]) -> dict[str, Any]:
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
        lambda: figures.unit_panels(unit_stats["mean"], unit_stats["zero_fraction"], unit_stats["dead"],
                                    edges, np.asarray(histogram["counts"])))
    gallery = heatmap = None
    if "maps" in group and group["maps"].ndim == 4 and group["maps"].shape[0]:
        gallery = _gallery(ctx, pair, layer, group, ranked, where)
    elif layer["kind"] in ("vector", "sequence"):
        heatmap = _heatmap(ctx, pair, layer, group, ranked, where)
    architecture = {row["path"]: row for m in ctx.summary["models"] if m["name"] == model for row in m["layers"]}
    inherited = bool(architecture.get(path, {}).get("activation_inherited"))
    exemplars = _exemplars(ctx, pair, layer, group, ranked, where)
    sequence = pair.get("tokens") is not None
    return {**layer, "id": anchor, "inherited": inherited, "stats_rows": _stats_rows(layer), "units_figure": units,
            "gallery": gallery, "heatmap": heatmap, "exemplars": exemplars,
            "contexts": tokens.contexts(ctx, pair, layer, ranked) if sequence else None,
            "nearest": tokens.nearest_tokens(ctx, pair, layer, any(
                source.startswith("input:") for source in architecture.get(path, {}).get("inputs", []))) if sequence
            else None,
            "text_exemplars": _text_exemplars(ctx, pair, layer, group, ranked) if sequence and not exemplars else None}


def _gallery(ctx: ReportContext, pair: dict[str, Any], layer: dict[str, Any], group: Any, ranked: np.ndarray,
             where: str) -> Shown:
    maps = group["maps"]
    labels = ctx.labels(pair["dataset"])
    samples = _spread_by_class(labels[: maps.shape[0]] if labels is not None else None, maps.shape[0],
                               ctx.settings.gallery.samples)
    channels = ranked[: ctx.settings.gallery.channels].tolist()
    images = ctx.input_images(pair["dataset"], pair["model"], samples)

    def draw() -> str:
        rows = []
        for position, sample in enumerate(samples):
            image = images[position] if images is not None else None
            caption = f"sample {sample}" + (f" · class {ctx.class_name(ctx.datasets[pair['dataset']], labels, sample)}"
                                           if labels is not None else "")
            rows.append((image, maps[sample][..., channels].astype(np.float64), caption))
        return figures.feature_gallery(rows, channels)

    return ctx.figure(
        f"{where}: feature maps", f"Feature maps of {len(channels)} channels of layer {layer['path']} for "
        f"{len(samples)} sample inputs",
        f"Each row: a sample input, then its maps of the {len(channels)} channels with the highest standard "
        "deviation (channel number in the corner), all on the row's colour scale (bar on the right).", draw)


def _heatmap(ctx: ReportContext, pair: dict[str, Any], layer: dict[str, Any], group: Any, ranked: np.ndarray,
             where: str) -> Shown:
    labels = ctx.labels(pair["dataset"])
    rows, groups = _heatmap_rows(labels, group["pooled"].shape[0], ctx.settings.heatmap_samples,
                                 ctx.datasets[pair["dataset"]])
    units = ranked[:HEATMAP_UNITS]

    def draw() -> str:
        pooled = read_rows(group["pooled"], rows)
        return figures.dense_heatmap(pooled[:, units].astype(np.float64), groups, units.tolist())

    return ctx.figure(
        f"{where}: heatmap", f"Activations of layer {layer['path']}: {len(rows)} samples by {len(units)} units",
        f"Rows: {len(rows)} samples grouped by class; columns: the {len(units)} units with the highest standard "
        "deviation; colour: activation (pooled over positions for sequences).", draw)


def _exemplars(ctx: ReportContext, pair: dict[str, Any], layer: dict[str, Any], group: Any, ranked: np.ndarray,
               where: str) -> Shown | None:
    if layer["kind"] == "scalar":
        return None
    settings = ctx.settings.exemplars
    units, top, values, labels, dataset = _top_samples(ctx, pair, group, ranked)
    flat = np.unique(top)
    images = ctx.input_images(pair["dataset"], pair["model"], flat)
    if images is None:
        return None
    by_row = dict(zip(flat.tolist(), images))
    rows = [(int(unit), [(by_row[int(r)], float(v), ctx.class_name(dataset, labels, int(r)))
                         for r, v in zip(top[i], values[i])]) for i, unit in enumerate(units)]
    return ctx.figure(
        f"{where}: exemplars", f"The {settings.k} inputs that activate each of {len(units)} units of layer "
        f"{layer['path']} most",
        f"Each row: a unit (highest standard deviation first) and the {settings.k} samples, of all "
        f"{pair['n_samples']}, with the largest pooled activation, largest first; the number is that "
        "activation, then the class.", lambda: figures.exemplars(rows))


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
    show (images, or texts)."""
    settings = ctx.settings.exemplars
    units = ranked[: settings.units]
    top, values = _top_rows(group["pooled"], units, settings.k)
    return units, top, values, ctx.labels(pair["dataset"]), ctx.datasets[pair["dataset"]]


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


def _top_rows(pooled: Any, units: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, the k rows with the largest value (largest first), reading the dataset in chunks."""
    best_rows = np.zeros((len(units), 0), dtype=np.int64)
    best_values = np.zeros((len(units), 0))
    for start in range(0, pooled.shape[0], _ROWS_PER_READ):
        block = np.asarray(pooled[start : start + _ROWS_PER_READ][:, units], dtype=np.float64).T  # (U, rows)
        block = np.where(np.isnan(block), -np.inf, block)
        rows = np.broadcast_to(np.arange(start, start + block.shape[1]), block.shape)
        values = np.concatenate([best_values, block], axis=1)
        candidates = np.concatenate([best_rows, rows], axis=1)
        order = np.argsort(-values, axis=1, kind="stable")[:, :k]
        best_values = np.take_along_axis(values, order, axis=1)
        best_rows = np.take_along_axis(candidates, order, axis=1)
    return best_rows, best_values


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
