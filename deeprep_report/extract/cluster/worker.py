"""What a Dask worker runs: one shard of one pair, through the same ``extract_pair`` as one process.

A worker process keeps, per run, the models and datasets it has opened and each
pair's compiled forward pass, so a model is loaded and traced once per worker,
not once per shard. Before a model or dataset is used its fingerprint is
compared with the coordinator's: a worker that sees other files (another
mount, a changed factory) fails the run instead of mixing two models' numbers.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from deeprep_report.errors import ClusterError
from deeprep_report.extract.cluster.shards import ShardTask, shard_store_settings

_lock = threading.Lock()  # one shard at a time per process: TensorFlow and the numba kernels use every core given
_cache: dict[str, Any] = {"run": None, "loaded": {}, "models": {}, "datasets": {}, "forwards": {}}


def run_shard(task: ShardTask) -> dict[str, Any]:
    """Extract the shard into ``task.path`` (written under a temporary name, renamed when complete); returns
    where and how long it ran."""
    with _lock:
        started = time.time()
        first_batch = _run(task)
        return {"path": task.path, "worker": _address(), "pid": os.getpid(), "started": started,
                "finished": time.time(), "first_batch_seconds": first_batch}


def _run(task: ShardTask) -> float:
    folder = Path(task.path).parent
    if not folder.is_dir():  # before any work: the likeliest set-up mistake on a real cluster
        raise ClusterError(f"Dask worker {_address()} cannot see the run's shard folder {folder}: the run folder "
                           "must be on a file system every worker mounts at the same path (docs/cluster.md)")
    from deeprep_report.tf_runtime import import_tensorflow

    import_tensorflow()  # first: the modules below import Keras, whose start-up notices would reach stderr
    from deeprep_report.extract import device
    from deeprep_report.extract.forward import compile_forward, extract_pair
    from deeprep_report.extract.plan import DatasetEntry, Pair
    from deeprep_report.store import StoreWriter, h5_name, pair_key

    _start_run(task.run_id)
    pipeline = task.config.pipeline
    model = _model(task)
    spec = pipeline.datasets[task.data_index]
    data = DatasetEntry(task.data_index, spec.name, _dataset(task), task.rows, task.batch_size,
                        task.data_fingerprint)
    pair = Pair(model, data, task.binding, task.tokens)
    reduce = task.reduce  # resolved once for the run (executor.reduce_mode): every shard of a pair alike
    key = (task.model_name, spec.name, reduce)
    if key not in _cache["forwards"]:
        plan = (device.DevicePlan(pair, pipeline.stats.histogram_bins, pipeline.stats.saturation_tol,
                                  pipeline.analysis.view) if reduce == "device" else None)
        _cache["forwards"][key] = compile_forward(model.graph, [info.path for info in model.selected], pair, plan)
    final = Path(task.path)
    partial = final.with_name(f"{final.stem}.tmp-{os.getpid()}-{secrets.token_hex(3)}.h5")
    settings = shard_store_settings(pipeline.store, task.start, len(task.rows))
    try:
        with StoreWriter(partial, settings) as store:
            store.set_attrs(f"datasets/{h5_name(spec.name)}", {"nonfinite_inputs": 0})
            stored = {(spec.name, array) for array in task.binding.values() if array not in task.new_inputs}
            extract_pair(pair, store, pipeline.stats, pipeline.analysis.view, pipeline.analysis.tokens, stored,
                         bar=False, forward=_cache["forwards"][key])
            first = float(store.file[pair_key(task.model_name, spec.name)].attrs["first_batch_seconds"])
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return first


def release() -> None:
    """Forget the last run's models, datasets and compiled functions (run on every worker at the end of a run on
    a shared cluster, so that nothing holds memory or files until the next run)."""
    if _cache["run"] is not None:
        with _lock:
            _forget(None)


def resolve_on_worker() -> str:
    """``extract.reduce: auto`` as this worker resolves it (TensorFlow imported quietly first)."""
    from deeprep_report.extract.device import resolve
    from deeprep_report.tf_runtime import import_tensorflow

    import_tensorflow()
    return resolve("auto")


def _start_run(run_id: str) -> None:
    """A new run forgets the last one's models and datasets, and Keras's layer numbering starts again as in
    a new process (a factory's unnamed layers are numbered per process)."""
    if _cache["run"] != run_id:
        _forget(run_id)


def _forget(run_id: str | None) -> None:
    """Drop the cached models, datasets and compiled functions, and Keras's state; ``run_id`` is the next run."""
    import keras

    for part in ("loaded", "models", "datasets", "forwards"):
        _cache[part].clear()
    keras.backend.clear_session()
    _cache["run"] = run_id


def _loaded(task: ShardTask, index: int) -> Any:
    """``models[index]`` as the plan loads it; the models before it are loaded first, in the plan's order, so
    that automatic layer names come out as in the coordinator."""
    from deeprep_report.sources.models import load_model

    for earlier in range(len(_cache["loaded"]), index + 1):
        _cache["loaded"][earlier] = load_model(task.config, earlier)
    return _cache["loaded"][index]


def _model(task: ShardTask) -> Any:
    """The pair's model entry: the model, its weights from the coordinator's file when it has one (a random
    twin, a model built in code), checked against the coordinator's fingerprint."""
    if task.model_name in _cache["models"]:
        return _cache["models"][task.model_name]
    from deeprep_report.extract.graph import LayerGraph
    from deeprep_report.extract.plan import ModelEntry
    from deeprep_report.sources.models import LoadedModel, weights_sha256

    loaded = _loaded(task, task.model_index)
    if task.weights is not None and task.model_name != loaded.name:  # a random twin: its own weights
        import keras

        clone = keras.models.clone_model(loaded.model)
        clone.load_weights(task.weights)
        loaded = LoadedModel(task.model_name, clone, "", weights_sha256(clone), None)
    elif task.weights is not None:  # built in code: the coordinator's initialisation (coordinator._built_in_code)
        loaded.model.load_weights(task.weights)
        loaded = dataclasses.replace(loaded, fingerprint=weights_sha256(loaded.model))
        _cache["loaded"][task.model_index] = loaded
    where = f"models[{task.model_index}]"
    if loaded.fingerprint != task.model_fingerprint:
        raise task.config.error(where, f"model {task.model_name!r} on Dask worker {_address()} is not the "
                                f"coordinator's (fingerprint {loaded.fingerprint[:19]} vs "
                                f"{task.model_fingerprint[:19]}): every worker must read the same model files, and "
                                "a factory must build the same model (name its layers: Keras numbers unnamed ones "
                                "per process)")
    graph = LayerGraph(loaded.model, task.model_name)
    selected, skipped = graph.select(list(task.layers))
    entry = _cache["models"][task.model_name] = ModelEntry(task.model_index, loaded, graph, selected, skipped,
                                                           preprocess=task.preprocess)
    return entry


def _dataset(task: ShardTask) -> Any:
    """The dataset, opened once per worker and run; refused if its files differ from the coordinator's."""
    if task.data_index in _cache["datasets"]:
        return _cache["datasets"][task.data_index]
    from deeprep_report.sources.loaders import open_dataset

    dataset = open_dataset(task.config, task.data_index)
    fingerprint = dataset.fingerprint()
    if fingerprint != task.data_fingerprint:
        name = task.config.pipeline.datasets[task.data_index].name
        raise task.config.error(f"datasets[{task.data_index}]", f"dataset {name!r} on Dask worker {_address()} is "
                                f"not the coordinator's (fingerprint {fingerprint[:19]} vs "
                                f"{task.data_fingerprint[:19]}): every worker must read the same data files")
    _cache["datasets"][task.data_index] = dataset
    return dataset


def _address() -> str:
    """This worker's address (``tcp://…``), or the process id outside a Dask worker."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"

