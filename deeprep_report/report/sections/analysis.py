"""The Depth analysis section of a pair: the written interpretation, the per-layer table and the depth
figures (probes, transfer, CKA, random weights, geometry, class structure, projections); docs/analysis.md."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from deeprep_report.report import figures
from deeprep_report.report.context import ReportContext, Shown
from deeprep_report.report.formatting import number
from deeprep_report.store import pair_key


def build(ctx: ReportContext, pair_id: str, pair: dict[str, Any], twin: dict[str, Any] | None,
              shown: set[str]) -> dict[str, Any]:
    """The Depth analysis section: interpretation, per-layer table, figures (see docs/analysis.md)."""
    analysis = pair["analysis"]
    random = twin["analysis"] if twin and twin.get("analysis") else None
    names = analysis["layers"]
    where = f"{pair['model']} × {pair['dataset']}: depth analysis"
    shown_figures: list[Shown] = []

    entered = view_note(analysis)

    def add(what: str, alt: str, caption: str, draw: Callable[[], figures.Job], on_views: bool = True) -> None:
        caption = f"{caption} {entered}" if on_views else caption
        shown_figures.append(ctx.figure(f"{where}: {what}", alt, caption, draw))

    def series(block: str, key: str) -> dict[str, list[float | None]]:
        def pick(source: dict[str, Any] | None) -> list[float | None] | None:
            rows = (source or {}).get(block)
            return [row[key] if row else None for row in rows] if rows else None

        out = {"trained": pick(analysis)}
        if random is not None and pick(random) is not None:
            out["random weights"] = _align(names, random["layers"], pick(random))
        return out

    vs = " and of the same architecture with random weights" if random else ""
    if analysis.get("probe"):
        probe = analysis["probe"]
        chance = next((p["chance"] for p in probe if p), None)
        add("probe accuracy", f"Linear probe accuracy of each layer of {pair['model']}",
            f"Held-out accuracy of a linear probe on each layer{vs}, with the 95 % bootstrap interval; dashed: "
            "chance (the largest class). x: layers in model order (input: the model's input); y: accuracy.",
            lambda: figures.job(figures.depth_profile, names, series("probe", "accuracy"), "probe accuracy",
                                          bands={"trained": ([p["low"] if p else None for p in probe],
                                                             [p["high"] if p else None for p in probe])},
                                          reference=(chance, "chance") if chance is not None else None))
    transfer = analysis.get("transfer")
    if transfer and transfer["best_layer"] is not None and analysis.get("probe"):
        add("transfer profile", f"Probe accuracy of each layer of {pair['model']} on {pair['dataset']} and on "
            f"{transfer['dataset']}",
            f"Held-out probe accuracy of each layer on {pair['dataset']} and on {transfer['dataset']}, a labelled "
            f"task the model was not trained on: the depth where the second curve peaks transfers best.",
            lambda: figures.job(figures.depth_profile, names, {
                pair["dataset"]: series("probe", "accuracy")["trained"],
                transfer["dataset"]: _align(names, transfer["layers"], transfer["accuracy"])}, "probe accuracy"))
    if analysis.get("cka"):
        cka = analysis["cka"]
        add("CKA matrix", f"Linear CKA between every pair of layers of {pair['model']}",
            f"Linear CKA between every pair of layers ({cka['estimator']} estimator, {cka['method']}"
                f"{', ' + format(cka['samples'], ',') + ' samples' if cka.get('samples') else ''}): 1 means "
            "the same representation up to rotation and scale.",
            lambda: figures.job(figures.similarity_matrix, names, np.asarray(cka["matrix"], dtype=float), "linear CKA"))
    if analysis.get("baseline"):
        twin_cka = analysis["baseline"]["cka_with_trained"]
        add("CKA with random weights", "Linear CKA between each trained layer and the same layer with random weights",
            "Per layer, linear CKA between the trained layer and the same layer of the architecture with random "
            "weights: low values show where training changed the representation most.",
            lambda: figures.job(figures.depth_profile, names, {"trained vs random": twin_cka}, "linear CKA"))
    if analysis.get("geometry"):
        geometry = analysis["geometry"]
        add("intrinsic dimension", "Intrinsic dimension of each layer",
            f"Intrinsic dimension (TwoNN, mean ± std over subsamples) of each layer{vs}.",
            lambda: figures.job(figures.depth_profile, names, series("geometry", "intrinsic_dimension"), "intrinsic dimension",
                                          bands={"trained": (
                                              [g["intrinsic_dimension"] - g["intrinsic_dimension_std"]
                                               if g["intrinsic_dimension"] is not None else None for g in geometry],
                                              [g["intrinsic_dimension"] + g["intrinsic_dimension_std"]
                                               if g["intrinsic_dimension"] is not None else None for g in geometry])}))
        for key, label, caption in (
                ("effective_rank", "effective rank", "Effective rank: exp of the entropy of the normalised "
                                                      "singular values of the centred features"),
                ("participation_ratio", "participation ratio", "Participation ratio: (Σλ)²/Σλ² of the "
                                                               "covariance eigenvalues"),
                ("pca_90", "PCA components for 90 %", "Principal components explaining 90 % of the variance"),
                ("pca_99", "PCA components for 99 %", "Principal components explaining 99 % of the variance")):
            add(label, f"{label} of each layer", f"{caption}{vs}.",
                lambda key=key, label=label: figures.job(figures.depth_profile, names, series("geometry", key), label))
    if analysis.get("classes"):
        add("nearest-centroid accuracy", "Nearest-class-centroid accuracy of each layer",
            f"Accuracy on the probe's test split of assigning each sample to the nearest class mean of the "
            f"training split{vs}.",
            lambda: figures.job(figures.depth_profile, names, series("classes", "ncc_accuracy"), "nearest-centroid accuracy"))
        add("silhouette", "Silhouette score of the classes in each layer",
            f"Mean silhouette of the classes (Euclidean; 1: tight, separated classes; 0: overlapping){vs}.",
            lambda: figures.job(figures.depth_profile, names, series("classes", "silhouette"), "silhouette"))
        add("selectivity", "Class selectivity of the units of each layer",
            "Per layer, the distribution of unit class-selectivity indices (μ_max − μ_rest)/(μ_max + μ_rest) "
            "over each channel's class-conditional mean activation, in [0, 1]: 1 is a unit active for one class "
            "only. Defined for non-negative activations: units that take negative values are left out. Box: "
            "quartiles and median; whiskers: 5–95 %.",
            lambda: figures.job(figures.distributions, names[1:] if names[0] == "input" else names,
                                          _selectivities(ctx, pair, names), "class selectivity"), on_views=False)
        panels = _projection_panels(ctx, names, shown)
        add("projections", "2-D projections of layers, coloured by class",
            f"The first principal components of {len(panels)} layers in depth order, each point a sample "
            "coloured by class: classes separate as depth grows where the model learned to separate them.",
            lambda: _draw_projections(ctx, pair, names, panels))
    return {"id": f"{pair_id}-analysis", "interpretation": analysis.get("interpretation", []),
            "transfer": _transfer_sentence(transfer),
            "table": _analysis_table(analysis, random), "figures": shown_figures}


def _selectivities(ctx: ReportContext, pair: dict[str, Any], names: list[str]) -> list[np.ndarray]:
    values = []
    for name in names:
        if name == "input":
            continue
        group = ctx.store.layer_group(pair["model"], pair["dataset"], name)["stats"]
        values.append(group["selectivity"][()] if "selectivity" in group else np.array([]))
    return values


def _projection_panels(ctx: ReportContext, names: list[str], shown: set[str], most: int = 16) -> list[int]:
    """Indices of the layers drawn as projections: the input and the shown layers, at most ``most``."""
    candidates = [i for i, name in enumerate(names) if name == "input" or name in shown]
    if len(candidates) <= most:
        return candidates
    picks = np.linspace(0, len(candidates) - 1, most).round().astype(int)
    return [candidates[i] for i in sorted(set(picks.tolist()))]


def _draw_projections(ctx: ReportContext, pair: dict[str, Any], names: list[str], panels: list[int]) -> figures.Job:
    group = ctx.store.file[f"{pair_key(pair['model'], pair['dataset'])}/analysis"]
    points = group["projections"]
    labels = group["projection_labels"][()]
    dataset = ctx.datasets[pair["dataset"]]
    class_names = dataset["class_names"] or [str(c) for c in range(int(labels.max()) + 1)]
    return figures.job(figures.projections, [names[i] for i in panels], [points[i] for i in panels], labels, class_names)


def _transfer_sentence(transfer: dict[str, Any] | None) -> str | None:
    if not transfer:
        return None
    if transfer["best_layer"] is None:
        return f"Transfer profile on {transfer['dataset']}: {transfer['note']}."
    return (f"Transfer to {transfer['dataset']}: {transfer['best_layer']} transfers best (linear probe accuracy "
            f"{transfer['best_accuracy']:.3f}); full profile in the figure below.")


def _align(names: list[str], other: list[str], values: list[Any]) -> list[Any]:
    """Values of ``other`` layers re-ordered to ``names`` (None where a layer is missing)."""
    by_name = dict(zip(other, values))
    return [by_name.get(name) for name in names]


def _analysis_table(analysis: dict[str, Any], random: dict[str, Any] | None) -> dict[str, Any]:
    """Per-layer numbers of the depth analysis: a header and rows of formatted cells."""
    names = analysis["layers"]
    random_probe = _align(names, random["layers"], random.get("probe") or [None] * len(random["layers"])) \
        if random else None
    twin_cka = (analysis.get("baseline") or {}).get("cka_with_trained")
    columns: list[tuple[str, Callable[[int], str]]] = []
    if analysis.get("views"):
        views = analysis["views"]
        columns.append(("view", lambda i: views[i]["basis"]))
    if analysis.get("probe"):
        probe = analysis["probe"]
        columns.append(("probe accuracy (95 % interval)", lambda i: "n/a" if not probe[i] else
                        f"{number(probe[i]['accuracy'])} ({number(probe[i]['low'])}–{number(probe[i]['high'])})"))
        if random_probe:
            columns.append(("probe, random weights", lambda i: "n/a" if not random_probe[i] else
                            f"{random_probe[i]['accuracy']:.3f}"))
    if analysis.get("geometry"):
        geometry = analysis["geometry"]
        columns += [
            ("intrinsic dimension", lambda i: _plus_minus(geometry[i]["intrinsic_dimension"],
                                                          geometry[i]["intrinsic_dimension_std"])),
            ("effective rank", lambda i: number(geometry[i]["effective_rank"])),
            ("participation ratio", lambda i: number(geometry[i]["participation_ratio"])),
            ("PCA 90\u00a0% / 99\u00a0%", lambda i: f"{geometry[i]['pca_90']} / {geometry[i]['pca_99']}"),
        ]
    if analysis.get("classes"):
        classes = analysis["classes"]
        columns += [
            ("nearest centroid", lambda i: number(classes[i]["ncc_accuracy"])),
            ("silhouette", lambda i: number(classes[i]["silhouette"])),
            ("selectivity (median)", lambda i: number((classes[i]["selectivity"] or {}).get("median"))),
        ]
    if twin_cka:
        columns.append(("CKA with random weights", lambda i: number(twin_cka[i])))
    return {"header": ["layer"] + [title for title, _ in columns],
            "rows": [[name] + [cell(i) for _, cell in columns] for i, name in enumerate(names)]}


def view_note(analysis: dict[str, Any]) -> str:
    """One sentence saying how the layers entered the analysis (every depth figure carries it)."""
    views = analysis.get("views")
    if not views:
        return "Layers enter as their channel means (a run before analysis views)."
    sketched = [v["layer"] for v in views if v["method"] == "count_sketch"]
    legacy = [v["layer"] for v in views if v["method"] == "channel_means"]
    parts = [f"{', '.join(sketched)} as count sketches to {views[[v['layer'] for v in views].index(sketched[0])]['dims']:,}"
             " values" if sketched else "", f"{', '.join(legacy)} as channel means" if legacy else ""]
    detail = "; ".join(part for part in parts if part)
    return ("Layers enter whole (flattened)" + (f", except {detail}." if detail else "."))


def _plus_minus(value: float | None, spread: float | None) -> str:
    """'8.1 ± 0.2', or just the value when there is no spread (a single estimate)."""
    if spread is None or not math.isfinite(spread) or spread == 0:
        return number(value)
    return f"{number(value)} ± {number(spread)}"
