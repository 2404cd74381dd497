"""The ``config`` stage: parse ``pipeline.yaml`` safely and validate it into typed objects.

Every error is one line naming the file, the field path and what was expected,
e.g. ``pipeline.yaml: datasets[0].batch_size: expected an integer, got 'many'``.
This module only checks what can be checked from the text itself; whether
files exist, models load and layers resolve is the ``plan`` stage's job.
"""

from __future__ import annotations

import difflib
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deeprep_report.errors import ConfigError, UserError



def _layer_selectors(value: Any) -> Any:
    """``layers:`` is 'all', one selector, or a non-empty list of selectors."""
    if value == "all":
        return value
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"expected 'all' or a non-empty list of layer names or patterns, got {value!r}")
    return value


class _Strict(BaseModel):
    """Unknown keys are errors, so a typo never silently falls back to a default."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class RunSection(_Strict):
    """Where the run folder goes and what makes the run reproducible."""

    name: str = Field("deeprep-run", description="Run folder name under output_dir.")
    output_dir: str = Field("outputs", description="Folder holding run folders (relative to the pipeline file).")
    seed: int = Field(0, description="Seed for sample selection and anything random.")
    preset: Literal["full", "minimal"] | None = Field(
        None, description="minimal: statistics and checks only (fast, nightly); full: everything incl. the "
                          "random-weights baseline (reviews); unset: each key's own default.")

    @field_validator("name")
    @classmethod
    def _one_folder(cls, value: str) -> str:
        if not value or value in (".", "..") or "/" in value or "\\" in value:
            raise ValueError(f"expected a folder name without slashes, got {value!r}")
        return value


class ModelSpec(_Strict):
    """One model to audit; exactly one of ``path``, ``builtin``, ``application``, ``factory``."""

    name: str | None = Field(None, description="Name used in outputs; defaults to the source's name.")
    path: str | None = Field(None, description="A .keras file, a legacy .h5 file or a SavedModel folder.")
    builtin: Literal["digits_cnn", "digits_cnn_early"] | None = Field(
        None, description="A model shipped with the tool: the demo CNN, or its checkpoint after 3 of 12 epochs.")
    application: str | None = Field(
        None, description="A keras.applications architecture, e.g. MobileNetV2 (built with weights=None)."
    )
    factory: str | None = Field(
        None, description="'package.module:function' returning a Keras model. Runs that code."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for application or factory."
    )
    layers: Literal["all"] | list[str] = Field(
        "all", description="'all', or a list of layer names and glob patterns (matched on the nested path)."
    )
    allow_lambda: bool = Field(
        False, description="Load Lambda layers, which run Python code stored in the model file."
    )
    datasets: list[str] | None = Field(
        None, description="Names of the datasets to run this model on; default: every dataset whose shape fits."
    )

    _layers_shape = field_validator("layers", mode="before")(lambda value: _layer_selectors(value))

    @model_validator(mode="after")
    def _one_source(self) -> "ModelSpec":
        given = [k for k in ("path", "builtin", "application", "factory") if getattr(self, k) is not None]
        if len(given) != 1:
            got = " and ".join(given) if given else "none"
            raise ValueError(f"give exactly one of path, builtin, application, factory (got {got})")
        if self.options and (self.path is not None or self.builtin is not None):
            raise ValueError("options apply only to application and factory models")
        if self.factory is not None and not re.fullmatch(r"[\w.]+:[\w.]+", self.factory):
            raise ValueError(f"factory: expected 'package.module:function', got {self.factory!r}")
        if self.name is None:
            source = self.builtin or self.application or self.factory or self.path or "model"
            self.name = re.split(r"[:/\\]", source.rstrip("/\\"))[-1].split(".")[0] or "model"
        return self


class DatasetSpec(_Strict):
    """One dataset to push through the models; exactly one of ``path`` and ``builtin``."""

    name: str | None = Field(None, description="Name used in outputs; defaults to the source's name.")
    path: str | None = Field(
        None, description="A .npz or .h5 file with array x (and optional labels y), or an image folder."
    )
    builtin: Literal["digits", "digits_mirrored"] | None = Field(
        None, description="A dataset shipped with the tool: the digits, or the digits half mirrored (label: mirrored).")
    limit: int | None = Field(None, ge=1, description="Use at most this many samples.")
    batch_size: int = Field(64, ge=1, description="Samples per forward pass; bounds memory.")
    shuffle: bool = Field(True, description="Pick samples in a seeded random order (run.seed).")
    x: str | dict[str, str] | None = Field(
        None,
        description="Array holding the model input ('x' by default), or a mapping model-input-name -> array.",
    )
    y: str | None = Field(None, description="Array holding integer labels; default 'y' when present.")
    image_size: tuple[int, int] | None = Field(
        None, description="Image folders: resize to [height, width]; default the first image's size."
    )
    color_mode: Literal["grayscale", "rgb", "rgba"] = Field("rgb", description="Image folders: channels.")
    rescale: float = Field(1.0, description="Image folders: multiply pixel values, e.g. 1/255.")

    @field_validator("rescale", mode="before")
    @classmethod
    def _fraction(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = re.fullmatch(r"\s*([0-9.]+)\s*/\s*([0-9.]+)\s*", value)
            if match and float(match.group(2)) != 0:
                return float(match.group(1)) / float(match.group(2))
        return value

    @model_validator(mode="after")
    def _one_source(self) -> "DatasetSpec":
        given = [k for k in ("path", "builtin") if getattr(self, k) is not None]
        if len(given) != 1:
            got = " and ".join(given) if given else "none"
            raise ValueError(f"give exactly one of path, builtin (got {got})")
        if self.name is None:
            source = self.builtin or str(self.path)
            self.name = re.split(r"[/\\]", source.rstrip("/\\"))[-1].split(".")[0] or "dataset"
        return self


class StoreSection(_Strict):
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


class StatsSection(_Strict):
    """How unit statistics are computed."""

    saturation_tol: float = Field(
        0.01, gt=0, lt=0.5, description="A value is saturated within this fraction of the range from a bound."
    )
    histogram_bins: int = Field(64, ge=4, le=250, description="Bins of each layer's value histogram.")


class ProbeSection(_Strict):
    """Linear probes (Alain & Bengio 2016)."""

    enabled: bool = Field(True, description="Probe every layer with labels.")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="Held-out share of the stratified split.")
    folds: int = Field(3, ge=2, le=10, description="Cross-validation folds (on the training split) choosing C.")
    cs: list[float] = Field([0.01, 0.1, 1.0, 10.0], min_length=1, description="Inverse L2 strengths tried.")
    max_dims: int = Field(2000, ge=2, description="Wider features are projected on this many principal components.")
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples of the test set for the interval.")


class CKASection(_Strict):
    """Linear CKA between layers (Kornblith et al. 2019)."""

    enabled: bool = Field(True, description="CKA between every pair of layers.")
    estimator: Literal["auto", "biased", "debiased"] = Field(
        "auto", description="auto: debiased when N < 20 × the widest layer's units.")
    minibatch_above: int = Field(10000, ge=10, description="Above this many samples, minibatch CKA.")
    batch_size: int = Field(2000, ge=10, description="Samples per minibatch.")


class GeometrySection(_Strict):
    """Intrinsic dimension, effective rank, participation ratio, PCA components."""

    enabled: bool = Field(True, description="Geometry of every layer.")
    subsample: int = Field(1500, ge=10, description="TwoNN subsample size.")
    repeats: int = Field(5, ge=1, description="TwoNN subsamples averaged.")
    discard: float = Field(0.1, ge=0, lt=0.5, description="TwoNN: share of largest distance ratios discarded.")


class ClassSection(_Strict):
    """Class structure: nearest centroids, silhouette, selectivity, 2-D projections."""

    enabled: bool = Field(True, description="Class structure of every layer (needs labels).")
    silhouette_samples: int = Field(2000, ge=10, description="Samples for the silhouette score.")
    projection: Literal["pca", "tsne"] = Field("pca", description="2-D projection method.")
    projection_samples: int = Field(1000, ge=10, description="Samples shown in each projection.")


class TransferSection(_Strict):
    """Transfer profile: probe every layer on a second labelled dataset the model was not trained on."""

    dataset: str | None = Field(None, description="Name of a labelled dataset under datasets:.")


class AnalysisSection(_Strict):
    """How the representation evolves with depth, on the pooled activations."""

    enabled: bool = Field(True, description="Run the representation analysis.")
    include_input: bool = Field(True, description="Analyse the input itself (flattened) as layer 0.")
    random_baseline: bool = Field(
        False, description="Also run the same architecture with fresh random weights (seeded) and compare.")
    transfer: TransferSection = Field(default_factory=lambda: TransferSection())
    probes: ProbeSection = Field(default_factory=ProbeSection)
    cka: CKASection = Field(default_factory=CKASection)
    geometry: GeometrySection = Field(default_factory=GeometrySection)
    classes: ClassSection = Field(default_factory=ClassSection)


class GallerySection(_Strict):
    """Feature-map galleries of conv layers."""

    samples: int = Field(4, ge=1, le=16, description="Sample inputs per gallery.")
    channels: int = Field(16, ge=1, le=64, description="Channels per sample (those with the highest std).")


class ExemplarSection(_Strict):
    """Top exemplars: the inputs that activate a unit most."""

    k: int = Field(6, ge=1, le=20, description="Inputs shown per unit.")
    units: int = Field(8, ge=1, le=32, description="Units shown per layer (those with the highest std).")


class ReportSection(_Strict):
    """The HTML report rendered from the stored run."""

    enabled: bool = Field(True, description="Render report.html at the end of deeprep run.")
    template_dir: str | None = Field(None, description="Folder of templates that replace the shipped ones.")
    layers: Literal["all"] | list[str] = Field(
        "all", description="Captured layers that get a section: 'all', or names and glob patterns."
    )
    gallery: GallerySection = Field(default_factory=GallerySection)
    exemplars: ExemplarSection = Field(default_factory=ExemplarSection)
    heatmap_samples: int = Field(80, ge=4, le=1000, description="Samples (rows) of a dense layer's heatmap.")
    saturation_finding: float = Field(
        0.5, ge=0, le=1, description="Findings list a layer whose saturation fraction is at least this."
    )
    size_budget_mb: float = Field(20.0, gt=0, description="Warn when report.html is larger than this.")

    _layers_shape = field_validator("layers", mode="before")(lambda value: _layer_selectors(value))


Severity = Literal["warn", "fail"]
#: Per-layer statistics of summary.json that a comparison with a baseline reports and ``stat_drift`` can check.
LAYER_STATISTICS = ("mean", "std", "min", "max", "zero_fraction", "nonfinite_fraction", "saturation_fraction",
                    "dead_fraction")


class _Check(_Strict):
    layers: Literal["all"] | list[str] = Field("all", description="Layers the rule applies to: names or globs.")
    datasets: Literal["all"] | list[str] = Field("all", description="Datasets whose pairs are checked (names).")
    severity: Severity = Field("fail", description="warn or fail: what a failure of this check means.")

    _layers_shape = field_validator("layers", mode="before")(lambda value: _layer_selectors(value))


class DeadUnitsCheck(_Check):
    """A layer's dead-unit fraction is at most ``max``."""

    rule: Literal["dead_units"]
    max: float = Field(ge=0, le=1, description="Largest allowed dead-unit fraction.")


class NanInfCheck(_Check):
    """A layer has no NaN or Inf value."""

    rule: Literal["nan_inf"]


class SaturationCheck(_Check):
    """A layer's saturation fraction is at most ``max`` (bounded activations; softmax only if asked)."""

    rule: Literal["saturation"]
    max: float = Field(ge=0, le=1, description="Largest allowed saturation fraction.")
    include_softmax: bool = Field(False, description="Also check softmax outputs (confident = saturated).")


class CollapseCheck(_Check):
    """A layer's effective rank (or participation ratio) is at least ``min``."""

    rule: Literal["collapse"]
    min: float = Field(gt=0, description="Smallest allowed value.")
    measure: Literal["effective_rank", "participation_ratio"] = Field("effective_rank", description="What is measured.")


class ProbeAccuracyCheck(_Check):
    """A layer's probe accuracy is at least ``min``."""

    rule: Literal["probe_accuracy"]
    min: float = Field(ge=0, le=1, description="Smallest allowed held-out probe accuracy.")


class ProbeMonotonicCheck(_Check):
    """Probe accuracy drops by at most ``tolerance`` from one checked layer to the next."""

    rule: Literal["probe_monotonic"]
    tolerance: float = Field(0.05, ge=0, le=1, description="Largest allowed drop between consecutive layers.")


class DriftCheck(_Check):
    """A layer's linear CKA with the same layer of the baseline run is at least ``min``."""

    rule: Literal["drift"]
    min: float = Field(ge=0, le=1, description="Smallest allowed CKA to the baseline.")


class StatDriftCheck(_Check):
    """A layer statistic changes by at most ``max`` (relative to the baseline's value)."""

    rule: Literal["stat_drift"]
    statistic: Literal[LAYER_STATISTICS] = Field(description="The layer statistic compared.")
    max: float = Field(gt=0, description="Largest allowed |current − baseline| / |baseline|.")


Check = Annotated[
    DeadUnitsCheck | NanInfCheck | SaturationCheck | CollapseCheck | ProbeAccuracyCheck | ProbeMonotonicCheck
    | DriftCheck | StatDriftCheck,
    Field(discriminator="rule"),
]
_RULE_MODELS = {model.model_fields["rule"].annotation.__args__[0]: model for model in (
    DeadUnitsCheck, NanInfCheck, SaturationCheck, CollapseCheck, ProbeAccuracyCheck, ProbeMonotonicCheck, DriftCheck,
    StatDriftCheck)}
RULES = tuple(_RULE_MODELS)


class CompareSection(_Strict):
    """Comparison with an earlier run of the same models on the same samples."""

    baseline: str | None = Field(None, description="A finished run folder to compare with (its store is enough).")


class Pipeline(_Strict):
    """A ``pipeline.yaml``: which models see which data, and what is stored."""

    run: RunSection = Field(default_factory=RunSection)
    models: list[ModelSpec] = Field(min_length=1)
    datasets: list[DatasetSpec] = Field(min_length=1)
    store: StoreSection = Field(default_factory=StoreSection)
    stats: StatsSection = Field(default_factory=StatsSection)
    analysis: AnalysisSection = Field(default_factory=AnalysisSection)
    checks: list[Check] | None = Field(None, description="Checks of the run; the default set when absent.")
    compare: CompareSection = Field(default_factory=CompareSection)
    report: ReportSection = Field(default_factory=ReportSection)


@dataclass(frozen=True)
class Config:
    """A validated pipeline plus where it came from (relative paths resolve against ``base_dir``)."""

    pipeline: Pipeline
    source: str
    base_dir: Path

    def resolve(self, path: str) -> Path:
        """Resolve a path from the pipeline file against the file's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else (self.base_dir / candidate)

    def error(self, field: str, message: str) -> ConfigError:
        """An error at ``field`` of this config, for later stages to raise."""
        return ConfigError(self.source, field, message)

    def resolved_dict(self) -> dict[str, Any]:
        """The config with defaults filled in and paths made absolute (for the run folder)."""
        data = self.pipeline.model_dump(mode="json")
        data["run"]["output_dir"] = str(self.resolve(data["run"]["output_dir"]).resolve())
        for section in ("models", "datasets"):
            for entry in data[section]:
                if entry.get("path") is not None:
                    entry["path"] = str(self.resolve(entry["path"]).resolve())
        if data["report"]["template_dir"] is not None:
            data["report"]["template_dir"] = str(self.resolve(data["report"]["template_dir"]).resolve())
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.resolved_dict(), sort_keys=False, allow_unicode=True)


def load_config(path: str | Path, overrides: typing.Sequence[str] = ()) -> Config:
    """Read, override and validate a pipeline file; raise :class:`ConfigError` on any problem."""
    source = str(path)
    file = Path(path)
    if not file.is_file():
        what = "is a folder, not a pipeline file" if file.is_dir() else "no such pipeline file"
        raise ConfigError(source, "", what)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", f"cannot read: {exc}") from None
    raw = parse_yaml(text, source)
    applied = [apply_override(raw, item) for item in overrides]
    return Config(validate(raw, source, applied), source, file.resolve().parent)


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """``yaml.safe_load`` that also refuses duplicate keys and non-mapping documents."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(source, where, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"invalid YAML: {exc}") from None
    if data is None:
        raise ConfigError(source, "", "file is empty; expected keys run, models, datasets")
    if not isinstance(data, dict):
        raise ConfigError(source, "", f"expected a mapping with keys run, models, datasets, got {type(data).__name__}")
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True)
class _Override:
    text: str
    loc: tuple[str | int, ...]


_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_field_path(path: str) -> tuple[str | int, ...]:
    """``models[0].layers`` -> ``('models', 0, 'layers')``; the inverse of :func:`format_loc`."""
    loc: list[str | int] = []
    pos = 0
    for match in _TOKEN.finditer(path):
        gap = path[pos : match.start()]
        if gap not in ("", "."):
            raise ValueError(path)
        loc.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        pos = match.end()
    if not loc or pos != len(path):
        raise ValueError(path)
    return tuple(loc)


def format_loc(loc: typing.Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def apply_override(raw: dict[str, Any], item: str) -> _Override:
    """Apply one ``--set key.path=value`` (value parsed as YAML) to the raw config."""
    key, sep, value_text = item.partition("=")
    try:
        if not sep:
            raise ValueError(item)
        loc = parse_field_path(key.strip())
    except ValueError:
        raise UserError(f"--set {item!r}: expected key.path=value, e.g. run.seed=1 or datasets[0].limit=100") from None
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError as exc:
        raise UserError(f"--set {item}: value is not valid YAML: {exc}") from None
    node: Any = raw
    for depth, part in enumerate(loc[:-1]):
        where = format_loc(loc[: depth + 1])
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                size = len(node) if isinstance(node, list) else 0
                raise UserError(f"--set {item}: {where}: no such entry ({size} given)")
            node = node[part]
        else:
            if not isinstance(node, dict):
                raise UserError(f"--set {item}: {format_loc(loc[:depth])} is not a mapping")
            node = node.setdefault(part, [] if isinstance(loc[depth + 1], int) else {})
    last = loc[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last > len(node):
            raise UserError(f"--set {item}: {format_loc(loc)}: no such entry")
        if last == len(node):
            node.append(value)
        else:
            node[last] = value
    else:
        if not isinstance(node, dict):
            raise UserError(f"--set {item}: {format_loc(loc[:-1])} is not a mapping")
        node[last] = value
    return _Override(item, loc)


#: What each ``run.preset`` changes, unless the file sets the key itself.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {"analysis": {"random_baseline": True}},
    "minimal": {"analysis": {"enabled": False}},
}


def apply_preset(raw: dict[str, Any]) -> None:
    """Fill in the preset's defaults (explicit keys win)."""
    run = raw.get("run") if isinstance(raw.get("run"), dict) else {}
    preset = PRESETS.get(run.get("preset"), {})
    for section, values in preset.items():
        if isinstance(raw.get(section, {}), dict):
            target = raw.setdefault(section, {})
            for key, value in values.items():
                target.setdefault(key, value)


def validate(raw: dict[str, Any], source: str, overrides: typing.Sequence[_Override] = ()) -> Pipeline:
    """Validate a raw mapping (after its preset's defaults); the first problem becomes a one-line error."""
    apply_preset(raw)
    try:
        pipeline = Pipeline.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raw = tuple(error["loc"])
        loc = tuple(part for index, part in enumerate(raw) if not _is_union_tag(part) and not _is_rule_tag(raw, index))
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc += ("rule",)
        message = _describe(error, loc, raw)
        for override in overrides:
            if loc[: len(override.loc)] == override.loc:
                raise ConfigError(f"--set {override.text}", "", message) from None
        raise ConfigError(source, format_loc(loc), message) from None
    _check_names(pipeline, source)
    return pipeline


def _check_names(pipeline: Pipeline, source: str) -> None:
    for section in ("models", "datasets"):
        seen: dict[str, int] = {}
        for index, entry in enumerate(getattr(pipeline, section)):
            if entry.name in seen:
                raise ConfigError(
                    source, f"{section}[{index}].name",
                    f"name {entry.name!r} is already used by {section}[{seen[entry.name]}]; names must be unique",
                )
            seen[entry.name] = index
    names = [d.name for d in pipeline.datasets]
    transfer = pipeline.analysis.transfer.dataset
    if transfer is not None and transfer not in names:
        raise ConfigError(source, "analysis.transfer.dataset", f"no dataset named {transfer!r}{did_you_mean(transfer, names)}")
    for index, check in enumerate(pipeline.checks or []):
        for j, wanted in enumerate(check.datasets if check.datasets != "all" else []):
            if wanted not in names:
                raise ConfigError(source, f"checks[{index}].datasets[{j}]",
                                  f"no dataset named {wanted!r}{did_you_mean(wanted, names)}")
    for index, model in enumerate(pipeline.models):
        for j, wanted in enumerate(model.datasets or []):
            if wanted not in names:
                raise ConfigError(
                    source, f"models[{index}].datasets[{j}]",
                    f"no dataset named {wanted!r}{did_you_mean(wanted, names)}",
                )


def _is_rule_tag(loc: tuple[Any, ...], index: int) -> bool:
    """Pydantic puts the discriminator value of a check (``checks[0].dead_units.max``) into locations."""
    return index >= 2 and loc[index - 2] == "checks" and isinstance(loc[index - 1], int) and loc[index] in RULES


def _is_union_tag(part: Any) -> bool:
    """Pydantic inserts the union member's type name into error locations; drop it."""
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "bool", "dict"))


_EXPECTED = {
    "missing": "required key is missing",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "dict_type": "expected a mapping (key: value)",
    "model_type": "expected a mapping (key: value)",
    "model_attributes_type": "expected a mapping (key: value)",
}


def _describe(error: dict[str, Any], loc: tuple[Any, ...], raw: tuple[Any, ...]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        return f"unknown key{did_you_mean(key, _allowed_keys(raw[:-1]), allowed_list=True)}"
    if kind == "union_tag_invalid":
        tag = str(error.get("ctx", {}).get("tag", ""))
        return f"unknown rule {tag!r}{did_you_mean(tag, RULES, allowed_list=True)}"
    if kind == "union_tag_not_found":
        return f"required key is missing; expected one of: {', '.join(RULES)}"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind in _EXPECTED:
        message = _EXPECTED[kind]
    else:
        message = str(error["msg"]).replace("Input should be", "expected", 1)
        message = message.replace("List should have at least 1 item after validation, not 0", "expected at least one entry")
    if kind != "missing":
        message += f", got {_show(error.get('input'))}"
    return message


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def did_you_mean(key: str, choices: typing.Sequence[str], allowed_list: bool = False) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or the list of choices when asked, or ''."""
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if allowed_list and choices:
        return f"; expected one of: {', '.join(choices)}"
    return ""


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The field names of the config section at ``loc`` (for 'did you mean')."""
    cls: Any = Pipeline
    for part in loc:
        if isinstance(part, int):
            continue
        if part in RULES and cls is None:
            cls = _RULE_MODELS[part]
            continue
        field = cls.model_fields.get(part) if isinstance(cls, type) and issubclass(cls, BaseModel) else None
        if field is None:
            return []
        cls = None if part == "checks" else _model_in(field.annotation)
    return list(cls.model_fields) if isinstance(cls, type) and issubclass(cls, BaseModel) else []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def json_schema() -> dict[str, Any]:
    """JSON Schema of ``pipeline.yaml`` for editors (``deeprep schema``)."""
    schema = Pipeline.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "deeprep-report pipeline.yaml"
    return schema
