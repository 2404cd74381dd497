"""The ``analyze`` stage: turn the stored accumulators into statistics, in the store and in the summary.

Reads only ``activations.h5`` (no TensorFlow, no model), so it can be re-run on
any finished store. Per-unit statistics go to ``stats/`` of each layer group;
per-layer numbers go to the summary (``docs/summary.md`` documents each).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from deeprep_report.analysis.depth import analyze_pairs
from deeprep_report.config import AnalysisSection
from deeprep_report.stats import unit_stats
from deeprep_report.store import StoreReader, h5_name, pair_key

log = logging.getLogger("deeprep")


def analyze(store_path: Path, settings: AnalysisSection, seed: int, bar: bool | None = None) -> dict[str, Any]:
    """Write per-unit ``stats`` (and the depth analysis) into the store; return the summary's datasets,
    models and pairs."""
    with StoreReader(store_path, "r+") as store:
        root = store.attrs()
        pairs = [_pair(store, model, dataset) for model, dataset in store.pairs()]
        crossed: list[dict[str, Any]] = []
        if settings.enabled:
            started = time.perf_counter()
            results, crossed = analyze_pairs(store, settings, seed, bar)
            for pair in pairs:
                pair["analysis"] = results[(pair["model"], pair["dataset"])]
            log.info("depth analysis in %.1f s", time.perf_counter() - started)
        return {
            "datasets": [_dataset(store, name) for name in _names(store, "datasets")],
            "models": [_model(store, name) for name in _names(store, "models")],
            "pairs": pairs,
            "cross_model": crossed,
            "provenance": {key: store.json_attr("/", key) if key in ("packages", "platform") else root.get(key)
                           for key in ("tool_version", "created", "finished", "packages", "platform", "seed")},
        }


def _names(store: StoreReader, section: str) -> list[str]:
    return list(store.json_attr("/", f"{section[:-1]}_names"))


def _dataset(store: StoreReader, name: str) -> dict[str, Any]:
    key = f"datasets/{h5_name(name)}"
    attrs = store.attrs(key)
    class_names = store.json_attr(key, "class_names")
    counts = None
    if class_names is not None and "labels" in store.file[key]:
        labels = store.file[key]["labels"][()]
        counts = dict(zip(class_names, np.bincount(labels, minlength=len(class_names)).tolist()))
    return {
        "name": name, "source": attrs["source"], "fingerprint": attrs["fingerprint"],
        "n_rows": attrs["n_rows"], "n_samples": attrs["n_samples"], "shuffle": bool(attrs["shuffle"]),
        "batch_size": attrs["batch_size"], "arrays": store.json_attr(key, "arrays"),
        "has_labels": bool(attrs["has_labels"]), "class_names": class_names, "class_counts": counts,
        "nonfinite_inputs": attrs["nonfinite_inputs"],
    }


def _model(store: StoreReader, name: str) -> dict[str, Any]:
    key = f"models/{h5_name(name)}"
    attrs = store.attrs(key)
    return {
        "name": name, "source": attrs["source"], "fingerprint": attrs["fingerprint"],
        "class_name": attrs["class_name"], "params": attrs["params"], "inputs": store.json_attr(key, "inputs"),
        "layers": store.json_attr(key, "architecture"), "skipped_layers": store.json_attr(key, "skipped"),
        "baseline_of": attrs.get("baseline_of") or None,
        "weights": store.json_attr(key, "weights") if "weights" in store.file[key].attrs else None,
    }


def _pair(store: StoreReader, model: str, dataset: str) -> dict[str, Any]:
    attrs = store.attrs(pair_key(model, dataset))
    return {
        "model": model, "dataset": dataset, "n_samples": attrs["n_samples"],
        "seconds": attrs["seconds"], "samples_per_second": attrs["samples_per_second"],
        "layers": [_layer(store, model, dataset, path) for path in store.layers(model, dataset)],
        "analysis": None, "reused_from": attrs.get("reused_from") or None, "dask": _dask(attrs),
        "tokens": _tokens(store, model, dataset),
        "unscaled_inputs": json.loads(attrs.get("unscaled_inputs", "[]")),
    }


def _dask(attrs: Any) -> dict[str, Any] | None:
    """How a pair was extracted on Dask (its shards' record, docs/store.md), or None for one process."""
    if "shards" not in attrs:
        return None
    return {"shards": int(attrs["shards"]), "workers": len(json.loads(attrs["workers"])),
            "worker_seconds": float(attrs["worker_seconds"]), "merge_seconds": float(attrs["merge_seconds"])}


def _tokens(store: StoreReader, model: str, dataset: str) -> dict[str, Any] | None:
    tokens = store.tokens(model, dataset)
    if tokens is None:
        return None
    return {"array": tokens["array"], "length": tokens["length"], "real_fraction": float(tokens["mask"].mean()),
            "mask_source": tokens["source"], "sampled": tokens["sampled"]}


def _layer(store: StoreReader, model: str, dataset: str, path: str) -> dict[str, Any]:
    group = store.layer_group(model, dataset, path)
    attrs = store.attrs(group.name)
    activation = attrs["activation"] or None
    bounded = store.json_attr(group.name, "saturation_thresholds") is not None
    moments = store.moments(model, dataset, path)
    per_unit = unit_stats(moments, activation, bounded)
    store.write_stats(model, dataset, path, per_unit)
    layer = unit_stats(moments.total(), activation, bounded)
    dead = np.flatnonzero(per_unit["dead"])
    histogram = store.histogram(model, dataset, path)
    return {
        "path": path, "class_name": attrs["class_name"], "kind": attrs["kind"], "activation": activation,
        "output_shape": store.json_attr(group.name, "output_shape"), "units": attrs["units"],
        "positions": attrs["positions"], "masked": attrs.get("masked"),
        "mask_note": attrs.get("mask_source") or attrs.get("mask_note"),
        "stats": {
            **{key: float(layer[key][0]) for key in ("mean", "std", "min", "max", "zero_fraction",
                                                      "nonfinite_fraction", "saturation_fraction")},
            "values": int(moments.values.sum()), "nonfinite_count": int(moments.nonfinite.sum()),
            "dead_units": int(dead.size), "dead_fraction": float(dead.size / max(1, attrs["units"])),
        },
        "dead_unit_indices": dead.tolist(),
        "histogram": {"bin_width": histogram.width, "first_edge": float(histogram.edges[0]),
                      "counts": histogram.counts.tolist()},
    }
