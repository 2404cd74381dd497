"""The ``extract`` stage: every dataset's rows, every model's description, then every pair's layers, into the store.

A pair whose cache key matches a pair of a finished run in the output folder is
copied from that run's store (:mod:`deeprep_report.extract.cache`); the others
are extracted by :func:`deeprep_report.extract.forward.extract_pair`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from deeprep_report import __version__
from deeprep_report.extract import cache
from deeprep_report.extract.device import resolve
from deeprep_report.extract.forward import extract_pair, inputs_to_store
from deeprep_report.extract.plan import DatasetEntry, ModelEntry, Pair, Plan
from deeprep_report.extract.weights import weight_rows
from deeprep_report.store import StoreWriter, h5_name, pair_key

log = logging.getLogger("deeprep")


def extract(plan: Plan, store: StoreWriter, bar: bool | None = None, reuse_from: Path | None = None,
            run_id: str = "") -> None:
    """Write every dataset's rows and labels, every model's description, then every pair's layers.

    With ``reuse_from`` (the output folder), a pair whose cache key matches a pair of a finished run there
    is copied from that run's store instead of extracted (:mod:`deeprep_report.extract.cache`). With
    ``run.executor.kind: dask`` the other pairs are extracted as shards on Dask (:mod:`deeprep_report.extract.cluster`).
    """
    for data in plan.datasets:
        _write_dataset(store, plan, data)
    for model in plan.models:
        _write_model(store, model)
    pipeline = plan.config.pipeline
    on_dask = pipeline.run.executor.kind == "dask"
    stored_inputs: set[tuple[str, str]] = set()
    reusable = cache.stored_pairs(reuse_from) if reuse_from is not None else {}
    todo: list[tuple[Pair, list[str]]] = []  # pairs for Dask, each with the dataset arrays it stores
    for pair in plan.pairs:
        key = pair_cache_key(pair, pipeline)
        found = reusable.get(key)
        if found is not None:
            _reuse_pair(pair, store, found, stored_inputs)
        elif on_dask:  # decided in pair order, as one process does, so the same pair stores each input
            arrays = inputs_to_store(pair, stored_inputs)
            stored_inputs.update((pair.data.name, a) for a in arrays)
            todo.append((pair, arrays))
        else:
            extract_pair(pair, store, pipeline.stats, pipeline.analysis.view, pipeline.analysis.tokens, stored_inputs,
                         bar, reduce=resolve(pipeline.extract.reduce))
        store.set_attrs(pair_key(pair.model.name, pair.data.name), {"cache_key": key, "unscaled_inputs": pair.unscaled})
    if todo:
        from deeprep_report.extract.cluster.coordinator import extract_on_dask

        extract_on_dask(plan, store, todo, run_id, pipeline.extract.reduce, bar)
    store.set_attrs("/", {
        "dataset_names": [data.name for data in plan.datasets], "model_names": [m.name for m in plan.models],
        "pairs": [[pair.model.name, pair.data.name] for pair in plan.pairs],
    })


def pair_cache_key(pair: Pair, pipeline: Any) -> str:
    """What the pair's stored activations depend on (see :func:`deeprep_report.extract.cache.cache_key`)."""
    settings = {"store": pipeline.store.model_dump(mode="json"), "stats": pipeline.stats.model_dump(mode="json"),
                "view": pipeline.analysis.view.model_dump(mode="json"),
                "tokens": pipeline.analysis.tokens.model_dump(mode="json"), "tool_version": __version__}
    if pair.tokens is not None:  # the mask and token sample (data settings, seed) shape every stored array
        settings["tokens_digest"] = pair.tokens.digest()
    # what turns the stored data into the model's input: the data fingerprint is of the files as stored
    spec = pipeline.datasets[pair.data.index]
    settings["inputs"] = spec.model_dump(mode="json", include={"rescale", "normalize", "image_size", "color_mode"})
    settings["preprocess"] = pair.model.preprocess
    return cache.cache_key(pair.model.loaded.fingerprint, pair.data.fingerprint, pair.data.rows,
                           [info.path for info in pair.model.selected], pair.binding, settings)


def _reuse_pair(pair: Pair, store: StoreWriter, found: tuple[Path, str], stored_inputs: set[tuple[str, str]]) -> None:
    source, group = found
    model, data = pair.model.name, pair.data.name
    log.info("%s × %s: activations reused from %s (same model, data, rows and settings; --force re-extracts)",
             model, data, source.parent)
    cache.copy_pair(source, group, store.file, pair_key(model, data))
    arrays = [a for a in sorted(set(pair.binding.values())) if (data, a) not in stored_inputs]
    if arrays:
        key = f"datasets/{h5_name(data)}"
        nonfinite = cache.copy_inputs(source, key, store.file, [h5_name(a) for a in arrays])
        store.file[key].attrs["nonfinite_inputs"] = int(store.file[key].attrs["nonfinite_inputs"]) + nonfinite
        stored_inputs.update((data, a) for a in arrays)
    store.set_attrs(pair_key(model, data), {"model": model, "dataset": data, "reused_from": str(source.parent)})


def _write_model(store: StoreWriter, model: ModelEntry) -> None:
    loaded = model.loaded
    selected = {info.path for info in model.selected}
    rows, sketches = weight_rows(model.graph)
    for path, sketch in sketches.items():
        store.write_array(f"models/{h5_name(model.name)}/weight_sketches/{h5_name(path)}", sketch.astype(np.float32))
    if any(row["nonfinite"] for row in rows):
        bad = next(row for row in rows if row["nonfinite"])
        log.warning("model %s: %d NaN/Inf weights (first in layer %s)", model.name,
                    sum(row["nonfinite"] for row in rows), bad["path"])
    store.set_attrs(f"models/{h5_name(model.name)}", {
        "name": model.name, "source": loaded.source, "fingerprint": loaded.fingerprint,
        "class_name": type(loaded.model).__name__, "params": int(loaded.model.count_params()),
        "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": str(t.dtype)} for t in _flat(model.graph.inputs)],
        "architecture": [{**info.describe(), "selected": info.path in selected} for info in model.graph.layers],
        "skipped": [{"path": info.path, "reason": info.reason} for info in model.skipped],
        "baseline_of": model.baseline_of or "", "weights": rows,
    })


def _write_dataset(store: StoreWriter, plan: Plan, data: DatasetEntry) -> None:
    key = f"datasets/{h5_name(data.name)}"
    dataset = data.dataset
    store.write_array(f"{key}/index", data.rows)
    if dataset.labels is not None:
        store.write_array(f"{key}/labels", dataset.labels[data.rows])
    spec = plan.config.pipeline.datasets[data.index]
    if dataset.text is not None:
        store.write_text(key, dataset.text, data.rows)
    store.set_attrs(key, {
        "name": data.name, "source": dataset.source, "fingerprint": data.fingerprint, "n_rows": dataset.n_rows,
        "n_samples": len(data.rows), "limit": spec.limit, "shuffle": spec.shuffle, "batch_size": data.batch_size,
        "class_names": dataset.class_names, "has_labels": dataset.labels is not None,
        "arrays": {name: {"shape": list(info.shape), "dtype": str(info.dtype)} for name, info in dataset.arrays.items()},
        "nonfinite_inputs": 0,
    })


def _flat(structure: Any) -> list[Any]:
    import keras

    return keras.tree.flatten(structure)
