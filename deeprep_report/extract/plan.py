"""The ``plan`` stage: load every model and dataset named by the config, resolve layers, pair them up.

Everything that can be wrong with the input is found here, before a run folder
is touched: missing or corrupt files, unknown layers, shapes that fit no model.
``deeprep validate`` runs this stage and stops.
"""

from __future__ import annotations

import logging
import time
import dataclasses
from dataclasses import dataclass, field

import numpy as np

from deeprep_report.extract.cluster.shards import check_shard_size
from deeprep_report.config import Config
from deeprep_report.errors import first_line
from deeprep_report.extract import preprocess
from deeprep_report.extract.graph import LayerGraph, LayerInfo, SelectionError
from deeprep_report.extract.tokens import PairTokens, TokenError, pair_tokens
from deeprep_report.sources.datasets import Dataset, select_rows
from deeprep_report.sources.loaders import open_dataset
from deeprep_report.sources.models import LoadedModel, load_model
from deeprep_report.store import Baseline, audited_pairs, data_difference, match_pairs, open_baseline

log = logging.getLogger("deeprep")

@dataclass
class ModelEntry:
    index: int
    loaded: LoadedModel
    graph: LayerGraph
    selected: list[LayerInfo]
    skipped: list[LayerInfo]
    baseline_of: str | None = None  # set on a random twin: the trained model it is the baseline of
    preprocess: str | None = None  # a keras.applications module whose preprocess_input the forward pass applies

    @property
    def name(self) -> str:
        return self.loaded.name


@dataclass
class DatasetEntry:
    index: int
    name: str
    dataset: Dataset
    rows: np.ndarray
    batch_size: int
    fingerprint: str


@dataclass
class Pair:
    """One model run on one dataset; ``binding`` maps each model input to a dataset array."""

    model: ModelEntry
    data: DatasetEntry
    binding: dict[str, str]
    tokens: PairTokens | None = None  # a sequence of tokens: ids, the mask of real tokens, the token sample
    unscaled: list[dict[str, str]] = field(default_factory=list)  # integer pixels fed as they are to a float input


@dataclass
class Plan:
    config: Config
    models: list[ModelEntry] = field(default_factory=list)
    datasets: list[DatasetEntry] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    baseline: Baseline | None = None


def make_plan(config: Config) -> Plan:
    """Open datasets, load models, select layers and pair models with the datasets they accept."""
    from deeprep_report.tf_runtime import import_tensorflow

    import_tensorflow()
    plan = Plan(config)
    seed = config.pipeline.run.seed
    template_dir = config.pipeline.report.template_dir
    if template_dir is not None and not config.resolve(template_dir).is_dir():
        raise config.error("report.template_dir", f"no such folder {template_dir!r}")
    if config.pipeline.compare.baseline is not None:
        plan.baseline = open_baseline(config.resolve(config.pipeline.compare.baseline))
    reference = plan.baseline.dataset_rows() if plan.baseline else {}
    for index, spec in enumerate(config.pipeline.datasets):
        dataset = open_dataset(config, index)
        started = time.perf_counter()
        fingerprint = dataset.fingerprint()
        log.debug("dataset %s: fingerprint %s in %.2f s", spec.name, fingerprint, time.perf_counter() - started)
        if spec.name in reference:
            rows = _baseline_rows(config, spec.name, dataset.n_rows, fingerprint, reference[spec.name])
        else:
            rows = select_rows(dataset.n_rows, spec.limit, spec.shuffle, seed)
        plan.datasets.append(DatasetEntry(index, spec.name, dataset, rows, spec.batch_size, fingerprint))
        log.info("dataset %s: %d of %d samples from %s", spec.name, len(rows), dataset.n_rows, dataset.source)
    _check_transfer(config, plan)
    check_shard_size(config)
    for index, spec in enumerate(config.pipeline.models):
        loaded = load_model(config, index)
        try:
            graph = LayerGraph(loaded.model, spec.name)
        except ValueError as exc:
            raise config.error(f"models[{index}]", str(exc)) from None
        try:
            selected, skipped = graph.select(spec.layers)
        except SelectionError as exc:
            field_ = f"models[{index}].layers" + (f"[{exc.index}]" if spec.layers != "all" else "")
            raise config.error(field_, str(exc)) from None
        for info in skipped:
            log.warning("model %s: layer %s skipped: %s", spec.name, info.path, info.reason)
        preprocessed = preprocess.check(config, index, graph)
        if preprocessed is not None:  # said where the model's source is (summary.json, report)
            loaded = dataclasses.replace(loaded, source=f"{loaded.source}; {_preprocess_note(preprocessed)}")
        plan.models.append(ModelEntry(index, loaded, graph, selected, skipped, preprocess=preprocessed))
        log.info("model %s: %d of %d layers selected (%s)", spec.name, len(selected), len(graph.layers), loaded.source)
    plan.pairs = _pairs(config, plan)
    if plan.baseline is not None:
        _check_baseline_pairs(config, plan)
    if config.pipeline.analysis.enabled and config.pipeline.analysis.random_baseline:
        _add_random_baselines(config, plan)
    return plan


def _check_baseline_pairs(config: Config, plan: Plan) -> None:
    """A baseline that matches none of this run's pairs would leave every comparison "not evaluated": refused."""
    here = [(pair.model.name, pair.data.name) for pair in plan.pairs]
    there = [(pair["model"], pair["dataset"]) for pair in audited_pairs(plan.baseline.summary)]
    if not match_pairs(here, there):
        listed = lambda pairs: ", ".join(f"{m} × {d}" for m, d in pairs) or "none"  # noqa: E731
        raise config.error("compare.baseline", f"baseline {plan.baseline.folder} has no pair of this run: it has "
                           f"{listed(there)}; this run has {listed(here)}")


def _check_transfer(config: Config, plan: Plan) -> None:
    """A transfer profile probes with the transfer dataset's labels, so it must have some."""
    name = config.pipeline.analysis.transfer.dataset
    entry = next((d for d in plan.datasets if d.name == name), None)
    if entry is not None and entry.dataset.labels is None:
        raise config.error("analysis.transfer.dataset", f"dataset {name!r} has no labels; a transfer profile "
                           "trains probes on them (give the dataset labels, or remove analysis.transfer)")


def _baseline_rows(config: Config, name: str, n_rows: int, fingerprint: str,
                   reference: tuple[np.ndarray, str, int]) -> np.ndarray:
    """The baseline run's rows of this dataset, if it is the same data; otherwise a one-line error."""
    rows, old_fingerprint, old_rows = reference
    problem = data_difference(name, (fingerprint, n_rows), (old_fingerprint, old_rows))
    if problem:
        raise config.error("compare.baseline", problem)
    log.info("dataset %s: the baseline run's %d rows are reused", name, len(rows))
    return rows


def _add_random_baselines(config: Config, plan: Plan) -> None:
    """A twin of every model with fresh random weights (seeded by run.seed), run on the same data."""
    import keras

    from deeprep_report.sources.models import weights_sha256

    for model in list(plan.models):
        keras.utils.set_random_seed(config.pipeline.run.seed)
        try:
            clone = keras.models.clone_model(model.loaded.model)
        except Exception as exc:  # noqa: BLE001 - SavedModel wrappers, subclassed models
            log.warning("model %s: no random baseline (%s)", model.name, first_line(exc))
            continue
        name = f"{model.name}@random"
        graph = LayerGraph(clone, name)
        selected, skipped = graph.select([info.path for info in model.selected])
        source = f"random weights for {model.name} (seed {config.pipeline.run.seed})"
        if model.preprocess is not None:
            source += f"; {_preprocess_note(model.preprocess)}"
        loaded = LoadedModel(name, clone, source, weights_sha256(clone), None)
        twin = ModelEntry(model.index, loaded, graph, selected, skipped, baseline_of=model.name,
                          preprocess=model.preprocess)
        plan.models.append(twin)
        plan.pairs += [dataclasses.replace(pair, model=twin) for pair in plan.pairs if pair.model is model]
        log.info("model %s: random baseline %s added", model.name, name)


def _pairs(config: Config, plan: Plan) -> list[Pair]:
    """Every model with every dataset it accepts; a model or dataset that fits nothing is an error."""
    pairs: list[Pair] = []
    for model in plan.models:
        wanted = config.pipeline.models[model.index].datasets
        problems: list[tuple[str, str]] = []
        for data in plan.datasets:
            if wanted is not None and data.name not in wanted:
                continue
            binding, problem = bind_inputs(model, data, config)
            if problem is None:
                tokens = _tokens(config, model, data, binding)
                _check_pixel_range(config, model, data)
                raw_pixels = tokens is None and model.preprocess is None  # preprocess_input expects 0–255
                unscaled = unscaled_inputs(model, data, binding) if raw_pixels else []
                pairs.append(Pair(model, data, binding, tokens, unscaled))
            elif wanted is not None:
                raise config.error(*problem)
            else:
                problems.append(problem)
        if not any(pair.model is model for pair in pairs):
            if len(problems) == 1:
                raise config.error(*problems[0])
            raise config.error(f"models[{model.index}]", f"model {model.name!r} accepts none of the datasets: "
                               + "; ".join(message for _, message in problems))
    for data in plan.datasets:
        if not any(pair.data is data for pair in pairs):
            raise config.error(f"datasets[{data.index}]", f"dataset {data.name!r} fits none of the models "
                               "(check its input shape, or list it under a model's datasets:)")
    return pairs


def _tokens(config: Config, model: ModelEntry, data: DatasetEntry, binding: dict[str, str]) -> PairTokens | None:
    settings = config.pipeline.analysis.tokens
    try:
        tokens = pair_tokens(model.graph, data.dataset, data.rows, binding, settings.samples, config.pipeline.run.seed)
    except TokenError as exc:
        raise config.error(f"datasets[{data.index}]", f"dataset {data.name!r} with model {model.name!r}: {exc}") from None
    if tokens is not None:
        log.info("%s × %s: tokens %r, %d per sample; real tokens %.1f%% (mask from %s); %d sampled for token-level "
                 "analysis", model.name, data.name, tokens.array, tokens.length, 100 * tokens.mask.mean(),
                 tokens.source, len(tokens.positions))
    return tokens


def _preprocess_note(name: str) -> str:
    return f"inputs through keras.applications.{name}.preprocess_input"


def _check_pixel_range(config: Config, model: ModelEntry, data: DatasetEntry) -> None:
    """``preprocess_input`` expects pixels in 0–255; a dataset that rescales or normalizes them first is said."""
    spec = config.pipeline.datasets[data.index]
    if model.preprocess is None:
        return
    scaled = spec.scaling()
    if scaled:
        log.warning("model %s: keras.applications.%s.preprocess_input expects pixels in 0–255, but dataset %s "
                    "sets %s (datasets[%d].%s); remove it, or remove models[%d].preprocess", model.name,
                    model.preprocess, data.name, " and ".join(scaled), data.index, scaled[0], model.index)


def unscaled_inputs(model: ModelEntry, data: DatasetEntry, binding: dict[str, str]) -> list[dict[str, str]]:
    """Integer pixels (0–255) fed as they are to a float input usually mean a forgotten ``rescale``: a warning
    in the log and, through the summary, a finding in the report."""
    inputs = {t.name: t for t in _flat_inputs(model.graph)}
    found = []
    for name, array in binding.items():
        kind = data.dataset.arrays[array].dtype
        if kind.kind == "u" and "float" in str(inputs[name].dtype):
            log.warning("dataset %s: array %r holds %s values fed unscaled into the float input %r of model %s; set "
                        "datasets[%d].rescale (e.g. 1/255) if the model expects [0, 1]", data.name, array, kind,
                        name, model.name, data.index)
            found.append({"input": name, "array": array, "dtype": str(kind), "field": f"datasets[{data.index}].rescale"})
    return found


def bind_inputs(model: ModelEntry, data: DatasetEntry, config: Config) -> tuple[dict[str, str], tuple[str, str] | None]:
    """Map model inputs to dataset arrays and check shapes: (binding, None) or ({}, (field, problem))."""
    spec = config.pipeline.datasets[data.index]
    where = f"datasets[{data.index}]"
    inputs = {t.name: t for t in _flat_inputs(model.graph)}
    arrays = data.dataset.arrays
    listing = ", ".join(map(repr, arrays))
    if isinstance(spec.x, dict):
        unknown = [name for name in spec.x if name not in inputs]
        if unknown:
            return {}, (f"{where}.x", f"names model input {unknown[0]!r}, but model {model.name!r} has inputs "
                        f"{', '.join(map(repr, inputs))}")
        binding = dict(spec.x)
    elif len(inputs) == 1:
        default = "token_ids" if "x" not in arrays and "token_ids" in arrays else "x"
        binding = {next(iter(inputs)): spec.x if isinstance(spec.x, str) else default}
    else:
        binding = {name: name for name in inputs}
    missing = [name for name in inputs if binding.get(name) not in arrays]
    if missing:
        if len(inputs) == 1:
            return {}, (f"{where}.path", f"{spec.path or spec.builtin!r} has no array {binding[missing[0]]!r} "
                        f"(arrays: {listing}); name the input array with {where}.x")
        return {}, (f"{where}.x", f"model {model.name!r} has inputs {', '.join(map(repr, inputs))} but dataset "
                    f"{data.name!r} has arrays {listing}; map each input to an array with {where}.x")
    for name, array in binding.items():
        expected = tuple(inputs[name].shape[1:])
        got = arrays[array].shape
        if len(expected) != len(got) or any(e is not None and e != g for e, g in zip(expected, got)):
            hint = " (add the channel axis)" if len(got) + 1 == len(expected) and expected[-1] == 1 else ""
            return {}, (where, f"dataset {data.name!r} samples have shape {_shape(got)} but model {model.name!r} "
                        f"expects {_shape(expected)}{hint}")
        if arrays[array].dtype.kind not in "biuf":
            return {}, (where, f"dataset {data.name!r} array {array!r} has non-numeric dtype {arrays[array].dtype}")
    return binding, None


def _flat_inputs(graph: LayerGraph) -> list:
    import keras

    return keras.tree.flatten(graph.inputs)


def _shape(shape: tuple) -> str:
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
