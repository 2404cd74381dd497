"""Loading a pipeline file: read, apply ``--set`` overrides and presets, validate, check cross-references.

Every error is one line naming the file, the field path and what was expected,
e.g. ``pipeline.yaml: datasets[0].batch_size: expected an integer, got 'many'``.
Only what can be checked from the text itself is checked here; whether files
exist, models load and layers resolve is the ``plan`` stage's job.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from deeprep_report.config.messages import describe
from deeprep_report.config.overrides import Override, apply_override, apply_preset, format_loc
from deeprep_report.config.parsing import check_size, parse_yaml
from deeprep_report.config.sections import Pipeline
from deeprep_report.errors import ConfigError, did_you_mean


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
                for key in ("preset",) if section == "models" else ():
                    if entry.get(key) and not entry[key].startswith("package:"):
                        entry[key] = str(self.resolve(entry[key]).resolve())
                if section == "datasets" and isinstance(entry.get("class_names"), str):
                    entry["class_names"] = str(self.resolve(entry["class_names"]).resolve())
                tokenizer = entry.get("tokenizer") if section == "datasets" else None
                if tokenizer and tokenizer.get("path") and not tokenizer["path"].startswith("package:"):
                    tokenizer["path"] = str(self.resolve(tokenizer["path"]).resolve())
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


def validate(raw: dict[str, Any], source: str, overrides: typing.Sequence[Override] = ()) -> Pipeline:
    """Validate a raw mapping (after its preset's defaults); the first problem becomes a one-line error."""
    check_size(raw, source)  # --set values are YAML too: an alias bomb can arrive there
    apply_preset(raw)
    try:
        pipeline = Pipeline.model_validate(raw)
    except ValidationError as exc:
        loc, message = describe(exc.errors(include_url=False)[0])
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


