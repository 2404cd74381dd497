"""Everything the report shows, gathered from ``summary.json`` and the store, figures drawn.

The result is plain data (strings, numbers, lists, dicts) for the templates,
documented in ``docs/report.md``. Choices that shape what a reader sees are
rules, applied the same way everywhere:

* channels and units shown: the highest per-unit standard deviation first
  (a dead or constant unit has nothing to show);
* gallery samples: the first stored sample of each class in class order, then
  the next stored samples, up to ``report.gallery.samples``;
* heatmap rows: up to ``report.heatmap_samples`` samples, an equal share per
  class, in sample order;
* exemplars: the ``report.exemplars.k`` samples with the largest pooled
  activation of the unit over all N samples.

A figure that fails to draw becomes a note in its place and in the verdict,
never a failed report.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from deeprep_report import figures, report_audit
from deeprep_report.config import ReportSection
from deeprep_report.findings import find
from deeprep_report.selectors import select
from deeprep_report.store import StoreReader, h5_name, pair_key
from deeprep_report.summary import audited_pairs, random_twins

log = logging.getLogger("deeprep")

HEATMAP_UNITS = 64
STRIP_SAMPLES = 12
_ROWS_PER_READ = 8192


@dataclass(frozen=True)
class Shown:
    """A figure in the report: its PNG data URI (or why it could not be drawn), alt text and caption."""

    src: str | None
    alt: str
    caption: str
    error: str | None = None


def build(summary: dict[str, Any], store: StoreReader, settings: ReportSection) -> dict[str, Any]:
    """The template context (see docs/report.md)."""
    return _Builder(summary, store, settings).context()


class _Builder:
    def __init__(self, summary: dict[str, Any], store: StoreReader, settings: ReportSection) -> None:
        self.summary = summary
        self.store = store
        self.settings = settings
        self.drawn = 0
        self.failed: list[str] = []
        self.datasets = {d["name"]: d for d in summary["datasets"]}
        #: random-weights twins: their pairs appear only as the comparison curves of their trained model
        self.baselines = random_twins(summary)
        self.twin_pairs = {(self.baselines[p["model"]], p["dataset"]): p for p in summary["pairs"]
                           if p["model"] in self.baselines}

    def context(self) -> dict[str, Any]:
        models = [self._model(m) for m in self.summary["models"]]
        datasets = [self._dataset(d) for d in self.summary["datasets"]]
        audited = audited_pairs(self.summary)
        pairs = [self._pair(index, pair) for index, pair in enumerate(audited)]
        anchors = {(p["model"], p["dataset"], layer["path"]): layer["id"] for p in pairs for layer in p["layers"]}
        findings = find(self.summary, self.settings.saturation_finding, anchors)
        changes = report_audit.changes_context(self.summary, self._figure)
        cross_model = report_audit.cross_model_figures(self.summary, self._figure)
        return {
            "title": f"deeprep report: {self.summary['run']['name']}",
            "run": self.summary["run"], "tool": self.summary["tool"], "timings": self.summary["timings"],
            "checks": report_audit.checks_context(self.summary, anchors), "changes": changes,
            "cross_model": cross_model,
            "verdict": self._verdict(findings), "models": models, "datasets": datasets, "pairs": pairs,
            "findings": findings, "provenance": self._provenance(), "toc": self._toc(pairs, changes, cross_model),
        }

    # -- figures --------------------------------------------------------------------------------
    def _figure(self, where: str, alt: str, caption: str, draw: Callable[[], str]) -> Shown:
        self.drawn += 1
        try:
            return Shown(draw(), alt, caption)
        except Exception as exc:  # noqa: BLE001 - a figure never takes the report down
            reason = f"{type(exc).__name__}: {exc}"
            self.failed.append(f"{where} ({reason})")
            log.warning("report: %s could not be drawn: %s", where, reason)
            return Shown(None, alt, caption, error=reason)

    def _verdict(self, findings: list[Any]) -> dict[str, Any]:
        noted = f"{len(findings)} finding{'s' if len(findings) != 1 else ''}"
        if not self.failed:
            return {"ok": True, "text": f"All {self.drawn} figures computed; {noted}."}
        return {"ok": False, "text": f"{len(self.failed)} of {self.drawn} figures could not be drawn: "
                                     f"{'; '.join(self.failed)}. {noted.capitalize()}."}

    # -- sections -------------------------------------------------------------------------------
    def _model(self, model: dict[str, Any]) -> dict[str, Any]:
        return {**model, "anchor": f"model-{h5_name(model['name'])}"}

    def _dataset(self, dataset: dict[str, Any]) -> dict[str, Any]:
        strip = None
        images = self._input_images(dataset["name"], None, np.arange(min(STRIP_SAMPLES, dataset["n_samples"])))
        if images is not None:
            labels = self._labels(dataset["name"])
            names = [self._class_name(dataset, labels, i) for i in range(len(images))]
            strip = self._figure(
                f"{dataset['name']}: sample strip", f"The first {len(images)} samples of dataset {dataset['name']}",
                "The first samples in run order, with their class.", lambda: figures.sample_strip(images, names))
        return {**dataset, "strip": strip}

    def _pair(self, index: int, pair: dict[str, Any]) -> dict[str, Any]:
        pair_id = f"pair-{index}"
        names = [layer["path"] for layer in pair["layers"]]
        shown = set(select(self.settings.layers, names))
        layers = [self._layer(pair, f"{pair_id}-layer-{i}", layer) for i, layer in enumerate(pair["layers"])
                  if layer["path"] in shown]
        twin = self.twin_pairs.get((pair["model"], pair["dataset"]))
        analysis = self._analysis(pair_id, pair, twin, shown) if pair.get("analysis") else None
        return {**pair, "id": pair_id, "title": f"{pair['model']} × {pair['dataset']}",
                "depth": self._depth(pair, names, twin), "analysis": analysis, "layers": layers,
                "baseline": twin["model"] if twin else None,
                "hidden": [name for name in names if name not in shown]}

    def _depth(self, pair: dict[str, Any], names: list[str], twin: dict[str, Any] | None) -> list[Shown]:
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
        return [self._figure(f"{where}: depth profile of {key}",
                             f"{label} of each layer of {pair['model']} on {pair['dataset']}, in model order",
                             f"{caption} x: layers in model order; y: {label}{' (%)' if percent else ''}.",
                             lambda key=key, label=label, percent=percent: figures.depth_profile(
                                 names, self._series(stats, twin_stats, names, key), label, percent))
                for key, label, percent, caption in profiles]

    @staticmethod
    def _series(stats: list[dict[str, Any]], twin: dict[str, dict[str, Any]] | None, names: list[str],
                key: str) -> dict[str, list[float | None]]:
        series = {"trained": [s[key] for s in stats]}
        if twin:
            series["random weights"] = [twin[name][key] if name in twin else None for name in names]
        return series

    def _analysis(self, pair_id: str, pair: dict[str, Any], twin: dict[str, Any] | None,
                  shown: set[str]) -> dict[str, Any]:
        """The Depth analysis section: interpretation, per-layer table, figures (see docs/analysis.md)."""
        analysis = pair["analysis"]
        random = twin["analysis"] if twin and twin.get("analysis") else None
        names = analysis["layers"]
        where = f"{pair['model']} × {pair['dataset']}: depth analysis"
        shown_figures: list[Shown] = []

        def add(what: str, alt: str, caption: str, draw: Callable[[], str]) -> None:
            shown_figures.append(self._figure(f"{where}: {what}", alt, caption, draw))

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
                "chance (the largest class). x: layers in model order (input: the pixels); y: accuracy.",
                lambda: figures.depth_profile(names, series("probe", "accuracy"), "probe accuracy",
                                              bands={"trained": ([p["low"] if p else None for p in probe],
                                                                 [p["high"] if p else None for p in probe])},
                                              reference=(chance, "chance") if chance is not None else None))
        transfer = analysis.get("transfer")
        if transfer and transfer["best_layer"] is not None and analysis.get("probe"):
            add("transfer profile", f"Probe accuracy of each layer of {pair['model']} on {pair['dataset']} and on "
                f"{transfer['dataset']}",
                f"Held-out probe accuracy of each layer on {pair['dataset']} and on {transfer['dataset']}, a labelled "
                f"task the model was not trained on: the depth where the second curve peaks transfers best.",
                lambda: figures.depth_profile(names, {
                    pair["dataset"]: series("probe", "accuracy")["trained"],
                    transfer["dataset"]: _align(names, transfer["layers"], transfer["accuracy"])}, "probe accuracy"))
        if analysis.get("cka"):
            cka = analysis["cka"]
            add("CKA matrix", f"Linear CKA between every pair of layers of {pair['model']}",
                f"Linear CKA between every pair of layers ({cka['estimator']} estimator, {cka['method']}): 1 means "
                "the same representation up to rotation and scale.",
                lambda: figures.similarity_matrix(names, np.asarray(cka["matrix"], dtype=float), "linear CKA"))
        if analysis.get("baseline"):
            twin_cka = analysis["baseline"]["cka_with_trained"]
            add("CKA with random weights", "Linear CKA between each trained layer and the same layer with random weights",
                "Per layer, linear CKA between the trained layer and the same layer of the architecture with random "
                "weights: low values show where training changed the representation most.",
                lambda: figures.depth_profile(names, {"trained vs random": twin_cka}, "linear CKA"))
        if analysis.get("geometry"):
            geometry = analysis["geometry"]
            add("intrinsic dimension", "Intrinsic dimension of each layer",
                f"Intrinsic dimension (TwoNN, mean ± std over subsamples) of each layer{vs}.",
                lambda: figures.depth_profile(names, series("geometry", "intrinsic_dimension"), "intrinsic dimension",
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
                    lambda key=key, label=label: figures.depth_profile(names, series("geometry", key), label))
        if analysis.get("classes"):
            add("nearest-centroid accuracy", "Nearest-class-centroid accuracy of each layer",
                f"Accuracy on the probe's test split of assigning each sample to the nearest class mean of the "
                f"training split{vs}.",
                lambda: figures.depth_profile(names, series("classes", "ncc_accuracy"), "nearest-centroid accuracy"))
            add("silhouette", "Silhouette score of the classes in each layer",
                f"Mean silhouette of the classes (Euclidean; 1: tight, separated classes; 0: overlapping){vs}.",
                lambda: figures.depth_profile(names, series("classes", "silhouette"), "silhouette"))
            add("selectivity", "Class selectivity of the units of each layer",
                "Per layer, the distribution of unit class-selectivity indices (μ_max − μ_rest)/(μ_max + μ_rest) "
                "over class-conditional mean activations: 1 is a unit active for one class only. Box: quartiles "
                "and median; whiskers: 5–95 %.",
                lambda: figures.distributions(names[1:] if names[0] == "input" else names,
                                              self._selectivities(pair, names), "class selectivity"))
            panels = self._projection_panels(names, shown)
            add("projections", "2-D projections of layers, coloured by class",
                f"The first principal components of {len(panels)} layers in depth order, each point a sample "
                "coloured by class: classes separate as depth grows where the model learned to separate them.",
                lambda: self._draw_projections(pair, names, panels))
        return {"id": f"{pair_id}-analysis", "interpretation": analysis.get("interpretation", []),
                "transfer": _transfer_sentence(transfer),
                "table": _analysis_table(analysis, random), "figures": shown_figures}

    def _selectivities(self, pair: dict[str, Any], names: list[str]) -> list[np.ndarray]:
        values = []
        for name in names:
            if name == "input":
                continue
            group = self.store.layer_group(pair["model"], pair["dataset"], name)["stats"]
            values.append(group["selectivity"][()] if "selectivity" in group else np.array([]))
        return values

    def _projection_panels(self, names: list[str], shown: set[str], most: int = 16) -> list[int]:
        """Indices of the layers drawn as projections: the input and the shown layers, at most ``most``."""
        candidates = [i for i, name in enumerate(names) if name == "input" or name in shown]
        if len(candidates) <= most:
            return candidates
        picks = np.linspace(0, len(candidates) - 1, most).round().astype(int)
        return [candidates[i] for i in sorted(set(picks.tolist()))]

    def _draw_projections(self, pair: dict[str, Any], names: list[str], panels: list[int]) -> str:
        group = self.store.file[f"{pair_key(pair['model'], pair['dataset'])}/analysis"]
        points = group["projections"]
        labels = group["projection_labels"][()]
        dataset = self.datasets[pair["dataset"]]
        class_names = dataset["class_names"] or [str(c) for c in range(int(labels.max()) + 1)]
        return figures.projections([names[i] for i in panels], [points[i] for i in panels], labels, class_names)

    def _layer(self, pair: dict[str, Any], anchor: str, layer: dict[str, Any]) -> dict[str, Any]:
        model, dataset, path = pair["model"], pair["dataset"], layer["path"]
        group = self.store.layer_group(model, dataset, path)
        unit_stats = {name: group["stats"][name][()] for name in ("mean", "std", "zero_fraction", "dead")}
        where = f"{model} × {dataset} / {path}"
        ranked = _rank_units(unit_stats["std"])
        histogram = layer["histogram"]
        edges = histogram["first_edge"] + histogram["bin_width"] * np.arange(len(histogram["counts"]) + 1)
        units = self._figure(
            f"{where}: unit charts", f"Unit means, zero fractions and value histogram of layer {path}",
            "Left: each unit's mean, sorted (dead units marked ×). Middle: each unit's share of exact zeros, "
            "sorted. Right: histogram of every value of the layer (count on a log scale).",
            lambda: figures.unit_panels(unit_stats["mean"], unit_stats["zero_fraction"], unit_stats["dead"],
                                        edges, np.asarray(histogram["counts"])))
        gallery = heatmap = None
        if "maps" in group and group["maps"].ndim == 4 and group["maps"].shape[0]:
            gallery = self._gallery(pair, layer, group, ranked, where)
        elif layer["kind"] in ("vector", "sequence"):
            heatmap = self._heatmap(pair, layer, group, ranked, where)
        return {**layer, "id": anchor, "stats_rows": _stats_rows(layer), "units_figure": units,
                "gallery": gallery, "heatmap": heatmap, "exemplars": self._exemplars(pair, layer, group, ranked, where)}

    def _gallery(self, pair: dict[str, Any], layer: dict[str, Any], group: Any, ranked: np.ndarray,
                 where: str) -> Shown:
        maps = group["maps"]
        labels = self._labels(pair["dataset"])
        samples = _spread_by_class(labels[: maps.shape[0]] if labels is not None else None, maps.shape[0],
                                   self.settings.gallery.samples)
        channels = ranked[: self.settings.gallery.channels].tolist()
        images = self._input_images(pair["dataset"], pair["model"], samples)

        def draw() -> str:
            rows = []
            for position, sample in enumerate(samples):
                image = images[position] if images is not None else None
                caption = f"sample {sample}" + (f" · class {self._class_name(self.datasets[pair['dataset']], labels, sample)}"
                                               if labels is not None else "")
                rows.append((image, maps[sample][..., channels].astype(np.float64), caption))
            return figures.feature_gallery(rows, channels)

        return self._figure(
            f"{where}: feature maps", f"Feature maps of {len(channels)} channels of layer {layer['path']} for "
            f"{len(samples)} sample inputs",
            f"Each row: a sample input, then its maps of the {len(channels)} channels with the highest standard "
            "deviation (channel number in the corner), all on the row's colour scale (bar on the right).", draw)

    def _heatmap(self, pair: dict[str, Any], layer: dict[str, Any], group: Any, ranked: np.ndarray,
                 where: str) -> Shown:
        labels = self._labels(pair["dataset"])
        rows, groups = _heatmap_rows(labels, group["pooled"].shape[0], self.settings.heatmap_samples,
                                     self.datasets[pair["dataset"]])
        units = ranked[:HEATMAP_UNITS]

        def draw() -> str:
            pooled = _read_rows(group["pooled"], rows)
            return figures.dense_heatmap(pooled[:, units].astype(np.float64), groups, units.tolist())

        return self._figure(
            f"{where}: heatmap", f"Activations of layer {layer['path']}: {len(rows)} samples by {len(units)} units",
            f"Rows: {len(rows)} samples grouped by class; columns: the {len(units)} units with the highest standard "
            "deviation; colour: activation (pooled over positions for sequences).", draw)

    def _exemplars(self, pair: dict[str, Any], layer: dict[str, Any], group: Any, ranked: np.ndarray,
                   where: str) -> Shown | None:
        if layer["kind"] == "scalar":
            return None
        settings = self.settings.exemplars
        units = ranked[: settings.units]
        top, values = _top_rows(group["pooled"], units, settings.k)
        labels = self._labels(pair["dataset"])
        dataset = self.datasets[pair["dataset"]]
        flat = np.unique(top)
        images = self._input_images(pair["dataset"], pair["model"], flat)
        if images is None:
            return None
        by_row = dict(zip(flat.tolist(), images))
        rows = [(int(unit), [(by_row[int(r)], float(v), self._class_name(dataset, labels, int(r)))
                             for r, v in zip(top[i], values[i])]) for i, unit in enumerate(units)]
        return self._figure(
            f"{where}: exemplars", f"The {settings.k} inputs that activate each of {len(units)} units of layer "
            f"{layer['path']} most",
            f"Each row: a unit (highest standard deviation first) and the {settings.k} samples, of all "
            f"{pair['n_samples']}, with the largest pooled activation, largest first; the number is that "
            "activation, then the class.", lambda: figures.exemplars(rows))

    def _provenance(self) -> dict[str, Any]:
        return {**self.summary["provenance"], "config": self.store.attrs().get("config", "")}

    def _toc(self, pairs: list[dict[str, Any]], changes: dict[str, Any] | None,
             cross_model: list[Any]) -> list[dict[str, Any]]:
        toc = []
        if self.summary.get("checks"):
            toc.append({"id": "checks", "title": "Checks", "level": 1})
        if changes:
            toc.append({"id": "changes", "title": "Changes since baseline", "level": 1})
        toc += [{"id": "overview", "title": "Overview", "level": 1},
               {"id": "models", "title": "Models", "level": 2},
               {"id": "datasets", "title": "Datasets", "level": 2},
               {"id": "findings", "title": "Findings", "level": 1}]
        if cross_model:
            toc.append({"id": "cross-model", "title": "Across models", "level": 1})
        for pair in pairs:
            toc.append({"id": pair["id"], "title": pair["title"], "level": 1})
            if pair["analysis"]:
                toc.append({"id": pair["analysis"]["id"], "title": "Depth analysis", "level": 2})
            toc.append({"id": f"{pair['id']}-depth", "title": "Depth profile", "level": 2})
            toc += [{"id": layer["id"], "title": layer["path"], "level": 2} for layer in pair["layers"]]
        toc.append({"id": "provenance", "title": "Provenance", "level": 1})
        return toc

    # -- data access ----------------------------------------------------------------------------
    def _labels(self, dataset: str) -> np.ndarray | None:
        group = self.store.file[f"datasets/{h5_name(dataset)}"]
        return group["labels"][()] if "labels" in group else None

    def _class_name(self, dataset: dict[str, Any], labels: np.ndarray | None, row: int) -> str:
        if labels is None:
            return ""
        names = dataset["class_names"] or []
        label = int(labels[row])
        return names[label] if label < len(names) else str(label)

    def _input_images(self, dataset: str, model: str | None, rows: np.ndarray) -> list[np.ndarray] | None:
        """Stored inputs at these sample rows as displayable images, or None (not stored, or not images)."""
        inputs = self.store.file.get(f"datasets/{h5_name(dataset)}/inputs")
        if inputs is None or not len(rows):
            return None
        names = list(inputs)
        if model is not None:
            binding = self.store.json_attr(pair_key(model, dataset), "binding")
            names = [h5_name(array) for array in binding.values() if h5_name(array) in inputs] or names
        for name in names:
            samples = _read_rows(inputs[name], np.asarray(rows))
            images = [figures.displayable(sample) for sample in samples]
            if all(image is not None for image in images):
                return images
        return None


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
    if analysis.get("probe"):
        probe = analysis["probe"]
        columns.append(("probe accuracy (95 % interval)", lambda i: "n/a" if not probe[i] else
                        f"{probe[i]['accuracy']:.3f} ({probe[i]['low']:.2f}–{probe[i]['high']:.2f})"))
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
            ("PCA 90 % / 99 %", lambda i: f"{geometry[i]['pca_90']} / {geometry[i]['pca_99']}"),
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


def _plus_minus(value: float | None, spread: float | None) -> str:
    """'8.1 ± 0.2', or just the value when there is no spread (a single estimate)."""
    if spread is None or not math.isfinite(spread) or spread == 0:
        return number(value)
    return f"{number(value)} ± {number(spread)}"


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


def _read_rows(dataset: Any, rows: np.ndarray) -> np.ndarray:
    """Rows of an HDF5 dataset in the given order (h5py wants increasing indices)."""
    unique, inverse = np.unique(rows, return_inverse=True)
    return dataset[unique][inverse]


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
    return [
        ("units × positions", f"{layer['units']:,} × {layer['positions']:,}"),
        ("values", f"{stats['values']:,}"),
        ("mean ± std", f"{number(stats['mean'])} ± {number(stats['std'])}"),
        ("min … max", f"{number(stats['min'])} … {number(stats['max'])}"),
        ("exact zeros", percent(stats["zero_fraction"])),
        ("NaN/Inf", f"{stats['nonfinite_count']:,} ({percent(stats['nonfinite_fraction'])})"),
        ("saturated", percent(saturation) if saturation is not None else "n/a (unbounded activation)"),
        ("dead units", f"{stats['dead_units']} of {layer['units']} ({percent(stats['dead_fraction'])})"
         + (f": #{', #'.join(map(str, dead[:16]))}{' …' if len(dead) > 16 else ''}" if dead else "")),
    ]


def number(value: float | None) -> str:
    """3 significant digits; 'n/a' for a missing (non-finite) number."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if value == 0:
        return "0"
    return f"{value:.3g}" if 1e-3 <= abs(value) < 1e5 else f"{value:.2e}"


def percent(fraction: float | None) -> str:
    """A fraction as a percentage with sensible precision ('0 %', '0.012 %', '12.5 %', '100 %')."""
    if fraction is None or not math.isfinite(fraction):
        return "n/a"
    value = 100 * fraction
    if value == 0 or value == 100:
        return f"{value:.0f} %"
    return f"{value:.3g} %" if value < 1 else f"{value:.1f} %"
