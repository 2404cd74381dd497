"""The sections of ``pipeline.yaml`` as typed options: one class per section, one field (with its
description) per key. This module is only the schema; loading and error text live beside it."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from deeprep_report.config.data import DatasetSpec
from deeprep_report.config.fields import Strict, entry_name, plain_data
from deeprep_report.config.rules import Check
from deeprep_report.config.selectors import ReportSelectors, Selectors, layer_selectors


class ExecutorSection(Strict):
    """Where the extract stage runs: this process, or shards on a Dask cluster (docs/cluster.md)."""

    kind: Literal["local", "dask"] = Field("local", description="local: this process; dask: shards of every pair's "
                                                                  "rows as tasks on a Dask cluster.")
    address: str | None = Field(None, description="kind dask: 'local' (a cluster of worker processes on this "
                                                  "machine, for this run) or a scheduler address tcp://HOST:PORT.")
    workers: int | None = Field(None, ge=1, le=256, description="kind dask: worker processes of a local cluster "
                                                                "(default: the usable cores); with a scheduler "
                                                                "address, wait until this many workers joined.")
    shard_size: int | Literal["auto"] = Field(
        "auto", description="kind dask: rows per shard, a multiple of every dataset's batch_size (shards are whole "
                            "batches, so every sample sees the batch it sees in one process); 'auto': about four "
                            "shards per worker.")
    timeout: float = Field(30.0, gt=0, description="kind dask: seconds to wait for the scheduler, for the "
                                                   "workers asked for, and for any worker while shards wait.")

    @field_validator("shard_size")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if value != "auto" and value < 1:
            raise ValueError(f"expected 'auto' or a row count >= 1, got {value!r}")
        return value

    @model_validator(mode="after")
    def _dask_keys_need_dask(self) -> "ExecutorSection":
        if self.kind == "local":
            given = [key for key in ("address", "workers") if getattr(self, key) is not None]
            given += ["shard_size"] if self.shard_size != "auto" else []
            if given:
                raise ValueError(f"{given[0]} is a setting of kind: dask (this executor is kind: local)")
        elif self.address is None:
            self.address = "local"
        elif self.address != "local" and "://" not in self.address:
            raise ValueError(f"address: expected 'local' or a scheduler address such as tcp://10.0.0.5:8786, got "
                             f"{self.address!r}")
        return self


class RunSection(Strict):
    """Where the run folder goes and what makes the run reproducible."""

    name: str = Field("deeprep-run", description="Run folder name under output_dir.")
    output_dir: str = Field("outputs", description="Folder holding run folders (relative to the pipeline file).")
    seed: int = Field(0, description="Seed for sample selection and anything random.")
    preset: Literal["full", "minimal"] | None = Field(
        None, description="minimal: statistics and checks only (fast, nightly); full: everything incl. the "
                          "random-weights baseline (reviews); unset: each key's own default.")
    executor: ExecutorSection = Field(default_factory=ExecutorSection)

    @field_validator("name")
    @classmethod
    def _one_folder(cls, value: str) -> str:
        if not value or value in (".", "..") or "/" in value or "\\" in value:
            raise ValueError(f"expected a folder name without slashes, got {value!r}")
        return value


class ModelSpec(Strict):
    """One model to audit; exactly one of ``path``, ``builtin``, ``application``, ``factory``, ``preset``."""

    name: str | None = Field(None, description="Name used in outputs; defaults to the source's name.")
    path: str | None = Field(None, description="A .keras file, a legacy .h5 file or a SavedModel folder.")
    builtin: Literal["digits_cnn", "digits_cnn_early", "text_demo"] | None = Field(
        None, description="A model shipped with the tool: the demo CNN, its checkpoint after 3 of 12 epochs, or the "
                          "text demo (embedding → conv → BiGRU → masked mean → dense on the docstrings).")
    application: str | None = Field(
        None, description="A keras.applications architecture, e.g. MobileNetV2 (built with weights=None)."
    )
    factory: str | None = Field(
        None, description="'package.module:function' returning a Keras model. Runs that code."
    )
    preset: str | None = Field(
        None, description="A keras-hub backbone from a local preset folder (keras-hub or Hugging Face format, e.g. "
                          "a BERT config.json + model.safetensors), or 'package:<module>/<sub/path>' for a folder "
                          "inside an installed package; read offline.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for application, factory or preset."
    )
    layers: Selectors = Field(
        "all", description="'all', or a list of layer names and glob patterns (matched on the nested path) and "
                           "mappings {type: Conv2D, glob: '*conv*', case: insensitive}.")
    preprocess: str | None = Field(
        None, description="A keras.applications module (mobilenet_v2, resnet50, ...) whose preprocess_input is "
                          "applied to the model's input inside the forward pass; stored inputs stay the data's.")
    allow_lambda: bool = Field(
        False, description="Load Lambda layers, which run Python code stored in the model file."
    )
    allow_saved_model_code: bool = Field(
        False, description="Load a SavedModel folder, whose serving graph runs the TensorFlow ops stored in it "
                           "(they can read and write files; Keras safe_mode does not apply). Only for folders "
                           "you trust.")
    custom_objects: list[str] = Field(
        default_factory=list, description="Python modules imported before a .keras/.h5 file is loaded, so that the "
                                          "custom classes they register (keras.saving.register_keras_serializable) "
                                          "load. Runs that code.")
    datasets: list[str] | None = Field(
        None, description="Names of the datasets to run this model on; default: every dataset whose shape fits."
    )

    _layers_shape = field_validator("layers", mode="before")(lambda value: layer_selectors(value))
    _plain_options = field_validator("options")(lambda value: plain_data(value, "options"))

    @field_validator("preprocess")
    @classmethod
    def _module_name(cls, value: str | None) -> str | None:
        """A module name, not a path to import: it is looked up among keras.applications' modules (at plan time)."""
        if value is not None and not re.fullmatch(r"[a-z0-9_]+", value):
            raise ValueError(f"expected a keras.applications module name such as mobilenet_v2, got {value!r}")
        return value

    @field_validator("name")
    @classmethod
    def _model_name(cls, value: str | None) -> str | None:
        if value is not None and "@" in value:
            raise ValueError(f"'@' is reserved for random-weights twins (<model>@random), got {value!r}")
        return entry_name(value)

    @model_validator(mode="after")
    def _one_source(self) -> "ModelSpec":
        given = [k for k in ("path", "builtin", "application", "factory", "preset") if getattr(self, k) is not None]
        if len(given) != 1:
            got = " and ".join(given) if given else "none"
            raise ValueError(f"give exactly one of path, builtin, application, factory, preset (got {got})")
        if self.options and (self.path is not None or self.builtin is not None):
            raise ValueError("options apply only to application, factory and preset models")
        if self.custom_objects and self.path is None:
            raise ValueError("custom_objects applies to models loaded from a file (path)")
        for module in self.custom_objects:
            if not re.fullmatch(r"[A-Za-z_][\w.]*", module):
                raise ValueError(f"custom_objects: expected module names such as 'mypackage.layers', got {module!r}")
        if self.factory is not None and not re.fullmatch(r"[\w.]+:[\w.]+", self.factory):
            raise ValueError(f"factory: expected 'package.module:function', got {self.factory!r}")
        if self.name is None:
            source = self.builtin or self.application or self.factory or self.path or self.preset or "model"
            self.name = re.split(r"[:/\\]", source.rstrip("/\\"))[-1].split(".")[0] or "model"
        return self



class StoreSection(Strict):
    """What goes into ``activations.h5``."""

    full_samples: int | Literal["all"] = Field(
        64, description="Keep full activation maps of the first N samples ('all' for every sample)."
    )
    dtype: Literal["float32", "float16"] = Field("float32", description="Storage type of activations.")
    compression: Literal["gzip", "lzf"] | None = Field(None, description="HDF5 compression filter.")
    compression_level: int = Field(4, ge=0, le=9, description="gzip level.")
    inputs: bool = Field(True, description="Store the model inputs of every sample (for exemplars).")

    @field_validator("full_samples", mode="before")
    @classmethod
    def _count_or_all(cls, value: Any) -> Any:
        if value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            return value
        raise ValueError(f"expected a count >= 0 or 'all', got {value!r}")


class ExtractSection(Strict):
    """How the extract stage reduces each batch's layer outputs."""

    reduce: Literal["auto", "host", "device"] = Field(
        "auto", description="Where a batch's statistics are computed: host (numpy and numba on the outputs, which "
                            "cross to the host), device (TensorFlow ops inside the compiled forward pass: only "
                            "per-unit partials, pooled values, views and the first full maps leave the "
                            "accelerator), auto (device when TensorFlow sees a GPU).")


class StatsSection(Strict):
    """How unit statistics are computed."""

    saturation_tol: float = Field(
        0.01, gt=0, lt=0.5, description="A value is saturated within this fraction of the range from a bound."
    )
    histogram_bins: int = Field(64, ge=4, le=250, description="Bins of each layer's value histogram.")


class ProbeSection(Strict):
    """Linear probes (Alain & Bengio 2016)."""

    enabled: bool = Field(True, description="Probe every layer with labels.")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="Held-out share of the stratified split.")
    penalties: list[float] = Field(
        [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0], min_length=1,
        description="Ridge penalties tried, relative to the total variance of the layer's view; the one with "
                    "the lowest generalised cross-validation error on the training split is used.")
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples of the test set for the interval.")

    @field_validator("penalties")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if any(not v > 0 for v in value):
            raise ValueError(f"expected penalties > 0, got {value!r}")
        return value


class CKASection(Strict):
    """Linear CKA between layers (Kornblith et al. 2019)."""

    enabled: bool = Field(True, description="CKA between every pair of layers.")
    estimator: Literal["auto", "biased", "debiased"] = Field(
        "auto", description="auto: debiased when the samples used are fewer than 20 × the widest view's dims.")
    method: Literal["subsample", "minibatch"] = Field(
        "subsample", description="subsample: one seeded sample of at most `samples` rows, one Gram matrix per "
                                 "layer; minibatch: unbiased HSIC averaged over minibatches of all N rows.")
    samples: int = Field(2000, ge=10, description="Rows of the seeded sample (method subsample).")
    batch_size: int = Field(2000, ge=10, description="Samples per minibatch (method minibatch).")


class GeometrySection(Strict):
    """Intrinsic dimension, effective rank, participation ratio, PCA components."""

    enabled: bool = Field(True, description="Geometry of every layer.")
    subsample: int = Field(1500, ge=10, description="TwoNN subsample size.")
    repeats: int = Field(5, ge=1, description="TwoNN subsamples averaged.")
    discard: float = Field(0.1, ge=0, lt=0.5, description="TwoNN: share of largest distance ratios discarded.")


class ClassSection(Strict):
    """Class structure: nearest centroids, silhouette, selectivity, 2-D projections."""

    enabled: bool = Field(True, description="Class structure of every layer (needs labels).")
    silhouette_samples: int = Field(2000, ge=10, description="Samples for the silhouette score.")
    projection: Literal["pca", "tsne"] = Field("pca", description="2-D projection method.")
    projection_samples: int = Field(1000, ge=10, description="Samples shown in each projection.")


class ViewSection(Strict):
    """How each layer enters the depth analysis: its whole (flattened) activation, reduced above ``dims``."""

    dims: int = Field(2048, ge=16, le=65536, description="Layers whose flattened activation has at most this many "
                                                          "values enter whole; wider ones are count-sketched to it.")
    method: Literal["count_sketch"] = Field(
        "count_sketch", description="The reduction of wider layers: a seeded count sketch of the flattened "
                                    "activation (linear, unbiased for inner products, data-independent).")
    seed: int = Field(0, description="Seed of the sketch; keep it equal between runs you compare.")
    dtype: Literal["float16", "float32"] = Field("float16", description="Storage type of the views.")


class TokenSection(Strict):
    """Sequence layers (docs/text.md): how a sequence enters the depth analysis, the token sample, contexts."""

    sequence_view: Literal["mean", "first", "last"] = Field(
        "mean", description="A sequence layer's view for sequence-level analysis: the mean over its real tokens, or "
                            "the first or last real token.")
    samples: int = Field(4000, ge=100, description="Real token positions sampled (seeded) for token-level analysis.")
    identity_types: int = Field(
        16, ge=2, le=64, description="Token-identity probes: the most frequent token types (tokens of other types "
                                     "are not part of those tasks).")
    contexts: int = Field(6, ge=1, le=20, description="Top-activating token positions kept per unit.")
    window: int = Field(6, ge=1, le=32, description="Tokens of context kept on each side of a top position.")


class TransferSection(Strict):
    """Transfer profile: probe every layer on a second labelled dataset the model was not trained on."""

    dataset: str | None = Field(None, description="Name of a labelled dataset under datasets:.")


class AnalysisSection(Strict):
    """How the representation evolves with depth, on each layer's view (its flattened activation, or a sketch)."""

    enabled: bool = Field(True, description="Run the representation analysis.")
    include_input: bool = Field(True, description="Analyse the input itself (flattened) as layer 0.")
    view: ViewSection = Field(default_factory=lambda: ViewSection())
    random_baseline: bool = Field(
        False, description="Also run the same architecture with fresh random weights (seeded) and compare.")
    transfer: TransferSection = Field(default_factory=lambda: TransferSection())
    tokens: TokenSection = Field(default_factory=lambda: TokenSection())
    probes: ProbeSection = Field(default_factory=ProbeSection)
    cka: CKASection = Field(default_factory=CKASection)
    geometry: GeometrySection = Field(default_factory=GeometrySection)
    classes: ClassSection = Field(default_factory=ClassSection)


class GallerySection(Strict):
    """Feature-map galleries of conv layers."""

    samples: int = Field(4, ge=1, le=16, description="Sample inputs per gallery.")
    channels: int = Field(16, ge=1, le=64, description="Channels per sample (those with the highest std).")


class ExemplarSection(Strict):
    """Top exemplars: the inputs that activate a unit most."""

    k: int = Field(6, ge=1, le=20, description="Inputs shown per unit.")
    units: int = Field(8, ge=1, le=32, description="Units shown per layer (those with the highest std).")


class ReportSection(Strict):
    """The HTML report rendered from the stored run."""

    enabled: bool = Field(True, description="Render report.html at the end of deeprep run.")
    template_dir: str | None = Field(None, description="Folder of templates that replace the shipped ones.")
    layers: ReportSelectors = Field(
        "auto", description="Captured layers that get a section: 'auto' (every layer of a model with at most "
                            "max_layers captured layers; for a bigger one its first and last layers, block outputs "
                            "and stage ends in full and its flagged layers in brief), 'all', or names, glob "
                            "patterns and {type, glob} mappings.")
    max_layers: int = Field(32, ge=2, description="report.layers auto: the most layers of a model shown in full.")
    gallery: GallerySection = Field(default_factory=GallerySection)
    exemplars: ExemplarSection = Field(default_factory=ExemplarSection)
    heatmap_samples: int = Field(80, ge=4, le=1000, description="Samples (rows) of a dense layer's heatmap.")
    saturation_finding: float = Field(
        0.5, ge=0, le=1, description="Findings list a layer whose saturation fraction is at least this."
    )
    size_budget_mb: float = Field(20.0, gt=0, description="Warn when report.html is larger than this.")
    workers: int | Literal["auto"] = Field(
        "auto", description="Processes that draw the figures: 'auto' (one per core, up to 8, for a report of 60 "
                            "figures or more; else this process), or a count (1: this process; never more than the cores).")

    _layers_shape = field_validator("layers", mode="before")(
        lambda value: value if value == "auto" else layer_selectors(value))

    @field_validator("workers")
    @classmethod
    def _some_workers(cls, value: int | str) -> int | str:
        if value != "auto" and not 1 <= value <= 64:
            raise ValueError(f"expected 'auto' or a count from 1 to 64, got {value!r}")
        return value


class CompareSection(Strict):
    """Comparison with an earlier run of the same models on the same samples."""

    baseline: str | None = Field(None, description="A finished run folder to compare with (its store is enough).")


class Pipeline(Strict):
    """A ``pipeline.yaml``: which models see which data, and what is stored."""

    run: RunSection = Field(default_factory=RunSection)
    models: list[ModelSpec] = Field(min_length=1)
    datasets: list[DatasetSpec] = Field(min_length=1)
    store: StoreSection = Field(default_factory=StoreSection)
    extract: ExtractSection = Field(default_factory=ExtractSection)
    stats: StatsSection = Field(default_factory=StatsSection)
    analysis: AnalysisSection = Field(default_factory=AnalysisSection)
    checks: list[Check] | None = Field(None, description="Checks of the run; the default set when absent.")
    compare: CompareSection = Field(default_factory=CompareSection)
    report: ReportSection = Field(default_factory=ReportSection)

