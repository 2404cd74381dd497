"""The depth analysis of one pair, one layer at a time: each layer's view is read once and every family
(probes, geometry, class structure, the layer's Gram matrix for CKA) runs on it before the next is read, so
memory holds one layer's view and the CKA Gram stack, whatever the number of layers."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from deeprep_report.analysis import cka, classes, geometry, probes, tokens
from deeprep_report.analysis.features import INPUT, Layer, PairFeatures, Rows
from deeprep_report.config import AnalysisSection
from deeprep_report.progress import Progress
from deeprep_report.store import StoreReader, h5_name

log = logging.getLogger("deeprep")
#: Fewer usable samples than this and there is nothing meaningful to estimate.
MIN_SAMPLES = 10
FAMILIES = ("probes", "cka", "geometry", "classes", "tokens")


@dataclass
class PairRun:
    """What one pair's analysis leaves for the cross-pair steps: its result, its CKA Gram stack and rows."""

    result: dict[str, Any]
    stack: cka.GramStack | None = None
    rows: np.ndarray | None = None  # dataset rows of the stack's Gram matrices
    names: list[str] = field(default_factory=list)


def analyze_pair(store: StoreReader, model: str, dataset: str, settings: AnalysisSection, seed: int,
                 memo: dict[tuple, Any], bar: bool | None = None) -> PairRun:
    features = PairFeatures(store, model, dataset, settings.include_input)
    names = features.names
    result: dict[str, Any] = {
        "layers": names, "views": [_view_entry(layer) for layer in features.layers], "samples": 0,
        "excluded_samples": 0, "probe": None, "cka": None, "geometry": None, "classes": None, "baseline": None,
        "tokens": None,
        "constant": [], "notes": [], "seconds": {family: 0.0 for family in FAMILIES}}
    finite = features.finite_rows() if names else np.zeros(0, dtype=bool)
    rows = np.flatnonzero(finite)
    result["samples"], result["excluded_samples"] = int(len(rows)), int((~finite).sum())
    if result["excluded_samples"]:
        result["notes"].append(f"{result['excluded_samples']} samples with NaN/Inf in some layer are left out")
    if len(rows) < MIN_SAMPLES:
        result["notes"].append(f"only {len(rows)} usable samples: no depth analysis")
        return PairRun(result)
    labels, train, test = _labels_and_split(store, dataset, rows, settings, seed, result["notes"])
    all_rows = len(rows) == features.samples
    families = _Families(settings, seed, memo, labels, train, test, rows, result)
    stack_rows = cka.sample_rows(np.arange(len(rows)), settings.cka.samples, seed)
    estimator = cka.choose_estimator(settings.cka.estimator, len(stack_rows), settings.view.dims)
    stack = None
    if settings.cka.enabled and settings.cka.method == "subsample":
        stack = cka.GramStack(len(names), len(stack_rows), estimator == "debiased", str(store.path.parent))
    with Progress(len(names), f"analysis {model} × {dataset}", bar=bar, unit="layer") as progress:
        for layer in features.layers:
            source = Rows.of_layer(layer, rows, all_rows)
            families.layer(store, model, dataset, layer, source)
            if stack is not None:
                families.timed("cka", lambda: stack.add(source.at(stack_rows)))
            progress.advance(1)
    if settings.cka.enabled:
        result["cka"] = families.timed("cka", lambda: _cka_block(features, rows, all_rows, stack, estimator, settings,
                                                                 seed, len(stack_rows), str(store.path.parent)))
    result["tokens"] = families.timed("tokens", lambda: tokens.analyze_tokens(store, model, dataset, settings, seed,
                                                                              result["notes"]))
    families.finish()
    log.info("depth analysis %s × %s: %s", model, dataset,
             ", ".join(f"{family} {result['seconds'][family]:.1f} s" for family in FAMILIES))
    return PairRun(result, stack, rows[stack_rows], names)


class _Families:
    """Runs each enabled family on one layer's view; a failure is a note (traceback in the log), not a failed
    run, and each family's time adds up over the layers."""

    def __init__(self, settings: AnalysisSection, seed: int, memo: dict[tuple, Any], labels: np.ndarray | None,
                 train: np.ndarray | None, test: np.ndarray | None, rows: np.ndarray,
                 result: dict[str, Any]) -> None:
        self.settings, self.seed, self.memo, self.result = settings, seed, memo, result
        self.labels, self.train, self.test, self.rows = labels, train, test, rows
        self.probe: list[Any] = []
        self.geometry: list[Any] = []
        self.classes: list[Any] = []
        self.failed: set[str] = set()

    def timed(self, family: str, compute: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return compute()
        except Exception as exc:  # noqa: BLE001 - degenerate data must not take the run down
            if family not in self.failed:
                log.warning("depth analysis: %s failed: %s", family, exc, exc_info=True)
                self.result["notes"].append(f"{family} failed: {type(exc).__name__}: {exc}")
            self.failed.add(family)
            return None
        finally:
            self.result["seconds"][family] += time.perf_counter() - started

    def layer(self, store: StoreReader, model: str, dataset: str, layer: Layer, x: Rows) -> None:
        key, constant = x.scan()
        s = self.settings
        self.result["constant"].append(constant)
        if s.probes.enabled and self.labels is not None:
            self.probe.append(self.timed("probes", lambda: self._memo(("probe", key), lambda: _as_dict(
                probes.linear_probe(x, self.labels, self.train, self.test, penalties=s.probes.penalties,
                                    bootstrap=s.probes.bootstrap, seed=self.seed)))))
        if s.geometry.enabled:
            g = s.geometry
            self.geometry.append(self.timed("geometry", lambda: self._memo(("geometry", key), lambda: _geometry(
                x, g.subsample, g.repeats, g.discard, self.seed))))
        if s.classes.enabled and self.labels is not None:
            self.classes.append(self.timed("classes", lambda: self._classes(store, model, dataset, layer, x, key)))

    def _classes(self, store: StoreReader, model: str, dataset: str, layer: Layer, x: Rows,
                 key: str) -> dict[str, Any]:
        c = self.settings.classes
        shown = np.arange(min(c.projection_samples, x.n))
        sample = cka.sample_rows(np.arange(x.n), c.silhouette_samples, self.seed)
        metrics = dict(self._memo(("classes", key, c.projection), lambda: {
            "ncc_accuracy": classes.nearest_centroid_accuracy(x, self.labels, self.train, self.test),
            "silhouette": classes.silhouette(x.at(sample), self.labels[sample], len(sample), self.seed),
            "projection": classes.projection_2d(x.at(shown), c.projection, self.seed).astype(np.float32)}))
        metrics["selectivity"] = None
        if layer.name != INPUT:
            pooled = store.layer_group(model, dataset, layer.name)["pooled"]
            index = classes.selectivity_of(pooled, self.labels, self.rows)
            store.write_stats(model, dataset, layer.name, {"selectivity": index})
            finite = index[np.isfinite(index)]
            metrics["selectivity"] = {
                "units": int(finite.size), "signed_units": int(np.isnan(index).sum()),
                "mean": float(finite.mean()) if finite.size else None,
                "median": float(np.median(finite)) if finite.size else None,
                "p90": float(np.quantile(finite, 0.9)) if finite.size else None}
        return metrics

    def _memo(self, key: tuple, compute: Callable[[], Any]) -> Any:
        key = (*key, self.seed)
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]

    def finish(self) -> None:
        for family, values in (("probe", self.probe), ("geometry", self.geometry), ("classes", self.classes)):
            name = "probes" if family == "probe" else family
            if values and name not in self.failed:
                self.result[family] = values
        if self.result["classes"]:
            self.result["_projection_labels"] = self.labels[: self.settings.classes.projection_samples]


def _cka_block(features: PairFeatures, rows: np.ndarray, all_rows: bool, stack: cka.GramStack | None,
               estimator: str, settings: AnalysisSection, seed: int, samples: int, folder: str) -> dict[str, Any]:
    if stack is not None:
        terms = stack.self_terms()
        matrix = cka.similarity(stack.inner(), terms, terms)
        np.fill_diagonal(matrix, np.where(terms > 0, 1.0, np.nan))
        return {"estimator": estimator, "method": "subsample", "samples": samples, "matrix": matrix.tolist()}
    views = [Rows.of_layer(layer, rows, all_rows) for layer in features.layers]  # read a batch at a time
    matrix = cka.minibatch_cka_matrix(views, settings.cka.batch_size, seed, folder)
    return {"estimator": "debiased", "method": "minibatch", "samples": len(rows), "matrix": matrix.tolist()}


def _labels_and_split(store: StoreReader, dataset: str, rows: np.ndarray, settings: AnalysisSection, seed: int,
                      notes: list[str]) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    group = store.file[f"datasets/{h5_name(dataset)}"]
    if "labels" not in group:
        return None, None, None
    labels = group["labels"][()][rows]
    values, counts = np.unique(labels, return_counts=True)
    if len(values) < 2:
        return None, None, None
    if counts.min() < 2:
        notes.append("fewer than two samples of some class: no probes or class structure")
        return None, None, None
    try:
        train, test = probes.split(labels, settings.probes.test_fraction, seed)
    except ValueError as exc:  # too few samples per class for a stratified split
        notes.append(f"no train/test split ({exc}): no probes or class structure")
        return None, None, None
    return labels, train, test


def _geometry(x: Rows, subsample: int, repeats: int, discard: float, seed: int) -> dict[str, Any]:
    dimension, spread = geometry.twonn_repeated(x, subsample, repeats, discard, seed)
    singular = geometry.spectrum_of(x)
    return {"intrinsic_dimension": dimension, "intrinsic_dimension_std": spread,
            "effective_rank": geometry.effective_rank(singular),
            "participation_ratio": geometry.participation_ratio(singular),
            "pca_90": geometry.components_for(singular, 0.90), "pca_99": geometry.components_for(singular, 0.99)}


def _as_dict(result: probes.ProbeResult | None) -> dict[str, Any] | None:
    return result.as_dict() if result is not None else None


def _view_entry(layer: Layer) -> dict[str, Any]:
    spec = layer.spec
    return {"layer": layer.name, "basis": layer.basis, "method": spec.method if spec else "channel_means",
            "input_dims": spec.input_dims if spec else layer.dims, "dims": layer.dims}
