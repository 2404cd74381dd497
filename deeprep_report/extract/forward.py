"""One pair through its tap model: a compiled forward pass per batch, folded into the accumulators and written
to the store by a three-thread pipeline.

One compiled forward pass per batch returns every selected layer's output; each
output is folded into its layer's running statistics and written to HDF5 (pooled
for every sample, full maps for the first ``store.full_samples``), then dropped.
Peak memory is a few batches of activations, whatever the number of samples.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import numpy as np

from deeprep_report.config import StatsSection
from deeprep_report.config.sections import TokenSection, ViewSection
from deeprep_report.extract.accumulate import LayerAccumulator
from deeprep_report.extract import device, preprocess
from deeprep_report.extract.contexts import TopContexts
from deeprep_report.extract.plan import DatasetEntry, Pair
from deeprep_report.progress import Progress
from deeprep_report.sources.datasets import batches
from deeprep_report.extract.views import LayerView
from deeprep_report.stats import saturation_thresholds
from deeprep_report.stats.views import BAG, ViewSpec, bag_of_tokens, view_spec
from deeprep_report.store import StoreWriter, h5_name, pair_key, utc_now
from deeprep_report.tf_runtime import graph_safe_names

Forward = Callable[..., dict[str, Any]]
log = logging.getLogger("deeprep")


def extract_pair(pair: Pair, store: StoreWriter, stats: StatsSection, views: ViewSection, tokens: TokenSection,
                 stored_inputs: set[tuple[str, str]], bar: bool | None = None, forward: Forward | None = None,
                 reduce: str = "host") -> None:
    """Run one model over one dataset, writing its selected layers' activations, views and accumulators.

    ``forward`` is the pair's :func:`compile_forward` when the caller keeps one (a Dask worker runs several
    shards of a pair through one compiled function); by default it is compiled here, reducing each batch
    where ``reduce`` (``host`` or ``device``, as :func:`device.resolve` makes ``extract.reduce``) says; a given
    ``forward`` reduces where it was compiled to (:func:`compile_forward`'s ``reduce``).

    Three threads form a pipeline: this one runs the forward pass of batch k+1
    while a worker folds batch k into the statistics (numba, GIL released) and
    another writes to HDF5 (h5py releases the GIL). Each worker holds at most a
    batch or two, so memory stays bounded by the batch size.
    """
    model, data = pair.model, pair.data
    paths = [info.path for info in model.selected]
    if forward is None:
        plan = device.DevicePlan(pair, stats.histogram_bins, stats.saturation_tol, views) if reduce == "device" \
            else None
        forward = compile_forward(model.graph, paths, pair, plan)
    plan = forward.device_plan  # where a given forward function reduces: it was compiled for it
    state = device.DeviceState(paths) if plan is not None else None
    arrays = sorted(set(pair.binding.values()))
    new_inputs = inputs_to_store(pair, stored_inputs)
    folding = _Fold(store, pair, paths, stats, views, tokens,
                    _InputStore(store, data, new_inputs, views, pair) if new_inputs else None, plan)
    started_at = utc_now()
    with graph_safe_names(), Progress(len(data.rows), f"{model.name} × {data.name}", bar=bar) as progress:
        with _Worker(depth=2, name="write") as writes, _Worker(depth=1, name="stats") as statistics:
            for start, batch in _prefetch(data, arrays):
                inputs, guesses = _structure(model.graph.inputs, pair.binding, batch), None
                if state is None:
                    outputs = forward(inputs)
                else:  # the histogram windows are guesses: the accumulators may still be a batch behind
                    arguments, guesses = state.inputs(folding.accumulators)
                    outputs = forward(inputs, arguments)
                    state.after(outputs)
                statistics.submit(folding.fold, start, batch, outputs, writes, guesses)
                progress.advance(len(next(iter(batch.values()))))
    folding.finish()
    if pair.tokens is not None:
        store.write_tokens(pair_key(model.name, data.name), pair.tokens)
    stored_inputs.update((data.name, a) for a in new_inputs)
    store.set_attrs(pair_key(model.name, data.name), pair_attrs(
        pair, started_at, progress.elapsed, progress.steady_rate, progress.first[1] if progress.first else 0.0))


def pair_attrs(pair: Pair, started: str, seconds: float, samples_per_second: float,
               first_batch_seconds: float) -> dict[str, Any]:
    """The pair group's extraction attributes (docs/store.md), as one process and a Dask merge write them."""
    return {"model": pair.model.name, "dataset": pair.data.name, "n_samples": len(pair.data.rows),
            "layers": [info.path for info in pair.model.selected], "binding": pair.binding, "started": started,
            "seconds": seconds, "samples_per_second": samples_per_second, "first_batch_seconds": first_batch_seconds}


def inputs_to_store(pair: Pair, stored_inputs: set[tuple[str, str]]) -> list[str]:
    """The dataset arrays a pair reads that no earlier pair stored: it writes them (and their views)."""
    return [a for a in sorted(set(pair.binding.values())) if (pair.data.name, a) not in stored_inputs]


class _Fold:
    """Folds each batch's layer outputs into the accumulators and hands the results to the writer."""

    def __init__(self, store: StoreWriter, pair: Pair, paths: list[str], stats: StatsSection, views: ViewSection,
                 tokens: TokenSection, inputs: "_InputStore | None", plan: device.DevicePlan | None = None) -> None:
        self.stats = stats
        self.plan = plan  # None: every layer reduced on the host
        self.pair_name = f"{pair.model.name} × {pair.data.name}"
        self.histogram = device.histogram_function(stats.histogram_bins) if plan is not None else None
        self.view_settings = views
        self.token_settings = tokens
        self.tokens = pair.tokens
        self.contexts: dict[str, TopContexts] = {}
        self.infos = {info.path: info for info in pair.model.selected}
        self.writers = {path: store.layer(pair.model.name, pair.data.name, path, len(pair.data.rows), views.dtype)
                        for path in paths}
        self.accumulators: dict[str, LayerAccumulator] = {}
        self.views: dict[str, LayerView] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.inputs = inputs

    def fold(self, start: int, batch: dict[str, np.ndarray], outputs: dict[str, Any], writes: "_Worker",
             guesses: dict[str, tuple[int, int]] | None = None) -> None:
        if self.inputs is not None:
            writes.submit(self.inputs.write, start, batch)
        jobs = []
        size = len(next(iter(batch.values())))
        if self.tokens is not None:  # the same for every layer of the batch
            mask, content = self.tokens.batch_mask(start, size), self.tokens.batch_content(start, size)
            rows, where = self.tokens.batch_positions(start, size)
        for path, writer in self.writers.items():
            layer = self.plan.layers.get(path) if self.plan is not None else None
            if layer is not None:  # reduced in the forward pass: fold its partials
                out = outputs[path]
                accumulator = self.accumulators.get(path) or self._start(path, layer.shape)
                pooled, peak, view = device.fold_layer(out, layer, accumulator, guesses[path], self.histogram)
                stored = start < writer.full_samples and len(layer.shape) >= 2  # maps: layers with positions
                keep = out["output"][: writer.full_samples - start].numpy() if stored else None
                jobs.append((writer, pooled, peak, keep, view, None))
                continue
            activations = np.asarray(outputs[path])  # a view of TensorFlow's buffer, no copy
            accumulator = self.accumulators.get(path)
            if accumulator is None:
                accumulator = self._start(path, tuple(activations.shape[1:]))
            keep = activations if start < writer.full_samples else None  # release big batches early
            view = self.views[path]
            if path not in self.contexts:
                pooled, peak = accumulator.update(activations)
                peak = peak if activations.ndim >= 4 else None  # stored for map layers (it ranks their exemplars)
                jobs.append((writer, pooled, peak, keep, view.apply(activations), None))
                continue
            pooled, _ = accumulator.update(activations, mask)
            self.contexts[path].update(start, activations, content)
            token_rows = (rows, view.rows(activations[where[:, 0], where[:, 1]]))
            jobs.append((writer, pooled, None, keep, view.apply_sequence(activations, mask, pooled), token_rows))
        writes.submit(_write_layers, start, jobs)

    def _start(self, path: str, shape: tuple[int, ...]) -> LayerAccumulator:
        """The accumulator and view of a layer, from its first batch (when its shape is known)."""
        accumulator = self.accumulators[path] = _accumulator(shape, self.infos[path].activation, self.stats)
        self.shapes[path] = shape
        if self.plan is not None and path in self.plan.notes:
            log.info("%s: layer %s reduced on the host, not the device: %s", self.pair_name, path,
                     self.plan.notes[path])
        if self.plan is not None and path in self.plan.layers:
            self.views[path] = self.plan.layers[path].view
        elif self.tokens is not None and token_aligned(shape, self.tokens, path):
            settings = self.token_settings
            self.views[path] = LayerView.of_sequence(shape[1], settings.sequence_view, self.view_settings)
            self.contexts[path] = TopContexts(shape[1], settings.contexts, settings.window)
            self.writers[path].tokens_total = len(self.tokens.positions)
        else:
            self.views[path] = LayerView.of(shape, self.view_settings)
        return accumulator

    def finish(self) -> None:
        if self.inputs is not None:
            self.inputs.finish()
        for path, writer in self.writers.items():
            accumulator = self.accumulators[path]
            writer.finish(accumulator.moments, accumulator.histogram,
                          {**_layer_attrs(self.infos[path], accumulator, self.shapes[path], self.stats),
                           **self.views[path].spec.attrs(), **self._token_attrs(path), **self._reduce_attrs(path)},
                          self.contexts[path].arrays() if path in self.contexts else None)

    def _reduce_attrs(self, path: str) -> dict[str, Any]:
        """Where the layer's batches were reduced, and why not on the device when that was asked for."""
        if self.plan is None:
            return {"reduced_on": "host"}
        if path in self.plan.layers:
            return {"reduced_on": "device"}
        return {"reduced_on": "host", "reduce_note": self.plan.notes[path]}

    def _token_attrs(self, path: str) -> dict[str, Any]:
        """Whether a layer was measured on real tokens only, and why (not) — stored, shown in the report."""
        if self.tokens is None:
            return {}
        if path in self.contexts:
            return {"masked": True, "mask_source": self.tokens.source,
                    "sequence_view": self.token_settings.sequence_view}
        shape = self.shapes[path]
        if path not in self.tokens.downstream:
            why = "not computed from the tokens"
        elif len(shape) >= 2 and shape[0] == self.tokens.length:
            why = (f"output {shape} per sample: only (tokens, units) outputs are masked; every position of this one "
                   "counts")
        elif len(shape) >= 2:
            why = f"its {shape[0]} positions are not the {self.tokens.length} tokens"
        else:
            why = "one vector per sequence (the model pooled or summarised the tokens itself)"
        return {"masked": False, "mask_note": why}


def token_aligned(shape: tuple[int, ...], tokens: Any, path: str) -> bool:
    """Whether a layer's output (T, C) per sample has the tokens as positions and is computed from them: then
    it is measured on real tokens only."""
    return len(shape) == 2 and shape[0] == tokens.length and path in tokens.downstream


def compile_forward(graph: Any, paths: list[str], pair: Pair, reduce: device.DevicePlan | None = None) -> Forward:
    """A ``tf.function`` of the selected layers' outputs, with a fixed input signature (no retracing on the last,
    smaller batch), replaying the model's graph (:meth:`LayerGraph.run`). With ``models[].preprocess`` the input
    goes through ``preprocess_input`` first, inside the function: the stored inputs stay the dataset's.

    With ``reduce`` the function takes a second argument (:class:`device.DeviceState`) and returns, for each
    layer the plan reduces on the device, its partials (:func:`device.reduce_layer`) instead of its output;
    the plan decides while tracing, on the static shapes, and keeps why a layer stays on the host."""
    import tensorflow as tf

    arrays = pair.data.dataset.arrays
    signature = _map(graph.inputs,
                     lambda t: tf.TensorSpec((None, *arrays[pair.binding[t.name]].shape), t.dtype, t.name))
    prepare = preprocess.function(pair.model.preprocess) if pair.model.preprocess is not None else None

    def outputs(batch: Any) -> dict[str, Any]:
        if prepare is not None:  # one input (checked in the plan)
            batch = _map(batch, prepare)
        return {key: value if value.dtype == tf.float32 else tf.cast(value, tf.float32)
                for key, value in graph.run(batch, paths).items()}

    if reduce is None:
        # plain Python: nothing for autograph to convert
        host = tf.function(outputs, input_signature=[signature], autograph=False)
        host.device_plan = None
        return host

    @tf.function(input_signature=[signature, device.state_signature(paths)], autograph=False)
    def forward(batch: Any, state: dict[str, Any]) -> dict[str, Any]:
        result = outputs(batch)
        for index, path in enumerate(paths):
            shape = tuple(result[path].shape[1:])
            layer = reduce.decide(path, shape, _host_reason(path, shape, pair))
            if layer is not None:
                result[path] = device.reduce_layer(result[path], layer, state["first"], state["shifts"][index],
                                                   state["windows"][index])
        return result

    forward.device_plan = reduce
    return forward


def _host_reason(path: str, shape: tuple[int | None, ...], pair: Pair) -> str | None:
    """Why a layer is reduced on the host even when the device was asked for, or None."""
    if pair.tokens is not None and token_aligned(shape, pair.tokens, path):
        return ("token-aligned sequence layer: its statistics count real tokens only and its token rows and top "
                "contexts are gathered at sampled positions, on the host")
    return None


def _accumulator(shape: tuple[int, ...], activation: str | None, stats: StatsSection) -> LayerAccumulator:
    units = shape[-1] if shape else 1
    return LayerAccumulator(units, stats.histogram_bins, saturation_thresholds(activation, stats.saturation_tol))


def _layer_attrs(info: Any, accumulator: LayerAccumulator, shape: tuple[int, ...], stats: StatsSection) -> dict:
    rank = len(shape) + 1
    positions = int(np.prod(shape[:-1])) if len(shape) >= 2 else 1
    thresholds = saturation_thresholds(info.activation, stats.saturation_tol)
    return {
        "path": info.path, "name": info.name, "class_name": info.class_name, "activation": info.activation or "",
        "output_shape": [None, *shape], "units": accumulator.units, "positions": positions,
        "kind": {1: "scalar", 2: "vector", 3: "sequence"}.get(rank, "map"), "params": info.params,
        "saturation_thresholds": list(thresholds) if thresholds else None,
    }


def _write_layers(start: int, jobs: list[tuple[Any, ...]]) -> None:
    for writer, pooled, peak, activations, view, token_rows in jobs:
        writer.write(start, pooled, activations, view, token_rows, peak)


class _Worker:
    """One background thread running jobs in submission order, at most ``depth`` waiting.

    Used for the statistics (numba releases the GIL) and for HDF5 writes
    (h5py releases it while writing); ``submit`` blocks when the worker falls
    behind, and a failed job re-raises in the submitting thread.
    """

    def __init__(self, depth: int, name: str) -> None:
        self.depth = depth
        self.name = name
        self.pending: list[Any] = []

    def __enter__(self) -> "_Worker":
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"deeprep-{self.name}")
        return self

    def submit(self, function: Callable[..., None], *args: Any) -> None:
        self.pending.append(self.pool.submit(function, *args))
        while len(self.pending) > self.depth:
            self.pending.pop(0).result()

    def __exit__(self, *exc: object) -> None:
        try:
            for future in self.pending:
                future.result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


class _InputStore:
    """Writes a dataset's model inputs and their analysis views once (the first pair that reads them) and counts
    non-finite values."""

    def __init__(self, store: StoreWriter, data: DatasetEntry, arrays: list[str], views: ViewSection,
                 pair: Pair) -> None:
        self.store = store
        self.tokens = pair.tokens
        self.bag: ViewSpec | None = None
        self.key = f"datasets/{h5_name(data.name)}"
        self.keep = store.settings.inputs
        self.nonfinite = 0
        self.datasets = {}
        self.views: dict[str, tuple[LayerView, Any]] = {}
        for name in arrays:
            info = data.dataset.arrays[name]
            if self.keep:
                self.datasets[name] = store.create(f"{self.key}/inputs/{h5_name(name)}", (len(data.rows), *info.shape),
                                                   store.stored_dtype(info.dtype))
            if self.tokens is not None and name == self.tokens.array:
                types = self.tokens.vocabulary_size
                self.bag = ViewSpec(BAG, types, min(types, views.dims), views.seed)
                view, spec = None, self.bag
            else:
                view = LayerView(view_spec(int(np.prod(info.shape, dtype=np.int64)), False, views.dims, views.seed))
                spec = view.spec
            target = store.create(f"{self.key}/views/{h5_name(name)}", (len(data.rows), spec.dims), views.dtype)
            target.attrs.update(spec.attrs())
            self.views[name] = (view, target)

    def write(self, start: int, batch: dict[str, np.ndarray]) -> None:
        for name, values in batch.items():
            if values.dtype.kind == "f":
                self.nonfinite += int(values.size - np.count_nonzero(np.isfinite(values)))
            if name in self.datasets:
                self.datasets[name][start : start + len(values)] = values
            if name in self.views:
                view, target = self.views[name]
                rows = (view.apply(values) if view is not None
                        else bag_of_tokens(values, self.tokens.batch_mask(start, len(values)), self.bag))
                target[start : start + len(values)] = rows.astype(target.dtype)

    def finish(self) -> None:
        group = self.store.file[self.key]
        group.attrs["nonfinite_inputs"] = int(group.attrs["nonfinite_inputs"]) + self.nonfinite


def _prefetch(data: DatasetEntry, arrays: list[str]) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Batches in order, the next one read on a background thread while the current one is processed."""
    plan = list(batches(data.rows, data.batch_size))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="deeprep-read") as pool:
        pending = pool.submit(data.dataset.read, plan[0][1], arrays) if plan else None
        for position, (start, _) in enumerate(plan):
            batch = pending.result()
            if position + 1 < len(plan):
                pending = pool.submit(data.dataset.read, plan[position + 1][1], arrays)
            yield start, batch


def _structure(inputs: Any, binding: dict[str, str], batch: dict[str, np.ndarray]) -> Any:
    return _map(inputs, lambda t: np.asarray(batch[binding[t.name]], dtype=t.dtype))


def _map(structure: Any, function: Callable[[Any], Any]) -> Any:
    import keras

    return keras.tree.map_structure(function, structure)
