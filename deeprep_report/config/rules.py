"""The check rules of ``checks:``, one typed model per rule, discriminated by ``rule`` (docs/checks.md).

The rules' evaluation lives in the audit stage; here is only what a pipeline may say.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator

from deeprep_report.config.fields import Strict
from deeprep_report.config.selectors import Selectors, layer_selectors

Severity = Literal["warn", "fail"]
#: Per-layer statistics of summary.json that a comparison with a baseline reports and ``stat_drift`` can check.
LAYER_STATISTICS = ("mean", "std", "min", "max", "zero_fraction", "nonfinite_fraction", "saturation_fraction",
                    "dead_fraction")


class _Check(Strict):
    layers: Selectors = Field("all", description="Layers the rule applies to: names, globs or {type, glob} "
                                                 "mappings.")
    datasets: Literal["all"] | list[str] = Field("all", description="Datasets whose pairs are checked (names).")
    severity: Severity = Field("fail", description="warn or fail: what a failure of this check means.")

    _layers_shape = field_validator("layers", mode="before")(lambda value: layer_selectors(value))


class DeadUnitsCheck(_Check):
    """A layer's dead-unit fraction is at most ``max``."""
    why: ClassVar[str] = (
        "A dead unit says nothing about any input: capacity the model pays for and does not use. Many of them "
        "after a ReLU often point to a too-high learning rate, a bad initialisation or inputs on the wrong "
        "scale.")

    rule: Literal["dead_units"]
    max: float = Field(ge=0, le=1, description="Largest allowed dead-unit fraction.")


class NanInfCheck(_Check):
    """A layer has no NaN or Inf value."""
    why: ClassVar[str] = (
        "One NaN or Inf spreads to every later layer and every prediction, and makes every statistic of those "
        "layers meaningless.")

    rule: Literal["nan_inf"]


class SaturationCheck(_Check):
    """A layer's saturation fraction is at most ``max`` (bounded activations; softmax only if asked)."""
    why: ClassVar[str] = (
        "Where a tanh or sigmoid is saturated its gradient is almost zero: the layer stops learning there and "
        "keeps only the sign of its input, not its size.")

    rule: Literal["saturation"]
    max: float = Field(ge=0, le=1, description="Largest allowed saturation fraction.")
    include_softmax: bool = Field(False, description="Also check softmax outputs (confident = saturated).")


class CollapseCheck(_Check):
    """A layer's effective rank (or participation ratio) is at least ``min``."""
    why: ClassVar[str] = (
        "A representation with few effective dimensions has collapsed: the layer maps different inputs onto "
        "the same few directions, so later layers cannot tell them apart.")

    rule: Literal["collapse"]
    min: float = Field(gt=0, description="Smallest allowed value.")
    measure: Literal["effective_rank", "participation_ratio"] = Field("effective_rank", description="What is measured.")


class ProbeAccuracyCheck(_Check):
    """A layer's probe accuracy is at least ``min``."""
    why: ClassVar[str] = (
        "How well the labels can be read from the layer by a linear classifier: low accuracy near the output "
        "means the classes are not separated where the head reads them.")

    rule: Literal["probe_accuracy"]
    min: float = Field(ge=0, le=1, description="Smallest allowed held-out probe accuracy.")


class ProbeMonotonicCheck(_Check):
    """Probe accuracy drops by at most ``tolerance`` from one checked layer to the next."""
    why: ClassVar[str] = (
        "In a classifier the linearly readable label information usually grows with depth; a drop means a "
        "layer throws away what later layers would need.")

    rule: Literal["probe_monotonic"]
    tolerance: float = Field(0.05, ge=0, le=1, description="Largest allowed drop between consecutive layers.")


class DriftCheck(_Check):
    """A layer's linear CKA with the same layer of the baseline run is at least ``min``."""
    why: ClassVar[str] = (
        "A layer whose representation moved far from the baseline run's on the same samples now encodes "
        "something else: expected after retraining, a red flag after a refactor or a dependency upgrade.")

    rule: Literal["drift"]
    min: float = Field(ge=0, le=1, description="Smallest allowed CKA to the baseline.")


class StatDriftCheck(_Check):
    """A layer statistic changes by at most ``max`` (relative to the baseline's value)."""
    why: ClassVar[str] = (
        "A layer statistic (mean, spread, zeros) that moved against the baseline is often the first sign of "
        "changed preprocessing, numerics or data.")

    rule: Literal["stat_drift"]
    statistic: Literal[LAYER_STATISTICS] = Field(description="The layer statistic compared.")
    max: float = Field(gt=0, description="Largest allowed |current − baseline| / |baseline|.")


class WeightsCheck(_Check):
    """A layer's weights moved by at most ``max_change`` from the baseline's: ‖W − W_baseline‖ / ‖W_baseline‖."""
    why: ClassVar[str] = (
        "Weights that moved further from the baseline than expected: a fine-tune that went further than "
        "meant, or the wrong checkpoint.")

    rule: Literal["weights"]
    max_change: float = Field(gt=0, description="Largest allowed relative weight change against the baseline.")


Check = Annotated[
    DeadUnitsCheck | NanInfCheck | SaturationCheck | CollapseCheck | ProbeAccuracyCheck | ProbeMonotonicCheck
    | DriftCheck | StatDriftCheck | WeightsCheck,
    Field(discriminator="rule"),
]
RULE_MODELS = {model.model_fields["rule"].annotation.__args__[0]: model for model in (
    DeadUnitsCheck, NanInfCheck, SaturationCheck, CollapseCheck, ProbeAccuracyCheck, ProbeMonotonicCheck, DriftCheck,
    StatDriftCheck, WeightsCheck)}
RULES = tuple(RULE_MODELS)

