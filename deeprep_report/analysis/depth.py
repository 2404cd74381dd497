"""The depth analysis of every stored pair: probes, CKA, geometry and class structure, layer by layer.

Runs on the pooled activations in the store (N × units per layer; the input
itself, flattened, as layer 0 when the inputs are stored), writes arrays into
``pairs/<model>/<dataset>/analysis`` and per-unit selectivity into each layer's
``stats``, and returns the numbers for ``summary.json``. A model's random
baseline (``analysis.random_baseline``) is analysed the same way and linked to
its trained model: per-layer CKA between the two, and the sentences of the
interpretation that compare them.

Identical feature arrays (the same input for a model and its random twin, a
Flatten and an inference-mode Dropout) are analysed once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any, Callable

import numpy as np

from deeprep_report.analysis import cka, classes, geometry, interpret, probes
from deeprep_report.config import AnalysisSection
from deeprep_report.store import StoreReader, h5_name, pair_key, to_json_value

log = logging.getLogger("deeprep")
INPUT = "input"
#: Fewer usable samples than this and there is nothing meaningful to estimate.
MIN_SAMPLES = 10


def analyze_pairs(store: StoreReader, settings: AnalysisSection, seed: int) -> dict[tuple[str, str], dict[str, Any]]:
    """Analyse every pair of the store; ``{(model, dataset): analysis}`` for summary.json."""
    memo: dict[tuple, Any] = {}
    results = {pair: _analyze_pair(store, *pair, settings, seed, memo) for pair in store.pairs()}
    for (model, dataset), result in results.items():
        twin = _baseline_model(store, model)
        if twin is not None and (twin, dataset) in results and result["samples"] >= MIN_SAMPLES:
            started = time.perf_counter()
            result["baseline"] = {"model": twin, "cka_with_trained": _twin_cka(store, model, twin, dataset, result,
                                                                                 settings)}
            result["seconds"]["baseline_cka"] = time.perf_counter() - started
        twin_result = results.get((twin, dataset)) if twin is not None else None
        result["interpretation"] = interpret.paragraph(result, twin_result)
        result["transfer"] = transfer_profile(results, model, dataset, settings.transfer.dataset)
        _write(store, model, dataset, result)
    return results


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


def cross_model(store: StoreReader, settings: AnalysisSection) -> list[dict[str, Any]]:
    """Linear CKA of every layer of one audited model with every layer of another, per dataset they share.

    Random-weights twins are left out (their per-layer CKA with the trained model is in the pair's analysis).
    """
    models = [m for m in store.json_attr("/", "model_names") if not store.attrs(f"models/{h5_name(m)}").get("baseline_of")]
    pairs = set(store.pairs())
    out = []
    for dataset in store.json_attr("/", "dataset_names"):
        present = [m for m in models if (m, dataset) in pairs]
        for index, first in enumerate(present):
            for second in present[index + 1:]:
                started = time.perf_counter()
                names_a, xs = features_of(store, first, dataset, include_input=False)
                names_b, ys = features_of(store, second, dataset, include_input=False)
                rows = _finite_rows(xs) & _finite_rows(ys)
                if rows.sum() < MIN_SAMPLES:
                    continue
                xs, ys = [x[rows] for x in xs], [y[rows] for y in ys]
                if rows.sum() > settings.cka.minibatch_above:
                    estimator = "debiased"
                    matrix = cka.minibatch_cka_matrix([*xs, *ys], settings.cka.batch_size)[: len(xs), len(xs):]
                else:
                    widest = max(x.shape[1] for x in [*xs, *ys])
                    estimator = cka.choose_estimator(settings.cka.estimator, int(rows.sum()), widest)
                    matrix = cka.cross_cka_matrix(xs, ys, debiased=estimator == "debiased")
                out.append({"dataset": dataset, "models": [first, second], "layers": [names_a, names_b],
                            "samples": int(rows.sum()), "estimator": estimator, "matrix": matrix.tolist(),
                            "seconds": time.perf_counter() - started})
    return out


def _baseline_model(store: StoreReader, model: str) -> str | None:
    """The random twin of a trained model, if the run has one."""
    for other in store.json_attr("/", "model_names"):
        if store.attrs(f"models/{h5_name(other)}").get("baseline_of") == model:
            return other
    return None


def _analyze_pair(store: StoreReader, model: str, dataset: str, settings: AnalysisSection, seed: int,
                  memo: dict[tuple, Any]) -> dict[str, Any]:
    names, features = features_of(store, model, dataset, settings.include_input)
    labels = _labels(store, dataset)
    finite = _finite_rows(features)
    result: dict[str, Any] = {"layers": names, "samples": int(finite.sum()),
                              "excluded_samples": int((~finite).sum()), "probe": None, "cka": None,
                              "geometry": None, "classes": None, "baseline": None, "notes": [], "seconds": {}}
    if not finite.all():
        features = [x[finite] for x in features]
        labels = labels[finite] if labels is not None else None
        result["notes"].append(f"{int((~finite).sum())} samples with NaN/Inf in some layer are left out")
    if finite.sum() < MIN_SAMPLES:
        result["notes"].append(f"only {int(finite.sum())} usable samples: no depth analysis")
        return result
    if labels is not None and (len(np.unique(labels)) < 2 or np.unique(labels, return_counts=True)[1].min() < 2):
        labels = None
        result["notes"].append("fewer than two samples of some class: no probes or class structure")
    keys = [_fingerprint(x) for x in features]
    train = test = None
    if labels is not None:
        try:
            train, test = probes.split(labels, settings.probes.test_fraction, seed)
        except ValueError as exc:  # too few samples per class for a stratified split
            labels = None
            result["notes"].append(f"no train/test split ({exc}): no probes or class structure")

    def timed(family: str, compute: Callable[[], Any]) -> Any:
        """Run one family; a failure is a note (with the traceback in the log), never a failed run."""
        started = time.perf_counter()
        try:
            return compute()
        except Exception as exc:  # noqa: BLE001 - degenerate data must not take the run down
            log.warning("depth analysis of %s × %s: %s failed: %s", model, dataset, family, exc, exc_info=True)
            result["notes"].append(f"{family} failed: {type(exc).__name__}: {exc}")
            return None
        finally:
            result["seconds"][family] = time.perf_counter() - started

    if settings.probes.enabled and labels is not None:
        p = settings.probes
        result["probe"] = timed("probes", lambda: [
            _memo(memo, ("probe", key, seed), lambda x=x: probes.linear_probe(
                x, labels, train, test, cs=p.cs, folds=p.folds, max_dims=p.max_dims, bootstrap=p.bootstrap,
                seed=seed).as_dict()) for x, key in zip(features, keys)])
    if settings.cka.enabled:
        result["cka"] = timed("cka", lambda: _cka(features, settings, seed))
    if settings.geometry.enabled:
        g = settings.geometry
        result["geometry"] = timed("geometry", lambda: [
            _memo(memo, ("geometry", key, seed), lambda x=x: _geometry(x, g.subsample, g.repeats, g.discard, seed))
            for x, key in zip(features, keys)])
    if settings.classes.enabled and labels is not None:
        result["classes"] = timed("classes", lambda: _classes(store, model, dataset, names, features, keys, labels,
                                                              train, test, settings, seed, memo))
        result["_projection_labels"] = labels[: settings.classes.projection_samples]  # stored, not summarised
    return result


def features_of(store: StoreReader, model: str, dataset: str, include_input: bool) -> tuple[list[str], list[np.ndarray]]:
    """Layer names and pooled features (N × units) in depth order, the flattened inputs first when stored."""
    names, features = [], []
    if include_input:
        inputs = _inputs(store, model, dataset)
        if inputs is not None:
            names.append(INPUT)
            features.append(inputs)
    for path in store.layers(model, dataset):
        names.append(path)
        features.append(store.layer_group(model, dataset, path)["pooled"][()].astype(np.float64))
    return names, features


def _finite_rows(features: list[np.ndarray]) -> np.ndarray:
    """Samples whose features are finite in every layer (the same rows must enter every metric)."""
    keep = np.ones(features[0].shape[0], dtype=bool)
    for x in features:
        keep &= np.isfinite(x).all(axis=1)
    return keep


def _inputs(store: StoreReader, model: str, dataset: str) -> np.ndarray | None:
    group = store.file.get(f"datasets/{h5_name(dataset)}/inputs")
    if group is None:
        return None
    binding = store.json_attr(pair_key(model, dataset), "binding")
    arrays = [group[h5_name(array)] for array in binding.values() if h5_name(array) in group]
    if not arrays:
        return None
    return np.concatenate([a[()].reshape(a.shape[0], -1).astype(np.float64) for a in arrays], axis=1)


def _labels(store: StoreReader, dataset: str) -> np.ndarray | None:
    group = store.file[f"datasets/{h5_name(dataset)}"]
    if "labels" not in group:
        return None
    labels = group["labels"][()]
    return labels if len(np.unique(labels)) >= 2 else None


def _cka(features: list[np.ndarray], settings: AnalysisSection, seed: int) -> dict[str, Any]:
    samples = features[0].shape[0]
    widest = max(x.shape[1] for x in features)
    if samples > settings.cka.minibatch_above:
        matrix = cka.minibatch_cka_matrix(features, settings.cka.batch_size, seed)
        return {"estimator": "debiased", "method": "minibatch", "matrix": matrix.tolist()}
    estimator = cka.choose_estimator(settings.cka.estimator, samples, widest)
    matrix = cka.cka_matrix(features, debiased=estimator == "debiased")
    return {"estimator": estimator, "method": "exact", "matrix": matrix.tolist()}


def _twin_cka(store: StoreReader, model: str, twin: str, dataset: str, result: dict[str, Any],
              settings: AnalysisSection) -> list[float | None]:
    """Per layer, linear CKA between the trained layer and the same layer with random weights."""
    names, trained = features_of(store, model, dataset, settings.include_input)
    twin_names, random = features_of(store, twin, dataset, settings.include_input)
    rows = _finite_rows(trained) & _finite_rows(random)
    trained, random = [x[rows] for x in trained], [y[rows] for y in random]
    by_name = dict(zip(twin_names, random))
    estimator = (result.get("cka") or {}).get("estimator", "debiased")
    return [None if by_name.get(name) is None else
            cka.paired_cka(x, by_name[name], estimator, settings.cka.minibatch_above, settings.cka.batch_size)
            for name, x in zip(names, trained)]


def _geometry(x: np.ndarray, subsample: int, repeats: int, discard: float, seed: int) -> dict[str, Any]:
    dimension, spread = geometry.twonn_repeated(x, subsample, repeats, discard, seed)
    singular = geometry.spectrum(x)
    return {"intrinsic_dimension": dimension, "intrinsic_dimension_std": spread,
            "effective_rank": geometry.effective_rank(singular),
            "participation_ratio": geometry.participation_ratio(singular),
            "pca_90": geometry.components_for(singular, 0.90), "pca_99": geometry.components_for(singular, 0.99)}


def _classes(store: StoreReader, model: str, dataset: str, names: list[str], features: list[np.ndarray],
             keys: list[str], labels: np.ndarray, train: np.ndarray, test: np.ndarray, settings: AnalysisSection,
             seed: int, memo: dict[tuple, Any]) -> list[dict[str, Any]]:
    c = settings.classes
    rows = np.arange(min(c.projection_samples, len(labels)))
    out = []
    for name, x, key in zip(names, features, keys):
        def compute(x: np.ndarray = x) -> dict[str, Any]:
            reduced = probes.reduce(x, np.arange(len(x)), settings.probes.max_dims, seed)
            return {
                "ncc_accuracy": classes.nearest_centroid_accuracy(reduced, labels, train, test),
                "silhouette": classes.silhouette(reduced, labels, c.silhouette_samples, seed),
                "projection": classes.projection_2d(reduced[rows], c.projection, seed).astype(np.float32),
            }

        metrics = dict(_memo(memo, ("classes", key, seed, c.projection), compute))
        if name != INPUT:
            index = classes.selectivity(x, labels)
            store.write_stats(model, dataset, name, {"selectivity": index})
            finite = index[np.isfinite(index)]
            metrics["selectivity"] = {
                "units": int(finite.size), "mean": float(finite.mean()) if finite.size else None,
                "median": float(np.median(finite)) if finite.size else None,
                "p90": float(np.quantile(finite, 0.9)) if finite.size else None}
        else:
            metrics["selectivity"] = None
        out.append(metrics)
    return out


def _write(store: StoreReader, model: str, dataset: str, result: dict[str, Any]) -> None:
    """Arrays into ``pairs/<model>/<dataset>/analysis``; projections leave the summary (they are per sample)."""
    group_name = f"{pair_key(model, dataset)}/analysis"
    if group_name in store.file:
        del store.file[group_name]
    group = store.file.create_group(group_name)
    group.attrs["layers"] = json.dumps(result["layers"])
    if result["cka"]:
        group.create_dataset("cka", data=np.asarray(result["cka"]["matrix"], dtype=np.float64))
        group.attrs["cka_estimator"] = result["cka"]["estimator"]
        group.attrs["cka_method"] = result["cka"]["method"]
    if result["classes"]:
        projections = [metrics.pop("projection") for metrics in result["classes"]]
        group.create_dataset("projections", data=np.stack(projections))
        group.create_dataset("projection_labels", data=result.pop("_projection_labels"))
    group.attrs["metrics"] = json.dumps(_plain(result))


def _plain(result: dict[str, Any]) -> Any:
    return to_json_value({k: v for k, v in result.items()})


def _memo(memo: dict[tuple, Any], key: tuple, compute: Callable[[], Any]) -> Any:
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _fingerprint(x: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(x).view(np.uint8)).hexdigest() + str(x.shape)
