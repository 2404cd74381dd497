"""Building blocks shared by every config section: strict models, names, plain data."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


def entry_name(value: str | None) -> str | None:
    """A model or dataset name: names a folder, an HDF5 group and an HTML anchor, so it is neither empty nor
    holds control characters."""
    if value is None:
        return value
    if not value.strip():
        raise ValueError("expected a non-empty name")
    if any(ord(character) < 32 or ord(character) == 127 for character in value):
        raise ValueError(f"a name cannot hold control characters, got {value!r}")
    return value


def plain_data(value: Any, where: str) -> Any:
    """JSON-like data only (strings, numbers, booleans, null, lists, mappings with string keys): what a model
    factory or builder can be given from a YAML file."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: keys must be strings, got {key!r}")
            plain_data(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            plain_data(item, f"{where}[{index}]")
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise ValueError(f"{where}: expected strings, numbers, booleans, lists or mappings, got {type(value).__name__}")
    return value


class Strict(BaseModel):
    """Unknown keys are errors, so a typo never silently falls back to a default."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

