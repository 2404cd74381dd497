"""The ``config`` stage: ``pipeline.yaml`` read safely and validated into typed sections.

``sections``, ``data`` (the datasets) and ``rules`` are the schema (one typed option per key); ``parsing``
reads YAML, ``overrides`` applies ``--set`` and presets, ``messages`` writes every
error line, ``loading`` ties them together into :func:`load_config`, ``schema``
exports the JSON Schema, ``selectors`` defines the ``layers:`` selector language (and matches it).
Later stages import from here, not from the modules.
"""

from deeprep_report.config.loading import Config, load_config, validate
from deeprep_report.config.overrides import apply_override, format_loc, parse_field_path
from deeprep_report.config.rules import (
    LAYER_STATISTICS, RULES, Check, CollapseCheck, DeadUnitsCheck, DriftCheck, NanInfCheck, ProbeAccuracyCheck,
    ProbeMonotonicCheck, SaturationCheck, StatDriftCheck, WeightsCheck,
)
from deeprep_report.config.schema import json_schema
from deeprep_report.config.sections import (
    AnalysisSection, DatasetSpec, ModelSpec, Pipeline, ReportSection, StatsSection, StoreSection,
)
from deeprep_report.errors import ConfigError

__all__ = [
    "LAYER_STATISTICS", "RULES", "AnalysisSection", "Check", "CollapseCheck", "Config", "ConfigError", "DatasetSpec",
    "DeadUnitsCheck", "DriftCheck", "ModelSpec", "NanInfCheck", "Pipeline", "ProbeAccuracyCheck",
    "ProbeMonotonicCheck", "ReportSection", "SaturationCheck", "StatDriftCheck", "StatsSection", "StoreSection",
    "WeightsCheck", "apply_override", "format_loc", "json_schema", "load_config", "parse_field_path", "validate",
]
